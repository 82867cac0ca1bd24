"""The inbox port: messages accepted for coaching, written down before their turn starts.

A port like ContextStore: the Slack layer (`bot.inbox.Inbox`) keeps its rows through it, and
`storage.inbox_store.SqliteInboxStore` implements it, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .model import Suggestion, ThreadKey

State = Literal["pending", "done", "failed"]


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: str
    team: str
    channel: str
    thread_ts: str
    ts: str
    user: str
    text: str
    # What the bot needs to run the turn again after a restart: event_id, kind, files...
    payload: Mapping[str, Any] = field(default_factory=dict)
    state: State = "pending"
    attempts: int = 0
    received_at: float = 0.0
    reply_ts: str | None = None
    suggestion_id: str | None = None
    error: str | None = None
    # The worker running the turn and until when (epoch seconds) it holds the row.
    lease_owner: str | None = None
    lease_until: float | None = None

    @property
    def key(self) -> ThreadKey:
        return ThreadKey(self.team, self.channel, self.thread_ts)

    @staticmethod
    def make_id(team: str, channel: str, ts: str) -> str:
        return f"{team}:{channel}:{ts}"


class InboxStore(Protocol):
    """Where inbox rows live: `storage.inbox_store` (SQLite) or `storage.postgres_inbox`."""

    async def add(self, item: InboxItem) -> bool:
        """Insert a pending row; False when a row with this id already exists."""
        ...

    async def start_attempt(self, item_id: str) -> int:
        """Count one more attempt at the turn; returns the number of attempts so far."""
        ...

    async def claim(self, item_id: str, owner: str, lease_s: float) -> InboxItem | None:
        """Lease a pending row to `owner` for `lease_s` seconds: it is free, its lease ran out,
        or `owner` holds it already. The claimed row, or None when another worker holds it (or
        it is finished): exactly one live worker runs a message's turn."""
        ...

    async def renew(self, item_id: str, owner: str, lease_s: float) -> bool:
        """Extend `owner`'s lease from now; False when the lease was lost (taken over)."""
        ...

    async def release(self, item_id: str, owner: str) -> None:
        """Give the row back unfinished (shutdown), so another worker may take it at once."""
        ...

    async def set_reply(self, item_id: str, reply_ts: str) -> None: ...

    async def set_suggestion(self, item_id: str, suggestion_id: str) -> None: ...

    async def finish(
        self,
        item_id: str,
        state: State,
        *,
        reply_ts: str | None = None,
        suggestion_id: str | None = None,
        error: str | None = None,
    ) -> None: ...

    async def get(self, item_id: str) -> InboxItem | None: ...

    async def unfinished(self, limit: int = 500) -> Sequence[InboxItem]:
        """Pending rows, oldest first."""
        ...

    async def thread_known(self, team: str, channel: str, thread_ts: str) -> bool:
        """Has the bot accepted a message in this thread (so it answers there)?"""
        ...

    async def earlier_pending(self, item: InboxItem) -> int:
        """How many of the thread's messages sent before `item` (by Slack ts) are pending."""
        ...

    async def suggestion(self, suggestion_id: str) -> Suggestion | None:
        """The stored suggestion a turn already made, to finish the turn without redoing it."""
        ...

    async def prune(self, older_than: float) -> int:
        """Forget finished rows received before `older_than` (epoch seconds)."""
        ...

    async def writable(self) -> bool: ...

    async def counts(self) -> Mapping[str, int]: ...


class Spool(Protocol):
    """Where an accepted message waits while the inbox cannot take it (its database is down
    or locked past the ack's deadline): a file of this instance's, emptied into the inbox once
    the database is back. Slack only redelivers an unacked event a few times; this keeps it."""

    async def add(self, item: InboxItem) -> None:
        """Keep the message (again, with what changed, if it is there already)."""
        ...

    async def items(self) -> Sequence[InboxItem]:
        """What waits, oldest first."""
        ...

    async def remove(self, item_id: str) -> None: ...
