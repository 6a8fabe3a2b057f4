"""A line process for the crash-and-resume test: inspects a hot folder until its inbox is empty.

Run as `python hotfolder_worker.py INBOX SINK_KIND SINK_PATH`; the test SIGKILLs it halfway and
starts it again. SINK_KIND is `sqlite` (the test sink) or `storage` (aoi.storage's database sink).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: tests.support

from tests.support.pipeline_fakes import FakeInspector, SqliteSink, paint_board  # noqa: E402

from aoi.pipeline import (  # noqa: E402
    HotFolderSource,
    LinePipeline,
    PipelineConfig,
    ProductRecipe,
    StaticTemplateProvider,
)
from aoi.verdict import VerdictRules  # noqa: E402


def main() -> int:
    inbox, sink_kind, sink_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    if sink_kind == "storage":
        from aoi.storage import Storage

        storage = Storage.open(sink_path)
        sink = storage.sink()
    else:
        sink = SqliteSink(sink_path)
    template = paint_board(np.random.default_rng(0), 64)
    products = StaticTemplateProvider({"p": ProductRecipe(template, 48.0, VerdictRules())})
    source = HotFolderSource(inbox, product="p", poll_interval_s=0.05, stable_polls=2)
    config = PipelineConfig(inspect_workers=2, inspect_queue=8)
    with LinePipeline(FakeInspector(delay_s=0.005), sink, products, config) as line:
        line.add_source(source)
        print("running", flush=True)
        while any(p.suffix == ".png" for p in inbox.iterdir()):
            time.sleep(0.05)
    print(f"done {source.moved_done}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
