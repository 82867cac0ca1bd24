"""Token buckets for rate limits that are not ours to set (a Slack workspace's method tiers).

`RateBuckets` is the port: `LocalBuckets` keeps them in this process, which is right for one
instance; `storage.postgres_ratebuckets` keeps them in Postgres, so every instance sharing the
database draws on one budget and together they stay inside the limit, as one process would.

A bucket refills at `per_minute` calls a minute and holds a minute's worth, since the APIs
these model allow short bursts. Named by the caller: one bucket per (workspace, method).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

__all__ = ["LocalBuckets", "RateBuckets"]


class RateBuckets(Protocol):
    async def take(self, limits: Mapping[str, int]) -> bool:
        """One token from each named bucket (name -> calls a minute), all or none."""
        ...

    async def empty(self, name: str, per_minute: int, for_s: float) -> None:
        """Nothing from this bucket for `for_s` seconds: the API said its limit was hit."""
        ...


class _Bucket:
    __slots__ = ("at", "per_s", "size", "tokens")

    def __init__(self, per_minute: int, now: float) -> None:
        self.size = float(per_minute)
        self.per_s = per_minute / 60.0
        self.tokens = self.size
        self.at = now

    def refill(self, now: float) -> float:
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        return self.tokens


class LocalBuckets:
    """The buckets of one process (and the fallback when the shared ones cannot be reached)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    async def take(self, limits: Mapping[str, int]) -> bool:
        now = self.clock()
        buckets = [self._bucket(name, per_minute, now) for name, per_minute in limits.items()]
        if any(b.tokens < 1.0 for b in buckets):
            return False
        for b in buckets:
            b.tokens -= 1.0
        return True

    async def empty(self, name: str, per_minute: int, for_s: float) -> None:
        bucket = self._bucket(name, per_minute, self.clock())
        bucket.tokens = -for_s * bucket.per_s

    def _bucket(self, name: str, per_minute: int, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(per_minute, now)
        bucket.refill(now)
        return bucket
