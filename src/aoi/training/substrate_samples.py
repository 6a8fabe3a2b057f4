"""Classifier samples from synthetic fine-pitch substrate captures (`aoi.data.substrate`).

DeepPCB's boards have 6-20 px traces; a substrate's 3-6 px line/space looks different to the
classifier (a whole bite is two pixels, a good capture's residue is one). Each synthetic design gets
its capture setup learnt from good captures, exactly as `aoi bench` and a line would, then every
defect type and clean captures (their residue is the background class) go through the serving
`analyse_pair`. The seeds are disjoint from the benchmark's, so the benchmark scores unseen designs.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aoi.data.annotations import DatasetError
from aoi.data.substrate import capture, generate_design
from aoi.data.synthetic import NoSuitableSpotError
from aoi.detection.candidates import CandidateConfig
from aoi.detection.inspector import analyse_pair
from aoi.detection.tolerance import learn_fine_pitch_setup
from aoi.registration import RegistrationError
from aoi.schema import DefectType
from aoi.training.samples import SampleSet, label_candidates

GOOD_CAPTURES_FOR_SETUP = 3
TRAINING_SEED_BASE = 50_000  # the substrate benchmark draws from seed 6000: other designs


@dataclass(frozen=True)
class _DesignJob:
    index: int
    seed: int
    per_type: int
    classes: tuple[DefectType, ...]
    base: CandidateConfig


def _samples_for_design(job: _DesignJob) -> SampleSet | None:
    rng = np.random.default_rng(job.seed)
    design = generate_design(rng)
    good = [capture(design, rng, None, shifted=i % 2 == 1) for i in range(GOOD_CAPTURES_FOR_SETUP)]
    setup = learn_fine_pitch_setup([(g.test, g.template, ()) for g in good], job.base)
    kinds: list[DefectType | None] = [*job.classes, None]
    parts = []
    for k in range(job.per_type):
        for kind in kinds:
            try:
                cap = capture(design, rng, kind, shifted=k % 2 == 1)
                analysed = analyse_pair(cap.test, cap.template, setup.registration, setup.candidates)
            except (NoSuitableSpotError, RegistrationError):
                continue
            labels, targets = label_candidates(analysed.candidates, cap.labels, job.classes)
            n = len(labels)
            if n:
                crops = analysed.candidates.crops.astype(np.float16)
                parts.append(SampleSet(crops, labels, targets, np.full(n, job.index, np.int32)))
    return SampleSet.concat(parts) if parts else None


def build_substrate_samples(
    designs: int,
    per_type: int,
    classes: Sequence[DefectType],
    *,
    seed: int,
    base: CandidateConfig,
    first_index: int = 0,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> SampleSet:
    """Samples from `designs` synthetic substrate designs, `per_type` captures of each type and clean."""
    jobs = [
        _DesignJob(first_index + d, TRAINING_SEED_BASE + seed * 1_009 + d, per_type, tuple(classes), base)
        for d in range(designs)
    ]
    results: list[SampleSet] = []
    if workers <= 1:
        outcomes = map(_samples_for_design, jobs)
        for r in outcomes:
            if r is not None:
                results.append(r)
            if progress:
                progress(1)
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            for r in pool.imap(_samples_for_design, jobs):
                if r is not None:
                    results.append(r)
                if progress:
                    progress(1)
    if not results:
        raise DatasetError("the substrate designs gave no classifier samples")
    return SampleSet.concat(results)
