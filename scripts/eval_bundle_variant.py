"""Score the bundled model with some bundle.json settings changed, e.g. the connectivity check on.

    python scripts/eval_bundle_variant.py topology '{"candidates": {"topology": true}}' [LIST]

Copies src/aoi/models/default to /tmp/bundle-NAME, merges the JSON patch into its bundle.json
("candidates" is merged key by key), runs `aoi eval` on LIST (default: the validation groups) and
prints the headline figures, per-class AP@0.33 and the mean ms per stage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    name, patch = sys.argv[1], json.loads(sys.argv[2])
    listing = sys.argv[3] if len(sys.argv) > 3 else "recipes/deeppcb-validation.txt"
    folder = Path(f"/tmp/bundle-{name}")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "src/aoi/models/default", folder)
    meta = json.loads((folder / "bundle.json").read_text())
    meta["candidates"].update(patch.pop("candidates", {}))
    meta.update(patch)
    (folder / "bundle.json").write_text(json.dumps(meta))
    command = [sys.executable, "-m", "aoi.cli", "eval", str(ROOT.parent / "shared/datasets/deeppcb/PCBData"),
               "--list", listing, "--model", str(folder), "--out", f"/tmp/eval-{name}"]  # fmt: skip
    last = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip().splitlines()[-1]
    r = json.loads(last)
    keys = ("map33", "deeppcb_map", "f_score", "recall", "precision", "images_per_s")
    print(name, {k: r[k] for k in keys}, r["ap33"], r["stage_ms_mean"])


if __name__ == "__main__":
    main()
