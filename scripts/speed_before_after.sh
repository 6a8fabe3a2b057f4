#!/usr/bin/env bash
# Alternate `aoi eval` on the 500-pair speed list between a base commit and this tree, same machine,
# same minutes, each beside the floor benchmark (scripts/bench_floor.py) run just before it, with the
# load average; every engine figure is reported as pairs/s and as a fraction of that floor:
#   bash scripts/speed_before_after.sh d2fc8df [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?base commit}; rounds=${2:-2}
wt=$(mktemp -d)/base
git worktree add -q "$wt" "$base"
trap 'git worktree remove --force "$wt"' EXIT
data=../shared/datasets/deeppcb/PCBData
list=recipes/deeppcb-speed-500.txt
for _ in $(seq "$rounds"); do
  for side in before after; do
    src=$([ "$side" = before ] && echo "$wt/src" || echo "$PWD/src")
    floor=$(.venv/bin/python scripts/bench_floor.py "$data" --list "$list" | tail -1)
    PYTHONPATH=$src .venv/bin/python -m aoi.cli eval "$data" --list "$list" --out "/tmp/speed-$side" 2>/dev/null | tail -1 |
      FLOOR="$floor" .venv/bin/python -c "
import json, os, sys
r = json.load(sys.stdin); f = json.loads(os.environ['FLOOR'])
print('$side', 'pairs/s', r['images_per_s'], 'floor', f['pairs_per_s'], 'fraction', round(r['images_per_s'] / f['pairs_per_s'], 3),
      'load', f['load_avg_1min'], 'map33', r['map33'], 'F', r['f_score'], 'model', r['model'], 'stage_ms', r['stage_ms_mean'])"
  done
done
