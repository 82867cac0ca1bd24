"""One rate budget per workspace for the Slack methods a streamed reply spends.

Slack limits each method per workspace and app, in tiers of calls per minute with short bursts
allowed. The streaming methods sit low: `chat.stopStream` is Tier 2 (about 20 a minute) and
`chat.startStream` is treated the same, `chat.appendStream` as Tier 4 (about 100 a minute).
Every turn in a workspace draws on the same buckets, so a busy workspace falls back to one
post and one update (Tier 3 `chat.update`, and `chat.postMessage`'s own allowance) before
Slack starts answering `ratelimited`. A `ratelimited` answer empties the method's bucket for
its Retry-After.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

STREAM_LIMITS: Mapping[str, int] = MappingProxyType(
    {"chat.startStream": 20, "chat.appendStream": 100, "chat.stopStream": 20}
)


class _Bucket:
    __slots__ = ("at", "per_s", "size", "tokens")

    def __init__(self, per_minute: int, now: float) -> None:
        self.size = float(per_minute)  # a minute's worth may go at once: Slack allows bursts
        self.per_s = per_minute / 60.0
        self.tokens = self.size
        self.at = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.per_s)
        self.at = now


class RateBudget:
    """Token buckets per (workspace, method); a method with no limit is always allowed."""

    def __init__(
        self,
        limits: Mapping[str, int] = STREAM_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits)
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, team: str, *methods: str) -> bool:
        """Spend one call of each method, all or none: a stream that can start can stop."""
        now = self.clock()
        buckets = [b for b in (self._bucket(team, m, now) for m in methods) if b is not None]
        if any(b.tokens < 1.0 for b in buckets):
            return False
        for b in buckets:
            b.tokens -= 1.0
        return True

    def exhausted(self, team: str, method: str, retry_after: float) -> None:
        """Slack said `ratelimited`: nothing more of `method` until Retry-After has passed."""
        now = self.clock()
        bucket = self._bucket(team, method, now)
        if bucket is not None:
            bucket.tokens = -retry_after * bucket.per_s

    def _bucket(self, team: str, method: str, now: float) -> _Bucket | None:
        limit = self.limits.get(method)
        if limit is None:
            return None
        bucket = self._buckets.get((team, method))
        if bucket is None:
            bucket = self._buckets[(team, method)] = _Bucket(limit, now)
        bucket.refill(now)
        return bucket
