"""Benchmark: sustained inspections/s and latency of POST /api/v1/inspections on a running `aoi serve`.

The script starts `aoi serve` as a subprocess on a fresh temporary data directory (SQLite, no hot
folder), creates an API key with `aoi keys create` and a product whose template is a synthetic board,
then K client threads post 640x640 PNG boards (a mix of boards with painted defects and clean ones,
all encoded before the clock starts) over keep-alive connections for a fixed duration after a
warm-up. It reports throughput, latency percentiles and errors, and checks that nothing was lost or
duplicated: every id answered with a 2xx is listed exactly once by GET /api/v1/inspections and the
stored total equals the number of 2xx answers.

Two load shapes: closed loop (default; each client posts back to back, which finds the maximum
throughput, and latency then grows with the number of clients by Little's law) and open loop
(`--rate R`: requests due at a fixed rate, like a line that produces R boards/s; latency counts from
the due time, so falling behind shows up as queueing). Requests due in the measured window count.

The client runs on the same machine as the server and competes for the same cores; it is kept lean
(stdlib http.client, pre-built request bodies, no per-request allocation beyond the response) and
its own CPU time is reported next to the server's.

    python scripts/bench_http.py                         # 30 s after 5 s warm-up, 4 clients
    python scripts/bench_http.py --clients 8 --duration 60
    python scripts/bench_http.py --rate 50 --clients 8       # open loop: a line sending 50 boards/s
    python scripts/bench_http.py --engine fake --duration 5  # HTTP/storage path only (test-suite fake engine)

The last line printed is one JSON object with the figures. Exit status 1 when any inspection was
lost or duplicated or any request failed.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from bench_floor import DEFAULT_ROOT, floor_beside

REPO_ROOT = Path(__file__).resolve().parents[1]
API = "/api/v1"

# What `aoi serve` composes, with knobs the command does not expose: the fake engine of the service
# tests (the HTTP + storage path alone) and the upload concurrency (to measure with and without it).
_LAUNCHER = """
import sys
sys.path.insert(0, {root!r})
import uvicorn
from pathlib import Path
from aoi.api import ServiceSettings, create_app
from aoi.api.line import LineOptions, build_line
settings = ServiceSettings(data_dir=Path({data_dir!r}), **{settings!r})
if {fake!r}:
    from tests.support.service import FakeInspector
    inspector = FakeInspector()
else:
    from aoi.detection.inspector import Inspector
    inspector = Inspector.load()
