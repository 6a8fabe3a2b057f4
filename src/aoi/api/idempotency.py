"""`Idempotency-Key` on the upload endpoints: a client whose request timed out retries it safely.

A retry with the same key (from the same API key) and the same request gets the first answer (200,
`Idempotent-Replayed: true`) and stores nothing new; the same key with a different request gets 409.
Two concurrent requests with one key store once: the key is claimed in the transaction that stores
(`aoi.storage.idempotency`), and the one that loses the race answers with the winner's result.
A request that failed stored nothing and claimed nothing: its retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TypeVar

from aoi.api.errors import ApiError
from aoi.storage import Storage
from aoi.storage.idempotency import IdempotencyClaim, IdempotencyKeyTaken, find_claim
from aoi.storage.models import IDEMPOTENCY_KEY_MAX_CHARS

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_PRINTABLE = re.compile(r"[\x20-\x7e]+")  # printable ASCII: what every client can send and log

T = TypeVar("T")


def parse_key(raw: str | None) -> str | None:
    """The header's key, or None without the header; 422 unless 1 to 255 printable ASCII characters."""
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_CHARS or _PRINTABLE.fullmatch(key) is None:
        shown = f"{len(key)} characters" if len(key) > IDEMPOTENCY_KEY_MAX_CHARS else repr(key[:40])
        raise ApiError(
            422,
            "invalid_idempotency_key",
            f"{HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII characters (got {shown});"
            " a UUID is a good key",
        )
    return key


def fingerprint(endpoint: str, fields: dict[str, str | float | bytes | None]) -> str:
    """The sha256 of a request as parsed (endpoint and form fields; files by their own sha256), so a
    retry matches whatever multipart boundary its client chose."""
    canonical = {
        name: hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else value
        for name, value in sorted(fields.items())
    }
    text = json.dumps({"endpoint": endpoint, "fields": canonical}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def claim_for(
    key: str | None, owner: str, endpoint: str, fields: dict[str, str | float | bytes | None]
) -> IdempotencyClaim | None:
    return None if key is None else IdempotencyClaim(owner, key, fingerprint(endpoint, fields))


def run_once(
    storage: Storage,
    claim: IdempotencyClaim | None,
    resource: str,
    write: Callable[[IdempotencyClaim | None], T],
    load: Callable[[str], T],
) -> tuple[T, bool]:
    """(what `write` created, False), or (what the key's first request created, True) for a retry.

    `write` must store the claim in its own transaction and raise IdempotencyKeyTaken when a
    concurrent request committed the key first; `load` fetches a `resource` by id.
    """
    if claim is None:
        return write(None), False
    replay = _replay(storage, claim, resource, load)
    if replay is not None:
        return replay, True
    try:
        return write(claim), False
    except IdempotencyKeyTaken:
        replay = _replay(storage, claim, resource, load)
        if replay is None:  # the winner's row is committed before the loser's insert fails
            raise ApiError(409, "idempotency_conflict", f"{HEADER} {claim.key!r} is in use; retry") from None
        return replay, True


def _replay(storage: Storage, claim: IdempotencyClaim, resource: str, load: Callable[[str], T]) -> T | None:
    with storage.db.session() as session:
        found = find_claim(session, claim.owner, claim.key)
    if found is None:
        return None
    if found.resource != resource or found.request_sha256 != claim.request_sha256:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"{HEADER} {claim.key!r} was already used for a different request (another body or endpoint,"
            f" which created {found.resource} {found.resource_id}); send a new key with a new request",
        )
    return load(found.resource_id)
