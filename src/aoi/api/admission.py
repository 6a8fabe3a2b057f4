"""Admission control: who may send a body, how often, and whether the upload line has room for it.

A pure ASGI guard in front of the body limits and the routes. For every write under the API prefix
it checks, before a single body byte is received:

1. the `Authorization: Bearer <key>` header against the key store (401 otherwise), so an anonymous
   client cannot make the service read, buffer or parse anything;
2. the key's token bucket (429 + Retry-After when over its rate);
3. for uploads, the door of the upload line (503 + Retry-After when `concurrency + queue` uploads
   are already admitted), answered at once instead of queueing without bound. Admitted uploads are
   inspected by the inspection line's workers (`aoi.api.upload_line`), the process's one CPU budget.

Scopes stay with the routes' dependencies (`aoi.api.auth`), which also check the key again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from aoi.api.auth import WRITE_NEEDS_KEY, refusal_of
from aoi.api.errors import error_response
from aoi.api.limits import BodySizeLimit, InflightBytes
from aoi.api.models import API_PREFIX
from aoi.api.rate_limit import KeyRateLimiter
from aoi.api.refusals import Refusal, RefusalCounts, retry_after_header, send_error
from aoi.api.routers.deps import Services
from aoi.api.upload_line import RetryLater, UploadLine, UploadLineFull
from aoi.storage import Storage
from aoi.storage.keys import KeyState, hash_token, look_up_api_key

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A revoked key is refused by this guard at most this long after the revocation is committed (the
# route's own check, on every request, refuses it at once; this only bounds reading its body).
KEY_CACHE_TTL_S = 0.5
KEY_CACHE_MAX_ENTRIES = 4096
KEY_LOOKUP_THREADS = 4  # its own threads: uploads waiting for a slot must not delay the key check
KEY_STORE_RETRY_AFTER_S = 1.0

_LOOKUP_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("aoi_key_lookup_limiter")


@dataclass(frozen=True)
class KeyCheck:
    """What the key store says of a token: the id of an active key, or why the token is refused."""

    key_id: int | None
    refusal: str = ""


KeyLookup = Callable[[str], KeyCheck]
"""A token -> its KeyCheck. Synchronous (a database read)."""


def key_store_lookup(storage: Storage) -> KeyLookup:
    """Looks a token up in the service's key store (`api_keys`), with the routes' 401 messages."""

    def lookup(token: str) -> KeyCheck:
        with storage.db.session() as session:
            state, row = look_up_api_key(session, token)
            if state is KeyState.ACTIVE and row is not None:
                return KeyCheck(int(row.id))
            return KeyCheck(None, refusal_of(state, row))

    return lookup


class CachedKeyLookup:
    """`KeyLookup` off the event loop, each answer (found or not) remembered for `ttl_s`."""

    def __init__(self, lookup: KeyLookup, ttl_s: float = KEY_CACHE_TTL_S, clock: Callable[[], float] = time.monotonic):
        self._lookup = lookup
        self.ttl_s = ttl_s
        self._clock = clock
        self._answers: dict[str, tuple[float, KeyCheck]] = {}  # sha256 of the token -> (expires, check)

    async def check(self, token: str) -> KeyCheck:
        digest = hash_token(token)
        asked_at = self._clock()
        cached = self._answers.get(digest)
        if cached is not None and cached[0] > asked_at:
            return cached[1]
        checked = await anyio.to_thread.run_sync(self._lookup, token, limiter=_lookup_limiter())
        if len(self._answers) >= KEY_CACHE_MAX_ENTRIES:
            now = self._clock()
            self._answers = {d: answer for d, answer in self._answers.items() if answer[0] > now}
            if len(self._answers) >= KEY_CACHE_MAX_ENTRIES:  # a flood of distinct tokens: start over
                self._answers.clear()
        self._answers[digest] = (asked_at + self.ttl_s, checked)  # from when asked: never older than ttl_s
        return checked


def _lookup_limiter() -> anyio.CapacityLimiter:
    """The key lookups' thread limiter of the running event loop (one per loop, like anyio's own)."""
    try:
        return _LOOKUP_LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(KEY_LOOKUP_THREADS)
        _LOOKUP_LIMITER.set(limiter)
        return limiter


def bearer_token(scope: Scope) -> tuple[str, str]:
    """(token, "") from `Authorization: Bearer <token>`, or ("", why the header is unusable)."""
    header = ""
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    if not header:
        return "", WRITE_NEEDS_KEY
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "", "the Authorization header must be 'Bearer <api key>'"
    return token.strip(), ""


class AdmissionControl:
    """The guard described in the module docstring. `upload_path`: the POST route whose requests
    take a place in `uploads`; `rate_limiter` None: no per-key rate limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: CachedKeyLookup,
        refusals: RefusalCounts,
        uploads: UploadLine,
        upload_path: str,
        guarded_prefix: str,
        rate_limiter: KeyRateLimiter | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.refusals = refusals
        self.uploads = uploads
        self.upload_path = upload_path
        self.guarded_prefix = guarded_prefix.rstrip("/")
        self.rate_limiter = rate_limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._guards(scope):
            await self.app(scope, receive, send)
            return
        key_id = await self._authenticate(scope, send)
        if key_id is None:
            return
        if self.rate_limiter is not None:
            wait_s = self.rate_limiter.take(key_id)
            if wait_s > 0:
                self.refusals.add(Refusal.RATE_LIMITED)
                await send_error(
                    send,
                    429,
                    "rate_limited",
                    f"API key {key_id} is over its rate limit of {self.rate_limiter.rate_per_s:g} writes/s"
                    f" (burst {self.rate_limiter.burst}); retry after {wait_s:.2f} s",
                    (retry_after_header(wait_s),),
                )
                return
        if scope["method"] != "POST" or scope["path"].rstrip("/") != self.upload_path:
            await self.app(scope, receive, send)
            return
        if not self.uploads.try_admit():
            self.refusals.add(Refusal.LINE_FULL)
            retry_s = self.uploads.retry_after_s()
            await send_error(
                send,
                503,
                "line_full",
                f"{self.uploads.why_full()}; retry after {retry_s:g} s",
                (retry_after_header(retry_s),),
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.uploads.leave()

    def _guards(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope.get("method") not in WRITE_METHODS:
            return False
        path: str = scope["path"]
        return path == self.guarded_prefix or path.startswith(self.guarded_prefix + "/")

    async def _authenticate(self, scope: Scope, send: Send) -> int | None:
        """The key id, or None after answering 401 (or 503 when the key store cannot be read)."""
        token, problem = bearer_token(scope)
        key_id: int | None = None
        if token:
            try:
                checked = await self.keys.check(token)
            except Exception as exc:  # the database is down: the request cannot be authenticated now
                cause = getattr(exc, "orig", None) or exc
                log.warning("API key lookup failed on %s %s: %r", scope["method"], scope["path"], cause)
                self.refusals.add(Refusal.KEY_STORE_DOWN)
                await send_error(
                    send,
                    503,
                    "database_unavailable",
                    f"the API keys cannot be checked: the results database is unavailable ({type(cause).__name__});"
                    " retry the request",
                    (retry_after_header(KEY_STORE_RETRY_AFTER_S),),
                )
                return None
            key_id, problem = checked.key_id, checked.refusal
        if key_id is None:
            self.refusals.add(Refusal.UNAUTHENTICATED_BEFORE_BODY)
            await send_error(send, 401, "unauthorized", problem, ((b"www-authenticate", b"Bearer"),))
        return key_id


def install_admission_control(app: FastAPI, svc: Services) -> None:
    """The guards in front of the routes, outermost first: admission control (key, rate, upload line),
    then the body limits (size, in-flight bytes); and the 503 of an upload the inspection line could not
    take (its inspect queue stayed full for `upload_wait_s`, or it is stopping)."""
    settings = svc.settings
    refusals = RefusalCounts()
    inflight = InflightBytes(settings.inflight_bytes_budget)
    svc.metrics.add_gauge(
        "admission_refused", "Requests refused by admission control since start, by reason.", refusals.snapshot
    )
    svc.metrics.add_gauge("inflight_bytes", "Request body bytes held now, and their budget.", inflight.counts)
    rate_limiter = (
        KeyRateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst) if settings.rate_limit_per_s > 0 else None
    )
    # add_middleware wraps what is there: the last one added runs first
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes, inflight=inflight, refusals=refusals)
    app.add_middleware(
        AdmissionControl,
        keys=CachedKeyLookup(key_store_lookup(svc.storage)),
        refusals=refusals,
        uploads=svc.inspections.uploads,
        upload_path=f"{API_PREFIX}/inspections",
        guarded_prefix=API_PREFIX,
        rate_limiter=rate_limiter,
    )

    async def retry_later(_request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RetryLater):  # registered for RetryLater (and its subclasses) only
            raise exc
        if isinstance(exc, UploadLineFull):
            refusals.add(Refusal.SLOT_WAIT)
        retry_after = str(max(1, math.ceil(exc.retry_after_s)))
        return error_response(exc.status, exc.error, exc.detail, {"Retry-After": retry_after})

    app.add_exception_handler(RetryLater, retry_later)
