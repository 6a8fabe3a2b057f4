"""Image files left without a row by a process killed mid-store are removed when the service starts."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, paint_board, with_short

from aoi.api import ServiceSettings, create_app
from aoi.schema import InspectionResult, Verdict
from aoi.storage import Storage
from aoi.storage.keys import Scope, create_api_key
from aoi.storage.recorder import new_id


def _result() -> InspectionResult:
    return InspectionResult(
        image_id="kept",
        image_size_wh=(640, 640),
        defects=(),
        verdict=Verdict.PASS,
        px_per_mm=20.0,
        model_version="m",
        timings_ms={"total": 1.0},
    )


def _leave_orphans(storage: Storage) -> list[Path]:
    """What a SIGKILL between writing the files and committing the row leaves behind."""
    board = paint_board()
    killed_id = new_id()
    test = storage.images.save_inspection_image(killed_id, with_short(board), "test")
    template = storage.images.save_inspection_image(killed_id, board, "template")
    product_template = storage.images.save_template(new_id(), board)  # a product create killed alike
    day = storage.images.path(test).parent
    half_written = day / f".{killed_id}_test.png.{new_id()}.tmp"
    half_written.write_bytes(b"\x89PNG half")
    return [storage.images.path(p) for p in (test, template, product_template)] + [half_written]


def test_service_start_removes_files_no_row_refers_to(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    kept = storage.recorder.record(_result(), paint_board(), template_image=paint_board(seed=2))
    orphans = _leave_orphans(storage)
    assert all(p.exists() for p in orphans)
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False)
    app = create_app(settings, inspector=FakeInspector(), storage=storage)
    with storage.db.transaction() as session:
        auth = {"Authorization": f"Bearer {create_api_key(session, 'screen', {Scope.READ})}"}
    with caplog.at_level(logging.INFO, logger="aoi.storage.orphans"), TestClient(app) as client:
        assert not any(p.exists() for p in orphans)
        assert client.get(f"/api/v1/inspections/{kept.id}/overlay.png", headers=auth).status_code == 200
    assert storage.images.path(kept.test_image_path).exists()
    assert kept.template_path is not None and storage.images.path(kept.template_path).exists()
    assert "orphan sweep: removed 4 image files that no row refers to" in caplog.text


def test_sweep_waits_for_a_store_that_no_other_process_has_open(storage: Storage, database_url: str | None) -> None:
    """Another process with the store open may be between writing a file and committing its row."""
    orphans = _leave_orphans(storage)
    other = Storage.open(storage.data_dir, database_url)  # its own lock, as another process would hold
    try:
        report = storage.sweep_orphans()
        assert report.skipped is not None and report.removed == 0
        assert all(p.exists() for p in orphans)
    finally:
        other.close()
    assert storage.sweep_orphans().removed == 4
    assert not any(p.exists() for p in orphans)


def test_later_sweeps_check_only_day_folders_changed_since(storage: Storage) -> None:
    kept = storage.recorder.record(_result(), paint_board())
    day = storage.images.path(kept.test_image_path).parent
    old = time.time() - 86_400
    os.utime(day, (old, old))
    first = storage.sweep_orphans()
    assert first.removed == 0 and first.checked == 1
    assert storage.sweep_orphans().checked == 0  # nothing changed: the old day folder is not listed again
    orphan = storage.images.save_inspection_image(new_id(), paint_board(), "test")  # changes today's folder
    again = storage.sweep_orphans()
    assert again.removed == 1 and not storage.images.path(orphan).exists()
