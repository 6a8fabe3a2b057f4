"""Benchmark: POST /api/v1/inspections offered past capacity, on a running `aoi serve` with admission control.

It reuses `bench_http.py`'s server and boards: `aoi serve --no-hot-folder` (uvicorn, SQLite, the
bundled model) on a fresh temporary data directory, a key from `aoi keys create`, a product whose
template is a synthetic board, 640x640 PNG boards encoded before the clock starts. Then, for each
offered rate, an open loop (request i due at start + i / rate, latency counted from the due time,
so a client that falls behind shows it) runs for a warm-up and a measured window, and it reports:

- the ACHIEVED rate of accepted inspections (201 answers received during the window, per second),
  and how long after the window the last answer came (`drained_s` - duration: the backlog);
- p50 / p99 / max latency of the accepted ones, from the due time and from the send (the server's part);
- the 503s (line full, or no slot in time): count, p50 / p99 / max latency, Retry-After values;
- any other answer or transport error;
- the 1-minute load average before and after, and the server's CPU seconds per second.

At the end it checks that every accepted inspection was stored once (the database total equals the
201 answers) and adds the service's admission gauges from /metrics. Clients do not honour
Retry-After: the load stays what the line offers, which is the overload being measured.

    python scripts/bench_overload.py                                   # 150/s and 300/s, 20 s each
    python scripts/bench_overload.py --rates 100,200,400 --duration 30 --clients 96
    python scripts/bench_overload.py --server-arg=--upload-queue --server-arg=2

The last line printed is one JSON object with the figures. Exit status 1 when an accepted inspection
was not stored, or any answer was neither 201 nor 503.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_http import (
    API,
    Schedule,
    ServerProcess,
    create_key,
    create_product,
    free_port,
    machine,
    make_boards,
    multipart,
    percentile_ms,
    png,
    request,
)


@dataclass
class Answer:
    """One request of the open loop: due, sent and answered (perf_counter s), status (0: transport error)."""

    due_s: float
    sent_s: float
    answered_s: float
    status: int
    retry_after: str | None = None

    @property
    def latency_s(self) -> float:
        """From the due time: what the line sees, the client's own lateness included."""
        return self.answered_s - self.due_s

    @property
    def answer_s(self) -> float:
        """From the moment the request was sent: the server's part."""
        return self.answered_s - self.sent_s


@dataclass
class ClientAnswers:
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def offer(
    port: int, bodies: Sequence[tuple[bytes, str]], key: str, schedule: Schedule, stop_at: float, log: ClientAnswers
) -> None:
    """Post the boards at the schedule's due times over one keep-alive connection until `stop_at`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    clock = time.perf_counter
    index = 0
    while True:
        due = schedule.next_due()
        if due >= stop_at:
            break
        wait_s = due - clock()
        if wait_s > 0:
            time.sleep(wait_s)
        body, ctype = bodies[index % len(bodies)]
        index += 1
        sent = clock()
        try:
            conn.request(
                "POST",
                f"{API}/inspections",
                body=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": ctype},
            )
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            log.answers.append(Answer(due, sent, clock(), 0))
            log.errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        log.answers.append(Answer(due, sent, clock(), response.status, response.getheader("Retry-After")))
        if response.status not in (201, 503):
            log.errors.append(f"HTTP {response.status}: {raw[:200]!r}")
        if response.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.close()


def run_rate(
    server: ServerProcess, bodies: Sequence[tuple[bytes, str]], key: str, rate: float, args: argparse.Namespace
) -> tuple[dict[str, object], int]:
    """One open-loop phase at `rate` requests/s: its figures, and every 201 it got (warm-up included)."""
    logs = [ClientAnswers() for _ in range(args.clients)]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    measure_from = t0 + args.warmup
    stop_at = measure_from + args.duration
    schedule = Schedule(t0, rate)
    threads = [
        threading.Thread(target=offer, args=(server.port, bodies, key, schedule, stop_at, log), daemon=True)
        for log in logs
    ]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu_from, client_cpu_from = server.cpu_s(), client_cpu_s()
    for thread in threads:
        thread.join()
    cpu_to, client_cpu_to = server.cpu_s(), client_cpu_s()
    drained_s = time.perf_counter() - measure_from  # longer than the window when the answers fell behind
    answers = [a for log in logs for a in log.answers]
    window = [a for a in answers if measure_from <= a.due_s < stop_at]
    accepted = [a.latency_s for a in window if a.status == 201]
    # the achieved rate: inspections answered 201 while the window lasted, whenever they were due
    accepted_in_window = sum(1 for a in answers if a.status == 201 and measure_from <= a.answered_s < stop_at)
    refused = [a for a in window if a.status == 503]
    refused_s = [a.latency_s for a in refused]
    late_s = [a.sent_s - a.due_s for a in window]
    retry_after = sorted({a.retry_after or "missing" for a in refused})
    errors = [e for log in logs for e in log.errors]
    figures: dict[str, object] = {
        "offered_per_s": rate,
        "requests_in_window": len(window),
        "accepted_per_s": round(accepted_in_window / args.duration, 1),
        "accepted_of_due_in_window": len(accepted),
        "drained_s": round(drained_s, 1),
        "accepted_latency_ms": _spread(accepted),
        "accepted_answer_ms_from_send": _spread([a.answer_s for a in window if a.status == 201]),
        "refused_503": len(refused),
        "refused_503_per_s": round(len(refused) / args.duration, 1),
        "refused_503_latency_ms": _spread(refused_s),
        "refused_503_over_100ms": sum(1 for s in refused_s if s > 0.1),
        "refused_503_answer_ms_from_send": _spread([a.answer_s for a in refused]),
        "client_late_ms": _spread(late_s),
        "retry_after_values": retry_after,
        "other_answers": sum(1 for a in window if a.status not in (201, 503)),
        "error_examples": sorted(set(errors))[:5],
        "server_cpu_s_per_s": round((cpu_to - cpu_from) / drained_s, 2),
        "client_cpu_s_per_s": round((client_cpu_to - client_cpu_from) / drained_s, 2),
        "load_avg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    return figures, sum(1 for a in answers if a.status == 201)


def client_cpu_s() -> float:
    """User + system CPU seconds of this (client) process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spread(latencies_s: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile_ms(latencies_s, 50),
        "p99": percentile_ms(latencies_s, 99),
        "max": percentile_ms(latencies_s, 100),
    }


