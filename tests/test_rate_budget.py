"""Slack's per-workspace rate budget: one budget for every instance sharing a database.

Buckets on a real Postgres (two stores are two instances), the in-process buckets a single
SQLite instance uses, the fallback when Postgres cannot be reached, and two bots on one
Postgres against the fake Slack spending one workspace allowance of streams between them.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.ratebuckets import LocalBuckets
from storage import open_store
from storage.postgres import PostgresStore
from storage.postgres_ratebuckets import PostgresRateBuckets
from tests.slack_kit import GONG, Start

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


async def test_two_instances_draw_on_one_bucket_all_or_none(pg_url: str) -> None:
    a, b = await open_store(pg_url), await open_store(pg_url)
    ours, theirs = a.rate_buckets(), b.rate_buckets()
    # Ten takes at once from two instances, three a minute: exactly three get a token.
    taken = await asyncio.gather(
        *((ours if i % 2 else theirs).take({"w:start": 3}) for i in range(10))
    )
    assert taken.count(True) == 3
    # All or none: with `w:start` spent, a take of both spends nothing from `w:append`.
    assert await ours.take({"w:start": 3, "w:append": 1}) is False
    assert await theirs.take({"w:append": 1}) is True
    assert await ours.take({"w:append": 1}) is False
    await a.close()
    await b.close()


async def test_a_ratelimited_answer_on_one_instance_empties_the_bucket_for_all(
    pg_url: str,
) -> None:
    a, b = await open_store(pg_url), await open_store(pg_url)
    assert await a.rate_buckets().take({"w:stop": 600}) is True  # ten a second: refills fast
    await b.rate_buckets().empty("w:stop", 600, for_s=0.5)
    assert await a.rate_buckets().take({"w:stop": 600}) is False
    await asyncio.sleep(0.7)  # Retry-After has passed, and then some refill
    assert await a.rate_buckets().take({"w:stop": 600}) is True
    await a.close()
    await b.close()


async def test_local_buckets_refill_at_their_rate() -> None:
    now = [0.0]
    buckets = LocalBuckets(clock=lambda: now[0])
    assert [await buckets.take({"x": 2}) for _ in range(3)] == [True, True, False]
    now[0] += 30.0  # half a minute: one of two a minute is back
    assert [await buckets.take({"x": 2}) for _ in range(2)] == [True, False]
    await buckets.empty("x", 2, for_s=60.0)
    now[0] += 59.0
    assert await buckets.take({"x": 2}) is False
    now[0] += 32.0
    assert await buckets.take({"x": 2}) is True


async def test_unreachable_postgres_falls_back_to_this_instances_buckets(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(pg_url)
    assert isinstance(store, PostgresStore)
    buckets = store.rate_buckets()
    assert isinstance(buckets, PostgresRateBuckets)
    await store.close()  # the pool is gone: every take fails at once, none waits
    with caplog.at_level(logging.WARNING):
        assert [await buckets.take({"w:start": 2}) for _ in range(3)] == [True, True, False]
    warnings = [r for r in caplog.records if "shared rate budget unreachable" in r.message]
    assert len(warnings) == 1  # once per outage, not once per take


async def test_two_bots_on_one_postgres_share_the_workspaces_stream_allowance(
    start: Start, pg_url: str
) -> None:
    limits = {"chat.startStream": 2, "chat.appendStream": 100, "chat.stopStream": 2}
    stores = [await open_store(pg_url), await open_store(pg_url)]
    first = await start(store=stores[0], stream_limits=limits)
    second = await start(store=stores[1], stream_limits=limits, fake=first.fake)
    fake = first.fake
    assert fake.open_connections == 2
    fake.spread = True  # each bot gets every other message
    events = []
    for i in range(4):  # one after another
        events.append(ev := await first.mention(f"{GONG} ({i})", channel=f"C{i}"))
        assert (await first.done(ev))["state"] == "done"
        assert len(first.replies(ev["channel"], ev["ts"])) == 1
    assert len(set(fake.delivered_to.values())) == 2  # both bots worked
    # Between them they streamed the workspace's two; the others posted and updated.
    assert len(fake.calls_to("chat.startStream")) == 2
    assert len(fake.calls_to("chat.stopStream")) == 2
    posted = [c for c in fake.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert len(posted) == 2 and len(fake.calls_to("chat.update")) == 2
    assert all(c.status == 200 for c in fake.calls)
    await second.bot.stop()
    await first.bot.stop()
    for s in stores:
        await s.close()
