"""Fine-pitch rules: connectivity check, the no-veto rule, the learnt edge band, periodic registration.

Each test builds a small substrate-like pattern (3 px lines and spaces) and fails on the engine as it
was before these rules: a fixed 2 px band erased everything below and registration trusted the
first correlation peak.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.detection.candidates import CandidateConfig, ForcedBy, find_candidates
from aoi.detection.inspector import FORCED_MIN_CONFIDENCE, Inspector, analyse_pair
from aoi.detection.tolerance import learn_capture_tolerance
from aoi.detection.topology import connectivity_changes
from aoi.registration import binarise, register
from aoi.schema import DefectType

LINE_PX, SPACE_PX, PITCH_PX = 3, 3, 6


def _bundle_of_lines(size: int = 240) -> np.ndarray:
    """Dark copper lines 3 px wide, 3 px apart, on bright substrate (DeepPCB polarity), soft-edged."""
    img = np.full((size, size), 255, np.uint8)
    for x in range(30, size - 30, PITCH_PX):
        img[20 : size - 20, x : x + LINE_PX] = 0
    return cv2.GaussianBlur(img, (3, 3), 0.5)


def _candidates(test: np.ndarray, template: np.ndarray, config: CandidateConfig):
    valid = np.ones_like(test)
    return find_candidates(test, template, binarise(test), binarise(template), valid, config)


def _covers(boxes: np.ndarray, x: float, y: float, slack: float = 3.0) -> bool:
    return any(b[0] - slack <= x <= b[2] + slack and b[1] - slack <= y <= b[3] + slack for b in boxes)


def test_2px_cut_on_a_3px_line_is_an_open():
    template = _bundle_of_lines()
    test = template.copy()
    test[119:121, 60:63] = 255  # a 2 px cut clean through a 3 px line (1 px closes under the optics blur)
    changes, _ = connectivity_changes(1 - binarise(test), 1 - binarise(template), np.ones_like(test))
    assert [c.kind for c in changes] == [DefectType.OPEN]
    old = _candidates(test, template, CandidateConfig(tolerance_px=2, topology=False))
    new = _candidates(test, template, CandidateConfig(tolerance_px=2, topology=True))
    assert not _covers(old.boxes_xyxy, 61, 120)  # the 2 px band hides it entirely
    assert _covers(new.boxes_xyxy, 61, 120)
    assert ForcedBy.OPEN in new.forced.tolist()


def test_one_pixel_bridge_between_3px_lines_is_a_short():
    template = _bundle_of_lines()
    test = template.copy()
    test[100, 63:66] = 0  # a one-pixel-wide bridge across a 3 px space
    changes, _ = connectivity_changes(1 - binarise(test), 1 - binarise(template), np.ones_like(test))
    assert [c.kind for c in changes] == [DefectType.SHORT]
    new = _candidates(test, template, CandidateConfig(tolerance_px=2, topology=True))
    assert _covers(new.boxes_xyxy, 64, 100)
    assert ForcedBy.SHORT in new.forced.tolist()


def test_clean_and_jittered_captures_change_no_connectivity():
    template = _bundle_of_lines()
    rng = np.random.default_rng(3)
    shifted = cv2.warpAffine(template, np.float32([[1, 0, 0.4], [0, 1, -0.3]]), template.shape[::-1],
                             borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    noisy = np.clip(shifted + rng.normal(0, 6, shifted.shape), 0, 255).astype(np.uint8)
    changes, _ = connectivity_changes(1 - binarise(noisy), 1 - binarise(template), np.ones_like(template))
    assert changes == []


def _always_background_bundle(tmp_path: Path) -> Path:
    """A bundle whose network calls every crop background: what a classifier that vetoes looks like."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    n_out = 8
    logits_bias = np.array([[12.0] + [0.0] * (n_out - 1)], np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["crops"], ["m"], keepdims=0, axes=[1, 2, 3]),
        helper.make_node("Unsqueeze", ["m", "ax"], ["m1"]),
        helper.make_node("Mul", ["m1", "zeros_c"], ["z_c"]),
        helper.make_node("Add", ["z_c", "bias_c"], ["logits"]),
        helper.make_node("Mul", ["m1", "zeros_b"], ["z_b"]),
        helper.make_node("Add", ["z_b", "bias_b"], ["boxes"]),
    ]
    inits = [
        helper.make_tensor("ax", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zeros_c", TensorProto.FLOAT, [1, n_out], [0.0] * n_out),
        helper.make_tensor("bias_c", TensorProto.FLOAT, [1, n_out], logits_bias.ravel().tolist()),
        helper.make_tensor("zeros_b", TensorProto.FLOAT, [1, 4], [0.0] * 4),
        helper.make_tensor("bias_b", TensorProto.FLOAT, [1, 4], [0.4, 0.4, 0.6, 0.6]),
    ]
    graph = helper.make_graph(
        nodes,
        "background",
        [helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["n", 4, 48, 48])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", n_out]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["n", 4]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = tmp_path / "background-bundle"
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))
    meta = json.loads((Path(__file__).resolve().parents[2] / "src/aoi/models/default/bundle.json").read_text())
    meta.update(version="always-background", threshold=0.5, test_time_flips=1, scratch_min_probability=0.0)
    meta["candidates"].update(topology=True, gross_area_px=60)
    (folder / "bundle.json").write_text(json.dumps(meta))
    return folder


