"""A full disk under the image store (or the database): the API answers a clear 507, the hot folder
keeps the file in its inbox and retries, nothing is half stored, and both go on once space is freed.

ENOSPC is simulated by a write that stops halfway (as a full disk does) and, when this process may
mount, produced for real by a 1 MiB tmpfs mounted over the image store.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.exc import OperationalError
from tests.support.service import FakeInspector, Service, paint_board, png, with_short

from aoi.api import ServiceSettings, create_app
from aoi.api.line import DatabaseTemplateProvider
from aoi.pipeline import HotFolderSource, LinePipeline
from aoi.storage import Storage
from aoi.storage.inspections import InspectionFilter, InspectionRepository
from aoi.storage.keys import create_api_key


class FullDisk:
    """`Path.write_bytes` under `root` writes half its bytes, then fails with ENOSPC, while `full`
    (after `room_for` more writes that still fit)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root.resolve()
        self.full = True
        self.room_for = 0
        self.refused = 0
        real = pathlib.Path.write_bytes

        def write_bytes(path: pathlib.Path, data: bytes) -> int:  # type: ignore[override]
            if self.full and self.root in path.resolve().parents:
                if self.room_for > 0:
                    self.room_for -= 1
                    return real(path, data)
                self.refused += 1
                real(path, bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return real(path, data)

        monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


@pytest.fixture
def full_disk(service: Service, monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    return FullDisk(service.storage.images.root, monkeypatch)


def _files_and_temps(storage: Storage) -> list[Path]:
    """Every file under the image store, half-written temporary files included."""
    return sorted(p for p in storage.images.root.rglob("*") if p.is_file() and p.name != "filler")


def _upload(client: TestClient, auth: dict[str, str], product: str | None, **files: tuple[str, bytes]) -> Response:
    data = {"product": product} if product else {}
    return client.post("/api/v1/inspections", data=data, files=files, headers=auth)


def _assert_507(response: Response) -> None:
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["error"] == "storage_full"
    assert "image store is full (no space left on its disk): this request was not stored" in body["detail"]


def test_upload_onto_a_full_image_store_is_507_and_stores_nothing(service: Service, full_disk: FullDisk) -> None:
    full_disk.full = False
    product = service.add_product()["id"]
    full_disk.full = True
    before, files_before = service.counts(), _files_and_temps(service.storage)
    board = png(with_short(paint_board()))
    _assert_507(_upload(service.client, service.auth, product, image=("b.png", board)))
    full_disk.room_for = 1  # the tested image fits, its uploaded template does not: the first goes again
    _assert_507(
        _upload(service.client, service.auth, None, image=("b.png", board), template=("t.png", png(paint_board())))
    )
    assert full_disk.room_for == 0 and full_disk.refused == 2
    assert service.counts() == before and _files_and_temps(service.storage) == files_before  # no half file, no row
    full_disk.full = False
    stored = _upload(service.client, service.auth, product, image=("b.png", board))
    assert stored.status_code == 201  # space freed: stored again


def test_product_onto_a_full_image_store_is_507_and_stores_nothing(service: Service, full_disk: FullDisk) -> None:
    r = service.client.post(
        "/api/v1/products",
        data={"name": "board-a", "px_per_mm": "20"},
        files={"template": ("t.png", png(paint_board()))},
        headers=service.auth,
    )
    _assert_507(r)
    assert service.counts()["products"] == 0 and _files_and_temps(service.storage) == []
    full_disk.full = False
    assert service.add_product()["name"] == "board-a"


def test_a_full_database_disk_is_507_and_the_image_is_removed(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite says 'database or disk is full' at the insert: the image already written goes again."""
    import sqlite3

    product = service.add_product()["id"]
    files_before = _files_and_temps(service.storage)

    def disk_full(self: InspectionRepository, row: object) -> None:
        raise OperationalError("INSERT INTO inspections", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(InspectionRepository, "add", disk_full)
    r = _upload(service.client, service.auth, product, image=("b.png", png(with_short(paint_board()))))
    assert r.status_code == 507, r.text
    assert r.json()["error"] == "storage_full" and "results database is full" in r.json()["detail"]
    assert service.counts()["inspections"] == 0 and _files_and_temps(service.storage) == files_before


def test_hot_folder_keeps_the_file_while_the_disk_is_full_and_stores_it_once_freed(
    service: Service, full_disk: FullDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full_disk.full = False
    service.add_product()
    full_disk.full = True
    inbox = tmp_path / "inbox"
    (inbox / "board-a").mkdir(parents=True)
    cv2.imwrite(str(inbox / "board-a" / "b.png"), with_short(paint_board()))
    storage = service.storage
    line = LinePipeline(FakeInspector(), storage.sink(), DatabaseTemplateProvider(storage))
    source = HotFolderSource(inbox, poll_interval_s=0.02, stable_polls=1, retry_after_s=0.1)
    line.add_source(source)
    caplog.set_level(logging.WARNING, logger="aoi.pipeline.line")
    with caplog.at_level(logging.WARNING, logger="aoi.pipeline.hotfolder"), line:
        deadline = time.monotonic() + 10
        while full_disk.refused < 3:  # tried, refused, retried: the worker lives on
            assert time.monotonic() < deadline, "the hot folder did not retry the store"
            time.sleep(0.02)
        assert (inbox / "board-a" / "b.png").exists()
        assert not (inbox / "done").exists() and not (inbox / "failed").exists()
        assert service.counts()["inspections"] == 0 and service.counts()["inspection_failures"] == 0
        assert [p for p in storage.images.root.rglob("*") if p.is_file() and "inspections" in p.parts] == []
        assert line.metrics()["running"] and line.metrics()["counts"]["store_errors"] >= 3
        full_disk.full = False
        while source.moved_done < 1:
            assert time.monotonic() < deadline + 10, "the file was not stored once space was freed"
            time.sleep(0.02)
    assert (inbox / "done" / "board-a" / "b.png").exists()
    assert service.counts()["inspections"] == 1
    waits = [r.getMessage() for r in caplog.records if "could not be stored" in r.getMessage()]
    assert waits == ["hot folder: board-a/b.png could not be stored; it stays in the inbox and is retried every 0.1 s"]
    refusals = [r for r in caplog.records if r.name == "aoi.pipeline.line" and "store" in r.getMessage()]
    assert len(refusals) >= 3
    assert [r.exc_info is not None for r in refusals] == [True] + [False] * (len(refusals) - 1)  # one traceback


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_really_full_tmpfs_under_the_image_store_is_507(tmp_path: Path) -> None:
    """The kernel's own ENOSPC: a 1 MiB tmpfs as the image store, filled up, then freed."""
    data_dir = tmp_path / "data"
    with _tmpfs(data_dir / "images", "1m"):
        storage = Storage.open(data_dir)
        try:
            settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False)
            app = create_app(settings, inspector=FakeInspector(), storage=storage)
            with storage.db.transaction() as session:
                auth = {"Authorization": f"Bearer {create_api_key(session, label='tester')}"}
            with TestClient(app) as client:
                r = client.post(
                    "/api/v1/products",
                    data={"name": "board-a", "px_per_mm": "20"},
                    files={"template": ("t.png", png(paint_board()))},
                    headers=auth,
                )
                product = r.json()["id"]
                filler = data_dir / "images" / "filler"
                with contextlib.suppress(OSError), filler.open("wb") as f:
                    while True:
                        f.write(b"\0" * 4096)
                        f.flush()
                before = _files_and_temps(storage)
                board = png(with_short(paint_board()))
                _assert_507(_upload(client, auth, product, image=("b.png", board)))
                with storage.db.session() as session:
                    assert InspectionRepository(session).page(InspectionFilter(), 10, 0)[1] == 0
                assert _files_and_temps(storage) == before
                filler.unlink()
                assert _upload(client, auth, product, image=("b.png", board)).status_code == 201
        finally:
            storage.close()
