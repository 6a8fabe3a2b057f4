"""Reliability: the hot folder stores every file exactly once although its process is SIGKILLed at random.

The script registers one product, drops N small synthetic boards into `<data dir>/inbox/<product>/`
(each written under a temporary name and renamed, as a scanner does), then runs the line of
`aoi serve` (the same composition: `create_app` + `build_line`, its start-up orphan sweep, the hot
folder with its default polling) in a worker subprocess. It SIGKILLs the worker at K random moments
(each when a random number of files has reached done/, at least one more than at its start, plus a
random 0-50 ms, so a kill lands anywhere: reading, inspecting, writing an image, committing, moving)
and starts it again each time; the last run is left to finish. Then it checks:

- N inspection rows, one per file: no duplicate source key or image id, no file missing;
- no inspection failures recorded;
- every row's image file exists and no image file is without its row (0 orphans, 0 temp files);
- every file in done/ under its own name (none moved twice), nothing in failed/, the inbox empty.

    python scripts/reliability_hotfolder.py                     # 1,000 files, 10 kills (fake engine)
    python scripts/reliability_hotfolder.py --files 60 --kills 3 --seed 1
    python scripts/reliability_hotfolder.py --engine real       # the bundled model instead of the fake
    python scripts/reliability_hotfolder.py --database-url postgresql://postgres@127.0.0.1:5432/aoi_rel

The engine is the service tests' fake by default (the subject is storage and the hot folder, not the
model). The last line printed is one JSON object with the figures; the exit status is 1 when any
check fails. `--worker DATA_DIR` is the worker mode the script starts itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCT = "board"
PX_PER_MM = 48.0
WORKER_TIMEOUT_S = 900.0
KILL_WINDOW = 0.8  # kills fall while the first 80% of the files are stored: the last ones outlast the jitter
KILL_JITTER_S = 0.05


def _image_files(folder: Path) -> list[Path]:
    from aoi.pipeline.inbox import wanted

    try:
        return [p for p in folder.iterdir() if p.is_file() and wanted(p.name, images_only=False)]
    except FileNotFoundError:
        return []


def _fake_inspector(delay_s: float) -> Any:
    sys.path.insert(0, str(REPO_ROOT / "tests" / "support"))
    from pipeline_fakes import FakeInspector  # type: ignore[import-not-found]

    return FakeInspector(delay_s=delay_s)


def run_worker(data_dir: Path, engine: str, database_url: str | None, inspect_ms: float) -> int:
    """What `aoi serve` runs (start-up orphan sweep, then the line on the hot folder), until the inbox
    is empty and the line idle; then a graceful stop."""
    from aoi.api import ServiceSettings, create_app
    from aoi.api.line import INBOX_DIR_NAME, LineOptions, build_line

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aoi.storage.orphans").setLevel(logging.INFO)  # what each restart swept
    if engine == "fake":
        inspector = _fake_inspector(inspect_ms / 1000.0)
    else:
        from aoi.detection.inspector import Inspector

        inspector = Inspector.load()
    settings = ServiceSettings(data_dir=data_dir, database_url=database_url, serve_dashboard=False)
    options = LineOptions(hot_folder=True, inspect_workers=2)
    app = create_app(settings, inspector=inspector, line_factory=lambda svc: build_line(svc, options, inspector))
    inbox = data_dir / INBOX_DIR_NAME / PRODUCT

    async def run() -> None:
        async with app.router.lifespan_context(app):
            print("running", flush=True)
            services = app.state.services
            while _image_files(inbox) or services.line.health()["in_flight"]:
                await asyncio.sleep(0.05)

    asyncio.run(run())
    print("finished", flush=True)
    return 0


def make_boards(n: int, size_px: int, seed: int) -> tuple[bytes, list[bytes]]:
    """A template and `n` tested boards (PNG), each with one painted defect at its own place."""
    import cv2
    import numpy as np

    sys.path.insert(0, str(REPO_ROOT / "tests" / "support"))
    from pipeline_fakes import paint_board, with_defect  # type: ignore[import-not-found]

    template = paint_board(np.random.default_rng(seed), size_px)
    span = size_px - 8

    def png(image: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError("PNG encoding failed")
        return bytes(buf.tobytes())

    boards = []
    for i in range(n):
        x, y = i % span, (i // span) % span
        boards.append(png(with_defect(template, (x, y, x + 4, y + 4))))
    return png(template), boards


def prepare(data_dir: Path, n: int, size_px: int, seed: int, database_url: str | None) -> list[str]:
    """Register the product, drop the boards into its inbox folder; the file names, in order."""
    from aoi.api.line import INBOX_DIR_NAME
    from aoi.api.services import ProductService, Upload
    from aoi.storage import Storage

    template, boards = make_boards(n, size_px, seed)
    storage = Storage.open(data_dir, database_url)
    try:
        ProductService(storage).create(PRODUCT, PX_PER_MM, None, Upload(template, "template.png"))
    finally:
        storage.close()
    inbox = data_dir / INBOX_DIR_NAME / PRODUCT
    inbox.mkdir(parents=True, exist_ok=True)
    names = [f"board{i:05d}.png" for i in range(n)]
    for name, data in zip(names, boards, strict=True):
        part = inbox / f"{name}.part"
        part.write_bytes(data)
        os.replace(part, inbox / name)
    return names


def start_worker(args: argparse.Namespace, data_dir: Path, run: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(data_dir), "--engine", args.engine]
    cmd += ["--inspect-ms", str(args.inspect_ms)]
    database_url = args.database_url
    if database_url:
        cmd += ["--database-url", database_url]
    log = (data_dir / f"worker-{run:02d}.log").open("wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)


def count_done(done_dir: Path) -> int:
    return len(_image_files(done_dir))


def check(data_dir: Path, names: list[str], database_url: str | None) -> dict[str, Any]:
    """Every invariant the run must keep, as counts (all but `rows` and `done` must be 0)."""
    from sqlalchemy import text

    from aoi.api.line import INBOX_DIR_NAME
    from aoi.storage.database import Database

    db = Database.open(data_dir, database_url, migrate=False)
    try:
        with db.session() as session:
            rows = session.execute(text("SELECT source_key, image_id, test_image_path FROM inspections")).all()
            failures = session.execute(text("SELECT COUNT(*) FROM inspection_failures")).scalar_one()
    finally:
        db.dispose()
    expected_ids = {f"{PRODUCT}/{name}" for name in names}
    image_ids = [str(r[1]) for r in rows]
    images_root = data_dir / "images"
    referenced = {str(r[2]) for r in rows}
    on_disk = {p.relative_to(images_root).as_posix() for p in (images_root / "inspections").rglob("*") if p.is_file()}
    inbox_root = data_dir / INBOX_DIR_NAME
    done = sorted(p.name for p in _image_files(inbox_root / "done" / PRODUCT))
    failed_dir = inbox_root / "failed"
    failed = sorted(p.name for p in failed_dir.rglob("*") if p.is_file()) if failed_dir.exists() else []
    return {
        "rows": len(rows),
        "done": len(done),
        "duplicate_source_keys": len(rows) - len({r[0] for r in rows}),
        "duplicate_image_ids": len(image_ids) - len(set(image_ids)),
        "files_without_row": len(expected_ids - set(image_ids)),
        "rows_of_unknown_files": len(set(image_ids) - expected_ids),
        "failure_rows": int(failures),
        "orphan_image_files": len(on_disk - referenced),
        "rows_missing_their_image": len(referenced - on_disk),
        "done_not_matching_the_inbox": len(set(done) ^ set(names)) + (len(done) - len(set(done))),
        "failed_files": len(failed),
        "left_in_inbox": len(_image_files(inbox_root / PRODUCT)),
    }


def swept_at_restarts(data_dir: Path) -> list[int]:
    """Image files each worker run's start-up sweep removed (left by the kill before it)."""
    found = []
    for log in sorted(data_dir.glob("worker-*.log")):
        match = re.search(r"orphan sweep: removed (\d+) image files", log.read_text(errors="replace"))
        found.append(int(match.group(1)) if match else 0)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="board size in pixels (square)")
    parser.add_argument("--engine", choices=("fake", "real"), default="fake")
    parser.add_argument("--inspect-ms", type=float, default=10.0, help="the fake engine's time per board")
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite (an empty database)")
    parser.add_argument("--workdir", type=Path, default=None, help="kept after the run (default: a temporary one)")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return run_worker(args.worker, args.engine, args.database_url, args.inspect_ms)
    if not 0 <= args.kills < args.files * KILL_WINDOW:
        parser.error(f"--kills must be below {KILL_WINDOW:.0%} of --files")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aoi-reliability-"))
    data_dir = workdir / "data"
    rng = random.Random(args.seed)
    started = time.monotonic()
    names = prepare(data_dir, args.files, args.size, args.seed, args.database_url)
    done_dir = data_dir / "inbox" / "done" / PRODUCT
    targets = sorted(rng.sample(range(1, int(args.files * KILL_WINDOW)), args.kills))
    kills: list[dict[str, Any]] = []
    run = 0
    error: str | None = None
    finished = False
    for target in targets:
        target = max(target, count_done(done_dir) + 1)  # each run gets to work before its kill
        worker = start_worker(args, data_dir, run)
        spawned = time.monotonic()
        while count_done(done_dir) < target and worker.poll() is None:
            if time.monotonic() - spawned > WORKER_TIMEOUT_S:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, KILL_JITTER_S))
        exited = worker.poll()
        if exited is not None:  # 0: it finished all the files before its kill came
            if exited != 0:
                error = f"worker run {run} exited with {exited}; see {data_dir}/worker-{run:02d}.log"
            finished = True
            break
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills.append({"after_s": round(time.monotonic() - spawned, 3), "done_at_kill": count_done(done_dir)})
        run += 1
    if error is None and not finished:
        worker = start_worker(args, data_dir, run)
        try:
            code = worker.wait(WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = -1
        if code != 0:
            error = f"the last worker run exited with {code}; see {data_dir}/worker-{run:02d}.log"
    elapsed_s = time.monotonic() - started
    counts = check(data_dir, names, args.database_url)
    problems = {k: v for k, v in counts.items() if k not in ("rows", "done") and v}
    if counts["rows"] != args.files or counts["done"] != args.files:
        problems["rows_or_done_not_n"] = 1
    summary = {
        "files": args.files,
        "kills": len(kills),
        "kill_points": kills,
        "seed": args.seed,
        "engine": args.engine,
        "database": "postgresql" if args.database_url else "sqlite",
        "wall_s": round(elapsed_s, 1),
        "orphans_swept_at_each_start": swept_at_restarts(data_dir),
        "checks": counts,
        "ok": error is None and not problems,
        "error": error,
        "problems": problems,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(summary))
    if args.workdir is None and summary["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT / "src"))  # run from a checkout without installing (the venv has it)
    raise SystemExit(main())