def test_no_veto_the_classifier_may_not_drop_a_connectivity_change_or_a_gross_difference(tmp_path: Path):
    inspector = Inspector.load(_always_background_bundle(tmp_path))
    template = _bundle_of_lines()
    test = template.copy()
    test[119:121, 60:63] = 255  # hairline open
    test[60, 63:66] = 0  # one-pixel short
    test[180:192, 150:162] = 255 - test[180:192, 150:162]  # a gross 12 x 12 disagreement
    result = inspector.inspect(test, template, image_id="no-veto")
    by_place = {(round((d.box_px[0] + d.box_px[2]) / 2), round((d.box_px[1] + d.box_px[3]) / 2)): d
                for d in result.defects}  # fmt: skip

    def near(x: float, y: float):
        return [d for (cx, cy), d in by_place.items() if abs(cx - x) <= 6 and abs(cy - y) <= 6]

    assert [d.type for d in near(61, 120)] == [DefectType.OPEN]
    assert [d.type for d in near(64, 60)] == [DefectType.SHORT]
    assert len(near(156, 186)) == 1
    assert all(d.confidence >= FORCED_MIN_CONFIDENCE for d in result.defects)
    assert result.verdict.value == "fail"
    # The same network with the rules off: everything is background, the board passes. That was the veto.
    plain = tmp_path / "plain"
    shutil.copytree(inspector.bundle.path, plain)
    meta = json.loads((plain / "bundle.json").read_text())
    meta["candidates"].update(topology=False, gross_area_px=0)
    (plain / "bundle.json").write_text(json.dumps(meta))
    assert Inspector.load(plain).inspect(test, template, image_id="veto").defects == ()


