"""The data of `aoi train`: read a dataset, split it into training and calibration pairs, and build
(or read back from the cache) the labelled candidate crops the network trains on.

Sample caches are keyed by what the samples depend on (`fingerprint` of the training pairs, the
augmentation and candidate settings, the seed and the classes), so a rerun reads them back.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from aoi.data.annotations import AnnotatedPair, DatasetError
from aoi.schema import DefectType
from aoi.training.recipe import TrainRecipe
from aoi.training.samples import SampleSet, build_samples
from aoi.training.substrate_samples import build_substrate_samples

Progress = Callable[[str, int, int], None]  # (task, advance, total)


def load_dataset(root: Path, fmt: str, list_file: str | None) -> list[AnnotatedPair]:
    if fmt == "deeppcb":
        from aoi.data.deeppcb import read_deeppcb

        return read_deeppcb(root, list_file)
    if fmt == "yolo":
        from aoi.data.yolo import read_yolo

        return read_yolo(root)
    if fmt == "coco":
        from aoi.data.coco import read_coco

        path = root if root.is_file() else root / (list_file or "annotations.json")
        return read_coco(path)
    raise DatasetError(f"unknown dataset format {fmt!r}; expected deeppcb, yolo or coco")


def split_pairs(
    pairs: Sequence[AnnotatedPair], groups: Sequence[str], seed: int
) -> tuple[list[AnnotatedPair], list[AnnotatedPair]]:
    """Hold out whole groups: the named ones, else about a fifth of the groups (a fifth of images if one group)."""
    names = sorted({p.group for p in pairs})
    if groups:
        missing = set(groups) - set(names)
        if missing:
            raise DatasetError(f"validation groups not in the dataset: {sorted(missing)}")
        held = set(groups)
        return [p for p in pairs if p.group not in held], [p for p in pairs if p.group in held]
    rng = random.Random(seed)
    if len(names) >= 3:
        held = set(rng.sample(names, max(1, len(names) // 5)))
        return [p for p in pairs if p.group not in held], [p for p in pairs if p.group in held]
    order = list(range(len(pairs)))
    rng.shuffle(order)
    n_val = max(1, len(pairs) // 5) if len(pairs) > 1 else 0
    val_idx = set(order[:n_val])
    return [p for i, p in enumerate(pairs) if i not in val_idx], [p for i, p in enumerate(pairs) if i in val_idx]


def training_and_calibration_pairs(
    recipe: TrainRecipe,
    dataset_root: Path,
    exclude_groups: Sequence[str],
    *,
    hold_out: bool,
    max_train_pairs: int | None,
) -> tuple[list[AnnotatedPair], list[AnnotatedPair]]:
    """(training, calibration) pairs of the dataset less `exclude_groups`. Without `hold_out` (the
    operating point comes from elsewhere) every pair trains and none calibrates."""
    pairs = [
        p
        for p in load_dataset(dataset_root, recipe.dataset_format, recipe.list_file)
        if p.group not in set(exclude_groups)
    ]
    train_pairs: list[AnnotatedPair]
    val_pairs: list[AnnotatedPair]
    if not hold_out:
        train_pairs, val_pairs = list(pairs), []
    else:
        train_pairs, val_pairs = split_pairs(pairs, recipe.validation_groups, recipe.seed)
    if max_train_pairs is not None:
        train_pairs = train_pairs[:max_train_pairs]
    if not train_pairs:
        raise DatasetError("no training pairs after the validation split")
    return train_pairs, val_pairs


def fingerprint(pairs: Sequence[AnnotatedPair]) -> str:
    """What the training data is, for the sample cache and the checkpoint: image ids, file sizes, labels."""
    h = hashlib.sha256()
    for p in sorted(pairs, key=lambda p: p.image_id):
        h.update(p.image_id.encode())
        for path in (p.test_path, p.template_path):
            h.update(str(path.stat().st_size if path.exists() else -1).encode())
        for b in p.labels:
            h.update(f"{b.type.value}{b.box_px}".encode())
    return h.hexdigest()[:16]


def _cached_samples(cache: Path, key: str, build: Callable[[], SampleSet]) -> SampleSet:
    """`cache/samples-{key}.npz` if it is there, else `build()` written there (atomically)."""
    path = cache / f"samples-{key}.npz"
    if path.is_file():
        z = np.load(path)
        return SampleSet(z["crops"], z["labels"], z["boxes"], z["image_index"])
    s = build()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, crops=s.crops, labels=s.labels, boxes=s.boxes, image_index=s.image_index)
    tmp.replace(path)
    return s


def training_samples(
    recipe: TrainRecipe,
    train_pairs: Sequence[AnnotatedPair],
    classes: Sequence[DefectType],
    cache: Path,
    fp: str,
    progress: Progress | None = None,
) -> SampleSet:
    """The labelled candidate crops of the training pairs (and the recipe's substrate designs), cached
    by what they depend on; candidates no truth box claims confidently enough are left out."""
    sample_settings = json.dumps([asdict(recipe.augment), asdict(recipe.candidates)], sort_keys=True)
    recipe_key = hashlib.sha256(sample_settings.encode() + fp.encode()).hexdigest()[:12]

    def tick(task: str, total: int) -> Callable[[int], None]:
        return lambda n: progress(task, n, total) if progress else None

    train_set = _cached_samples(
        cache,
        f"train-{recipe_key}-{recipe.seed}-{','.join(c.value for c in classes)}",
        lambda: build_samples(
            train_pairs,
            classes,
            seed=recipe.seed,
            augment=recipe.augment,
            candidates=recipe.candidates,
            workers=recipe.workers,
            progress=tick("train samples", len(train_pairs)),
        ),
    )
    if recipe.substrate_designs > 0:
        substrate_set = _cached_samples(
            cache,
            f"substrate-{recipe.substrate_designs}x{recipe.substrate_captures_per_type}-{recipe.seed}-"
            + hashlib.sha256(json.dumps(asdict(recipe.candidates), sort_keys=True).encode()).hexdigest()[:12],
            lambda: build_substrate_samples(
                recipe.substrate_designs,
                recipe.substrate_captures_per_type,
                classes,
                seed=recipe.seed,
                base=recipe.candidates,
                first_index=len(train_pairs),
                workers=recipe.workers,
                progress=tick("substrate samples", recipe.substrate_designs),
            ),
        )
        train_set = SampleSet.concat([train_set, substrate_set])
    used = train_set.labels >= 0
    return SampleSet(train_set.crops[used], train_set.labels[used], train_set.boxes[used], train_set.image_index[used])
