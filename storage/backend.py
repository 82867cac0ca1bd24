"""Which backend: `open_store` reads a SQLite path or a `postgresql://` URL and opens the store.

`Store` is what app.py wires: the engine's ContextStore and CallLog, the rows the response cache
and the inbox keep, and per-thread locks. SQLite is the embedded default for one process;
Postgres is the shared backend for several instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from engine.cache.persistence import CachePersistence
from engine.inbox import InboxStore
from engine.knowledge.store import KnowledgeStore
from engine.model import Suggestion, ThreadContext, ThreadKey, TurnInput
from engine.ports import CallRecord, ThreadLocks, TurnRecord
from engine.ratebuckets import RateBuckets

__all__ = ["Store", "is_postgres_url", "open_store"]


class Store(Protocol):
    @property
    def thread_locks(self) -> ThreadLocks: ...

    async def load(self, key: ThreadKey) -> ThreadContext: ...

    async def commit_turn(self, turn: TurnInput, suggestion: Suggestion) -> None: ...

    async def reset(self, key: ThreadKey) -> None: ...

    async def answer_to(self, message_id: str) -> Suggestion | None: ...

    async def turn_of(self, suggestion_id: str) -> TurnInput | None: ...

    async def record_feedback(self, suggestion_id: str, value: int) -> bool: ...

    async def recent_turns(self, limit: int) -> Sequence[TurnRecord]: ...

    async def latest_thread(self, team: str, channel: str, user: str) -> ThreadKey | None: ...

    async def suggestion(self, suggestion_id: str) -> Suggestion | None: ...

    async def log_calls(self, records: Sequence[CallRecord]) -> None: ...

    async def recent_calls(self, limit: int) -> Sequence[CallRecord]: ...

    def cache_rows(self) -> CachePersistence: ...

    def inbox(self) -> InboxStore: ...

    def rate_buckets(self) -> RateBuckets: ...

    def knowledge_rows(self) -> KnowledgeStore: ...

    async def close(self) -> None: ...


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


async def open_store(target: str | Path, *, history_window: int = 6, wait_s: float = 30.0) -> Store:
    """Postgres for a `postgresql://` (or `postgres://`) URL, else the SQLite file at `target`."""
    if is_postgres_url(target):
        from .postgres import PostgresStore

        return await PostgresStore.open(str(target), history_window=history_window, wait_s=wait_s)
    from .sqlite import SqliteStore

    return await SqliteStore.open(target, history_window=history_window, wait_s=wait_s)
