"""Video source: frames from a small MJPG file the test writes; live policy drops and counts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.support.pipeline_fakes import FakeInspector, paint_board

from aoi.pipeline import LinePipeline, MemorySink, PipelineConfig, QueuePolicy, SourceError, VideoSource

N_FRAMES = 24


@pytest.fixture(scope="module")
def board() -> np.ndarray:
    board = paint_board(np.random.default_rng(5), 96)
    board[40:56, 8:88] = 200  # wide, smooth features survive JPEG compression
    return board


@pytest.fixture()
def video(tmp_path: Path, board: np.ndarray) -> Path:
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 96))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG")
    for i in range(N_FRAMES):
        frame = board.copy()
        if i % 4 == 0:
            frame[10:30, 60:80] = 255  # a defect on every 4th board
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def test_every_frame_is_inspected_when_blocking(video: Path, board: np.ndarray) -> None:
    sink = MemorySink()
    source = VideoSource(str(video), product="cam", template=board, policy=QueuePolicy.BLOCK)
    with LinePipeline(FakeInspector(), sink) as line:
        line.add_source(source)
        deadline = time.monotonic() + 10
        while line.metrics()["counts"]["stored"] < N_FRAMES and time.monotonic() < deadline:
            time.sleep(0.02)
    results = sorted(sink.results, key=lambda r: r.image_id)
    assert len(results) == N_FRAMES and source.frames_read == N_FRAMES
    assert all(r.image_size_wh == (96, 96) and r.product == "cam" for r in results)
    with_defect = [int(r.image_id.rsplit("-", 1)[1]) for r in results if r.defects]
    assert with_defect == list(range(0, N_FRAMES, 4))


def test_live_policy_drops_frames_and_counts_them(video: Path, board: np.ndarray) -> None:
    gate = threading.Event()
    sink = MemorySink()
    source = VideoSource(str(video), template=board, name="cam0")  # default: drop oldest
    config = PipelineConfig(inspect_workers=1, inspect_queue=2)
    with LinePipeline(FakeInspector(gate=gate), sink, config=config) as line:
        line.add_source(source)
        deadline = time.monotonic() + 10
        while line.metrics()["sources"]["cam0"]["captured"] < N_FRAMES and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()
        line.wait_idle(10)
    cam = line.metrics()["sources"]["cam0"]
    assert cam["captured"] == N_FRAMES
    assert cam["dropped"] >= N_FRAMES - 4
    assert cam["dropped"] + len(sink.results) == N_FRAMES


def test_unopenable_video_is_a_clear_error(tmp_path: Path) -> None:
    source = VideoSource(str(tmp_path / "missing.avi"))
    with pytest.raises(SourceError, match="cannot be opened"):
        next(iter(source.frames(threading.Event())))


def test_a_device_index_given_as_text_opens_that_camera(video: Path) -> None:
    assert VideoSource("0").target == 0
    assert VideoSource(str(video), name="v").target == str(video)


def test_a_source_that_cannot_open_shows_its_error_in_metrics(tmp_path: Path) -> None:
    with LinePipeline(FakeInspector(), MemorySink()) as line:
        line.add_source(VideoSource(str(tmp_path / "unplugged.avi"), name="cam9"))
        deadline = time.monotonic() + 5
        while line.metrics()["sources"]["cam9"]["capturing"] and time.monotonic() < deadline:
            time.sleep(0.01)
        cam = line.metrics()["sources"]["cam9"]
    assert cam["capturing"] is False and "cannot be opened" in cam["error"]
