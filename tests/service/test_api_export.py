"""The learning loop: reviewed defects exported and read back by the dataset readers."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from tests.service.conftest import Service, paint_board, with_short

from aoi.data.coco import read_coco
from aoi.data.deeppcb import read_deeppcb
from aoi.data.images import read_image
from aoi.data.yolo import read_yolo
from aoi.schema import DefectType
from aoi.storage.export import ExportError, export_reviewed


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
