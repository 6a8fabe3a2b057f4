"""API keys: random tokens given to the user once, stored only as their sha256, each with a set of scopes
and, optionally, a time after which it is refused."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from aoi.storage.models import ApiKeyRow, utc_now

TOKEN_PREFIX = "aoi_"


class Scope(StrEnum):
    """What a key may do: `read` stored data (unless the service opens reads), `inspect` (upload),
    `review` (decide on defects), `admin` (products); `admin` implies every other scope."""

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


class LifetimeError(ValueError):
    """A key lifetime that is not a positive whole number of hours, days or weeks."""


class KeyState(StrEnum):
    """What a presented token is: only an ACTIVE key is let in."""

    ACTIVE = "active"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"


_LIFETIME_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_LIFETIME = timedelta(days=3660)  # ten years: longer is "never", which is the default


def parse_lifetime(text: str) -> timedelta:
    """`"12h"` -> 12 hours, `"30d"` -> 30 days, `"8w"` -> 8 weeks; anything else raises LifetimeError."""
    match = re.fullmatch(r"\s*([0-9]{1,6})\s*([hdw])\s*", text.lower())
    if match is None:
        raise LifetimeError(f"{text!r} is not a lifetime; give a whole number and a unit: 12h, 30d or 8w")
    lifetime = int(match.group(1)) * _LIFETIME_UNITS[match.group(2)]
    if lifetime <= timedelta(0):
        raise LifetimeError(f"{text!r}: a key's lifetime must be positive")
    if lifetime > MAX_LIFETIME:
        raise LifetimeError(f"{text!r} is longer than ten years; leave --expires-in out for a key that never expires")
    return lifetime


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
    expires_at: datetime | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def as_utc(moment: datetime) -> datetime:
    """A stored time, aware and in UTC (SQLite hands back naive UTC, PostgreSQL aware times)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def key_state(row: ApiKeyRow | None, now: datetime | None = None) -> KeyState:
    """Whether the key on `row` may be used at `now` (default: this moment)."""
    if row is None:
        return KeyState.UNKNOWN
    if row.revoked_at is not None:
        return KeyState.REVOKED
    if row.expires_at is not None and as_utc(row.expires_at) <= (now or utc_now()):
        return KeyState.EXPIRED
    return KeyState.ACTIVE


def row_scopes(row: ApiKeyRow) -> frozenset[Scope]:
    """The scopes stored on a row (unknown names, from a newer version, are ignored: they grant nothing)."""
    return frozenset(Scope(n) for n in row.scopes.split(",") if n in Scope._value2member_map_)


def create_api_key(
    session: Session,
    label: str = "",
    scopes: Iterable[Scope] = DEFAULT_SCOPES,
    expires_at: datetime | None = None,
) -> str:
    """Store a new key's hash and return the token; the token itself is never stored.
    `expires_at` None: the key works until it is revoked."""
    stored = format_scopes(scopes)
    if not stored:
        raise ScopeError("an API key needs at least one scope")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expiry = as_utc(expires_at) if expires_at is not None else None
    session.add(ApiKeyRow(key_hash=hash_token(token), label=label, scopes=stored, expires_at=expiry))
    session.flush()
    return token


def look_up_api_key(session: Session, token: str) -> tuple[KeyState, ApiKeyRow | None]:
    """The key row for `token` (None when unknown) and whether it may be used now."""
    if not token:
        return KeyState.UNKNOWN, None
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_token(token)))
    return key_state(row), row


def find_api_key(session: Session, token: str) -> ApiKeyRow | None:
    """The active key row for `token`, or None (unknown, revoked or expired)."""
    state, row = look_up_api_key(session, token)
    return row if state is KeyState.ACTIVE else None


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.label, row_scopes(row), row.created_at, row.revoked_at, row.expires_at)


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
