"""API keys: random tokens given to the user once, stored only as their sha256."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from aoi.storage.models import ApiKeyRow

TOKEN_PREFIX = "aoi_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_key(session: Session, label: str = "") -> str:
    """Store a new key's hash and return the token; the token itself is never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKeyRow(key_hash=hash_token(token), label=label))
    session.flush()
    return token


def find_api_key(session: Session, token: str) -> ApiKeyRow | None:
    """The active key row for `token`, or None (unknown or revoked)."""
    if not token:
        return None
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row
