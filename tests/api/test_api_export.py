"""The learning loop: reviewed defects exported and read back by the dataset readers."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.support.service import FakeInspector, Service, paint_board, with_short

from aoi.api.line import DatabaseTemplateProvider, MeteredSink
from aoi.api.metrics import ServiceMetrics
from aoi.data.coco import read_coco
from aoi.data.deeppcb import read_deeppcb
from aoi.data.images import read_image
from aoi.data.yolo import read_yolo
from aoi.pipeline import DemoSource, LinePipeline
from aoi.pipeline.sources import synthetic_pair
from aoi.schema import DefectType
from aoi.storage.export import ExportError, collect_reviewed, export_reviewed
from aoi.storage.inspections import InspectionFilter, InspectionRepository


def _reviewed_line(service: Service) -> tuple[str, dict]:
    """Three inspections: fully reviewed (confirm + false call + reclassify), partly reviewed, unreviewed."""
    product = service.add_product()
    template = paint_board()
    test = with_short(template, (300, 300, 316, 312))
    test[500:520, 40:60] = 255
    test[100:110, 560:580] = 255
    full = service.inspect(test, product["id"], name="full.png")
    partial = service.inspect(test, product["id"], name="partial.png")
    service.inspect(test, product["id"], name="unreviewed.png")
    decisions = [{"decision": "confirm"}, {"decision": "false_call"}, {"decision": "reclassify", "type": "spur"}]
    for defect, decision in zip(full["defects"], decisions, strict=True):
        r = service.client.post(f"/api/v1/defects/{defect['id']}/review", json=decision, headers=service.auth)
        assert r.status_code == 200
    service.client.post(
        f"/api/v1/defects/{partial['defects'][0]['id']}/review", json={"decision": "confirm"}, headers=service.auth
    )
    expected = {
        (DefectType(full["defects"][0]["type"]), tuple(int(v) for v in full["defects"][0]["box_px"])),
        (DefectType.SPUR, tuple(int(v) for v in full["defects"][2]["box_px"])),
    }
    return full["id"], {"labels": expected, "test": test, "template": template}


def _labels(pair) -> set:
    return {(b.type, tuple(int(round(v)) for v in b.box_px)) for b in pair.labels}


@pytest.mark.parametrize("fmt", ["deeppcb", "yolo", "coco"])
def test_export_round_trip(service: Service, tmp_path: Path, fmt: str) -> None:
    inspection_id, expected = _reviewed_line(service)
    report = export_reviewed(service.storage, tmp_path / fmt, fmt)
    assert (report.pairs, report.boxes, report.skipped_partially_reviewed) == (1, 2, 1)
    if fmt == "deeppcb":
        pairs = read_deeppcb(tmp_path / fmt)
    elif fmt == "yolo":
        pairs = read_yolo(tmp_path / fmt)
    else:
        pairs = read_coco(tmp_path / fmt / "annotations.json")
    [pair] = pairs
    assert pair.image_id == inspection_id
    assert _labels(pair) == expected["labels"]
    test, template = read_image(pair.test_path), read_image(pair.template_path)
    tolerance = 2 if fmt == "deeppcb" else 0  # DeepPCB names JPEG files; written at quality 100
    assert abs(test.astype(int) - expected["test"]).max() <= tolerance
    assert abs(template.astype(int) - expected["template"]).max() <= tolerance


def test_demo_line_boards_keep_their_own_template_and_are_exported(service: Service, tmp_path: Path) -> None:
    """The demo line's boards bring their own template pixels: each is stored with the board (the `demo`
    product only labels it), so a fully reviewed demo board feeds the learning loop."""
    demo = service.add_product("demo")  # its recipe template is not the one the boards were inspected against
    produced: list[np.ndarray] = []

    def recorded_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        template, test = synthetic_pair(rng)
        produced.append(template)
        return template, test

    source = DemoSource("demo", rate_hz=1000.0, seed=6, limit=3, pair_factory=recorded_pair)
    sink = MeteredSink(service.storage.sink(), ServiceMetrics())
    line = LinePipeline(FakeInspector(), sink, DatabaseTemplateProvider(service.storage))
    line.add_source(source)
    with line:
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and sum(line.metrics()["counts"][k] for k in ("stored", "failed", "store_errors")) < 3
        ):
            time.sleep(0.02)
    assert line.metrics()["counts"]["stored"] == 3
    with service.storage.db.session() as session:
        boards, total = InspectionRepository(session).page(InspectionFilter(), 10, 0)
    assert total == 3 and len(produced) == 3
    for board in boards:
        index = int(board.result.image_id.rsplit("-", 1)[1])
        assert board.source == "demo" and board.product_id == demo["id"]
        assert board.template_path is not None and not board.template_path.startswith("templates/")
        assert np.array_equal(service.storage.images.load(board.template_path), produced[index])
    with_defects = {b.id: b for b in boards if b.result.defects}
    assert with_defects  # seed 6: two boards with defects, one good board
    for board in with_defects.values():
        for defect in board.result.defects:
            r = service.client.post(
                f"/api/v1/defects/{defect.id}/review", json={"decision": "confirm"}, headers=service.auth
            )
            assert r.status_code == 200
    pairs, skipped = collect_reviewed(service.storage)
    assert skipped == 0 and {p.inspection.id for p in pairs} == set(with_defects)
    for pair in pairs:
        index = int(pair.inspection.result.image_id.rsplit("-", 1)[1])
        assert np.array_equal(pair.template, produced[index])
        assert len(pair.labels) == len(with_defects[pair.inspection.id].result.defects)
    report = export_reviewed(service.storage, tmp_path / "demo-export", "yolo")
    assert (report.pairs, report.skipped_partially_reviewed) == (len(with_defects), 0)
    exported = {pair.image_id: pair for pair in read_yolo(tmp_path / "demo-export")}
    assert set(exported) == set(with_defects)
    for inspection_id, pair in exported.items():
        index = int(with_defects[inspection_id].result.image_id.rsplit("-", 1)[1])
        assert np.array_equal(read_image(pair.template_path), produced[index])


def test_export_endpoint_zip(service: Service, tmp_path: Path) -> None:
    inspection_id, expected = _reviewed_line(service)
    r = service.client.get("/api/v1/export", params={"format": "deeppcb"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["x-export-pairs"] == "1"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path / "unzipped")
    [pair] = read_deeppcb(tmp_path / "unzipped")
    assert _labels(pair) == expected["labels"]
    r = service.client.get("/api/v1/export", params={"format": "voc"})
    assert r.status_code == 422 and "format" in r.json()["detail"]


def test_export_refuses_a_non_empty_folder_and_unknown_format(service: Service, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"):
        export_reviewed(service.storage, tmp_path / "busy", "deeppcb")
    with pytest.raises(ExportError, match="unknown export format"):
        export_reviewed(service.storage, tmp_path / "new", "voc")
