"""Turn annotated pairs into labelled classifier samples, through the same `analyse_pair` as serving.

A candidate is labelled with the ground-truth box that contains its centre (the nearest such box when
several do); otherwise it is background. A short piece of a long scratch looks locally like an open or
a pin-hole; such pieces (shorter than half the scratch) are left out of training (label IGNORE) rather
than taught as scratches. Augmented variants of each pair (misalignment, brightness,
noise, injected synthetic scratches) teach the classifier what registration residue looks like.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aoi.data.annotations import AnnotatedPair, LabeledBox
from aoi.data.images import read_image
from aoi.detection.candidates import CandidateConfig, Candidates
from aoi.detection.inspector import analyse_pair
from aoi.registration import RegistrationConfig, RegistrationError
from aoi.schema import DefectType

IGNORE = -1  # label of candidates left out of training
SCRATCH_BOX_MARGIN_PX = 8  # synthetic boxes are the changed pixels grown by this much


@dataclass(frozen=True)
class AugmentConfig:
    variants: int = 1  # augmented copies per pair besides the original
    max_shift_px: float = 8.0
    max_rotation_deg: float = 1.5
    brightness: float = 0.2
    max_noise_sigma: float = 8.0
    scratch_probability: float = 0.6


@dataclass
class SampleSet:
    crops: np.ndarray  # (N, C, H, W) float16
    labels: np.ndarray  # (N,) int64, 0 = background, i+1 = classes[i], IGNORE = left out
    boxes: np.ndarray  # (N, 4) float32, target box in window units (0 for background)
    image_index: np.ndarray  # (N,) int32, which pair it came from

    @classmethod
    def concat(cls, parts: Sequence[SampleSet]) -> SampleSet:
        if not parts:
            raise ValueError("no samples")
        return cls(
            np.concatenate([p.crops for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.image_index for p in parts]),
        )


def label_candidates(
    cands: Candidates, truth: Sequence[LabeledBox], classes: Sequence[DefectType]
) -> tuple[np.ndarray, np.ndarray]:
    n = len(cands.boxes_xyxy)
    labels = np.zeros(n, np.int64)
    targets = np.zeros((n, 4), np.float32)
    if n == 0 or not truth:
        return labels, targets
    class_index = {c: i + 1 for i, c in enumerate(classes)}
    gt = np.array([t.box_px for t in truth], np.float32)
    gt_centre = np.stack([(gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2], 1)
    b = cands.boxes_xyxy.astype(np.float32)
    centre = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    inside = (
        (centre[:, None, 0] >= gt[None, :, 0] - 2)
        & (centre[:, None, 0] <= gt[None, :, 2] + 2)
        & (centre[:, None, 1] >= gt[None, :, 1] - 2)
        & (centre[:, None, 1] <= gt[None, :, 3] + 2)
    )
    dist = np.linalg.norm(centre[:, None, :] - gt_centre[None, :, :], axis=2)
    dist = np.where(inside, dist, np.inf)
    extent = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    for i in range(n):
        g = int(np.argmin(dist[i]))
        if not np.isfinite(dist[i, g]) or truth[g].type not in class_index:
            continue
        if truth[g].type is DefectType.SCRATCH:
            scratch_len = max(gt[g, 2] - gt[g, 0], gt[g, 3] - gt[g, 1]) - 2 * SCRATCH_BOX_MARGIN_PX
            if extent[i] < 0.5 * scratch_len:
                labels[i] = IGNORE
                continue
        labels[i] = class_index[truth[g].type]
        win = cands.windows_xyxy[i]
        side = win[2] - win[0]
        targets[i] = (gt[g] - np.array([win[0], win[1], win[0], win[1]])) / side
    return labels, targets


def perturb_test(
    test: np.ndarray, truth: Sequence[LabeledBox], rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, list[LabeledBox]]:
    """Misalign, re-light and add noise to a tested image within the recipe's ranges; boxes follow."""
    from aoi.data.synthetic import perturb

    image, moved = perturb(
        test,
        truth,
        shift_xy_px=(
            float(rng.uniform(-cfg.max_shift_px, cfg.max_shift_px)),
            float(rng.uniform(-cfg.max_shift_px, cfg.max_shift_px)),
        ),
        rotation_deg=float(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)),
        brightness=1.0 + float(rng.uniform(-cfg.brightness, cfg.brightness)),
        noise_sigma=float(rng.uniform(0, cfg.max_noise_sigma)),
        rng=rng,
    )
    return image, list(moved)


ScratchPainter = Callable[
    [np.ndarray, np.random.Generator, Sequence[tuple[float, float, float, float]]], tuple[np.ndarray, LabeledBox]
]


def _default_scratch_painter() -> ScratchPainter:
    from aoi.data.synthetic import paint_scratch

    return paint_scratch


@dataclass(frozen=True)
class _Job:
    index: int
    pair: AnnotatedPair
    seed: int
    classes: tuple[DefectType, ...]
    augment: AugmentConfig
    registration: RegistrationConfig
    candidates: CandidateConfig
    with_original: bool


def _samples_for_pair(job: _Job) -> SampleSet | None:
    test = read_image(job.pair.test_path)
    template = read_image(job.pair.template_path)
    rng = np.random.default_rng(job.seed)
    painter = _default_scratch_painter() if DefectType.SCRATCH in job.classes else None
    versions: list[tuple[np.ndarray, list[LabeledBox]]] = []
    if job.with_original:
        versions.append((test, list(job.pair.labels)))
    for _ in range(job.augment.variants):
        img, truth = test.copy(), list(job.pair.labels)
        if painter is not None and rng.random() < job.augment.scratch_probability:
            for _ in range(int(rng.integers(1, 3))):
                try:
                    img, box = painter(img, rng, [t.box_px for t in truth])
                except RuntimeError:  # no clear spot on this board: fine, fewer scratches
                    break
                truth.append(box)
        img, truth = perturb_test(img, truth, rng, job.augment) if rng.random() < 0.7 else (img, truth)
        versions.append((img, truth))
    parts = []
    for img, truth in versions:
        try:
            analysed = analyse_pair(img, template, job.registration, job.candidates)
        except RegistrationError:
            continue
        labels, targets = label_candidates(analysed.candidates, truth, job.classes)
        n = len(labels)
        parts.append(
            SampleSet(analysed.candidates.crops.astype(np.float16), labels, targets, np.full(n, job.index, np.int32))
        )
    return SampleSet.concat(parts) if parts else None


def build_samples(
    pairs: Sequence[AnnotatedPair],
    classes: Sequence[DefectType],
    *,
    seed: int,
    augment: AugmentConfig,
    registration: RegistrationConfig = RegistrationConfig(),
    candidates: CandidateConfig = CandidateConfig(),
    with_original: bool = True,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> SampleSet:
    jobs = [
        _Job(i, p, seed * 100_003 + i, tuple(classes), augment, registration, candidates, with_original)
        for i, p in enumerate(pairs)
    ]
    results: list[SampleSet] = []
    if workers <= 1:
        for job in jobs:
            r = _samples_for_pair(job)
            if r is not None:
                results.append(r)
            if progress:
                progress(1)
    else:
        ctx = mp.get_context("fork")
        with ctx.Pool(workers) as pool:
            for r in pool.imap(_samples_for_pair, jobs, chunksize=4):
                if r is not None:
                    results.append(r)
                if progress:
                    progress(1)
    return SampleSet.concat(results)
