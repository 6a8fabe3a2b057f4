"""Commands of the line service: `aoi serve`, `aoi keys create|list|revoke`, `aoi export` and `aoi report`.

Plain functions: `aoi.cli` registers them as commands of the one `aoi` app.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from aoi.api.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_UPLOAD_RESULT_TIMEOUT_S,
    DEFAULT_UPLOAD_WAIT_S,
    ServiceSettings,
)
from aoi.shifts import DEFAULT_SHIFTS

log = logging.getLogger("aoi.serve")

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="Folder for the SQLite database, the image store and the inbox/ hot folder.")
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql://user@host/db to use PostgreSQL instead of SQLite."),
]


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOption = None,
    demo: Annotated[bool, typer.Option("--demo", help="Also feed synthetic boards continuously.")] = False,
    camera: Annotated[
        str | None, typer.Option("--camera", help="OpenCV camera: device index, video file or RTSP URL.")
    ] = None,
    camera_product: Annotated[
        str | None, typer.Option("--camera-product", help="Product (id or name) of the camera's boards.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Model bundle folder (default: the one promoted in DATA_DIR/models, else the bundled one)."
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Largest accepted request body, in MiB (413 above).")
    ] = DEFAULT_MAX_UPLOAD_BYTES / 2**20,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Inspection threads of the line: the one CPU budget, shared by HTTP uploads, the hot folder,"
            " camera and demo. Default: 1 per core.",
        ),
    ] = None,
    engine_processes: Annotated[
        bool,
        typer.Option(
            "--engine-processes/--engine-threads",
            help="Run the engine in one worker process per inspect worker (default: the engine's Python then"
            " holds no lock the web server and the other workers wait on), or in the service's own threads.",
        ),
    ] = True,
    no_hot_folder: Annotated[bool, typer.Option("--no-hot-folder", help="Do not watch DATA_DIR/inbox.")] = False,
    upload_concurrency: Annotated[
        int | None,
        typer.Option(
            "--upload-concurrency",
            min=1,
            help="Deprecated: uploads are inspected by the line's --workers. Now only sizes the upload door"
            " (with --upload-queue). Default: 1 per core.",
        ),
    ] = None,
    upload_queue: Annotated[
        int | None,
        typer.Option(
            "--upload-queue",
            min=0,
            help="Uploads admitted at once beyond --upload-concurrency; past both an upload is refused at once"
            " (503 + Retry-After, before its body is read). Default: 4 x --upload-concurrency.",
        ),
    ] = None,
    upload_wait_s: Annotated[
        float,
        typer.Option(
            "--upload-wait-s",
            min=0.001,
            help="Longest wait of an admitted upload for room in the line's inspect queue; then 503 + Retry-After.",
        ),
    ] = DEFAULT_UPLOAD_WAIT_S,
    upload_result_timeout_s: Annotated[
        float,
        typer.Option(
            "--upload-result-timeout-s",
            min=0.001,
            help="Longest wait of a request for the line to inspect and store its upload; then 503 + Retry-After"
            " (the line still stores it: a retry with the same Idempotency-Key gets the result).",
        ),
    ] = DEFAULT_UPLOAD_RESULT_TIMEOUT_S,
    upload_latency_budget_ms: Annotated[
        float,
        typer.Option(
            "--upload-latency-budget-ms",
            min=0,
            help="With every inspect worker busy, admit an upload only while those queued ahead, at the recent"
            " inspection time, leave it answered within this; else 503 + Retry-After at once (0: off).",
        ),
    ] = 100.0,
    max_inflight_mb: Annotated[
        float | None,
        typer.Option(
            "--max-inflight-mb",
            min=0.0,
            help="Request bodies held at once, all requests together, in MiB (at least --max-upload-mb); past it"
            " 503 + Retry-After. Default: 4 x --max-upload-mb.",
        ),
    ] = None,
    rate_limit: Annotated[
        float,
        typer.Option("--rate-limit", min=0.0, help="Writes a second per API key; past it 429 + Retry-After. 0: off."),
    ] = 0.0,
    rate_burst: Annotated[
        int, typer.Option("--rate-burst", min=1, help="Writes one API key may send at once above --rate-limit.")
    ] = DEFAULT_RATE_LIMIT_BURST,
    open_reads: Annotated[
        bool | None,
        typer.Option(
            "--open-reads/--closed-reads",
            help="Serve stored inspections, images, stats and the export without an API key. Default: closed"
            " (a key with the read scope), open with --demo.",
        ),
    ] = None,
    line_name: Annotated[
        str | None,
        typer.Option("--line-name", help="This line's name, recorded with every board it inspects (e.g. SMT-2)."),
    ] = None,
    shifts: Annotated[
        str,
        typer.Option(
            "--shifts", help="The plant's shifts for shift reports: [NAME=]HH[:MM]-HH[:MM],... e.g. A=06-14,B=14-22"
        ),
    ] = DEFAULT_SHIFTS,
    shift_timezone: Annotated[
        str | None,
        typer.Option("--shift-timezone", help="Time zone of the shift hours, e.g. Asia/Seoul. Default: the server's."),
    ] = None,
    review_lease_s: Annotated[
        float,
        typer.Option(
            "--review-lease-s",
            help="How long the review queue keeps a defect it handed to one operator from the others, in seconds.",
        ),
    ] = 120.0,
) -> None:
    """Run the line: capture pipeline, HTTP API (/docs) and dashboard (/) in one process."""
    import uvicorn

    from aoi.api.access_log import uvicorn_log_config
    from aoi.api.app import create_app
    from aoi.api.line import LineOptions, build_line
    from aoi.api.model_follow import close_engine, load_engine
    from aoi.detection.bundle import ModelBundle
    from aoi.storage import Storage

    inspect_workers = workers or max(1, os.cpu_count() or 1)  # one per core, as uploads had before issue 8
    upload_bytes = int(max_upload_mb * 2**20)
    admission = _admission_options(
        upload_bytes,
        upload_concurrency,
        upload_queue,
        upload_wait_s,
        upload_result_timeout_s,
        max_inflight_mb,
        rate_limit,
        rate_burst,
    )
    admission["upload_latency_budget_s"] = upload_latency_budget_ms / 1e3
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServiceSettings(
        data_dir=data_dir,
        database_url=database_url,
        max_upload_bytes=int(max_upload_mb * 2**20),
        model_bundle=model,
        engine_processes=inspect_workers if engine_processes else 0,
        **admission,
        open_reads=demo if open_reads is None else open_reads,  # the demo is a local showcase with no keys
        **_station_options(line_name, shifts, shift_timezone, review_lease_s),
    )
    try:
        storage = Storage.open(settings.data_dir, settings.database_url)
    except Exception as exc:  # bad URL, unreachable server, unwritable folder: say so, no traceback
        typer.echo(f"error: cannot open the results database: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        bundle = ModelBundle.load(settings.model_bundle or _promoted_model(storage.data_dir))
        inspector = load_engine(bundle, settings.engine_processes)
    except Exception as exc:
        storage.close()
        typer.echo(f"error: cannot load the model bundle: {exc}", err=True)
        raise typer.Exit(2) from None
    options = LineOptions(
        hot_folder=not no_hot_folder,
        camera=camera,
        camera_product=camera_product,
        demo=demo,
        inspect_workers=inspect_workers,
    )
    app = create_app(
        settings,
        inspector=inspector,
        storage=storage,
        line_factory=lambda svc: build_line(svc, options),  # the uploads' tiled inspector, shared
    )
    typer.echo(f"aoi serve: dashboard http://{host}:{port}/  API docs http://{host}:{port}/docs")
    typer.echo(f"data: {storage.data_dir}  database: {_redacted(storage.db.url)}")
    _log_read_access(settings.open_reads, demo)
    try:
        # uvicorn turns SIGINT/SIGTERM into the app's lifespan shutdown: the line finishes accepted work.
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            log_config=uvicorn_log_config(),  # successful polls are not logged; writes and errors are
            timeout_graceful_shutdown=30,
        )
    finally:
        close_engine(inspector)  # after the lifespan: the line has stopped (idempotent if it was closed there)
        storage.close()


def _promoted_model(data_dir: Path) -> Path | None:
    """The bundle `aoi models promote` (or a retraining) made the line's own, if any."""
    from aoi.detection.model_registry import ModelRegistry

    bundle = ModelRegistry.in_data_dir(data_dir).active_bundle()
    if bundle is not None:
        log.info("serving the promoted model %s (aoi models list)", bundle.meta.version)
    return None if bundle is None else bundle.path


