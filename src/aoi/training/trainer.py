"""`aoi train`: dataset -> candidate samples -> CNN -> ONNX bundle with calibrated threshold.

Resumable: samples are cached by fingerprint and a checkpoint is written after every epoch; running
the same command again continues where it stopped. Deterministic for a given seed on one machine.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aoi.data.annotations import AnnotatedPair, DatasetError
from aoi.detection.bundle import BundleMeta, ModelBundle
from aoi.detection.candidates import CROP_PX, N_CHANNELS
from aoi.detection.inspector import Inspector
from aoi.evaluation.metrics import ImageEval
from aoi.evaluation.runner import accuracy_report, run_pairs
from aoi.schema import DefectType
from aoi.training.network import CandidateNet
from aoi.training.recipe import TrainRecipe
from aoi.training.samples import AugmentConfig, SampleSet, build_samples
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


@dataclass(frozen=True)
class OperatingPoint:
    """Serving settings chosen outside the training data: the cut and the scratch guard, with where from."""

    threshold: float
    scratch_guard: float
    chosen_by: str


def fingerprint(pairs: Sequence[AnnotatedPair]) -> str:
    h = hashlib.sha256()
    for p in sorted(pairs, key=lambda p: p.image_id):
        h.update(p.image_id.encode())
        for path in (p.test_path, p.template_path):
            h.update(str(path.stat().st_size if path.exists() else -1).encode())
        for b in p.labels:
            h.update(f"{b.type.value}{b.box_px}".encode())
    return h.hexdigest()[:16]


def _cached_samples(cache: Path, key: str, build: Callable[[], SampleSet]) -> SampleSet:
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


def _dihedral(x: torch.Tensor, boxes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one of the 8 flips/rotations to a batch of crops and their window-unit boxes."""
    b = boxes.clone()
    if k & 1:  # horizontal flip
        x = x.flip(3)
        b = torch.stack([1 - b[:, 2], b[:, 1], 1 - b[:, 0], b[:, 3]], 1)
    if k & 2:  # vertical flip
        x = x.flip(2)
        b = torch.stack([b[:, 0], 1 - b[:, 3], b[:, 2], 1 - b[:, 1]], 1)
    if k & 4:  # transpose
        x = x.transpose(2, 3)
        b = b[:, [1, 0, 3, 2]]
    return x, b


# Recipe fields that only name the model or tune serving and calibration: changing them keeps the weights.
SERVING_FIELDS = frozenset(
    {"version", "test_time_flips", "scratch_merge_gap_px", "calibration_scratch_boards", "workers"}
)


def weight_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    """The part of a recipe that decides the trained weights (what a checkpoint must match to resume)."""
    return {k: v for k, v in recipe.items() if k not in SERVING_FIELDS}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def export_onnx(model: nn.Module, path: Path) -> None:
    model.eval()
    dummy = torch.zeros(2, N_CHANNELS, CROP_PX, CROP_PX)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["crops"],
        output_names=["logits", "boxes"],
        dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}, "boxes": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


