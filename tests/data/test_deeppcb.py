"""The DeepPCB layout: annotation parsing, list files, group splits, the submission format and the writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aoi.data.annotations import DatasetError, LabeledBox
from aoi.data.deeppcb import (
    DeepPCBPair,
    format_annotation,
    format_submission,
    parse_annotation_text,
    read_deeppcb,
    split_by_group,
    write_deeppcb_pairs,
)
from aoi.data.images import read_image
from aoi.data.synthetic import make_pair, write_deeppcb_layout
from aoi.schema import Defect, DefectType


def test_parse_annotation_text_accepts_spaces_commas_and_blank_lines() -> None:
    labels = parse_annotation_text("10 20 30 40 1\n\n50,60,70,80,6\n 1 2 3 4 7 \n")
    assert labels == (
        LabeledBox(DefectType.OPEN, (10, 20, 30, 40)),
        LabeledBox(DefectType.PIN_HOLE, (50, 60, 70, 80)),
        LabeledBox(DefectType.SCRATCH, (1, 2, 3, 4)),
    )
    assert parse_annotation_text("") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3 4 1\n1 2 3 4\n", "a.txt:2: expected"),
        ("1 2 3 x 1\n", "a.txt:1: non-numeric"),
        ("1 2 3 4 9\n", "a.txt:1: unknown defect code 9"),
        ("5 2 3 4 1\n", "a.txt:1: degenerate box"),
    ],
)
def test_parse_annotation_text_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_annotation_text(text, "a.txt")


def test_format_annotation_round_trips() -> None:
    labels = (LabeledBox(DefectType.SHORT, (1.0, 2.0, 30.0, 40.0)), LabeledBox(DefectType.SPUR, (5, 6, 7, 8)))
    assert format_annotation(labels) == "1 2 30 40 2\n5 6 7 8 4\n"
    assert parse_annotation_text(format_annotation(labels)) == labels


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deeppcb")
    rng = np.random.default_rng(77)
    write_deeppcb_layout([make_pair(rng, n_defects=(1, 3)) for _ in range(2)], root, "group90000")
    write_deeppcb_layout([make_pair(rng, n_defects=(1, 3))], root, "group90001")
    return root


def test_read_written_layout_with_two_groups(two_groups: Path) -> None:
    pairs = read_deeppcb(two_groups, "list.txt")
    assert [(p.group, p.image_id) for p in pairs] == [
        ("group90000", "90000000"),
        ("group90000", "90000001"),
        ("group90001", "90001000"),
    ]
    for pair in pairs:
        assert pair.test_path.is_file() and pair.template_path.is_file()
        assert pair.test_path.name.endswith("_test.jpg") and pair.template_path.name.endswith("_temp.jpg")
        assert len(pair.labels) >= 1


def test_rewriting_a_group_replaces_its_list_lines(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    write_deeppcb_layout([make_pair(rng, n_defects=(0, 1)) for _ in range(3)], tmp_path, "group7")
    write_deeppcb_layout([make_pair(rng, n_defects=(0, 1))], tmp_path, "group8")
    write_deeppcb_layout([make_pair(rng, n_defects=(0, 1))], tmp_path, "group7")
    lines = (tmp_path / "list.txt").read_text().splitlines()
    assert lines == ["group8/8/8000.jpg group8/8_not/8000.txt", "group7/7/7000.jpg group7/7_not/7000.txt"]
    assert [p.image_id for p in read_deeppcb(tmp_path, "list.txt")] == ["8000", "7000"]


def test_write_deeppcb_pairs_interleaves_groups_and_reads_back(tmp_path: Path) -> None:
    """The one DeepPCB writer (behind the synthetic layout and the reviewed-board export): pairs of several
    groups in one call, listed in order in `trainval.txt` (what `read_deeppcb` reads by default)."""
    rng = np.random.default_rng(9)
    made = [make_pair(rng, n_defects=(1, 2), size_wh=(128, 96)) for _ in range(3)]
    written = [
        DeepPCBPair(group, "0", image_id, p.test, p.template, p.labels)
        for (group, image_id), p in zip([("group_a", "x1"), ("group_b", "x2"), ("group_a", "x3")], made, strict=True)
    ]
    list_path = write_deeppcb_pairs(tmp_path, written, jpeg_quality=100)
    assert list_path == tmp_path / "trainval.txt"
    assert list_path.read_text().splitlines()[1] == "group_b/0/x2.jpg group_b/0_not/x2.txt"
    read = read_deeppcb(tmp_path)
    assert [(p.group, p.image_id) for p in read] == [("group_a", "x1"), ("group_b", "x2"), ("group_a", "x3")]
    for original, loaded in zip(made, read, strict=True):
        assert loaded.test_path == tmp_path / loaded.group / "0" / f"{loaded.image_id}_test.jpg"
        assert loaded.labels == original.labels
        assert np.abs(read_image(loaded.test_path).astype(int) - original.test).max() <= 2
        assert np.abs(read_image(loaded.template_path).astype(int) - original.template).max() <= 2
    # without replace_groups the list names just the new pairs; with it, other groups' lines are kept
    write_deeppcb_pairs(tmp_path, written[1:2])
    assert [p.image_id for p in read_deeppcb(tmp_path)] == ["x2"]
    write_deeppcb_pairs(tmp_path, written[:1], replace_groups=["group_a"])
    assert [p.image_id for p in read_deeppcb(tmp_path)] == ["x2", "x1"]


def test_split_by_group_holds_out_whole_groups(two_groups: Path) -> None:
    pairs = read_deeppcb(two_groups, "list.txt")
    train, val = split_by_group(pairs, ["group90001"])
    assert {p.group for p in train} == {"group90000"} and [p.image_id for p in val] == ["90001000"]
    with pytest.raises(DatasetError, match="group12345"):
        split_by_group(pairs, ["group12345"])


def test_default_list_file_and_errors(two_groups: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="neither trainval.txt nor test.txt"):
        read_deeppcb(two_groups)
    (two_groups / "trainval.txt").write_text((two_groups / "list.txt").read_text())
    try:
        assert len(read_deeppcb(two_groups)) == 3
    finally:
        (two_groups / "trainval.txt").unlink()
    with pytest.raises(DatasetError, match="not a folder"):
        read_deeppcb(tmp_path / "missing")
    with pytest.raises(DatasetError, match="not found"):
        read_deeppcb(two_groups, "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("group90000/90000/90000000.jpg\n")
    with pytest.raises(DatasetError, match="bad.txt:1: expected"):
        read_deeppcb(two_groups, bad)
    bad.write_text("group90000/90000/90000000.jpg group90000/90000_not/missing.txt\n")
    with pytest.raises(DatasetError, match="missing.txt not found"):
        read_deeppcb(two_groups, bad)
    bad.write_text("\n")
    with pytest.raises(DatasetError, match="names no pairs"):
        read_deeppcb(two_groups, bad)


def test_format_submission_orders_by_confidence() -> None:
    defects = [
        Defect(DefectType.OPEN, 0.4, (1.2, 2.6, 10.0, 20.0)),
        Defect(DefectType.PIN_HOLE, 0.9, (5.0, 6.0, 7.0, 8.0)),
    ]
    assert format_submission(defects) == "5,6,7,8,0.90000,pin-hole\n1,3,10,20,0.40000,open\n"
    assert format_submission([]) == ""
