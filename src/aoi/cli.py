"""The `aoi` command line: inspect, eval, train, bench, serve, keys, export, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aoi.models_cli import train_extra
from aoi.schema import DEFAULT_PX_PER_MM

if TYPE_CHECKING:
    from aoi.detection.tiling import TiledInspector

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Automated optical inspection of PCBs and substrates."
)
err = Console(stderr=True, soft_wrap=True)


T = TypeVar("T")


@app.callback()
def _root() -> None:
    """Automated optical inspection of PCBs and substrates."""


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@app.command()
def train(
    dataset: Annotated[
        Path | None, typer.Argument(help="Dataset root (DeepPCB layout, YOLO folder or COCO JSON).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder; the bundle lands in OUT/bundle.")] = Path(
        "runs/train"
    ),
    recipe: Annotated[Path, typer.Option("--recipe", help="Recipe JSON (see recipes/default.json).")] = Path(
        "recipes/default.json"
    ),
    fmt: Annotated[str | None, typer.Option("--format", help="deeppcb | yolo | coco (default: the recipe's).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Override the recipe's epoch count.")] = None,
    max_pairs: Annotated[int | None, typer.Option("--max-pairs", help="Use only the first N training pairs.")] = None,
    operating_point_from: Annotated[
        Path | None,
        typer.Option(
            "--operating-point-from",
            help="cv.json of `aoi cv` with this recipe: train on every group and take the folds' threshold.",
        ),
    ] = None,
    reviews: Annotated[
        Path | None,
        typer.Option(
            "--reviews",
            help="A line's data folder: fine-tune its serving model on the operators' reviews instead of training"
            " on DATASET; the candidate is compared with it on the most recent reviewed boards, registered in"
            " DATA_DIR/models and promoted when it is not worse.",
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="With --reviews: the line's PostgreSQL database.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="With --reviews: the bundle to start from (default: the line's serving model)."),
    ] = None,
    holdout_fraction: Annotated[
        float, typer.Option("--holdout-fraction", help="With --reviews: most recent share of boards kept to compare.")
    ] = 0.25,
    check_dataset: Annotated[
        Path | None,
        typer.Option("--check-dataset", help="With --reviews: a DeepPCB-layout dataset to compare the models on too."),
    ] = None,
    check_groups: Annotated[
        str | None, typer.Option("--check-groups", help="With --check-dataset: its groups to use, comma-separated.")
    ] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, help="With --reviews: F/mAP drop still counted as not worse.")
    ] = 0.0,
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="With --reviews: promote a candidate that is not worse.")
    ] = True,
    replay_dataset: Annotated[
        Path | None,
        typer.Option(
            "--replay-dataset",
            help="With --reviews: a DeepPCB-layout dataset the model learnt from, replayed while fine-tuning so it"
            " is not forgotten (never the --check-groups).",
        ),
    ] = None,
    replay_pairs: Annotated[
        int, typer.Option("--replay-pairs", min=1, help="With --replay-dataset: how many of its pairs to replay.")
    ] = 300,
) -> None:
    """Train the candidate classifier and write a model bundle (ONNX + metadata). Resumable: rerun to continue.

    With --reviews DATA_DIR, fine-tune the line's serving model on what its operators decided instead."""
    from dataclasses import replace

    if reviews is not None:
        from aoi.models_cli import retrain

        if dataset is not None:
            err.print("[red]error:[/red] give a DATASET or --reviews DATA_DIR, not both (see --check-dataset)")
            raise typer.Exit(2)
        out = Path("runs/retrain") if out == Path("runs/train") else out
        retrain(
            reviews,
            database_url,
            out,
            model,
            epochs,
            holdout_fraction,
            check_dataset,
            check_groups,
            tolerance,
            promote,
            replay_dataset,
            replay_pairs,
        )
        return
    if dataset is None:
        err.print(
            "[red]error:[/red] give a DATASET to train on, or --reviews DATA_DIR to fine-tune on a line's reviews"
        )
        raise typer.Exit(2)

    from aoi.schema import InspectionInputError

    with train_extra("training"):
        from aoi.training.recipe import TrainRecipe
        from aoi.training.trainer import OperatingPoint
        from aoi.training.trainer import train as run_training
    try:
        r = TrainRecipe.load(recipe)
        if fmt:
            r = replace(r, dataset_format=fmt)
        if epochs is not None:
            r = replace(r, epochs=epochs)
        point, evidence = None, None
        if operating_point_from is not None:
            point, evidence = _operating_point_of(operating_point_from, OperatingPoint)
        with _progress() as bar:
            bundle = run_training(
                r,
                dataset,
                out,
                progress=_task_updater(bar),
                log=bar.console.print,
                max_train_pairs=max_pairs,
                operating_point=point,
                evidence=evidence,
            )
    except InspectionInputError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    err.print(f"bundle written to {bundle.path} (threshold {bundle.meta.threshold})")
    print(json.dumps({"bundle": str(bundle.path), "threshold": bundle.meta.threshold, **bundle.meta.metrics}))


