import cv2
import numpy as np

from aoi.data.synthetic import generate_template, paint_defect
from aoi.detection.candidates import CROP_PX, N_CHANNELS
from aoi.detection.inspector import analyse_pair
from aoi.schema import DefectType


def _centre(box):
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def test_identical_pair_has_no_candidates():
    t = generate_template(np.random.default_rng(10))
    assert len(analyse_pair(t, t.copy()).candidates.boxes_xyxy) == 0


def test_edge_noise_is_not_a_candidate():
    t = generate_template(np.random.default_rng(11))
    # Subpixel blur and JPEG ringing move edges by about a pixel: not a defect.
    jpeg = cv2.imdecode(cv2.imencode(".jpg", cv2.GaussianBlur(t, (3, 3), 0), [cv2.IMWRITE_JPEG_QUALITY, 70])[1], 0)
    assert len(analyse_pair(jpeg, t).candidates.boxes_xyxy) == 0


def test_every_defect_type_yields_a_candidate_inside_its_box():
    rng = np.random.default_rng(12)
    for defect_type in DefectType:
        template = generate_template(rng)
        test, label = paint_defect(template, defect_type, rng)
        cands = analyse_pair(test, template).candidates
        assert cands.crops.shape[1:] == (N_CHANNELS, CROP_PX, CROP_PX)
        x1, y1, x2, y2 = label.box_px
        inside = [x1 <= _centre(b)[0] <= x2 and y1 <= _centre(b)[1] <= y2 for b in cands.boxes_xyxy]
        assert any(inside), f"{defect_type.value}: no candidate inside {label.box_px}"


def test_defect_at_the_border_is_kept():
    template = generate_template(np.random.default_rng(13))
    test = template.copy()
    test[0:14, 300:316] = 255 - test[0:14, 300:316]  # a blob touching the top edge
    boxes = analyse_pair(test, template).candidates.boxes_xyxy
    assert any(b[1] <= 4 and 295 <= _centre(b)[0] <= 320 for b in boxes)


def test_a_scratch_cut_by_copper_edges_stays_one_candidate():
    from aoi.detection.candidates import CandidateConfig
    from aoi.registration import binarise

    template = np.zeros((200, 200), np.uint8)
    template[:, 60:80] = 255  # two traces the scratch crosses
    template[:, 120:140] = 255
    test = template.copy()
    cv2.line(test, (20, 100), (180, 100), 128, 2)
    test = np.where(test == 128, 255 - template, test).astype(np.uint8)  # inverted along the line
    valid = np.ones_like(template)
    args = (test, template, binarise(test), binarise(template), valid)
    from aoi.detection.candidates import find_candidates

    pieces = find_candidates(*args, CandidateConfig(group_px=1, thin_group_px=0, topology=False)).boxes_xyxy
    whole = find_candidates(*args, CandidateConfig(group_px=1, thin_group_px=3, topology=False)).boxes_xyxy
    assert len(pieces) > 1  # the tolerance band cuts the line at each copper edge
    assert len(whole) == 1 and whole[0][2] - whole[0][0] > 140


def _trace_pair(bite: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 12 px trace (copper dark), the test with 1 px edge jitter along it and, if asked, a 3 px deep bite."""
    template = np.full((96, 160), 230, np.uint8)
    template[40:52, 10:150] = 20
    test = template.copy()
    for x in range(12, 148, 6):  # one-pixel jitter on both edges: slivers a pixel wide
        test[40, x : x + 3] = 230
        test[52, x + 3 : x + 5] = 20
    if bite:
        test[40:43, 70:75] = 230  # 3 px deep, 5 px long: 5 px beyond the 2 px band, under the minimum area
    return test, template


def test_a_shallow_compact_bite_shows_in_the_finer_band_and_edge_jitter_does_not():
    from dataclasses import replace

    from aoi.detection.candidates import CandidateConfig

    banded = CandidateConfig(tolerance_px=2)
    fine = replace(banded, fine_tolerance_px=1, fine_min_width_px=1.5)
    bitten, template = _trace_pair(bite=True)
    clean, _ = _trace_pair(bite=False)
    assert len(analyse_pair(bitten, template, candidate_config=banded).candidates.boxes_xyxy) == 0
    found = analyse_pair(bitten, template, candidate_config=fine).candidates.boxes_xyxy
    assert len(found) == 1 and found[0][0] <= 73 <= found[0][2] and found[0][1] <= 41 <= found[0][3]
    assert len(analyse_pair(clean, template, candidate_config=fine).candidates.boxes_xyxy) == 0
