"""Fuzz the whole HTTP API (every operation of /openapi.json) with schemathesis, on SQLite and PostgreSQL.

The app runs in process (ASGI, no network) with the service tests' fake inspector, so the requests
exercise validation, the routers and the storage, not the engine. Requests carry an admin API key
(most of them), so writes are exercised too; each generated request is partly steered towards real
ids, decodable images and rule JSON (tests/api/api_fuzz.py says how).

    python scripts/fuzz_api.py                                   # >= 10,000 requests per database
    python scripts/fuzz_api.py --requests 2000 --databases sqlite
    python scripts/fuzz_api.py --postgres-url postgresql://postgres@127.0.0.1:5432/test

PostgreSQL: a fresh database is created on the server of `--postgres-url` (its database is only used
to connect) and dropped afterwards. Prints progress every 30 s and one JSON line per database (requests,
5xx, schema violations, seconds, statuses), then the first findings with a curl command to replay.
Exit status 1 when any request got a 5xx (or, with --strict-schema, broke the documented schema).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.api, tests.support: the fake inspector and the fuzz harness

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from tests.api.api_fuzz import Finding, FuzzReport, fuzz  # noqa: E402
from tests.support.service import FakeInspector  # noqa: E402

from aoi.api import ServiceSettings, create_app  # noqa: E402
from aoi.storage import Storage, resolve_database_url  # noqa: E402
from aoi.storage.keys import create_api_key  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def database(backend: str, postgres_url: str) -> Iterator[str | None]:
    """None (SQLite under the data folder) or the URL of a fresh PostgreSQL database, dropped after."""
    if backend == "sqlite":
        yield None
        return
    admin = create_engine(resolve_database_url(".", postgres_url), isolation_level="AUTOCOMMIT")
    name = f"aoi_fuzz_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except OperationalError as exc:  # the server went away meanwhile: say so, keep the figures
            print(f"  could not drop database {name}: {exc.orig}", file=sys.stderr)
        admin.dispose()


def fuzz_backend(backend: str, args: argparse.Namespace) -> FuzzReport:
    with tempfile.TemporaryDirectory(prefix="aoi-fuzz-") as tmp, database(backend, args.postgres_url) as url:
        storage = Storage.open(Path(tmp) / "data", url)
        try:
            settings = ServiceSettings(data_dir=storage.data_dir, max_upload_bytes=2_000_000, serve_dashboard=False)
            app = create_app(settings, inspector=FakeInspector(), storage=storage)
            with storage.db.transaction() as session:
                key = create_api_key(session, label="fuzzer")
            headers = {"Authorization": f"Bearer {key}"}
            last_print = [time.perf_counter()]

            def progress(report: FuzzReport) -> None:
                if time.perf_counter() - last_print[0] > 30:
                    last_print[0] = time.perf_counter()
                    print(
                        f"  {backend}: {report.requests} requests, {report.server_errors} 5xx, {report.seconds:.0f} s"
                    )

            return fuzz(
                app,
                headers,
                label=backend,
                examples_per_operation=args.examples,
                min_requests=args.requests,
                random_seed=args.seed,
                validate_schema=not args.no_schema,
                progress=progress,
            )
        finally:
            storage.close()


def error_code(finding: Finding) -> str:
    """The `error` field of the service's JSON error body, or "-"."""
    try:
        body = json.loads(finding.detail)
    except ValueError:
        return "-"
    return str(body.get("error", "-")) if isinstance(body, dict) else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="at least this many requests per database")
    parser.add_argument("--examples", type=int, default=100, help="examples per operation and mode in one pass")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="server to create the database on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-schema", action="store_true", help="check for 5xx only, not response schemas")
    parser.add_argument("--strict-schema", action="store_true", help="exit 1 on a schema violation too")
    parser.add_argument("--show", type=int, default=10, help="kinds of findings printed per database")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # a 5xx logs its traceback; the findings below say what matters

    failed = False
    started = time.perf_counter()
    for backend in [b.strip() for b in args.databases.split(",") if b.strip()]:
        report = fuzz_backend(backend, args)
        print(json.dumps(report.summary()), flush=True)
        for operation, statuses in sorted(report.per_operation.items()):
            print(f"  {operation}: {dict(sorted(statuses.items()))}")
        groups: dict[tuple[str, int, str, str], list[Finding]] = {}
        for finding in report.findings:  # grouped by what answered: operation, status and error code
            key = (finding.kind, finding.status, finding.operation, error_code(finding))
            groups.setdefault(key, []).append(finding)
        for (kind, status, operation, code), found in list(groups.items())[: args.show]:
            print(f"  {len(found)} x {kind} {status} {code} {operation}: {found[0].detail[:300]}")
            if found[0].curl:
                print(f"    {found[0].curl[:1000]}")
        failed |= report.server_errors > 0 or (args.strict_schema and report.schema_violations > 0)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
