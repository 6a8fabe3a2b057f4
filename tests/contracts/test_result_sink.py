"""The `ResultSink` contract (`aoi.pipeline.protocols.ResultSink`), checked on every sink the line can store into:
the memory sink (`aoi.pipeline.sinks.MemorySink`) and the database sink (`aoi.storage.recorder.DatabaseSink`) over
SQLite and over PostgreSQL (skipped when the server at 127.0.0.1:5432 is absent).

What the protocol promises and these tests hold every sink to:
- `store` gives back an id (or a record with one), and the result reads back with the same defects;
- `store` is idempotent per `source_key`: storing a key again returns the first id and stores nothing more;
- `already_done` is true only once a result is stored; a recorded failure (`store_failure`) does not count;
- a store that cannot be done raises (the line answers an upload with that error and keeps a captured file
  for a retry, `OutcomeStatus.NOT_STORED`), leaves nothing stored, and the retry stores exactly once.

Each implementation is reached through a small `SinkCase`: how to build it, read a stored result back and break
its storage. Those are the only implementation-specific lines.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from tests.support.pipeline_fakes import paint_traces, with_defect

from aoi.pipeline.protocols import ResultSink, UploadExtras
from aoi.pipeline.sinks import MemorySink
from aoi.pipeline.template_origin import InlineTemplate
from aoi.schema import Defect, InspectionFailure, InspectionResult, Trace, Verdict
from aoi.storage import Storage
from aoi.storage.images import ImageStoreFull
from aoi.storage.inspections import InspectionRepository

Fault = Callable[[pytest.MonkeyPatch], type[BaseException]]  # breaks the sink's storage; the error it must raise


@dataclass
class SinkCase:
    """One sink under test and the implementation-specific ways to look into it."""

    sink: ResultSink
    read: Callable[[str], InspectionResult | None]  # the stored result of an id, None when there is none
    count: Callable[[str], int]  # results stored under a source key
    files: Callable[[], int] = lambda: 0  # image files the sink keeps (0 for a sink that keeps none on disk)
    faults: dict[str, Fault] = field(default_factory=dict)  # how its storage can fail


def store(sink: ResultSink, result: InspectionResult, image: np.ndarray, source_key: str, **extras: object) -> str:
    """`sink.store` as the line calls it for a capture that brought its own template pixels (a camera, the demo),
    reduced to the id the protocol promises. The one place that spells out the call."""
    stored = sink.store(result, image, InlineTemplate(BOARD), source_key, **extras)  # type: ignore[arg-type]
    return stored if isinstance(stored, str) else stored.id


def _memory_case() -> SinkCase:
    sink = MemorySink()

    def read(inspection_id: str) -> InspectionResult | None:
        return next((r.result for r in sink.records if r.inspection_id == inspection_id), None)

    def count(source_key: str) -> int:
        return sum(r.source_key == source_key and r.result is not None for r in sink.records)

    return SinkCase(sink, read, count)  # memory cannot fail: no faults


def _full_image_store(storage: Storage) -> Fault:
    root = storage.images.root.resolve()

    def fault(monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
        real = pathlib.Path.write_bytes

        def write_bytes(path: pathlib.Path, data: bytes) -> int:  # type: ignore[override]
            if root in path.resolve().parents:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return real(path, data)

        monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
        return ImageStoreFull  # the API's 507

    return fault


def _database_down(monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    def add(self: InspectionRepository, row: object) -> None:
        raise OperationalError("INSERT INTO inspections", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(InspectionRepository, "add", add)
    return DBAPIError  # the API's 503 + Retry-After


@contextlib.contextmanager
def _database_case(data_dir: Path, database_url: str | None) -> Iterator[SinkCase]:
    storage = Storage.open(data_dir, database_url)

    def read(inspection_id: str) -> InspectionResult | None:
        with storage.db.session() as session:
            stored = InspectionRepository(session).get(inspection_id)
        return None if stored is None else stored.result

    def count(source_key: str) -> int:
        with storage.db.session() as session:
            query = text("SELECT COUNT(*) FROM inspections WHERE source_key = :key")
            return int(session.execute(query, {"key": source_key}).scalar_one())

    def files() -> int:
        return sum(1 for p in storage.images.root.rglob("*") if p.is_file() and not p.name.startswith("."))

    faults = {"image_store_full": _full_image_store(storage), "database_down": _database_down}
    try:
        yield SinkCase(storage.sink(), read, count, files, faults)
    finally:
        storage.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SinkCase]:
    if request.param == "memory":
        yield _memory_case()
        return
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with _database_case(tmp_path / "data", url) as sink_case:
        yield sink_case


def _key() -> str:
    return f"hotfolder:contract/{uuid.uuid4().hex}.png:0"  # every test stores under its own keys


BOARD = paint_traces(160, seed=3)
TESTED = with_defect(BOARD, (20, 30, 28, 36))


def _result(defects: tuple[Defect, ...] = (), trace: Trace | None = None) -> InspectionResult:
    return InspectionResult(
        image_id=f"board-{uuid.uuid4().hex[:8]}",
        image_size_wh=(160, 160),
        defects=defects,
        verdict=Verdict.FAIL if defects else Verdict.PASS,
        px_per_mm=20.0,
        model_version="contract-1",
        timings_ms={"total": 1.0},
        trace=trace or Trace(),
    )


RESULTS = {
    "no_defects": _result(),
    "defects": _result(
        (
            Defect("short", 0.875, (20.0, 30.0, 28.0, 36.0)).with_mm(20.0),
            Defect("open", 0.5, (0.0, 0.0, 4.0, 128.0)).with_mm(20.0),  # along the border
            Defect("spur", 1.0, (100.25, 7.5, 127.0, 9.75)),  # sub-pixel box, no mm
        ),
        Trace(lot="L-7", panel_id="P-0042", line="line-2"),
    ),
}


def _same_defects(stored: InspectionResult, sent: InspectionResult) -> None:
    """Type, confidence and both boxes of every defect, in order; ids are the sink's to give."""
    assert len(stored.defects) == len(sent.defects)
    for got, want in zip(stored.defects, sent.defects, strict=True):
        assert got.type is want.type
        assert got.confidence == pytest.approx(want.confidence)
        assert got.box_px == pytest.approx(want.box_px)
        assert (got.box_mm is None) == (want.box_mm is None)
        if want.box_mm is not None:
            assert got.box_mm == pytest.approx(want.box_mm)


