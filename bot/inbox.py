"""The durable inbox: every accepted Slack message is written down before its turn starts.

One row per Slack message, keyed `team:channel:ts`, so a redelivered event (same `event_id`,
`x-slack-retry-num` > 0) and the twin events Slack sends for one message (`message` and
`app_mention`) collide on the key and make exactly one turn. A row is `pending` until the reply
is in Slack (`done`) or the turn gives up (`failed`); at start-up pending rows run again. The
row also remembers the reply's `ts` as soon as the first byte of it is in Slack, so a turn that
is run again finishes that message instead of posting a second one.

The bot reaches SQLite only through the `engine.inbox.InboxStore` port, which
`storage.inbox_store` implements.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace

from engine.inbox import InboxItem, InboxStore


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
