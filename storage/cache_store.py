"""The response cache in SQLite (table `cache_entries`, migration v3): the adapter for
`engine.cache.persistence.CachePersistence`.

It shares `SqliteStore`'s connection and single worker thread, as the inbox does, so cache
writes are serialised with turn commits and never block the event loop.

Rows are cache entries (the suggestion as JSON, the message, its vector as float32 bytes) and
tombstones: an answer that got negative feedback is kept as a row with version `blocked` and key
`blocked:<answer digest>`, so the blocklist survives restarts and version changes without a
table of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.cache.persistence import LoadedCache, StoredEntry

from .sqlite import SqliteStore

__all__ = ["BLOCKED_VERSION", "SqliteCacheStore"]

BLOCKED_VERSION = "blocked"
_BLOCKED_PREFIX = "blocked:"
_COLUMNS = (
    "key, fingerprint, version, text, embedder, vector, suggestion_id, body, created_at, "
    "used_at, hits"
)


class SqliteCacheStore:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def load(self, version: str, not_before: float) -> LoadedCache:
        def load() -> LoadedCache:
            db = self.store.db
            with db.conn:
                dropped = db.execute(
                    "DELETE FROM cache_entries WHERE version != ? AND version != ? "
                    "OR (version = ? AND created_at < ?)",
                    [version, BLOCKED_VERSION, version, not_before],
                ).rowcount
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM cache_entries WHERE version = ? ORDER BY used_at, key",
                [version],
            ).fetchall()
            blocked = [
                row[0].removeprefix(_BLOCKED_PREFIX)
                for row in db.execute(
                    "SELECT key FROM cache_entries WHERE version = ?", [BLOCKED_VERSION]
                )
            ]
            entries = [
                StoredEntry(
                    key=r[0],
                    fingerprint=r[1],
                    version=r[2],
                    text=r[3],
                    embedder=r[4],
                    vector=bytes(r[5]) if r[5] is not None else None,
                    suggestion_id=r[6],
                    body=r[7],
                    created_at=float(r[8]),
                    used_at=float(r[9]),
                    hits=int(r[10] or 0),
                )
                for r in rows
            ]
            return LoadedCache(entries=entries, blocked=blocked, dropped=dropped)

        return await self.store._run(load)

    async def save(self, entry: StoredEntry) -> None:
        def save() -> None:
            db = self.store.db
            with db.conn:
                db.execute(
                    f"INSERT OR REPLACE INTO cache_entries({_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        entry.key,
                        entry.fingerprint,
                        entry.version,
                        entry.text,
                        entry.embedder,
                        entry.vector,
                        entry.suggestion_id,
                        entry.body,
                        entry.created_at,
                        entry.used_at,
                        entry.hits,
                    ],
                )

        await self.store._run(save)

    async def delete(self, keys: Sequence[str]) -> None:
        def delete() -> None:
            db = self.store.db
            with db.conn:
                db.conn.executemany("DELETE FROM cache_entries WHERE key = ?", [(k,) for k in keys])

        await self.store._run(delete)

    async def touch(self, key: str, used_at: float, hits: int) -> None:
        def touch() -> None:
            db = self.store.db
            with db.conn:
                db.execute(
                    "UPDATE cache_entries SET used_at = ?, hits = ? WHERE key = ?",
                    [used_at, hits, key],
                )

        await self.store._run(touch)

    async def block(self, answer: str, suggestion_id: str, at: float) -> None:
        def block() -> None:
            db = self.store.db
            with db.conn:
                db.execute(
                    f"INSERT OR IGNORE INTO cache_entries({_COLUMNS}) "
                    "VALUES (?, '', ?, '', NULL, NULL, ?, '', ?, ?, 0)",
                    [_BLOCKED_PREFIX + answer, BLOCKED_VERSION, suggestion_id, at, at],
                )

        await self.store._run(block)
