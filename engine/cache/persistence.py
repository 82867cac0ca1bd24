"""What the response cache needs from storage (an adapter lives in `storage.cache_store`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["CachePersistence", "Changes", "LoadedCache", "StoredEntry"]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    key: str
    fingerprint: str
    version: str
    text: str
    embedder: str | None
    vector: bytes | None  # float32 little-endian, unit length
    suggestion_id: str
    body: str  # the suggestion as JSON (engine.codec)
    created_at: float
    used_at: float
    hits: int


@dataclass(frozen=True, slots=True)
class LoadedCache:
    entries: Sequence[StoredEntry]  # least recently used first
    blocked: Sequence[str]  # answer digests that got negative feedback
    dropped: int  # rows of another version, or expired, removed while loading


@dataclass(frozen=True, slots=True)
class Changes:
    """What any instance wrote since a time: one poll of a shared database."""

    entries: Sequence[StoredEntry]  # of the version asked for, oldest first
    blocked: Sequence[tuple[str, float]]  # (answer digest, blocked at), oldest first


class CachePersistence(Protocol):
    # Other instances write the same rows (a shared database): the cache follows their new
    # entries and their blocks with `changes_since`.
    shared: bool

    async def load(self, version: str, not_before: float) -> LoadedCache:
        """Live entries of this version; drops other versions and entries created before
        `not_before`; keeps the blocklist whatever the version."""
        ...

    async def save(self, entry: StoredEntry) -> None: ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def touch(self, key: str, used_at: float, hits: int) -> None: ...

    async def block(self, answer: str, suggestion_id: str, at: float) -> None:
        """Remember for good that this answer must never be served again (at once)."""
        ...

    async def changes_since(self, version: str, since: float, known: Collection[str]) -> Changes:
        """In one read: the entries of `version` created at or after `since` whose keys are not
        in `known` (the caller has them already), and every block recorded at or after `since`,
        by any instance."""
        ...

    async def flush(self) -> None:
        """Write whatever saves, deletes and touches are still buffered."""
        ...
