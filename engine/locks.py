"""Per-thread locks (the `engine.ports.ThreadLocks` port): a thread's turns run one at a time,
in arrival order.

`LocalThreadLocks` orders them inside one process (asyncio locks are FIFO): the engine's default
and the SQLite store's. `storage.postgres.AdvisoryThreadLocks` puts a Postgres advisory lock
behind it, so turns of one thread are serialised across every instance sharing the database,
while each process still sends only one waiter per thread to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from .model import ThreadKey

__all__ = ["LocalThreadLocks"]


class LocalThreadLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: ThreadKey) -> AsyncIterator[None]:
        k = str(key)
        lock = self._locks.setdefault(k, asyncio.Lock())
        self._waiting[k] = self._waiting.get(k, 0) + 1
        try:
            async with lock:
                yield
        finally:
            # The lock is dropped when nobody waits, so idle threads cost no memory.
            self._waiting[k] -= 1
            if not self._waiting[k]:
                del self._waiting[k], self._locks[k]

    def __len__(self) -> int:
        return len(self._locks)
