"""Synthetic boards: DeepPCB look, determinism, painter footprints and boxes, misalignment, DeepPCB export."""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.data.annotations import LabeledBox
from aoi.data.deeppcb import read_deeppcb
from aoi.data.images import read_image
from aoi.data.synthetic import (
    PAINTERS,
    NoSuitableSpotError,
    copper_mask,
    generate_template,
    make_pair,
    paint_scratch,
    perturb,
    write_deeppcb_layout,
)
from aoi.schema import DefectType


@pytest.fixture(scope="module")
def template() -> np.ndarray:
    return generate_template(np.random.default_rng(2024))


def _outside(boxes, shape) -> np.ndarray:
    keep = np.ones(shape, bool)
    for b in boxes:
        x1, y1, x2, y2 = (int(round(v)) for v in (b.box_px if isinstance(b, LabeledBox) else b))
        keep[y1:y2, x1:x2] = False
    return keep


def _n_components(binary: np.ndarray) -> int:
    return cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)[0] - 1


def test_template_looks_like_a_binarised_scan(template: np.ndarray) -> None:
    assert template.shape == (640, 640) and template.dtype == np.uint8
    near_extremes = np.mean((template <= 10) | (template >= 245))
    assert near_extremes > 0.9
    assert 0.1 < np.mean(template < 128) < 0.6  # copper is dark in DeepPCB scans
    assert np.any((template > 40) & (template < 215)), "edges should be slightly soft"
    # many separate conductors, so shorts and opens are meaningful
    assert _n_components(template >= 128) >= 15


def test_same_seed_gives_same_pair_and_other_seed_does_not() -> None:
    a = make_pair(np.random.default_rng(7))
    b = make_pair(np.random.default_rng(7))
    c = make_pair(np.random.default_rng(8))
    assert np.array_equal(a.template, b.template) and np.array_equal(a.test, b.test)
    assert a.labels == b.labels
    assert not np.array_equal(a.template, c.template)


@pytest.mark.parametrize("kind", list(DefectType))
def test_painter_changes_pixels_only_inside_its_box(template: np.ndarray, kind: DefectType) -> None:
    before = template.copy()
    out, label = PAINTERS[kind](template, np.random.default_rng(5), ())
    assert np.array_equal(template, before), "the input image must not be modified"
    assert label.type is kind
    diff = out != template
    assert diff.any()
    assert not diff[_outside([label], diff.shape)].any()
    ys, xs = np.nonzero(diff)
    expected = (max(0, xs.min() - 8), max(0, ys.min() - 8), min(640, xs.max() + 9), min(640, ys.max() + 9))
    assert label.box_px == tuple(float(v) for v in expected)


@pytest.mark.parametrize("seed", [1, 2])
def test_painters_do_what_their_names_say(template: np.ndarray, seed: int) -> None:
    copper = copper_mask(template)  # copper is dark, as in DeepPCB
    for kind, painter in PAINTERS.items():
        out, label = painter(template, np.random.default_rng(seed), ())
        x1, y1, x2, y2 = (int(v) for v in label.box_px)
        old, new = copper[y1:y2, x1:x2], copper_mask(out)[y1:y2, x1:x2]
        added, removed = (new & ~old).any(), (old & ~new).any()
        if kind is DefectType.OPEN:
            assert removed and not added and _n_components(new) > _n_components(old)
        elif kind is DefectType.MOUSEBITE:
            assert removed and not added and _n_components(new) == _n_components(old)
        elif kind is DefectType.PIN_HOLE:
            assert removed and not added and _n_components(~new) == _n_components(~old) + 1
        elif kind is DefectType.SHORT:
            assert added and not removed and _n_components(new) < _n_components(old)
        elif kind is DefectType.SPUR:
            assert added and not removed and _n_components(new) == _n_components(old)
        elif kind is DefectType.COPPER:
            assert added and not removed and _n_components(new) == _n_components(old) + 1
        else:
            assert kind is DefectType.SCRATCH and (added or removed)


@pytest.mark.parametrize("kind", list(DefectType))
def test_painters_keep_clear_of_avoided_boxes(template: np.ndarray, kind: DefectType) -> None:
    avoid = [(0.0, 0.0, 640.0, 300.0)]
    out, label = PAINTERS[kind](template, np.random.default_rng(3), avoid)
    assert label.box_px[1] >= 300
    assert np.array_equal(out[:300], template[:300])


