"""The durable inbox: every accepted Slack message is written down before its turn starts.

One row per Slack message, keyed `team:channel:ts`, so a redelivered event (same `event_id`,
`x-slack-retry-num` > 0) and the twin events Slack sends for one message (`message` and
`app_mention`) collide on the key and make exactly one turn. A row is `pending` until the reply
is in Slack (`done`) or the turn gives up (`failed`); at start-up pending rows run again. The
row also remembers the reply's `ts` as soon as the first byte of it is in Slack, so a turn that
is run again finishes that message instead of posting a second one.

The bot reaches SQLite only through the `InboxStore` port; `storage.inbox_store` implements it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from engine.model import Suggestion, ThreadKey

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

    @property
    def key(self) -> ThreadKey:
        return ThreadKey(self.team, self.channel, self.thread_ts)

    @staticmethod
    def make_id(team: str, channel: str, ts: str) -> str:
        return f"{team}:{channel}:{ts}"


class InboxStore(Protocol):
    """Where inbox rows live (SQLite in production: `storage.inbox_store.SqliteInboxStore`)."""

    async def add(self, item: InboxItem) -> bool:
        """Insert a pending row; False when a row with this id already exists."""
        ...

    async def start_attempt(self, item_id: str) -> int:
        """Count one more attempt at the turn; returns the number of attempts so far."""
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

    async def suggestion(self, suggestion_id: str) -> Suggestion | None:
        """The stored suggestion a turn already made, to finish the turn without redoing it."""
        ...

    async def prune(self, older_than: float) -> int:
        """Forget finished rows received before `older_than` (epoch seconds)."""
        ...

    async def writable(self) -> bool: ...

    async def counts(self) -> Mapping[str, int]: ...


class Inbox:
    """Inbox rules over a store: dedupe on accept, and which threads the bot is part of."""

    def __init__(self, store: InboxStore, *, remember_threads: int = 10_000) -> None:
        self.store = store
        self._threads: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._remember = remember_threads

    async def accept(self, item: InboxItem) -> bool:
        """Write the message down; False for a duplicate (redelivery, twin event)."""
        if not item.received_at:
            item = replace(item, received_at=time.time())
        added = await self.store.add(item)
        self._engage(item.team, item.channel, item.thread_ts)
        return added

    async def engaged(self, team: str, channel: str, thread_ts: str) -> bool:
        key = (team, channel, thread_ts)
        if key in self._threads:
            self._threads.move_to_end(key)
            return True
        if await self.store.thread_known(team, channel, thread_ts):
            self._engage(team, channel, thread_ts)
            return True
        return False

    def _engage(self, team: str, channel: str, thread_ts: str) -> None:
        self._threads[(team, channel, thread_ts)] = None
        self._threads.move_to_end((team, channel, thread_ts))
        while len(self._threads) > self._remember:
            self._threads.popitem(last=False)
