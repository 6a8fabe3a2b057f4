"""Hot folder: partial files are not read early, templates per file, done/ and failed/, exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.support.image_bombs import BOMB_WH, BOMBS, SUFFIXES
from tests.support.pipeline_fakes import FakeInspector, paint_board, with_defect

from aoi.data.images import ImageError
from aoi.pipeline import (
    HotFolderSource,
    LinePipeline,
    MemorySink,
    Outcome,
    OutcomeStatus,
    ProductRecipe,
    StaticTemplateProvider,
)
from aoi.verdict import VerdictRules


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _board(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    template = paint_board(np.random.default_rng(seed))
    return template, with_defect(template, (20, 20, 30, 26))


def _wait(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def test_file_is_ready_only_after_size_and_mtime_are_stable(tmp_path: Path) -> None:
    template, test = _board()
    source = HotFolderSource(tmp_path, product="p", stable_polls=2)
    data = _png(test)
    path = tmp_path / "a.png"
    path.write_bytes(data[: len(data) // 2])  # the scanner is still writing
    assert source.poll() == []
    with path.open("ab") as f:
        f.write(data[len(data) // 2 :])
    assert source.poll() == []  # changed since the last poll: not stable yet
    ready = source.poll()
    assert [c.image_id for c in ready] == ["a.png"]
    image, explicit_template = ready[0].pixels()
    assert np.array_equal(image, test) and explicit_template is None
    assert source.poll() == []  # in flight: not handed out twice


def test_temp_names_are_ignored_until_renamed(tmp_path: Path) -> None:
    _, test = _board()
    source = HotFolderSource(tmp_path, product="p", stable_polls=1)
    (tmp_path / "b.png.part").write_bytes(_png(test))
    (tmp_path / "c.tmp").write_bytes(_png(test))
    assert source.poll() == [] and source.poll() == []
    (tmp_path / "b.png.part").rename(tmp_path / "b.png")
    assert [c.image_id for c in source.poll()] == ["b.png"]


def test_template_from_sibling_file_or_product_subfolder(tmp_path: Path) -> None:
    template, test = _board()
    (tmp_path / "x_temp.png").write_bytes(_png(template))
    (tmp_path / "x.png").write_bytes(_png(test))
    (tmp_path / "board-a").mkdir()
    (tmp_path / "board-a" / "y.png").write_bytes(_png(test))
    source = HotFolderSource(tmp_path, stable_polls=2)
    source.poll()
    ready = {c.image_id: c for c in source.poll()}
    assert set(ready) == {"x.png", "board-a/y.png"}  # the template file itself is not inspected
    _, sibling = ready["x.png"].pixels()
    assert sibling is not None and np.array_equal(sibling, template)
    assert ready["x.png"].template_file == (tmp_path / "x_temp.png").resolve()
    assert ready["board-a/y.png"].product == "board-a"
    assert ready["board-a/y.png"].pixels()[1] is None


def test_root_file_without_template_waits_for_its_sibling(tmp_path: Path) -> None:
    template, test = _board()
    source = HotFolderSource(tmp_path, stable_polls=1, template_wait_s=60.0)
    (tmp_path / "z.png").write_bytes(_png(test))
    assert source.poll() == []  # no product, no template yet: give the scanner time to write it
    (tmp_path / "z_temp.png").write_bytes(_png(template))
    ready = source.poll()
    assert [c.image_id for c in ready] == ["z.png"] and ready[0].pixels()[1] is not None


def _run_line(folder: Path, sink: MemorySink, expect: int, inspector: FakeInspector | None = None) -> HotFolderSource:
    template, _ = _board()
    products = StaticTemplateProvider({"p": ProductRecipe(template, 48.0, VerdictRules())})
    source = HotFolderSource(folder, product="p", poll_interval_s=0.02, stable_polls=2)
    with LinePipeline(inspector or FakeInspector(), sink, products) as line:
        line.add_source(source)
        _wait(lambda: source.moved_done + source.moved_failed >= expect)
    return source


def test_files_move_to_done_or_failed_with_a_reason_note(tmp_path: Path) -> None:
    _, test = _board()
    for i in range(5):
        (tmp_path / f"ok{i}.png").write_bytes(_png(test))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "small.png").write_bytes(_png(test[:20, :20]))
    sink = MemorySink()
    source = _run_line(tmp_path, sink, expect=7)
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [f"ok{i}.png" for i in range(5)]
    failed = sorted(p.name for p in (tmp_path / "failed").iterdir())
    assert failed == ["broken.png", "broken.png.reason.txt", "small.png", "small.png.reason.txt"]
    assert "ImageError" in (tmp_path / "failed" / "small.png.reason.txt").read_text()
    assert not list(tmp_path.glob("*.png"))
    assert len(sink.results) == 5 and len(sink.failures) == 2
    assert source.moved_done == 5 and source.moved_failed == 2
    assert all(len(r.defects) == 1 for r in sink.results)


def test_bombs_go_to_failed_with_a_reason_and_the_batch_carries_on(tmp_path: Path) -> None:
    """Tiny files declaring 30000x30000 pixels, one of every format the decoder reads (WebP and
    PBM/PGM/PPM included: a suffix the inbox ignored would leave them there), are refused from their
    header, never decoded."""
    _, test = _board()
    bombs = {f"{kind}{SUFFIXES[kind]}": build(*BOMB_WH) for kind, build in BOMBS.items()}
    for name, data in bombs.items():
        (tmp_path / name).write_bytes(data)
    for i in range(3):
        (tmp_path / f"ok{i}.png").write_bytes(_png(test))
    sink = MemorySink()
    started = time.monotonic()
    source = _run_line(tmp_path, sink, expect=len(bombs) + 3)
    assert time.monotonic() - started < 10.0
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["ok0.png", "ok1.png", "ok2.png"]
    for name in bombs:
        reason = (tmp_path / "failed" / f"{name}.reason.txt").read_text()
        assert reason.startswith("ImageError") and "declares 30000x30000 pixels, which exceeds" in reason, reason
    assert len(sink.results) == 3 and len(sink.failures) == len(bombs)
    assert source.moved_failed == len(bombs)


def test_each_bomb_in_the_inbox_is_refused_within_100_ms(tmp_path: Path) -> None:
    """The hot folder's own read of a file (hash, then decode): a bomb costs no more than a header read."""
    for kind, build in BOMBS.items():
        (tmp_path / f"{kind}{SUFFIXES[kind]}").write_bytes(build(*BOMB_WH))
    ready = HotFolderSource(tmp_path, product="p", stable_polls=1).poll()
    assert len(ready) == len(BOMBS)
    slow = {}
    for captured in ready:
        started = time.perf_counter()
        with pytest.raises(ImageError, match="declares 30000x30000 pixels, which exceeds"):
            captured.pixels()
        elapsed_s = time.perf_counter() - started
        if elapsed_s >= 0.1:
            slow[captured.image_id] = round(elapsed_s * 1000.0, 1)
    assert not slow, slow


