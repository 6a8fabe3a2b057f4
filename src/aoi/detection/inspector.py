"""The inspection engine: register -> candidates -> classify + box refinement -> verdict.

`analyse_pair` (no model) is shared with training so that the classifier learns from exactly the
candidates it will see when serving.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from aoi.data.images import validate_image
from aoi.detection import boxes as box_maths
from aoi.detection.boxes import nms
from aoi.detection.bundle import BundleMeta, ModelBundle
from aoi.detection.candidates import CandidateConfig, Candidates, ForcedBy, find_candidates
from aoi.registration import Registration, RegistrationConfig, align_pair
from aoi.schema import DEFAULT_PX_PER_MM, Defect, DefectType, InspectionResult, Verdict
from aoi.verdict import VerdictRules

FORCED_MIN_CONFIDENCE = 0.5  # a forced defect never reports less: a cut at or under it keeps every one


@dataclass(frozen=True)
class AnalysedPair:
    registration: Registration
    candidates: Candidates
    timings_ms: dict[str, float]


def analyse_pair(
    test: np.ndarray,
    template: np.ndarray,
    registration_config: RegistrationConfig = RegistrationConfig(),
    candidate_config: CandidateConfig = CandidateConfig(),
) -> AnalysedPair:
    t0 = time.perf_counter()
    a = align_pair(test, template, registration_config)
    t1 = time.perf_counter()
    cands = find_candidates(test, a.template_aligned, a.test_bin, a.template_bin_aligned, a.valid, candidate_config)
    t2 = time.perf_counter()
    return AnalysedPair(a.registration, cands, {"register": (t1 - t0) * 1e3, "candidates": (t2 - t1) * 1e3})


def decode_boxes(windows_xyxy: np.ndarray, box_out: np.ndarray) -> np.ndarray:
    """Model box outputs are corner positions in units of the window side, relative to its top-left."""
    side = (windows_xyxy[:, 2] - windows_xyxy[:, 0])[:, None]
    origin = np.concatenate([windows_xyxy[:, :2], windows_xyxy[:, :2]], 1)
    return origin + box_out * side


def merge_line_pieces(defects: list[Defect], kind: DefectType, gap_px: float) -> list[Defect]:
    """Join detections of a line-like `kind` whose boxes touch (within `gap_px`) into one box.

    The tolerance band cuts a scratch wherever it crosses a copper edge, so one scratch can arrive as
    several pieces; a scratch is one continuous line, so touching pieces are reported once."""
    pieces = [d for d in defects if d.type is kind]
    if len(pieces) < 2:
        return defects
    boxes: list[box_maths.Box] = [d.box_px for d in pieces]
    scores = [d.confidence for d in pieces]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if box_maths.gap_px(boxes[i], boxes[j]) <= gap_px:
                    boxes[i] = box_maths.union_box([boxes[i], boxes[j]])
                    scores[i] = max(scores[i], scores[j])
                    del boxes[j], scores[j]
                    merged = True
                    break
            if merged:
                break
    others = [d for d in defects if d.type is not kind]
    joined = [Defect(kind, s, tuple(b)) for b, s in zip(boxes, scores, strict=True)]  # type: ignore[arg-type]
    return sorted(others + joined, key=lambda d: -d.confidence)


def _mirror(crops: np.ndarray, horizontal: bool, vertical: bool) -> np.ndarray:
    out = crops
    if horizontal:
        out = out[:, :, :, ::-1]
    if vertical:
        out = out[:, :, ::-1, :]
    return np.ascontiguousarray(out)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Inspector:
    """Thread-safe: one ONNX session shared by all threads (each `run` call is independent)."""

    def __init__(self, bundle: ModelBundle, threads: int = 1) -> None:
        self.bundle = bundle
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(bundle.inference_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def load(cls, bundle_path: Path | str | None = None, threads: int = 1) -> Inspector:
        return cls(ModelBundle.load(bundle_path), threads)

    @property
    def meta(self) -> BundleMeta:
        return self.bundle.meta

    @property
    def model_version(self) -> str:
        return self.bundle.meta.version

    def _classify(self, crops: np.ndarray, flips: int) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and window-unit boxes, averaged over `flips` mirrored views (1, 2 or 4)."""
        views = [(False, False), (True, False), (False, True), (True, True)][: max(1, min(flips, 4))]
        batch = np.concatenate([_mirror(crops, h, v) for h, v in views]) if len(views) > 1 else crops
        logits, boxes = self._session.run(None, {self._input: batch})
        n = len(crops)
        probs = np.zeros((n, logits.shape[1]), np.float32)
        box_sum = np.zeros((n, 4), np.float32)
        for k, (h, v) in enumerate(views):
            probs += softmax(logits[k * n : (k + 1) * n])
            b = boxes[k * n : (k + 1) * n]
            if h:
                b = np.stack([1 - b[:, 2], b[:, 1], 1 - b[:, 0], b[:, 3]], 1)
            if v:
                b = np.stack([b[:, 0], 1 - b[:, 3], b[:, 2], 1 - b[:, 1]], 1)
            box_sum += b
        return probs / len(views), box_sum / len(views)

    def _no_veto(
        self,
        cands: Candidates,
        probs: np.ndarray,
        defect_probs: np.ndarray,
        type_idx: np.ndarray,
        scores: np.ndarray,
        boxes: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The no-veto rule for forced candidates (a connectivity change, or a gross disagreement).

        The classifier names the type when it calls the candidate a defect; when it says background,
        a connectivity change keeps the type it implies (open for a split, short for a join) and a gross
        disagreement takes the classifier's most likely defect type. The confidence is the classifier's
        probability of "some defect" (1 - background), never below the operating threshold nor
        FORCED_MIN_CONFIDENCE, so every consumer with a cut at or under those keeps it. The box falls
        back to the candidate's own when the classifier saw background (its box head was not trained
        there).
        """
        meta = self.bundle.meta
        type_idx, scores, boxes = type_idx.copy(), scores.copy(), boxes.copy()
        for i in np.flatnonzero(cands.forced != ForcedBy.NONE):
            says_defect = probs[i, 0] < defect_probs[i].max()
            implied = ForcedBy.TYPE_OF.get(int(cands.forced[i]))
            if not says_defect:
                if implied is not None and implied in meta.classes:
                    type_idx[i] = meta.classes.index(implied)
                x1, y1, x2, y2 = cands.boxes_xyxy[i].astype(np.float32)
                margin = max(4.0, 0.5 * max(x2 - x1, y2 - y1))
                boxes[i] = (x1 - margin, y1 - margin, x2 + margin, y2 + margin)
            scores[i] = max(1.0 - float(probs[i, 0]), meta.threshold, FORCED_MIN_CONFIDENCE, float(scores[i]))
        return type_idx, scores, boxes

    def detect(
        self,
        test: np.ndarray,
        template: np.ndarray,
        score_floor: float | None = None,
        candidates: CandidateConfig | None = None,
        registration: RegistrationConfig | None = None,
    ) -> tuple[list[Defect], AnalysedPair, float]:
        """All detections above `score_floor` (default: the bundle's floor), with the analysis and model ms.

        `candidates` and `registration` override the bundle's settings for one capture setup (its learnt
        edge band, connectivity check, gross size, sub-pixel fit): a product's, not the model's."""
        meta = self.bundle.meta
        analysed = analyse_pair(test, template, registration or meta.registration, candidates or meta.candidates)
        cands = analysed.candidates
        t0 = time.perf_counter()
        if len(cands.crops) == 0:
            return [], analysed, 0.0
        probs, box_out = self._classify(cands.crops, meta.test_time_flips)
        defect_probs = probs[:, 1:]
        if meta.scratch_min_probability > 0 and DefectType.SCRATCH in meta.classes:
            # Scratches are learnt from synthetic strokes only: a real defect that resembles one
            # wins its own type unless the model is sure of the scratch.
            s = meta.classes.index(DefectType.SCRATCH)
            unsure = defect_probs[:, s] < meta.scratch_min_probability
            defect_probs = defect_probs.copy()
            defect_probs[unsure, s] = 0.0
        type_idx = defect_probs.argmax(1)
        scores = defect_probs[np.arange(len(type_idx)), type_idx]
        boxes = decode_boxes(cands.windows_xyxy, box_out)
        forced = cands.forced != ForcedBy.NONE
        if forced.any():
            type_idx, scores, boxes = self._no_veto(cands, probs, defect_probs, type_idx, scores, boxes)
        h, w = test.shape
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        floor = meta.score_floor if score_floor is None else score_floor
        ok = ((scores >= floor) | forced) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        idx = np.flatnonzero(ok)
        idx = idx[nms(boxes[idx], scores[idx], meta.nms_iou)] if len(idx) else idx
        defects = [
            Defect(type=meta.classes[int(type_idx[i])], confidence=float(scores[i]), box_px=tuple(boxes[i]))
            for i in idx
        ]
        if meta.scratch_merge_gap_px >= 0:
            defects = merge_line_pieces(defects, DefectType.SCRATCH, meta.scratch_merge_gap_px)
        return defects, analysed, (time.perf_counter() - t0) * 1e3

    def inspect(
        self,
        test: np.ndarray,
        template: np.ndarray,
        *,
        image_id: str,
        px_per_mm: float = DEFAULT_PX_PER_MM,
        rules: VerdictRules | None = None,
        product: str | None = None,
        origin_px: tuple[float, float] = (0.0, 0.0),
        threshold: float | None = None,
        candidates: CandidateConfig | None = None,
        registration: RegistrationConfig | None = None,
    ) -> InspectionResult:
        """One typed result. `candidates` / `registration` are a product's capture setup (see `detect`)."""
        t0 = time.perf_counter()
        test = validate_image(test, f"{image_id} (tested image)")
        template = validate_image(template, f"{image_id} (template)")
        cut = self.bundle.meta.threshold if threshold is None else threshold
        floor = min(cut, self.bundle.meta.score_floor)
        found, analysed, classify_ms = self.detect(test, template, floor, candidates, registration)
        defects = tuple(d.with_mm(px_per_mm, origin_px) for d in found if d.confidence >= cut)
        verdict = (rules or VerdictRules()).verdict(defects, px_per_mm) if defects else Verdict.PASS
        timings = dict(analysed.timings_ms)
        timings["classify"] = classify_ms
        timings["total"] = (time.perf_counter() - t0) * 1e3
        h, w = test.shape
        return InspectionResult(
            image_id=image_id,
            image_size_wh=(w, h),
            defects=defects,
            verdict=verdict,
            px_per_mm=px_per_mm,
            model_version=self.model_version,
            timings_ms=timings,
            registration=analysed.registration.as_dict(),
            product=product,
        )