options = LineOptions(hot_folder={hot_folder})
app = create_app(settings, inspector=inspector, line_factory=lambda svc: build_line(svc, options, inspector))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="info")  # as `aoi serve`
"""


class BenchError(RuntimeError):
    """The server could not be started or prepared for the benchmark."""


def aoi_command() -> list[str]:
    """The `aoi` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("aoi")
    if script.exists():
        return [str(script)]
    found = shutil.which("aoi")
    if found is None:
        raise BenchError("the `aoi` command is not installed in this environment")
    return [found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_key(data_dir: Path) -> str:
    """`aoi keys create`: the key is the last line it prints."""
    done = subprocess.run(
        [*aoi_command(), "keys", "create", "--data-dir", str(data_dir), "--label", "bench"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"aoi keys create failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class ServerProcess:
    """One `aoi serve` subprocess; its log goes to `<data_dir>/serve.log`."""

    data_dir: Path
    port: int
    engine: str = "default"
    extra_args: Sequence[str] = ()
    upload_concurrency: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 180.0) -> None:
        if self.engine == "fake" or self.upload_concurrency is not None:
            settings = {} if self.upload_concurrency is None else {"upload_concurrency": self.upload_concurrency}
            code = _LAUNCHER.format(
                root=str(REPO_ROOT),
                data_dir=str(self.data_dir),
                port=self.port,
                settings=settings,
                fake=self.engine == "fake",
                hot_folder="--no-hot-folder" not in self.extra_args,
            )
            cmd = [sys.executable, "-c", code]
        else:
            cmd = [*aoi_command(), "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
            cmd += list(self.extra_args)
        log = (self.data_dir / "serve.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"aoi serve exited with {self.proc.returncode}; see {self.data_dir / 'serve.log'}")
            try:
                status, _ = request(self.port, "GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"aoi serve did not answer /health within {timeout_s:.0f} s")

    def cpu_s(self) -> float:
        """User + system CPU seconds so far of the server process and every live process under it (its
        engine workers), from Linux /proc."""
        if self.proc is None:
            return 0.0
        stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            ticks = int(fields[11]) + int(fields[12])
            stats[int(stat.parent.name)] = (int(fields[1]), ticks / os.sysconf("SC_CLK_TCK"))
        if self.proc.pid not in stats:
            return float("nan")
        tree, frontier = {self.proc.pid}, [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in tree]
            tree.update(children)
            frontier += children
        return sum(stats[pid][1] for pid in tree)

    def kill(self) -> None:
        """SIGKILL, no shutdown at all (what a crash looks like)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (graceful: the line finishes accepted work), then SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type, built once so the timed loop only sends bytes."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise BenchError("PNG encoding failed")
    return encoded.tobytes()


@dataclass(frozen=True)
class Boards:
    """One synthetic template and tested images of it: `defect_count[i]` painted defects on image i."""

    template: np.ndarray
    tests: list[np.ndarray]
    defect_count: list[int]


def make_boards(n_images: int, defect_fraction: float, seed: int, size_px: int = 640) -> Boards:
    """Boards of one product: the first `defect_fraction` of them carry 1-4 painted defects, the rest are clean."""
    from aoi.data.synthetic import NoSuitableSpotError, generate_template, paint_defect
    from aoi.schema import DefectType

    rng = np.random.default_rng(seed)
    template = generate_template(rng, (size_px, size_px))
    kinds = list(DefectType)
    tests: list[np.ndarray] = []
    counts: list[int] = []
    n_defective = round(n_images * defect_fraction)
    for index in range(n_images):
        test = template
        labels: list = []
        if index < n_defective:
            for _ in range(int(rng.integers(1, 5))):
                try:
                    test, label = paint_defect(test, kinds[int(rng.integers(len(kinds)))], rng, labels)
                except NoSuitableSpotError:
                    continue
                labels.append(label)
        tests.append(test.copy())
        counts.append(len(labels))
    return Boards(template, tests, counts)


def create_product(port: int, key: str, name: str, template: np.ndarray) -> str:
    body, ctype = multipart({"name": name, "px_per_mm": "48"}, {"template": (f"{name}.png", png(template))})
    status, raw = request(
        port, "POST", f"{API}/products", body, {"Authorization": f"Bearer {key}", "Content-Type": ctype}
    )
    if status != 201:
        raise BenchError(f"POST /products answered {status}: {raw[:300]!r}")
    return str(json.loads(raw)["id"])


@dataclass
class ClientLog:
    """What one client thread saw. `samples`: (start, end, status) per request, perf_counter seconds."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Schedule:
    """Open-loop arrivals: request i is due at `start + i / rate_hz`, whichever client is free takes it.

    Latency is measured from the due time, not from the send, so a server that falls behind shows its
    queueing in the figures (no coordinated omission).
    """

    start: float
    rate_hz: float
    counter: Iterator[int] = field(default_factory=itertools.count)

    def next_due(self) -> float:
        return self.start + next(self.counter) / self.rate_hz  # next() on itertools.count is atomic


def client_loop(
    port: int,
    bodies: Sequence[tuple[bytes, str]],
    key: str,
    offset: int,
    stop_at: float,
    log: ClientLog,
    schedule: Schedule | None = None,
) -> None:
    """Post bodies round-robin over one keep-alive connection until `stop_at`: back to back
    (closed loop), or at the due times of `schedule` (open loop)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    index = offset
    clock = time.perf_counter
    while True:
        if schedule is None:
            started = clock()
        else:
            started = schedule.next_due()
            wait_s = started - clock()
            if wait_s > 0:
                time.sleep(wait_s)
        if started >= stop_at:
            break
        body, ctype = bodies[index % len(bodies)]
        index += 1
        headers = {"Authorization": f"Bearer {key}", "Content-Type": ctype}
        try:
            conn.request("POST", f"{API}/inspections", body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            log.samples.append((started, clock(), 0))
            log.errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        log.samples.append((started, clock(), status))
        if 200 <= status < 300:
            log.ids.append(json.loads(raw)["id"])
        else:
            log.errors.append(f"HTTP {status}: {raw[:200]!r}")
    conn.close()


def stored_ids(port: int, key: str) -> tuple[list[str], int]:
    """Every inspection id GET /api/v1/inspections lists (all pages), and the total it reports (reads need
    the key too: `aoi serve` closes them by default)."""
    ids: list[str] = []
    total = -1
    offset = 0
    while True:
        status, raw = request(port, "GET", f"{API}/inspections?limit=500&offset={offset}", headers=_bearer(key))
        if status != 200:
            raise BenchError(f"GET /inspections answered {status}: {raw[:300]!r}")
        page = json.loads(raw)
        total = int(page["total"])
        ids.extend(item["id"] for item in page["items"])
        offset += len(page["items"])
        if not page["items"] or offset >= total:
            return ids, total


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    if not latencies_s:
        return float("nan")
    return round(float(np.percentile(np.asarray(latencies_s), q)) * 1e3, 1)


def machine() -> dict[str, object]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(), "load_avg": os.getloadavg()}


def run(args: argparse.Namespace) -> dict[str, object]:
    floor_before = floor_beside(args.floor_data) if args.floor_data else None
    data_dir = Path(tempfile.mkdtemp(prefix="aoi-bench-http-"))
    server = ServerProcess(
        data_dir, args.port or free_port(), args.engine, ["--no-hot-folder", *args.server_arg], args.upload_concurrency
    )
    try:
        key = create_key(data_dir)
        server.start()
        boards = make_boards(args.images, args.defect_fraction, args.seed)
        product_id = create_product(server.port, key, "bench-board", boards.template)
        bodies = [
            multipart({"product": product_id}, {"image": (f"board{i:03d}.png", png(test))})
            for i, test in enumerate(boards.tests)
        ]
        logs = [ClientLog() for _ in range(args.clients)]
        t0 = time.perf_counter()
        measure_from = t0 + args.warmup
        stop_at = measure_from + args.duration
        server_cpu0 = server.cpu_s()
        client_cpu0 = _own_cpu_s()
        schedule = Schedule(t0, args.rate) if args.rate else None
        threads = [
            threading.Thread(
                target=client_loop,
                args=(server.port, bodies, key, i * len(bodies) // args.clients, stop_at, logs[i], schedule),
                daemon=True,
            )
            for i in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, measure_from - time.perf_counter()))
        server_cpu_warm = server.cpu_s()
        client_cpu_warm = _own_cpu_s()
        for thread in threads:
            thread.join()
        server_cpu1 = server.cpu_s()
        client_cpu1 = _own_cpu_s()
        ended = time.perf_counter()

        window = [s for log in logs for s in log.samples if measure_from <= s[0] < stop_at]
        ok_latencies = [end - start for start, end, status in window if 200 <= status < 300]
        measured_s = stop_at - measure_from
        answered_ids = [i for log in logs for i in log.ids]
        errors = [e for log in logs for e in log.errors]
        db_ids, db_total = stored_ids(server.port, key)
        model_version = _model_version(server.port, key, answered_ids[0]) if answered_ids else None
        answered_set, db_set = set(answered_ids), set(db_ids)
        result: dict[str, object] = {
            "benchmark": "http_inspections",
            "engine": args.engine,
            "model_version": model_version,
            "clients": args.clients,
            "mode": f"open loop, {args.rate} requests/s offered" if args.rate else "closed loop (back to back)",
            "images": f"{args.images} distinct 640x640 PNG, {sum(1 for c in boards.defect_count if c)} with defects",
            "warmup_s": args.warmup,
            "duration_s": round(measured_s, 1),
            "inspections_per_s": round(len(ok_latencies) / measured_s, 1),
            "latency_ms": {
                "p50": percentile_ms(ok_latencies, 50),
                "p95": percentile_ms(ok_latencies, 95),
                "p99": percentile_ms(ok_latencies, 99),
                "max": percentile_ms(ok_latencies, 100),
            },
            "requests_total": sum(len(log.samples) for log in logs),
            "responses_2xx": len(answered_ids),
            "errors": len(errors),
            "error_examples": sorted(set(errors))[:5],
            "db_total": db_total,
            "lost": len(answered_set - db_set),
            "duplicated_ids": len(answered_ids) - len(answered_set) + len(db_ids) - len(db_set),
            "unexpected_in_db": len(db_set - answered_set),
            "server_cpu_s_per_s": round((server_cpu1 - server_cpu_warm) / measured_s, 2),
            "client_cpu_s_per_s": round((client_cpu1 - client_cpu_warm) / measured_s, 2),
            "server_cpu_ms_per_inspection": round(1e3 * (server_cpu1 - server_cpu0) / max(1, len(answered_ids)), 1),
            "client_cpu_ms_per_inspection": round(1e3 * (client_cpu1 - client_cpu0) / max(1, len(answered_ids)), 1),
            "wall_s": round(ended - t0, 1),
            "server_args": ["--no-hot-folder", *args.server_arg],
            "upload_concurrency": args.upload_concurrency or "default (one per core)",
            "machine": machine(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        floor_after = floor_beside(args.floor_data) if floor_before else None
        if floor_before and floor_after:  # the floor just before and just after the load, on this machine
            floor = (floor_before["pairs_per_s"] + floor_after["pairs_per_s"]) / 2
            result["floor_pairs_per_s"] = [floor_before["pairs_per_s"], floor_after["pairs_per_s"]]
            result["fraction_of_floor"] = round(float(result["inspections_per_s"]) / floor, 3)  # type: ignore[arg-type]
        result["consistent"] = (
            result["lost"] == 0
            and result["duplicated_ids"] == 0
            and result["unexpected_in_db"] == 0
            and db_total == len(answered_ids)
        )
        return result
    finally:
        server.stop()
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"data kept in {data_dir}", file=sys.stderr)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _model_version(port: int, key: str, inspection_id: str) -> str | None:
    status, raw = request(port, "GET", f"{API}/inspections/{inspection_id}", headers=_bearer(key))
    return str(json.loads(raw)["model_version"]) if status == 200 else None


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (keep-alive each)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open loop: requests/s offered (0: each client back to back)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds, after the warm-up")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--images", type=int, default=32, help="distinct boards posted round-robin")
    parser.add_argument("--defect-fraction", type=float, default=0.5, help="share of boards with painted defects")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--engine", choices=["default", "fake"], default="default")
    parser.add_argument(
        "--upload-concurrency",
        type=int,
        default=None,
        help="start the app with this ServiceSettings.upload_concurrency instead of `aoi serve` (diagnostics)",
    )
    parser.add_argument("--server-arg", action="append", default=[], help="extra `aoi serve` argument (repeatable)")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    parser.add_argument(
        "--floor-data",
        type=Path,
        default=DEFAULT_ROOT,
        help="DeepPCB root for the floor benchmark run before and after (scripts/bench_floor.py); '' to skip",
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.images < 1:
        parser.error("--clients and --images must be >= 1 and --duration > 0")
    result = run(args)
    print(json.dumps(result))
    return 0 if result["consistent"] and result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
