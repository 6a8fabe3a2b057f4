"""`aoi train --reviews`: fine-tune the serving model on what the operators decided, then compare.

The operators' decisions are labels: a confirmed defect keeps its type, a reclassified one takes the
operator's, a false call is dropped (its candidate becomes a background sample: a hard negative), and
a defect the operator added because the engine missed it is a label like any confirmed one. The
reviewed boards are split by time: the most recent fraction is held back, and the candidate model is
scored against the current one there (and, when given, on held-out dataset groups), each at its own
threshold. Only a candidate that is not worse on every check is fit to promote.

Fine-tuning starts from the current bundle's weights, read back from its ONNX graph (the export folds
each batch norm into its convolution, so the rebuilt network carries identity batch norms whose
statistics stay frozen while the convolutions, biases and heads learn).
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aoi.data.annotations import AnnotatedPair, DatasetError
from aoi.detection.bundle import FLOAT_MODEL, ModelBundle
from aoi.detection.candidates import CROP_PX, N_CHANNELS
from aoi.detection.inspector import Inspector
from aoi.evaluation.metrics import (
    DEEPPCB_IOU,
    ImageEval,
    deeppcb_operating_point,
    mean_ap,
    per_class_ap,
    same_defect_scores,
)
from aoi.evaluation.runner import run_pairs
from aoi.training.data import Progress
from aoi.training.loop import dihedral, export_onnx
from aoi.training.network import CandidateNet
from aoi.training.quantize import quantize_bundle
from aoi.training.samples import AugmentConfig, SampleSet, build_samples

REVIEWS_SUFFIX = "+reviews-"  # version of a fine-tuned model: <first base>+reviews-<UTC time>


@dataclass(frozen=True)
class FineTuneSettings:
    epochs: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    box_loss_weight: float = 5.0
    variants: int = 2  # augmented copies of each reviewed board besides the original
    hard_negative_weight: float = 1.0  # loss weight of background the base model calls a defect (4: F 0.913 vs 0.928)
    holdout_fraction: float = 0.25  # the most recent reviewed boards, kept aside to compare the models
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise DatasetError(f"fine-tuning needs at least 1 epoch, got {self.epochs}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise DatasetError(f"holdout fraction must be between 0 and 1, got {self.holdout_fraction}")
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise DatasetError(f"learning rate must be positive, got {self.learning_rate}")


@dataclass(frozen=True)
class ModelScore:
    """One model on one set of boards, at its own operating threshold."""

    boards: int
    truth: int
    f_score: float
    precision: float
    recall: float
    false_calls: int  # reported defects that are no true defect (`same_defect_scores`: what an operator rejects)
    false_calls_per_board: float
    map33: float | None  # only where the boards carry enough defects for it to mean something

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    """The candidate against the current model on each check set; `fit_to_promote` when not worse on all."""

    checks: dict[str, dict[str, ModelScore]]  # check name -> {"current": ..., "candidate": ...}
    tolerance: float
    fit_to_promote: bool
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "checks": {name: {k: s.as_dict() for k, s in pair.items()} for name, pair in self.checks.items()},
            "tolerance": self.tolerance,
            "fit_to_promote": self.fit_to_promote,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class FineTuneResult:
    bundle: ModelBundle
    base_version: str
    train_boards: int
    holdout_boards: int
    comparison: Comparison
    train_ids: tuple[str, ...] = ()  # image ids of the boards it learnt from


def network_from_bundle(bundle: ModelBundle) -> CandidateNet:
    """The bundle's classifier as a trainable torch network with the same outputs as its ONNX graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(bundle.onnx_path)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    if not convs or len(gemms) != 3:
        raise DatasetError(f"{bundle.onnx_path}: not a candidate classifier this trainer built")
    width = int(weights[convs[0].input[1]].shape[0])
    n_outputs = int(weights[gemms[1].input[1]].shape[0])
    model = CandidateNet(N_CHANNELS, n_outputs, width, CROP_PX)
    conv_modules = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    norm_modules = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(conv_modules) != len(convs) or n_outputs != len(bundle.meta.classes) + 1:
        raise DatasetError(f"{bundle.onnx_path}: layers do not match this trainer's network")
    with torch.no_grad():
        for node, conv, norm in zip(convs, conv_modules, norm_modules, strict=True):
            kernel = torch.from_numpy(weights[node.input[1]].copy())
            if kernel.shape != conv.weight.shape:
                raise DatasetError(
                    f"{bundle.onnx_path}: convolution {tuple(kernel.shape)} != {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(kernel)
            bias = weights[node.input[2]] if len(node.input) > 2 else np.zeros(kernel.shape[0], np.float32)
            norm.weight.fill_(1.0)
            norm.bias.copy_(torch.from_numpy(bias.copy()))
            assert norm.running_mean is not None and norm.running_var is not None  # tracked by default
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(var + eps) = x
        linears: tuple[nn.Linear, ...] = (model.neck[1], model.cls, model.box)  # type: ignore[assignment]
        for node, linear in zip(gemms, linears, strict=True):
            linear.weight.copy_(torch.from_numpy(weights[node.input[1]].copy()))
            linear.bias.copy_(torch.from_numpy(weights[node.input[2]].copy()))
    model.eval()
    return model


def split_by_time(
    pairs: Sequence[AnnotatedPair], captured_at: Sequence[datetime], holdout_fraction: float
) -> tuple[list[AnnotatedPair], list[AnnotatedPair]]:
    """(older boards to train on, the most recent `holdout_fraction` to compare on); each side keeps at least one."""
    if len(pairs) < 2:
        raise DatasetError(f"retraining needs at least 2 fully reviewed boards with a template, found {len(pairs)}")
    order = sorted(range(len(pairs)), key=lambda i: (captured_at[i], pairs[i].image_id))
    n_hold = min(len(pairs) - 1, max(1, round(len(pairs) * holdout_fraction)))
    cut = len(pairs) - n_hold
    return [pairs[i] for i in order[:cut]], [pairs[i] for i in order[cut:]]


def score_model(inspector: Inspector, pairs: Sequence[AnnotatedPair], *, workers: int = 2) -> ModelScore:
    """F, precision, recall and false calls per board of `inspector` on `pairs`, at its own threshold."""
    threshold = inspector.meta.threshold
    images = [
        ImageEval(o.detections, o.pair.labels)
        for o in run_pairs(inspector, pairs, score_floor=inspector.meta.score_floor, workers=workers)
        if o.failure is None
    ]
    point = deeppcb_operating_point(images, threshold)
    false_calls = 0
    for image in images:
        kept = [d.box_px for d in image.detections if d.confidence >= threshold]
        if kept:
            same = same_defect_scores(kept, [t.box_px for t in image.truth])
            false_calls += len(kept) if not image.truth else int((same.max(1) == 0).sum())
    truth = sum(len(i.truth) for i in images)
    map33 = mean_ap(per_class_ap(images, DEEPPCB_IOU)) if truth >= 20 else None
    return ModelScore(
        boards=len(images),
        truth=truth,
        f_score=point.f_score,
        precision=point.precision,
        recall=point.recall,
        false_calls=false_calls,
        false_calls_per_board=false_calls / len(images) if images else 0.0,
        map33=map33,
    )


def compare(
    current: Inspector,
    candidate: Inspector,
    checks: dict[str, Sequence[AnnotatedPair]],
    *,
    tolerance: float = 0.0,
    workers: int = 2,
) -> Comparison:
    """Both models on every check set. Not worse means, on every set: F-score and mAP@0.33 (where
    measured) no more than `tolerance` below the current model's, and no more false calls per board."""
    scored: dict[str, dict[str, ModelScore]] = {}
    reasons: list[str] = []
    for name, pairs in checks.items():
        if not pairs:
            continue
        now = score_model(current, pairs, workers=workers)
        new = score_model(candidate, pairs, workers=workers)
        scored[name] = {"current": now, "candidate": new}
        if new.f_score < now.f_score - tolerance:
            reasons.append(f"{name}: F-score {new.f_score:.4f} < current {now.f_score:.4f}")
        if now.map33 is not None and new.map33 is not None and new.map33 < now.map33 - tolerance:
            reasons.append(f"{name}: mAP@0.33 {new.map33:.4f} < current {now.map33:.4f}")
        if new.false_calls_per_board > now.false_calls_per_board + 1e-9:
            reasons.append(
                f"{name}: {new.false_calls_per_board:.3f} false calls per board"
                f" > current {now.false_calls_per_board:.3f}"
            )
    if not scored:
        reasons.append("nothing to compare on: no held-out boards")
    return Comparison(scored, tolerance, not reasons, tuple(reasons))


def _freeze_batch_norm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def hard_negative_weights(model: CandidateNet, samples: SampleSet, threshold: float, weight: float) -> np.ndarray:
    """Per-sample loss weights: `weight` for a background sample the model, as it is, would report (a
    false call like those the operators rejected), 1 for the rest."""
    model.eval()
    p_defect = np.empty(len(samples.labels), np.float32)
    with torch.no_grad():
        for start in range(0, len(samples.labels), 512):
            logits, _ = model(torch.from_numpy(samples.crops[start : start + 512]).float())
            p_defect[start : start + 512] = 1.0 - torch.softmax(logits, 1)[:, 0].numpy()
    hard = (samples.labels == 0) & (p_defect >= threshold)
    return np.where(hard, weight, 1.0).astype(np.float32)


def fine_tune_network(
    model: CandidateNet,
    samples: SampleSet,
    settings: FineTuneSettings,
    *,
    threshold: float,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> CandidateNet:
    """A few epochs from the given weights at a low, decaying learning rate; batch-norm statistics frozen.
    Background samples the model reports at `threshold` (hard negatives) weigh more."""
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    weights = np.ones(len(samples.labels), np.float32)
    if settings.hard_negative_weight != 1.0:
        weights = hard_negative_weights(model, samples, threshold, settings.hard_negative_weight)
        log(f"{int((weights > 1).sum())} hard negatives weigh {settings.hard_negative_weight}x")
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = max(1, math.ceil(len(samples.labels) / settings.batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs * steps)
    x_all = torch.from_numpy(samples.crops)
    y_all = torch.from_numpy(samples.labels)
    b_all = torch.from_numpy(samples.boxes)
    w_all = torch.from_numpy(weights)
    ce = nn.CrossEntropyLoss(label_smoothing=0.02, reduction="none")
    for epoch in range(settings.epochs):
        model.train()
        _freeze_batch_norm(model)
        order = torch.from_numpy(rng.permutation(len(y_all)))
        flips = rng.integers(0, 8, steps)
        total, t0 = 0.0, time.time()
        for step in range(steps):
            idx = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            x, b = dihedral(x_all[idx].float(), b_all[idx], int(flips[step]))
            y, w = y_all[idx], w_all[idx]
            logits, box = model(x)
            loss = (ce(logits, y) * w).sum() / w.sum()
            positive = y > 0
            if positive.any():
                loss = loss + settings.box_loss_weight * nn.functional.smooth_l1_loss(
                    box[positive], b[positive], beta=0.05
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach())
        log(f"fine-tune epoch {epoch + 1}/{settings.epochs}: loss {total / steps:.4f} ({time.time() - t0:.0f}s)")
        if progress:
            progress("fine-tune epochs", 1, settings.epochs)
    model.eval()
    return model


def fine_tune(
    base: ModelBundle,
    train_pairs: Sequence[AnnotatedPair],
    out_dir: Path,
    settings: FineTuneSettings,
    *,
    checks: dict[str, Sequence[AnnotatedPair]],
    replay: Sequence[AnnotatedPair] = (),
    tolerance: float = 0.0,
    source: str = "",
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> FineTuneResult:
    """Fine-tune `base` on `train_pairs` into `out_dir/bundle` and compare it with `base` on `checks`.

    The candidate keeps the base's threshold, scratch guard and candidate settings: it is judged at the
    operating point the line already runs at. `replay`: pairs of the data the base learnt from, mixed in
    so that the model does not forget it while it learns the line's boards."""
    if not train_pairs:
        raise DatasetError("no reviewed boards to fine-tune on")
    classes = base.meta.classes
    recipe = base.meta.training.get("recipe", {})
    augment = replace(AugmentConfig(**recipe.get("augment", {})), variants=settings.variants)
    log(f"fine-tuning {base.meta.version} on {len(train_pairs)} reviewed boards ({settings.variants} variants each)")
    samples = build_samples(
        train_pairs,
        classes,
        seed=settings.seed,
        augment=augment,
        registration=base.meta.registration,
        candidates=base.meta.candidates,
        workers=settings.workers,
        progress=(lambda n: progress("reviewed samples", n, len(train_pairs))) if progress else None,
    )
    if replay:
        log(f"replaying {len(replay)} pairs of the base model's own training data")
        replayed = build_samples(
            replay,
            classes,
            seed=settings.seed + 1,
            augment=replace(augment, variants=1),
            registration=base.meta.registration,
            candidates=base.meta.candidates,
            workers=settings.workers,
            progress=(lambda n: progress("replay samples", n, len(replay))) if progress else None,
        )
        samples = SampleSet.concat([samples, replayed])
    used = samples.labels >= 0
    samples = SampleSet(samples.crops[used], samples.labels[used], samples.boxes[used], samples.image_index[used])
    if len(samples.labels) == 0:
        raise DatasetError("the reviewed boards give no candidates to learn from")
    counts = np.bincount(samples.labels, minlength=len(classes) + 1).tolist()
    log(f"{len(samples.labels)} samples; per class (background first): {counts}")
    model = fine_tune_network(
        network_from_bundle(base), samples, settings, threshold=base.meta.threshold, progress=progress, log=log
    )

    bundle_dir = out_dir / "bundle"
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    bundle_dir.mkdir(parents=True)
    export_onnx(model, bundle_dir / "model.onnx")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    training = {
        "fine_tuned_from": base.meta.version,  # the lineage of a chain of fine-tunings
        "reviews": source,
        "reviewed_train_boards": len(train_pairs),
        "replayed_pairs": len(replay),
        "samples_per_class": counts,
        "settings": asdict(settings),
        "torch": torch.__version__,
        "recipe": recipe,
    }
    root = base.meta.version.split(REVIEWS_SUFFIX)[0]  # one suffix however long the chain: the lineage
    meta = replace(
        base.meta, version=f"{root}{REVIEWS_SUFFIX}{stamp}", training=training, metrics={}, inference_model=FLOAT_MODEL
    )
    candidate = ModelBundle(bundle_dir, meta)
    candidate.save_meta()
    if base.meta.inference_model != FLOAT_MODEL:  # the base served an 8-bit copy: so does its candidate
        candidate = quantize_bundle(candidate, samples.crops, seed=settings.seed)
        meta = candidate.meta
    comparison = compare(Inspector(base), Inspector(candidate), checks, tolerance=tolerance, workers=settings.workers)
    candidate = ModelBundle(bundle_dir, replace(meta, metrics={"comparison": comparison.as_dict()}))
    candidate.save_meta()
    (bundle_dir / "MODEL_CARD.md").write_text(_model_card(candidate, comparison))
    holdout = max((len(p) for p in checks.values()), default=0)
    train_ids = tuple(p.image_id for p in train_pairs)
    return FineTuneResult(candidate, base.meta.version, len(train_pairs), holdout, comparison, train_ids)


def _model_card(bundle: ModelBundle, comparison: Comparison) -> str:
    t = bundle.meta.training
    lines = [
        f"# Model card: {bundle.meta.version}",
        "",
        f"Fine-tuned from `{t['fine_tuned_from']}` on {t['reviewed_train_boards']} boards reviewed by operators"
        f" ({t['reviews']}): confirmed and added defects as labels, false calls as background.",
        f"Threshold {bundle.meta.threshold} and scratch guard {bundle.meta.scratch_min_probability}"
        " kept from the base.",
        "",
        "## Against the base model, each at its own threshold",
        "",
        "| check | model | boards | defects | F | precision | recall | false calls / board | mAP@0.33 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, pair in comparison.checks.items():
        for role, s in pair.items():
            map33 = "" if s.map33 is None else f"{s.map33:.4f}"
            lines.append(
                f"| {name} | {role} | {s.boards} | {s.truth} | {s.f_score:.4f} | {s.precision:.4f} | {s.recall:.4f} "
                f"| {s.false_calls_per_board:.3f} | {map33} |"
            )
    verdict = "fit to promote" if comparison.fit_to_promote else "not fit to promote: " + "; ".join(comparison.reasons)
    lines += ["", f"Verdict: {verdict}.", ""]
    return "\n".join(lines)


__all__ = [
    "Comparison",
    "FineTuneResult",
    "FineTuneSettings",
    "ModelScore",
    "compare",
    "fine_tune",
    "network_from_bundle",
    "score_model",
    "split_by_time",
]
