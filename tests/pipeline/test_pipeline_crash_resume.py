"""Crash and resume: SIGKILL a hot-folder line halfway, restart it, every file stored exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.support.pipeline_fakes import paint_board, with_defect

WORKER = Path(__file__).parent / "hotfolder_worker.py"
N_FILES = 200


def _fill_inbox(inbox: Path) -> None:
    inbox.mkdir()
    template = paint_board(np.random.default_rng(0), 64)
    for i in range(N_FILES):
        test = with_defect(template, (i % 50, 5, i % 50 + 4, 9))
        ok, buf = cv2.imencode(".png", test)
        assert ok
        (inbox / f"board{i:03d}.png").write_bytes(buf.tobytes())


def _start(inbox: Path, kind: str, sink_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(inbox), kind, str(sink_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _stored_keys(kind: str, sink_path: Path) -> list[str]:
    db = sink_path if kind == "sqlite" else next(sink_path.glob("*.db"), sink_path / "missing.db")
    if not db.exists():
        return []
    table = "results" if kind == "sqlite" else "inspections"
    with sqlite3.connect(db, timeout=5) as conn:
        try:
            return [row[0] for row in conn.execute(f"SELECT source_key FROM {table}")]
        except sqlite3.OperationalError:  # tables not created yet
            return []


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("storage", marks=pytest.mark.slow)])
def test_sigkill_halfway_then_restart_stores_each_file_once(tmp_path: Path, kind: str) -> None:
    if kind == "storage":
        pytest.importorskip("aoi.storage")
    inbox = tmp_path / "inbox"
    _fill_inbox(inbox)
    sink_path = tmp_path / ("results.sqlite" if kind == "sqlite" else "data")

    first = _start(inbox, kind, sink_path)
    deadline = time.monotonic() + 30
    while len(_stored_keys(kind, sink_path)) < N_FILES // 3:
        if first.poll() is not None:
            pytest.fail(f"worker exited early: {first.stdout.read() if first.stdout else ''}")
        if time.monotonic() > deadline:
            first.kill()
            pytest.fail("worker stored too little in 30 s")
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    stored_at_kill = len(_stored_keys(kind, sink_path))
    assert stored_at_kill < N_FILES, "killed too late to test a resume"

    second = _start(inbox, kind, sink_path)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out

    keys = _stored_keys(kind, sink_path)
    assert len(keys) == N_FILES and len(set(keys)) == N_FILES
    assert sorted(k.split(":")[1] for k in keys) == [f"board{i:03d}.png" for i in range(N_FILES)]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == [f"board{i:03d}.png" for i in range(N_FILES)]
    assert not any(p.suffix == ".png" for p in inbox.iterdir())
    if kind == "sqlite":
        with sqlite3.connect(sink_path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM duplicate_attempts").fetchone()[0] == 0
