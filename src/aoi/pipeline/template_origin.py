"""Which template a board was inspected against, as a type, from the line to the sink.

The line decides it once, where it takes the template (a product's recipe, a file beside the capture,
pixels the capture brought) and resolves the product; the sink stores each kind its own way and never
looks a string up again to guess which of the three it was. Every kind names the registered product the
board belongs to, if any (`product`), so a sink links it without a lookup by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ProductRef:
    """A registered product as its recipe's provider resolved it: the id a sink links, the name it shows."""

    id: str
    name: str


@dataclass(frozen=True)
class ProductTemplate:
    """The product's recipe template: a sink references it (the product's own template), never copies it."""

    product: ProductRef


@dataclass(frozen=True)
class TemplateFile:
    """A template file that came with the capture (a hot-folder `_temp` file): a sink that keeps templates
    copies it. `product`: the registered product that labels the board (its calibration and rules applied)."""

    path: Path
    product: ProductRef | None = None


@dataclass(frozen=True, eq=False)
class InlineTemplate:
    """Template pixels with no file or product to name (the demo line, a camera, an upload's own template,
    a recipe kept in no product table): a sink that keeps templates saves them with the board.
    `product`: the registered product that labels the board, as for `TemplateFile`."""

    image: np.ndarray
    product: ProductRef | None = None


TemplateOrigin = ProductTemplate | TemplateFile | InlineTemplate
