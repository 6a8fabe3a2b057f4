"""The `FrameSource` contract (`aoi.pipeline.protocols.FrameSource`), checked on every source the line captures from:
the scanner's hot folder (`HotFolderSource`), the synthetic demo line (`DemoSource`) and OpenCV video, a file here
(`VideoSource`; a camera or stream is the same class with another target, and only its "cannot be opened" is
testable on a machine without one). An HTTP upload is not a source: it enters the line by `LinePipeline.submit`.

What the protocol and its hand-off types promise and these tests hold every source to:
- `frames(stop)` yields `CapturedImage`s whose `source_key` starts with the source's kind (`hotfolder:`, `demo:`,
  `video:`: how storage records where a board came from), unique per item, whose pixels are a grey image with
  something to inspect it against (a template, or a product whose recipe has one);
- `frames` returns soon after `stop` is set, also while it waits for the next item, and leaves nothing held
  (a second source over the same input can start);
- acknowledgement (`CapturedImage.ack(Outcome)`): a stored (or skipped) item is never given again; an item the
  sink could not store (`NOT_STORED`) is given again later by a source that keeps its items (the hot folder); a
  failed one is set aside with its reason. A live source (camera, demo) keeps nothing: any outcome is harmless;
- a bad input is reported, never raised out of the line: a bad file becomes a per-image failure or is set aside
  with its reason, and a source that cannot run raises `SourceError`, which the line shows in its metrics;
- `policy`: sources that must not lose a board block, a live camera drops (and the line counts the drops).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.support.pipeline_fakes import FakeInspector, paint_traces, with_defect

from aoi.pipeline import (
    CapturedImage,
    DemoSource,
    FrameSource,
    HotFolderSource,
    LinePipeline,
    MemorySink,
    Outcome,
    OutcomeStatus,
    PipelineConfig,
    ProductRecipe,
    QueuePolicy,
    SourceError,
    StaticTemplateProvider,
    VideoSource,
)
from aoi.schema import InspectionFailure, InspectionInputError
from aoi.verdict import VerdictRules

N = 3  # items each source gives in a test
SIZE_PX = 160
BOARD = paint_traces(SIZE_PX, seed=11)
BOARD[60:90, 20:140] = 200  # a wide, smooth feature that survives MJPG compression
TIMEOUT_S = 10.0  # waiting for an item; a correct source gives it in well under a second
STOP_S = 1.5  # how soon frames() must return once stop is set


def _fast_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(template, test) of a demo board, painted in microseconds (the real painter is tested once)."""
    x, y = (int(v) for v in rng.integers(10, SIZE_PX - 20, 2))
    return BOARD, with_defect(BOARD, (x, y, x + 6, y + 6))


def _png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise RuntimeError(f"cannot write {path}")
    return path


@dataclass(frozen=True)
class SourceCase:
    """One kind of source: how to build it over `N` good items (`slow`: one that then waits long for the next),
    over bad input, and what its kind promises besides the common contract."""

    kind: str  # the source key's prefix
    make: Callable[[Path, bool], FrameSource]  # (tmp folder, slow) -> a source giving N items
    make_bad: Callable[[Path], FrameSource]  # a source whose input is broken in the way this kind can be
    keeps_items: bool  # a NOT_STORED item is given again; a FAILED one is set aside with its reason
    policy: QueuePolicy  # its default policy when the inspect queue is full


def _hot_folder(tmp: Path, slow: bool) -> HotFolderSource:
    inbox = tmp / "inbox"
    for i in range(N):
        _png(inbox / "p" / f"b{i}.png", with_defect(BOARD, (10 + 30 * i, 10, 16 + 30 * i, 16)))
    return HotFolderSource(
        inbox, poll_interval_s=30.0 if slow else 0.02, stable_polls=1, retry_after_s=0.2, empty_grace_s=0.3
    )


