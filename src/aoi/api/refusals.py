"""Answers sent by the ASGI guards in front of the routes, in the app's error shape, and their counts.

The guards (admission control, body limits) answer before FastAPI sees the request, so they cannot
raise `ApiError`; they send the same `{"detail": ..., "error": ...}` JSON themselves.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from enum import StrEnum

from starlette.types import Send


class Refusal(StrEnum):
    """Why admission control turned a request away; the label of the `aoi_admission_refused` gauge."""

    UNAUTHENTICATED_BEFORE_BODY = "refused_401_before_body"
    RATE_LIMITED = "refused_429_rate_limited"
    LINE_FULL = "refused_503_line_full"
    SLOT_WAIT = "refused_503_slot_wait"  # admitted, but the line's inspect queue stayed full (upload_wait_s)
    INFLIGHT_BYTES = "refused_503_inflight_bytes"
    KEY_STORE_DOWN = "refused_503_key_store_down"


class RefusalCounts:
    """Refusals since start, by reason (thread-safe: the line's wait refuses from a worker thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {reason: 0 for reason in Refusal}

    def add(self, reason: Refusal) -> None:
        with self._lock:
            self._counts[reason] += 1

    def snapshot(self) -> Mapping[str, float]:
        with self._lock:
            return {reason.value: float(n) for reason, n in self._counts.items()}


def retry_after_header(seconds: float) -> tuple[bytes, bytes]:
    """`Retry-After` in whole seconds (the header takes no fractions), at least 1."""
    return b"retry-after", str(max(1, math.ceil(seconds))).encode()


async def send_error(
    send: Send, status: int, error: str, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """A complete JSON error response; the request body, if any, is left unread."""
    body = json.dumps({"detail": detail, "error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