def test_edge_band_learnt_from_good_captures_keeps_a_2px_bite_on_a_3px_line():
    template = _bundle_of_lines()
    rng = np.random.default_rng(5)
    good = []
    for _ in range(3):  # good captures: sub-pixel shift, a little blur and noise
        m = np.float32([[1, 0, rng.uniform(-0.3, 0.3)], [0, 1, rng.uniform(-0.3, 0.3)]])
        g = cv2.warpAffine(template, m, template.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
        good.append((np.clip(g + rng.normal(0, 4, g.shape), 0, 255).astype(np.uint8), template, ()))
    learnt = learn_capture_tolerance(good, metric="euclidean")
    assert learnt.tolerance_px < 2.0  # the fixed 2 px band is wider than this capture's jitter
    test = template.copy()
    test[100:104, 90:92] = 255  # a bite 2 px deep, 4 px long, into the 3 px line at x = 90..92
    for capture, _, _ in good:  # and the learnt band makes no candidate on the good captures themselves
        assert len(_candidates(capture, template, CandidateConfig(tolerance_px=learnt.tolerance_px,
                                                                  tolerance_metric="euclidean",
                                                                  min_area_px=2)).boxes_xyxy) == 0  # fmt: skip
    learnt_cfg = CandidateConfig(tolerance_px=learnt.tolerance_px, tolerance_metric="euclidean", min_area_px=2)
    assert _covers(_candidates(test, template, learnt_cfg).boxes_xyxy, 91, 102)
    fixed_cfg = CandidateConfig(tolerance_px=2, min_area_px=2)
    assert not _covers(_candidates(test, template, fixed_cfg).boxes_xyxy, 91, 102)


def _periodic_board(period: int, seed: int) -> np.ndarray:
    """A bundle of parallel lines repeating every `period` px, with a few pads that break the symmetry."""
    rng = np.random.default_rng(seed)
    img = np.full((640, 640), 255, np.uint8)
    for x in range(8, 632, period):
        cv2.line(img, (x, 8), (x, 631), 0, period // 2)
    for _ in range(4):
        x, y = rng.integers(0, 620, 2)
        cv2.circle(img, (int(x), int(y)), 6, 0, -1)
    return img


@pytest.mark.parametrize("period,seed,shift", [(5, 0, (2, 1)), (5, 0, (3, -2)), (5, 2, (-4, 3)), (8, 2, (2, 1))])
def test_periodic_layout_does_not_fool_registration(period, seed, shift):
    template = _periodic_board(period, seed)
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    test = cv2.warpAffine(template, m, (640, 640), borderMode=cv2.BORDER_REPLICATE)
    reg = register(test, template)
    assert abs(reg.dx_px - shift[0]) < 0.5 and abs(reg.dy_px - shift[1]) < 0.5


def test_analyse_pair_on_a_periodic_board_finds_no_false_candidates():
    template = _periodic_board(6, 1)
    test = cv2.warpAffine(template, np.float32([[1, 0, 3], [0, 1, 2]]), (640, 640), borderMode=cv2.BORDER_REPLICATE)
    assert len(analyse_pair(test, template, candidate_config=CandidateConfig(topology=True)).candidates.boxes_xyxy) == 0


def test_tolerance_cli_learns_from_good_captures_and_refuses_bad_input(tmp_path: Path):
    from typer.testing import CliRunner

    from aoi.cli import app

    template = _bundle_of_lines()
    cv2.imwrite(str(tmp_path / "temp.png"), template)
    shifted = cv2.warpAffine(template, np.float32([[1, 0, 0.3], [0, 1, 0]]), template.shape[::-1],
                             borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    cv2.imwrite(str(tmp_path / "good.png"), shifted)
    result = CliRunner().invoke(app, ["tolerance", str(tmp_path / "good.png"), "-t", str(tmp_path / "temp.png")])
    assert result.exit_code == 0, result.output
    learnt = json.loads(result.stdout.strip().splitlines()[-1])["candidates"]
    assert 0 <= learnt["tolerance_px"] < 2 and learnt["tolerance_metric"] == "euclidean"
    (tmp_path / "broken.png").write_bytes(b"not an image")
    bad = CliRunner().invoke(app, ["tolerance", str(tmp_path / "broken.png"), "-t", str(tmp_path / "temp.png")])
    assert bad.exit_code == 2
    wrong_metric = CliRunner().invoke(
        app, ["tolerance", str(tmp_path / "good.png"), "-t", str(tmp_path / "temp.png"), "--metric", "manhattan"]
    )
    assert wrong_metric.exit_code == 2
    fine = CliRunner().invoke(
        app, ["tolerance", str(tmp_path / "good.png"), "-t", str(tmp_path / "temp.png"), "--fine-pitch"]
    )
    assert fine.exit_code == 0, fine.output
    setup = json.loads(fine.stdout.strip().splitlines()[-1])
    assert setup["registration"] == {"subpixel": True}
    assert setup["candidates"]["topology"] is True and setup["candidates"]["grey_threshold"] >= 0.2


def test_subpixel_registration_leaves_no_residue_on_a_shifted_fine_pitch_capture():
    """A substrate capture shifted by a fraction of a pixel and rotated 0.15 degrees: whole-pixel
    registration leaves a half-pixel residue along every 3-6 px line, which a 1 px band reports as
    defects; the sub-pixel fit recovers the shift and leaves nothing."""
    from aoi.data.substrate import generate_design
    from aoi.data.synthetic import perturb, render_mask
    from aoi.registration import RegistrationConfig

    design = generate_design(np.random.default_rng(21))
    template = render_mask(design.copper)
    blurred = cv2.GaussianBlur(template, (0, 0), 0.6)
    test, _ = perturb(blurred, (), (1.45, -2.5), 0.15, 1.0, 2.0, np.random.default_rng(1))
    band = CandidateConfig(tolerance_px=1.0, tolerance_metric="euclidean", topology=True, min_area_px=1)

    fine = analyse_pair(test, template, RegistrationConfig(subpixel=True), band)
    centre = np.array([(template.shape[1] - 1) / 2, (template.shape[0] - 1) / 2, 1.0])
    # the capture's centre lies at the template's centre minus the shift (rotation is about the centre)
    assert fine.registration.matrix @ centre == pytest.approx(centre[:2] - (1.45, -2.5), abs=0.15)
    assert fine.registration.rotation_deg == pytest.approx(0.15, abs=0.05)
    assert len(fine.candidates.boxes_xyxy) == 0
    whole = analyse_pair(test, template, RegistrationConfig(subpixel=False), band)
    assert len(whole.candidates.boxes_xyxy) > 10


def test_fine_pitch_setup_learnt_from_good_captures_sees_shallow_defects_and_forces_nothing_on_clean_ones():
    """A bite or a pin-hole of a pixel or two on 3-6 px lines: the grey-level check (template blurred
    like the optics, threshold above what the good captures make) sees what binarisation loses."""
    from aoi.data.substrate import capture, generate_design
    from aoi.detection.tolerance import learn_fine_pitch_setup

    rng = np.random.default_rng(8)
    design = generate_design(rng)
    good = [capture(design, rng, None, shifted=i % 2 == 1) for i in range(3)]
    setup = learn_fine_pitch_setup([(g.test, g.template, ()) for g in good], CandidateConfig(group_px=1))
    assert setup.registration.subpixel and setup.candidates.topology
    assert setup.candidates.tolerance_px <= 1.0 and setup.candidates.tolerance_metric == "euclidean"
    assert 0.2 <= setup.candidates.grey_threshold < 0.5 and 0.3 <= setup.candidates.template_blur_px <= 0.9
    for k in range(6):
        shifted = k % 2 == 1
        clean = capture(design, rng, None, shifted=shifted)
        residue = analyse_pair(clean.test, clean.template, setup.registration, setup.candidates).candidates
        assert len(residue.boxes_xyxy) <= 2 and not residue.forced.any()
        for kind in (DefectType.MOUSEBITE, DefectType.PIN_HOLE, DefectType.SPUR):
            cap = capture(design, rng, kind, shifted=shifted)
            found = analyse_pair(cap.test, cap.template, setup.registration, setup.candidates).candidates.boxes_xyxy
            x1, y1, x2, y2 = cap.labels[0].box_px
            assert _covers(found, (x1 + x2) / 2, (y1 + y2) / 2, slack=4), (kind, k)


def _learnt_substrate_setup(seed: int):
    from aoi.data.substrate import capture, generate_design
    from aoi.detection.tolerance import learn_fine_pitch_setup

    rng = np.random.default_rng(seed)
    design = generate_design(rng)
    good = [capture(design, rng, None, shifted=i % 2 == 1) for i in range(3)]
    return design, rng, learn_fine_pitch_setup([(g.test, g.template, ()) for g in good], CandidateConfig(group_px=1))


@pytest.mark.parametrize("gain", [0.85, 1.15])
def test_a_lamp_or_sensor_gain_change_is_not_a_defect(gain: float):
    """The grey-level check maps the template onto the capture's grey levels first: a clean capture
    taken 15% darker or brighter than the good ones the setup learnt from makes no candidate."""
    from aoi.data.synthetic import perturb, render_mask

    design, rng, setup = _learnt_substrate_setup(11)
    template = render_mask(design.copper)
    test, _ = perturb(cv2.GaussianBlur(template, (0, 0), 0.6), (), (1.3, -0.7), 0.1, gain, 3.0, rng)
    found = analyse_pair(test, template, setup.registration, setup.candidates).candidates
    assert len(found.boxes_xyxy) == 0


def test_a_strong_grey_disagreement_is_forced_however_small():
    """A bite of a pixel or two on a 3-6 px line changes few pixels but at full contrast, which good
    captures never do: it is forced (reported whatever the classifier says); clean captures force nothing."""
    from aoi.data.substrate import capture

    design, rng, setup = _learnt_substrate_setup(12)
    assert setup.candidates.gross_grey_mass > 0
    for k in range(8):
        cap = capture(design, rng, DefectType.MOUSEBITE, shifted=k % 2 == 1)
        found = analyse_pair(cap.test, cap.template, setup.registration, setup.candidates).candidates
        x1, y1, x2, y2 = cap.labels[0].box_px
        on_bite = [i for i, b in enumerate(found.boxes_xyxy) if _covers(b[None], (x1 + x2) / 2, (y1 + y2) / 2, 4)]
        assert on_bite and any(found.forced[i] == ForcedBy.GROSS for i in on_bite), k
        clean = capture(design, rng, None, shifted=k % 2 == 1)
        assert not analyse_pair(
            clean.test, clean.template, setup.registration, setup.candidates
        ).candidates.forced.any()


def test_a_cut_inside_a_long_jittery_candidate_gets_a_window_of_its_own() -> None:
    """A hairline cut across a long trace whose edges jitter beyond the band: the jitter is grouped along
    the whole trace, but the cut is reported in a window of its own, near its pixels."""
    import numpy as np

    from aoi.detection.candidates import CandidateConfig, ForcedBy
    from aoi.detection.inspector import analyse_pair

    template = np.full((128, 400), 230, np.uint8)
    template[50:62, 10:390] = 20  # a 12 px trace, copper dark
    test = template.copy()
    for rows in (slice(46, 50), slice(62, 66)):  # 4 px slivers of extra copper along both edges, either
        test[rows, 20:196] = 20  # side of the cut: thin, grown along the trace, so grouped with the cut
        test[rows, 206:380] = 20  # into one long candidate
    test[50:62, 200:202] = 230  # a 2 px cut straight across the trace
    config = CandidateConfig(tolerance_px=2, topology=True, thin_group_px=3)
    cands = analyse_pair(test, template, candidate_config=config).candidates
    forced = [tuple(b) for b, f in zip(cands.boxes_xyxy, cands.forced, strict=True) if f == ForcedBy.OPEN]
    assert len(forced) == 1
    x1, y1, x2, y2 = forced[0]
    assert x1 >= 190 and x2 <= 212 and x2 - x1 <= 20  # the cut, not the 360 px slivers
    assert any(b[2] - b[0] > 300 and f == ForcedBy.NONE for b, f in zip(cands.boxes_xyxy, cands.forced, strict=True))
    from dataclasses import replace

    whole = analyse_pair(test, template, candidate_config=replace(config, change_window_ratio=0)).candidates
    assert max(b[2] - b[0] for b, f in zip(whole.boxes_xyxy, whole.forced, strict=True) if f == ForcedBy.OPEN) > 300