def _bad_hot_folder(tmp: Path) -> HotFolderSource:
    inbox = tmp / "inbox"
    _png(inbox / "p" / "good.png", BOARD)
    (inbox / "p" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated by the scanner")
    (inbox / "p" / "empty.png").write_bytes(b"")
    (inbox / "notes.txt").write_text("not an image")
    return HotFolderSource(inbox, poll_interval_s=0.02, stable_polls=1, empty_grace_s=0.3)


def _demo(tmp: Path, slow: bool) -> DemoSource:
    return DemoSource("demo", rate_hz=0.05 if slow else 200.0, seed=1, limit=N, pair_factory=_fast_pair)


def _bad_demo(tmp: Path) -> DemoSource:
    calls = iter(range(10_000))

    def factory(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if next(calls) == 0:
            return BOARD, np.zeros((0, 0), np.uint8)  # a board the painter got wrong: no pixels
        return _fast_pair(rng)

    return DemoSource("demo", rate_hz=200.0, seed=1, limit=2, pair_factory=factory)


def _video(tmp: Path, slow: bool) -> VideoSource:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (SIZE_PX, SIZE_PX))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG")
    for i in range(N):
        writer.write(cv2.cvtColor(with_defect(BOARD, (10 + 30 * i, 10, 26 + 30 * i, 26)), cv2.COLOR_GRAY2BGR))
    writer.release()
    return VideoSource(str(path), product="cam", template=BOARD, max_fps=0.05 if slow else None)


def _bad_video(tmp: Path) -> VideoSource:
    path = tmp / "broken.avi"
    path.write_bytes(b"RIFF not really a video" * 64)
    return VideoSource(str(path), template=BOARD)


CASES = {
    "hotfolder": SourceCase("hotfolder", _hot_folder, _bad_hot_folder, True, QueuePolicy.BLOCK),
    "demo": SourceCase("demo", _demo, _bad_demo, False, QueuePolicy.BLOCK),
    "video": SourceCase("video", _video, _bad_video, False, QueuePolicy.DROP_OLDEST),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> SourceCase:
    return CASES[request.param]


class Capture:
    """`source.frames(stop)` run as the line runs it, in a thread of its own; items arrive in `items`."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.stop = threading.Event()
        self.items: queue.Queue[CapturedImage] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"contract-{source.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.source.frames(self.stop):
                self.items.put(item)
        except BaseException as exc:  # kept for the test to see
            self.error = exc

    def take(self, n: int, timeout_s: float = TIMEOUT_S) -> list[CapturedImage]:
        deadline = time.monotonic() + timeout_s
        taken = []
        while len(taken) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.source.name} gave {len(taken)} of {n} items (error: {self.error!r})")
            try:
                taken.append(self.items.get(timeout=min(remaining, 0.05)))
            except queue.Empty:
                continue
        return taken

    def more(self, wait_s: float) -> list[CapturedImage]:
        """Whatever else arrives within `wait_s`."""
        time.sleep(wait_s)
        extra = []
        while not self.items.empty():
            extra.append(self.items.get_nowait())
        return extra

    def close(self, timeout_s: float = STOP_S) -> bool:
        """Set stop; True when frames() returned within `timeout_s`."""
        self.stop.set()
        self.thread.join(timeout_s)
        return not self.thread.is_alive()


@pytest.fixture
def capture() -> Iterator[Callable[[FrameSource], Capture]]:
    started: list[Capture] = []

    def start(source: FrameSource) -> Capture:
        started.append(Capture(source))
        return started[-1]

    yield start
    for running in started:
        running.close()


def test_yields_captured_images_keyed_by_its_kind(case: SourceCase, tmp_path: Path, capture) -> None:
    source = case.make(tmp_path, False)
    assert isinstance(source.name, str) and source.name
    assert source.policy is case.policy
    items = capture(source).take(N)
    keys = [item.source_key for item in items]
    assert len(set(keys)) == N
    for item in items:
        assert isinstance(item, CapturedImage)
        kind, sep, rest = item.source_key.partition(":")
        assert (kind, sep) == (case.kind, ":") and rest
        image, template = item.pixels()
        assert image.dtype == np.uint8 and image.ndim == 2 and image.shape == (SIZE_PX, SIZE_PX)
        assert template is not None or item.product is not None  # something to inspect against


def test_the_demo_line_paints_real_boards(tmp_path: Path, capture) -> None:
    """The demo with its own painter (the other tests use a fast one): boards with their own templates."""
    items = capture(DemoSource("demo", rate_hz=200.0, seed=3, limit=2)).take(2)
    for item in items:
        image, template = item.pixels()
        assert item.source_key.startswith("demo:") and item.product == "demo"
        assert template is not None and template.shape == image.shape and image.dtype == np.uint8


def test_stops_soon_after_stop_is_set_and_holds_nothing(case: SourceCase, tmp_path: Path, capture) -> None:
    busy = capture(case.make(tmp_path, False))
    busy.take(1)
    assert busy.close(), "frames() went on after stop was set"
    assert busy.error is None
    waiting = capture(case.make(tmp_path / "slow", True))
    if case.kind != "hotfolder":
        waiting.take(1)  # then it waits long for the next one (an idle inbox waits from the start)
    time.sleep(0.1)
    started = time.monotonic()
    assert waiting.close(), "frames() did not return while waiting for its next item"
    assert time.monotonic() - started < STOP_S and waiting.error is None
    # nothing held: the same input can be captured again by a new source (the hot folder's inbox lock is free)
    again = capture(case.make(tmp_path / "slow", False))
    assert again.take(1) and again.error is None


def test_a_stored_item_is_never_given_again(case: SourceCase, tmp_path: Path, capture) -> None:
    running = capture(case.make(tmp_path, False))
    items = running.take(N)
    for item in items:
        item.ack(Outcome(OutcomeStatus.STORED, item.source_key, "id"))
    keys = {item.source_key for item in items}
    assert not keys & {item.source_key for item in running.more(0.3)}
    if case.kind == "hotfolder":
        assert sorted(p.name for p in (tmp_path / "inbox" / "done" / "p").iterdir()) == ["b0.png", "b1.png", "b2.png"]


def test_an_item_not_stored_is_given_again_and_a_failed_one_set_aside(
    case: SourceCase, tmp_path: Path, capture
) -> None:
    running = capture(case.make(tmp_path, False))
    first, second, third = running.take(N)
    first.ack(Outcome(OutcomeStatus.NOT_STORED, first.source_key))
    failure = InspectionFailure(second.image_id or second.source_key, "RegistrationError", "another board")
    second.ack(Outcome(OutcomeStatus.FAILED, second.source_key, failure=failure))
    third.ack(Outcome(OutcomeStatus.SKIPPED, third.source_key))  # the sink already held it
    if not case.keeps_items:  # a live frame cannot be captured again: the line counts it as a store error
        later = [item.source_key for item in running.more(0.5)]
        assert first.source_key not in later and second.source_key not in later
        return
    (retried,) = running.take(1)  # after `retry_after_s`
    assert retried.source_key == first.source_key, "the item the sink could not store was not given again"
    later = [item.source_key for item in running.more(0.3)]
    assert not {first.source_key, second.source_key, third.source_key} & set(later)
    failed = tmp_path / "inbox" / "failed" / "p"
    assert (failed / "b1.png").exists()
    assert "RegistrationError: another board" in (failed / "b1.png.reason.txt").read_text()
    assert (tmp_path / "inbox" / "done" / "p" / "b2.png").exists()
    assert (tmp_path / "inbox" / "p" / "b0.png").exists()  # kept in the inbox for the retry


def _wait(predicate: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_bad_input_is_reported_not_raised(case: SourceCase, tmp_path: Path) -> None:
    """Through the line: a bad file or board becomes a failure (or is set aside with its reason); a source that
    cannot run at all raises SourceError in its own thread and the line shows it, still running."""
    source = case.make_bad(tmp_path)
    sink = MemorySink()
    templates = StaticTemplateProvider({"p": ProductRecipe(BOARD, 20.0, VerdictRules())})
    line = LinePipeline(FakeInspector(), sink, templates, PipelineConfig(inspect_workers=1))
    line.add_source(source)
    with line:
        if case.kind == "video":
            assert _wait(lambda: line.metrics()["sources"][source.name]["error"] is not None)
            stats = line.metrics()["sources"][source.name]
            assert "cannot be opened" in stats["error"] and not stats["capturing"]
            assert line.running
            with pytest.raises(SourceError):
                next(iter(source.frames(threading.Event())))
            return
        assert _wait(lambda: len(sink.results) == 1 and len(sink.failures) == 1)
        if case.kind == "hotfolder":  # what never reached the line is set aside by the source, with its reason
            failed = tmp_path / "inbox" / "failed"
            names = ("p/broken.png", "p/empty.png", "notes.txt")
            assert _wait(lambda: all((failed / f"{name}.reason.txt").exists() for name in names))
            for name in names:
                assert (failed / name).exists() and (failed / f"{name}.reason.txt").read_text().strip(), name
            assert "empty" in (failed / "p" / "empty.png.reason.txt").read_text()
        assert line.running and line.metrics()["sources"][source.name]["error"] is None
    assert isinstance(sink.failures[0].error, str) and sink.failures[0].message


def test_a_bad_file_reaches_the_line_as_a_per_image_failure(tmp_path: Path, capture) -> None:
    """The hot folder does not decode in its capture thread: a broken file is yielded, and decoding it raises
    the engine's input error in the inspect worker that asks for its pixels."""
    source = _bad_hot_folder(tmp_path)
    items = {item.image_id: item for item in capture(source).take(2)}
    assert set(items) == {"p/good.png", "p/broken.png"}
    with pytest.raises(InspectionInputError):
        items["p/broken.png"].pixels()


def test_a_camera_that_cannot_be_opened_raises_source_error() -> None:
    with pytest.raises(SourceError, match="cannot be opened"):
        next(iter(VideoSource(63, template=BOARD, reconnects=0).frames(threading.Event())))


def test_the_policy_is_kept_when_the_line_is_behind(case: SourceCase, tmp_path: Path) -> None:
    """A blocking source loses nothing while the inspector is held up; a dropping one drops and the line counts it."""
    gate = threading.Event()
    sink = MemorySink()
    templates = StaticTemplateProvider({"p": ProductRecipe(BOARD, 20.0, VerdictRules())})
    config = PipelineConfig(inspect_workers=1, inspect_queue=1)
    source = case.make(tmp_path, False)
    line = LinePipeline(FakeInspector(gate=gate), sink, templates, config)
    line.add_source(source)
    with line:
        # the source runs into the full queue: one item held by the inspector, one queued, the rest offered
        assert _wait(lambda: line.metrics()["sources"][source.name]["captured"] == N)
        time.sleep(0.1)
        gate.set()
        assert _wait(
            lambda: line.metrics()["in_flight"] == 0 and line.metrics()["sources"][source.name]["captured"] == N
        )
        stats = line.metrics()["sources"][source.name]
    if case.policy is QueuePolicy.BLOCK:
        assert len(sink.results) == N and stats["dropped"] == 0
    else:
        assert stats["dropped"] >= 1 and len(sink.results) == N - stats["dropped"]
