"""Scoped API keys: which write needs which scope, revocation, `aoi keys list`, the reviewer from the key."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.support.service import Service, paint_board, png, with_short
from typer.testing import CliRunner

from aoi.cli import app as service_cli
from aoi.storage.keys import Scope, create_api_key, find_api_key, hash_token, row_scopes


def _key(service: Service, name: str, *scopes: Scope) -> dict[str, str]:
    with service.storage.db.transaction() as session:
        token = create_api_key(session, name, scopes)
    return {"Authorization": f"Bearer {token}"}


def _cli(service: Service, *args: str) -> list[str]:
    """`aoi keys ...` on the service's database (SQLite in its data dir, or its PostgreSQL)."""
    full = [*args, "--data-dir", str(service.data_dir)]
    if service.backend != "sqlite":
        full += ["--database-url", service.storage.db.url]
    return full


def _post_product(client: TestClient, auth: dict[str, str], name: str = "board-a"):
    files = {"template": ("t.png", png(paint_board()), "image/png")}
    return client.post("/api/v1/products", data={"name": name, "px_per_mm": "20"}, files=files, headers=auth)


def _post_inspection(client: TestClient, auth: dict[str, str], product: str):
    files = {"image": ("b.png", png(with_short(paint_board())), "image/png")}
    return client.post("/api/v1/inspections", data={"product": product}, files=files, headers=auth)


def test_each_write_needs_its_scope(service: Service) -> None:
    client = service.client
    inspect_key = _key(service, "station-1", Scope.INSPECT)
    review_key = _key(service, "ann", Scope.REVIEW)
    read_key = _key(service, "screen", Scope.READ)
    admin_key = _key(service, "lead", Scope.ADMIN)
    before = service.counts()

    for auth in (inspect_key, review_key, read_key):
        r = _post_product(client, auth)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "forbidden" and "'admin' scope" in r.json()["detail"]
    r = _post_inspection(client, review_key, "board-a")
    assert r.status_code == 403 and "'inspect' scope" in r.json()["detail"]
    assert service.counts() == before  # a refused write writes nothing

    assert _post_product(client, admin_key).status_code == 201
    r = _post_inspection(client, inspect_key, "board-a")
    assert r.status_code == 201, r.text
    defect_id = r.json()["defects"][0]["id"]
    for auth in (inspect_key, read_key):
        r = client.post(f"/api/v1/defects/{defect_id}/review", json={"decision": "confirm"}, headers=auth)
        assert r.status_code == 403 and "'review' scope" in r.json()["detail"]
    r = client.post(f"/api/v1/defects/{defect_id}/review", json={"decision": "confirm"}, headers=review_key)
    assert r.status_code == 200, r.text
    assert _post_inspection(client, admin_key, "board-a").status_code == 201  # admin implies every scope
    assert client.get("/api/v1/inspections", headers=read_key).json()["total"] == 2  # the read scope reads


def test_a_revoked_key_gets_401_at_once(service: Service) -> None:
    auth = _key(service, "station-9", Scope.INSPECT, Scope.ADMIN)
    assert _post_product(service.client, auth).status_code == 201
    with service.storage.db.session() as session:
        row = find_api_key(session, auth["Authorization"].removeprefix("Bearer "))
        assert row is not None
        key_id = row.id

    result = CliRunner().invoke(service_cli, _cli(service, "keys", "revoke", str(key_id)))
    assert result.exit_code == 0, result.output
    assert f"API key {key_id} (station-9) revoked at" in result.output

    r = _post_inspection(service.client, auth, "board-a")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert "unknown or revoked" in r.json()["detail"]
    assert _post_inspection(service.client, service.auth, "board-a").status_code == 201  # other keys unaffected
    r = _post_inspection(service.client, {"Authorization": "Bearer aoi_never_made"}, "board-a")
    assert r.status_code == 401

    again = CliRunner().invoke(service_cli, _cli(service, "keys", "revoke", str(key_id)))
    assert again.exit_code == 0 and result.output == again.output  # revoking twice keeps the first time
    unknown = CliRunner().invoke(service_cli, _cli(service, "keys", "revoke", "99999"))
    assert unknown.exit_code == 2 and "no API key with id 99999" in unknown.output


def test_keys_create_with_scopes_and_list_without_secrets(service: Service) -> None:
    runner = CliRunner()
    made = runner.invoke(service_cli, _cli(service, "keys", "create", "--scopes", "review, inspect", "--name", "st-4"))
    assert made.exit_code == 0, made.output
    assert "with scopes inspect,review" in made.output
    token = made.output.strip().splitlines()[-1]
    with service.storage.db.session() as session:
        row = find_api_key(session, token)
        assert row is not None and row.label == "st-4" and row_scopes(row) == {Scope.INSPECT, Scope.REVIEW}
        new_id = row.id
    assert _post_product(service.client, {"Authorization": f"Bearer {token}"}).status_code == 403

    default = runner.invoke(service_cli, _cli(service, "keys", "create"))  # as before scopes: every scope
    assert default.exit_code == 0 and "with scopes read,inspect,review,admin" in default.output
    bad = runner.invoke(service_cli, _cli(service, "keys", "create", "--scopes", "inspect,write"))
    assert bad.exit_code == 2 and "unknown scope(s) write" in bad.output
    assert runner.invoke(service_cli, _cli(service, "keys", "revoke", str(new_id))).exit_code == 0

    listed = runner.invoke(service_cli, _cli(service, "keys", "list"))
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    assert lines[0].split() == ["id", "name", "scopes", "created", "revoked", "expires"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert len(rows) == 3  # the fixture's key, st-4 and the default one
    assert rows[str(new_id)][1:3] == ["st-4", "inspect,review"] and rows[str(new_id)][4] != "-"
    assert rows[str(new_id)][3].endswith("+00:00")
    tester = next(r for r in rows.values() if r[1] == "tester")
    assert tester[2] == "read,inspect,review,admin" and tester[4] == "-" and tester[5] == "-"  # never expires
    for secret in (token, hash_token(token), service.key, hash_token(service.key), "aoi_"):
        assert secret not in listed.output


def test_the_reviewer_is_the_keys_name(service: Service) -> None:
    product = service.add_product()
    body = service.inspect(with_short(paint_board()), product["id"])
    defect_id = body["defects"][0]["id"]
    ann = _key(service, "ann", Scope.REVIEW)
    url = f"/api/v1/defects/{defect_id}/review"

    r = service.client.post(url, json={"decision": "false_call", "reviewer": "bob"}, headers=ann)
    assert r.status_code == 403 and r.json()["error"] == "reviewer_mismatch"
    assert "'bob'" in r.json()["detail"] and "'ann'" in r.json()["detail"]
    stored = service.client.get(f"/api/v1/inspections/{body['id']}").json()
    assert stored["defects"][0]["review"] is None  # nothing recorded under a borrowed name

    r = service.client.post(url, json={"decision": "confirm"}, headers=ann)
    assert r.status_code == 200 and r.json()["defect"]["review"]["reviewed_by"] == "ann"
    r = service.client.post(url, json={"decision": "false_call", "reviewer": " ann "}, headers=ann)
    assert r.status_code == 200, r.text  # the key's own name is still accepted (older clients send it)
    review = r.json()["defect"]["review"]
    assert review["status"] == "false_call" and review["reviewed_by"] == "ann"
