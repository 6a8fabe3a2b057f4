"""A service process fed every bomb, for the memory test: how much memory did refusing them take?

Run as `python tests/api/bomb_probe.py DATA_DIR` from the repository root. It builds the service
as `aoi serve` does (fake engine, hot folder line), uploads one real board (warm-up), then every bomb
of tests/support/image_bombs.py through each HTTP road and into the hot folder, and prints one JSON
object: peak RSS before and after, the slowest refusal, and what each road answered. Peak RSS is read
from `resource.getrusage` (the process's high-water mark), so a decode that ran and was then freed
still shows.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fastapi.testclient import TestClient  # noqa: E402
from tests.support.image_bombs import BOMB_WH, BOMBS, SUFFIXES  # noqa: E402
from tests.support.service import FakeInspector, paint_board, png, with_short  # noqa: E402

from aoi.api import ServiceSettings, create_app  # noqa: E402
from aoi.api.line import INBOX_DIR_NAME, LineOptions, build_line  # noqa: E402
from aoi.storage import Storage  # noqa: E402
from aoi.storage.keys import create_api_key  # noqa: E402

HOT_FOLDER_TIMEOUT_S = 20.0


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that across
    fork and exec, so a probe started by a big test process would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # no procfs: the best there is


def main() -> int:
    data_dir = Path(sys.argv[1])
    storage = Storage.open(data_dir)
    inspector = FakeInspector()
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False)
    options = LineOptions(hot_folder=True)
    app = create_app(
        settings, inspector=inspector, storage=storage, line_factory=lambda svc: build_line(svc, options, inspector)
    )
    with storage.db.transaction() as session:
        auth = {"Authorization": f"Bearer {create_api_key(session, label='probe')}"}
    board = png(with_short(paint_board()))
    http: dict[str, dict[str, int]] = {}
    slowest_ms = 0.0
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/products",
            data={"name": "board-a", "px_per_mm": "20"},
            files={"template": ("t.png", png(paint_board()))},
            headers=auth,
        )
        product = r.json()["id"]
        warm = client.post(
            "/api/v1/inspections", data={"product": product}, files={"image": ("b.png", board)}, headers=auth
        )
        rss_before = peak_rss_mb()
        for kind, build in BOMBS.items():
            bomb = build(*BOMB_WH)
            roads = {
                "image": ({"product": product}, {"image": ("bomb", bomb)}, "/api/v1/inspections"),
                "image+template": ({}, {"image": ("bomb", bomb), "template": ("t.png", board)}, "/api/v1/inspections"),
                "template": ({}, {"image": ("b.png", board), "template": ("bomb", bomb)}, "/api/v1/inspections"),
                "product": (
                    {"name": f"bomb-{kind}", "px_per_mm": "20"},
                    {"template": ("bomb", bomb)},
                    "/api/v1/products",
                ),
            }
            http[kind] = {}
            for road, (form, files, path) in roads.items():
                started = time.perf_counter()
                answer = client.post(path, data=form, files=files, headers=auth)
                slowest_ms = max(slowest_ms, (time.perf_counter() - started) * 1000.0)
                http[kind][road] = answer.status_code
        rss_after_http = peak_rss_mb()
        inbox = storage.data_dir / INBOX_DIR_NAME / "board-a"
        inbox.mkdir(parents=True, exist_ok=True)
        names = [f"{kind}{SUFFIXES[kind]}" for kind in BOMBS]
        for kind, name in zip(BOMBS, names, strict=True):
            (inbox / name).write_bytes(BOMBS[kind](*BOMB_WH))
        failed = storage.data_dir / INBOX_DIR_NAME / "failed" / "board-a"
        deadline = time.monotonic() + HOT_FOLDER_TIMEOUT_S
        while time.monotonic() < deadline and not all((failed / f"{n}.reason.txt").exists() for n in names):
            time.sleep(0.05)
        reasons = {
            n: (failed / f"{n}.reason.txt").read_text().strip() if (failed / f"{n}.reason.txt").exists() else None
            for n in names
        }
    print(
        json.dumps(
            {
                "warm_up_status": warm.status_code,
                "rss_before_mb": round(rss_before, 1),
                "rss_after_http_mb": round(rss_after_http, 1),
                "rss_peak_mb": round(peak_rss_mb(), 1),
                "slowest_http_ms": round(slowest_ms, 1),
                "http": http,
                "hot_folder_reasons": reasons,
            }
        )
    )
    storage.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
