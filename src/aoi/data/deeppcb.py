"""The DeepPCB layout: a root folder plus a list file of `<image> <annotation>` lines.

The list names `groupN/N/XXXXXXXX.jpg`; on disk the pair is `XXXXXXXX_test.jpg` and
`XXXXXXXX_temp.jpg`; annotations are `x1 y1 x2 y2 code` lines (commas tolerated).
`read_deeppcb` reads it; `write_deeppcb_pairs` writes it (synthetic boards, reviewed-board exports).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aoi.data.annotations import AnnotatedPair, DatasetError, LabeledBox
from aoi.schema import CODE_OF_TYPE, DEEPPCB_CODES, Defect, SchemaError


def parse_annotation_text(text: str, source: str = "<text>") -> tuple[LabeledBox, ...]:
    labels = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DatasetError(f"{source}:{n}: expected 'x1 y1 x2 y2 type', got {line!r}")
        try:
            x1, y1, x2, y2, code = (int(float(v)) for v in fields)
        except ValueError:
            raise DatasetError(f"{source}:{n}: non-numeric field in {line!r}") from None
        if code not in DEEPPCB_CODES:
            raise DatasetError(f"{source}:{n}: unknown defect code {code}")
        try:
            labels.append(LabeledBox(DEEPPCB_CODES[code], (x1, y1, x2, y2)))
        except SchemaError as exc:
            raise DatasetError(f"{source}:{n}: {exc}") from None
    return tuple(labels)


def read_deeppcb(root: Path | str, list_file: Path | str | None = None) -> list[AnnotatedPair]:
    """Read every pair named in `list_file` (default: `root/trainval.txt`, else `root/test.txt`)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"DeepPCB root {root} is not a folder")
    if list_file is None:
        candidates = [root / "trainval.txt", root / "test.txt"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise DatasetError(f"no list file given and neither trainval.txt nor test.txt in {root}")
        list_path = found[0]
    else:
        list_path = Path(list_file)
        if not list_path.is_absolute() and not list_path.is_file():
            list_path = root / list_path
    if not list_path.is_file():
        raise DatasetError(f"list file {list_path} not found")
    pairs = []
    for n, line in enumerate(list_path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetError(f"{list_path}:{n}: expected '<image> <annotation>', got {line!r}")
        image_rel, ann_rel = fields
        stem = (root / image_rel).with_suffix("")
        test_path = stem.with_name(stem.name + "_test.jpg")
        template_path = stem.with_name(stem.name + "_temp.jpg")
        ann_path = root / ann_rel
        labels = parse_annotation_text(ann_path.read_text(), str(ann_path)) if ann_path.is_file() else None
        if labels is None:
            raise DatasetError(f"{list_path}:{n}: annotation file {ann_path} not found")
        group = Path(image_rel).parts[0] if len(Path(image_rel).parts) > 1 else ""
        pairs.append(AnnotatedPair(stem.name, test_path, template_path, labels, group))
    if not pairs:
        raise DatasetError(f"list file {list_path} names no pairs")
    return pairs


def split_by_group(
    pairs: Sequence[AnnotatedPair], validation_groups: Iterable[str]
) -> tuple[list[AnnotatedPair], list[AnnotatedPair]]:
    """Split into (train, validation), holding out whole groups."""
    held = set(validation_groups)
    unknown = held - {p.group for p in pairs}
    if unknown:
        raise DatasetError(f"validation groups not in the dataset: {sorted(unknown)}")
    return [p for p in pairs if p.group not in held], [p for p in pairs if p.group in held]


def format_submission(defects: Iterable[Defect]) -> str:
    """DeepPCB submission lines `x1,y1,x2,y2,confidence,type`, by falling confidence."""
    ordered = sorted(defects, key=lambda d: -d.confidence)
    return "".join(
        f"{int(round(d.box_px[0]))},{int(round(d.box_px[1]))},{int(round(d.box_px[2]))},"
        f"{int(round(d.box_px[3]))},{d.confidence:.5f},{d.type.value}\n"
        for d in ordered
    )


def format_annotation(labels: Iterable[LabeledBox]) -> str:
    """DeepPCB ground-truth lines `x1 y1 x2 y2 code`."""
    return "".join(
        f"{int(round(b.box_px[0]))} {int(round(b.box_px[1]))} {int(round(b.box_px[2]))} "
        f"{int(round(b.box_px[3]))} {CODE_OF_TYPE[b.type]}\n"
        for b in labels
    )


@dataclass(frozen=True, eq=False)
class DeepPCBPair:
    """One pair to write: `<group>/<folder>/<image_id>_test.jpg`, `_temp.jpg`, `<group>/<folder>_not/<image_id>.txt`."""

    group: str
    folder: str
    image_id: str
    test: np.ndarray
    template: np.ndarray
    labels: Sequence[LabeledBox]


def write_deeppcb_pairs(
    root: Path | str,
    pairs: Iterable[DeepPCBPair],
    *,
    list_name: str = "trainval.txt",
    jpeg_quality: int = 95,
    replace_groups: Collection[str] | None = None,
) -> Path:
    """Write `pairs` in the DeepPCB layout under `root` and a list file `root/list_name` naming them in order;
    returns the list path.

    Without `replace_groups` the list file names just `pairs`. With it, lines already in the list file are
    kept unless they name one of those groups (listed first, in their order), so several groups can be
    written into one root, one call each.
    """
    root = Path(root)
    jpeg = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
    lines = []
    for pair in pairs:
        image_dir, ann_dir = root / pair.group / pair.folder, root / pair.group / f"{pair.folder}_not"
        image_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for suffix, pixels in (("test", pair.test), ("temp", pair.template)):
            path = image_dir / f"{pair.image_id}_{suffix}.jpg"
            ok, encoded = cv2.imencode(".jpg", pixels, jpeg)
            if not ok:
                raise OSError(f"could not encode {path}")
            path.write_bytes(encoded.tobytes())
        (ann_dir / f"{pair.image_id}.txt").write_text(format_annotation(pair.labels))
        lines.append(
            f"{pair.group}/{pair.folder}/{pair.image_id}.jpg {pair.group}/{pair.folder}_not/{pair.image_id}.txt"
        )
    list_path = root / list_name
    kept: list[str] = []
    if replace_groups is not None and list_path.is_file():
        replaced = tuple(f"{group}/" for group in replace_groups)
        kept = [ln for ln in list_path.read_text().splitlines() if ln.strip() and not ln.startswith(replaced)]
    list_path.write_text("".join(f"{ln}\n" for ln in kept + lines))
    return list_path
