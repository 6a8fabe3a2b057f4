"""Prometheus metrics in the text exposition format, kept per app (no process-global registry)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

GaugeReader = Callable[[], Mapping[str, float]]


class ServiceMetrics:
    """Inspections by verdict and source, inspection latency, rejected requests, and pipeline gauges.

    Gauges are read at scrape time from callables (the pipeline's queue depths, dropped frames),
    so the pipeline needs no reference to this object.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inspections: dict[tuple[str, str], int] = {}
        self._bucket_counts = [0] * len(LATENCY_BUCKETS_S)
        self._latency_count = 0
        self._latency_sum_s = 0.0
        self._rejected: dict[int, int] = {}
        self._gauges: dict[str, tuple[str, GaugeReader]] = {}

    def observe_inspection(self, verdict: str, source: str, seconds: float) -> None:
        with self._lock:
            key = (verdict, source)
            self._inspections[key] = self._inspections.get(key, 0) + 1
            self._latency_count += 1
            self._latency_sum_s += seconds
            for i, bound in enumerate(LATENCY_BUCKETS_S):
                if seconds <= bound:
                    self._bucket_counts[i] += 1

    def observe_rejected(self, status: int) -> None:
        with self._lock:
            self._rejected[status] = self._rejected.get(status, 0) + 1

    def add_gauge(self, name: str, help_text: str, reader: GaugeReader) -> None:
        """`reader()` returns {label value: number}; the label is called `name` (e.g. a queue's name)."""
        self._gauges[name] = (help_text, reader)

    def render(self) -> str:
        with self._lock:
            inspections = dict(self._inspections)
            buckets = list(self._bucket_counts)
            count, total_s = self._latency_count, self._latency_sum_s
            rejected = dict(self._rejected)
        lines = [
            "# HELP aoi_inspections_total Inspections stored, by verdict and source.",
            "# TYPE aoi_inspections_total counter",
        ]
        for verdict in ("pass", "fail"):
            if not any(v == verdict for v, _ in inspections):
                inspections[(verdict, "upload")] = 0
        for (verdict, source), n in sorted(inspections.items()):
            lines.append(f'aoi_inspections_total{{verdict="{verdict}",source="{_escape(source)}"}} {n}')
        lines += [
            "# HELP aoi_inspection_latency_seconds Time from receiving an image to its stored result.",
            "# TYPE aoi_inspection_latency_seconds histogram",
        ]
        for bound, n in zip(LATENCY_BUCKETS_S, buckets, strict=True):
            lines.append(f'aoi_inspection_latency_seconds_bucket{{le="{bound}"}} {n}')
        lines.append(f'aoi_inspection_latency_seconds_bucket{{le="+Inf"}} {count}')
        lines.append(f"aoi_inspection_latency_seconds_sum {total_s:.6f}")
        lines.append(f"aoi_inspection_latency_seconds_count {count}")
        lines += [
            "# HELP aoi_requests_rejected_total Requests answered with a 4xx, by status.",
            "# TYPE aoi_requests_rejected_total counter",
        ]
        for status, n in sorted(rejected.items()):
            lines.append(f'aoi_requests_rejected_total{{status="{status}"}} {n}')
        for name, (help_text, reader) in sorted(self._gauges.items()):
            try:
                values = dict(reader())
            except Exception:  # a gauge that cannot be read must not break the scrape
                continue
            lines += [f"# HELP aoi_{name} {help_text}", f"# TYPE aoi_{name} gauge"]
            for label, value in sorted(values.items()):
                if math.isfinite(float(value)):
                    lines.append(f'aoi_{name}{{name="{_escape(label)}"}} {float(value):g}')
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