def test_restart_moves_already_stored_files_without_inspecting_again(tmp_path: Path) -> None:
    """A crash after the sink committed but before the move: the restart only moves the file."""
    _, test = _board()
    for i in range(4):
        (tmp_path / f"f{i}.png").write_bytes(_png(test))
    sink = MemorySink()
    probe = HotFolderSource(tmp_path, product="p", stable_polls=1)
    stored_before = probe.poll()[:2]
    for captured in stored_before:  # simulate the first run: stored, then killed before moving
        image, _ = captured.pixels()
        sink.store(
            FakeInspector().inspect(image, image, image_id=captured.image_id or "x"), image, "p", captured.source_key
        )
    inspector = FakeInspector()
    _run_line(tmp_path, sink, expect=4, inspector=inspector)
    assert inspector.calls == 2  # only the two files the sink did not hold
    assert len(sink.records) == 4
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["f0.png", "f1.png", "f2.png", "f3.png"]


def test_not_stored_file_stays_for_retry(tmp_path: Path) -> None:
    _, test = _board()
    (tmp_path / "r.png").write_bytes(_png(test))
    source = HotFolderSource(tmp_path, product="p", stable_polls=1, retry_after_s=60.0)
    (captured,) = source.poll()
    captured.ack(Outcome(OutcomeStatus.NOT_STORED, captured.source_key))
    assert (tmp_path / "r.png").exists()
    assert source.poll() == []  # backing off before the retry
    source.retry_after_s = 0.0
    captured.ack(Outcome(OutcomeStatus.NOT_STORED, captured.source_key))
    assert [c.image_id for c in source.poll()] == ["r.png"]


def test_hot_folder_blocks_instead_of_dropping(tmp_path: Path) -> None:
    from aoi.pipeline import PipelineConfig

    _, test = _board()
    for i in range(30):
        (tmp_path / f"q{i:02d}.png").write_bytes(_png(test))
    gate = threading.Event()
    template, _ = _board()
    products = StaticTemplateProvider({"p": ProductRecipe(template, 48.0, VerdictRules())})
    sink = MemorySink()
    source = HotFolderSource(tmp_path, product="p", poll_interval_s=0.02, stable_polls=1)
    config = PipelineConfig(inspect_workers=1, inspect_queue=2)
    with LinePipeline(FakeInspector(gate=gate), sink, products, config) as line:
        line.add_source(source)
        _wait(lambda: line.metrics()["queues"]["inspect"]["depth"] == 2)
        time.sleep(0.1)
        assert line.metrics()["sources"]["hotfolder"]["accepted"] <= 3  # the capture thread waits
        gate.set()
        _wait(lambda: source.moved_done == 30)
    assert line.metrics()["counts"]["dropped"] == 0 and len(sink.results) == 30


def test_one_inbox_is_watched_by_one_process_only(tmp_path: Path) -> None:
    import subprocess
    import sys

    stop = threading.Event()
    frames = HotFolderSource(tmp_path, product="p", poll_interval_s=0.01).frames(stop)
    watcher = threading.Thread(target=lambda: list(frames))
    watcher.start()
    try:
        _wait(lambda: (tmp_path / ".aoi-hotfolder.lock").exists())
        time.sleep(0.05)
        code = (
            "import sys, threading\n"
            "from aoi.pipeline import HotFolderSource, SourceError\n"
            "try:\n"
            f"    next(iter(HotFolderSource({str(tmp_path)!r}).frames(threading.Event())))\n"
            "except SourceError as exc:\n"
            "    print(exc); sys.exit(3)\n"
        )
        second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert second.returncode == 3 and "already watched" in second.stdout
    finally:
        stop.set()
        watcher.join(5)
