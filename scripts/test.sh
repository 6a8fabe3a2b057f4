#!/usr/bin/env bash
# Set up from nothing (Python 3.11 + pip + gcc) and run the whole test suite. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system_deps.sh
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.13.0 (the 'train' extra) comes from the machine's local wheel; inference needs none of it.
.venv/bin/python -m pip install -q -e '.[train,dev]'
mkdir -p test-artifacts/screenshots
.venv/bin/ruff check src tests scripts
.venv/bin/mypy src/aoi
# Exit code 5 (no tests collected) is a failure like any other non-zero code.
.venv/bin/python -m pytest -q --timeout=900 "$@"
