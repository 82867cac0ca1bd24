"""Knowledge chunks in SQLite (table `knowledge_chunks`, migration v8): the adapter for
`engine.knowledge.store.KnowledgeStore`. It shares `SqliteStore`'s connection and thread.
The row shape (`rows`, `indexed`) is shared with the Postgres adapter."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from engine.knowledge.chunk import Chunk
from engine.knowledge.store import IndexedFile

from .sqlite import SqliteStore

__all__ = ["COLUMNS", "SqliteKnowledgeStore", "group_rows", "rows_of"]

COLUMNS = "file, digest, position, heading, title, text, competitor, situations, vector"


class SqliteKnowledgeStore:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def indexed_files(self, team: str) -> Sequence[IndexedFile]:
        def read() -> list[IndexedFile]:
            rows = self.store.db.execute(
                f"SELECT {COLUMNS} FROM knowledge_chunks WHERE team = ? ORDER BY file, position",
                [team],
            ).fetchall()
            return group_rows(rows)

        return await self.store.run(read)

    async def save_files(
        self, team: str, files: Sequence[IndexedFile], keep: Collection[str]
    ) -> None:
        def save() -> None:
            db = self.store.db
            wanted = set(keep) | {f.file for f in files}
            with db.conn:
                stored = {
                    r[0]
                    for r in db.execute(
                        "SELECT DISTINCT file FROM knowledge_chunks WHERE team = ?", [team]
                    )
                }
                for file in (stored - wanted) | {f.file for f in files}:
                    db.execute(
                        "DELETE FROM knowledge_chunks WHERE team = ? AND file = ?", [team, file]
                    )
                db.conn.executemany(
                    f"INSERT INTO knowledge_chunks(team, {COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [row for f in files for row in rows_of(team, f)],
                )

        await self.store.run(save)


def rows_of(team: str, f: IndexedFile) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for i, c in enumerate(f.chunks):
        vector = None if f.vectors is None else f.vectors[i].astype("<f4").tobytes()
        rows.append(
            (
                team,
                f.file,
                f.digest,
                i,
                c.heading,
                c.title,
                c.text,
                c.competitor,
                json.dumps(list(c.situations)),
                vector,
            )
        )
    return rows


def group_rows(rows: Sequence[tuple[Any, ...]]) -> list[IndexedFile]:
    """Rows of COLUMNS, ordered by file and position, as indexed files."""
    by_file: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_file.setdefault(row[0], []).append(row)
    return [_indexed(file, group) for file, group in by_file.items()]


def _indexed(file: str, rows: list[tuple[Any, ...]]) -> IndexedFile:
    chunks = tuple(
        Chunk(
            file=file,
            heading=str(r[3]),
            title=str(r[4]),
            text=str(r[5]),
            competitor=None if r[6] is None else str(r[6]),
            situations=tuple(json.loads(str(r[7]))),
        )
        for r in rows
    )
    blobs = [r[8] for r in rows]
    vectors = None
    if all(isinstance(b, bytes | memoryview) for b in blobs):
        vectors = np.stack([np.frombuffer(bytes(b), dtype="<f4") for b in blobs])
        vectors = vectors.astype(np.float32)
    return IndexedFile(file=file, digest=str(rows[0][1]), chunks=chunks, vectors=vectors)
