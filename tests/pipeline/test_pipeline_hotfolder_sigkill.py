"""The hot folder of `aoi serve` SIGKILLed at random moments, restarted each time: every file stored
exactly once, no orphan image, every file in done/ (scripts/reliability_hotfolder.py at a small scale;
the script's default is 1,000 files and 10 kills)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "reliability_hotfolder.py"


def test_sixty_files_three_random_sigkills_each_stored_once(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--files", "60", "--kills", "3", "--seed", "7", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO_ROOT,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    logs = "\n".join(p.read_text()[-1500:] for p in sorted((tmp_path / "data").glob("worker-*.log")))
    assert summary["ok"], json.dumps(summary, indent=1) + "\n" + logs
    assert done.returncode == 0
    assert summary["kills"] == 3 and all(k["done_at_kill"] < 60 for k in summary["kill_points"])
    checks = summary["checks"]
    assert checks["rows"] == checks["done"] == 60
    assert checks["duplicate_source_keys"] == checks["orphan_image_files"] == checks["left_in_inbox"] == 0