def train(
    recipe: TrainRecipe,
    dataset_root: Path,
    out_dir: Path,
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    max_train_pairs: int | None = None,
    exclude_groups: Sequence[str] = (),
    operating_point: OperatingPoint | None = None,
    evidence: dict[str, Any] | None = None,
) -> ModelBundle:
    """Train a bundle. `exclude_groups` are never read (a cross-validation fold's scored group). With
    `operating_point` (threshold and scratch guard chosen elsewhere, e.g. by `aoi cv`), every pair
    trains and nothing is calibrated here; `evidence` (e.g. the cross-validation summary that chose it)
    is recorded in the bundle's metrics and model card."""
    classes = tuple(DefectType.parse(c) for c in recipe.classes)
    train_pairs, val_pairs = _split(recipe, dataset_root, exclude_groups, operating_point, max_train_pairs)
    log(
        f"{len(train_pairs)} training pairs, {len(val_pairs)} validation pairs (held-out groups: "
        f"{sorted({p.group for p in val_pairs})})"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(train_pairs)
    _seed_everything(recipe.seed)
    train_set = training_samples(recipe, train_pairs, classes, out_dir / "cache", fp, progress)
    counts = np.bincount(train_set.labels, minlength=len(classes) + 1)
    log(f"{len(train_set.labels)} training candidates; per class (background first): {counts.tolist()}")
    model = fit(recipe, train_set, len(classes) + 1, out_dir / "checkpoint.pt", fp, progress=progress, log=log)

    bundle_dir = out_dir / "bundle"
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    bundle_dir.mkdir(parents=True)
    export_onnx(model, bundle_dir / "model.onnx")
    meta = BundleMeta(
        version=recipe.version,
        classes=classes,
        threshold=0.5,
        test_time_flips=recipe.test_time_flips,
        scratch_merge_gap_px=recipe.scratch_merge_gap_px,
        candidates=recipe.candidates,
        training={
            "recipe": recipe.to_dict(),
            "data_fingerprint": fp,
            "dataset": str(dataset_root),
            "train_pairs": len(train_pairs),
            "validation_pairs": len(val_pairs),
            "validation_groups": sorted({p.group for p in val_pairs}),
            "train_groups": sorted({p.group for p in train_pairs}),
            "excluded_groups": sorted(exclude_groups),
            "torch": torch.__version__,
        },
    )
    if operating_point is not None:
        meta = replace(
            meta,
            threshold=operating_point.threshold,
            scratch_min_probability=operating_point.scratch_guard,
            metrics={"operating_point": asdict(operating_point), **(evidence or {})},
        )
    bundle = ModelBundle(bundle_dir, meta)
    bundle.save_meta()
    if val_pairs:
        bundle = calibrate(
            bundle, val_pairs, log=log, workers=recipe.workers, scratch_boards=recipe.calibration_scratch_boards
        )
    write_model_card(bundle)
    return bundle


def _split(
    recipe: TrainRecipe,
    dataset_root: Path,
    exclude_groups: Sequence[str],
    operating_point: OperatingPoint | None,
    max_train_pairs: int | None,
) -> tuple[list[AnnotatedPair], list[AnnotatedPair]]:
    """(training, calibration) pairs: every pair trains when the operating point comes from elsewhere."""
    pairs = [
        p
        for p in load_dataset(dataset_root, recipe.dataset_format, recipe.list_file)
        if p.group not in set(exclude_groups)
    ]
    train_pairs: list[AnnotatedPair]
    val_pairs: list[AnnotatedPair]
    if operating_point is not None:
        train_pairs, val_pairs = list(pairs), []
    else:
        train_pairs, val_pairs = split_pairs(pairs, recipe.validation_groups, recipe.seed)
    if max_train_pairs is not None:
        train_pairs = train_pairs[:max_train_pairs]
    if not train_pairs:
        raise DatasetError("no training pairs after the validation split")
    return train_pairs, val_pairs


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


def fit(
    recipe: TrainRecipe,
    train_set: SampleSet,
    n_outputs: int,
    ckpt_path: Path,
    fp: str,
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> CandidateNet:
    """Train the network on the samples, checkpointing every epoch (a rerun resumes from the last one
    when the recipe's weight settings and the data are the same)."""
    model = CandidateNet(N_CHANNELS, n_outputs, recipe.width, CROP_PX)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(train_set.labels) / recipe.batch_size)))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.learning_rate, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.15
    )
    start_epoch = 0
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, weights_only=False)
        if (
            weight_settings(ckpt.get("recipe", {})) == weight_settings(recipe.to_dict())
            and ckpt.get("fingerprint") == fp
        ):
            model.load_state_dict(ckpt["model"])
            optimiser.load_state_dict(ckpt["optimiser"])
            scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["torch_rng"])
            np.random.set_state(ckpt["numpy_rng"])
            start_epoch = int(ckpt["epoch"])
            log(f"resuming from epoch {start_epoch}")
        else:
            log("checkpoint is from another recipe or dataset: starting afresh")

    x_all = torch.from_numpy(train_set.crops)
    y_all = torch.from_numpy(train_set.labels)
    b_all = torch.from_numpy(train_set.boxes)
    ce = nn.CrossEntropyLoss(label_smoothing=0.02)
    rng = np.random.default_rng(recipe.seed + 1)
    for _ in range(start_epoch):  # keep the shuffling stream identical when resuming
        rng.permutation(len(y_all))
        rng.integers(0, 8, steps_per_epoch)
    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(y_all)))
        ks = rng.integers(0, 8, steps_per_epoch)
        total_loss = 0.0
        t0 = time.time()
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            x, b = _dihedral(x_all[idx].float(), b_all[idx], int(ks[step]))
            y = y_all[idx]
            logits, box = model(x)
            loss = ce(logits, y)
            pos = y > 0
            if pos.any():
                loss = loss + recipe.box_loss_weight * nn.functional.smooth_l1_loss(box[pos], b[pos], beta=0.05)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total_loss += float(loss.detach())
            if progress:
                progress("epochs", 0, recipe.epochs)
        log(f"epoch {epoch + 1}/{recipe.epochs}: loss {total_loss / steps_per_epoch:.4f} ({time.time() - t0:.0f}s)")
        torch.save(
            {
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state(),
                "recipe": recipe.to_dict(),
                "fingerprint": fp,
            },
            ckpt_path,
        )
        if progress:
            progress("epochs", 1, recipe.epochs)
    return model