def test_painter_with_no_room_raises(template: np.ndarray) -> None:
    with pytest.raises(NoSuitableSpotError):
        paint_scratch(template, np.random.default_rng(0), [(0, 0, 640, 640)])
    with pytest.raises(NoSuitableSpotError):
        PAINTERS[DefectType.OPEN](np.zeros((64, 64), np.uint8), np.random.default_rng(0), ())


def test_scratch_works_on_a_real_looking_jpeg_scan(template: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "real_test.jpg"
    cv2.imwrite(str(path), template, [cv2.IMWRITE_JPEG_QUALITY, 80])
    real = read_image(path)
    avoid = [LabeledBox(DefectType.OPEN, (100.0, 100.0, 300.0, 300.0)), (400.0, 0.0, 640.0, 640.0)]
    for seed in range(5):
        out, label = paint_scratch(real, np.random.default_rng(seed), avoid)
        x1, y1, x2, y2 = label.box_px
        assert x2 <= 400 and not (x1 < 300 and x2 > 100 and y1 < 300 and y2 > 100)
        diff = out != real
        assert not diff[_outside([label], diff.shape)].any()
        # inversion: bright pixels darken and dark pixels brighten along the scratch
        changed = np.abs(out.astype(int) - real.astype(int)) > 200
        assert changed.any()
        assert np.all((real[changed] >= 128) == (out[changed] < 128))
        length_px = max(x2 - x1, y2 - y1) - 16
        assert 30 <= length_px <= 200


def test_pair_differs_from_template_only_inside_boxes() -> None:
    for seed in range(3):
        pair = make_pair(np.random.default_rng(seed), n_defects=(5, 8))
        assert 5 <= len(pair.labels) <= 8
        diff = pair.test != pair.template
        assert not diff[_outside(pair.labels, diff.shape)].any()
        for label in pair.labels:
            x1, y1, x2, y2 = (int(v) for v in label.box_px)
            assert diff[y1:y2, x1:x2].any()
        boxes = [lb.box_px for lb in pair.labels]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), "defects overlap"


def test_pair_uses_only_requested_types_and_zero_defects_works() -> None:
    pair = make_pair(np.random.default_rng(4), defect_types=["short", DefectType.PIN_HOLE], n_defects=(4, 4))
    assert len(pair.labels) == 4 and {lb.type for lb in pair.labels} <= {DefectType.SHORT, DefectType.PIN_HOLE}
    clean = make_pair(np.random.default_rng(4), n_defects=(0, 0))
    assert clean.labels == () and np.array_equal(clean.test, clean.template)


def test_perturb_shift_moves_boxes_exactly() -> None:
    image = np.zeros((200, 240), np.uint8)
    image[50:70, 80:110] = 255
    label = LabeledBox(DefectType.COPPER, (72.0, 42.0, 118.0, 78.0))
    moved, (box,) = perturb(image, [label], shift_xy_px=(5, -3))
    assert box.box_px == (77.0, 39.0, 123.0, 75.0)
    ys, xs = np.nonzero(moved)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (85, 47, 114, 66)


def test_perturb_rotation_keeps_painted_change_inside_moved_boxes() -> None:
    pair = make_pair(np.random.default_rng(9), n_defects=(4, 6))
    args = {"shift_xy_px": (6.5, -4.0), "rotation_deg": 1.3}
    moved_test, labels = perturb(pair.test, pair.labels, **args)
    moved_template, _ = perturb(pair.template, (), **args)
    assert len(labels) == len(pair.labels)
    diff = moved_test != moved_template
    assert diff.any() and not diff[_outside(labels, diff.shape)].any()
    for before, after in zip(pair.labels, labels, strict=True):
        assert after.type == before.type
        bw, aw = before.box_px[2] - before.box_px[0], after.box_px[2] - after.box_px[0]
        assert aw >= bw - 8.5  # grows under rotation unless clipped at the border


def test_perturb_drops_boxes_pushed_off_the_image_and_scales_grey_levels() -> None:
    image = np.full((100, 100), 200, np.uint8)
    label = LabeledBox(DefectType.SPUR, (0.0, 0.0, 5.0, 5.0))
    moved, labels = perturb(image, [label], shift_xy_px=(-8, -8))
    assert labels == ()
    darker, _ = perturb(image, [], brightness=0.5)
    assert int(darker.max()) == 100
    noisy, _ = perturb(image, [], noise_sigma=5.0, rng=np.random.default_rng(0))
    assert 4.0 < float(np.std(noisy.astype(float) - image)) < 6.0
    with pytest.raises(ValueError):
        perturb(image, [], noise_sigma=1.0)


