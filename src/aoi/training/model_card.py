"""The model card of a bundle: a human-readable summary beside the weights (data, recipe, measured
figures), written from the bundle's metadata."""

from __future__ import annotations

import json
from pathlib import Path

from aoi.detection.bundle import ModelBundle


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
        "## Serving graph",
        f"- `{meta.inference_model}`"
        + (
            " (8-bit copy of `model.onnx`, calibrated on training crops; `model.onnx` is the float network)"
            if meta.inference_model != "model.onnx"
            else " (float)"
        ),
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
