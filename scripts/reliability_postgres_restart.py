"""Reliability: uploads and the hot folder keep their promises while PostgreSQL restarts under them.

The script creates its own database on the local PostgreSQL, starts the service (`aoi serve`'s
composition under uvicorn, the service tests' fake engine, the hot folder on) on it, drops M boards
into the hot folder, and has K clients upload boards back to back for D seconds, each upload with
its own Idempotency-Key and retried with that key on a 503 or a dropped connection (as a client
library does). Meanwhile it restarts PostgreSQL R times (`pg_ctlcluster 15 main restart`, or
`--mode terminate`: every connection of the database killed with pg_terminate_backend, which is
what a restart does to them, without stopping the server for anyone else). Then it checks:

- no answer but 201, 200 (a replay), or a 503 with a JSON error: never a 500;
- every upload answered 2xx is stored once, with its image file (0 accepted inspections lost);
- no upload stored twice (one row per Idempotency-Key, one per image id);
- every hot-folder file stored exactly once and in done/;
- no image file without its row once the start-up orphan sweep has run.

    python scripts/reliability_postgres_restart.py                        # 30 s, 3 restarts, 4 clients
    python scripts/reliability_postgres_restart.py --mode terminate --restarts 10
    python scripts/reliability_postgres_restart.py --duration 60 --clients 8 --hot-folder-files 500

Needs PostgreSQL at 127.0.0.1:5432 with trust auth for user postgres, and root (or the postgres user)
for `--mode restart`. The last line printed is one JSON object; the exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "support"))

from bench_http import free_port, multipart, request  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PRODUCT = "board"
MAX_ATTEMPTS = 60  # a client retries one upload this often (about 60 s with Retry-After: 1)
RESTART_CMD = ["pg_ctlcluster", "15", "main", "restart"]

_LAUNCHER = """
import sys
sys.path.insert(0, {fakes!r})
import uvicorn
from pathlib import Path
from pipeline_fakes import FakeInspector
from aoi.api import ServiceSettings, create_app
from aoi.api.line import LineOptions, build_line
inspector = FakeInspector(delay_s={delay_s!r})
settings = ServiceSettings(data_dir=Path({data_dir!r}), database_url={url!r}, serve_dashboard=False)
options = LineOptions(hot_folder=True)
app = create_app(settings, inspector=inspector, line_factory=lambda svc: build_line(svc, options, inspector))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


@dataclass
class ClientLog:
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status (0: no answer) -> attempts
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> inspection id
    gave_up: list[str] = field(default_factory=list)
    bad_answers: list[str] = field(default_factory=list)
    retries: int = 0
    longest_s: float = 0.0


def boards(n: int, size_px: int = 128) -> tuple[bytes, list[bytes]]:
    import cv2
    import numpy as np
    from pipeline_fakes import paint_board, with_defect  # type: ignore[import-not-found]

    template = paint_board(np.random.default_rng(0), size_px)

    def png(image: np.ndarray) -> bytes:
        return bytes(cv2.imencode(".png", image)[1].tobytes())

    tests = [with_defect(template, (4 + 6 * i, 40, 8 + 6 * i, 44)) for i in range(n)]
    return png(template), [png(t) for t in tests]


def client_loop(port: int, key: str, product: str, bodies: list[bytes], n: int, stop_at: float, log: ClientLog) -> None:
    i = 0
    while time.monotonic() < stop_at:
        idem = f"client{n}-{i}-{uuid.uuid4().hex[:8]}"
        body, ctype = multipart({"product": product}, {"image": (f"c{n}-{i}.png", bodies[(n + i) % len(bodies)])})
        headers = {"Authorization": f"Bearer {key}", "Content-Type": ctype, "Idempotency-Key": idem}
        started = time.monotonic()
        for _attempt in range(MAX_ATTEMPTS):
            try:
                status, raw = request(port, "POST", "/api/v1/inspections", body, headers)
            except OSError:
                status, raw = 0, b""
            log.statuses[status] = log.statuses.get(status, 0) + 1
            if status in (200, 201):
                log.accepted[idem] = json.loads(raw)["id"]
                break
            if status == 503:
                try:
                    json.loads(raw)["error"]
                except (ValueError, KeyError):
                    log.bad_answers.append(f"503 without a JSON error: {raw[:200]!r}")
            elif status != 0:
                log.bad_answers.append(f"HTTP {status}: {raw[:300]!r}")
                break
            log.retries += 1
            time.sleep(1.0 if status == 503 else 0.2)
        else:
            log.gave_up.append(idem)
        log.longest_s = max(log.longest_s, time.monotonic() - started)
        i += 1