def test_misaligned_pair_is_shifted_and_labels_stay_on_the_image() -> None:
    aligned = make_pair(np.random.default_rng(21))
    shifted = make_pair(np.random.default_rng(21), misalign=True)
    assert np.array_equal(aligned.template, shifted.template)
    assert not np.array_equal(aligned.test, shifted.test)
    for label in shifted.labels:
        x1, y1, x2, y2 = label.box_px
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 640
    centres = [((b.box_px[0] + b.box_px[2]) / 2, (b.box_px[1] + b.box_px[3]) / 2) for b in aligned.labels]
    moved = [((b.box_px[0] + b.box_px[2]) / 2, (b.box_px[1] + b.box_px[3]) / 2) for b in shifted.labels]
    # 8 px shift plus 1.5 degrees about the centre moves nothing by more than ~17 px
    for (ax, ay), (bx, by) in zip(centres, moved, strict=False):
        assert abs(ax - bx) < 20 and abs(ay - by) < 20


def test_deeppcb_layout_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(33)
    pairs = [make_pair(rng, n_defects=(2, 5)) for _ in range(2)]
    list_path = write_deeppcb_layout(pairs, tmp_path)
    assert list_path == tmp_path / "list.txt"
    read = read_deeppcb(tmp_path, "list.txt")
    assert [p.image_id for p in read] == ["90000000", "90000001"]
    for original, loaded in zip(pairs, read, strict=True):
        assert loaded.group == "group90000"
        assert loaded.test_path == tmp_path / "group90000/90000/" / f"{loaded.image_id}_test.jpg"
        assert loaded.labels == original.labels
        assert np.mean(np.abs(read_image(loaded.test_path).astype(int) - original.test)) < 2.0
        assert np.mean(np.abs(read_image(loaded.template_path).astype(int) - original.template)) < 2.0
    scratch_code = (tmp_path / "group90000/90000_not/90000000.txt").read_text()
    assert all(line.split()[-1] in "1234567" for line in scratch_code.splitlines())


# every public name of the old single module, by the module of the package that now defines it
PAINTED_TYPES = [f"paint_{t.value.replace('-', '_')}" for t in DefectType]
OLD_PUBLIC_NAMES_BY_HOME = {
    "rendering": ["BOX_MARGIN_PX", "DEFAULT_SIZE_WH", "PX_PER_MM", "changed_box", "copper_mask", "render_mask"],
    "boards": ["generate_template"],
    "painters": ["PAINTERS", "NoSuitableSpotError", "Painter", "paint_defect", "paint_dust", *PAINTED_TYPES],
    "perturbation": ["perturb"],
    "pairs": ["SyntheticPair", "make_pair", "write_deeppcb_layout"],
}


def test_every_public_name_of_the_old_module_is_importable_from_the_package() -> None:
    """`aoi.data.synthetic` was one module; as a package it still re-exports every public name."""
    import aoi.data.synthetic as synthetic

    expected = [name for names in OLD_PUBLIC_NAMES_BY_HOME.values() for name in names]
    assert sorted(synthetic.__all__) == sorted(expected)
    for home, names in OLD_PUBLIC_NAMES_BY_HOME.items():
        module = importlib.import_module(f"aoi.data.synthetic.{home}")
        for name in names:
            assert getattr(synthetic, name) is getattr(module, name), name  # `perturb` is the function


def test_mousebites_are_deeppcb_sized_notches_that_never_sever_the_trace() -> None:
    """At least 4 px deep (what DeepPCB's bites are, and what a 2 px edge band must show), one piece."""
    from aoi.data.synthetic import paint_mousebite

    rng = np.random.default_rng(3)
    depths = []
    for _ in range(12):
        board = generate_template(rng)
        bitten, _label = paint_mousebite(board, rng)
        before, after = copper_mask(board), copper_mask(bitten)
        inside = cv2.distanceTransform(before.astype(np.uint8), cv2.DIST_L2, 5)
        depths.append(float(inside[before & ~after].max()))
        assert _n_components(after) == _n_components(before)
    assert min(depths) >= 3.9, depths
