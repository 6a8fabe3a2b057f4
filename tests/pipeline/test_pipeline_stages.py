"""Bounded queues: the stated policies when full (block with back-pressure, drop oldest/newest)."""

from __future__ import annotations

import threading
import time

import pytest

from aoi.pipeline.protocols import QueuePolicy
from aoi.pipeline.stages import BoundedQueue, LatencyRecorder, QueueClosed, QueueFull, Worker


def test_block_policy_times_out_without_dropping() -> None:
    q: BoundedQueue[int] = BoundedQueue("t", 2)
    q.put(1)
    q.put(2)
    with pytest.raises(QueueFull):
        q.put(3, QueuePolicy.BLOCK, timeout=0.05)
    assert q.snapshot() == {"depth": 2, "capacity": 2, "drops": 0, "puts": 2}
    assert [q.get(), q.get()] == [1, 2]


def test_block_policy_waits_for_room() -> None:
    q: BoundedQueue[int] = BoundedQueue("t", 1)
    q.put(1)
    threading.Timer(0.05, q.get).start()
    started = time.monotonic()
    assert q.put(2, QueuePolicy.BLOCK, timeout=2.0) is None
    assert time.monotonic() - started >= 0.04
    assert q.get() == 2


def test_drop_oldest_evicts_and_counts() -> None:
    q: BoundedQueue[int] = BoundedQueue("t", 2)
    q.put(1, QueuePolicy.DROP_OLDEST)
    q.put(2, QueuePolicy.DROP_OLDEST)
    assert q.put(3, QueuePolicy.DROP_OLDEST) == 1
    assert q.put(4, QueuePolicy.DROP_OLDEST) == 2
    assert q.drops == 2
    assert [q.get(), q.get()] == [3, 4]


def test_drop_newest_refuses_the_new_item() -> None:
    q: BoundedQueue[int] = BoundedQueue("t", 1)
    q.put(1, QueuePolicy.DROP_NEWEST)
    assert q.put(2, QueuePolicy.DROP_NEWEST) == 2
    assert q.drops == 1
    assert q.get() == 1


def test_drop_oldest_never_evicts_protected_items() -> None:
    """Uploads (odd numbers here) share the queue with camera frames but are never evicted."""
    q: BoundedQueue[int] = BoundedQueue("t", 2, droppable=lambda item: item % 2 == 0)
    q.put(1)
    q.put(3)
    assert q.put(4, QueuePolicy.DROP_OLDEST) == 4  # nothing evictable: the new frame goes
    assert [q.get(), q.get()] == [1, 3]


def test_close_lets_consumers_drain_then_stop() -> None:
    q: BoundedQueue[int] = BoundedQueue("t", 4)
    q.put(1)
    q.put(2)
    q.close()
    with pytest.raises(QueueClosed):
        q.put(3)
    assert [q.get(), q.get()] == [1, 2]
    with pytest.raises(QueueClosed):
        q.get()


def test_close_wakes_a_blocked_producer() -> None:
    q: BoundedQueue[int] = BoundedQueue("t", 1)
    q.put(1)
    threading.Timer(0.05, q.close).start()
    with pytest.raises(QueueClosed):
        q.put(2, timeout=2.0)


def test_latency_percentiles() -> None:
    rec = LatencyRecorder()
    assert rec.snapshot()["count"] == 0
    for ms in range(1, 101):
        rec.record(float(ms))
    snap = rec.snapshot()
    assert snap["count"] == 100
    assert 50.0 <= snap["p50_ms"] <= 51.0
    assert 99.0 <= snap["p99_ms"] <= 100.0


def test_worker_runs_until_false_and_records_a_crash() -> None:
    calls: list[str] = []
    ticks = iter([True, True, False])
    worker = Worker("w", lambda: calls.append("run") or next(ticks))
    worker.start()
    worker.join(2)
    assert calls == ["run", "run", "run"]
    assert worker.error is None

    def boom() -> bool:
        raise RuntimeError("bug")

    crashing = Worker("c", boom)
    crashing.start()
    crashing.join(2)
    assert not crashing.is_alive()
    assert isinstance(crashing.error, RuntimeError)
