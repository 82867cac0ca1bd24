"""Several instances on one inbox: a turn whose instance died is taken over once its lease runs
out, a live lease is left alone, and the rep gets exactly one reply even when the dead
instance's reply reached Slack but its ts never reached the database. A database that stays
locked mid-turn leaves the row pending; it is finished once the database is back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.turns import METADATA_EVENT
from devtools.fake_slack import BOT_USER_ID, TEAM_ID, app_mention_event, message_event
from engine.inbox import InboxItem
from storage.spool import SqliteSpool
from tests.db_kit import write_lock_held
from tests.slack_kit import BOT_TOKEN, GONG, Harness, SlowProvider, Start

pytestmark = pytest.mark.asyncio


def _item(ev: dict[str, str], received_at: float) -> InboxItem:
    return InboxItem(
        id=InboxItem.make_id(TEAM_ID, ev["channel"], ev["ts"]),
        team=TEAM_ID,
        channel=ev["channel"],
        thread_ts=ev["ts"],
        ts=ev["ts"],
        user=ev["user"],
        text=ev["text"].replace(f"<@{BOT_USER_ID}> ", ""),
        payload={"kind": "mention"},
        received_at=received_at,
    )


async def _a_dead_instances_row(h: Harness, text: str, lease_s: float) -> tuple[dict, InboxItem]:
    """The row an instance accepted, claimed and started, then died with (no more renewals)."""
    ev = app_mention_event(text, channel="C1")
    h.fake.seed_message("C1", ev["text"], user=ev["user"], ts=ev["ts"])
    row = _item(ev, time.time())
    assert await h.inbox.add(row)
    assert await h.inbox.claim(row.id, "dead-instance", lease_s) is not None
    assert await h.inbox.start_attempt(row.id) == 1
    return ev, row


@pytest.mark.timeout(20)
async def test_a_dead_instances_turn_is_taken_over_with_its_reply_reused(start: Start) -> None:
    h: Harness = await start(lease_s=1.0)
    ev, row = await _a_dead_instances_row(h, GONG, lease_s=1.0)
    # Slack accepted the dead instance's reply; the process died before the ts was stored.
    client = AsyncWebClient(token=BOT_TOKEN, base_url=h.fake.api_url)
    posted = await client.chat_postMessage(
        channel="C1",
        thread_ts=ev["ts"],
        text="Competitor mention",
        metadata={"event_type": METADATA_EVENT, "event_payload": {"inbox_id": row.id}},
    )
    died_at = time.monotonic()
    result = await h.done(ev, timeout=10)
    assert result["state"] == "done" and result["attempts"] == 2
    assert time.monotonic() - died_at < 1.0 + 3.0  # within the lease plus a few seconds
    replies = h.replies("C1", ev["ts"])
    assert [m["ts"] for m in replies] == [posted["ts"]] == [result["reply_ts"]]
    assert "Gong" in str(replies[0]["blocks"])  # the earlier reply became the card
    assert h.fake.calls_to("chat.postMessage")[1:] == []  # the bot posted nothing new
    assert h.fake.calls_to("chat.startStream") == []
    assert (await h.store.load(row.key)).turns == 1


@pytest.mark.timeout(20)
async def test_a_stream_cut_off_before_its_ts_was_stored_is_finished_not_doubled(
    start: Start,
) -> None:
    h: Harness = await start(lease_s=1.0)
    ev, _ = await _a_dead_instances_row(h, GONG, lease_s=1.0)
    # The dead instance's stream started (a stream has no metadata until it stops), then the
    # process died before the ts reached the database.
    client = AsyncWebClient(token=BOT_TOKEN, base_url=h.fake.api_url)
    started = await client.chat_startStream(
        channel="C1",
        thread_ts=ev["ts"],
        markdown_text="**Competitor mention** · suggested reply:",
        recipient_user_id=ev["user"],
        recipient_team_id=TEAM_ID,
    )
    result = await h.done(ev, timeout=10)
    assert result["state"] == "done" and result["reply_ts"] == started["ts"]
    replies = h.replies("C1", ev["ts"])
    assert [m["ts"] for m in replies] == [started["ts"]]  # finished, not a second reply
    assert "Gong" in str(replies[0]["blocks"])
    assert h.fake.stream(started["ts"]).state == "stopped"
    assert len(h.fake.calls_to("chat.startStream")) == 1


@pytest.mark.timeout(20)
async def test_a_live_lease_is_left_to_its_holder(start: Start) -> None:
    h: Harness = await start(lease_s=0.5)
    ev, row = await _a_dead_instances_row(h, GONG, lease_s=0.5)
    # The holder is alive: it renews (as its keeper task would) for three sweeps.
    for _ in range(6):
        assert await h.inbox.renew(row.id, "dead-instance", 0.5)
        await asyncio.sleep(0.25)
    current = await h.inbox.get(row.id)
    assert current is not None and (current.state, current.attempts) == ("pending", 1)
    assert h.replies("C1", ev["ts"]) == []
    # It stops renewing: taken over.
    assert (await h.done(ev, timeout=10))["state"] == "done"
    assert len(h.replies("C1", ev["ts"])) == 1


@pytest.mark.timeout(30)
async def test_a_turn_that_loses_its_lease_stops_without_replying(start: Start) -> None:
    slow = SlowProvider(delay=1.5)
    h: Harness = await start(llm=slow, lease_s=0.6)
    ev = await h.mention(GONG, channel="C1")
    await slow.started.wait()
    row_id = InboxItem.make_id(TEAM_ID, "C1", ev["ts"])

    def steal() -> None:  # this process stalled; another worker claimed the row meanwhile
        with h.store.db.conn:
            h.store.db.execute(
                "UPDATE inbox SET lease_owner = 'thief', lease_until = ? WHERE id = ?",
                [time.time() + 60, row_id],
            )

    await h.store.run(steal)
    await asyncio.sleep(2.5)  # the next renewal fails: the turn stops
    current = await h.inbox.get(row_id)
    assert current is not None and current.state == "pending" and current.lease_owner == "thief"
    assert [m for m in h.replies("C1", ev["ts"]) if "Gong" in str(m.get("blocks"))] == []
    assert (await h.store.load(current.key)).turns == 0


@pytest.mark.timeout(40)
async def test_a_locked_database_leaves_the_turn_pending_until_it_is_back(
    start: Start,
    tmp_path: Path,
) -> None:
    db = tmp_path / "locked.db"
    slow = SlowProvider(delay=0.5)
    h: Harness = await start(
        llm=slow, db=db, wait_s=0.5, lease_s=1.0, retry_backoff=0.3, max_attempts=3
    )
    ev = await h.mention(GONG, channel="C1")
    await slow.started.wait()
    with write_lock_held(db, 4.0) as holder:  # another process holds the write lock 4 s
        await asyncio.sleep(1.5)
        row = await h.inbox.get(InboxItem.make_id(TEAM_ID, "C1", ev["ts"]))
        assert row is not None and row.state == "pending"  # not failed: waiting it out
        holder.wait(timeout=10)
    result = await h.done(ev, timeout=20)
    assert result["state"] == "done"
    replies = h.replies("C1", ev["ts"])
    assert len(replies) == 1 and replies[0]["ts"] == result["reply_ts"]
    assert "Gong" in str(replies[0]["blocks"])
    assert (await h.store.load(row.key)).turns == 1


@pytest.mark.timeout(40)
async def test_a_message_that_arrives_while_the_database_is_locked_waits_in_the_spool(
    start: Start, tmp_path: Path
) -> None:
    db, spool = tmp_path / "locked.db", SqliteSpool(tmp_path / "spool.db")
    h: Harness = await start(db=db, wait_s=30.0, spool=spool, accept_wait_s=0.5)
    with write_lock_held(db, 3.0) as holder:  # longer than the ack may wait
        ev = app_mention_event(GONG, channel="C1")
        acked_at = time.monotonic()
        await h.fake.wait_for_ack(await h.fake.push_event(ev), timeout=2.5)
        assert time.monotonic() - acked_at < 2.0  # acked in time: Slack won't drop it
        # The rep is told at once, in the thread; the same message becomes the card later.
        waiting = await h.fake.wait_for_call(
            "chat.postMessage", lambda c: c.args.get("thread_ts") == ev["ts"]
        )
        assert "database isn't answering" in waiting.args["text"]
        assert [i.id for i in await spool.items()] == [InboxItem.make_id(TEAM_ID, "C1", ev["ts"])]
        twin = message_event(ev["text"], channel="C1", ts=ev["ts"])  # Slack's twin event
        await h.fake.wait_for_ack(await h.fake.push_event(twin), timeout=2.5)
        holder.wait(timeout=10)
    result = await h.done(ev, timeout=20)
    assert result["state"] == "done" and result["reply_ts"] == waiting.response["ts"]
    replies = h.replies("C1", ev["ts"])
    assert [m["ts"] for m in replies] == [result["reply_ts"]]  # one reply: the notice, updated
    assert "Gong" in str(replies[0]["blocks"])
    assert await spool.items() == []
    assert len(h.fake.calls_to("chat.postMessage")) == 1  # the twin posted nothing


async def test_the_spool_keeps_what_waits_across_a_restart(tmp_path: Path) -> None:
    item = InboxItem(
        id="T1:C1:1.000100",
        team="T1",
        channel="C1",
        thread_ts="1.000100",
        ts="1.000100",
        user="U1",
        text="too expensive",
        payload={"kind": "mention", "files": 0},
        received_at=1.5,
    )
    await SqliteSpool(tmp_path / "spool.db").add(item)
    await SqliteSpool(tmp_path / "spool.db").add(replace(item, reply_ts="1.000200"))  # again
    again = SqliteSpool(tmp_path / "spool.db")  # a new process
    assert await again.items() == [replace(item, reply_ts="1.000200")]
    await again.remove(item.id)
    assert await again.items() == []
