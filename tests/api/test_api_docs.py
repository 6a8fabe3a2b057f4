"""The API docs work on a line network with no internet, and the schema says which calls need a key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aoi.api import ServiceSettings, create_app
from aoi.storage import Storage

WRITE_METHODS = {"post", "put", "patch", "delete"}
OPEN_PATHS = {"/health", "/metrics", "/api/v1/defect-types"}  # probes and vocabulary: no stored data


class IdleInspector:
    """Never called: these tests read pages and the schema only."""

    model_version = "idle"

    def inspect(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no inspection expected")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    storage = Storage.open(tmp_path / "data")
    settings = ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False)
    with TestClient(create_app(settings, inspector=IdleInspector(), storage=storage)) as test_client:
        yield test_client
    storage.close()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_external_host(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert re.findall(r"(?:https?:)?//[\w.-]+", response.text) == []  # no absolute or protocol-relative URL
    references = re.findall(r'(?:src|href|spec-url)="([^"]+)"', response.text)
    assert references and all(ref.startswith("/") for ref in references), references
    assert "default-src 'self'" in response.headers["content-security-policy"]  # nothing else loads either


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_a_docs_page_names_is_served(client: TestClient, page: str) -> None:
    assets = re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', client.get(page).text)
    assert len(assets) >= 2  # the script and the favicon at least
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].split(";")[0] in {"text/javascript", "text/css", "image/png"}
        assert len(response.content) > 1000, url


def test_swagger_ui_asks_no_online_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


@pytest.mark.parametrize("name", ["core.py", "__init__.py", "..%2Fcore.py", "swagger-ui.js.map", "missing.js"])
def test_only_the_listed_docs_assets_are_served(client: TestClient, name: str) -> None:
    assert client.get(f"/docs-assets/{name}").status_code == 404


def test_openapi_declares_the_bearer_key_on_every_write_and_every_read_of_stored_data(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] | {"description": ""} == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": "",
    }
    writes = reads = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in WRITE_METHODS:
                writes += 1
                assert operation.get("security") == [{"ApiKey": []}], f"{method} {path}"
            elif path in OPEN_PATHS:
                assert "security" not in operation, f"{method} {path} holds no stored data and stays open"
            else:
                reads += 1
                assert operation.get("security") == [{"ApiKey": []}], f"{method} {path} reads stored data"
                assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"
    assert writes >= 3 and reads >= 7  # products, inspections and reviews; the reads the dashboard uses, export