def database_answers(url: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def disrupt(mode: str, admin_url: str, db_name: str) -> dict[str, Any]:
    """Restart the server (or kill the database's connections); how long until it answered again."""
    from sqlalchemy import create_engine, text

    started = time.monotonic()
    if mode == "restart":
        done = subprocess.run(RESTART_CMD, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(RESTART_CMD)} failed: {done.stderr.strip()}")
        killed = None
    else:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": db_name},
                ).scalar_one()
        finally:
            engine.dispose()
    while not database_answers(admin_url):
        time.sleep(0.05)
    return {"at_s": None, "down_s": round(time.monotonic() - started, 3), "connections_killed": killed}


def check_storage(data_dir: Path, url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from aoi.storage import Storage

    storage = Storage.open(data_dir, url)
    try:
        with storage.db.session() as session:
            rows = session.execute(text("SELECT id, source, source_key, image_id, test_image_path FROM inspections"))
            inspections = [tuple(r) for r in rows]
            claims = session.execute(text("SELECT resource_id FROM idempotency_keys")).scalars().all()
        on_disk = {p for p in (storage.images.root / "inspections").rglob("*") if p.is_file()}
        referenced = {storage.images.path(r[4]) for r in inspections}
        orphans_before_sweep = len(on_disk - referenced)
        storage.sweep_orphans()
        on_disk = {p for p in (storage.images.root / "inspections").rglob("*") if p.is_file()}
    finally:
        storage.close()
    return {
        "inspections": inspections,
        "claims": list(claims),
        "missing_images": len(referenced - on_disk),
        "orphans_before_sweep": orphans_before_sweep,
        "orphans_after_sweep": len(on_disk - referenced),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of upload load")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--mode", choices=("restart", "terminate"), default="restart")
    parser.add_argument("--hot-folder-files", type=int, default=200)
    parser.add_argument("--inspect-ms", type=float, default=5.0, help="the fake engine's time per board")
    args = parser.parse_args(argv)

    from sqlalchemy import create_engine, text

    from aoi.storage import resolve_database_url
    from aoi.storage.keys import create_api_key

    admin_url = resolve_database_url(".", ADMIN_URL)
    db_name = f"aoi_reliability_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    url = f"postgresql://postgres@127.0.0.1:5432/{db_name}"
    data_dir = Path(tempfile.mkdtemp(prefix="aoi-pg-restart-"))
    server: subprocess.Popen[bytes] | None = None
    summary: dict[str, Any] = {"mode": args.mode, "database": db_name}
    try:
        from aoi.storage import Storage

        storage = Storage.open(data_dir, url)
        with storage.db.transaction() as session:
            key = create_api_key(session, label="reliability")
        storage.close()
        port = free_port()
        code = _LAUNCHER.format(
            fakes=str(REPO_ROOT / "tests" / "support"),
            delay_s=args.inspect_ms / 1000.0,
            data_dir=str(data_dir),
            url=url,
            port=port,
        )
        log = (data_dir / "serve.log").open("wb")
        server = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start; see {data_dir / 'serve.log'}")
            time.sleep(0.2)
        template, tests = boards(20)
        body, ctype = multipart({"name": PRODUCT, "px_per_mm": "48"}, {"template": ("t.png", template)})
        status, raw = request(
            port, "POST", "/api/v1/products", body, {"Authorization": f"Bearer {key}", "Content-Type": ctype}
        )
        if status != 201:
            raise RuntimeError(f"POST /products answered {status}: {raw[:300]!r}")
        product = json.loads(raw)["id"]
        inbox = data_dir / "inbox" / PRODUCT
        inbox.mkdir(parents=True, exist_ok=True)
        hot_names = [f"hot{i:05d}.png" for i in range(args.hot_folder_files)]
        for i, name in enumerate(hot_names):
            (inbox / f"{name}.part").write_bytes(tests[i % len(tests)])
            os.replace(inbox / f"{name}.part", inbox / name)

        started = time.monotonic()
        stop_at = started + args.duration
        logs = [ClientLog() for _ in range(args.clients)]
        threads = [
            threading.Thread(target=client_loop, args=(port, key, product, tests, n, stop_at, logs[n]))
            for n in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        disruptions = []
        for k in range(args.restarts):
            time.sleep(max(0.0, started + args.duration * (k + 1) / (args.restarts + 1) - time.monotonic()))
            event = disrupt(args.mode, admin_url, db_name)
            event["at_s"] = round(time.monotonic() - started - event["down_s"], 2)
            disruptions.append(event)
        for thread in threads:
            thread.join()
        load_s = time.monotonic() - started
        done_dir = data_dir / "inbox" / "done" / PRODUCT
        deadline = time.monotonic() + 120
        while len(list(done_dir.glob("*.png"))) < len(hot_names) and time.monotonic() < deadline:
            time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        server = None

        stored = check_storage(data_dir, url)
        accepted = {k: v for log_ in logs for k, v in log_.accepted.items()}
        rows = {r[0]: r for r in stored["inspections"]}
        uploads = [r for r in stored["inspections"] if r[1] == "upload"]
        hot = [r for r in stored["inspections"] if r[1] == "hotfolder"]
        statuses: dict[int, int] = {}
        for log_ in logs:
            for status, count in log_.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        done_names = sorted(p.name for p in done_dir.glob("*.png"))
        checks = {
            "accepted_not_stored": sum(1 for i in accepted.values() if i not in rows),
            "answers_not_201_200_503": sum(n for s, n in statuses.items() if s not in (0, 200, 201, 503)),
            "bad_answers": sum(len(log_.bad_answers) for log_ in logs),
            "uploads_stored_twice": len(uploads) - len({r[3] for r in uploads}),
            "upload_rows_without_their_key": len(uploads) - len(set(stored["claims"])),
            "upload_rows_not_answered": len({r[0] for r in uploads} - set(accepted.values())),
            "hot_folder_rows_not_n": abs(len(hot) - len(hot_names)),
            "hot_folder_stored_twice": len(hot) - len({r[2] for r in hot}),
            "hot_folder_not_in_done": len(set(hot_names) - set(done_names)),
            "missing_images": stored["missing_images"],
            "orphans_after_sweep": stored["orphans_after_sweep"],
        }
        summary |= {
            "duration_s": round(load_s, 1),
            "clients": args.clients,
            "disruptions": disruptions,
            "uploads_accepted": len(accepted),
            "uploads_given_up": sum(len(log_.gave_up) for log_ in logs),
            "attempts_by_status": {str(k): v for k, v in sorted(statuses.items())},
            "retries": sum(log_.retries for log_ in logs),
            "longest_upload_with_retries_s": round(max(log_.longest_s for log_ in logs), 2),
            "hot_folder_files": len(hot_names),
            "hot_folder_stored": len(hot),
            "orphans_before_sweep": stored["orphans_before_sweep"],
            "examples_of_bad_answers": [a for log_ in logs for a in log_.bad_answers][:3],
            "checks": checks,
            "ok": not any(checks.values()),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
        }
    finally:
        if server is not None:
            server.kill()
            server.wait()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
    print(json.dumps(summary))
    if summary.get("ok"):
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        print(f"kept {data_dir} (serve.log)", file=sys.stderr)
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