def _log_read_access(open_reads: bool, demo: bool) -> None:
    """Says at startup who may read the stored data, so an open line is never open by accident."""
    if open_reads:
        why = "--demo" if demo else "--open-reads"
        log.warning(
            "reads are OPEN (%s): anyone who reaches this port sees every inspection, image, statistic and"
            " the export; writes still need an API key",
            why,
        )
    else:
        log.info(
            "reads are closed: the dashboard and the API need an API key with the read scope"
            " (aoi keys create --scopes read); --open-reads opens them"
        )


def _admission_options(
    max_upload_bytes: int,
    upload_concurrency: int | None,
    upload_queue: int | None,
    upload_wait_s: float,
    upload_result_timeout_s: float,
    max_inflight_mb: float | None,
    rate_limit: float,
    rate_burst: int,
) -> dict[str, Any]:
    """The `ServiceSettings` of admission control from `aoi serve` flags; exits 2 with the reason when
    they do not fit together (e.g. an in-flight budget smaller than one upload)."""
    options: dict[str, Any] = {
        "upload_queue": upload_queue,
        "upload_wait_s": upload_wait_s,
        "upload_result_timeout_s": upload_result_timeout_s,
        "max_inflight_bytes": None if max_inflight_mb is None else int(max_inflight_mb * 2**20),
        "rate_limit_per_s": rate_limit,
        "rate_limit_burst": rate_burst,
    }
    if upload_concurrency is not None:
        options["upload_concurrency"] = upload_concurrency
    try:
        ServiceSettings(max_upload_bytes=max_upload_bytes, **options)
    except ValueError as exc:
        typer.echo(f"error: {exc} (see aoi serve --help)", err=True)
        raise typer.Exit(2) from None
    return options


