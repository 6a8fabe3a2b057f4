"""Template providers: an in-memory product table, and a cache in front of a slower one.

A recipe's template is a decoded golden image (a 16k panel template is 256 MB and takes seconds to
decode), so the line must not fetch it from the database and image store for every board.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import replace

from aoi.pipeline.protocols import ProductRecipe, TemplateProvider, UnknownProductError
from aoi.pipeline.template_origin import ProductRef


class StaticTemplateProvider:
    """An in-memory product table: for the demo line, scripts and tests. A product's key is its id and its
    name: a recipe added without its `product` is given `ProductRef(key, key)`."""

    def __init__(self, recipes: dict[str, ProductRecipe] | None = None) -> None:
        self._recipes: dict[str, ProductRecipe] = {}
        for product, recipe in (recipes or {}).items():
            self.add(product, recipe)

    def add(self, product: str, recipe: ProductRecipe) -> None:
        if recipe.product is None:
            recipe = replace(recipe, product=ProductRef(product, product))
        self._recipes[product] = recipe

    def recipe(self, product: str) -> ProductRecipe:
        try:
            return self._recipes[product]
        except KeyError:
            raise UnknownProductError(f"unknown product {product!r}; register it first") from None


class CachingTemplateProvider:
    """Keeps the last `max_products` recipes for `ttl_s` seconds in front of `provider`.

    A product edited through the API is picked up after at most `ttl_s`; call `invalidate(product)`
    to make it immediate. Unknown products are not cached (registering one takes effect at once).
    Concurrent misses for one product may both load it; the cache stays consistent.
    """

    def __init__(self, provider: TemplateProvider, ttl_s: float = 30.0, max_products: int = 8) -> None:
        if max_products < 1:
            raise ValueError(f"max_products must be >= 1, got {max_products}")
        self.provider = provider
        self.ttl_s = ttl_s
        self.max_products = max_products
        self._cache: OrderedDict[str, tuple[float, ProductRecipe]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def recipe(self, product: str) -> ProductRecipe:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(product)
            if cached is not None and now - cached[0] < self.ttl_s:
                self._cache.move_to_end(product)
                self.hits += 1
                return cached[1]
            self.misses += 1
        recipe = self.provider.recipe(product)
        with self._lock:
            self._cache[product] = (now, recipe)
            self._cache.move_to_end(product)
            while len(self._cache) > self.max_products:
                self._cache.popitem(last=False)
        return recipe

    def invalidate(self, product: str | None = None) -> None:
        with self._lock:
            if product is None:
                self._cache.clear()
            else:
                self._cache.pop(product, None)
