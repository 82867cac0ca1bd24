"""The spool (`engine.inbox.Spool`): a small SQLite file of one instance's own, holding the
messages it accepted while the inbox's database could not take them.

A separate file on purpose: it must work exactly when the main store does not (a Postgres
outage, or another process holding the SQLite database's write lock). Each call opens the file,
does one statement and closes it, in a worker thread: the spool is used rarely, and briefly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.inbox import InboxItem

__all__ = ["SqliteSpool"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS spool (id TEXT PRIMARY KEY, item TEXT, spooled_at REAL)"


class SqliteSpool:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def add(self, item: InboxItem) -> None:
        row = json.dumps(dataclasses.asdict(item) | {"payload": dict(item.payload)})
        await self._run(
            "INSERT INTO spool(id, item, spooled_at) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET item = excluded.item",
            [item.id, row, time.time()],
        )

    async def items(self) -> Sequence[InboxItem]:
        rows = await self._run("SELECT item FROM spool ORDER BY spooled_at, id", [])
        return [InboxItem(**json.loads(item)) for (item,) in rows]

    async def remove(self, item_id: str) -> None:
        await self._run("DELETE FROM spool WHERE id = ?", [item_id])

    async def _run(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._execute, query, params)

    def _execute(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=5.0)) as db, db:
            db.execute(_SCHEMA)
            return db.execute(query, params).fetchall()
