"""YOLO export/import of template/test pairs: round trip and clear errors on malformed folders."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.data.annotations import AnnotatedPair, DatasetError, LabeledBox
from aoi.data.images import read_image
from aoi.data.yolo import read_yolo, write_yolo
from aoi.schema import DefectType


def _close(a: AnnotatedPair, b: AnnotatedPair) -> bool:
    if [lb.type for lb in a.labels] != [lb.type for lb in b.labels]:
        return False
    return all(
        abs(u - v) <= 1.0
        for la, lb in zip(a.labels, b.labels, strict=True)
        for u, v in zip(la.box_px, lb.box_px, strict=True)
    )


def test_round_trip_keeps_boxes_types_and_pixels(pairs_on_disk: list[AnnotatedPair], tmp_path: Path) -> None:
    assert sum(len(p.labels) for p in pairs_on_disk) > 0
    classes_path = write_yolo(pairs_on_disk, tmp_path / "yolo")
    assert classes_path.read_text().split() == [t.value for t in DefectType]
    read = read_yolo(tmp_path / "yolo")
    assert [p.image_id for p in read] == [p.image_id for p in pairs_on_disk]
    for original, loaded in zip(pairs_on_disk, read, strict=True):
        assert _close(original, loaded)
        assert loaded.template_path == tmp_path / "yolo" / "templates" / f"{loaded.image_id}.png"
        assert np.array_equal(read_image(loaded.test_path), read_image(original.test_path))
        assert np.array_equal(read_image(loaded.template_path), read_image(original.template_path))


def test_label_lines_are_normalised_centre_boxes(tmp_path: Path) -> None:
    image = np.zeros((100, 200), np.uint8)
    cv2.imwrite(str(tmp_path / "t.jpg"), image)
    cv2.imwrite(str(tmp_path / "g.jpg"), image)
    pair = AnnotatedPair("b", tmp_path / "t.jpg", tmp_path / "g.jpg", (LabeledBox(DefectType.SHORT, (20, 10, 60, 50)),))
    write_yolo([pair], tmp_path / "out")
    assert (tmp_path / "out/labels/b.txt").read_text() == "1 0.200000 0.300000 0.200000 0.400000\n"
    assert (tmp_path / "out/images/b.png").is_file()  # JPEG source re-encoded as PNG


@pytest.fixture
def yolo_root(pairs_on_disk: list[AnnotatedPair], tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    write_yolo(pairs_on_disk, root)
    (root / "labels" / "board0.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    return root


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("0 0.5 0.5 0.1\n", "board0.txt:1: expected"),
        ("0 0.5 0.5 0.1 0.1\nx 0.5 0.5 0.1 0.1\n", "board0.txt:2: non-numeric"),
        ("9 0.5 0.5 0.1 0.1\n", "board0.txt:1: class index 9"),
        ("0 0.95 0.5 0.2 0.1\n", "board0.txt:1: box"),
        ("0 0.5 0.5 0 0.1\n", "board0.txt:1: box needs"),
    ],
)
def test_malformed_label_lines_name_file_and_line(yolo_root: Path, content: str, message: str) -> None:
    (yolo_root / "labels" / "board0.txt").write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_yolo(yolo_root)


def test_unknown_class_name_is_refused(yolo_root: Path) -> None:
    (yolo_root / "classes.txt").write_text("open\nsolder-bridge\n")
    with pytest.raises(DatasetError, match=r"classes.txt:2: unknown defect type"):
        read_yolo(yolo_root)


def test_missing_files_are_refused(yolo_root: Path) -> None:
    (yolo_root / "labels" / "board1.txt").unlink()
    with pytest.raises(DatasetError, match="board1.txt not found"):
        read_yolo(yolo_root)
    assert read_yolo(yolo_root, missing_label_ok=True)[1].labels == ()
    (yolo_root / "templates" / "board2.png").unlink()
    with pytest.raises(DatasetError, match="no template"):
        read_yolo(yolo_root, missing_label_ok=True)
    (yolo_root / "classes.txt").unlink()
    with pytest.raises(DatasetError, match="classes file not found"):
        read_yolo(yolo_root)
    with pytest.raises(DatasetError, match="not a folder"):
        read_yolo(yolo_root / "nowhere")


def test_corrupt_image_is_a_dataset_error(yolo_root: Path) -> None:
    (yolo_root / "images" / "board0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="board0.png"):
        read_yolo(yolo_root)


def test_write_refuses_bad_ids_and_boxes_off_the_image(pairs_on_disk: list[AnnotatedPair], tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="duplicate"):
        write_yolo([pairs_on_disk[0], pairs_on_disk[0]], tmp_path / "a")
    with pytest.raises(DatasetError, match="file name"):
        write_yolo([replace(pairs_on_disk[0], image_id="../x")], tmp_path / "b")
    far = replace(pairs_on_disk[0], labels=(LabeledBox(DefectType.OPEN, (10, 10, 900, 20)),))
    with pytest.raises(DatasetError, match="outside"):
        write_yolo([far], tmp_path / "c")
