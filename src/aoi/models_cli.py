"""Commands of the learning loop: `aoi train --reviews`, `aoi models list|promote|rollback` and
`aoi models quantize` (an 8-bit copy of a bundle's network for faster serving).

The lead registers these functions in `aoi.cli`. The registry lives in `<data dir>/models`; `aoi serve`
serves its promoted model unless `--model` names another, and follows promotions and rollbacks while it
runs (`aoi.api.model_follow`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aoi.api.settings import DEFAULT_DATA_DIR
from aoi.data.annotations import AnnotatedPair
from aoi.detection.model_registry import ModelRegistry, RegistryError

err = Console(stderr=True, soft_wrap=True)


@contextmanager
def train_extra(needed_by: str) -> Iterator[None]:
    """Imports from the 'train' extra (torch): without it, say what needs it and exit with status 2."""
    try:
        yield
    except ImportError as exc:
        err.print(f"[red]{needed_by} needs the 'train' extra (pip install 'aoi[train]'): {exc}")
        raise typer.Exit(2) from exc


SERVED_WHEN = "a running `aoi serve` without --model serves it within seconds; otherwise at its next start"

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="The line's data folder (its registry is DATA_DIR/models).")
]


def retrain(
    reviews: Path,
    database_url: str | None,
    out: Path,
    model: Path | None,
    epochs: int | None,
    holdout_fraction: float,
    check_dataset: Path | None,
    check_groups: str | None,
    tolerance: float,
    promote: bool,
    replay_dataset: Path | None = None,
    replay_pairs: int = 300,
) -> None:
    """`aoi train --reviews DATA_DIR`: fine-tune the serving model on the line's reviews (see `aoi train`)."""
    from dataclasses import replace

    from aoi.cli import _progress, _task_updater
    from aoi.detection.bundle import ModelBundle
    from aoi.schema import InspectionInputError
    from aoi.storage import Storage

    with train_extra("training"):
        from aoi.training.data import load_dataset
        from aoi.training.finetune import FineTuneSettings
        from aoi.training.retrain import retrain_from_reviews
    if not reviews.is_dir():
        err.print(f"[red]error:[/red] data folder {reviews} not found")
        raise typer.Exit(2)
    registry = ModelRegistry.in_data_dir(reviews)
    try:
        settings = FineTuneSettings(holdout_fraction=holdout_fraction)
        if epochs is not None:
            settings = replace(settings, epochs=epochs)
        base = ModelBundle.load(model) if model is not None else (registry.active_bundle() or ModelBundle.load())
        held_out: dict[str, Sequence[AnnotatedPair]] = {}
        groups = [g.strip() for g in (check_groups or "").split(",") if g.strip()]
        if check_dataset is not None:
            pairs = load_dataset(check_dataset, "deeppcb", None)
            chosen = [p for p in pairs if not groups or p.group in groups]
            if not chosen:
                raise InspectionInputError(f"no pairs of groups {groups} in {check_dataset}")
            held_out[f"held-out groups {','.join(groups) or 'all'}"] = chosen
        replay: list[AnnotatedPair] = []
        if replay_dataset is not None:
            checked = {(p.test_path.resolve(), p.image_id) for chosen in held_out.values() for p in chosen}
            pool = [
                p
                for p in load_dataset(replay_dataset, "deeppcb", None)
                if (p.test_path.resolve(), p.image_id) not in checked and p.group not in groups
            ]
            if not pool:
                raise InspectionInputError(f"{replay_dataset}: no pairs outside the check groups to replay")
            pick = random.Random(settings.seed).sample(range(len(pool)), min(replay_pairs, len(pool)))
            replay = [pool[i] for i in sorted(pick)]
        storage = Storage.open(reviews, database_url)
    except InspectionInputError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        with _progress() as bar:
            outcome = retrain_from_reviews(
                storage,
                registry,
                base,
                out,
                settings,
                held_out=held_out,
                replay=replay,
                tolerance=tolerance,
                promote=promote,
                progress=_task_updater(bar),
                log=bar.console.print,
            )
    except InspectionInputError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        storage.close()
    comparison = outcome.result.comparison
    if outcome.promoted:
        err.print(f"promoted {outcome.registered.version}: {SERVED_WHEN}")
    elif comparison.fit_to_promote:
        err.print(f"registered {outcome.registered.version}; promote it with `aoi models promote`")
    else:
        err.print(f"registered {outcome.registered.version}, not promoted: {'; '.join(comparison.reasons)}")
    print(
        json.dumps(
            {
                "candidate": outcome.registered.version,
                "base": outcome.result.base_version,
                "train_boards": outcome.result.train_boards,
                "promoted": outcome.promoted,
                **comparison.as_dict(),
            }
        )
    )


