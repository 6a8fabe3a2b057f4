"""Reads of stored data need a key with the read scope (unless the operator opens them); keys may expire."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.support.service import FakeInspector, Service, paint_board, png, with_short
from typer.testing import CliRunner

from aoi.api import ServiceSettings, create_app
from aoi.cli import app as service_cli
from aoi.storage import Storage
from aoi.storage.keys import LifetimeError, Scope, as_utc, create_api_key, find_api_key, parse_lifetime
from aoi.storage.models import ApiKeyRow

OPEN_PATHS = {"/health", "/metrics", "/api/v1/defect-types"}  # probes and vocabulary, no stored data


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _key(storage: Storage, name: str, *scopes: Scope, expires_at: datetime | None = None) -> dict[str, str]:
    with storage.db.transaction() as session:
        return _bearer(create_api_key(session, name, scopes, expires_at))


def _stored_data_reads(service: Service) -> list[str]:
    """A URL for every GET of the API that serves stored data, filled with a stored product and
    inspection (read from the schema, so a read added later is checked too)."""
    product = service.add_product()
    inspection = service.inspect(with_short(paint_board()), product["id"], lot="L1")  # a lot: its report
    review = {"decision": "confirm"}
    r = service.client.post(
        f"/api/v1/defects/{inspection['defects'][0]['id']}/review", json=review, headers=service.auth
    )
    assert r.status_code == 200, r.text  # something reviewed: the export has a pair to give
    ids = {
        "product_id": product["id"],
        "inspection_id": inspection["id"],
        "defect_id": inspection["defects"][0]["id"],
        "lot": "L1",
    }
    paths = service.client.get("/openapi.json").json()["paths"]
    urls = [path.format(**ids) for path, ops in paths.items() if "get" in ops and path not in OPEN_PATHS]
    assert len(urls) >= 7, urls  # inspections, one, overlay, products, one, stats, export
    return urls


def _anonymous(service: Service) -> TestClient:
    """A client of the same app that sends no key (the fixture's client sends one on reads)."""
    return TestClient(service.client.app)


def test_every_read_of_stored_data_needs_a_key_with_the_read_scope(service: Service) -> None:
    urls = _stored_data_reads(service)
    anonymous = _anonymous(service)
    reader = _key(service.storage, "screen", Scope.READ)
    station = _key(service.storage, "station-1", Scope.INSPECT, Scope.REVIEW)
    admin = _key(service.storage, "lead", Scope.ADMIN)
    for url in urls:
        r = anonymous.get(url)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", url
        assert "'read' scope" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
        for bad in ({"Authorization": "Bearer aoi_never_made"}, {"Authorization": "Basic abc"}):
            assert anonymous.get(url, headers=bad).status_code == 401, url
        r = anonymous.get(url, headers=station)  # a write-only key: known, but not allowed to read
        assert r.status_code == 403 and r.json()["error"] == "forbidden", url
        assert "lacks the 'read' scope" in r.json()["detail"] and "inspect,review" in r.json()["detail"]
        assert anonymous.get(url, headers=reader).status_code == 200, url
        assert anonymous.get(url, headers=admin).status_code == 200, url  # admin implies read
    for url in OPEN_PATHS:
        assert anonymous.get(url).status_code == 200, url


def test_export_is_closed_and_a_read_key_downloads_it(service: Service) -> None:
    product = service.add_product()
    body = service.inspect(with_short(paint_board()), product["id"])
    defect_id = body["defects"][0]["id"]
    r = service.client.post(f"/api/v1/defects/{defect_id}/review", json={"decision": "confirm"}, headers=service.auth)
    assert r.status_code == 200, r.text
    anonymous = _anonymous(service)
    r = anonymous.get("/api/v1/export", params={"format": "deeppcb"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/json")
    r = anonymous.get("/api/v1/export", params={"format": "nope"})
    assert r.status_code == 401  # who may not read learns nothing, not even which formats exist
    r = anonymous.get("/api/v1/export", params={"format": "deeppcb"}, headers=_key(service.storage, "ml", Scope.READ))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["x-export-boxes"] == "1"


@pytest.fixture
def open_service(storage: Storage) -> Iterator[TestClient]:
    """The service as `aoi serve --open-reads` (or --demo) runs it."""
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False, open_reads=True)
    with TestClient(create_app(settings, inspector=FakeInspector(), storage=storage)) as client:
        yield client


def test_open_reads_serve_stored_data_without_a_key_but_writes_still_need_one(
    open_service: TestClient, storage: Storage
) -> None:
    admin = _key(storage, "lead", Scope.ADMIN)
    files = {"template": ("t.png", png(paint_board()), "image/png")}
    product = {"name": "board-a", "px_per_mm": "20"}
    assert open_service.post("/api/v1/products", data=product, files=files).status_code == 401
    r = open_service.post("/api/v1/products", data=product, files=files, headers=admin)
    assert r.status_code == 201, r.text
    image = {"image": ("b.png", png(with_short(paint_board())), "image/png")}
    inspection = open_service.post("/api/v1/inspections", data={"product": "board-a"}, files=image, headers=admin)
    assert inspection.status_code == 201, inspection.text
    iid, pid = inspection.json()["id"], r.json()["id"]
    reads = [
        "/api/v1/inspections",
        f"/api/v1/inspections/{iid}",
        f"/api/v1/inspections/{iid}/overlay.png",
        "/api/v1/products",
        f"/api/v1/products/{pid}",
        "/api/v1/stats",
        "/api/v1/export",
    ]
    for url in reads:
        assert open_service.get(url).status_code == 200, url
        # a key sent anyway is not looked at: a stale key in a browser does not break an open dashboard
        assert open_service.get(url, headers={"Authorization": "Bearer aoi_stale"}).status_code == 200, url


def test_an_expired_key_is_refused_saying_it_expired(service: Service) -> None:
    service.add_product()
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = _key(service.storage, "temp", Scope.READ, Scope.INSPECT, expires_at=past)
    anonymous = _anonymous(service)
    r = anonymous.get("/api/v1/inspections", headers=expired)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert "expired at" in r.json()["detail"] and "aoi keys create" in r.json()["detail"]
    files = {"image": ("b.png", png(paint_board()), "image/png")}
    r = anonymous.post("/api/v1/inspections", data={"product": "board-a"}, files=files, headers=expired)
    assert r.status_code == 401 and "expired at" in r.json()["detail"]  # writes too

    fresh = _key(service.storage, "a day", Scope.READ, expires_at=datetime.now(UTC) + timedelta(days=1))
    assert anonymous.get("/api/v1/inspections", headers=fresh).status_code == 200
    with service.storage.db.transaction() as session:  # its day passes
        row = find_api_key(session, fresh["Authorization"].removeprefix("Bearer "))
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(microseconds=1)
    assert anonymous.get("/api/v1/inspections", headers=fresh).status_code == 401


def _cli(service: Service, *args: str) -> list[str]:
    full = [*args, "--data-dir", str(service.data_dir)]
    if service.backend != "sqlite":
        full += ["--database-url", service.storage.db.url]
    return full


def test_a_revoked_key_cannot_read_within_a_second(service: Service) -> None:
    reader = _key(service.storage, "screen", Scope.READ)
    anonymous = _anonymous(service)
    assert anonymous.get("/api/v1/stats", headers=reader).status_code == 200
    with service.storage.db.session() as session:
        row = find_api_key(session, reader["Authorization"].removeprefix("Bearer "))
        assert row is not None
        key_id = row.id

    result = CliRunner().invoke(service_cli, _cli(service, "keys", "revoke", str(key_id)))
    assert result.exit_code == 0, result.output
    revoked_at = time.monotonic()
    r = anonymous.get("/api/v1/stats", headers=reader)
    assert time.monotonic() - revoked_at < 1.0
    assert r.status_code == 401 and "unknown or revoked" in r.json()["detail"]


def test_keys_create_expires_in_and_list_shows_the_expiry(service: Service) -> None:
    runner = CliRunner()
    before = datetime.now(UTC)
    made = runner.invoke(service_cli, _cli(service, "keys", "create", "--scopes", "read", "--expires-in", "12h"))
    assert made.exit_code == 0, made.output
    assert "; expires 20" in made.output and "+00:00" in made.output
    token = made.output.strip().splitlines()[-1]
    with service.storage.db.session() as session:
        row = find_api_key(session, token)
        assert row is not None and row.expires_at is not None
        expires_at = as_utc(row.expires_at)
        key_id = row.id
    assert before + timedelta(hours=12) <= expires_at <= datetime.now(UTC) + timedelta(hours=12)
    assert _anonymous(service).get("/api/v1/inspections", headers=_bearer(token)).status_code == 200
    never = runner.invoke(service_cli, _cli(service, "keys", "create", "--name", "forever"))
    assert never.exit_code == 0 and "never expires" in never.output

    listed = runner.invoke(service_cli, _cli(service, "keys", "list"))
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split() for line in listed.output.strip().splitlines()}
    assert rows["id"][5] == "expires"
    assert rows[str(key_id)][5] == expires_at.isoformat(timespec="seconds")
    assert next(r for r in rows.values() if r[1] == "forever")[5] == "-"

    for bad in ("30", "0d", "-1d", "3x", "1.5d", "99999w", ""):
        refused = runner.invoke(service_cli, _cli(service, "keys", "create", "--expires-in", bad))
        assert refused.exit_code == 2 and "error: --expires-in" in refused.output, bad
    with service.storage.db.session() as session:
        assert session.query(ApiKeyRow).count() == 3  # the fixture's, the 12 h one and "forever"


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [("12h", timedelta(hours=12)), ("30d", timedelta(days=30)), ("8w", timedelta(weeks=8)), (" 2D ", timedelta(2))],
)
def test_parse_lifetime(text: str, lifetime: timedelta) -> None:
    assert parse_lifetime(text) == lifetime


