from __future__ import annotations

import asyncio
from pathlib import Path

from engine.llm.offline import OfflineProvider
from engine.model import ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from storage import SqliteStore

KEY = ThreadKey("T1", "C1", "42.0")


async def test_fifty_concurrent_turns_on_one_thread_lose_no_slot(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "a.db")
    eng = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
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


async def test_restart_keeps_the_context(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    store = await SqliteStore.open(path)
    eng = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
    await eng.handle(TurnInput(KEY, "We use Gong, 40 reps, budget is $30k", message_id="m1"))
    await store.close()

    reopened = await SqliteStore.open(path)
    context = await reopened.load(KEY)
    assert context.values() == {"competitor": "Gong", "team_size": "40", "budget_signal": "$30k"}
    assert context.slots["competitor"].message_id == "m1"
    assert context.turns == 1 and context.history == ("We use Gong, 40 reps, budget is $30k",)
    await reopened.reset(KEY)
    assert (await reopened.load(KEY)).slots == {}
    await reopened.close()


async def test_reopening_an_up_to_date_file_migrates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    for _ in range(2):
        store = await SqliteStore.open(path)
        db = store.db
        version = await store._run(db.execute, "PRAGMA user_version")
        mode = await store._run(db.execute, "PRAGMA journal_mode")
        version, mode = version.fetchone()[0], mode.fetchone()[0]
        assert version >= 2 and mode == "wal"
        await store.close()


async def test_reset_clears_slots_and_hides_earlier_messages(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "r.db")
    eng = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
    await eng.handle(TurnInput(KEY, "We use Gong, 40 reps", message_id="m1"))
    await eng.reset(KEY)
    context = await store.load(KEY)
    assert context.slots == {} and context.history == ()
    await eng.handle(TurnInput(KEY, "Does it do SSO?", message_id="m2"))
    assert (await store.load(KEY)).history == ("Does it do SSO?",)
    await store.close()


async def test_cache_writes_are_batched_and_flushed_on_close(tmp_path: Path) -> None:
    from engine.cache.persistence import StoredEntry
    from storage.cache_store import SqliteCacheStore

    def entry(key: str) -> StoredEntry:
        return StoredEntry(key, "fp", "v1", "text", None, None, "s-" + key, "{}", 1.0, 1.0, 0)

    store = await SqliteStore.open(tmp_path / "c.db")
    cache_rows = SqliteCacheStore(store, flush_after_s=60)
    for key in ("a", "b", "c"):
        await cache_rows.save(entry(key))
    await cache_rows.delete(["b"])  # a delete after a save cancels it
    await cache_rows.touch("c", 5.0, 2)
    await cache_rows.block("bad-answer", "s-x", 3.0)  # blocks are written at once

    def rows() -> list[tuple[str, float, int]]:
        return store.db.execute(
            "SELECT key, used_at, hits FROM cache_entries ORDER BY key"
        ).fetchall()

    assert await store._run(rows) == [("blocked:bad-answer", 3.0, 0)]
    await cache_rows.flush()
    assert await store._run(rows) == [("a", 1.0, 0), ("blocked:bad-answer", 3.0, 0), ("c", 5.0, 2)]
    loaded = await cache_rows.load("v1", 0.0)
    assert [e.key for e in loaded.entries] == ["a", "c"] and list(loaded.blocked) == ["bad-answer"]
    await store.close()
