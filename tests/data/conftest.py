"""Fixtures for the dataset tests: small synthetic pairs written to disk as PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.data.annotations import AnnotatedPair
from aoi.data.synthetic import make_pair


def write_pairs(folder: Path, n: int = 3, size_wh: tuple[int, int] = (256, 192), seed: int = 11) -> list[AnnotatedPair]:
    """Synthetic non-square pairs (so width/height swaps show) saved as `<id>_test.png` / `<id>_temp.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        pair = make_pair(rng, n_defects=(1, 4), size_wh=size_wh)
        test_path, template_path = folder / f"board{i}_test.png", folder / f"board{i}_temp.png"
        cv2.imwrite(str(test_path), pair.test)
        cv2.imwrite(str(template_path), pair.template)
        pairs.append(AnnotatedPair(f"board{i}", test_path, template_path, pair.labels, group=f"g{i % 2}"))
    return pairs


@pytest.fixture
def pairs_on_disk(tmp_path: Path) -> list[AnnotatedPair]:
    return write_pairs(tmp_path / "source")
