"""Bearer API keys for every write, each write checked against the key's scopes.

Reads are open (the dashboard on the line network shows them). An unknown or revoked key is a 401;
a valid key without the scope a write needs is a 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aoi.api.errors import ApiError
from aoi.storage.keys import Scope, find_api_key, format_scopes, grants, row_scopes

# Declared in OpenAPI as `ApiKey` (HTTP bearer) on every endpoint that depends on require_scope /
# require_write_key*, so /docs shows the lock and its "Authorize" box. auto_error=False: the header is
# checked below, with 401s that say what is wrong.
API_KEY_SCHEME = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="API key",
    description=(
        "A key from `aoi keys create`, sent as `Authorization: Bearer <api key>`. Needed for every write, with"
        " the write's scope: inspect (POST /inspections), review (POST /defects/{id}/review), admin"
        " (POST /products; admin implies every scope)."
    ),
    auto_error=False,
)


@dataclass(frozen=True)
class WriteKey:
    """The API key of a write: `owner` scopes its idempotency keys, `label` names the reviewer."""

    id: int
    label: str
    scopes: frozenset[Scope] = frozenset(Scope)

    @property
    def owner(self) -> str:
        return f"api-key-{self.id}"


def require_write_key_owner(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(API_KEY_SCHEME)] = None,
) -> WriteKey:
    """FastAPI dependency: the writing API key, or 401 before anything is written."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "unauthorized", "this request writes data and needs 'Authorization: Bearer <api key>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <api key>'")
    storage = request.app.state.services.storage
    with storage.db.session() as session:
        row = find_api_key(session, token.strip())
        if row is None:
            raise ApiError(401, "unauthorized", "the API key is not valid (unknown or revoked)")
        return WriteKey(row.id, row.label or f"key-{row.id}", row_scopes(row))


def require_scope(needed: Scope) -> Callable[[WriteKey], WriteKey]:
    """A FastAPI dependency: the writing key if it holds `needed` (or admin); 401 without a valid key,
    403 with a valid key that lacks the scope."""

    def dependency(key: Annotated[WriteKey, Depends(require_write_key_owner)]) -> WriteKey:
        if not grants(key.scopes, needed):
            held = format_scopes(key.scopes) or "none"
            raise ApiError(
                403,
                "forbidden",
                f"this API key (id {key.id}) lacks the '{needed.value}' scope this request needs;"
                f" its scopes: {held}. Create a key with `aoi keys create --scopes {needed.value}`.",
            )
        return key

    dependency.__name__ = f"require_{needed.value}_scope"
    return dependency


def require_write_key(key: Annotated[WriteKey, Depends(require_write_key_owner)]) -> str:
    """FastAPI dependency: the key's label, or 401 before anything is written (no scope check)."""
    return key.label
