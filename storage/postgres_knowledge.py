"""Knowledge chunks in Postgres (table `knowledge_chunks`, Postgres migration v3): the same
rows as SQLite's (`storage.knowledge_store`), so every instance reads one index per team."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from engine.knowledge.store import IndexedFile

from .knowledge_store import COLUMNS, group_rows, rows_of
from .postgres import Conn, PostgresStore

__all__ = ["PostgresKnowledgeStore"]


class PostgresKnowledgeStore:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def indexed_files(self, team: str) -> Sequence[IndexedFile]:
        rows = await self.store._all(
            "knowledge read",
            f"SELECT {COLUMNS} FROM knowledge_chunks WHERE team = %s ORDER BY file, position",
            [team],
        )
        return group_rows(rows)

    async def save_files(
        self, team: str, files: Sequence[IndexedFile], keep: Collection[str]
    ) -> None:
        wanted = sorted(set(keep) | {f.file for f in files})
        replaced = [f.file for f in files]

        async def save(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM knowledge_chunks WHERE team = %s "
                "AND (NOT (file = ANY(%s)) OR file = ANY(%s))",
                [team, wanted, replaced],
            )
            rows = [row for f in files for row in rows_of(team, f)]
            if rows:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        f"INSERT INTO knowledge_chunks(team, {COLUMNS}) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        rows,
                    )

        await self.store.write("knowledge save", save)
