"""The Slack inbox in Postgres: the `engine.inbox.InboxStore` port for several instances.

The row's primary key makes a message accepted once, whichever instance Slack delivered it to
(and however often). A turn is run by whoever holds the row's lease: `claim` is one UPDATE whose
condition (free, expired or already mine) Postgres re-checks under the row lock, so of two
instances claiming at once exactly one gets the row. Lease times are the server's clock, so
instances whose clocks disagree still agree on when a lease ran out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.inbox import InboxItem, State
from engine.model import Suggestion

from .inbox_store import COLUMNS, EARLIER_PENDING, earlier_args, item_from_row
from .postgres import Conn, PostgresStore

__all__ = ["PostgresInboxStore"]

_NOW = "extract(epoch from clock_timestamp())"


class PostgresInboxStore:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def add(self, item: InboxItem) -> bool:
        async def add(conn: Conn) -> bool:
            cur = await conn.execute(
                'INSERT INTO inbox(id, team, channel, thread_ts, ts, "user", text, payload, '
                "state, attempts, received_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending', 0, %s) "
                "ON CONFLICT (id) DO NOTHING",
                [
                    item.id,
                    item.team,
                    item.channel,
                    item.thread_ts,
                    item.ts,
                    item.user,
                    item.text,
                    json.dumps(dict(item.payload)),
                    item.received_at or time.time(),
                ],
            )
            return cur.rowcount > 0

        return await self.store.read("inbox add", add)

    async def start_attempt(self, item_id: str) -> int:
        row = await self._one(
            "start_attempt",
            "UPDATE inbox SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
            [item_id],
        )
        return int(row[0]) if row else 0

    async def claim(self, item_id: str, owner: str, lease_s: float) -> InboxItem | None:
        row = await self._one(
            "claim",
            f"UPDATE inbox SET lease_owner = %s, lease_until = {_NOW} + %s "
            "WHERE id = %s AND state = 'pending' AND (lease_owner IS NULL OR lease_owner = %s "
            f"OR lease_until IS NULL OR lease_until < {_NOW}) RETURNING {COLUMNS}",
            [owner, lease_s, item_id, owner],
        )
        return item_from_row(row) if row else None

    async def renew(self, item_id: str, owner: str, lease_s: float) -> bool:
        row = await self._one(
            "renew",
            f"UPDATE inbox SET lease_until = {_NOW} + %s "
            "WHERE id = %s AND lease_owner = %s AND state = 'pending' RETURNING 1",
            [lease_s, item_id, owner],
        )
        return row is not None

    async def release(self, item_id: str, owner: str) -> None:
        await self._one(
            "release",
            "UPDATE inbox SET lease_owner = NULL, lease_until = NULL "
            "WHERE id = %s AND lease_owner = %s RETURNING 1",
            [item_id, owner],
        )

    async def set_reply(self, item_id: str, reply_ts: str) -> None:
        await self._update(item_id, reply_ts=reply_ts)

    async def set_suggestion(self, item_id: str, suggestion_id: str) -> None:
        await self._update(item_id, suggestion_id=suggestion_id)

    async def finish(
        self,
        item_id: str,
        state: State,
        *,
        reply_ts: str | None = None,
        suggestion_id: str | None = None,
        error: str | None = None,
    ) -> None:
        changes: dict[str, Any] = {"state": state, "done_at": time.time()}
        if reply_ts is not None:
            changes["reply_ts"] = reply_ts
        if suggestion_id is not None:
            changes["suggestion_id"] = suggestion_id
        if error is not None:
            changes["error"] = error[:500]
        await self._update(item_id, **changes)

    async def get(self, item_id: str) -> InboxItem | None:
        row = await self._one("inbox get", f"SELECT {COLUMNS} FROM inbox WHERE id = %s", [item_id])
        return item_from_row(row) if row else None

    async def unfinished(self, limit: int = 500) -> Sequence[InboxItem]:
        rows = await self._all(
            "unfinished",
            f"SELECT {COLUMNS} FROM inbox WHERE state = 'pending' ORDER BY received_at LIMIT %s",
            [limit],
        )
        return [item_from_row(row) for row in rows]

    async def thread_known(self, team: str, channel: str, thread_ts: str) -> bool:
        row = await self._one(
            "thread_known",
            "SELECT 1 FROM inbox WHERE team = %s AND channel = %s AND thread_ts = %s "
            "AND state != 'failed' LIMIT 1",
            [team, channel, thread_ts],
        )
        return row is not None

    async def earlier_pending(self, item: InboxItem) -> int:
        row = await self._one("earlier_pending", EARLIER_PENDING, earlier_args(item))
        return int(row[0]) if row else 0

    async def suggestion(self, suggestion_id: str) -> Suggestion | None:
        return await self.store.suggestion(suggestion_id)

    async def prune(self, older_than: float) -> int:
        async def prune(conn: Conn) -> int:
            cur = await conn.execute(
                "DELETE FROM inbox WHERE state != 'pending' AND received_at < %s", [older_than]
            )
            return cur.rowcount

        return await self.store.read("prune", prune)

    async def writable(self) -> bool:
        """A primary that answers within two seconds (no backoff: /healthz must be quick)."""
        try:
            async with self.store.pool.connection(timeout=2.0) as conn:
                cur = await conn.execute("SELECT NOT pg_is_in_recovery()")
                row = await cur.fetchone()
            return bool(row and row[0])
        except Exception:
            return False

    async def counts(self) -> Mapping[str, int]:
        rows = await self._all("counts", "SELECT state, COUNT(*) FROM inbox GROUP BY state", [])
        return {state: int(n) for state, n in rows}

    async def _update(self, item_id: str, **changes: Any) -> None:
        columns = ", ".join(f"{name} = %s" for name in changes)

        async def update(conn: Conn) -> None:
            await conn.execute(
                f"UPDATE inbox SET {columns} WHERE id = %s", [*changes.values(), item_id]
            )

        await self.store.read("inbox update", update)

    async def _one(self, what: str, query: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        return await self.store._one(what, query, params)

    async def _all(self, what: str, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self.store._all(what, query, params)
