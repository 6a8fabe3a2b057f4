"""Template providers: the static table and the cache in front of a slow one."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.pipeline import CachingTemplateProvider, ProductRecipe, StaticTemplateProvider, UnknownProductError
from aoi.verdict import VerdictRules


class CountingProvider(StaticTemplateProvider):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def recipe(self, product: str) -> ProductRecipe:
        self.loads += 1
        return super().recipe(product)


def _recipe(px_per_mm: float = 48.0) -> ProductRecipe:
    return ProductRecipe(np.zeros((64, 64), np.uint8), px_per_mm, VerdictRules())


def test_cache_serves_repeat_lookups_and_expires() -> None:
    inner = CountingProvider()
    inner.add("a", _recipe())
    cache = CachingTemplateProvider(inner, ttl_s=60.0)
    assert cache.recipe("a") is cache.recipe("a")
    assert inner.loads == 1 and cache.hits == 1
    inner.add("a", _recipe(10.0))
    cache.invalidate("a")
    assert cache.recipe("a").px_per_mm == 10.0
    cache.ttl_s = 0.0
    cache.recipe("a")
    assert inner.loads == 3


def test_cache_is_bounded_and_does_not_cache_unknown_products() -> None:
    inner = CountingProvider()
    for name in "abc":
        inner.add(name, _recipe())
    cache = CachingTemplateProvider(inner, max_products=2)
    for name in "abca":
        cache.recipe(name)
    assert inner.loads == 4  # "a" was evicted by "c"
    with pytest.raises(UnknownProductError):
        cache.recipe("zz")
    inner.add("zz", _recipe())
    assert cache.recipe("zz").px_per_mm == 48.0
