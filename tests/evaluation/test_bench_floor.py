"""The floor benchmark (scripts/bench_floor.py): the yardstick every throughput figure is divided by."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_floor.py"


def test_floor_runs_over_a_list_and_reports_pairs_per_second_and_load(synthetic_root: Path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(synthetic_root), "--list", "list.txt"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    listed = [line for line in (synthetic_root / "list.txt").read_text().splitlines() if line.strip()]
    assert report["pairs"] == len(listed) == 20
    assert report["pairs_per_s"] > 0 and report["workers"] == 2 and report["load_avg_1min"] >= 0
    assert report["blobs"] > 0  # the synthetic pairs carry painted defects: the difference is not empty


def test_floor_refuses_a_missing_list(tmp_path: Path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--list", "nope.txt"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and "not found" in done.stderr