def write_model_card(bundle: ModelBundle) -> Path:
    """A human-readable card beside the weights: data, recipe, measured validation figures."""
    meta = bundle.meta
    t = meta.training
    v = meta.metrics.get("validation", {})
    lines = [
        f"# Model card: {meta.version}",
        "",
        "Candidate classifier of the `aoi` inspection engine: for each region where the tested image",
        "disagrees with its registered golden template, it predicts background or one of the defect",
        f"types ({', '.join(c.value for c in meta.classes)}) and refines the defect's box.",
        "",
        "## Data",
        f"- Trained on `{t.get('dataset', '?')}` ({t.get('train_pairs', '?')} pairs, "
        f"fingerprint `{t.get('data_fingerprint', '?')}`), plus augmented copies (misalignment,",
        "  brightness, noise) and synthetic scratches painted on those real boards.",
        "- DeepPCB: Tang et al. 2019, MIT license; its authors ask that it be used for research.",
        f"- Validation: held-out groups {t.get('validation_groups', [])} "
        f"({t.get('validation_pairs', '?')} pairs), never trained on.",
        "",
        "## Recipe",
        "```json",
        json.dumps(t.get("recipe", {}), indent=1, sort_keys=True),
        "```",
        "",
        "## Measured on the validation groups (by `aoi train`'s calibration step)",
        f"- Operating threshold (best DeepPCB F-score): {meta.threshold}",
        f"- Scratch guard (probability a scratch call needs): {meta.scratch_min_probability}",
    ]
    if v:
        lines += [
            f"- DeepPCB protocol: mAP {v.get('deeppcb_map')}, F-score {v.get('f_score')} "
            f"(precision {v.get('precision')}, recall {v.get('recall')})",
            f"- mAP@0.33 {v.get('map33')}, mAP@0.5 {v.get('map50')}",
            f"- AP@0.33 per class: {json.dumps(v.get('ap33', {}))}",
        ]
    point = meta.metrics.get("operating_point")
    if point:
        lines.append(f"- Threshold and scratch guard chosen by: {point.get('chosen_by')}")
    cv = meta.metrics.get("cross_validation")
    if cv:
        lines += [
            "",
            "## Leave-one-group-out cross-validation of this recipe (`aoi cv`)",
            "Each row: a model trained without the group, its threshold chosen on another training group,",
            "scored on the group at that threshold.",
            "",
            "| group | pairs | mAP@0.33 | DeepPCB AP | F | precision | recall | threshold |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['group']} | {r['pairs']} | {r['map33']} | {r['deeppcb_map']} | {r['f_score']} | "
            f"{r['precision']} | {r['recall']} | {r['threshold']} |"
            for r in cv.get("folds", [])
        ]
        lines.append(
            f"| mean (worst) | | {cv.get('mean_map33')} ({cv.get('worst_map33')}) | {cv.get('mean_deeppcb_map')} | "
            f"{cv.get('mean_f_score')} ({cv.get('worst_f_score')}) | | | |"
        )
    if "scratch_calibration" in meta.metrics:
        lines.append(f"- Scratch on synthetic calibration boards: {json.dumps(meta.metrics['scratch_calibration'])}")
    lines += [
        "",
        "Reproduce: `aoi cv ../shared/datasets/deeppcb/PCBData --out runs/cv`, then `aoi train "
        "../shared/datasets/deeppcb/PCBData --out runs/default --operating-point-from runs/cv/cv.json`.",
        "",
    ]
    path = bundle.path / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