@pytest.mark.parametrize("text", ["", "12", "h", "0h", "1.5d", "1 day", "1m", "100000w"])
def test_parse_lifetime_refuses(text: str) -> None:
    with pytest.raises(LifetimeError):
        parse_lifetime(text)


class _Served:
    """What `aoi serve` handed to uvicorn, instead of serving it."""

    def __init__(self) -> None:
        self.app: Any = None

    def run(self, app: Any, **_kwargs: Any) -> None:
        self.app = app


@pytest.mark.parametrize(
    ("flags", "open_reads", "said"),
    [
        ([], False, "reads are closed"),
        (["--open-reads"], True, "reads are OPEN (--open-reads)"),
        (["--demo"], True, "reads are OPEN (--demo)"),  # the Quick start's demo has no keys
        (["--demo", "--closed-reads"], False, "reads are closed"),
    ],
)
def test_serve_states_whether_reads_are_open(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    flags: list[str],
    open_reads: bool,
    said: str,
) -> None:
    import uvicorn

    from aoi.detection.inspector import Inspector

    served = _Served()
    monkeypatch.setattr(uvicorn, "run", served.run)
    monkeypatch.setattr(Inspector, "load", classmethod(lambda cls, *a, **k: FakeInspector()))
    with caplog.at_level("INFO", logger="aoi.serve"):
        result = CliRunner().invoke(service_cli, ["serve", "--data-dir", str(tmp_path), "--no-hot-folder", *flags])
    assert result.exit_code == 0, result.output
    assert served.app.state.services.settings.open_reads is open_reads
    assert said in caplog.text


def test_serve_sets_the_review_lease_and_refuses_a_lease_of_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from aoi.detection.inspector import Inspector

    served = _Served()
    monkeypatch.setattr(uvicorn, "run", served.run)
    monkeypatch.setattr(Inspector, "load", classmethod(lambda cls, *a, **k: FakeInspector()))
    base = ["serve", "--data-dir", str(tmp_path / "data"), "--no-hot-folder"]
    result = CliRunner().invoke(service_cli, [*base, "--review-lease-s", "300"])
    assert result.exit_code == 0, result.output
    assert served.app.state.services.settings.review_lease_s == 300.0
    refused = CliRunner().invoke(service_cli, [*base, "--review-lease-s", "0"])
    assert refused.exit_code == 2 and "review_lease_s" in refused.output
