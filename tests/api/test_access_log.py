"""Access logs leave out the dashboard's polling and keep writes and errors."""

from __future__ import annotations

import logging
import logging.config

import pytest

from aoi.api.access_log import QuietPolling, uvicorn_log_config


def _record(method: str, path: str, status: int) -> logging.LogRecord:
    # the shape uvicorn's access logger uses: '%s - "%s %s HTTP/%s" %d'
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", method, path, "1.1", status), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "method,path,status,logged",
    [
        ("GET", "/api/v1/inspections?limit=24", 200, False),
        ("GET", "/api/v1/review/pending", 200, False),
        ("GET", "/health", 200, False),
        ("GET", "/static/app.js", 304, False),
        ("POST", "/api/v1/inspections", 201, True),
        ("POST", "/api/v1/defects/abc/review", 200, True),
        ("GET", "/api/v1/inspections", 401, True),
        ("GET", "/api/v1/export", 500, True),
        ("GET", "/", 200, True),
    ],
)
def test_successful_polls_are_left_out_and_writes_and_errors_kept(method, path, status, logged):
    assert QuietPolling().filter(_record(method, path, status)) is logged


def test_uvicorn_logging_config_carries_the_filter(capsys):
    logging.config.dictConfig(uvicorn_log_config())
    access = logging.getLogger("uvicorn.access")
    access.handle(_record("GET", "/api/v1/stats", 200))
    access.handle(_record("POST", "/api/v1/inspections", 201))
    out = capsys.readouterr().out
    assert "POST /api/v1/inspections" in out and "/api/v1/stats" not in out