SCRATCH_GUARD_GRID = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
CALIBRATION_SCRATCH_SEED = 7_000  # aoi bench measures scratches on other boards (another seed)


def calibrate(
    bundle: ModelBundle,
    val_pairs: Sequence[AnnotatedPair],
    *,
    log: Callable[[str], None],
    workers: int = 2,
    scratch_boards: int = 0,
    scratch_f_floor: float = 0.95,
) -> ModelBundle:
    """Choose the operating threshold with the best DeepPCB F-score on validation; record the metrics.

    Scratches are learnt from synthetic strokes only, so a real defect merged with a thin residue can
    look like one. With `scratch_boards`, the scratch guard (the probability a scratch call needs) is
    chosen too: the value with the best validation F among those that keep the scratch F-score on
    synthetic calibration boards at or above `scratch_f_floor`.
    """
    guards = SCRATCH_GUARD_GRID if scratch_boards and DefectType.SCRATCH in bundle.meta.classes else (0.0,)
    best: tuple[float, float, ModelBundle, dict[str, Any]] | None = None
    for guard in guards:
        trial = ModelBundle(bundle.path, replace(bundle.meta, scratch_min_probability=guard))
        images = [
            ImageEval(o.detections, o.pair.labels)
            for o in run_pairs(Inspector(trial), val_pairs, score_floor=trial.meta.score_floor, workers=workers)
            if o.failure is None
        ]
        report = accuracy_report(images, None)
        trial = ModelBundle(bundle.path, replace(trial.meta, threshold=report.operating_point.threshold))
        metrics: dict[str, Any] = {"validation": report.as_dict()}
        if len(guards) > 1:
            from aoi.evaluation.bench import scratch_f_score

            scratch = scratch_f_score(Inspector(trial), scratch_boards, seed=CALIBRATION_SCRATCH_SEED, workers=workers)
            metrics["scratch_calibration"] = {**scratch, "seed": CALIBRATION_SCRATCH_SEED, "guard": guard}
            log(f"scratch guard {guard}: validation F {report.operating_point.f_score:.4f}, scratch {scratch}")
            if scratch["f_score"] < scratch_f_floor:
                continue
        if best is None or report.operating_point.f_score > best[0]:
            best = (report.operating_point.f_score, guard, trial, metrics)
    if best is None:  # no guard keeps scratches: take none
        return calibrate(bundle, val_pairs, log=log, workers=workers)
    _, guard, chosen, metrics = best
    log(f"validation: {json.dumps(metrics['validation'])} (scratch guard {guard})")
    calibrated = ModelBundle(bundle.path, replace(chosen.meta, metrics=metrics))
    calibrated.save_meta()
    return calibrated


__all__ = ["train", "calibrate", "load_dataset", "split_pairs", "AugmentConfig"]
