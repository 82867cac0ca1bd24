"""The SQLite store: thread context, messages, suggestions, counters and the LLM call log.

All database work runs on one dedicated thread with one connection, so the event loop never
blocks on disk and writes are serialised without lock contention. Another process holding the
write lock (a `sqlite3` shell, a backup) makes an operation wait: SQLite's busy timeout, then
`storage.retry.Backoff` up to `wait_s`, then `engine.errors.StoreUnavailable`.

SQLite is the one-process backend: `thread_lock` orders a thread's turns inside this process
only. Several instances share a Postgres database (`storage.postgres`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlite_utils import Database

from engine.codec import suggestion_from_dict, suggestion_to_dict
from engine.locks import LocalThreadLocks
from engine.model import SlotValue, Suggestion, ThreadContext, ThreadKey, TurnInput
from engine.ports import CallRecord, TurnRecord
from engine.ratebuckets import LocalBuckets

from .migrations import migrate
from .retry import Backoff

if TYPE_CHECKING:
    from .cache_store import SqliteCacheStore
    from .inbox_store import SqliteInboxStore
    from .knowledge_store import SqliteKnowledgeStore

T = TypeVar("T")


class SqliteStore:
    def __init__(self, path: Path | str, *, history_window: int = 6, wait_s: float = 30.0) -> None:
        self.path = Path(path)
        self.history_window = history_window
        self.wait_s = wait_s
        self._backoff = Backoff(_transient, wait_s=wait_s)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._db: Database | None = None
        self._checkpointer: _Checkpointer | None = None
        self.thread_locks = LocalThreadLocks()

    @classmethod
    async def open(
        cls, path: Path | str, *, history_window: int = 6, wait_s: float = 30.0
    ) -> SqliteStore:
        store = cls(path, history_window=history_window, wait_s=wait_s)
        try:
            await store.run(store._connect)
        except BaseException:
            await store.close()  # the worker thread and a half-open connection
            raise
        return store

    def cache_rows(self) -> SqliteCacheStore:
        from .cache_store import SqliteCacheStore

        return SqliteCacheStore(self)

    def rate_buckets(self) -> LocalBuckets:
        return LocalBuckets()  # one process: its own buckets are the workspace's

    def inbox(self) -> SqliteInboxStore:
        from .inbox_store import SqliteInboxStore

        return SqliteInboxStore(self)

    def knowledge_rows(self) -> SqliteKnowledgeStore:
        from .knowledge_store import SqliteKnowledgeStore

        return SqliteKnowledgeStore(self)

    async def close(self) -> None:
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        if self._db is not None:
            await self.run(self._db.conn.close)
            self._db = None
        self._executor.shutdown(wait=True)

    # ContextStore ----------------------------------------------------------------------

    async def load(self, key: ThreadKey) -> ThreadContext:
        return await self.run(self._load, key)

    async def commit_turn(self, turn: TurnInput, suggestion: Suggestion) -> None:
        await self.run(self._commit_turn, turn, suggestion)

    async def reset(self, key: ThreadKey) -> None:
        def reset() -> None:
            with self.db.conn:
                self.db.execute("DELETE FROM slots WHERE thread_key = ?", [str(key)])
                self.db.execute(
                    "UPDATE threads SET last_situation = NULL, reset_at = ? WHERE key = ?",
                    [time.time(), str(key)],
                )

        await self.run(reset)

    async def record_feedback(self, suggestion_id: str, value: int) -> bool:
        def record() -> bool:
            with self.db.conn:
                cursor = self.db.execute(
                    "UPDATE suggestions SET feedback = ? WHERE id = ?", [value, suggestion_id]
                )
            return cursor.rowcount > 0

        return await self.run(record)

    async def suggestion(self, suggestion_id: str) -> Suggestion | None:
        def read() -> Suggestion | None:
            row = self.db.execute(
                "SELECT body FROM suggestions WHERE id = ?", [suggestion_id]
            ).fetchone()
            return suggestion_from_dict(json.loads(row[0])) if row else None

        return await self.run(read)

    async def answer_to(self, message_id: str) -> Suggestion | None:
        def read() -> Suggestion | None:
            row = self.db.execute(
                "SELECT body FROM suggestions WHERE message_id = ? "
                "ORDER BY created_at DESC LIMIT 1",
                [message_id],
            ).fetchone()
            return suggestion_from_dict(json.loads(row[0])) if row else None

        return await self.run(read)

    async def turn_of(self, suggestion_id: str) -> TurnInput | None:
        """The message a suggestion answered, to answer it again."""

        def read() -> TurnInput | None:
            row = self.db.execute(
                "SELECT m.id, m.thread_key, m.author, m.text, m.ts FROM suggestions s "
                "JOIN messages m ON m.id = s.message_id WHERE s.id = ?",
                [suggestion_id],
            ).fetchone()
            if row is None:
                return None
            return TurnInput(
                key=ThreadKey.parse(row[1]),
                text=row[3],
                message_id=row[0],
                author=row[2],
                ts=row[4],
            )

        return await self.run(read)

    async def latest_thread(self, team: str, channel: str, user: str) -> ThreadKey | None:
        prefix = f"{team}/{channel}/"

        def read() -> ThreadKey | None:
            row = self.db.execute(
                # A prefix compare rather than LIKE: ids need no escaping.
                "SELECT thread_key FROM messages WHERE author = ? "
                "AND substr(thread_key, 1, length(?)) = ? ORDER BY created_at DESC LIMIT 1",
                [user, prefix, prefix],
            ).fetchone()
            return ThreadKey.parse(row[0]) if row else None

        return await self.run(read)

    async def recent_turns(self, limit: int) -> Sequence[TurnRecord]:
        def read() -> list[TurnRecord]:
            rows = self.db.execute(
                "SELECT created_at, body, feedback FROM suggestions "
                "ORDER BY created_at DESC LIMIT ?",
                [limit],
            ).fetchall()
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

        return await self.run(read)

    # CallLog ---------------------------------------------------------------------------

    async def log_calls(self, records: Sequence[CallRecord]) -> None:
        def log() -> None:
            with self.db.conn:
                self.db.conn.executemany(
                    "INSERT INTO llm_calls(at, step, provider, model, tier, outcome, ms, "
                    "tokens_in, tokens_out, cost_usd, prompt, response, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

        await self.run(log)

    async def recent_calls(self, limit: int) -> Sequence[CallRecord]:
        def read() -> list[CallRecord]:
            rows = self.db.execute(
                "SELECT at, step, provider, model, tier, outcome, ms, tokens_in, tokens_out, "
                "cost_usd, error FROM llm_calls ORDER BY id DESC LIMIT ?",
                [limit],
            ).fetchall()
            return [replace(CallRecord(*row[:10]), error=row[10] or "") for row in rows]

        return await self.run(read)

    # Worker-thread side ----------------------------------------------------------------

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the store is closed")
        return self._db

    def _connect(self) -> None:
        if self.path.parent != Path(""):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # SQLite waits this long for another process's write lock; `run` then backs off.
        conn.execute(f"PRAGMA busy_timeout = {int(min(5.0, self.wait_s) * 1000)}")
        # WAL checkpoints run on their own thread (below), not inside a turn's commit: an
        # automatic one every ~1,000 pages cost that commit ~1.5 ms, the engine's p99. That
        # thread cannot finish a checkpoint while writes keep coming, and only a finished one
        # lets the WAL start over, so under sustained load the writer still checkpoints at
        # 10,000 pages (40 MB): by then the thread has copied most frames, the rest is cheap.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        # isolation_level=None leaves transactions to us: `with conn` below must BEGIN itself.
        conn.isolation_level = "DEFERRED"
        self._db = Database(conn)
        migrate(self._db)
        self._checkpointer = _Checkpointer(self.path)

    def _load(self, key: ThreadKey) -> ThreadContext:
        k = str(key)
        thread = self.db.execute(
            "SELECT turns, last_situation, reset_at FROM threads WHERE key = ?", [k]
        ).fetchone()
        if thread is None:
            return ThreadContext(key=key)
        slots = {
            row[0]: SlotValue(*row[1:])
            for row in self.db.execute(
                "SELECT name, value, message_id, set_at, previous_value, previous_message_id "
                "FROM slots WHERE thread_key = ? AND value != ''",
                [k],
            )
        }
        history: tuple[str, ...] = ()
        replies: tuple[str, ...] = ()
        if self.history_window:
            since = thread[2] or 0.0
            rows = self.db.execute(
                "SELECT text FROM messages WHERE thread_key = ? AND created_at > ? "
                "ORDER BY created_at DESC LIMIT ?",
                [k, since, self.history_window],
            ).fetchall()
            history = tuple(row[0] for row in reversed(rows))
            bodies = self.db.execute(
                "SELECT body FROM suggestions WHERE thread_key = ? AND created_at > ? "
                "ORDER BY created_at DESC LIMIT ?",
                [k, since, self.history_window],
            ).fetchall()
            replies = tuple(json.loads(row[0])["reply"] for row in reversed(bodies))
        return ThreadContext(
            key=key,
            slots=slots,
            turns=thread[0],
            last_situation=thread[1],
            history=history,
            replies=replies,
        )

    def _commit_turn(self, turn: TurnInput, suggestion: Suggestion) -> None:
        k = str(turn.key)
        now = time.time()
        with self.db.conn:
            new_message = self.db.execute(
                "INSERT OR IGNORE INTO messages(id, thread_key, author, text, ts, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [turn.message_id, k, turn.author, turn.text, turn.ts, now],
            ).rowcount
            # A message answered again (Regenerate, a retried turn) adds a suggestion only: its
            # slots were merged the first time, and later turns may have changed them since.
            if new_message:
                self._merge(k, turn, suggestion, now)
            # OR IGNORE: a commit tried again after it reached the file keeps one suggestion.
            self.db.execute(
                "INSERT OR IGNORE INTO suggestions(id, thread_key, message_id, created_at, "
                "situation, cache, latency_ms, reconciled, feedback, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                [
                    suggestion.id,
                    k,
                    turn.message_id,
                    now,
                    suggestion.situation,
                    suggestion.cache,
                    suggestion.latency_ms,
                    int(suggestion.reconciled),
                    json.dumps(suggestion_to_dict(suggestion)),
                ],
            )

    def _merge(self, k: str, turn: TurnInput, suggestion: Suggestion, now: float) -> None:
        self.db.execute(
            "INSERT INTO threads(key, turns, last_situation, updated_at) VALUES (?, 1, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET turns = turns + 1, "
            "last_situation = excluded.last_situation, updated_at = excluded.updated_at",
            [k, suggestion.situation, now],
        )
        self.db.conn.executemany(
            "INSERT INTO slots(thread_key, name, value, message_id, set_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(thread_key, name) DO UPDATE SET "
            # A changed value keeps the one it replaces, and its message (the right-hand
            # sides read the row as it was).
            "previous_value = CASE WHEN slots.value IS NOT excluded.value "
            "THEN slots.value ELSE slots.previous_value END, "
            "previous_message_id = CASE WHEN slots.value IS NOT excluded.value "
            "THEN slots.message_id ELSE slots.previous_message_id END, "
            "value = excluded.value, message_id = excluded.message_id, set_at = excluded.set_at",
            [
                (k, name, value, turn.message_id, now)
                for name, value in suggestion.slots_delta.items()
            ],
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the store's one database thread. The cache and inbox stores use it
        too: every statement on this file goes through one connection, in order."""
        loop = asyncio.get_running_loop()

        async def attempt() -> T:
            return await loop.run_in_executor(self._executor, fn, *args)

        # The wait happens on the event loop, between tries, never on the worker thread.
        return await self._backoff.run(getattr(fn, "__name__", "a query"), attempt)


def _transient(exc: BaseException) -> bool:
    """Another connection holds the lock: worth waiting for. Anything else is raised."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    message = str(exc).lower()
    return "locked" in message or "busy" in message


class _Checkpointer:
    """Copies the WAL back into the database file once a second, on its own thread and
    connection (PASSIVE: it never blocks the store's writer), so commits stay short."""

    def __init__(self, path: Path, interval_s: float = 1.0) -> None:
        self.path, self.interval_s = path, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval_s):
                # Busy or gone: the next round tries again.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
