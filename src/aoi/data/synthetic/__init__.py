"""Synthetic template/test board pairs that look like DeepPCB scans, with painted defects and exact boxes.

DeepPCB images are 640x640 8-bit binarised scans (copper dark ~0, bare substrate bright ~255, ~48 px/mm;
checked on its annotations: spurious copper makes a tested image darker) whose edges
are slightly soft. We lay out copper as a binary mask, render it with a small Gaussian blur, and paint
each defect by editing the mask locally and re-rendering only the touched neighbourhood, so that the
tested image differs from its template exactly where a defect was painted. Boxes follow the DeepPCB
labelling habit: the tight box of the changed pixels grown by 8 px on each side, clipped to the image.

Box coordinates are continuous pixel coordinates: pixel column `i` spans [i, i + 1).
All randomness comes from the `np.random.Generator` passed in: the same seed gives the same images.

Modules: `rendering` (mask -> soft-edged scan, the box of a change), `boards` (defect-free templates),
`painters` (one painter per defect type, and dust), `perturbation` (misalignment, relighting, noise),
`pairs` (template/test pairs, written in the DeepPCB layout). Every public name is importable from here.
"""

from aoi.data.synthetic.boards import generate_template
from aoi.data.synthetic.painters import (
    PAINTERS,
    NoSuitableSpotError,
    Painter,
    paint_copper,
    paint_defect,
    paint_dust,
    paint_mousebite,
    paint_open,
    paint_pin_hole,
    paint_scratch,
    paint_short,
    paint_spur,
)
from aoi.data.synthetic.pairs import SyntheticPair, make_pair, write_deeppcb_layout
from aoi.data.synthetic.perturbation import perturb
from aoi.data.synthetic.rendering import (
    BOX_MARGIN_PX,
    DEFAULT_SIZE_WH,
    PX_PER_MM,
    changed_box,
    copper_mask,
    render_mask,
)

__all__ = [
    "BOX_MARGIN_PX",
    "DEFAULT_SIZE_WH",
    "PAINTERS",
    "PX_PER_MM",
    "NoSuitableSpotError",
    "Painter",
    "SyntheticPair",
    "changed_box",
    "copper_mask",
    "generate_template",
    "make_pair",
    "paint_copper",
    "paint_defect",
    "paint_dust",
    "paint_mousebite",
    "paint_open",
    "paint_pin_hole",
    "paint_scratch",
    "paint_short",
    "paint_spur",
    "perturb",
    "render_mask",
    "write_deeppcb_layout",
]
