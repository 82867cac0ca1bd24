"""The knowledge index's storage port: each team's indexed files, their chunks and vectors.

Kept small on purpose (two calls), so that every storage backend can implement it. Rows are
keyed by team first: a team's chunks are never read for another team.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .chunk import Chunk

__all__ = ["IndexedFile", "KnowledgeStore"]


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """One file as indexed: its chunks in order and one unit vector per chunk."""

    file: str
    digest: str  # the file's content hash and the embedder that wrote the vectors
    chunks: tuple[Chunk, ...]
    vectors: npt.NDArray[np.float32] | None  # shape (len(chunks), dim); None without embedder


class KnowledgeStore(Protocol):
    async def indexed_files(self, team: str) -> Sequence[IndexedFile]:
        """Everything stored for the team."""
        ...

    async def save_files(
        self, team: str, files: Sequence[IndexedFile], keep: Collection[str]
    ) -> None:
        """Replace these files' rows, and drop the team's files that are in neither `files`
        nor `keep`: one transaction."""
        ...
