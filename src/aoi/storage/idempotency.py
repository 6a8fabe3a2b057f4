"""Idempotency keys as the database keeps them: claimed in the transaction of the write they guard."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from aoi.storage.models import IdempotencyKeyRow


@dataclass(frozen=True)
class IdempotencyClaim:
    """A write's `Idempotency-Key`: whose it is (the API key), the key, and the request's fingerprint."""

    owner: str
    key: str
    request_sha256: str


@dataclass(frozen=True)
class ClaimedWrite:
    """What a key already stands for: the first request's fingerprint and what it created."""

    request_sha256: str
    resource: str
    resource_id: str


class IdempotencyKeyTaken(Exception):
    """A concurrent request with the same key committed first; nothing of this one was stored."""

    def __init__(self, claim: IdempotencyClaim) -> None:
        super().__init__(f"idempotency key {claim.key!r} was taken by a concurrent request")
        self.claim = claim


def find_claim(session: Session, owner: str, key: str) -> ClaimedWrite | None:
    row = session.get(IdempotencyKeyRow, (owner, key))
    if row is None:
        return None
    return ClaimedWrite(row.request_sha256, row.resource, row.resource_id)


def add_claim(session: Session, claim: IdempotencyClaim, resource: str, resource_id: str) -> None:
    """Claim the key in `session`'s transaction; its commit fails (IntegrityError) if the key is taken."""
    session.add(
        IdempotencyKeyRow(
            owner=claim.owner,
            idempotency_key=claim.key,
            request_sha256=claim.request_sha256,
            resource=resource,
            resource_id=resource_id,
        )
    )
    session.flush()


def claim_exists(session: Session, claim: IdempotencyClaim) -> bool:
    query = select(IdempotencyKeyRow.owner).where(
        IdempotencyKeyRow.owner == claim.owner, IdempotencyKeyRow.idempotency_key == claim.key
    )
    return session.scalar(query) is not None
