"""YOLO txt layout for template/test pairs.

    root/classes.txt          one class name per line (DefectType values); line k is class index k
    root/images/<id>.png      tested image
    root/templates/<id>.png   golden template
    root/labels/<id>.txt      `class_index cx cy w h` lines, normalised to 0..1 by the image size

YOLO itself has no templates; the extra folder keeps each pair together so a pair-aware detector
can train from the same export a plain single-image YOLO trainer reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from aoi.data.annotations import AnnotatedPair, DatasetError, LabeledBox
from aoi.data.images import ImageError, read_image
from aoi.schema import DefectType, SchemaError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_TOLERANCE = 1e-3  # normalised coordinates may overshoot 0..1 by rounding


def class_names() -> list[str]:
    """The class order we write: DefectType declaration order."""
    return [t.value for t in DefectType]


def write_yolo(pairs: Sequence[AnnotatedPair], root: Path | str) -> Path:
    """Export pairs to `root` (images re-encoded as grayscale PNG); returns `root/classes.txt`."""
    root = Path(root)
    names = class_names()
    index_of = {DefectType(n): i for i, n in enumerate(names)}
    folders = {name: root / name for name in ("images", "templates", "labels")}
    seen: set[str] = set()
    for pair in pairs:
        _check_id(pair.image_id, seen)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        test = _read(pair.test_path)
        template = _read(pair.template_path)
        h, w = test.shape
        for folder, pixels in ((folders["images"], test), (folders["templates"], template)):
            out = folder / f"{pair.image_id}.png"
            if not cv2.imwrite(str(out), pixels):
                raise OSError(f"could not write {out}")
        lines = []
        for label in pair.labels:
            x1, y1, x2, y2 = label.box_px
            if x1 < -0.5 or y1 < -0.5 or x2 > w + 0.5 or y2 > h + 0.5:
                raise DatasetError(f"pair {pair.image_id}: box {label.box_px} lies outside the {w}x{h} image")
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{index_of[label.type]} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
        (folders["labels"] / f"{pair.image_id}.txt").write_text("".join(lines))
    classes_path = root / "classes.txt"
    classes_path.write_text("".join(f"{n}\n" for n in names))
    return classes_path


def read_yolo(root: Path | str, missing_label_ok: bool = False) -> list[AnnotatedPair]:
    """Read every pair under `root`, sorted by id.

    A tested image without a label file is an error unless `missing_label_ok` (then it has no defects),
    so that a half-copied dataset is noticed rather than read as defect-free.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"YOLO root {root} is not a folder")
    classes = read_classes(root / "classes.txt")
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: images folder not found")
    tests = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not tests:
        raise DatasetError(f"{image_dir}: no images")
    pairs = []
    for test_path in tests:
        image_id = test_path.stem
        template_path = _find_image(root / "templates", image_id)
        if template_path is None:
            raise DatasetError(f"{test_path}: no template {root / 'templates' / image_id}.* for this image")
        label_path = root / "labels" / f"{image_id}.txt"
        if not label_path.is_file():
            if not missing_label_ok:
                raise DatasetError(f"{test_path}: label file {label_path} not found")
            labels: tuple[LabeledBox, ...] = ()
        else:
            h, w = _read(test_path).shape
            labels = parse_label_text(label_path.read_text(), classes, (w, h), str(label_path))
        pairs.append(AnnotatedPair(image_id, test_path, template_path, labels))
    return pairs


def read_classes(path: Path) -> list[DefectType]:
    if not path.is_file():
        raise DatasetError(f"{path}: classes file not found")
    classes = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            classes.append(DefectType.parse(line))
        except SchemaError as exc:
            raise DatasetError(f"{path}:{n}: {exc}") from None
    if not classes:
        raise DatasetError(f"{path}: names no classes")
    return classes


def parse_label_text(
    text: str, classes: Sequence[DefectType], size_wh: tuple[int, int], source: str = "<text>"
) -> tuple[LabeledBox, ...]:
    """Parse `class cx cy w h` lines into pixel boxes for an image of `size_wh`."""
    w, h = size_wh
    labels = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DatasetError(f"{source}:{n}: expected 'class cx cy w h', got {line!r}")
        try:
            index = int(fields[0])
            cx, cy, bw, bh = (float(v) for v in fields[1:])
        except ValueError:
            raise DatasetError(f"{source}:{n}: non-numeric field in {line!r}") from None
        if not 0 <= index < len(classes):
            raise DatasetError(f"{source}:{n}: class index {index} not in classes.txt (0..{len(classes) - 1})")
        values = (cx, cy, bw, bh)
        if not all(math.isfinite(v) for v in values) or bw <= 0 or bh <= 0:
            raise DatasetError(f"{source}:{n}: box needs finite values and positive size, got {line!r}")
        x1n, y1n, x2n, y2n = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        if min(x1n, y1n) < -_TOLERANCE or max(x2n, y2n) > 1 + _TOLERANCE:
            raise DatasetError(f"{source}:{n}: box {line!r} lies outside the normalised 0..1 range")
        box = (max(0.0, x1n) * w, max(0.0, y1n) * h, min(1.0, x2n) * w, min(1.0, y2n) * h)
        try:
            labels.append(LabeledBox(classes[index], box))
        except SchemaError as exc:
            raise DatasetError(f"{source}:{n}: {exc}") from None
    return tuple(labels)


def _check_id(image_id: str, seen: set[str]) -> None:
    if not image_id or image_id.startswith(".") or any(c in image_id for c in "/\\\0"):
        raise DatasetError(f"image id {image_id!r} cannot be used as a file name")
    if image_id in seen:
        raise DatasetError(f"duplicate image id {image_id!r}")
    seen.add(image_id)


def _find_image(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except ImageError as exc:
        raise DatasetError(str(exc)) from exc