def models_list(data_dir: DataDirOption = DEFAULT_DATA_DIR) -> None:
    """The registered models, the one served (*) and how each compared with its base."""
    registry = ModelRegistry.in_data_dir(data_dir)
    try:
        models, active = registry.models(), registry.active_version()
    except RegistryError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if active is None:
        typer.echo("serving: the bundled default model (nothing promoted)")
    for entry in models:
        marker = "*" if entry.version == active else " "
        checks = entry.evidence.get("comparison", {}).get("checks", {})
        summary = "; ".join(
            f"{name}: F {pair['current']['f_score']:.4f} -> {pair['candidate']['f_score']:.4f}, false calls/board "
            f"{pair['current']['false_calls_per_board']:.3f} -> {pair['candidate']['false_calls_per_board']:.3f}"
            for name, pair in checks.items()
        )
        typer.echo(f"{marker} {entry.version}  added {entry.added_at}  {summary}".rstrip())


def models_promote(
    version: Annotated[str, typer.Argument(help="A version as `aoi models list` shows it.")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Serve this registered model from the next `aoi serve` start on."""
    try:
        ModelRegistry.in_data_dir(data_dir).promote(version, reason="by hand")
    except RegistryError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(f"promoted {version}: {SERVED_WHEN}")


def models_rollback(data_dir: DataDirOption = DEFAULT_DATA_DIR) -> None:
    """Serve again the model served before the current one (the bundled default if none)."""
    try:
        now = ModelRegistry.in_data_dir(data_dir).rollback()
    except RegistryError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(f"now serving {now or 'the bundled default model'}: {SERVED_WHEN}")


def models_quantize(
    bundle: Annotated[Path, typer.Argument(help="The model bundle folder (it gains model.int8.onnx).")],
    dataset: Annotated[Path, typer.Argument(help="DeepPCB-layout dataset root to calibrate on.")],
    list_file: Annotated[
        str, typer.Option("--list", help="Pair list inside DATASET: calibrate on pairs the bundle trained on.")
    ] = "trainval.txt",
    groups: Annotated[
        str | None, typer.Option("--groups", help="Only these groups of the list (comma-separated).")
    ] = None,
    pairs: Annotated[int, typer.Option("--pairs", min=1, help="How many pairs of the list (spread evenly).")] = 60,
) -> None:
    """Write an 8-bit copy of BUNDLE's network, calibrated on its candidates' crops, and serve it.

    The float model.onnx stays (fine-tuning starts from it). Check the result with `aoi eval` on pairs
    that were not used here before shipping it."""
    from aoi.data.deeppcb import read_deeppcb
    from aoi.detection.bundle import ModelBundle
    from aoi.schema import InspectionInputError

    with train_extra("quantising"):
        from aoi.training.model_card import write_model_card
        from aoi.training.quantize import crops_of_pairs, quantize_bundle
    try:
        loaded = ModelBundle.load(bundle)
        listed = read_deeppcb(dataset, list_file)
        if groups:
            wanted = {g.strip() for g in groups.split(",") if g.strip()}
            listed = [p for p in listed if p.group in wanted]
            if not listed:
                raise InspectionInputError(f"no pair of {list_file} is in the groups {sorted(wanted)}")
        chosen = listed[:: max(1, len(listed) // pairs)][:pairs]
        quantized = quantize_bundle(loaded, crops_of_pairs(loaded, chosen))
        if "fine_tuned_from" not in quantized.meta.training:  # a trained bundle's card says what it serves
            write_model_card(quantized)
    except InspectionInputError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(f"{quantized.meta.version}: serving {quantized.inference_path} (calibrated on {len(chosen)} pairs)")


__all__ = ["models_list", "models_promote", "models_quantize", "models_rollback", "retrain"]
