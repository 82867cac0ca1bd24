"""The response cache's rows in Postgres (`CachePersistence`), shared by every instance.

Same rows as SQLite's (`storage.cache_store`), same batching. A block is written at once and is
a row any instance reads (`load`, `blocked_since`); entries one instance stored are read by
another with `entry` (exact key) or `scoped` (one context fingerprint, for the semantic tier:
no vector extension, the scope keeps the scan small; `devtools/pg_scoped_scan.py` measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from engine.cache.persistence import LoadedCache, StoredEntry

from .cache_store import (
    BLOCKED_PREFIX,
    BLOCKED_VERSION,
    COLUMNS,
    BufferedCacheStore,
    entry_from_row,
    entry_row,
)
from .postgres import Conn, PostgresStore

__all__ = ["PostgresCacheStore"]

_VALUES = ", ".join(["%s"] * 11)
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS.replace(" ", "").split(",")[1:])


class PostgresCacheStore(BufferedCacheStore):
    shared = True  # every instance's rows: TwoTierCache follows the blocks others write

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

    async def entry(self, key: str) -> StoredEntry | None:
        row = await self.store._one(
            "cache entry", f"SELECT {COLUMNS} FROM cache_entries WHERE key = %s", [key]
        )
        return entry_from_row(row) if row else None

    async def scoped(self, version: str, fingerprint: str) -> list[StoredEntry]:
        rows = await self.store._all(
            "cache scope",
            f"SELECT {COLUMNS} FROM cache_entries WHERE version = %s AND fingerprint = %s",
            [version, fingerprint],
        )
        return [entry_from_row(r) for r in rows]

    async def blocked_since(self, since: float) -> list[tuple[str, float]]:
        rows = await self.store._all(
            "blocked_since",
            "SELECT key, created_at FROM cache_entries WHERE version = %s AND created_at >= %s "
            "ORDER BY created_at",
            [BLOCKED_VERSION, since],
        )
        return [(k.removeprefix(BLOCKED_PREFIX), float(at)) for k, at in rows]

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