def stored_total(port: int, key: str) -> int:
    status, raw = request(port, "GET", f"{API}/inspections?limit=1", headers={"Authorization": f"Bearer {key}"})
    if status != 200:
        raise RuntimeError(f"GET /inspections answered {status}: {raw[:300]!r}")
    return int(json.loads(raw)["total"])


def admission_gauges(port: int) -> dict[str, float]:
    """The admission and upload-line lines of /metrics, as {"metric{labels}": value}."""
    _, raw = request(port, "GET", "/metrics")
    picked = {}
    for line in raw.decode().splitlines():
        if line.startswith(("aoi_admission_refused", "aoi_upload_slots", "aoi_requests_rejected_total")):
            name, _, value = line.rpartition(" ")
            picked[name] = float(value)
    return picked


def run(args: argparse.Namespace) -> dict[str, object]:
    data_dir = Path(tempfile.mkdtemp(prefix="aoi-bench-overload-"))
    server_args = ["--no-hot-folder", *args.server_arg]
    server = ServerProcess(data_dir, args.port or free_port(), "default", server_args)
    try:
        key = create_key(data_dir)
        server.start()
        boards = make_boards(args.images, args.defect_fraction, args.seed)
        product_id = create_product(server.port, key, "bench-board", boards.template)
        bodies = [
            multipart({"product": product_id}, {"image": (f"board{i:03d}.png", png(test))})
            for i, test in enumerate(boards.tests)
        ]
        phases = []
        accepted_total = 0
        for rate in args.rates:
            figures, accepted = run_rate(server, bodies, key, rate, args)
            phases.append(figures)
            accepted_total += accepted
            print(json.dumps(figures), file=sys.stderr)
        db_total = stored_total(server.port, key)
        return {
            "benchmark": "http_overload",
            "clients": args.clients,
            "mode": "open loop per offered rate; latency from the due time; Retry-After not honoured",
            "images": f"{args.images} distinct 640x640 PNG",
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "server_args": server_args,
            "phases": phases,
            "accepted_total": accepted_total,
            "db_total": db_total,
            "consistent": db_total == accepted_total,
            "metrics": admission_gauges(server.port),
            "machine": machine(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    finally:
        server.stop()
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"data kept in {data_dir}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="150,300", help="offered requests/s, comma-separated, one phase each")
    parser.add_argument("--clients", type=int, default=64, help="client threads (keep-alive each)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring, per rate")
    parser.add_argument("--images", type=int, default=32, help="distinct boards posted round-robin")
    parser.add_argument("--defect-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `aoi serve` argument (repeatable)")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args(argv)
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: comma-separated numbers, e.g. 150,300")
    if not args.rates or min(args.rates) <= 0 or args.clients < 1 or args.duration <= 0:
        parser.error("--rates must be positive, --clients >= 1 and --duration > 0")
    result = run(args)
    print(json.dumps(result))
    phases: list[dict[str, object]] = result["phases"]  # type: ignore[assignment]
    clean = all(p["other_answers"] == 0 for p in phases)
    return 0 if result["consistent"] and clean else 1


if __name__ == "__main__":
    sys.exit(main())