def _station_options(
    line_name: str | None, shifts: str, shift_timezone: str | None, review_lease_s: float
) -> dict[str, Any]:
    """The `ServiceSettings` of traceability, shift reports and the review queue; exits 2 with the reason
    when one is unusable."""
    options: dict[str, Any] = {
        "line_name": line_name,
        "shifts": shifts,
        "shift_timezone": shift_timezone,
        "review_lease_s": review_lease_s,
    }
    try:
        ServiceSettings(**options)
    except ValueError as exc:
        typer.echo(f"error: {exc} (see aoi serve --help)", err=True)
        raise typer.Exit(2) from None
    return options


def keys_create(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOption = None,
    name: Annotated[
        str, typer.Option("--name", "--label", help="Who or what uses the key; recorded as the reviewer.")
    ] = "",
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated: read, inspect, review, admin (admin implies all). Default: all, as before scopes.",
        ),
    ] = "read,inspect,review,admin",
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Lifetime: whole hours, days or weeks, e.g. 12h, 30d, 8w. Default: never."),
    ] = None,
) -> None:
    """Create an API key. The key is printed once, as the last line; only its hash is stored."""
    from aoi.storage import Storage
    from aoi.storage.keys import LifetimeError, ScopeError, create_api_key, format_scopes, parse_lifetime, parse_scopes

    try:
        granted = parse_scopes(scopes)
    except ScopeError as exc:
        typer.echo(f"error: --scopes: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        expires_at = datetime.now(UTC) + parse_lifetime(expires_in) if expires_in is not None else None
    except LifetimeError as exc:
        typer.echo(f"error: --expires-in: {exc}", err=True)
        raise typer.Exit(2) from None
    storage = Storage.open(data_dir, database_url)
    try:
        with storage.db.transaction() as session:
            token = create_api_key(session, name, granted, expires_at)
    finally:
        storage.close()
    lifetime = f"expires {_when(expires_at)}" if expires_at is not None else "never expires"
    typer.echo(
        f"API key created in {_redacted(storage.db.url)} with scopes {format_scopes(granted)}; {lifetime};"
        " keep it, it is not shown again."
    )
    typer.echo("Use it as: Authorization: Bearer <key>")
    typer.echo(token)


def keys_list(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List the API keys: id, name, scopes, created, revoked, expires. Never the key (only its hash is stored)."""
    from aoi.storage import Storage
    from aoi.storage.keys import format_scopes, list_api_keys

    storage = Storage.open(data_dir, database_url)
    try:
        with storage.db.session() as session:
            keys = list_api_keys(session)
    finally:
        storage.close()
    # `expires` comes last, so scripts that read the columns before it by position keep working.
    rows = [("id", "name", "scopes", "created", "revoked", "expires")]
    rows += [
        (
            str(k.id),
            k.name or "-",
            format_scopes(k.scopes),
            _when(k.created_at),
            _when(k.revoked_at),
            _when(k.expires_at),
        )
        for k in keys
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id, as `aoi keys list` shows it.")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke an API key: from the next request on it is refused (401), on writes and on closed reads."""
    from aoi.storage import Storage
    from aoi.storage.keys import revoke_api_key

    storage = Storage.open(data_dir, database_url)
    try:
        with storage.db.transaction() as session:
            info = revoke_api_key(session, key_id)
    finally:
        storage.close()
    if info is None:
        typer.echo(f"error: no API key with id {key_id} (see `aoi keys list`)", err=True)
        raise typer.Exit(2)
    typer.echo(f"API key {info.id} ({info.name or 'no name'}) revoked at {_when(info.revoked_at)}")


def _when(moment: datetime | None) -> str:
    """A stored time as ISO 8601 in UTC to the second ("-" for none; SQLite hands back naive UTC)."""
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds")


def export(
    out: Annotated[Path, typer.Argument(help="Empty or new folder for the dataset.")],
    fmt: Annotated[str, typer.Option("--format", help="deeppcb | yolo | coco")] = "deeppcb",
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Export operator-reviewed defects as a training dataset (false calls dropped) for `aoi train`."""
    from aoi.storage import Storage
    from aoi.storage.export import ExportError, export_reviewed

    storage = Storage.open(data_dir, database_url)
    try:
        report = export_reviewed(storage, out, fmt)
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        storage.close()
    typer.echo(
        f"exported {report.pairs} reviewed images with {report.boxes} defects to {report.out_dir} "
        f"({report.format.value}); {report.skipped_partially_reviewed} partly reviewed images skipped"
    )


def report(
    out: Annotated[Path, typer.Option("--out", help="File to write (its folder must exist).")],
    lot: Annotated[str | None, typer.Option("--lot", help="Report on this production lot.")] = None,
    shift: Annotated[
        str | None, typer.Option("--shift", help="Report on this shift (a name from --shifts), with --date.")
    ] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="The date the shift starts on (YYYY-MM-DD), with --shift.")
    ] = None,
    line: Annotated[str | None, typer.Option("--line", help="Only the boards of this line.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html (printable page) | csv | json")] = "html",
    lang: Annotated[str, typer.Option("--lang", help="Language of the HTML page: en | ko")] = "en",
    shifts: Annotated[
        str, typer.Option("--shifts", help="The plant's shifts, as aoi serve --shifts.")
    ] = DEFAULT_SHIFTS,
    shift_timezone: Annotated[
        str | None, typer.Option("--shift-timezone", help="Time zone of the shift hours. Default: the server's.")
    ] = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Write a lot or shift report: yield, defect Pareto, defect heat map, false-call and escape rates, failed
    boards."""
    from datetime import date

    from aoi.reports import EmptyReport, ReportFormat, build_report, lot_scope, rendered, shift_scope
    from aoi.schema import SchemaError
    from aoi.shifts import ShiftError, ShiftPlan, plant_zone
    from aoi.storage import Storage

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(2)

    if (lot is None) == (shift is None):
        raise fail("give either --lot, or --shift with --date")
    if fmt not in {f.value for f in ReportFormat}:
        raise fail(f"--format must be html, csv or json, not {fmt!r}")
    if lang not in ("en", "ko"):
        raise fail(f"--lang must be en or ko, not {lang!r}")
    try:
        zone = plant_zone(shift_timezone)
        if lot is not None:
            scope = lot_scope(lot, line)
        else:
            if day is None:
                raise fail("--shift needs --date (the date the shift starts on, YYYY-MM-DD)")
            scope = shift_scope(ShiftPlan.parse(shifts), zone, date.fromisoformat(day), shift or "", line)
    except (SchemaError, ShiftError, ValueError) as exc:
        raise fail(str(exc)) from None
    storage = Storage.open(data_dir, database_url)
    try:
        built = build_report(storage, scope)
    except EmptyReport as exc:
        raise fail(str(exc)) from None
    finally:
        storage.close()
    page = rendered(built, ReportFormat(fmt), lang, zone)
    try:
        out.write_text(page.body, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc}") from None
    y, escape_rate = built.inspections.yield_ratio, built.escape_rate
    typer.echo(
        f"{scope.kind} report {scope.title}: {built.inspections.total} inspections, yield"
        f" {'-' if y is None else f'{y * 100:.1f}%'}, {built.defects_counted} defects, {built.reviews.escapes}"
        f" escapes (escape rate {'-' if escape_rate is None else f'{escape_rate * 100:.1f}%'}) -> {out}"
    )


def _redacted(url: str) -> str:
    """A database URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
