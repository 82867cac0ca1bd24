"""The Postgres store: the shared backend several instances use at once (`DATABASE_URL`).

psycopg 3 rather than asyncpg: one driver gives async, a maintained pool (psycopg_pool) and
binary wheels, and it keeps standard `%s` parameters and the same types as SQLite's rows.

Thread context, messages, suggestions and the LLM call log live here; the inbox is
`storage.postgres_inbox`, the cache rows `storage.postgres_cache`, the schema
`storage.postgres_migrations`. Every operation runs through `storage.retry.Backoff`, so an
unreachable or restarting server makes it wait, then fail with `StoreUnavailable`.

What makes N instances correct here, rather than one process's single writer thread:
- a turn's commit is one transaction that upserts the thread row first: concurrent commits of
  one thread queue on that row lock, and each slot is an upsert of its own row (in name order),
  so no commit overwrites another's slots with a stale copy and none deadlocks;
- `thread_locks` holds a Postgres advisory lock per thread across the whole turn, so turns of a
  thread run in arrival order whichever instance received them;
- commits are idempotent (message and suggestion inserts ignore a row that is there), so a
  commit retried after a connection broke at COMMIT does not count a turn twice.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from engine.codec import suggestion_from_dict, suggestion_to_dict
from engine.locks import LocalThreadLocks
from engine.model import SlotValue, Suggestion, ThreadContext, ThreadKey, TurnInput
from engine.ports import CallRecord, TurnRecord

from .postgres_migrations import migrate
from .retry import Backoff

if TYPE_CHECKING:
    from .postgres_cache import PostgresCacheStore
    from .postgres_inbox import PostgresInboxStore
    from .postgres_knowledge import PostgresKnowledgeStore
    from .postgres_ratebuckets import PostgresRateBuckets

__all__ = ["AdvisoryThreadLocks", "PostgresStore"]

T = TypeVar("T")
Conn = AsyncConnection[Any]
_THREAD_LOCKS = 0x5354  # advisory lock namespace: ('ST', hash of the thread key)


def transient(exc: BaseException) -> bool:
    """Connection lost or refused, no pooled connection in time, a deadlock or serialization
    failure, a server shutting down: worth another try. A bad query or constraint is not."""
    return isinstance(exc, psycopg.OperationalError)


class PostgresStore:
    def __init__(
        self,
        url: str,
        *,
        history_window: int = 6,
        wait_s: float = 30.0,
        pool_size: int = 10,
        lock_connections: int = 64,
    ) -> None:
        self.history_window = history_window
        self.wait_s = wait_s
        self.backoff = Backoff(transient, wait_s=wait_s)
        # A try waits this long for a connection, so a down server shows within the bound.
        get_timeout = max(0.5, min(5.0, wait_s / 4))
        connect = {"autocommit": True, "connect_timeout": max(1, round(get_timeout))}
        # A row or table another session holds locked fails the statement after this long,
        # as SQLite's busy timeout does; the backoff then tries again, up to `wait_s`.
        lock_timeout = f"-c lock_timeout={int(min(5.0, wait_s) * 1000)}"
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={**connect, "options": lock_timeout},
            timeout=get_timeout,
            open=False,
            name="sales-agent",
        )
        # Advisory locks hold a session for a whole turn: their own pool, so turns holding
        # locks can never take every connection their queries need. No lock timeout there:
        # waiting for the thread's previous turn is the point.
        self.lock_pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=0,
            max_size=lock_connections,
            kwargs=connect,
            timeout=get_timeout,
            open=False,
            name="sales-agent-locks",
        )
        self.thread_locks = AdvisoryThreadLocks(self.lock_pool, self.backoff)

    @classmethod
    async def open(
        cls, url: str, *, history_window: int = 6, wait_s: float = 30.0, pool_size: int = 10
    ) -> PostgresStore:
        store = cls(url, history_window=history_window, wait_s=wait_s, pool_size=pool_size)
        await store.pool.open(wait=False)
        await store.lock_pool.open(wait=False)
        try:
            await store.read("migrate", migrate)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        await self.lock_pool.close()
        await self.pool.close()

    def cache_rows(self) -> PostgresCacheStore:
        from .postgres_cache import PostgresCacheStore

        return PostgresCacheStore(self)

    def rate_buckets(self) -> PostgresRateBuckets:
        from .postgres_ratebuckets import PostgresRateBuckets

        return PostgresRateBuckets(self)

    def inbox(self) -> PostgresInboxStore:
        from .postgres_inbox import PostgresInboxStore

        return PostgresInboxStore(self)

    def knowledge_rows(self) -> PostgresKnowledgeStore:
        from .postgres_knowledge import PostgresKnowledgeStore

        return PostgresKnowledgeStore(self)

    # Running queries -------------------------------------------------------------------

    async def read(self, what: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """`fn` on a pooled connection in autocommit: each statement is its own transaction."""

        async def attempt() -> T:
            async with self.pool.connection() as conn:
                return await fn(conn)

        return await self.backoff.run(what, attempt)

    async def write(self, what: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """`fn` in one transaction, retried whole when the database was unavailable."""

        async def attempt() -> T:
            async with self.pool.connection() as conn, conn.transaction():
                return await fn(conn)

        return await self.backoff.run(what, attempt)

    # ContextStore ----------------------------------------------------------------------

    async def load(self, key: ThreadKey) -> ThreadContext:
        k = str(key)

        async def load(conn: Conn) -> ThreadContext:
            cur = await conn.execute(
                "SELECT turns, last_situation, reset_at FROM threads WHERE key = %s", [k]
            )
            thread = await cur.fetchone()
            if thread is None:
                return ThreadContext(key=key)
            cur = await conn.execute(
                "SELECT name, value, message_id, set_at, previous_value, previous_message_id "
                "FROM slots WHERE thread_key = %s AND value <> ''",
                [k],
            )
            slots = {row[0]: SlotValue(*row[1:]) for row in await cur.fetchall()}
            history: tuple[str, ...] = ()
            replies: tuple[str, ...] = ()
            if self.history_window:
                since = thread[2] or 0.0
                cur = await conn.execute(
                    "SELECT text FROM messages WHERE thread_key = %s AND created_at > %s "
                    "ORDER BY created_at DESC LIMIT %s",
                    [k, since, self.history_window],
                )
                history = tuple(row[0] for row in reversed(await cur.fetchall()))
                cur = await conn.execute(
                    "SELECT body FROM suggestions WHERE thread_key = %s AND created_at > %s "
                    "ORDER BY created_at DESC LIMIT %s",
                    [k, since, self.history_window],
                )
                replies = tuple(
                    json.loads(row[0])["reply"] for row in reversed(await cur.fetchall())
                )
            return ThreadContext(
                key=key,
                slots=slots,
                turns=thread[0],
                last_situation=thread[1],
                history=history,
                replies=replies,
            )

        return await self.read("load", load)

    async def commit_turn(self, turn: TurnInput, suggestion: Suggestion) -> None:
        k = str(turn.key)
        body = json.dumps(suggestion_to_dict(suggestion))

        async def commit(conn: Conn) -> None:
            now = time.time()
            cur = await conn.execute(
                "INSERT INTO messages(id, thread_key, author, text, ts, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                [turn.message_id, k, turn.author, turn.text, turn.ts, now],
            )
            # A message answered again (Regenerate, a retried turn) adds a suggestion only: its
            # slots were merged the first time, and later turns may have changed them since.
            if cur.rowcount:
                await conn.execute(
                    "INSERT INTO threads(key, turns, last_situation, updated_at) "
                    "VALUES (%s, 1, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "turns = threads.turns + 1, last_situation = excluded.last_situation, "
                    "updated_at = excluded.updated_at",
                    [k, suggestion.situation, now],
                )
                delta = sorted(suggestion.slots_delta.items())
                if delta:
                    async with conn.cursor() as c:
                        await c.executemany(
                            "INSERT INTO slots(thread_key, name, value, message_id, set_at) "
                            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (thread_key, name) DO "
                            # A changed value keeps the one it replaces, and its message.
                            "UPDATE SET previous_value = CASE WHEN slots.value IS DISTINCT "
                            "FROM excluded.value THEN slots.value ELSE slots.previous_value END, "
                            "previous_message_id = CASE WHEN slots.value IS DISTINCT FROM "
                            "excluded.value THEN slots.message_id "
                            "ELSE slots.previous_message_id END, value = excluded.value, "
                            "message_id = excluded.message_id, set_at = excluded.set_at",
                            [(k, name, value, turn.message_id, now) for name, value in delta],
                        )
            await conn.execute(
                "INSERT INTO suggestions(id, thread_key, message_id, created_at, situation, "
                "cache, latency_ms, reconciled, feedback, body) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, %s) ON CONFLICT (id) DO NOTHING",
                [
                    suggestion.id,
                    k,
                    turn.message_id,
                    now,
                    suggestion.situation,
                    suggestion.cache,
                    suggestion.latency_ms,
                    int(suggestion.reconciled),
                    body,
                ],
            )

        await self.write("commit_turn", commit)

    async def reset(self, key: ThreadKey) -> None:
        async def reset(conn: Conn) -> None:
            await conn.execute("DELETE FROM slots WHERE thread_key = %s", [str(key)])
            await conn.execute(
                "UPDATE threads SET last_situation = NULL, reset_at = %s WHERE key = %s",
                [time.time(), str(key)],
            )

        await self.write("reset", reset)

    async def record_feedback(self, suggestion_id: str, value: int) -> bool:
        async def record(conn: Conn) -> bool:
            cur = await conn.execute(
                "UPDATE suggestions SET feedback = %s WHERE id = %s", [value, suggestion_id]
            )
            return cur.rowcount > 0

        return await self.read("record_feedback", record)

    async def suggestion(self, suggestion_id: str) -> Suggestion | None:
        row = await self._one(
            "suggestion", "SELECT body FROM suggestions WHERE id = %s", [suggestion_id]
        )
        return suggestion_from_dict(json.loads(row[0])) if row else None

    async def answer_to(self, message_id: str) -> Suggestion | None:
        row = await self._one(
            "answer_to",
            "SELECT body FROM suggestions WHERE message_id = %s ORDER BY created_at DESC LIMIT 1",
            [message_id],
        )
        return suggestion_from_dict(json.loads(row[0])) if row else None

    async def turn_of(self, suggestion_id: str) -> TurnInput | None:
        row = await self._one(
            "turn_of",
            "SELECT m.id, m.thread_key, m.author, m.text, m.ts FROM suggestions s "
            "JOIN messages m ON m.id = s.message_id WHERE s.id = %s",
            [suggestion_id],
        )
        if row is None:
            return None
        return TurnInput(
            key=ThreadKey.parse(row[1]), text=row[3], message_id=row[0], author=row[2], ts=row[4]
        )

    async def latest_thread(self, team: str, channel: str, user: str) -> ThreadKey | None:
        prefix = f"{team}/{channel}/"
        row = await self._one(
            "latest_thread",
            # A prefix compare rather than LIKE: ids need no escaping.
            "SELECT thread_key FROM messages WHERE author = %s "
            "AND substr(thread_key, 1, length(%s)) = %s ORDER BY created_at DESC LIMIT 1",
            [user, prefix, prefix],
        )
        return ThreadKey.parse(row[0]) if row else None

    async def recent_turns(self, limit: int) -> Sequence[TurnRecord]:
        rows = await self._all(
            "recent_turns",
            "SELECT created_at, body, feedback FROM suggestions ORDER BY created_at DESC LIMIT %s",
            [limit],
        )
        records = []
        for at, body, feedback in rows:
            s = json.loads(body)
            records.append(
                TurnRecord(
                    at=at,
                    latency_ms=s["latency_ms"],
                    step_ms=s["step_ms"],
                    cache=s["cache"],
                    reconciled=s["reconciled"],
                    triggers=tuple(s["reconcile_triggers"]),
                    situation=s["situation"],
                    feedback=feedback,
                )
            )
        return records

    # CallLog ---------------------------------------------------------------------------

    async def log_calls(self, records: Sequence[CallRecord]) -> None:
        if not records:
            return

        async def log(conn: Conn) -> None:
            async with conn.cursor() as c:
                await c.executemany(
                    "INSERT INTO llm_calls(at, step, provider, model, tier, outcome, ms, "
                    "tokens_in, tokens_out, cost_usd, prompt, response, error) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            r.at,
                            r.step,
                            r.provider,
                            r.model,
                            r.tier,
                            r.outcome,
                            r.ms,
                            r.tokens_in,
                            r.tokens_out,
                            r.cost_usd,
                            r.prompt,
                            r.response,
                            r.error or None,
                        )
                        for r in records
                    ],
                )

        await self.write("log_calls", log)

    async def recent_calls(self, limit: int) -> Sequence[CallRecord]:
        rows = await self._all(
            "recent_calls",
            "SELECT at, step, provider, model, tier, outcome, ms, tokens_in, tokens_out, "
            "cost_usd, error FROM llm_calls ORDER BY id DESC LIMIT %s",
            [limit],
        )
        return [replace(CallRecord(*row[:10]), error=row[10] or "") for row in rows]

    # Helpers ---------------------------------------------------------------------------

    async def _one(self, what: str, query: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        async def one(conn: Conn) -> tuple[Any, ...] | None:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

        return await self.read(what, one)

    async def _all(self, what: str, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async def rows(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        return await self.read(what, rows)


class AdvisoryThreadLocks:
    """One thread's turns, one at a time across every instance: a session advisory lock held
    for the whole turn on a connection of its own. In-process waiters queue on a local lock
    first, so each process has at most one connection waiting per thread. An instance that
    dies loses its session, and with it the lock: nothing to expire."""

    def __init__(self, pool: AsyncConnectionPool[Conn], backoff: Backoff) -> None:
        self.pool = pool
        self.backoff = backoff
        self._local = LocalThreadLocks()

    @contextlib.asynccontextmanager
    async def hold(self, key: ThreadKey) -> AsyncIterator[None]:
        lock_id = _lock_id(key)
        async with self._local.hold(key):
            conn = await self.backoff.run("thread lock", lambda: self._acquire(lock_id))
            try:
                yield
            finally:
                await self._release(conn, lock_id)

    async def _acquire(self, lock_id: int) -> Conn:
        conn = await self.pool.getconn()
        try:
            await conn.execute("SELECT pg_advisory_lock(%s, %s)", [_THREAD_LOCKS, lock_id])
        except BaseException:
            await self._discard(conn)
            raise
        return conn

    async def _release(self, conn: Conn, lock_id: int) -> None:
        try:
            await conn.execute("SELECT pg_advisory_unlock(%s, %s)", [_THREAD_LOCKS, lock_id])
        except BaseException:
            # Unsure whether the lock is still held: closing the session is what frees it.
            await self._discard(conn)
            raise
        await self.pool.putconn(conn)

    async def _discard(self, conn: Conn) -> None:
        with contextlib.suppress(Exception):
            await conn.close()
        await self.pool.putconn(conn)  # a closed connection is dropped, not reused


def _lock_id(key: ThreadKey) -> int:
    """A stable 32-bit id for the thread (two threads sharing one only wait on each other)."""
    return zlib.crc32(str(key).encode("utf-8")) - (1 << 31)
