"""Leave-one-group-out: the scored group never reaches training or the choice of threshold."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aoi.cli import app
from aoi.data.annotations import DatasetError
from aoi.data.synthetic import make_pair, write_deeppcb_layout

pytest.importorskip("torch")

from aoi.training.cv import FoldResult, chosen_operating_point, fold_plan  # noqa: E402
from aoi.training.recipe import TrainRecipe  # noqa: E402
from aoi.training.samples import AugmentConfig  # noqa: E402
from aoi.training.trainer import OperatingPoint, train  # noqa: E402

GROUP_SIZES = {"group80000": 6, "group81000": 4, "group82000": 3}


@pytest.fixture(scope="module")
def three_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("three-groups")
    rng = np.random.default_rng(31)
    for group, n in GROUP_SIZES.items():
        write_deeppcb_layout([make_pair(rng, n_defects=(2, 4)) for _ in range(n)], root, group=group)
    return root


def _recipe(**changes) -> TrainRecipe:
    base = TrainRecipe(version="cv-test", list_file="list.txt", epochs=1, batch_size=64,
                       augment=AugmentConfig(variants=0), workers=1)  # fmt: skip
    return replace(base, **changes)


def test_fold_plan_scores_each_group_once_and_calibrates_on_another():
    plan = fold_plan(["b", "a", "c", "a"])
    assert [s for s, _ in plan] == ["a", "b", "c"]
    assert all(s != c for s, c in plan) and {c for _, c in plan} == {"a", "b", "c"}
    with pytest.raises(DatasetError, match="at least 3 groups"):
        fold_plan(["a", "b"])


def test_operating_point_is_the_median_of_the_folds():
    folds = [FoldResult(g, "x", 1, 1, t, s, {}) for g, t, s in (("a", 0.1, 0.8), ("b", 0.5, 0.0), ("c", 0.3, 0.9))]
    point = chosen_operating_point(folds)
    assert (point.threshold, point.scratch_guard) == (0.3, 0.8) and "3" in point.chosen_by


def test_cv_fold_never_trains_or_calibrates_on_the_scored_group(three_groups: Path, tmp_path: Path):
    result = CliRunner().invoke(
        app,
        [
            "cv",
            str(three_groups),
            "--out",
            str(tmp_path),
            "--recipe",
            str(_write(tmp_path, _recipe())),
            "--only",
            "group81000",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    (row,) = summary["folds"]
    assert row["group"] == "group81000" and row["calibrated_on"] == "group82000"
    assert row["pairs"] == GROUP_SIZES["group81000"] and row["defects"] > 0
    assert 0.0 <= row["map33"] <= 1.0 and 0.0 < row["threshold"] < 1.0
    meta = json.loads((tmp_path / "group81000" / "bundle" / "bundle.json").read_text())
    assert meta["training"]["excluded_groups"] == ["group81000"]
    assert meta["training"]["validation_groups"] == ["group82000"]
    assert meta["training"]["train_pairs"] == GROUP_SIZES["group80000"]  # neither scored nor calibration pairs
    assert summary["operating_point"]["threshold"] == row["threshold"]
    again = CliRunner().invoke(
        app,
        [
            "cv",
            str(three_groups),
            "--out",
            str(tmp_path),
            "--recipe",
            str(tmp_path / "recipe.json"),
            "--only",
            "group81000",
        ],  # fmt: skip
    )
    assert again.exit_code == 0 and "already done" in again.output  # resumable per fold


def test_cv_refuses_unknown_groups_and_missing_recipes(three_groups: Path, tmp_path: Path):
    recipe = _write(tmp_path, _recipe())
    bad_group = CliRunner().invoke(app, ["cv", str(three_groups), "--recipe", str(recipe), "--only", "group1"])
    assert bad_group.exit_code == 2 and "not in the dataset" in bad_group.output
    no_recipe = CliRunner().invoke(app, ["cv", str(three_groups), "--recipe", str(tmp_path / "nope.json")])
    assert no_recipe.exit_code == 2 and "not found" in no_recipe.output


def test_train_with_an_operating_point_uses_every_group_and_its_threshold(three_groups: Path, tmp_path: Path):
    point = OperatingPoint(threshold=0.42, scratch_guard=0.7, chosen_by="test")
    folds = [{"group": "group80000", "pairs": 6, "map33": 0.9, "deeppcb_map": 0.9, "f_score": 0.8, "precision": 0.8,
              "recall": 0.8, "threshold": 0.42}]  # fmt: skip
    evidence = {"cross_validation": {"folds": folds, "mean_map33": 0.9, "worst_map33": 0.9}}
    bundle = train(_recipe(validation_groups=("group82000",)), three_groups, tmp_path, log=lambda _m: None,
                   operating_point=point, evidence=evidence)  # fmt: skip
    assert bundle.meta.threshold == 0.42 and bundle.meta.scratch_min_probability == 0.7
    assert bundle.meta.training["train_pairs"] == sum(GROUP_SIZES.values())
    assert bundle.meta.training["validation_pairs"] == 0
    assert bundle.meta.metrics["operating_point"]["chosen_by"] == "test"
    card = (bundle.path / "MODEL_CARD.md").read_text()
    assert "chosen by: test" in card and "| group80000 | 6 | 0.9 |" in card


def test_train_cli_refuses_a_file_without_an_operating_point(three_groups: Path, tmp_path: Path):
    (tmp_path / "cv.json").write_text('{"folds": []}')
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(three_groups),
            "--out",
            str(tmp_path / "run"),
            "--recipe",
            str(_write(tmp_path, _recipe())),
            "--operating-point-from",
            str(tmp_path / "cv.json"),
        ],  # fmt: skip
    )
    assert result.exit_code == 2 and "operating_point" in result.output


def _write(folder: Path, recipe: TrainRecipe) -> Path:
    path = folder / "recipe.json"
    path.write_text(json.dumps(recipe.to_dict()))
    return path
