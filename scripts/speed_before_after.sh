#!/usr/bin/env bash
# Alternate `aoi eval` on the 500-pair speed list between a base commit and this tree, same machine,
# same minutes, with the load average before each run:
#   bash scripts/speed_before_after.sh 8daf2d9 [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?base commit}; rounds=${2:-2}
wt=$(mktemp -d)/base
git worktree add -q "$wt" "$base"
trap 'git worktree remove --force "$wt"' EXIT
for _ in $(seq "$rounds"); do
  for side in before after; do
    src=$([ "$side" = before ] && echo "$wt/src" || echo "$PWD/src")
    uptime | sed 's/.*load/load/'
    PYTHONPATH=$src .venv/bin/python -m aoi.cli eval ../shared/datasets/deeppcb/PCBData \
      --list recipes/deeppcb-speed-500.txt --out "/tmp/speed-$side" 2>/dev/null | tail -1 |
      .venv/bin/python -c "import json,sys; r=json.load(sys.stdin); print('$side', r['images_per_s'], r['map33'], r['f_score'], r['stage_ms_mean'])"
  done
done
