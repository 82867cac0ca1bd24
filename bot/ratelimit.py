"""One rate budget per workspace for the Slack methods a streamed reply spends.

Slack limits each method per workspace and app, in tiers of calls per minute with short bursts
allowed. The streaming methods sit low: `chat.stopStream` is Tier 2 (about 20 a minute) and
`chat.startStream` is treated the same, `chat.appendStream` as Tier 4 (about 100 a minute).
Every turn in a workspace draws on the same buckets, so a busy workspace falls back to one
post and one update (Tier 3 `chat.update`, and `chat.postMessage`'s own allowance) before
Slack starts answering `ratelimited`. A `ratelimited` answer empties the method's bucket for
its Retry-After.

Slack's limits are per app, not per process: with several instances the buckets must be one,
so app.py hands the budget the store's shared buckets (`engine.ratebuckets`; Postgres).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.ratebuckets import LocalBuckets, RateBuckets

STREAM_LIMITS: Mapping[str, int] = MappingProxyType(
    {"chat.startStream": 20, "chat.appendStream": 100, "chat.stopStream": 20}
)


class RateBudget:
    """A bucket per (workspace, method); a method with no limit is always allowed."""

    def __init__(
        self, limits: Mapping[str, int] = STREAM_LIMITS, buckets: RateBuckets | None = None
    ) -> None:
        self.limits = dict(limits)
        self.buckets = buckets if buckets is not None else LocalBuckets()

    async def take(self, team: str, *methods: str) -> bool:
        """Spend one call of each method, all or none: a stream that can start can stop."""
        wanted = {_name(team, m): self.limits[m] for m in methods if m in self.limits}
        return not wanted or await self.buckets.take(wanted)

    async def exhausted(self, team: str, method: str, retry_after: float) -> None:
        """Slack said `ratelimited`: nothing more of `method` until Retry-After has passed."""
        if method in self.limits:
            await self.buckets.empty(_name(team, method), self.limits[method], retry_after)


def _name(team: str, method: str) -> str:
    return f"slack:{team}:{method}"
