"""Bearer API keys for every write. Reads are open (the dashboard on the line network shows them)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from aoi.api.errors import ApiError
from aoi.storage.keys import find_api_key


@dataclass(frozen=True)
class WriteKey:
    """The API key of a write: `owner` scopes its idempotency keys, `label` names the reviewer."""

    id: int
    label: str

    @property
    def owner(self) -> str:
        return f"api-key-{self.id}"


def require_write_key(request: Request) -> str:
    """FastAPI dependency: the key's label (the reviewer by default), or 401 before anything is written."""
    return require_write_key_owner(request).label


def require_write_key_owner(request: Request) -> WriteKey:
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
        return WriteKey(row.id, row.label or f"key-{row.id}")
