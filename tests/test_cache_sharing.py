"""The response cache across instances: two or three TwoTierCaches over their own connections to
one real Postgres database follow each other's entries and dislikes (`TwoTierCache.follow`,
driven step by step here, and the background poll once); SQLite, one process, follows nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engine.cache.response_cache import TwoTierCache, answer_id
from engine.model import SlotValue, Suggestion, ThreadContext, ThreadKey
from storage import Store, open_store
from storage.postgres import PostgresStore
from storage.postgres_cache import PostgresCacheStore
from tests.cache_kit import Clock, WordsEmbedder

F32 = npt.NDArray[np.float32]
HOUR = 3600.0
PRICE = "Honestly it is just too expensive for a team our size"
PRICE_REWORDED = "Honestly it is just too expensive for a team of our size"


def context() -> ThreadContext:
    return ThreadContext(
        key=ThreadKey("T", "C", "1"), slots={"team_size": SlotValue("40", "m0", 0.0)}
    )


def suggestion(n: int, reply: str = "") -> Suggestion:
    return Suggestion(
        id=f"s{n}",
        key=ThreadKey("T", "C", str(n)),
        message_id=f"m{n}",
        reply=reply or f"reply {n}",
        coaching_tip="tip",
        situation="price_objection",
        confidence=0.9,
        secondary=None,
        strategy="value",
        talk_track="",
        slots_delta={},
        slots={},
        cache="miss",
        calls=(),
        step_ms={},
        latency_ms=3.0,
        reconciled=False,
    )


class Fleet:
    """Instances of the bot, as far as the cache goes: each its own store (connection pool),
    all on one database. `follow_s` is an hour unless a test wants the background poll."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stores: list[Store] = []
        self.caches: list[TwoTierCache] = []

    async def start(
        self,
        *,
        version: str = "v1",
        embedder: WordsEmbedder | None = None,
        clock: Callable[[], float] | None = None,
        follow_s: float = HOUR,
        flush_after_s: float = 0.25,
    ) -> TwoTierCache:
        store = await PostgresStore.open(self.url)
        cache = TwoTierCache(
            version=version,
            embedder=embedder,
            threshold=0.8 if embedder else None,
            ttl_s=HOUR,
            persistence=PostgresCacheStore(store, flush_after_s=flush_after_s),
            suggestion_of=store.suggestion,
            clock=clock or Clock(),
            follow_s=follow_s,
        )
        await cache.load()
        self.stores.append(store)
        self.caches.append(cache)
        return cache

    async def stop(self) -> None:
        for cache in self.caches:
            await cache.aclose()
        for store in self.stores:
            await store.close()


@pytest.fixture
async def fleet(pg_url: str) -> AsyncIterator[Fleet]:
    f = Fleet(pg_url)
    yield f
    await f.stop()


async def keys_in_db(url: str) -> list[str]:
    store = await open_store(url)
    assert isinstance(store, PostgresStore)
    rows = await store._all("keys", "SELECT key FROM cache_entries ORDER BY key", [])
    await store.close()
    return [str(r[0]) for r in rows]


async def test_an_answer_stored_on_one_instance_is_served_by_another_after_its_poll(
    fleet: Fleet,
) -> None:
    clock = Clock()
    a = await fleet.start(embedder=WordsEmbedder(), clock=clock)
    b = await fleet.start(embedder=WordsEmbedder(), clock=clock)  # running before A stores
    await a.store(PRICE, context(), suggestion(1))
    await a.flush()
    assert await b.lookup(PRICE, context()) is None  # not polled yet

    assert await b.follow() == 1
    exact = await b.lookup(PRICE, context())
    assert exact is not None and exact.tier == "exact" and exact.suggestion.reply == "reply 1"
    semantic = await b.lookup(PRICE_REWORDED, context())  # A's vector, reused
    assert semantic is not None and semantic.tier == "semantic"
    assert semantic.suggestion.reply == "reply 1"
    assert b.stats().size == 1 and b.stats().vectors == 1
    assert await b.follow() == 0  # nothing new; what B has is not sent again
    assert await a.follow() == 0  # its own entry


