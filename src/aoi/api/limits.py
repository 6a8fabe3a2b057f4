"""Body limits, enforced before any route (or multipart parser) sees the body: the size of one upload
(413) and the bytes of all the bodies in flight at once (503 + Retry-After)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aoi.api.refusals import Refusal, RefusalCounts, retry_after_header, send_error

_BODY_METHODS = {"POST", "PUT", "PATCH"}
# Bodies in flight are short-lived (an upload is read in well under a second on the line network).
INFLIGHT_RETRY_AFTER_S = 1.0


class InflightBytes:
    """Bytes of request bodies the service holds now (declared or received), against a budget.

    Used from the event loop only. A request keeps its bytes reserved until it is answered: its
    body stays in memory (buffered, parsed, decoded) that long.
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"the in-flight byte budget must be positive, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self.held_bytes = 0

    def try_reserve(self, n_bytes: int) -> bool:
        if self.held_bytes + n_bytes > self.budget_bytes:
            return False
        self.held_bytes += n_bytes
        return True

    def release(self, n_bytes: int) -> None:
        self.held_bytes -= n_bytes

    def counts(self) -> Mapping[str, float]:
        """The `inflight_bytes` gauge."""
        return {"held": float(self.held_bytes), "budget": float(self.budget_bytes)}


class BodySizeLimit:
    """Answers 413 when a request body is larger than `max_bytes`, and 503 + Retry-After when it
    would take the bodies in flight past `inflight`'s budget.

    A declared Content-Length is checked (and reserved) before any byte is read; otherwise the body
    is read up to the limits (chunked uploads included, reserved as they arrive) and replayed to the
    app, so a too-large body never reaches a route.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        inflight: InflightBytes,
        refusals: RefusalCounts,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.inflight = inflight
        self.refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse_too_large(send, declared)
            return
        reserved = 0
        try:
            if declared is not None:
                if not self.inflight.try_reserve(declared):
                    await self._refuse_over_budget(send)
                    return
                reserved = declared
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body = message.get("body", b"")
                size += len(body)
                if size > self.max_bytes:
                    await self._refuse_too_large(send, size)
                    return
                if size > reserved:  # a chunked body: reserve as it arrives
                    if not self.inflight.try_reserve(size - reserved):
                        await self._refuse_over_budget(send)
                        return
                    reserved = size
                chunks.append(body)
                if not message.get("more_body", False):
                    break
            await self.app(scope, _replay(b"".join(chunks), receive), send)
        finally:
            self.inflight.release(reserved)

    async def _refuse_too_large(self, send: Send, size: int) -> None:
        detail = f"request body of {size} bytes or more exceeds the {self.max_bytes} byte upload limit"
        await send_error(send, 413, "too_large", detail)

    async def _refuse_over_budget(self, send: Send) -> None:
        self.refusals.add(Refusal.INFLIGHT_BYTES)
        detail = (
            f"the service holds {self.inflight.held_bytes} bytes of uploads in flight (budget"
            f" {self.inflight.budget_bytes}); retry after {INFLIGHT_RETRY_AFTER_S:g} s"
        )
        await send_error(send, 503, "busy", detail, (retry_after_header(INFLIGHT_RETRY_AFTER_S),))


def _replay(whole: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body over once, then defers to the connection's."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": whole, "more_body": False}
        return await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers") or []
    for name, value in headers:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return None
            return declared if declared >= 0 else None
    return None
