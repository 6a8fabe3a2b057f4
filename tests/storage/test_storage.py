"""Storage without HTTP: migrations, the pipeline's ResultSink over the database, and a live hot folder."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select
from tests.support.service import FakeInspector, paint_board, with_short

from aoi.api.line import DatabaseTemplateProvider, MeteredSink
from aoi.api.metrics import ServiceMetrics
from aoi.pipeline import (
    HotFolderSource,
    InlineTemplate,
    LinePipeline,
    PipelineConfig,
    ProductRef,
    ProductTemplate,
    TemplateFile,
    UnknownProductError,
)
from aoi.schema import Defect, InspectionFailure, InspectionResult, Verdict
from aoi.storage import Storage
from aoi.storage.database import MIGRATIONS_DIR, DatabaseConfigError, resolve_database_url
from aoi.storage.inspections import InspectionFilter, InspectionRepository
from aoi.storage.models import FailureRow, ProductRow
from aoi.verdict import VerdictRules


def _result(image_id: str = "b1", product: str | None = None) -> InspectionResult:
    return InspectionResult(
        image_id=image_id,
        image_size_wh=(640, 640),
        defects=(Defect("short", 0.8, (10, 10, 20, 20), (0.5, 0.5, 1.0, 1.0)),),
        verdict=Verdict.FAIL,
        px_per_mm=20.0,
        model_version="m",
        timings_ms={"total": 4.0},
        product=product,
    )


def _add_product(storage: Storage, name: str = "board-a") -> str:
    template_path = storage.images.save_template(name + "-id", paint_board())
    with storage.db.transaction() as session:
        session.add(
            ProductRow(
                id=name + "-id",
                name=name,
                template_path=template_path,
                template_width_px=640,
                template_height_px=640,
                px_per_mm=20.0,
                rules=VerdictRules().to_dict(),
            )
        )
    return name + "-id"


def test_migrations_reach_head_and_rerun_harmlessly(storage: Storage) -> None:
    storage.db.migrate()  # second run: nothing to do
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    with storage.db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        if storage.db.is_sqlite:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_database_url_resolution(tmp_path: Path) -> None:
    assert resolve_database_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'aoi.db'}"
    assert resolve_database_url(tmp_path, "postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert resolve_database_url(tmp_path, "postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    with pytest.raises(DatabaseConfigError, match="unsupported database URL"):
        resolve_database_url(tmp_path, "mysql://u@h/db")


def test_sink_stores_each_source_key_once(storage: Storage) -> None:
    sink = storage.sink()
    image = with_short(paint_board())
    assert not sink.already_done("hotfolder:a.png:1:2")
    first = sink.store(_result(), image, InlineTemplate(paint_board()), "hotfolder:a.png:1:2")
    again = sink.store(_result(), image, InlineTemplate(paint_board()), "hotfolder:a.png:1:2")
    assert first == again and sink.already_done("hotfolder:a.png:1:2")
    with storage.db.session() as session:
        items, total = InspectionRepository(session).page(InspectionFilter(), 10, 0)
    assert total == 1 and items[0].source == "hotfolder"
    assert len(list((storage.data_dir / "images").rglob("*.png"))) == 2  # test + template; the duplicate's removed


def test_sink_records_failures_once(storage: Storage) -> None:
    sink = storage.sink()
    failure = InspectionFailure("bad.png", "ImageError", "bad.png: not a decodable image")
    first = sink.store_failure(failure, "hotfolder:bad.png:3:4")
    again = InspectionFailure("bad.png", "UnknownProductError", "unknown product 'x'")
    assert sink.store_failure(again, "hotfolder:bad.png:3:4") == first
    assert not sink.already_done("hotfolder:bad.png:3:4")  # a failure is retried when the file comes back
    with storage.db.session() as session:
        rows = session.scalars(select(FailureRow)).all()
    assert [(r.id, r.error) for r in rows] == [(first, "UnknownProductError")]  # one row, the latest error


def test_sink_template_origin_links_product_or_copies_the_file(storage: Storage, tmp_path: Path) -> None:
    product_id = _add_product(storage)
    board_a = ProductRef(product_id, "board-a")
    sink = storage.sink()
    image = with_short(paint_board())
    by_product = sink.store(_result(), image, ProductTemplate(board_a), "hotfolder:board-a/1.png:1:1")
    template_file = tmp_path / "x_temp.png"
    cv2.imwrite(str(template_file), paint_board(seed=5))
    by_file = sink.store(_result(), image, TemplateFile(template_file), "hotfolder:x.png:1:1")
    gone = TemplateFile(tmp_path / "gone_temp.png", board_a)  # its file vanished before it could be copied
    labelled = sink.store(_result(product="board-a"), image, gone, "hotfolder:board-a/gone.png:1:1")
    own = sink.store(_result(product="board-a"), image, InlineTemplate(paint_board(seed=7), board_a), "demo:s:2")
    with storage.db.session() as session:
        repo = InspectionRepository(session)
        a, b, c, d = repo.get(by_product), repo.get(by_file), repo.get(labelled), repo.get(own)
    assert a is not None and b is not None and c is not None and d is not None
    assert a.product_id == product_id and a.template_path == "templates/board-a-id.png"
    assert b.product_id is None and b.template_path is not None
    assert np.array_equal(storage.images.load(b.template_path), paint_board(seed=5))
    assert c.product_id == product_id and c.template_path is None  # not the product's template: not claimed
    # the pixels a capture brought are saved with the board; the product only labels it
    assert d.source == "demo" and d.product_id == product_id
    assert d.template_path is not None and not d.template_path.startswith("templates/")
    assert np.array_equal(storage.images.load(d.template_path), paint_board(seed=7))


def test_template_provider_reads_recipes(storage: Storage) -> None:
    _add_product(storage)
    recipe = DatabaseTemplateProvider(storage).recipe("board-a")
    assert recipe.px_per_mm == 20.0 and np.array_equal(recipe.template, paint_board())
    with pytest.raises(UnknownProductError, match="unknown product"):
        DatabaseTemplateProvider(storage).recipe("nope")


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_hot_folder_line_stores_every_file_exactly_once_across_restarts(storage: Storage, tmp_path: Path) -> None:
    _add_product(storage)
    inbox = tmp_path / "inbox"
    (inbox / "board-a").mkdir(parents=True)
    template = paint_board()
    for i in range(6):
        test = with_short(template, (100 + 40 * i, 300, 116 + 40 * i, 312)) if i % 2 else template
        cv2.imwrite(str(inbox / "board-a" / f"b{i}.png"), test)
    cv2.imwrite(str(inbox / "board-a" / "broken.png"), template)
    (inbox / "board-a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    metrics = ServiceMetrics()

    def run_line(expected_files: int) -> None:
        sink = MeteredSink(storage.sink(), metrics)
        line = LinePipeline(FakeInspector(), sink, DatabaseTemplateProvider(storage), PipelineConfig(inspect_workers=2))
        source = HotFolderSource(inbox, poll_interval_s=0.05, stable_polls=1)
        line.add_source(source)
        with line:
            assert _wait(lambda: source.moved_done + source.moved_failed >= expected_files)
            line.wait_idle(5)

    run_line(7)
    with storage.db.session() as session:
        items, total = InspectionRepository(session).page(InspectionFilter(), 50, 0)
    assert total == 6
    assert sorted(i.result.image_id for i in items) == [f"board-a/b{i}.png" for i in range(6)]
    assert {i.product_id for i in items} == {"board-a-id"}
    assert sum(i.result.verdict is Verdict.FAIL for i in items) == 3
    assert 'aoi_inspections_total{verdict="fail",source="hotfolder"} 3' in metrics.render()
    # a crash after storing but before moving: the same file (same size and mtime) reappears in the inbox
    done = inbox / "done" / "board-a" / "b1.png"
    stat = done.stat()
    shutil.copy2(done, inbox / "board-a" / "b1.png")
    os.utime(inbox / "board-a" / "b1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    run_line(1)
    with storage.db.session() as session:
        _, total_after = InspectionRepository(session).page(InspectionFilter(), 50, 0)
    assert total_after == 6  # skipped as already done, not stored twice
    assert not (inbox / "board-a" / "b1.png").exists()
    assert (inbox / "failed" / "board-a" / "broken.png").exists()
    assert not storage.sink().already_done(next(iter(_failure_keys(storage))))


def _failure_keys(storage: Storage) -> list[str]:
    with storage.db.session() as session:
        return [k for k in session.scalars(select(FailureRow.source_key)) if k]


def test_failed_file_moved_back_after_its_product_is_registered_is_stored(storage: Storage, tmp_path: Path) -> None:
    """The silent loss: a file failed (unknown product), the product is registered and the file moved
    back (`mv` keeps its mtime). It must be inspected and stored, not skipped to done/ with no row."""
    inbox = tmp_path / "inbox"
    (inbox / "board-a").mkdir(parents=True)
    cv2.imwrite(str(inbox / "board-a" / "late.png"), with_short(paint_board()))

    def run_line() -> HotFolderSource:
        line = LinePipeline(FakeInspector(), storage.sink(), DatabaseTemplateProvider(storage))
        source = HotFolderSource(inbox, poll_interval_s=0.05, stable_polls=1)
        line.add_source(source)
        with line:
            assert _wait(lambda: source.moved_done + source.moved_failed >= 1)
        return source

    assert run_line().moved_failed == 1
    reason = (inbox / "failed" / "board-a" / "late.png.reason.txt").read_text()
    assert reason.startswith("UnknownProductError") and "board-a" in reason
    assert len(_failure_keys(storage)) == 1

    _add_product(storage)
    os.replace(inbox / "failed" / "board-a" / "late.png", inbox / "board-a" / "late.png")
    assert run_line().moved_done == 1
    with storage.db.session() as session:
        items, total = InspectionRepository(session).page(InspectionFilter(), 10, 0)
    assert total == 1 and items[0].result.image_id == "board-a/late.png" and items[0].product_id == "board-a-id"
    assert (inbox / "done" / "board-a" / "late.png").exists()

    shutil.copy(inbox / "done" / "board-a" / "late.png", inbox / "board-a" / "late.png")  # dropped once more
    assert run_line().moved_done == 1
    with storage.db.session() as session:
        assert InspectionRepository(session).page(InspectionFilter(), 10, 0)[1] == 1  # never twice
