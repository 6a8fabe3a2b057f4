"""COCO export/import of template/test pairs: round trip, image roots and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aoi.data.annotations import AnnotatedPair, DatasetError
from aoi.data.coco import read_coco, write_coco
from aoi.schema import DefectType


def _assert_same(original: list[AnnotatedPair], loaded: list[AnnotatedPair]) -> None:
    assert [p.image_id for p in loaded] == [p.image_id for p in original]
    for a, b in zip(original, loaded, strict=True):
        assert b.group == a.group
        assert [lb.type for lb in b.labels] == [lb.type for lb in a.labels]
        for la, lb in zip(a.labels, b.labels, strict=True):
            assert all(abs(u - v) <= 1.0 for u, v in zip(la.box_px, lb.box_px, strict=True))


def test_round_trip_in_place(pairs_on_disk: list[AnnotatedPair], tmp_path: Path) -> None:
    json_path = write_coco(pairs_on_disk, tmp_path / "ann.json")
    document = json.loads(json_path.read_text())
    first = document["images"][0]
    assert first["file_name"] == "source/board0_test.png"
    assert first["template_file_name"] == "source/board0_temp.png"
    assert (first["width"], first["height"]) == (256, 192)
    assert {c["name"] for c in document["categories"]} == {t.value for t in DefectType}
    loaded = read_coco(json_path)
    _assert_same(pairs_on_disk, loaded)
    assert loaded[0].test_path == tmp_path / "source/board0_test.png"


def test_round_trip_with_copied_images(pairs_on_disk: list[AnnotatedPair], tmp_path: Path) -> None:
    json_path = write_coco(pairs_on_disk, tmp_path / "out" / "ann.json", copy_images_to=tmp_path / "out" / "img")
    loaded = read_coco(json_path)
    _assert_same(pairs_on_disk, loaded)
    assert loaded[1].test_path == tmp_path / "out/img/board1_test.png"
    assert loaded[1].template_path.read_bytes() == pairs_on_disk[1].template_path.read_bytes()


def test_image_root_overrides_the_json_folder(pairs_on_disk: list[AnnotatedPair], tmp_path: Path) -> None:
    json_path = write_coco(pairs_on_disk, tmp_path / "ann.json")
    moved = tmp_path / "elsewhere" / "ann.json"
    moved.parent.mkdir()
    moved.write_text(json_path.read_text())
    with pytest.raises(DatasetError, match=r"images\[0\]: image file .* not found"):
        read_coco(moved)
    _assert_same(pairs_on_disk, read_coco(moved, image_root=tmp_path))


def _edit(json_path: Path, change: Any) -> None:
    document = json.loads(json_path.read_text())
    change(document)
    json_path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["images"][0].pop("template_file_name"), r"images\[0\]: missing 'template_file_name'"),
        (lambda d: d["images"][1].update(width=0), r"images\[1\]: 'width' and 'height'"),
        (lambda d: d["annotations"][0].update(category_id=42), r"annotations\[0\]: category_id 42"),
        (lambda d: d["annotations"][0].update(image_id=999), r"annotations\[0\]: image_id 999"),
        (lambda d: d["annotations"][0].update(bbox=[250, 10, 30, 10]), r"annotations\[0\]: bbox .* outside"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\]: 'bbox' must be 4 numbers"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), r"annotations\[0\]: 'bbox' needs"),
        (lambda d: d["categories"][0].update(name="dust"), r"categories\[0\]: unknown defect type"),
        (lambda d: d.pop("annotations"), "'annotations' must be a list"),
    ],
)
def test_malformed_entries_are_named(
    pairs_on_disk: list[AnnotatedPair], tmp_path: Path, change: Any, message: str
) -> None:
    json_path = write_coco(pairs_on_disk, tmp_path / "ann.json")
    _edit(json_path, change)
    with pytest.raises(DatasetError, match=message):
        read_coco(json_path)


def test_unreadable_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json: not valid JSON"):
        read_coco(bad)
    with pytest.raises(DatasetError, match="not found"):
        read_coco(tmp_path / "missing.json")


def test_write_refuses_missing_images(pairs_on_disk: list[AnnotatedPair], tmp_path: Path) -> None:
    pairs_on_disk[0].template_path.unlink()
    with pytest.raises(DatasetError, match="template .* not found"):
        write_coco(pairs_on_disk, tmp_path / "ann.json")
