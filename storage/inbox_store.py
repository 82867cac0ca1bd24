"""The Slack inbox in SQLite (table `inbox`, migrations v4, v5 and v7), an adapter for the
bot's `engine.inbox.InboxStore` port.

It shares `SqliteStore`'s connection and single worker thread, so inbox writes are serialised
with the engine's turn commits and nothing blocks the event loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.inbox import InboxItem, State
from engine.model import Suggestion

from .sqlite import SqliteStore

COLUMNS = (
    'id, team, channel, thread_ts, ts, "user", text, payload, state, attempts, received_at, '
    "reply_ts, suggestion_id, error, lease_owner, lease_until"
)
# Slack ts strings compare as text: ten digits, a dot, six digits (until the year 2286);
# as floats they would not, microseconds need more digits than a double keeps.
EARLIER_PENDING = (
    "SELECT COUNT(*) FROM inbox WHERE team = %s AND channel = %s AND thread_ts = %s "
    "AND state = 'pending' AND ts < %s"
)


def earlier_args(item: InboxItem) -> list[str]:
    return [item.team, item.channel, item.thread_ts, item.ts]


class SqliteInboxStore:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def add(self, item: InboxItem) -> bool:
        def inbox_add() -> bool:
            db = self.store.db
            with db.conn:
                cursor = db.execute(
                    'INSERT OR IGNORE INTO inbox(id, team, channel, thread_ts, ts, "user", text, '
                    "payload, state, attempts, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
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
            return cursor.rowcount > 0

        return await self.store.run(inbox_add)

    async def start_attempt(self, item_id: str) -> int:
        def start_attempt() -> int:
            db = self.store.db
            with db.conn:
                db.execute("UPDATE inbox SET attempts = attempts + 1 WHERE id = ?", [item_id])
            row = db.execute("SELECT attempts FROM inbox WHERE id = ?", [item_id]).fetchone()
            return int(row[0]) if row else 0

        return await self.store.run(start_attempt)

    async def claim(self, item_id: str, owner: str, lease_s: float) -> InboxItem | None:
        def claim() -> InboxItem | None:
            db = self.store.db
            now = time.time()
            with db.conn:
                cursor = db.execute(
                    "UPDATE inbox SET lease_owner = ?, lease_until = ? WHERE id = ? "
                    "AND state = 'pending' AND (lease_owner IS NULL OR lease_owner = ? "
                    "OR lease_until IS NULL OR lease_until < ?)",
                    [owner, now + lease_s, item_id, owner, now],
                )
            if not cursor.rowcount:
                return None
            row = db.execute(f"SELECT {COLUMNS} FROM inbox WHERE id = ?", [item_id]).fetchone()
            return item_from_row(row) if row else None

        return await self.store.run(claim)

    async def renew(self, item_id: str, owner: str, lease_s: float) -> bool:
        def renew() -> bool:
            db = self.store.db
            with db.conn:
                cursor = db.execute(
                    "UPDATE inbox SET lease_until = ? WHERE id = ? AND lease_owner = ? "
                    "AND state = 'pending'",
                    [time.time() + lease_s, item_id, owner],
                )
            return cursor.rowcount > 0

        return await self.store.run(renew)

    async def release(self, item_id: str, owner: str) -> None:
        def release() -> None:
            db = self.store.db
            with db.conn:
                db.execute(
                    "UPDATE inbox SET lease_owner = NULL, lease_until = NULL "
                    "WHERE id = ? AND lease_owner = ?",
                    [item_id, owner],
                )

        await self.store.run(release)

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
        def read() -> InboxItem | None:
            row = self.store.db.execute(
                f"SELECT {COLUMNS} FROM inbox WHERE id = ?", [item_id]
            ).fetchone()
            return item_from_row(row) if row else None

        return await self.store.run(read)

    async def unfinished(self, limit: int = 500) -> Sequence[InboxItem]:
        def read() -> list[InboxItem]:
            rows = self.store.db.execute(
                f"SELECT {COLUMNS} FROM inbox WHERE state = 'pending' ORDER BY received_at LIMIT ?",
                [limit],
            ).fetchall()
            return [item_from_row(row) for row in rows]

        return await self.store.run(read)

    async def thread_known(self, team: str, channel: str, thread_ts: str) -> bool:
        def read() -> bool:
            row = self.store.db.execute(
                "SELECT 1 FROM inbox WHERE team = ? AND channel = ? AND thread_ts = ? "
                "AND state != 'failed' LIMIT 1",
                [team, channel, thread_ts],
            ).fetchone()
            return row is not None

        return await self.store.run(read)

    async def earlier_pending(self, item: InboxItem) -> int:
        def read() -> int:
            row = self.store.db.execute(EARLIER_PENDING.replace("%s", "?"), earlier_args(item))
            return int(row.fetchone()[0])

        return await self.store.run(read)

    async def suggestion(self, suggestion_id: str) -> Suggestion | None:
        return await self.store.suggestion(suggestion_id)

    async def prune(self, older_than: float) -> int:
        def inbox_prune() -> int:
            db = self.store.db
            with db.conn:
                cursor = db.execute(
                    "DELETE FROM inbox WHERE state != 'pending' AND received_at < ?", [older_than]
                )
            return cursor.rowcount

        return await self.store.run(inbox_prune)

    async def writable(self) -> bool:
        """Take the write lock and let it go: proves the file is open and writable."""

        def probe() -> bool:
            conn = self.store.db.conn
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True

        try:
            return await self.store.run(probe)
        except Exception:
            return False

    async def counts(self) -> Mapping[str, int]:
        def read() -> dict[str, int]:
            rows = self.store.db.execute(
                "SELECT state, COUNT(*) FROM inbox GROUP BY state"
            ).fetchall()
            return {state: int(n) for state, n in rows}

        return await self.store.run(read)

    async def _update(self, item_id: str, **changes: Any) -> None:
        def inbox_update() -> None:
            db = self.store.db
            columns = ", ".join(f"{name} = ?" for name in changes)
            with db.conn:
                db.execute(f"UPDATE inbox SET {columns} WHERE id = ?", [*changes.values(), item_id])

        await self.store.run(inbox_update)


def item_from_row(row: Sequence[Any]) -> InboxItem:
    (
        item_id,
        team,
        channel,
        thread_ts,
        ts,
        user,
        text,
        payload,
        state,
        attempts,
        received_at,
        reply_ts,
        suggestion_id,
        error,
        lease_owner,
        lease_until,
    ) = row
    return InboxItem(
        id=item_id,
        team=team,
        channel=channel,
        thread_ts=thread_ts,
        ts=ts,
        user=user or "",
        text=text or "",
        payload=json.loads(payload) if payload else {},
        state=state,
        attempts=attempts or 0,
        received_at=received_at or 0.0,
        reply_ts=reply_ts or None,
        suggestion_id=suggestion_id or None,
        error=error or None,
        lease_owner=lease_owner or None,
        lease_until=float(lease_until) if lease_until is not None else None,
    )
