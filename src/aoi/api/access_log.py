"""Quieter access logs: the dashboard polls every second or two, so one line per poll would bury the
lines that matter. Successful reads of stored data and health/metrics scrapes are left out; every
write, and every answer of 4xx or 5xx, is still logged."""

from __future__ import annotations

import copy
import logging
from typing import Any

POLLED_PREFIXES = ("/api/v1/", "/health", "/metrics", "/static/")
_QUIET_METHODS = frozenset({"GET", "HEAD"})


class QuietPolling(logging.Filter):
    """Drops uvicorn access records of successful GET/HEAD requests to the polled paths."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:  # not uvicorn's access record shape: keep it
            return True
        _client, method, path, _version, status = args
        if not isinstance(status, int):
            return True
        ok = 200 <= status < 400
        return not (ok and method in _QUIET_METHODS and str(path).startswith(POLLED_PREFIXES))


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with `QuietPolling` on its access logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["quiet_polling"] = {"()": QuietPolling}
    config["handlers"]["access"].setdefault("filters", []).append("quiet_polling")
    return config
