#!/usr/bin/env bash
# Dashboard browser tests in headless Debian Chromium (driven by the `playwright` package; no `playwright install`).
# Installs chromium from Debian when it is missing, then runs tests/web; screenshots land in test-artifacts/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y chromium chromium-driver
fi

python="${PYTHON:-.venv/bin/python}"
"$python" -c "import playwright" 2>/dev/null || "$python" -m pip install "playwright>=1.44"
mkdir -p test-artifacts/screenshots
exec "$python" -m pytest tests/web -m browser -q "$@"
