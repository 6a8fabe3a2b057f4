"""The training loop of `aoi train`: fit the candidate network on the samples, checkpointing every
epoch so that a rerun resumes, and export it to ONNX.

Resuming needs the same data fingerprint and the same `weight_settings` of the recipe (fields that
only name the model or tune serving and calibration, `SERVING_FIELDS`, may change). Deterministic for
a given seed on one machine.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aoi.detection.candidates import CROP_PX, N_CHANNELS
from aoi.training.data import Progress
from aoi.training.network import CandidateNet
from aoi.training.recipe import TrainRecipe
from aoi.training.samples import SampleSet

# Recipe fields that only name the model or tune serving and calibration: changing them keeps the weights.
SERVING_FIELDS = frozenset(
    {"version", "test_time_flips", "scratch_merge_gap_px", "calibration_scratch_boards", "workers"}
)


def weight_settings(recipe: dict[str, Any]) -> dict[str, Any]:
    """The part of a recipe that decides the trained weights (what a checkpoint must match to resume)."""
    return {k: v for k, v in recipe.items() if k not in SERVING_FIELDS}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dihedral(x: torch.Tensor, boxes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
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
            x, b = dihedral(x_all[idx].float(), b_all[idx], int(ks[step]))
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


def export_onnx(model: nn.Module, path: Path) -> None:
    """The network as ONNX (opset 17) with a dynamic batch: `crops` in, `logits` and `boxes` out."""
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
