"""Template/test pairs with painted defects and their boxes, and the DeepPCB layout they are written in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aoi.data.annotations import LabeledBox
from aoi.data.deeppcb import DeepPCBPair, write_deeppcb_pairs
from aoi.data.synthetic.boards import generate_template
from aoi.data.synthetic.painters import PAINTERS, NoSuitableSpotError
from aoi.data.synthetic.perturbation import perturb
from aoi.data.synthetic.rendering import DEFAULT_SIZE_WH
from aoi.schema import DefectType


@dataclass(frozen=True, eq=False)
class SyntheticPair:
    """A golden template, the tested image with painted defects, and the ground-truth boxes."""

    template: np.ndarray
    test: np.ndarray
    labels: tuple[LabeledBox, ...]


def make_pair(
    rng: np.random.Generator,
    defect_types: Sequence[DefectType | str] = tuple(DefectType),
    n_defects: tuple[int, int] = (3, 8),
    misalign: bool = False,
    noise_sigma: float = 0.0,
    brightness: float = 1.0,
    size_wh: tuple[int, int] = DEFAULT_SIZE_WH,
) -> SyntheticPair:
    """A template and a tested image carrying `n_defects` (inclusive range) non-overlapping painted defects.

    With `misalign`, the tested image is shifted by up to +-8 px and rotated by up to +-1.5 degrees.
    A defect type with no suitable spot on this board is replaced by another of `defect_types`.
    """
    types = [DefectType.parse(t) for t in defect_types]
    lo, hi = int(n_defects[0]), int(n_defects[1])
    if not types or lo < 0 or hi < lo:
        raise ValueError(f"need at least one defect type and 0 <= n_min <= n_max, got {defect_types}, {n_defects}")
    template = generate_template(rng, size_wh)
    test = template
    labels: list[LabeledBox] = []
    wanted = int(rng.integers(lo, hi + 1))
    failures = 0
    while len(labels) < wanted and failures < 4 * len(types) + 4:
        kind = types[int(rng.integers(0, len(types)))]
        try:
            test, label = PAINTERS[kind](test, rng, labels)
        except NoSuitableSpotError:
            failures += 1
            continue
        labels.append(label)
    shift: tuple[float, float] = (0.0, 0.0)
    rotation = 0.0
    if misalign:
        shift = (float(rng.uniform(-8, 8)), float(rng.uniform(-8, 8)))
        rotation = float(rng.uniform(-1.5, 1.5))
    test, moved = perturb(test, labels, shift, rotation, brightness, noise_sigma, rng)
    return SyntheticPair(template=template, test=test, labels=moved)


def write_deeppcb_layout(pairs: Sequence[SyntheticPair], root: Path | str, group: str = "group90000") -> Path:
    """Write pairs in the DeepPCB layout under `root` and (re)write `root/list.txt`; returns the list path.

    Files: `root/groupN/N/<id>_test.jpg`, `<id>_temp.jpg` (JPEG quality 95), `root/groupN/N_not/<id>.txt`,
    with ids `N` followed by a 3-digit index. Lines already in list.txt for other groups are kept, so
    several groups can be written into one root.
    """
    if not group.startswith("group") or not group[5:].isdigit():
        raise ValueError(f"group must look like 'groupN' with N digits, got {group!r}")
    number = group[5:]
    digits = max(3, len(str(max(0, len(pairs) - 1))))
    return write_deeppcb_pairs(
        root,
        (
            DeepPCBPair(group, number, f"{number}{index:0{digits}d}", pair.test, pair.template, pair.labels)
            for index, pair in enumerate(pairs)
        ),
        list_name="list.txt",
        jpeg_quality=95,
        replace_groups=(group,),
    )
