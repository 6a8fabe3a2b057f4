"""End to end on synthetic boards: train a tiny bundle, then inspect, eval and bench with it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from aoi.cli import app
from aoi.data.synthetic import generate_template, make_pair
from aoi.detection.bundle import BundleError, ModelBundle
from aoi.detection.inspector import Inspector
from aoi.detection.overlay import OVERLAY_MARGIN_TOP_PX
from aoi.schema import InspectionResult

runner = CliRunner()


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_bundle_carries_its_config(tiny_bundle: Path):
    bundle = ModelBundle.load(tiny_bundle)
    meta = bundle.meta
    assert meta.version == "tiny-test"
    assert len(meta.classes) == 7 and 0.0 < meta.threshold < 1.0
    assert meta.training["data_fingerprint"] and meta.training["validation_groups"] == ["group91000"]
    assert "deeppcb_map" in meta.metrics["validation"]


def test_broken_bundles_are_refused(tmp_path: Path, tiny_bundle: Path):
    with pytest.raises(BundleError, match="bundle.json missing"):
        ModelBundle.load(tmp_path)
    shutil.copy(tiny_bundle / "bundle.json", tmp_path / "bundle.json")
    with pytest.raises(BundleError, match="no model.onnx"):
        ModelBundle.load(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="malformed"):
        ModelBundle.load(tmp_path)


def test_inspect_returns_typed_result_with_mm_boxes(tiny_bundle: Path):
    pair = make_pair(np.random.default_rng(99))
    result = Inspector.load(tiny_bundle).inspect(pair.test, pair.template, image_id="b1", px_per_mm=24.0, threshold=0.0)
    assert isinstance(result, InspectionResult)
    assert result.image_size_wh == (640, 640) and result.model_version == "tiny-test"
    assert {"register", "candidates", "classify", "total"} <= set(result.timings_ms)
    for d in result.defects:
        assert d.box_mm == pytest.approx(tuple(v / 24.0 for v in d.box_px), abs=1e-3)


def test_board_without_defects_passes(tiny_bundle: Path):
    template = generate_template(np.random.default_rng(5))
    result = Inspector.load(tiny_bundle).inspect(template.copy(), template, image_id="clean")
    assert result.defects == () and result.verdict.value == "pass"


def _write_pair(folder: Path, name: str, test: np.ndarray, template: np.ndarray | None) -> None:
    cv2.imwrite(str(folder / f"{name}_test.png"), test)
    if template is not None:
        cv2.imwrite(str(folder / f"{name}_temp.png"), template)


def test_inspect_cli_batch_isolates_bad_images(tmp_path: Path, tiny_bundle: Path):
    rng = np.random.default_rng(3)
    src = tmp_path / "in"
    src.mkdir()
    good = make_pair(rng)
    _write_pair(src, "good", good.test, good.template)
    _write_pair(src, "notemplate", good.test, None)
    _write_pair(src, "othersize", good.test, good.template[:320, :320])
    other = make_pair(rng)
    _write_pair(src, "otherboard", good.test, other.template)
    (src / "corrupt_test.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cv2.imwrite(str(src / "corrupt_temp.png"), good.template)
    (src / "empty_test.png").write_bytes(b"")
    cv2.imwrite(str(src / "empty_temp.png"), good.template)

    out = tmp_path / "out"
    res = runner.invoke(app, ["inspect", str(src), "--out", str(out), "--model", str(tiny_bundle)])
    assert res.exit_code == 1, res.output
    summary = _last_json(res.stdout)
    assert summary["images"] == 6 and summary["failed"] == 5
    ok = json.loads((out / "good.json").read_text())
    assert ok["status"] == "ok" and InspectionResult.from_dict(ok).image_id == "good"
    assert cv2.imread(str(out / "good.png")).shape == (640 + OVERLAY_MARGIN_TOP_PX, 640, 3)  # banner above
    errors = {
        n: json.loads((out / f"{n}.json").read_text())
        for n in ["notemplate", "othersize", "otherboard", "corrupt", "empty"]
    }
    assert all(e["status"] == "error" for e in errors.values())
    assert "no template" in errors["notemplate"]["message"]
    assert "differs" in errors["othersize"]["message"]
    assert "does not match" in errors["otherboard"]["message"]
    assert "not a decodable image" in errors["corrupt"]["message"]
    assert "empty" in errors["empty"]["message"]


def test_inspect_cli_single_pair_needs_template(tmp_path: Path, tiny_bundle: Path):
    pair = make_pair(np.random.default_rng(4))
    _write_pair(tmp_path, "one", pair.test, pair.template)
    res = runner.invoke(
        app, ["inspect", str(tmp_path / "one_test.png"), "--model", str(tiny_bundle), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "needs --template" in res.output
    res = runner.invoke(
        app,
        [
            "inspect",
            str(tmp_path / "one_test.png"),
            "-t",
            str(tmp_path / "one_temp.png"),
            "--model",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "one_test.json").is_file()


def test_eval_cli_writes_submissions_and_json(synthetic_root: Path, tiny_bundle: Path, tmp_path: Path):
    out = tmp_path / "sub"
    res = runner.invoke(
        app, ["eval", str(synthetic_root), "--list", "list.txt", "--out", str(out), "--model", str(tiny_bundle)]
    )
    assert res.exit_code == 0, res.output
    figures = _last_json(res.stdout)
    for key in ("deeppcb_map", "f_score", "threshold", "map33", "map50", "ap33", "images_per_s", "precision", "recall"):
        assert key in figures
    assert figures["images"] == 20 and figures["failed"] == 0
    files = sorted(out.glob("*.txt"))
    assert len(files) == 20
    for line in "".join(f.read_text() for f in files).splitlines():
        x1, y1, x2, y2, conf, kind = line.split(",")
        assert int(x1) <= int(x2) and int(y1) <= int(y2) and 0 <= float(conf) <= 1
        assert kind in {"open", "short", "mousebite", "spur", "copper", "pin-hole", "scratch"}


def test_eval_cli_rejects_missing_list(synthetic_root: Path, tiny_bundle: Path, tmp_path: Path):
    res = runner.invoke(
        app, ["eval", str(synthetic_root), "--list", "nope.txt", "--out", str(tmp_path), "--model", str(tiny_bundle)]
    )
    assert res.exit_code == 2 and "not found" in res.output


def test_bench_cli_reports_stages_and_sweep(synthetic_root: Path, tiny_bundle: Path):
    res = runner.invoke(
        app,
        [
            "bench",
            str(synthetic_root),
            "--list",
            "list.txt",
            "--model",
            str(tiny_bundle),
            "--groups",
            "group91000",
            "--scratch-boards",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    report = _last_json(res.stdout)
    assert report["pairs"] == 6 and report["groups"] == ["group91000"]
    assert report["groups_seen_in_training"] is False  # the tiny model held group91000 out
    assert {"decode", "register", "candidates", "classify"} <= set(report["throughput"]["stage_ms_mean_per_pair"])
    assert len(report["robustness"]) == 7 and report["peak_rss_mb"] > 0
    assert report["scratch_synthetic"]["boards"] == 4
    seen = runner.invoke(app, ["bench", str(synthetic_root), "--list", "list.txt", "--model", str(tiny_bundle),
                               "--groups", "group90000", "--no-sweep", "--scratch-boards", "0"])  # fmt: skip
    assert seen.exit_code == 0 and _last_json(seen.stdout)["groups_seen_in_training"] is True
    assert "trained on" in seen.output


def test_training_resumes_from_checkpoint(synthetic_root: Path, tmp_path: Path):
    pytest.importorskip("torch")
    from aoi.training.recipe import TrainRecipe
    from aoi.training.samples import AugmentConfig
    from aoi.training.trainer import train

    recipe = TrainRecipe(
        version="r",
        list_file="list.txt",
        validation_groups=("group91000",),
        epochs=1,
        batch_size=64,
        augment=AugmentConfig(variants=0),
        workers=1,
    )
    logs: list[str] = []
    train(recipe, synthetic_root, tmp_path, log=logs.append)
    from dataclasses import replace

    train(replace(recipe, epochs=2), synthetic_root, tmp_path, log=logs.append)
    assert any("starting afresh" in m for m in logs)  # a changed recipe does not resume a stale checkpoint
    logs.clear()
    # Same recipe again: all epochs already done -> resumes at the end, no epoch re-run.
    train(replace(recipe, epochs=2), synthetic_root, tmp_path, log=logs.append)
    assert any("resuming from epoch 2" in m for m in logs)
    assert not any(m.startswith("epoch ") for m in logs)


def test_train_cli_rejects_unknown_format(synthetic_root: Path, tmp_path: Path):
    res = runner.invoke(app, ["train", str(synthetic_root), "--out", str(tmp_path), "--format", "voc"])
    assert res.exit_code == 2 and "unknown dataset format" in res.output


def test_scratch_guard_turns_unsure_scratch_calls_into_other_types(tiny_bundle: Path):
    from dataclasses import replace

    from aoi.schema import DefectType

    bundle = ModelBundle.load(tiny_bundle)
    pairs = [make_pair(np.random.default_rng(s), defect_types=[DefectType.SCRATCH]) for s in range(3)]
    guarded = Inspector(ModelBundle(bundle.path, replace(bundle.meta, scratch_min_probability=1.01)))
    for p in pairs:
        found = guarded.detect(p.test, p.template, score_floor=0.0)[0]
        assert all(d.type is not DefectType.SCRATCH for d in found)


def test_serving_settings_do_not_retrain(synthetic_root: Path, tmp_path: Path):
    from dataclasses import replace

    from aoi.training.recipe import TrainRecipe
    from aoi.training.samples import AugmentConfig
    from aoi.training.trainer import train

    recipe = TrainRecipe(
        version="a", list_file="list.txt", validation_groups=("group91000",), epochs=1, batch_size=64,
        augment=AugmentConfig(variants=0), workers=1,
    )  # fmt: skip
    train(recipe, synthetic_root, tmp_path, log=lambda _m: None)
    logs: list[str] = []
    bundle = train(replace(recipe, version="b", test_time_flips=2), synthetic_root, tmp_path, log=logs.append)
    assert any("resuming from epoch 1" in m for m in logs)
    assert bundle.meta.version == "b" and bundle.meta.test_time_flips == 2


def test_inspect_cli_says_a_missing_folder_is_not_found(tmp_path: Path, tiny_bundle: Path):
    res = runner.invoke(app, ["inspect", str(tmp_path / "nosuchdir"), "--model", str(tiny_bundle)])
    assert res.exit_code == 2
    assert "not found" in res.output and "--template" not in res.output


def test_inspect_cli_shows_progress_with_a_count_over_a_folder(tmp_path: Path, tiny_bundle: Path):
    rng = np.random.default_rng(5)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        pair = make_pair(rng)
        _write_pair(src, f"b{i}", pair.test, pair.template)
    res = runner.invoke(app, ["inspect", str(src), "--out", str(tmp_path / "out"), "--model", str(tiny_bundle)])
    assert res.exit_code == 0, res.output
    assert "3/3" in res.output  # the bar's count (stderr, which the runner mixes into output)
    assert _last_json(res.stdout)["images"] == 3


def test_worker_processes_report_what_threads_report(synthetic_root: Path, tiny_bundle: Path, tmp_path: Path):
    from aoi.data.deeppcb import read_deeppcb
    from aoi.detection.inspector import Inspector
    from aoi.evaluation.runner import run_pairs

    pairs = read_deeppcb(synthetic_root, "list.txt")[:6]
    broken = tmp_path / "broken_test.jpg"
    broken.write_bytes(b"not an image")
    pairs.append(replace(pairs[0], image_id="broken", test_path=broken))
    inspector = Inspector.load(tiny_bundle)
    floor = inspector.meta.score_floor
    threads = list(run_pairs(inspector, pairs, score_floor=floor, workers=2))
    processes = list(run_pairs(inspector, pairs, score_floor=floor, workers=2, processes=True))
    assert [o.pair.image_id for o in processes] == [p.image_id for p in pairs]
    assert [o.detections for o in processes] == [o.detections for o in threads]
    assert processes[-1].failure is not None and processes[-1].failure.image_id == "broken"
    assert all(o.failure is None for o in processes[:-1])
