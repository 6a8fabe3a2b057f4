"""COCO JSON for template/test pairs.

Standard COCO `images`, `annotations` (`bbox` = [x, y, w, h] in pixels) and `categories` (named by
DefectType values, ids = DeepPCB codes), plus three fields on each image entry: `template_file_name`
(the golden template, required), `pair_id` (our image id) and `group`. File names are relative to the
JSON file's folder when the images lie under it, otherwise absolute.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aoi.data.annotations import AnnotatedPair, DatasetError, LabeledBox
from aoi.data.images import ImageError, read_image
from aoi.schema import CODE_OF_TYPE, DefectType, SchemaError

_TOLERANCE_PX = 1.0  # boxes may overshoot the image by rounding


def write_coco(pairs: Sequence[AnnotatedPair], json_path: Path | str, copy_images_to: Path | str | None = None) -> Path:
    """Write `pairs` as one COCO file; with `copy_images_to`, copy both images of each pair there first."""
    json_path = Path(json_path)
    json_dir = json_path.parent
    json_dir.mkdir(parents=True, exist_ok=True)
    copy_dir = None if copy_images_to is None else Path(copy_images_to)
    if copy_dir is not None:
        copy_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, pair in enumerate(pairs, 1):
        if pair.image_id in seen:
            raise DatasetError(f"duplicate image id {pair.image_id!r}")
        seen.add(pair.image_id)
        try:
            h, w = read_image(pair.test_path).shape
        except ImageError as exc:
            raise DatasetError(str(exc)) from exc
        if not pair.template_path.is_file():
            raise DatasetError(f"pair {pair.image_id}: template {pair.template_path} not found")
        test_path, template_path = pair.test_path, pair.template_path
        if copy_dir is not None:
            test_path = Path(shutil.copyfile(test_path, copy_dir / f"{pair.image_id}_test{test_path.suffix}"))
            template_path = Path(
                shutil.copyfile(template_path, copy_dir / f"{pair.image_id}_temp{template_path.suffix}")
            )
        images.append(
            {
                "id": number,
                "file_name": _relative(test_path, json_dir),
                "template_file_name": _relative(template_path, json_dir),
                "width": w,
                "height": h,
                "pair_id": pair.image_id,
                "group": pair.group,
            }
        )
        for label in pair.labels:
            x1, y1, x2, y2 = label.box_px
            if x1 < -_TOLERANCE_PX or y1 < -_TOLERANCE_PX or x2 > w + _TOLERANCE_PX or y2 > h + _TOLERANCE_PX:
                raise DatasetError(f"pair {pair.image_id}: box {label.box_px} lies outside the {w}x{h} image")
            bbox = [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": CODE_OF_TYPE[label.type],
                    "bbox": bbox,
                    "area": round((x2 - x1) * (y2 - y1), 3),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": CODE_OF_TYPE[t], "name": t.value, "supercategory": "defect"} for t in DefectType]
    document = {
        "info": {"description": "aoi template/test pairs", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    json_path.write_text(json.dumps(document, indent=1))
    return json_path


def read_coco(json_path: Path | str, image_root: Path | str | None = None) -> list[AnnotatedPair]:
    """Read pairs from a COCO file; relative file names resolve against `image_root` (default: its folder)."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise DatasetError(f"{json_path}: COCO file not found")
    try:
        document = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{json_path}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DatasetError(f"{json_path}: top level must be an object")
    root = json_path.parent if image_root is None else Path(image_root)
    sections = {}
    for key in ("images", "annotations", "categories"):
        value = document.get(key)
        if not isinstance(value, list):
            raise DatasetError(f"{json_path}: '{key}' must be a list")
        sections[key] = value
    categories = _read_categories(sections["categories"], json_path)
    entries: dict[int, dict[str, Any]] = {}
    for i, entry in enumerate(sections["images"]):
        where = f"{json_path}: images[{i}]"
        image = _read_image_entry(entry, where, root)
        if image["id"] in entries:
            raise DatasetError(f"{where}: duplicate image id {image['id']}")
        entries[image["id"]] = image
    boxes: dict[int, list[LabeledBox]] = {k: [] for k in entries}
    for i, ann in enumerate(sections["annotations"]):
        where = f"{json_path}: annotations[{i}]"
        if not isinstance(ann, Mapping):
            raise DatasetError(f"{where}: must be an object")
        owner_id, category_id = ann.get("image_id"), ann.get("category_id")
        owner = entries.get(owner_id) if isinstance(owner_id, int) else None
        if owner is None:
            raise DatasetError(f"{where}: image_id {owner_id!r} is not in images")
        kind = categories.get(category_id) if isinstance(category_id, int) else None
        if kind is None:
            raise DatasetError(f"{where}: category_id {category_id!r} is not in categories")
        boxes[owner["id"]].append(LabeledBox(kind, _read_bbox(ann.get("bbox"), owner, where)))
    return [
        AnnotatedPair(
            image_id=e["pair_id"],
            test_path=e["test_path"],
            template_path=e["template_path"],
            labels=tuple(boxes[k]),
            group=e["group"],
        )
        for k, e in entries.items()
    ]


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _read_categories(items: list[Any], json_path: Path) -> dict[int, DefectType]:
    categories: dict[int, DefectType] = {}
    for i, cat in enumerate(items):
        where = f"{json_path}: categories[{i}]"
        if not isinstance(cat, Mapping) or not isinstance(cat.get("id"), int) or "name" not in cat:
            raise DatasetError(f"{where}: needs an integer 'id' and a 'name'")
        try:
            categories[cat["id"]] = DefectType.parse(str(cat["name"]))
        except SchemaError as exc:
            raise DatasetError(f"{where}: {exc}") from None
    return categories


def _read_image_entry(entry: Any, where: str, root: Path) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise DatasetError(f"{where}: must be an object")
    for key in ("file_name", "template_file_name"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise DatasetError(f"{where}: missing '{key}'")
    width, height, number = entry.get("width"), entry.get("height"), entry.get("id")
    if not isinstance(number, int):
        raise DatasetError(f"{where}: 'id' must be an integer")
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        raise DatasetError(f"{where}: 'width' and 'height' must be positive integers")
    test_path = root / entry["file_name"]
    template_path = root / entry["template_file_name"]
    for path in (test_path, template_path):
        if not path.is_file():
            raise DatasetError(f"{where}: image file {path} not found")
    return {
        "id": number,
        "width": width,
        "height": height,
        "test_path": test_path,
        "template_path": template_path,
        "pair_id": str(entry.get("pair_id") or Path(entry["file_name"]).stem),
        "group": str(entry.get("group") or ""),
    }


def _read_bbox(bbox: Any, image: Mapping[str, Any], where: str) -> tuple[float, float, float, float]:
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
    ):
        raise DatasetError(f"{where}: 'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")
    x, y, bw, bh = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw <= 0 or bh <= 0:
        raise DatasetError(f"{where}: 'bbox' needs finite values and positive size, got {bbox!r}")
    w, h = image["width"], image["height"]
    if x < -_TOLERANCE_PX or y < -_TOLERANCE_PX or x + bw > w + _TOLERANCE_PX or y + bh > h + _TOLERANCE_PX:
        raise DatasetError(f"{where}: bbox {bbox} lies outside the {w}x{h} image")
    return (max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh))
