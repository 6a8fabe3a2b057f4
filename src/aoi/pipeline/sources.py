"""Capture sources: an OpenCV camera or video stream, a synthetic demo line; the scanner's hot folder
lives in hotfolder.py and is re-exported here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from aoi.pipeline.hotfolder import HotFolderSource
from aoi.pipeline.protocols import CapturedImage, QueuePolicy, SourceError, StopFlag

if TYPE_CHECKING:
    from aoi.data.synthetic import SyntheticPair

__all__ = ["DemoSource", "HotFolderSource", "SourceError", "VideoSource", "demo_board", "synthetic_pair"]


class VideoSource:
    """Frames from OpenCV: a device index, a video file or a stream URL (RTSP, HTTP).

    A live camera cannot wait for the inspector, so the default policy drops the oldest queued
    frame when the line is behind (drops are counted). A video file plays once and ends; a live
    stream that stops delivering is reopened up to `reconnects` times.
    """

    def __init__(
        self,
        target: int | str,
        product: str | None = None,
        *,
        template: np.ndarray | None = None,
        name: str = "video",
        policy: QueuePolicy = QueuePolicy.DROP_OLDEST,
        max_fps: float | None = None,
        reconnects: int = 3,
    ) -> None:
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        self.target = target
        self.product = product
        self.template = template
        self.name = name
        self.policy = policy
        self.max_fps = max_fps
        self.reconnects = reconnects
        self.frames_read = 0

    @property
    def is_file(self) -> bool:
        return isinstance(self.target, str) and Path(self.target).is_file()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"video source {self.target!r} cannot be opened")
        return capture

    def frames(self, stop: StopFlag) -> Iterator[CapturedImage]:
        capture = self._open()
        session = uuid.uuid4().hex[:8]
        reconnects_left = self.reconnects
        index = 0
        min_period_s = 1.0 / self.max_fps if self.max_fps else 0.0
        try:
            while not stop.is_set():
                started = time.monotonic()
                ok, frame = capture.read()
                if not ok or frame is None:
                    if self.is_file or reconnects_left <= 0:
                        return
                    reconnects_left -= 1
                    capture.release()
                    stop.wait(0.5)
                    capture = self._open()
                    continue
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
                self.frames_read += 1
                yield CapturedImage(
                    source_key=f"video:{self.name}:{session}:{index}",
                    image=gray,
                    product=self.product,
                    template=self.template,
                    image_id=f"{self.name}-{session}-{index:06d}",
                )
                index += 1
                if min_period_s:
                    stop.wait(max(0.0, min_period_s - (time.monotonic() - started)))
        finally:
            capture.release()


PairFactory = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


DUST_PROBABILITY = 0.3  # boards of the demo line that carry 1-3 dust specks (not defects)


def demo_board(rng: np.random.Generator) -> SyntheticPair:
    """One demo-line board with its true defects: about half the boards are good, the rest carry 1-4
    defects, some slightly misaligned, and 30% carry dust specks, which are not defects but which a model
    that never saw dust calls spurious copper: the false calls operators reject and retraining removes."""
    from aoi.data.synthetic import make_pair, paint_dust  # imported on use: the demo is optional

    n_defects = (0, 0) if rng.random() < 0.5 else (1, 4)
    pair = make_pair(rng, n_defects=n_defects, misalign=bool(rng.random() < 0.3))
    if rng.random() < DUST_PROBABILITY:
        pair = replace(pair, test=paint_dust(pair.test, rng, int(rng.integers(1, 4))))
    return pair


def synthetic_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(template, test) of a demo-line board (see `demo_board`)."""
    pair = demo_board(rng)
    return pair.template, pair.test


class DemoSource:
    """A synthetic line: boards with painted defects at `rate_hz`, so a newcomer sees a running line.

    Each board comes with its own golden template; `product` only labels the inspections.
    """

    def __init__(
        self,
        product: str | None = "demo",
        *,
        rate_hz: float = 2.0,
        seed: int | None = None,
        name: str = "demo",
        limit: int | None = None,
        pair_factory: PairFactory | None = None,
        policy: QueuePolicy = QueuePolicy.BLOCK,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.product = product
        self.rate_hz = rate_hz
        self.seed = seed
        self.name = name
        self.limit = limit
        self.pair_factory = pair_factory or synthetic_pair
        self.policy = policy

    def frames(self, stop: StopFlag) -> Iterator[CapturedImage]:
        rng = np.random.default_rng(self.seed)
        session = uuid.uuid4().hex[:8]
        index = 0
        while not stop.is_set() and (self.limit is None or index < self.limit):
            started = time.monotonic()
            template, test = self.pair_factory(rng)
            yield CapturedImage(
                source_key=f"demo:{session}:{index}",
                image=test,
                template=template,
                product=self.product,
                image_id=f"demo-{session}-{index:06d}",
            )
            index += 1
            stop.wait(max(0.0, 1.0 / self.rate_hz - (time.monotonic() - started)))
