"""Admission control: a write is authenticated before its body is read, bodies in flight share a byte
budget, each key has a rate, and a full upload line answers 503 + Retry-After at once.

The "before the body" tests drive the ASGI app directly with a `receive` that counts the body bytes
the app pulls: a refused request must pull none.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.support.service import FakeInspector, paint_board, png, with_short
from typer.testing import CliRunner

from aoi.api import ServiceSettings, create_app
from aoi.api.admission import AdmissionControl, CachedKeyLookup, KeyCheck
from aoi.api.line import LineOptions, build_line
from aoi.api.rate_limit import KeyRateLimiter
from aoi.api.refusals import RefusalCounts
from aoi.api.upload_line import UploadLine, UploadLineFull
from aoi.cli import app as service_cli
from aoi.storage import Storage
from aoi.storage.keys import create_api_key, find_api_key, revoke_api_key

UPLOADS = "/api/v1/inspections"
MiB = 2**20


@dataclass
class RawRequest:
    """One request sent straight to the ASGI app; `pulled_bytes` counts the body bytes the app asked for.

    The body is `declared` bytes (0x00), sent as Content-Length or, with `chunked`, without one, in
    `chunk_bytes` pieces. `hold` (an Event): after the first piece the client stalls until it is set.
    """

    path: str
    headers: dict[str, str]
    declared: int
    chunked: bool = False
    chunk_bytes: int = 256 * 1024
    hold: anyio.Event | None = None
    pulled_bytes: int = 0
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    async def send_to(self, app: ASGIApp) -> RawRequest:
        headers = [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        if not self.chunked:
            headers.append((b"content-length", str(self.declared).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        left = self.declared
        answered = anyio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal left
            if left <= 0:
                await answered.wait()
                return {"type": "http.disconnect"}
            if self.hold is not None and self.pulled_bytes > 0:
                await self.hold.wait()
            piece = min(self.chunk_bytes, left)
            left -= piece
            self.pulled_bytes += piece
            return {"type": "http.request", "body": b"\0" * piece, "more_body": left > 0}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = int(message["status"])
                self.response_headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")
                if not message.get("more_body", False):
                    answered.set()

        await app(scope, receive, send)
        return self


def send_once(app: ASGIApp, request: RawRequest) -> RawRequest:
    return asyncio.run(request.send_to(app))


@dataclass
class Line:
    """An app over SQLite with its own settings, a key, and the fake engine (slowed by `delay_s`)."""

    app: FastAPI
    storage: Storage
    inspector: FakeInspector
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_key(self, label: str) -> dict[str, str]:
        with self.storage.db.transaction() as session:
            return {"Authorization": f"Bearer {create_api_key(session, label=label)}"}

    def stored(self) -> dict[str, int]:
        with self.storage.db.session() as session:
            return {
                table: int(session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
                for table in ("products", "inspections", "idempotency_keys")
            }

    def image_files(self) -> int:
        return sum(1 for p in (self.storage.data_dir / "images").rglob("*") if p.is_file())


@pytest.fixture
def make_line(tmp_path: Path) -> Iterator[Any]:
    opened: list[Storage] = []

    def make(delay_s: float = 0.0, workers: int = 2, inspect_queue: int = 16, **settings: Any) -> Line:
        storage = Storage.open(tmp_path / f"data{len(opened)}")
        opened.append(storage)
        inspector = FakeInspector()
        inspector.delay_s = delay_s
        config = ServiceSettings(
            data_dir=storage.data_dir, serve_dashboard=False, **{"max_upload_bytes": 2 * MiB, **settings}
        )
        options = LineOptions(hot_folder=False, inspect_workers=workers, inspect_queue=inspect_queue)
        app = create_app(
            config, inspector=inspector, storage=storage, line_factory=lambda svc: build_line(svc, options)
        )
        with storage.db.transaction() as session:
            key = create_api_key(session, label="station-1")
        return Line(app, storage, inspector, key)

    yield make
    for storage in opened:
        storage.close()


def add_product(client: TestClient, auth: dict[str, str]) -> str:
    r = client.post(
        "/api/v1/products",
        data={"name": "board-a", "px_per_mm": "20"},
        files={"template": ("t.png", png(paint_board()), "image/png")},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def upload(client: TestClient, auth: dict[str, str], product: str, board: bytes) -> httpx.Response:
    return client.post(UPLOADS, data={"product": product}, files={"image": ("b.png", board, "image/png")}, headers=auth)


def retry_after_s(headers: Any) -> int:
    value = headers["retry-after"]
    assert value.isdigit() and int(value) >= 1, value
    return int(value)


# --- 1. the key is checked before a body byte is read ---------------------------------------------------


def test_a_write_without_a_valid_key_is_refused_before_any_body_byte_is_read(make_line: Any) -> None:
    line = make_line()
    with line.storage.db.transaction() as session:
        revoked = create_api_key(session, label="old")
        revoke_api_key(session, find_api_key(session, revoked).id)  # type: ignore[union-attr]
        expired = create_api_key(session, label="temp", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    refused_headers = [
        {},
        {"Authorization": "Bearer aoi_never_made"},
        {"Authorization": f"Bearer {revoked}"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": line.key},  # no scheme
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    for path in (UPLOADS, "/api/v1/products", "/api/v1/defects/abc/review", "/api/v1/no-such-write"):
        for headers in refused_headers:
            for chunked in (False, True):
                # 100 MiB: far over the 2 MiB upload limit, so only the key check can answer first
                sent = send_once(line.app, RawRequest(path, headers, declared=100 * MiB, chunked=chunked))
                assert sent.status == 401, (path, headers, sent.body)
                assert sent.pulled_bytes == 0, (path, headers)
                assert sent.json["error"] == "unauthorized" and "key" in sent.json["detail"]
                assert sent.response_headers["www-authenticate"] == "Bearer"
    sent = send_once(line.app, RawRequest(UPLOADS, {"Authorization": f"Bearer {expired}"}, declared=100 * MiB))
    assert "expired at" in sent.json["detail"]  # the routes' own message
    # the same request with the key is let in: the app reads its body (here: up to the 413)
    sent = send_once(line.app, RawRequest(UPLOADS, line.auth, declared=100 * MiB, chunked=True))
    assert sent.status == 413 and sent.pulled_bytes > 2 * MiB
    assert line.stored() == {"products": 0, "inspections": 0, "idempotency_keys": 0}
    assert line.image_files() == 0
    with TestClient(line.app) as client:
        metrics = client.get("/metrics").text
    assert 'aoi_admission_refused{name="refused_401_before_body"} 49' in metrics


def test_a_revoked_key_is_refused_before_its_body_within_one_second(make_line: Any) -> None:
    line = make_line()
    station = line.new_key("station-2")
    assert send_once(line.app, RawRequest(UPLOADS, station, declared=1000)).pulled_bytes == 1000  # let in
    with line.storage.db.transaction() as session:
        token = station["Authorization"].removeprefix("Bearer ")
        revoke_api_key(session, find_api_key(session, token).id)  # type: ignore[union-attr]
    revoked_at = time.monotonic()
    while True:
        sent = send_once(line.app, RawRequest(UPLOADS, station, declared=1000))
        assert sent.status == 401  # refused from the first request on (by the route, then before the body)
        if sent.pulled_bytes == 0:
            break
        assert time.monotonic() - revoked_at < 1.0, "a revoked key was still let in to send its body after 1 s"
        time.sleep(0.02)
    assert time.monotonic() - revoked_at < 1.0
    assert send_once(line.app, RawRequest(UPLOADS, line.auth, declared=1000)).pulled_bytes == 1000  # others still in


def test_a_key_store_that_cannot_be_read_is_a_503_before_the_body() -> None:
    reached: list[str] = []

    async def routes(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])

    def database_down(token: str) -> KeyCheck:
        raise OperationalError("SELECT", {}, ConnectionRefusedError("the database system is shutting down"))

    guard = AdmissionControl(
        routes,
        keys=CachedKeyLookup(database_down),
        refusals=RefusalCounts(),
        uploads=UploadLine(concurrency=1, queue=0, max_wait_s=1.0),
        upload_path=UPLOADS,
        guarded_prefix="/api/v1",
    )
    sent = send_once(guard, RawRequest(UPLOADS, {"Authorization": "Bearer aoi_any"}, declared=MiB))
    assert sent.status == 503 and sent.pulled_bytes == 0 and reached == []
    assert sent.json["error"] == "database_unavailable" and retry_after_s(sent.response_headers) >= 1


# --- 2. the bodies in flight share a byte budget --------------------------------------------------------


def test_bodies_past_the_inflight_budget_get_503_and_retry_after(make_line: Any) -> None:
    line = make_line(max_upload_bytes=2 * MiB, max_inflight_bytes=3 * MiB)

    async def scenario() -> dict[str, RawRequest]:
        hold = anyio.Event()
        slow = RawRequest(UPLOADS, line.auth, declared=int(1.5 * MiB), hold=hold)  # a slow client holds 1.5 MiB
        answers: dict[str, RawRequest] = {}
        async with anyio.create_task_group() as group:
            group.start_soon(slow.send_to, line.app)
            while slow.pulled_bytes == 0:
                await anyio.sleep(0.005)
            declared = RawRequest("/api/v1/products", line.auth, declared=int(1.6 * MiB))
            answers["declared"] = await declared.send_to(line.app)
            chunked = RawRequest(UPLOADS, line.auth, declared=int(1.9 * MiB), chunked=True, chunk_bytes=128 * 1024)
            answers["chunked"] = await chunked.send_to(line.app)
            answers["small"] = await RawRequest(UPLOADS, line.auth, declared=int(1.4 * MiB)).send_to(line.app)
            hold.set()
        answers["slow"] = slow
        answers["after"] = await RawRequest(UPLOADS, line.auth, declared=int(1.6 * MiB)).send_to(line.app)
        return answers

    answers = asyncio.run(scenario())
    declared, chunked = answers["declared"], answers["chunked"]
    assert declared.status == 503 and declared.pulled_bytes == 0  # refused on its Content-Length
    assert declared.json["error"] == "busy" and "in flight" in declared.json["detail"]
    assert retry_after_s(declared.response_headers) >= 1
    assert chunked.status == 503 and retry_after_s(chunked.response_headers) >= 1
    # refused as soon as it passed the 1.5 MiB left, not after its whole 1.9 MiB
    assert 1.5 * MiB < chunked.pulled_bytes <= 1.5 * MiB + 128 * 1024
    assert answers["small"].status == 422  # fits the budget: let in (and refused by the route: not an image)
    assert answers["slow"].status == 422 and answers["after"].status == 422  # the budget came back
    assert line.stored() == {"products": 0, "inspections": 0, "idempotency_keys": 0}
    with TestClient(line.app) as client:
        metrics = client.get("/metrics").text
    assert 'aoi_admission_refused{name="refused_503_inflight_bytes"} 2' in metrics
    assert 'aoi_inflight_bytes{name="held"} 0' in metrics


# --- 3. a rate per key --------------------------------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after_and_nothing_is_stored(make_line: Any) -> None:
    line = make_line(rate_limit_per_s=0.2, rate_limit_burst=3)  # a token every 5 s
    other = line.new_key("station-2")
    board = png(with_short(paint_board()))
    with TestClient(line.app) as client:
        product = add_product(client, other)
        answers = [upload(client, line.auth, product, board) for _ in range(4)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        limited = answers[-1]
        assert limited.json()["error"] == "rate_limited" and "0.2 writes/s (burst 3)" in limited.json()["detail"]
        assert 1 <= retry_after_s(limited.headers) <= 5  # the seconds until its next token, rounded up
        assert upload(client, other, product, board).status_code == 201  # another key has its own bucket
        metrics = client.get("/metrics").text
    assert line.stored()["inspections"] == 4  # (refilling is timed in the token bucket's own test)
    assert line.inspector.calls == 4
    assert 'aoi_admission_refused{name="refused_429_rate_limited"} 1' in metrics


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [100.0]
    limiter = KeyRateLimiter(rate_per_s=4.0, burst=2, clock=lambda: now[0])
    assert [limiter.take(1), limiter.take(1)] == [0.0, 0.0]
    assert limiter.take(1) == pytest.approx(0.25)  # a token every 0.25 s
    assert limiter.take(2) == 0.0  # per key
    now[0] += 0.125
    assert limiter.take(1) == pytest.approx(0.125)  # half a token: nothing spent
    now[0] += 10.0
    assert [limiter.take(1), limiter.take(1), limiter.take(1) > 0] == [0.0, 0.0, True]  # never more than the burst


# --- 4. a full upload line answers at once --------------------------------------------------------------


def test_overload_is_answered_503_at_once_and_accepted_uploads_all_complete(make_line: Any) -> None:
    line = make_line(upload_concurrency=1, upload_queue=2)  # a door of 3
    line.inspector.gate = threading.Event()  # the uploads are inspected until the gate opens
    admitted = line.app.state.services.inspections.uploads
    board = png(with_short(paint_board()))
    with TestClient(line.app) as client:
        product = add_product(client, line.auth)
        with ThreadPoolExecutor(3) as pool:
            running = [pool.submit(upload, client, line.auth, product, board) for _ in range(3)]  # 2 workers + 1 queued
            deadline = time.monotonic() + 10
            while admitted.counts() != {"busy": 3.0, "waiting": 0.0, "admitted": 3.0}:
                assert time.monotonic() < deadline, admitted.counts()
                time.sleep(0.005)
            refused = []
            for _ in range(8):  # the line is full: each further upload is answered at once
                started = time.perf_counter()
                answer = upload(client, line.auth, product, board)
                refused.append((answer, time.perf_counter() - started))
            line.inspector.gate.set()
            accepted = [future.result(timeout=10) for future in running]
        metrics = client.get("/metrics").text
    assert [a.status_code for a in accepted] == [201, 201, 201]  # every admitted upload completes
    for answer, _ in refused:
        assert answer.status_code == 503 and answer.json()["error"] == "line_full", answer.text
        assert retry_after_s(answer.headers) >= 1
    refused_s = sorted(seconds for _, seconds in refused)
    assert refused_s[len(refused_s) // 2] < 0.1, refused_s  # answered in < 100 ms, not after the line
    assert line.stored()["inspections"] == 3 == line.inspector.calls  # nothing of the refused ones
    assert 'aoi_admission_refused{name="refused_503_line_full"} 8' in metrics
    assert 'aoi_upload_slots{name="admitted"} 0' in metrics


def test_accepted_uploads_latency_stays_bounded_past_capacity(make_line: Any) -> None:
    delay_s = 0.2
    line = make_line(delay_s=delay_s, upload_concurrency=1, upload_queue=1)
    board = png(with_short(paint_board()))
    with TestClient(line.app) as client:
        product = add_product(client, line.auth)

        def timed_upload(_: int) -> tuple[int, float]:
            started = time.perf_counter()
            return upload(client, line.auth, product, board).status_code, time.perf_counter() - started

        with ThreadPoolExecutor(12) as pool:  # unbounded, the last of 12 at once would wait 12 inspections
            answers = list(pool.map(timed_upload, range(24)))
    assert {status for status, _ in answers} == {201, 503}, answers
    accepted_s = [seconds for status, seconds in answers if status == 201]
    # at most one upload ahead of an accepted one: two inspections, not the 24 offered
    assert max(accepted_s) < 2 * delay_s + 0.8, accepted_s
    assert line.stored()["inspections"] == len(accepted_s) == line.inspector.calls


def test_an_upload_the_full_line_cannot_take_in_time_is_refused_and_not_stored(make_line: Any) -> None:
    """Admitted by the door, but the line's one worker is busy and its inspect queue full: after
    `upload_wait_s` the upload is answered 503 + Retry-After (as a full door answers), and nothing is stored."""
    line = make_line(delay_s=1.0, workers=1, inspect_queue=1, upload_concurrency=1, upload_queue=2, upload_wait_s=0.2)
    board = png(with_short(paint_board()))
    with TestClient(line.app) as client:
        product = add_product(client, line.auth)
        ahead = [threading.Thread(target=upload, args=(client, line.auth, product, board)) for _ in range(2)]
        ahead[0].start()  # taken by the worker
        while line.inspector.calls == 0:
            time.sleep(0.01)
        ahead[1].start()  # fills the inspect queue
        uploads = line.app.state.services.inspections.uploads
        while uploads.counts()["busy"] < 2:
            time.sleep(0.01)
        started = time.perf_counter()
        late = upload(client, line.auth, product, board)
        waited_s = time.perf_counter() - started
        for thread in ahead:
            thread.join()
        metrics = client.get("/metrics").text
    assert late.status_code == 503 and late.json()["error"] == "line_full", late.text
    assert "stayed full for 0.2 s" in late.json()["detail"]
    assert retry_after_s(late.headers) >= 1
    assert 0.2 <= waited_s < 0.8
    assert line.stored()["inspections"] == 2 and line.inspector.calls == 2
    assert 'aoi_admission_refused{name="refused_503_slot_wait"} 1' in metrics
    assert 'aoi_upload_slots{name="waiting"} 0' in metrics and 'aoi_upload_slots{name="busy"} 0' in metrics


def test_an_upload_the_line_does_not_answer_in_time_gets_503_and_is_still_stored(make_line: Any) -> None:
    """The line took the upload but its slow inspection outlasts `upload_result_timeout_s`: the request is
    answered 503 + Retry-After at that bound, the line still inspects and stores the board, and a retry with
    the same Idempotency-Key gets that stored result instead of a second inspection."""
    line = make_line(delay_s=1.5, workers=1, upload_result_timeout_s=0.2)
    board = png(with_short(paint_board()))
    keyed = {**line.auth, "Idempotency-Key": "slow-board-1"}

    def keyed_upload(client: TestClient, product: str) -> httpx.Response:
        return client.post(
            UPLOADS, data={"product": product}, files={"image": ("b.png", board, "image/png")}, headers=keyed
        )

    with TestClient(line.app) as client:
        product = add_product(client, line.auth)
        started = time.perf_counter()
        late = keyed_upload(client, product)
        waited_s = time.perf_counter() - started
        stored_when_answered = line.stored()["inspections"]
        deadline = time.monotonic() + 10
        while line.stored()["inspections"] == 0:  # nothing lost: the line finishes it
            assert time.monotonic() < deadline, "the upload answered 503 was never stored"
            time.sleep(0.02)
        retry = keyed_upload(client, product)
        uploads = line.app.state.services.inspections.uploads.counts()
    assert late.status_code == 503 and late.json()["error"] == "inspection_pending", late.text
    assert "within 0.2 s" in late.json()["detail"] and retry_after_s(late.headers) >= 1
    assert 0.2 <= waited_s < 1.0 and stored_when_answered == 0  # answered before the line had finished
    with line.storage.db.session() as session:
        stored_id = session.execute(text("SELECT id FROM inspections")).scalar_one()
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true", retry.text
    assert retry.json()["id"] == stored_id
    assert line.stored()["inspections"] == 1 and line.inspector.calls == 1  # stored once, inspected once
    assert uploads == {"busy": 0.0, "waiting": 0.0, "admitted": 0.0}


def test_upload_line_admits_up_to_its_capacity_and_counts_the_uploads_in_the_line() -> None:
    now = [0.0]
    uploads = UploadLine(concurrency=1, queue=1, max_wait_s=0.05, clock=lambda: now[0])
    assert [uploads.try_admit(), uploads.try_admit(), uploads.try_admit()] == [True, True, False]
    uploads.leave()
    assert uploads.try_admit()
    with uploads.waiting_for_room():
        assert uploads.counts() == {"busy": 0.0, "waiting": 1.0, "admitted": 2.0}
    with uploads.in_line():
        assert uploads.counts() == {"busy": 1.0, "waiting": 0.0, "admitted": 2.0}
        now[0] += 10.0  # an upload that spent 10 s in the line
    uploads.workers = 2
    refused = uploads.refused_after_wait()
    assert isinstance(refused, UploadLineFull) and refused.status == 503 and refused.error == "line_full"
    assert "stayed full for 0.05 s" in refused.detail
    assert refused.retry_after_s == 2.0  # 2.8 s each (1 + 0.2 * (10 - 1)), one ahead, 2 workers: 1.4, rounded up
    assert uploads.counts() == {"busy": 0.0, "waiting": 0.0, "admitted": 2.0}


# --- 5. settings and `aoi serve` flags ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"upload_queue": -1}, "upload_queue"),
        ({"upload_wait_s": 0.0}, "upload_wait_s"),
        ({"upload_result_timeout_s": float("inf")}, "upload_result_timeout_s"),
        ({"max_upload_bytes": 10 * MiB, "max_inflight_bytes": 5 * MiB}, "max_inflight_bytes"),
        ({"rate_limit_per_s": -1.0}, "rate_limit_per_s"),
        ({"rate_limit_per_s": float("inf")}, "rate_limit_per_s"),
        ({"rate_limit_burst": 0}, "rate_limit_burst"),
    ],
)
def test_admission_settings_are_validated(tmp_path: Path, settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ServiceSettings(data_dir=tmp_path, **settings)


def test_admission_defaults_scale_with_the_line(tmp_path: Path) -> None:
    settings = ServiceSettings(data_dir=tmp_path, upload_concurrency=3, max_upload_bytes=10 * MiB)
    assert settings.upload_queue_depth == 12
    assert settings.inflight_bytes_budget == 40 * MiB
    assert settings.rate_limit_per_s == 0.0  # off unless asked for


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--max-upload-mb", "8", "--max-inflight-mb", "4"], "max_inflight_bytes"),
        (["--upload-queue", "-1"], "--upload-queue"),
        (["--rate-burst", "0"], "--rate-burst"),
        (["--upload-wait-s", "0"], "--upload-wait-s"),
        (["--upload-result-timeout-s", "0"], "--upload-result-timeout-s"),
    ],
)
def test_serve_refuses_admission_flags_that_do_not_fit(tmp_path: Path, flags: list[str], words: str) -> None:
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(service_cli, ["serve", "--data-dir", str(data_dir), *flags])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert not data_dir.exists()  # refused before opening anything


def test_a_latency_budget_admits_only_what_can_be_answered_within_it() -> None:
    now = [0.0]
    uploads = UploadLine(concurrency=2, queue=16, max_wait_s=1.0, clock=lambda: now[0], latency_budget_s=0.1)
    uploads.workers = 2

    def served(seconds: float) -> None:  # one upload admitted, in the line `seconds`, answered
        assert uploads.try_admit()
        with uploads.in_line():
            now[0] += seconds
        uploads.leave()

    # Nothing timed yet: only the door's count applies.
    assert all(uploads.try_admit() for _ in range(6))
    for _ in range(6):
        uploads.leave()
    served(0.04)  # alone in the line: one upload takes 40 ms now
    # Two go straight to a worker; behind them, a newcomer waits for those queued ahead: 1 ahead
    # (40 ms x (1 + 1/2) = 60 ms), 2 (80 ms) and 3 (100 ms, at the budget) fit, 4 (120 ms) do not.
    assert [uploads.try_admit() for _ in range(6)] == [True, True, True, True, True, False]
    assert "within 0.1 s" in uploads.why_full()
    for _ in range(5):
        uploads.leave()
    served(0.2)  # the machine slowed down: 40 -> 72 ms on average
    assert uploads.try_admit() and uploads.try_admit()
    assert not uploads.try_admit()  # 1 would be queued ahead of one more: 72 ms x 1.5 > 100 ms
    uploads.leave()
    uploads.leave()
    assert uploads.try_admit()  # a worker is free: admitted whatever the time


def test_an_upload_that_waited_behind_others_counts_for_one_upload_s_time() -> None:
    now = [0.0]
    uploads = UploadLine(concurrency=2, queue=16, max_wait_s=1.0, clock=lambda: now[0], latency_budget_s=0.1)
    uploads.workers = 2
    assert all(uploads.try_admit() for _ in range(5))
    with uploads.in_line():  # the 5th had 3 queued ahead of it: 250 ms in the line = 100 ms per upload
        now[0] += 0.25
    for _ in range(4):
        uploads.leave()
    assert uploads.try_admit()  # 2 admitted: both at a worker
    assert not uploads.try_admit()  # one more behind 1 queued: 100 ms x 1.5 > 100 ms


def test_aoi_serve_refuses_a_negative_latency_budget(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aoi.cli import app

    answer = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path), "--upload-latency-budget-ms", "-1"])
    assert answer.exit_code == 2 and "upload-latency-budget-ms" in answer.output