def _task_updater(bar: Progress) -> Callable[[str, int, int], None]:
    tasks: dict[str, TaskID] = {}

    def progress(task: str, advance: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = bar.add_task(task, total=total)
        bar.update(tasks[task], advance=advance)

    return progress


def _operating_point_of(path: Path, kind: type[T]) -> tuple[T, dict[str, object]]:
    """The operating point of an `aoi cv` summary, and the summary as the evidence for it."""
    from aoi.schema import InspectionInputError

    try:
        summary = json.loads(path.read_text())
        return kind(**summary["operating_point"]), {"cross_validation": summary}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InspectionInputError(f"{path}: not a cv.json with an operating_point ({exc})") from exc


@app.command()
def cv(
    dataset: Annotated[Path, typer.Argument(help="Dataset root with several groups (DeepPCB layout, YOLO, COCO).")],
    out: Annotated[Path, typer.Option("--out", help="One folder per fold, and cv.json.")] = Path("runs/cv"),
    recipe: Annotated[Path, typer.Option("--recipe", help="Recipe JSON to cross-validate.")] = Path(
        "recipes/default.json"
    ),
    only: Annotated[str | None, typer.Option("--only", help="Comma-separated groups: run just these folds.")] = None,
) -> None:
    """Leave-one-group-out: train without each group, score it; thresholds chosen inside the training groups.
    Resumable per fold. Last line: JSON with the per-group table and the operating point the folds choose."""
    from aoi.schema import InspectionInputError

    with train_extra("cross-validation"):
        from aoi.training.cv import cross_validate
        from aoi.training.recipe import TrainRecipe
    try:
        r = TrainRecipe.load(recipe)
        wanted = tuple(g for g in (only or "").split(",") if g)
        with _progress() as bar:
            summary = cross_validate(r, dataset, out, only=wanted, log=bar.console.print, progress=_task_updater(bar))
    except InspectionInputError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for row in summary["folds"]:
        err.print(
            f"{row['group']:>12}  mAP33 {row['map33']:.4f}  DeepPCB AP {row['deeppcb_map']:.4f}  "
            f"F {row['f_score']:.4f}  (thr {row['threshold']}, calibrated on {row['calibrated_on']})"
        )
    print(json.dumps(summary))


SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def _tiled_inspector(model: Path | None, threshold: float | None) -> TiledInspector:
    """The engine as every entry point uses it: wrapped in the one panel tiling (`TilingConfig.for_panels`),
    with the bundle's threshold or `threshold`."""
    from dataclasses import replace

    from aoi.detection.bundle import ModelBundle
    from aoi.detection.inspector import Inspector
    from aoi.detection.tiling import TiledInspector, TilingConfig

    bundle = ModelBundle.load(model)
    if threshold is not None:
        bundle = ModelBundle(bundle.path, replace(bundle.meta, threshold=threshold))
    return TiledInspector(Inspector(bundle), TilingConfig.for_panels())


@app.command()
def inspect(
    test: Annotated[
        Path | None,
        typer.Argument(
            help="Tested image, or a folder of <id>_test/<id>_temp pairs. Default: the bundled sample boards."
        ),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template", "-t", help="Golden template (for a single image) or a folder of same-named templates."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for JSON records and overlay PNGs.")] = Path(
        "aoi-results"
    ),
    model: Annotated[
        Path | None, typer.Option("--model", help="Model bundle folder (default: the bundled model).")
    ] = None,
    px_per_mm: Annotated[float, typer.Option("--px-per-mm", help="Calibration for box_mm.")] = DEFAULT_PX_PER_MM,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Confidence cut (default: the bundle's calibrated one).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Parallel images.")] = 2,
) -> None:
    """Inspect tested images against golden templates: one JSON record + one overlay PNG per image."""
    from aoi.batch import PairJob, discover_pairs, run_batch
    from aoi.schema import InspectionFailure, InspectionInputError

    source = SAMPLES_DIR if test is None else test
    try:
        if px_per_mm <= 0:
            raise typer.BadParameter("--px-per-mm must be positive")
        if not source.exists():
            raise InspectionInputError(f"{source}: not found (give a tested image or a folder of pairs)")
        inspector = _tiled_inspector(model, threshold)
        if source.is_dir():
            jobs = discover_pairs(source, template)
            if not jobs:
                raise InspectionInputError(f"{source}: no <id>_test.<ext> images found (or nothing beside --template)")
        else:
            if template is None:
                raise InspectionInputError(f"{source}: a single image needs --template")
            jobs = [PairJob(source.stem, source, template)]
    except InspectionInputError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    failed = 0
    n_defects = 0
    with _progress() as bar:
        task = bar.add_task("inspect", total=len(jobs), visible=len(jobs) > 1)
        for outcome in run_batch(inspector, jobs, out, px_per_mm=px_per_mm, workers=workers):
            bar.advance(task)
            if isinstance(outcome, InspectionFailure):
                failed += 1
                bar.console.print(f"[red]{outcome.image_id}: {outcome.error}: {outcome.message}")
                continue
            n_defects += len(outcome.defects)
            kinds = ", ".join(f"{d.type.value}@{[int(v) for v in d.box_px]}" for d in outcome.defects) or "no defects"
            colour = "green" if outcome.verdict.value == "pass" else "red"
            bar.console.print(
                f"{outcome.image_id}: [{colour}]{outcome.verdict.value.upper()}[/{colour}] {kinds} "
                f"({outcome.timings_ms['total']:.1f} ms)"
            )
    summary = {
        "images": len(jobs),
        "failed": failed,
        "defects": n_defects,
        "out": str(out),
        "model": inspector.model_version,
    }
    print(json.dumps(summary))
    if failed:
        raise typer.Exit(1)


@app.command("eval")
def evaluate(
    root: Annotated[Path, typer.Argument(help="DeepPCB-layout root folder.")],
    list_file: Annotated[
        str, typer.Option("--list", help="List file of '<image> <annotation>' lines.")
    ] = "trainval.txt",
    out: Annotated[Path, typer.Option("--out", help="Folder for one DeepPCB submission file per image.")] = Path(
        "aoi-eval"
    ),
    model: Annotated[Path | None, typer.Option("--model", help="Model bundle folder (default: bundled).")] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Operating threshold (default: the bundle's).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers")] = 2,
) -> None:
    """Score a model on a DeepPCB-layout list: protocol figures, per-class AP, confusion, images/s. Last line: JSON."""
    from aoi.evaluation.cli_eval import run_eval

    code = run_eval(root, list_file, out, model, threshold, workers, err)
    raise typer.Exit(code)


@app.command()
def bench(
    root: Annotated[Path, typer.Argument(help="DeepPCB-layout root folder.")],
    list_file: Annotated[str, typer.Option("--list", help="List file.")] = "trainval.txt",
    groups: Annotated[
        str | None,
        typer.Option("--groups", help="Comma-separated groups to keep (default: the bundle's validation groups)."),
    ] = None,
    model: Annotated[Path | None, typer.Option("--model")] = None,
    workers: Annotated[int, typer.Option("--workers")] = 2,
    sweep: Annotated[bool, typer.Option("--sweep/--no-sweep", help="Run the robustness sweep.")] = True,
    scratch_boards: Annotated[
        int, typer.Option("--scratch-boards", help="Synthetic boards for the scratch F-score (0: skip).")
    ] = 200,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N pairs.")] = None,
    substrate_designs: Annotated[
        int,
        typer.Option(
            "--substrate-designs", help="Synthetic fine-pitch substrate designs for found-rate per type (0: skip)."
        ),
    ] = 0,
    substrate_per_type: Annotated[
        int, typer.Option("--substrate-per-type", min=1, help="Captures of each defect type per substrate design.")
    ] = 4,
) -> None:
    """Accuracy, per-stage ms, images/s and peak memory on the CPU, plus the robustness sweep. Last line: JSON."""
    from aoi.evaluation.bench import run_bench

    if substrate_designs < 0:
        raise typer.BadParameter("--substrate-designs must be >= 0")
    report = run_bench(root, list_file, groups, model, workers, sweep, scratch_boards, limit, err)
    if substrate_designs:
        from aoi.detection.inspector import Inspector
        from aoi.evaluation.substrate_bench import run_substrate_bench

        report["substrate"] = run_substrate_bench(Inspector.load(model), substrate_designs, per_type=substrate_per_type)
        err.print(f"fine-pitch substrate: {report['substrate']}")
    print(json.dumps(report))


@app.command()
def tolerance(
    good: Annotated[list[Path], typer.Argument(help="Good captures (defect-free) of one design and capture setup.")],
    template: Annotated[Path, typer.Option("--template", "-t", help="The design's golden template.")],
    metric: Annotated[str, typer.Option("--metric", help="euclidean (sub-pixel) | chessboard.")] = "euclidean",
    fine_pitch: Annotated[
        bool,
        typer.Option(
            "--fine-pitch",
            help="3-6 px line/space: also learn the sub-pixel registration, optics blur and grey-level threshold.",
        ),
    ] = False,
) -> None:
    """Learn the edge band and gross-difference size from good captures. Prints the settings as JSON."""
    from aoi.data.images import read_image
    from aoi.detection.candidates import CandidateConfig
    from aoi.detection.tolerance import learn_capture_tolerance, learn_fine_pitch_setup
    from aoi.schema import InspectionInputError

    try:
        reference = read_image(template)
        pairs = [(read_image(g), reference, ()) for g in good]
        if fine_pitch:
            setup = learn_fine_pitch_setup(pairs, CandidateConfig())
            learnt = setup.tolerance
            settings: dict[str, object] = dict(setup.settings())
        else:
            learnt = learn_capture_tolerance(pairs, metric=metric)
            settings = {
                "candidates": {
                    "tolerance_px": learnt.tolerance_px,
                    "tolerance_metric": metric,
                    "gross_area_px": learnt.gross_area_px,
                }
            }
    except InspectionInputError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    print(json.dumps({**settings, "good_captures": learnt.pairs, "edge_pixels": learnt.edge_pixels}))


def _register_service_commands() -> None:
    from aoi import service_cli

    app.command("serve")(service_cli.serve)
    app.command("export")(service_cli.export)
    app.command("report")(service_cli.report)
    keys = typer.Typer(
        no_args_is_help=True, help="API keys for the line service: writes, and reads unless the service opens them."
    )
    keys.command("create")(service_cli.keys_create)
    keys.command("list")(service_cli.keys_list)
    keys.command("revoke")(service_cli.keys_revoke)
    app.add_typer(keys, name="keys")
    from aoi import models_cli

    models = typer.Typer(no_args_is_help=True, help="The line's model registry: list, promote, roll back.")
    models.command("list")(models_cli.models_list)
    models.command("promote")(models_cli.models_promote)
    models.command("rollback")(models_cli.models_rollback)
    models.command("quantize")(models_cli.models_quantize)
    app.add_typer(models, name="models")


_register_service_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
