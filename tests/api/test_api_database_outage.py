"""The database going away under load (PostgreSQL restarted, connections killed): a request that
could not be stored is a clear 503 (never a 500), every 2xx answer was stored with its image, and the
service reconnects by itself. scripts/reliability_postgres_restart.py does the same against a real
`pg_ctlcluster restart`; here the service's connections are terminated instead, which is what a
restart does to them, without stopping the shared server under the rest of the suite.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from tests.support.service import Service, paint_board, png, with_short

from aoi.storage import resolve_database_url
from aoi.storage.database import Database
from aoi.storage.inspections import InspectionRepository

POSTGRES_ONLY = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
KILL_EVERY_S = 0.03


def _upload(service: Service, product: str, board: bytes, name: str = "b.png") -> httpx.Response:
    files = {"image": (name, board, "image/png")}
    return service.client.post("/api/v1/inspections", data={"product": product}, files=files, headers=service.auth)


def _inspection_files(service: Service) -> list[Path]:
    return sorted(p for p in (service.data_dir / "images" / "inspections").rglob("*") if p.is_file())


def _stored(service: Service) -> dict[str, str]:
    """Inspection id -> its tested image path, for every stored row."""
    with service.storage.db.session() as session:
        return {row[0]: row[1] for row in session.execute(text("SELECT id, test_image_path FROM inspections"))}


def _assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "database_unavailable", body
    assert body["detail"].startswith("the results database is unavailable (") and "retry the request" in body["detail"]
    assert response.headers["Retry-After"] == "1"


def test_connection_lost_mid_store_is_503_and_the_next_request_reconnects(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the store's own connection is terminated inside its transaction (what a restart does);
    SQLite: the insert fails as a locked database does."""
    product = service.add_product()["id"]
    board = png(with_short(paint_board()))
    real_add = InspectionRepository.add
    lost: list[str] = []

    def add_after_losing_the_connection(self: InspectionRepository, row: object) -> None:
        if not lost:
            lost.append("once")
            if service.backend == "postgres":
                self.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            raise OperationalError("INSERT INTO inspections", {}, sqlite3.OperationalError("database is locked"))
        real_add(self, row)

    monkeypatch.setattr(InspectionRepository, "add", add_after_losing_the_connection)
    before = service.counts()
    _assert_503(_upload(service, product, board))
    assert service.counts() == before and _inspection_files(service) == []  # nothing half stored
    again = _upload(service, product, board)
    assert again.status_code == 201, again.text  # a fresh connection (pool_pre_ping drops the dead one)
    assert list(_stored(service)) == [again.json()["id"]] and len(_inspection_files(service)) == 1


@contextmanager
def _commit_then_lose_the_answer(db: Database) -> Iterator[Session]:
    with Database.transaction(db) as session:
        yield session
    raise OperationalError("COMMIT", {}, sqlite3.OperationalError("server closed the connection unexpectedly"))


def test_a_commit_whose_answer_was_lost_is_answered_with_its_inspection(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row landed but the connection died before saying so: the store looks, finds it, answers 201,
    and keeps its image (deleting it would leave a row without its image)."""
    product = service.add_product()["id"]
    monkeypatch.setattr(service.storage.db, "transaction", lambda: _commit_then_lose_the_answer(service.storage.db))
    r = _upload(service, product, png(with_short(paint_board())))
    assert r.status_code == 201, r.text
    stored = _stored(service)
    assert list(stored) == [r.json()["id"]]
    assert service.storage.images.path(stored[r.json()["id"]]).is_file()


def test_when_the_database_cannot_say_the_image_waits_for_the_orphan_sweep(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit failed and the database does not answer the check either: a 503, the image kept
    (it may belong to a landed row), and removed by the sweep at the next start when no row has it."""
    product = service.add_product()["id"]

    @contextmanager
    def lost_before_commit() -> Iterator[Session]:
        with Database.transaction(service.storage.db) as session:
            yield session
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("server closed the connection unexpectedly"))

    monkeypatch.setattr(service.storage.db, "transaction", lost_before_commit)
    monkeypatch.setattr(service.storage.db, "row_exists", lambda model, ident: None)
    _assert_503(_upload(service, product, png(with_short(paint_board()))))
    assert _stored(service) == {} and len(_inspection_files(service)) == 1
    assert service.storage.sweep_orphans().removed == 1 and _inspection_files(service) == []


@POSTGRES_ONLY
def test_uploads_while_every_connection_is_killed_lose_nothing(service: Service, postgres_url: str) -> None:
    """4 clients upload back to back while all the service's connections are terminated every 30 ms:
    only 201 or 503 answers, every 201 stored with its image, no image without its row."""
    product = service.add_product()["id"]
    boards = [png(with_short(paint_board(), (40 + 20 * i, 300, 52 + 20 * i, 312))) for i in range(8)]
    admin = create_engine(resolve_database_url(".", postgres_url), isolation_level="AUTOCOMMIT")
    stop = threading.Event()
    kills = [0]

    def killer() -> None:
        with admin.connect() as conn:
            while not stop.wait(KILL_EVERY_S):
                kills[0] += conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()

    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(25):
            r = _upload(service, product, boards[(n + i) % len(boards)], f"c{n}-{i}.png")
            with lock:
                answers.append(r)

    threads = [threading.Thread(target=killer)] + [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join(120)
    stop.set()
    threads[0].join(10)
    admin.dispose()

    statuses = sorted({r.status_code for r in answers})
    assert set(statuses) <= {201, 503}, [r.text for r in answers if r.status_code not in (201, 503)][:3]
    for r in answers:  # a clear JSON error: the API key check or the store found the database gone
        if r.status_code == 503:
            assert "unavailable" in r.json()["error"] and r.json()["detail"], r.text
    accepted = [r.json()["id"] for r in answers if r.status_code == 201]
    deadline = time.monotonic() + 10
    while True:  # the killer may still have ended a connection the check needs: retry it briefly
        try:
            stored = _stored(service)
            break
        except OperationalError:
            assert time.monotonic() < deadline
    assert len(answers) == 100 and kills[0] > 0
    assert set(accepted) <= set(stored), "an answered inspection is not stored"
    assert len(accepted) == len(set(accepted))
    files = {service.storage.images.path(p) for p in stored.values()}
    assert all(f.is_file() for f in files), "a stored inspection lost its image"
    service.storage.sweep_orphans()  # files kept when a commit's outcome could not be checked
    assert set(_inspection_files(service)) == files
    landed = len(stored) - len(accepted)  # answered 503, but the commit had landed: stored, not lost
    print(
        f"{len(accepted)} answered 201, {len(answers) - len(accepted)} 503 ({landed} of them stored), {kills[0]} kills"
    )