async def test_another_embedders_entry_serves_exact_repeats_only(fleet: Fleet) -> None:
    a = await fleet.start(embedder=WordsEmbedder("words-a"))
    b = await fleet.start(embedder=WordsEmbedder("words-b"))
    await a.store(PRICE, context(), suggestion(1))
    await a.flush()
    assert await b.follow() == 1
    assert b.stats().size == 1 and b.stats().vectors == 0
    hit = await b.lookup(PRICE, context())
    assert hit is not None and hit.tier == "exact"
    assert await b.lookup(PRICE_REWORDED, context()) is None


async def test_a_dislike_on_one_instance_stops_the_others_serving_and_taking_it_in(
    fleet: Fleet, pg_url: str
) -> None:
    a = await fleet.start()
    b = await fleet.start(flush_after_s=HOUR)  # its delete of the row waits: the row stays
    late = await fleet.start()  # has not heard of the dislike when it stores a copy
    disliked = suggestion(1)
    await a.store(PRICE, context(), disliked)
    await a.flush()
    assert await b.follow() == 1
    served = await b.lookup(PRICE, context())
    assert served is not None

    await b.forget(served.suggestion.id)  # the rep disliked it on B: the block is written now
    assert await b.lookup(PRICE, context()) is None
    block = f"blocked:{answer_id(disliked)}"
    for _ in range(100):  # the block's write runs in the background: wait for its row
        if block in await keys_in_db(pg_url):
            break
        await asyncio.sleep(0.05)
    await late.store("Way too expensive for us, honestly", context(), disliked)
    await late.flush()

    assert await a.follow() == 0  # A drops its own copy and refuses the late one
    assert await a.lookup(PRICE, context()) is None
    assert await a.lookup("Way too expensive for us, honestly", context()) is None
    assert a.stats().size == 0 and a.stats().blocked == 1
    await a.store(PRICE, context(), disliked)  # refused: A knows the block now
    assert a.stats().size == 0
    await a.flush()
    # A deleted both rows it would not take in; B's delete is still buffered.
    assert await keys_in_db(pg_url) == [block]


async def test_expired_and_other_version_entries_are_not_taken_in(fleet: Fleet) -> None:
    clock_a, clock_b = Clock(), Clock()
    a = await fleet.start(clock=clock_a)
    b = await fleet.start(clock=clock_b)
    other_version = await fleet.start(version="v2", clock=clock_b)
    await a.store(PRICE, context(), suggestion(1))
    await a.flush()
    assert await other_version.follow() == 0
    assert await other_version.lookup(PRICE, context()) is None

    clock_b.now += HOUR  # B's clock is an hour on: A's entry is expired there
    assert await b.follow() == 0
    assert await b.lookup(PRICE, context()) is None and b.stats().size == 0


async def test_the_background_poll_follows_without_being_driven(fleet: Fleet) -> None:
    a = await fleet.start(follow_s=0.02)
    b = await fleet.start(follow_s=0.02)
    await a.store(PRICE, context(), suggestion(1))
    await a.flush()
    await until(lambda: b.stats().size == 1)
    assert await b.lookup(PRICE, context()) is not None
    served = await b.lookup(PRICE, context())
    assert served is not None
    await b.forget(served.suggestion.id)
    await until(lambda: a.stats().size == 0 and a.stats().blocked == 1)
    assert await a.lookup(PRICE, context()) is None


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for `condition`, checking every 10 ms, failing after `timeout_s`."""

    async def check() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(check(), timeout_s)


async def test_sqlite_serves_one_process_and_follows_nothing(tmp_path: Path) -> None:
    stores = [await open_store(tmp_path / "one.db") for _ in range(2)]
    a, b = (TwoTierCache(version="v1", persistence=s.cache_rows(), follow_s=0.01) for s in stores)
    await a.load()
    await b.load()
    assert a._follower is None and b._follower is None  # nothing else writes its rows
    await a.store(PRICE, context(), suggestion(1))
    await a.flush()
    assert await b.lookup(PRICE, context()) is None  # as before: seen at the next start
    again = TwoTierCache(version="v1", persistence=stores[1].cache_rows())
    assert await again.load() == 1
    for cache in (a, b, again):
        await cache.aclose()
    for store in stores:
        await store.close()