def test_every_case_is_a_result_sink(case: SinkCase) -> None:
    assert isinstance(case.sink, ResultSink)


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_store_gives_an_id_and_the_result_reads_back_with_the_same_defects(case: SinkCase, name: str) -> None:
    sent = RESULTS[name]
    key = _key()
    assert not case.sink.already_done(key)
    inspection_id = store(case.sink, sent, TESTED, key)
    assert isinstance(inspection_id, str) and inspection_id
    assert case.sink.already_done(key)
    stored = case.read(inspection_id)
    assert stored is not None
    _same_defects(stored, sent)
    assert (stored.image_id, stored.image_size_wh, stored.verdict) == (sent.image_id, sent.image_size_wh, sent.verdict)
    assert (stored.model_version, stored.px_per_mm, stored.trace) == (sent.model_version, sent.px_per_mm, sent.trace)


def test_an_upload_is_stored_and_gives_an_id(case: SinkCase) -> None:
    """An upload through the line (`upload=`) may come back as the sink's record; it has the id."""
    sent = RESULTS["defects"]
    inspection_id = store(case.sink, sent, TESTED, f"upload:{uuid.uuid4().hex}", upload=UploadExtras())
    stored = case.read(inspection_id)
    assert stored is not None
    _same_defects(stored, sent)


def test_the_same_source_key_twice_is_stored_once(case: SinkCase) -> None:
    key = _key()
    first = store(case.sink, RESULTS["defects"], TESTED, key)
    files = case.files()
    again = store(case.sink, RESULTS["no_defects"], BOARD, key)  # a retry after a crash: the first stays
    assert again == first
    assert case.count(key) == 1
    assert case.files() == files  # the second attempt left nothing behind
    stored = case.read(first)
    assert stored is not None
    _same_defects(stored, RESULTS["defects"])
    other = store(case.sink, RESULTS["defects"], TESTED, _key())
    assert other != first


def test_a_recorded_failure_does_not_count_as_done(case: SinkCase) -> None:
    key = _key()
    store_failure = getattr(case.sink, "store_failure", None)
    if store_failure is None:
        pytest.skip("this sink records no failures")
    store_failure(InspectionFailure("bad.png", "UnknownProductError", "unknown product 'x'"), key)
    assert not case.sink.already_done(key)  # the file comes back with its cause fixed: inspect it again
    inspection_id = store(case.sink, RESULTS["defects"], TESTED, key)
    assert case.sink.already_done(key) and case.count(key) == 1 and case.read(inspection_id) is not None


@pytest.mark.parametrize("fault", ["image_store_full", "database_down"])
def test_a_failing_store_raises_stores_nothing_and_the_retry_stores_once(
    case: SinkCase, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fault not in case.faults:
        pytest.skip(f"this sink has no {fault.replace('_', ' ')} (nothing of it can fail)")
    key = _key()
    with monkeypatch.context() as broken:
        expected = case.faults[fault](broken)
        with pytest.raises(expected):
            store(case.sink, RESULTS["defects"], TESTED, key)
        assert not case.sink.already_done(key)
    assert case.count(key) == 0 and case.files() == 0  # no row, no orphan image
    inspection_id = store(case.sink, RESULTS["defects"], TESTED, key)  # the line's retry, storage back
    assert case.sink.already_done(key) and case.count(key) == 1
    stored = case.read(inspection_id)
    assert stored is not None
    _same_defects(stored, RESULTS["defects"])
