"""Idempotency-Key on the upload endpoints: a retry gets the first answer and stores nothing new."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, Service, paint_board, png, with_short

from aoi.api import ServiceSettings, create_app
from aoi.api.line import LineOptions, build_line
from aoi.storage import Storage
from aoi.storage.keys import create_api_key

INSPECTIONS = "/api/v1/inspections"


def _upload(
    client: TestClient, auth: dict[str, str], product: str, key: str | None, board_png: bytes, name: str = "b.png"
) -> httpx.Response:
    headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
    return client.post(
        INSPECTIONS, data={"product": product}, files={"image": (name, board_png, "image/png")}, headers=headers
    )


def test_retry_with_the_same_key_returns_the_first_inspection(service: Service) -> None:
    product = service.add_product()["id"]
    board = png(with_short(paint_board()))
    first = _upload(service.client, service.auth, product, "7d3c-retry-1", board)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    files_after_first = service.stored_files()
    retry = _upload(service.client, service.auth, product, "7d3c-retry-1", board)
    assert retry.status_code == 200, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()  # the first result: same inspection id, same defects
    assert service.inspector.calls == 1  # the retry was not inspected again
    assert service.counts()["inspections"] == 1 and service.stored_files() == files_after_first
    no_key = _upload(service.client, service.auth, product, None, board)  # without a key: a new inspection
    assert no_key.status_code == 201 and no_key.json()["id"] != first.json()["id"]


def test_same_key_with_a_different_body_is_refused(service: Service) -> None:
    product = service.add_product()["id"]
    first = _upload(service.client, service.auth, product, "k-1", png(paint_board()))
    assert first.status_code == 201
    other = _upload(service.client, service.auth, product, "k-1", png(with_short(paint_board())))
    assert other.status_code == 409
    body = other.json()
    assert body["error"] == "idempotency_key_reused"
    assert "'k-1' was already used for a different request" in body["detail"]
    assert first.json()["id"] in body["detail"]
    assert service.counts()["inspections"] == 1
    renamed = _upload(service.client, service.auth, product, "k-1", png(paint_board()), name="other-name.png")
    assert renamed.status_code == 409  # the file name is part of the request (it names the image)


def test_keys_belong_to_the_api_key_that_sent_them(service: Service) -> None:
    product = service.add_product()["id"]
    board = png(paint_board())
    with service.storage.db.transaction() as session:
        other_auth = {"Authorization": f"Bearer {create_api_key(session, label='other line')}"}
    mine = _upload(service.client, service.auth, product, "shared-key", board)
    theirs = _upload(service.client, other_auth, product, "shared-key", board)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


@pytest.mark.parametrize(
    "key",
    [" ", "x" * 256, "caf\u00e9", "tab\there", "nul\x7f"],
    ids=["blank", "256-chars", "non-ascii", "tab", "delete-char"],
)
def test_keys_are_bounded_and_printable(service: Service, key: str) -> None:
    product = service.add_product()["id"]
    headers = {**service.auth, "Idempotency-Key": key}
    r = service.client.post(
        INSPECTIONS,
        data={"product": product},
        files={"image": ("b.png", png(paint_board()), "image/png")},
        headers={k: v.encode("latin-1") for k, v in headers.items()},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_idempotency_key" and "1 to 255 printable ASCII" in r.json()["detail"]
    assert service.counts()["inspections"] == 0
    longest = _upload(service.client, service.auth, product, "~" * 255, png(paint_board()))
    assert longest.status_code == 201


def test_a_failed_request_claims_nothing_so_its_retry_runs(service: Service) -> None:
    product = service.add_product()["id"]
    bad = _upload(service.client, service.auth, product, "k-bad", b"\x89PNG\r\n\x1a\n broken")
    assert bad.status_code == 422
    good = _upload(service.client, service.auth, product, "k-bad", png(paint_board()))
    assert good.status_code == 201 and service.counts()["inspections"] == 1


def test_product_retry_with_the_same_key_returns_the_first_product(service: Service) -> None:
    def create(name: str) -> httpx.Response:
        return service.client.post(
            "/api/v1/products",
            data={"name": name, "px_per_mm": "20"},
            files={"template": ("t.png", png(paint_board()), "image/png")},
            headers={**service.auth, "Idempotency-Key": "product-1"},
        )

    first = create("board-a")
    retry = create("board-a")
    assert first.status_code == 201 and retry.status_code == 200, retry.text
    assert retry.json()["id"] == first.json()["id"]
    other = create("board-b")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    assert service.counts()["products"] == 1


@pytest.fixture
def gated(storage: Storage) -> Iterator[tuple[TestClient, FakeInspector, dict[str, str]]]:
    """A service whose inspector waits for a gate, with room for several uploads at once (4 inspect workers)."""
    inspector = FakeInspector()
    inspector.gate = threading.Event()
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, upload_concurrency=4)
    options = LineOptions(hot_folder=False, inspect_workers=4)
    app = create_app(settings, inspector=inspector, storage=storage, line_factory=lambda svc: build_line(svc, options))
    with storage.db.transaction() as session:
        auth = {"Authorization": f"Bearer {create_api_key(session, label='tester')}"}
    with TestClient(app) as client:
        yield client, inspector, auth
        inspector.gate.set()


def test_two_concurrent_requests_with_one_key_store_once(
    gated: tuple[TestClient, FakeInspector, dict[str, str]], storage: Storage
) -> None:
    """The client timed out and retried while its first request was still being inspected."""
    client, inspector, auth = gated
    template = paint_board()
    r = client.post(
        "/api/v1/products",
        data={"name": "board-a", "px_per_mm": "20"},
        files={"template": ("t.png", png(template), "image/png")},
        headers=auth,
    )
    product = r.json()["id"]
    board = png(with_short(template))
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(_upload(client, auth, product, "same", board))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while inspector.calls < 2:  # both passed the key check and are being inspected at once
        assert time.monotonic() < deadline, "the two requests did not overlap"
        time.sleep(0.01)
    assert inspector.gate is not None
    inspector.gate.set()
    for thread in threads:
        thread.join(10)
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    with storage.db.session() as session:
        from sqlalchemy import text

        assert session.execute(text("SELECT COUNT(*) FROM inspections")).scalar_one() == 1
    stored = [p for p in (storage.data_dir / "images" / "inspections").rglob("*.png")]
    assert len(stored) == 1  # the loser's image file was removed with its rolled-back row


def test_a_product_request_that_lost_the_race_to_its_retry_is_answered_with_the_first(service: Service) -> None:
    """The name check comes before the insert: a concurrent twin sees the name taken by its own key."""
    from sqlalchemy import select

    from aoi.api.services import Upload
    from aoi.storage.idempotency import IdempotencyClaim, IdempotencyKeyTaken
    from aoi.storage.models import IdempotencyKeyRow

    r = service.client.post(
        "/api/v1/products",
        data={"name": "board-a", "px_per_mm": "20"},
        files={"template": ("t.png", png(paint_board()), "image/png")},
        headers={**service.auth, "Idempotency-Key": "twin"},
    )
    assert r.status_code == 201
    with service.storage.db.session() as session:
        row = session.scalars(select(IdempotencyKeyRow)).one()
        claim = IdempotencyClaim(row.owner, "twin", row.request_sha256)
    products = service.client.app.state.services.products  # type: ignore[attr-defined]
    with pytest.raises(IdempotencyKeyTaken):
        products.create("board-a", 20.0, None, Upload(png(paint_board()), "t.png"), claim=claim)
    assert service.counts()["products"] == 1


STORM = 16  # within the upload door (4 + 4 per 4: 20) and the line (4 workers + 16 queued)


def test_a_retry_storm_with_one_key_stores_once(
    gated: tuple[TestClient, FakeInspector, dict[str, str]], storage: Storage
) -> None:
    """A client library retrying on timeout, 16 times at once, with one Idempotency-Key: one
    inspection, one image file, and every answer names it (one 201, the rest replays)."""
    client, inspector, auth = gated
    r = client.post(
        "/api/v1/products",
        data={"name": "board-a", "px_per_mm": "20"},
        files={"template": ("t.png", png(paint_board()), "image/png")},
        headers=auth,
    )
    product = r.json()["id"]
    board = png(with_short(paint_board()))
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(STORM)

    def retry() -> None:
        start.wait(10)
        answer = _upload(client, auth, product, "storm-1", board)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=retry) for _ in range(STORM)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while inspector.calls < 4:  # every inspect worker holds a copy of the request: they overlap for real
        assert time.monotonic() < deadline, "the retries did not overlap"
        time.sleep(0.01)
    time.sleep(0.2)  # the rest pile up in the line's inspect queue
    assert inspector.gate is not None
    inspector.gate.set()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status_code for a in answers) == [200] * (STORM - 1) + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert all(a.headers.get("Idempotent-Replayed") == "true" for a in answers if a.status_code == 200)
    with storage.db.session() as session:
        from sqlalchemy import text

        assert session.execute(text("SELECT COUNT(*) FROM inspections")).scalar_one() == 1
        assert session.execute(text("SELECT COUNT(*) FROM idempotency_keys")).scalar_one() == 1
    stored = [p for p in (storage.data_dir / "images" / "inspections").rglob("*") if p.is_file()]
    assert len(stored) == 1  # every loser's image file went with its rolled-back row
