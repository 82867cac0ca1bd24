"""The response cache's rows in Postgres (`CachePersistence`), shared by every instance.

Same rows as SQLite's (`storage.cache_store`), same batching. A block is written at once. Every
instance polls `changes_since`: one query, on the (version, created_at) index, returns the
entries of its version and the blocks written since a time, less the keys the caller already
has, so a poll that finds nothing new sends back nothing but a few blocks. The semantic tier
needs no vector extension: each instance scores the vectors it followed in memory, scoped by
context fingerprint (`engine.cache.semantic`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from engine.cache.persistence import Changes, LoadedCache, StoredEntry

from .cache_store import (
    BLOCKED_PREFIX,
    BLOCKED_VERSION,
    COLUMNS,
    BufferedCacheStore,
    changes_from_rows,
    entry_from_row,
    entry_row,
)
from .postgres import Conn, PostgresStore

__all__ = ["PostgresCacheStore"]

_VALUES = ", ".join(["%s"] * 11)
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS.replace(" ", "").split(",")[1:])


class PostgresCacheStore(BufferedCacheStore):
    shared = True  # every instance's rows: TwoTierCache follows what the others write

    def __init__(self, store: PostgresStore, *, flush_after_s: float = 0.25) -> None:
        super().__init__(flush_after_s=flush_after_s)
        self.store = store

    async def load(self, version: str, not_before: float) -> LoadedCache:
        async def read_cache(conn: Conn) -> LoadedCache:
            cur = await conn.execute(
                f"SELECT {COLUMNS} FROM cache_entries WHERE version = %s AND created_at >= %s "
                "ORDER BY used_at, key",
                [version, not_before],
            )
            entries = [entry_from_row(r) for r in await cur.fetchall()]
            cur = await conn.execute(
                "SELECT key FROM cache_entries WHERE version = %s", [BLOCKED_VERSION]
            )
            blocked = [r[0].removeprefix(BLOCKED_PREFIX) for r in await cur.fetchall()]
            return LoadedCache(entries=entries, blocked=blocked, dropped=0)

        async def drop_stale(conn: Conn) -> int:
            cur = await conn.execute(
                "DELETE FROM cache_entries WHERE version != %s AND version != %s "
                "OR (version = %s AND created_at < %s)",
                [version, BLOCKED_VERSION, version, not_before],
            )
            return cur.rowcount

        loaded = await self.store.read("cache load", read_cache)
        dropped = await self._housekeeping(self.store.read("cache cleanup", drop_stale))
        return replace(loaded, dropped=dropped)

    async def changes_since(self, version: str, since: float, known: Collection[str]) -> Changes:
        rows = await self.store._all(
            "cache changes",
            f"SELECT {COLUMNS} FROM cache_entries WHERE (version = %s OR version = %s) "
            "AND created_at >= %s AND NOT (key = ANY(%s::text[])) ORDER BY created_at, key",
            [version, BLOCKED_VERSION, since, list(known)],
        )
        return changes_from_rows(rows)

    async def _write(
        self,
        saves: Sequence[StoredEntry],
        deletes: Sequence[str],
        touches: dict[str, tuple[float, int]],
    ) -> None:
        async def write(conn: Conn) -> None:
            if deletes:
                await conn.execute("DELETE FROM cache_entries WHERE key = ANY(%s)", [list(deletes)])
            async with conn.cursor() as c:
                if saves:
                    # Sorted: two instances flushing overlapping keys lock rows in one order.
                    await c.executemany(
                        f"INSERT INTO cache_entries({COLUMNS}) VALUES ({_VALUES}) "
                        f"ON CONFLICT (key) DO UPDATE SET {_UPDATE}",
                        [entry_row(e) for e in sorted(saves, key=lambda e: e.key)],
                    )
                if touches:
                    await c.executemany(
                        "UPDATE cache_entries SET used_at = %s, hits = %s WHERE key = %s",
                        [(used, hits, key) for key, (used, hits) in sorted(touches.items())],
                    )

        await self.store.write("cache flush", write)

    async def _block(self, answer: str, suggestion_id: str, at: float) -> None:
        async def block(conn: Conn) -> None:
            await conn.execute(
                f"INSERT INTO cache_entries({COLUMNS}) "
                "VALUES (%s, '', %s, '', NULL, NULL, %s, '', %s, %s, 0) "
                "ON CONFLICT (key) DO NOTHING",
                [BLOCKED_PREFIX + answer, BLOCKED_VERSION, suggestion_id, at, at],
            )

        await self.store.read("cache block", block)
