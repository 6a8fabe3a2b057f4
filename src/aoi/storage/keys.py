"""API keys: random tokens given to the user once, stored only as their sha256, each with a set of scopes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from aoi.storage.models import ApiKeyRow, utc_now

TOKEN_PREFIX = "aoi_"


class Scope(StrEnum):
    """What a key may write. Reads stay open; `admin` implies every other scope."""

    READ = "read"
    INSPECT = "inspect"
    REVIEW = "review"
    ADMIN = "admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)
# What one key could do before scopes existed (every write); `aoi keys create` without --scopes and
# the keys stored before migration 0004 get this.
DEFAULT_SCOPES: frozenset[Scope] = ALL_SCOPES


class ScopeError(ValueError):
    """A scope list that names no scope or an unknown one."""


def parse_scopes(text: str) -> frozenset[Scope]:
    """`"inspect,review"` -> {INSPECT, REVIEW}; unknown or no names raise ScopeError."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ScopeError(f"no scope given; choose from {format_scopes(ALL_SCOPES)}")
    unknown = [n for n in names if n not in Scope._value2member_map_]
    if unknown:
        raise ScopeError(f"unknown scope(s) {', '.join(unknown)}; choose from {format_scopes(ALL_SCOPES)}")
    return frozenset(Scope(n) for n in names)


def format_scopes(scopes: Iterable[Scope]) -> str:
    """The stored and printed form: comma-separated, in the order of `Scope`."""
    held = set(scopes)
    return ",".join(s.value for s in Scope if s in held)


def grants(scopes: Iterable[Scope], needed: Scope) -> bool:
    held = set(scopes)
    return needed in held or Scope.ADMIN in held


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key: never its token nor its hash."""

    id: int
    name: str
    scopes: frozenset[Scope]
    created_at: datetime
    revoked_at: datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def row_scopes(row: ApiKeyRow) -> frozenset[Scope]:
    """The scopes stored on a row (unknown names, from a newer version, are ignored: they grant nothing)."""
    return frozenset(Scope(n) for n in row.scopes.split(",") if n in Scope._value2member_map_)


def create_api_key(session: Session, label: str = "", scopes: Iterable[Scope] = DEFAULT_SCOPES) -> str:
    """Store a new key's hash and return the token; the token itself is never stored."""
    stored = format_scopes(scopes)
    if not stored:
        raise ScopeError("an API key needs at least one scope")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKeyRow(key_hash=hash_token(token), label=label, scopes=stored))
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


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.label, row_scopes(row), row.created_at, row.revoked_at)


def list_api_keys(session: Session) -> list[ApiKeyInfo]:
    """Every key, revoked ones included, oldest first."""
    return [_info(row) for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]


def revoke_api_key(session: Session, key_id: int) -> ApiKeyInfo | None:
    """Mark key `key_id` revoked (a revoked key keeps its first revocation time); None if there is none."""
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        session.flush()
    return _info(row)
