"""Hot folder, nothing lost and nothing stuck: content keys, failures fixed and re-queued, files set
aside with a reason, and waits logged once per change of state."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.support.pipeline_fakes import FakeInspector, paint_board, with_defect

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

LOGGER = "aoi.pipeline.hotfolder"


def _encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _board(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    template = paint_board(np.random.default_rng(seed))
    return template, with_defect(template, (20, 20, 30, 26))


def _run(
    folder: Path,
    sink: MemorySink,
    expect_moved: int,
    *,
    product: str | None = "p",
    inspector: FakeInspector | None = None,
    **source_options: float,
) -> HotFolderSource:
    """Run a line on `folder` until `expect_moved` files left the inbox (done/ or failed/)."""
    template, _ = _board()
    products = StaticTemplateProvider({"p": ProductRecipe(template, 48.0, VerdictRules())})
    source = HotFolderSource(folder, product=product, poll_interval_s=0.02, stable_polls=1, **source_options)
    with LinePipeline(inspector or FakeInspector(), sink, products) as line:
        line.add_source(source)
        deadline = time.monotonic() + 10
        while source.moved_done + source.moved_failed < expect_moved:
            assert time.monotonic() < deadline, "the hot folder did not move the files in 10 s"
            time.sleep(0.02)
    return source


def _results_for(sink: MemorySink, image_id: str) -> int:
    return sum(1 for r in sink.results if r.image_id == image_id)


def test_failed_file_moved_back_with_its_late_template_is_inspected(tmp_path: Path) -> None:
    """The file failed for want of a template; once the template is there and the file is moved back
    (mv keeps its mtime), it is inspected and stored, not skipped to done/ with no result."""
    template, test = _board()
    (tmp_path / "z.png").write_bytes(_encode(test))
    sink = MemorySink()
    _run(tmp_path, sink, 1, product=None, template_wait_s=0.05)
    assert (tmp_path / "failed" / "z.png").exists() and len(sink.failures) == 1
    assert "no template" in (tmp_path / "failed" / "z.png.reason.txt").read_text()

    (tmp_path / "z_temp.png").write_bytes(_encode(template))
    os.replace(tmp_path / "failed" / "z.png", tmp_path / "z.png")  # what an operator's `mv` does
    inspector = FakeInspector()
    _run(tmp_path, sink, 1, product=None, inspector=inspector, template_wait_s=0.05)
    assert inspector.calls == 1
    assert _results_for(sink, "z.png") == 1 and (tmp_path / "done" / "z.png").exists()
    assert len(sink.results[0].defects) == 1


def test_stored_file_dropped_again_with_a_new_mtime_is_not_inspected_twice(tmp_path: Path) -> None:
    _, test = _board()
    (tmp_path / "f.png").write_bytes(_encode(test))
    sink = MemorySink()
    _run(tmp_path, sink, 1)
    shutil.copy(tmp_path / "done" / "f.png", tmp_path / "f.png")  # a plain copy: a new mtime
    os.utime(tmp_path / "f.png", ns=(time.time_ns(), time.time_ns() + 10**9))
    inspector = FakeInspector()
    _run(tmp_path, sink, 1, inspector=inspector)
    assert inspector.calls == 0 and _results_for(sink, "f.png") == 1
    assert len(list((tmp_path / "done").iterdir())) == 2  # the second drop is kept beside the first
    assert not (tmp_path / "f.png").exists()


def test_reused_name_with_same_size_and_mtime_but_new_bytes_is_inspected(tmp_path: Path) -> None:
    """A scanner that reuses a name: size and mtime alike (BMP sizes are fixed), the content is new."""
    template, first = _board()
    second = with_defect(template, (60, 60, 70, 66))
    path = tmp_path / "scan.bmp"
    path.write_bytes(_encode(first, ".bmp"))
    stat = path.stat()
    sink = MemorySink()
    _run(tmp_path, sink, 1)
    path.write_bytes(_encode(second, ".bmp"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    inspector = FakeInspector()
    _run(tmp_path, sink, 1, inspector=inspector)
    assert inspector.calls == 1 and _results_for(sink, "scan.bmp") == 2
    boxes = sorted(r.defects[0].box_px for r in sink.results)
    assert boxes == [(20.0, 20.0, 30.0, 26.0), (60.0, 60.0, 70.0, 66.0)]


def test_same_bytes_under_two_names_are_two_inspections(tmp_path: Path) -> None:
    _, test = _board()
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(_encode(test))
    sink = MemorySink()
    _run(tmp_path, sink, 2)
    assert sorted(r.image_id for r in sink.results) == ["a.png", "b.png"]


def test_empty_file_goes_to_failed_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "late.png").write_bytes(b"")  # created empty, filled in within the grace time
    source = HotFolderSource(tmp_path, product="p", stable_polls=1, empty_grace_s=0.2)
    assert source.poll() == []
    _, test = _board()
    (tmp_path / "late.png").write_bytes(_encode(test))
    assert [c.image_id for c in source.poll()] == ["late.png"]
    time.sleep(0.25)
    assert source.poll() == []
    assert not (tmp_path / "empty.png").exists()
    assert (tmp_path / "failed" / "empty.png").read_bytes() == b""
    assert "empty file" in (tmp_path / "failed" / "empty.png.reason.txt").read_text()
    assert source.moved_failed == 1 and (tmp_path / "late.png").exists()  # late.png is in flight


def test_empty_template_goes_to_failed_and_its_image_uses_the_product(tmp_path: Path) -> None:
    _, test = _board()
    (tmp_path / "x.png").write_bytes(_encode(test))
    (tmp_path / "x_temp.png").write_bytes(b"")
    source = HotFolderSource(tmp_path, product="p", stable_polls=1, empty_grace_s=0.1)
    assert source.poll() == []  # waits for its template to be written
    time.sleep(0.15)
    ready = source.poll()
    assert "empty file" in (tmp_path / "failed" / "x_temp.png.reason.txt").read_text()
    assert [c.image_id for c in ready] == ["x.png"] and ready[0].template_file is None


def test_unreadable_file_goes_to_failed_with_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aoi.pipeline import hotfolder

    _, test = _board()
    (tmp_path / "locked.png").write_bytes(_encode(test))
    (tmp_path / "fine.png").write_bytes(_encode(test))
    real = hotfolder.file_sha256

    def sha256_or_denied(path: Path) -> str:  # root reads through chmod 000, so the denial is simulated
        if path.name == "locked.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(hotfolder, "file_sha256", sha256_or_denied)
    source = HotFolderSource(tmp_path, product="p", stable_polls=1)
    assert [c.image_id for c in source.poll()] == ["fine.png"]
    reason = (tmp_path / "failed" / "locked.png.reason.txt").read_text()
    assert reason.startswith("unreadable: PermissionError") and "Permission denied" in reason
    assert source.moved_failed == 1 and not (tmp_path / "locked.png").exists()


def test_a_waiting_file_is_logged_once_per_change_of_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    template, test = _board()
    (tmp_path / "z.png").write_bytes(_encode(test))
    source = HotFolderSource(tmp_path, stable_polls=1, template_wait_s=60.0, retry_after_s=0.0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(5):
            assert source.poll() == []
        (tmp_path / "z_temp.png").write_bytes(_encode(template))
        (captured,) = source.poll()
        for _ in range(3):  # the store fails three times: one line when it starts retrying
            captured.ack(Outcome(OutcomeStatus.NOT_STORED, captured.source_key))
            (captured,) = source.poll()
        captured.ack(Outcome(OutcomeStatus.STORED, captured.source_key, "id-1"))
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert lines == [
        "hot folder: z.png waits up to 60.0 s for its template z_temp.png (no product subfolder, no default product)",
        "hot folder: z.png no longer waits (template late); queued for inspection",
        "hot folder: z.png could not be stored; it stays in the inbox and is retried every 0.0 s",
        "hot folder: z.png stored after retrying",
    ]
    assert (tmp_path / "done" / "z.png").exists() and (tmp_path / "done" / "z_temp.png").exists()


def test_source_key_names_the_file_and_its_bytes(tmp_path: Path) -> None:
    import hashlib

    _, test = _board()
    data = _encode(test)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "k.png").write_bytes(data)
    (captured,) = HotFolderSource(tmp_path, stable_polls=1).poll()
    assert captured.source_key == f"hotfolder:sub/k.png:{hashlib.sha256(data).hexdigest()}"


def test_files_of_other_formats_go_to_failed_with_a_reason_and_partial_writes_stay(tmp_path: Path) -> None:
    _, test = _board()
    (tmp_path / "notes.txt").write_text("shift notes")
    (tmp_path / "p2").mkdir()
    (tmp_path / "p2" / "scan.gif").write_bytes(b"GIF89a")
    (tmp_path / "incoming.png.part").write_bytes(b"half")
    (tmp_path / "board.png").write_bytes(_encode(test))
    source = HotFolderSource(tmp_path, product="p", stable_polls=1, empty_grace_s=0.1)
    assert [c.image_id for c in source.poll()] == ["board.png"]
    assert (tmp_path / "notes.txt").exists()  # within the grace time a writer may still rename it
    time.sleep(0.15)
    source.poll()
    assert "not an image format the line reads (.txt)" in (tmp_path / "failed" / "notes.txt.reason.txt").read_text()
    assert (tmp_path / "failed" / "p2" / "scan.gif").read_bytes() == b"GIF89a"
    assert ".gif" in (tmp_path / "failed" / "p2" / "scan.gif.reason.txt").read_text()
    assert (tmp_path / "incoming.png.part").exists() and not (tmp_path / "failed" / "incoming.png.part").exists()
    assert source.moved_failed == 2
