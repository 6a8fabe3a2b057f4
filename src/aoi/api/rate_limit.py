"""Per-API-key token buckets: each key may write `rate_per_s` requests a second, `burst` at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """`tokens` left as of `updated_s` (a monotonic clock reading); refills at the limiter's rate."""

    tokens: float
    updated_s: float


class KeyRateLimiter:
    """Token buckets by API key id. Only authenticated keys get a bucket, so there is one per key in
    the key store at most. Used from the event loop only (no lock)."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate_per_s > 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate_per_s > 0 and burst >= 1, got {rate_per_s} and {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[int, TokenBucket] = {}

    def take(self, key_id: int) -> float:
        """Spend one token of `key_id`: 0.0 when there was one, else the seconds until there is one
        (nothing is spent then)."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated_s) * self.rate_per_s)
        bucket.updated_s = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s
