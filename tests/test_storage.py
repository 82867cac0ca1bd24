"""The stores, on both backends (`backend` runs each test on SQLite and on a real Postgres)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from engine.cache.persistence import StoredEntry
from engine.llm.offline import OfflineProvider
from engine.model import Suggestion, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import CallRecord, StepRequest, StepResult
from engine.settings import Settings
from storage import SqliteStore, Store
from storage.cache_store import BufferedCacheStore
from storage.migrations import MIGRATIONS as SQLITE_MIGRATIONS

from .conftest import Backend

KEY = ThreadKey("T1", "C1", "42.0")


def engine_on(store: Store) -> Engine:
    return Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )


async def test_fifty_concurrent_turns_on_one_thread_lose_no_slot(backend: Backend) -> None:
    store = await backend.open()
    eng = engine_on(store)
    vendors = ["Gong", "HubSpot", "Outreach", "Zendesk", "Pipedrive"]
    texts = [
        f"We have {10 + i} reps" if i % 2 else f"We currently use {vendors[i % 5]}"
        for i in range(50)
    ]
    await asyncio.gather(
        *(eng.handle(TurnInput(KEY, t, message_id=f"m{i}")) for i, t in enumerate(texts))
    )
    context = await store.load(KEY)
    assert context.turns == 50
    # Arrival order is kept, so the last writer of each slot is the last message that set it.
    assert context.slots["team_size"].value == "59"
    assert context.slots["team_size"].message_id == "m49"
    assert context.slots["competitor"].value == vendors[48 % 5]
    assert len(await store.recent_turns(100)) == 50
    await store.close()


async def test_restart_keeps_the_context(backend: Backend) -> None:
    store = await backend.open()
    await engine_on(store).handle(
        TurnInput(KEY, "We use Gong, 40 reps, budget is $30k", message_id="m1")
    )
    await store.close()

    reopened = await backend.open()
    context = await reopened.load(KEY)
    assert context.values() == {
        "competitor": "Gong",
        "current_solution": "Gong",  # they use it: it is how they work today
        "team_size": "40",
        "budget_signal": "$30k",
    }
    assert context.slots["competitor"].message_id == "m1"
    assert context.turns == 1 and context.history == ("We use Gong, 40 reps, budget is $30k",)
    await reopened.reset(KEY)
    assert (await reopened.load(KEY)).slots == {}
    await reopened.close()


async def test_reset_clears_slots_and_hides_earlier_messages(backend: Backend) -> None:
    store = await backend.open()
    eng = engine_on(store)
    await eng.handle(TurnInput(KEY, "We use Gong, 40 reps", message_id="m1"))
    await eng.reset(KEY)
    context = await store.load(KEY)
    assert context.slots == {} and context.history == ()
    await eng.handle(TurnInput(KEY, "Does it do SSO?", message_id="m2"))
    assert (await store.load(KEY)).history == ("Does it do SSO?",)
    await store.close()


async def test_feedback_answers_and_the_call_log(backend: Backend) -> None:
    store = await backend.open()
    s = await engine_on(store).handle(TurnInput(KEY, "Too expensive for us", message_id="m1"))
    answer = await store.answer_to("m1")
    assert answer is not None
    assert (answer.id, answer.reply, answer.slots) == (s.id, s.reply, s.slots)
    assert await store.answer_to("m2") is None
    turn = await store.turn_of(s.id)
    assert turn is not None and (turn.key, turn.text, turn.message_id) == (
        KEY,
        "Too expensive for us",
        "m1",
    )
    assert await store.record_feedback(s.id, -1) is True
    assert await store.record_feedback("no-such-id", 1) is False
    assert [t.feedback for t in await store.recent_turns(10)] == [-1]
    records = [
        CallRecord(1.0, "capture", "openai", "gpt-4o-mini", "fast", "win", 310.5, 120, 30, 0.001),
        CallRecord(2.0, "detect", "anthropic", "haiku", "fast", "cancelled", 95.0),
        # The rejection reason is kept beside the outcome kind.
        CallRecord(
            3.0, "detect", "local", "smol", "fast", "error:invalid_output", 40.0,
            error="detect: unknown situation 'sales'",
        ),
    ]
    await store.log_calls(records)
    await store.log_calls([])
    assert list(await store.recent_calls(10)) == records[::-1]  # newest first
    assert list(await store.recent_calls(1)) == records[2:]
    await store.close()


# The SQLite schema after every migration, whitespace collapsed. A new migration changes it
# (and SQLITE_VERSION) on purpose; any other change to it is a bug in a shipped migration.
SQLITE_VERSION = 11
SQLITE_SCHEMA = (
    (
        'CREATE TABLE "cache_entries" ( "key" TEXT PRIMARY KEY, "fingerprint" TEXT, '
        '"version" TEXT, "text" TEXT, "embedder" TEXT, "vector" BLOB, "suggestion_id" TEXT, '
        '"body" TEXT, "created_at" REAL, "used_at" REAL, "hits" INTEGER )'
    ),
    'CREATE TABLE "counters" ( "name" TEXT PRIMARY KEY, "value" INTEGER )',
    'CREATE INDEX "idx_cache_entries_suggestion_id" ON "cache_entries" ("suggestion_id")',
    'CREATE INDEX "idx_cache_entries_used_at" ON "cache_entries" ("used_at")',
    'CREATE INDEX "idx_inbox_state_received_at" ON "inbox" ("state", "received_at")',
    'CREATE INDEX "idx_inbox_team_channel_thread_ts" ON "inbox" ("team", "channel", "thread_ts")',
    'CREATE INDEX "idx_llm_calls_at" ON "llm_calls" ("at")',
    'CREATE INDEX "idx_messages_thread_key_created_at" ON "messages" ("thread_key", "created_at")',
    'CREATE INDEX "idx_suggestions_created_at" ON "suggestions" ("created_at")',
    'CREATE INDEX "idx_suggestions_message_id" ON "suggestions" ("message_id")',
    (
        'CREATE INDEX "idx_suggestions_thread_key_created_at" ON "suggestions" '
        '("thread_key", "created_at")'
    ),
    (
        'CREATE TABLE "inbox" ( "id" TEXT PRIMARY KEY, "team" TEXT, "channel" TEXT, '
        '"thread_ts" TEXT, "ts" TEXT, "user" TEXT, "text" TEXT, "payload" TEXT, "state" TEXT, '
        '"attempts" INTEGER, "received_at" REAL, "done_at" REAL, "reply_ts" TEXT, '
        '"suggestion_id" TEXT, "error" TEXT , "lease_owner" TEXT, "lease_until" REAL)'
    ),
    (
        'CREATE TABLE "knowledge_chunks" ( "team" TEXT, "file" TEXT, "digest" TEXT, '
        '"position" INTEGER, "heading" TEXT, "title" TEXT, "text" TEXT, "competitor" TEXT, '
        '"situations" TEXT, "vector" BLOB, PRIMARY KEY ("team", "file", "position") )'
    ),
    (
        'CREATE TABLE "llm_calls" ( "id" INTEGER PRIMARY KEY, "at" REAL, "step" TEXT, '
        '"provider" TEXT, "model" TEXT, "tier" TEXT, "outcome" TEXT, "ms" REAL, '
        '"tokens_in" INTEGER, "tokens_out" INTEGER, "cost_usd" REAL, "prompt" TEXT, '
        '"response" TEXT , "error" TEXT)'
    ),
    (
        'CREATE TABLE "messages" ( "id" TEXT PRIMARY KEY, "thread_key" TEXT, "author" TEXT, '
        '"text" TEXT, "ts" REAL, "created_at" REAL )'
    ),
    (
        'CREATE TABLE "slots" ( "thread_key" TEXT, "name" TEXT, "value" TEXT, "message_id" TEXT, '
        '"set_at" REAL, "previous_value" TEXT, "previous_message_id" TEXT, '
        'PRIMARY KEY ("thread_key", "name") )'
    ),
    (
        'CREATE TABLE "suggestions" ( "id" TEXT PRIMARY KEY, "thread_key" TEXT, "message_id" TEXT, '
        '"created_at" REAL, "situation" TEXT, "cache" TEXT, "latency_ms" REAL, '
        '"reconciled" INTEGER, "feedback" INTEGER, "body" TEXT )'
    ),
    (
        'CREATE TABLE "threads" ( "key" TEXT PRIMARY KEY, "turns" INTEGER, "last_situation" TEXT, '
        '"updated_at" REAL , "reset_at" REAL)'
    ),
)


async def _sqlite_schema(store: SqliteStore) -> tuple[int, str, tuple[str, ...]]:
    def read() -> tuple[int, str, tuple[str, ...]]:
        db = store.db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        rows = db.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
        return version, mode, tuple(" ".join(sql.split()) for (sql,) in rows)

    return await store.run(read)


async def test_sqlite_a_fresh_file_gets_the_exact_schema_and_reopening_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    for _ in range(2):
        store = await SqliteStore.open(path)
        version, mode, schema = await _sqlite_schema(store)
        await store.close()
        assert version == SQLITE_VERSION == len(SQLITE_MIGRATIONS)
        assert mode == "wal"
        assert schema == SQLITE_SCHEMA


POSTGRES_VERSION = 8


def _postgres_columns(url: str) -> dict[str, list[str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_version' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


async def test_postgres_instances_starting_together_migrate_once(
    pg_url: str, tmp_path: Path
) -> None:
    import psycopg

    from storage.postgres import PostgresStore
    from storage.postgres_migrations import MIGRATIONS

    stores = await asyncio.gather(*(PostgresStore.open(pg_url) for _ in range(3)))
    columns = _postgres_columns(pg_url)
    again = await PostgresStore.open(pg_url)
    with psycopg.connect(pg_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert len(MIGRATIONS) == POSTGRES_VERSION
    assert versions == list(range(1, POSTGRES_VERSION + 1))
    assert _postgres_columns(pg_url) == columns  # reopening changed nothing
    for store in [*stores, again]:
        await store.close()
    # Both backends keep the same tables and columns (SQLite's unused `counters` aside, and
    # Postgres's `rate_buckets`: one SQLite process keeps its rate budget in memory).
    assert columns.pop("rate_buckets") == ["name", "tokens", "at"]
    sqlite = await SqliteStore.open(tmp_path / "same.db")
    tables = await sqlite.run(
        lambda: {
            name: [c.name for c in sqlite.db.table(name).columns]
            for name in sqlite.db.table_names()
            if name != "counters"
        }
    )
    await sqlite.close()
    assert columns == dict(sorted(tables.items()))


# Several instances on one database --------------------------------------------------------


async def some_suggestion(store: Store) -> Suggestion:
    return await engine_on(store).handle(
        TurnInput(ThreadKey("T1", "C9", "scratch"), "We use Gong", message_id="scratch")
    )


async def test_concurrent_commits_from_two_instances_lose_no_slot_update(
    backend: Backend,
) -> None:
    """No lock held: two store instances commit 40 turns of one thread at once. Each turn sets
    a slot of its own and the shared `last` one; every slot and every turn must be there."""
    a, b = await backend.open(), await backend.open()
    base = await some_suggestion(a)

    async def commit(store: Store, i: int) -> None:
        s = replace(base, id=f"s{i}", slots_delta={f"slot{i:02d}": str(i), "last": str(i)})
        await store.commit_turn(TurnInput(KEY, f"message {i}", message_id=f"m{i}"), s)

    await asyncio.gather(*(commit(a if i % 2 else b, i) for i in range(40)))
    for store in (a, b):
        context = await store.load(KEY)
        assert context.turns == 40
        assert {k: v.value for k, v in context.slots.items() if k != "last"} == {
            f"slot{i:02d}": str(i) for i in range(40)
        }
        assert context.slots["last"].value in {str(i) for i in range(40)}
    # A commit retried after its first try reached the database counts once.
    await a.commit_turn(
        TurnInput(KEY, "message 3", message_id="m3"), replace(base, id="s3", slots_delta={})
    )
    assert (await b.load(KEY)).turns == 40
    await a.close()
    await b.close()


def entry(key: str, fingerprint: str = "fp", version: str = "v1") -> StoredEntry:
    return StoredEntry(key, fingerprint, version, "text", None, None, "s-" + key, "{}", 1.0, 1.0, 0)


async def test_cache_writes_are_batched_and_flushed_on_close(backend: Backend) -> None:
    store = await backend.open()
    cache_rows = store.cache_rows()
    assert isinstance(cache_rows, BufferedCacheStore)
    cache_rows.flush_after_s = 60
    other = await backend.open()  # another instance sees only what reached the database
    seen = other.cache_rows()
    for key in ("a", "b", "c"):
        await cache_rows.save(entry(key))
    await cache_rows.delete(["b"])  # a delete after a save cancels it
    await cache_rows.touch("c", 5.0, 2)
    await cache_rows.block("bad-answer", "s-x", 3.0)  # blocks are written at once

    loaded = await seen.load("v1", 0.0)
    assert loaded.entries == [] and list(loaded.blocked) == ["bad-answer"]
    await cache_rows.flush()
    loaded = await seen.load("v1", 0.0)
    assert [(e.key, e.used_at, e.hits) for e in loaded.entries] == [("a", 1.0, 0), ("c", 5.0, 2)]
    assert list(loaded.blocked) == ["bad-answer"]
    await store.close()
    await other.close()


async def test_cache_rows_are_shared_between_instances(backend: Backend) -> None:
    a, b = await backend.open(), await backend.open()
    rows_a, rows_b = a.cache_rows(), b.cache_rows()
    assert isinstance(rows_a, BufferedCacheStore) and isinstance(rows_b, BufferedCacheStore)
    vector = bytes(range(16))
    await rows_a.save(replace(entry("k1"), vector=vector, embedder="e", created_at=5.0))
    await rows_a.save(replace(entry("k2"), created_at=6.0))
    await rows_a.save(replace(entry("k3", fingerprint="other"), created_at=7.0))
    await rows_a.save(replace(entry("k4", version="v0"), created_at=8.0))
    await rows_a.save(entry("k5"))  # created at 1.0: before the window
    await rows_a.flush()

    # One read: this version's entries since a time, less the keys the reader has.
    changes = await rows_b.changes_since("v1", 5.0, ["k2"])
    assert [e.key for e in changes.entries] == ["k1", "k3"] and changes.blocked == []
    got = changes.entries[0]
    assert got.vector == vector and got.embedder == "e" and got.fingerprint == "fp"
    assert [e.key for e in (await rows_b.changes_since("v0", 0.0, [])).entries] == ["k4"]

    # A dislike on one instance is seen by the other, from the time it happened.
    await rows_a.block("answer-1", "s-k1", 10.0)
    await rows_a.block("answer-1", "s-k1", 11.0)  # blocked already: kept once
    await rows_a.block("answer-2", "s-k2", 20.0)
    changes = await rows_b.changes_since("v1", 0.0, ["k1", "k2", "k3", "k5"])
    assert changes.entries == []
    assert changes.blocked == [("answer-1", 10.0), ("answer-2", 20.0)]
    assert (await rows_b.changes_since("v1", 15.0, [])).blocked == [("answer-2", 20.0)]
    assert sorted((await rows_b.load("v1", 0.0)).blocked) == ["answer-1", "answer-2"]
    await a.close()
    await b.close()


# Per-thread locks across instances (Postgres: SQLite serves one process) -----------------


async def test_a_thread_lock_serialises_turns_across_instances(pg_url: str) -> None:
    from storage.postgres import PostgresStore

    a, b = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    order: list[str] = []
    a_has_it, release_a = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with a.thread_locks.hold(KEY):
            order.append("a in")
            a_has_it.set()
            await release_a.wait()
            order.append("a out")

    async def second() -> None:
        await a_has_it.wait()
        async with b.thread_locks.hold(KEY):
            order.append("b in")

    async def other_thread() -> None:
        await a_has_it.wait()
        async with b.thread_locks.hold(ThreadKey("T1", "C1", "other")):
            order.append("other")

    tasks = [asyncio.create_task(c()) for c in (first, second, other_thread)]
    await asyncio.sleep(0.3)
    assert order == ["a in", "other"]  # b waits on a's thread; another thread does not
    release_a.set()
    await asyncio.gather(*tasks)
    assert order == ["a in", "other", "a out", "b in"]
    await a.close()
    await b.close()


async def test_a_dead_instances_thread_lock_is_released_with_its_session(pg_url: str) -> None:
    import psycopg

    from storage.postgres import PostgresStore

    a, b = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    holding = asyncio.Event()

    async def hold_forever() -> None:
        async with a.thread_locks.hold(KEY):
            holding.set()
            await asyncio.Event().wait()

    held = asyncio.create_task(hold_forever())
    await holding.wait()
    waiter = asyncio.create_task(asyncio.wait_for(_enter(b, KEY), 10))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    # The instance dies: the server ends its sessions, which frees the advisory lock.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        )
    await waiter
    held.cancel()
    await asyncio.gather(held, return_exceptions=True)
    await a.close()
    await b.close()


async def _enter(store: Store, key: ThreadKey) -> None:
    async with store.thread_locks.hold(key):
        pass


async def test_engines_on_two_instances_run_a_threads_turns_one_at_a_time(pg_url: str) -> None:
    """Two instances, each an Engine on the store's advisory locks, 12 turns of one thread at
    once: turns never overlap, and the thread ends as if they ran one after another in the
    order they got the lock."""
    from storage.postgres import PostgresStore

    inside: list[str] = []
    order: list[str] = []

    class Slow(OfflineProvider):
        async def complete(self, request: StepRequest) -> StepResult:
            if request.step == "capture":
                inside.append(request.text)
                assert len(inside) == 1, f"turns {inside} overlap"
                order.append(request.text)
                await asyncio.sleep(0.02)  # room for another instance's turn to barge in
                inside.remove(request.text)
            return self.complete_now(request)

    a, b = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    engines = [
        Engine(
            llm=Slow(),
            store=s,
            settings=Settings(),
            playbook=default_playbook(),
            locks=s.thread_locks,
        )
        for s in (a, b)
    ]
    texts = [f"We have {10 + i} reps" for i in range(12)]
    await asyncio.gather(
        *(engines[i % 2].handle(TurnInput(KEY, t, f"m{i}")) for i, t in enumerate(texts))
    )
    context = await b.load(KEY)
    assert context.turns == 12 and sorted(order) == sorted(texts)
    assert context.slots["team_size"].value == order[-1].split()[2]
    assert context.history == tuple(order[-6:])
    # Within one instance arrival order holds as before: its turns got the lock in order.
    for start in (0, 1):
        mine = texts[start::2]
        assert [t for t in order if t in mine] == mine
    await a.close()
    await b.close()


def test_without_postgres_binaries_the_fixture_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from devtools import pgserver

    monkeypatch.setattr(pgserver.shutil, "which", lambda _: None)
    monkeypatch.setattr(pgserver, "_SEARCH", ("/nonexistent/bin",))
    with pytest.raises(pgserver.ServerUnavailable, match="apt-get install -y postgresql"):
        pgserver.find_bin_dir()


async def test_a_correction_replaces_a_slot_and_keeps_both_messages(backend: Backend) -> None:
    store = await backend.open()
    eng = engine_on(store)
    await eng.handle(TurnInput(KEY, "We're a team of 45 reps.", message_id="m1"))
    await eng.handle(TurnInput(KEY, "Our budget is around $30k.", message_id="m2"))
    await eng.handle(
        TurnInput(KEY, "Actually scratch that, it's 60 seats not 45.", message_id="m3")
    )
    await store.close()

    reopened = await backend.open()
    slot = (await reopened.load(KEY)).slots["team_size"]
    assert (slot.value, slot.message_id) == ("60", "m3")
    assert (slot.previous, slot.previous_message_id) == ("45", "m1")
    # A slot nobody corrected has no earlier value.
    assert (await reopened.load(KEY)).slots["budget_signal"].previous is None
    await reopened.close()


async def test_a_ruled_out_competitor_leaves_the_context_but_not_the_record(
    backend: Backend,
) -> None:
    store = await backend.open()
    eng = engine_on(store)
    first = await eng.handle(TurnInput(KEY, "We're evaluating Gong right now.", message_id="m1"))
    assert first.slots["competitor"] == "Gong"
    second = await eng.handle(
        TurnInput(KEY, "Quick update: we're not looking at Gong anymore.", message_id="m2")
    )
    assert "competitor" not in second.slots
    context = await store.load(KEY)
    assert "competitor" not in context.slots and "competitor" not in context.values()
    await store.close()


async def test_the_context_carries_the_threads_earlier_replies(backend: Backend) -> None:
    store = await backend.open()
    eng = engine_on(store)
    made = [
        await eng.handle(TurnInput(KEY, text, message_id=f"m{i}"))
        for i, text in enumerate(["We have 40 reps.", "We use spreadsheets today."])
    ]
    assert (await store.load(KEY)).replies == tuple(s.reply for s in made)


async def test_latest_thread_is_the_users_latest_in_that_channel(backend: Backend) -> None:
    store = await backend.open()
    eng = engine_on(store)
    older, newer = ThreadKey("T1", "C1", "1.0"), ThreadKey("T1", "C1", "2.0")
    await eng.handle(TurnInput(older, "We use Gong, 40 reps", message_id="m1", author="U1"))
    await eng.handle(TurnInput(newer, "Budget is $30k", message_id="m2", author="U1"))
    await eng.handle(TurnInput(ThreadKey("T1", "C1", "3.0"), "Hi", message_id="m3", author="U2"))
    await eng.handle(TurnInput(ThreadKey("T1", "C9", "4.0"), "Hi", message_id="m4", author="U1"))
    assert await store.latest_thread("T1", "C1", "U1") == newer
    assert await store.latest_thread("T1", "C2", "U1") is None
    deal = await eng.deal(newer)
    assert [k.value.message_id for k in deal.known] == ["m2"]  # provenance survives the store
    await store.close()
