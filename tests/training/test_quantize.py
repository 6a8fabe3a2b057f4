"""The 8-bit serving copy of a bundle's network: built from its float graph, served when the bundle names
it, finding what the float network finds, and refused when the bundle names a file it does not hold."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aoi.data.synthetic import make_pair
from aoi.detection.boxes import iou_matrix
from aoi.detection.bundle import DEFAULT_BUNDLE, FLOAT_MODEL, BundleError, ModelBundle
from aoi.detection.inspector import Inspector, analyse_pair
from aoi.detection.model_registry import ModelRegistry

pytest.importorskip("onnx")
from aoi.training.quantize import INT8_MODEL, quantize_bundle  # noqa: E402


def _float_copy(tmp_path: Path) -> ModelBundle:
    folder = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, folder)
    bundle = ModelBundle.load(folder)
    floated = ModelBundle(folder, replace(bundle.meta, inference_model=FLOAT_MODEL))
    floated.save_meta()
    (folder / INT8_MODEL).unlink(missing_ok=True)
    return floated


def _boards(seed: int, n: int) -> list:
    rng = np.random.default_rng(seed)
    return [make_pair(rng, n_defects=(3, 6), misalign=i % 2 == 1) for i in range(n)]


def test_the_int8_copy_serves_and_finds_what_the_float_network_finds(tmp_path: Path) -> None:
    bundle = _float_copy(tmp_path)
    float_inspector = Inspector(bundle)
    calibration = np.concatenate(
        [
            analyse_pair(p.test, p.template, bundle.meta.registration, bundle.meta.candidates).candidates.crops
            for p in _boards(1, 6)
        ]  # fmt: skip
    )
    quantized = quantize_bundle(bundle, calibration)

    assert quantized.inference_path == bundle.path / INT8_MODEL
    assert quantized.onnx_path.is_file()  # the float network stays: fine-tuning starts from it
    assert json.loads((bundle.path / "bundle.json").read_text())["inference_model"] == INT8_MODEL
    assert quantized.inference_path.stat().st_size < 0.5 * quantized.onnx_path.stat().st_size
    int8_inspector = Inspector(ModelBundle.load(bundle.path))
    assert int8_inspector.bundle.meta.inference_model == INT8_MODEL

    matched = total = 0
    for pair in _boards(2, 8):  # other boards than the calibration ones
        want = float_inspector.inspect(pair.test, pair.template, image_id="f").defects
        got = int8_inspector.inspect(pair.test, pair.template, image_id="q").defects
        total += len(want)
        if want and got:
            overlap = iou_matrix(
                np.array([d.box_px for d in want], np.float64), np.array([d.box_px for d in got], np.float64)
            )
            for i, d in enumerate(want):
                j = int(overlap[i].argmax())
                matched += int(overlap[i, j] >= 0.5 and got[j].type is d.type)
    assert total >= 20
    assert matched >= 0.95 * total, (matched, total)


def test_a_bundle_naming_a_serving_graph_it_does_not_hold_is_refused(tmp_path: Path) -> None:
    bundle = _float_copy(tmp_path)
    data = json.loads((bundle.path / "bundle.json").read_text())
    for name, message in [("model.int8.onnx", "has no model.int8.onnx"), ("../other/model.onnx", "file name")]:
        (bundle.path / "bundle.json").write_text(json.dumps({**data, "inference_model": name}))
        with pytest.raises(BundleError, match=message):
            ModelBundle.load(bundle.path)


def test_a_quantised_bundle_is_registered_with_its_serving_graph(tmp_path: Path) -> None:
    bundle = _float_copy(tmp_path)
    crops = analyse_pair(*(lambda p: (p.test, p.template))(_boards(3, 1)[0])).candidates.crops
    quantized = quantize_bundle(bundle, crops)
    registry = ModelRegistry(tmp_path / "models")
    registry.add(quantized)
    stored = registry.bundle(quantized.meta.version)
    assert stored.meta.inference_model == INT8_MODEL and stored.inference_path.is_file()
    assert stored.onnx_path.is_file()


def test_quantising_without_crops_is_refused(tmp_path: Path) -> None:
    bundle = _float_copy(tmp_path)
    with pytest.raises(ValueError, match="needs candidate crops"):
        quantize_bundle(bundle, np.zeros((0, 4, 48, 48), np.float32))
