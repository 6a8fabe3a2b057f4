"""Engine fixtures: synthetic boards and a tiny model trained on them (module-scoped, built once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aoi.data.synthetic import make_pair, write_deeppcb_layout

SHARED_DEEPPCB = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "deeppcb" / "PCBData"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small DeepPCB-layout dataset of synthetic boards in two groups."""
    root = tmp_path_factory.mktemp("synthetic-deeppcb")
    rng = np.random.default_rng(7)
    write_deeppcb_layout([make_pair(rng, n_defects=(3, 6)) for _ in range(14)], root, group="group90000")
    write_deeppcb_layout([make_pair(rng, n_defects=(3, 6), misalign=True) for _ in range(6)], root, group="group91000")
    return root


@pytest.fixture(scope="session")
def tiny_bundle(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model bundle trained for one short run on the synthetic boards: checks plumbing, not accuracy."""
    pytest.importorskip("torch")
    from aoi.training.recipe import TrainRecipe
    from aoi.training.samples import AugmentConfig
    from aoi.training.trainer import train

    recipe = TrainRecipe(
        version="tiny-test",
        list_file="list.txt",
        validation_groups=("group91000",),
        epochs=2,
        batch_size=64,
        augment=AugmentConfig(variants=0),
        workers=1,
    )
    out = tmp_path_factory.mktemp("tiny-train")
    bundle = train(recipe, synthetic_root, out, log=lambda _m: None)
    return bundle.path
