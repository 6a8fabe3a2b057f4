"""Bearer API keys: every write checked against the key's scopes, and every read of stored data too.

Reads need a key with the `read` scope unless the operator opened them (`ServiceSettings.open_reads`,
`aoi serve --open-reads`; `aoi serve --demo` opens them by default). `/health`, `/metrics`, the API docs
and the dashboard's own files stay open: they hold no inspection data. A missing, unknown, revoked or
expired key is a 401; a valid key without the scope the request needs is a 403. Keys are looked up in
the database on every request, so a revocation holds from the next request on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aoi.api.errors import ApiError
from aoi.storage.keys import (
    KeyState,
    Scope,
    as_utc,
    find_api_key,
    format_scopes,
    grants,
    look_up_api_key,
    row_scopes,
)
from aoi.storage.models import ApiKeyRow

__all__ = [
    "API_KEY_SCHEME",
    "READ_RESPONSES",
    "WriteKey",
    "find_api_key",
    "require_read_key",
    "require_scope",
    "require_write_key",
    "require_write_key_owner",
]

# Declared in OpenAPI as `ApiKey` (HTTP bearer) on every endpoint that depends on require_scope /
# require_write_key* / require_read_key, so /docs shows the lock and its "Authorize" box.
# auto_error=False: the header is checked below, with 401s that say what is wrong.
API_KEY_SCHEME = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="API key",
    description=(
        "A key from `aoi keys create`, sent as `Authorization: Bearer <api key>`. Needed for every write, with"
        " the write's scope: inspect (POST /inspections), review (POST /defects/{id}/review), admin"
        " (POST /products; admin implies every scope); and for every read of stored data with the read scope,"
        " unless the service runs with --open-reads (or --demo)."
    ),
    auto_error=False,
)

WRITE_NEEDS_KEY = "this request writes data and needs 'Authorization: Bearer <api key>'"
READ_NEEDS_KEY = (
    "this request reads stored data and needs 'Authorization: Bearer <api key>' with a key that has the"
    " 'read' scope (the service was started without --open-reads)"
)

# The documented refusals of a read (the routes' `responses=`).
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no API key, or an unknown, revoked or expired one (reads are not open)"},
    403: {"description": "the API key lacks the read scope"},
}


@dataclass(frozen=True)
class WriteKey:
    """The API key of a request (a write's, or a closed read's): `owner` scopes its idempotency keys,
    `label` names the reviewer."""

    id: int
    label: str
    scopes: frozenset[Scope] = frozenset(Scope)

    @property
    def owner(self) -> str:
        return f"api-key-{self.id}"


def _authenticate(request: Request, missing: str) -> WriteKey:
    """The request's active API key; a 401 saying what is wrong otherwise (`missing`: without a header)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "unauthorized", missing)
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <api key>'")
    storage = request.app.state.services.storage
    with storage.db.session() as session:
        state, row = look_up_api_key(session, token.strip())
        if state is not KeyState.ACTIVE or row is None:
            raise ApiError(401, "unauthorized", refusal_of(state, row))
        return WriteKey(row.id, row.label or f"key-{row.id}", row_scopes(row))


def refusal_of(state: KeyState, row: ApiKeyRow | None) -> str:
    """What a 401 says about a key that is not active (the routes and the admission layer say the same)."""
    if state is KeyState.EXPIRED and row is not None and row.expires_at is not None:
        when = as_utc(row.expires_at).isoformat(timespec="seconds")
        return f"the API key (id {row.id}) expired at {when}; create a new one with `aoi keys create`"
    return "the API key is not valid (unknown or revoked)"


def _check_scope(key: WriteKey, needed: Scope) -> WriteKey:
    """`key` if it holds `needed` (or admin); a 403 naming its scopes otherwise."""
    if not grants(key.scopes, needed):
        held = format_scopes(key.scopes) or "none"
        raise ApiError(
            403,
            "forbidden",
            f"this API key (id {key.id}) lacks the '{needed.value}' scope this request needs;"
            f" its scopes: {held}. Create a key with `aoi keys create --scopes {needed.value}`.",
        )
    return key


def require_write_key_owner(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(API_KEY_SCHEME)] = None,
) -> WriteKey:
    """FastAPI dependency: the writing API key, or 401 before anything is written."""
    return _authenticate(request, WRITE_NEEDS_KEY)


def require_scope(needed: Scope) -> Callable[[WriteKey], WriteKey]:
    """A FastAPI dependency: the writing key if it holds `needed` (or admin); 401 without a valid key,
    403 with a valid key that lacks the scope."""

    def dependency(key: Annotated[WriteKey, Depends(require_write_key_owner)]) -> WriteKey:
        return _check_scope(key, needed)

    dependency.__name__ = f"require_{needed.value}_scope"
    return dependency


def require_write_key(key: Annotated[WriteKey, Depends(require_write_key_owner)]) -> str:
    """FastAPI dependency: the key's label, or 401 before anything is written (no scope check)."""
    return key.label


def require_read_key(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(API_KEY_SCHEME)] = None,
) -> WriteKey | None:
    """FastAPI dependency of every read of stored data: None when reads are open (a key sent anyway is
    not looked at), else the reading key if it holds `read` (or admin); 401 / 403 otherwise."""
    if request.app.state.services.settings.open_reads:
        return None
    return _check_scope(_authenticate(request, READ_NEEDS_KEY), Scope.READ)
