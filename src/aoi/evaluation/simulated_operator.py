"""An operator who knows the truth: reviews stored inspections of boards whose defects are known.

Benchmarks and tests of the learning loop need reviews without a person at the station. For boards
with known defects (synthetic ones), this operator does what a careful person would: a reported
defect that is a true one (IoU >= 0.33, or a looser box that holds its centre or whose centre it holds)
is confirmed, or reclassified when its type is wrong (so is a second report of the same true defect); any
other reported defect is a false call; a true
defect nothing reported is added as a missed one. The decisions go through the same repository calls as
the review API, so the loop sees real reviews.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aoi.data.annotations import LabeledBox
from aoi.evaluation.metrics import same_defect_scores
from aoi.schema import Defect
from aoi.storage import Storage
from aoi.storage.inspections import InspectionRepository
from aoi.storage.records import ReviewDecision


@dataclass
class ReviewTally:
    inspections: int = 0
    confirmed: int = 0
    reclassified: int = 0
    false_calls: int = 0
    added_missed: int = 0


def review_with_truth(
    storage: Storage,
    truth_by_image_id: Mapping[str, Sequence[LabeledBox]],
    inspection_ids: Sequence[str],
    reviewer: str = "simulated-operator",
) -> ReviewTally:
    """Review every defect of the given inspections whose image id has a truth entry; returns the tally."""
    tally = ReviewTally()
    with storage.db.transaction() as session:
        repo = InspectionRepository(session)
        for inspection_id in inspection_ids:
            stored = repo.get(inspection_id)
            if stored is None or stored.result.image_id not in truth_by_image_id:
                continue
            truth = list(truth_by_image_id[stored.result.image_id])
            defects = list(stored.result.defects)
            tally.inspections += 1
            matched: set[int] = set()
            if defects and truth:
                same = same_defect_scores([d.box_px for d in defects], [t.box_px for t in truth])
                for d_index in np.argsort(-same.max(1)):  # the clearest matches first, one truth each
                    free = [int(g) for g in np.argsort(-same[d_index]) if g not in matched]
                    if free and same[d_index, free[0]] > 0:
                        matched.add(free[0])
                        _decide(repo, defects[d_index], truth[free[0]], reviewer, tally)
                    elif same[d_index].max() > 0:  # a second report of a true defect: still that defect
                        _decide(repo, defects[d_index], truth[int(same[d_index].argmax())], reviewer, tally)
                    else:
                        _decide(repo, defects[d_index], None, reviewer, tally)
            else:
                for defect in defects:
                    _decide(repo, defect, None, reviewer, tally)
            for g, missed in enumerate(truth):
                if g not in matched:
                    repo.add_missed_defect(inspection_id, missed.type, missed.box_px, reviewer)
                    tally.added_missed += 1
    return tally


def _decide(
    repo: InspectionRepository, defect: Defect, truth: LabeledBox | None, reviewer: str, tally: ReviewTally
) -> None:
    if defect.id is None:
        return
    if truth is None:
        repo.review_defect(defect.id, ReviewDecision.FALSE_CALL, reviewer)
        tally.false_calls += 1
    elif truth.type == defect.type:
        repo.review_defect(defect.id, ReviewDecision.CONFIRM, reviewer)
        tally.confirmed += 1
    else:
        repo.review_defect(defect.id, ReviewDecision.RECLASSIFY, reviewer, truth.type)
        tally.reclassified += 1


__all__ = ["ReviewTally", "review_with_truth"]
