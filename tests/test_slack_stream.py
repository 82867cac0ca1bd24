"""The reply streamed into Slack as the model writes it: the real bolt app over Socket Mode
against the fake Slack, the real engine and router over the fake LLM server, whose generate
answers stream slowly (a pause per chunk), so the deltas are real streamed chunks.

Run with `-s` to see the figures: when the first reply text reached Slack, and when the card."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from bot import blocks
from bot.text import escape_mrkdwn
from devtools.fake_slack import TEAM_ID, ApiCall, FakeSlack
from engine.llm.router import Router
from engine.model import Suggestion
from tests.llm_kit import Kit
from tests.slack_kit import GONG, DictCache, Harness, Start, block, calls_in

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

STREAM_CALLS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


def slow_writer(kit: Kit, per_chunk: float) -> Router:
    """One OpenAI provider whose generate streams a chunk (about 4 tokens) every `per_chunk`
    seconds; capture and detect answer at once."""
    kit.server.faults.add("slow", step="generate", delay=0, per_chunk=per_chunk, times=None)
    return kit.router([kit.openai()], mode="single")


async def answered(h: Harness, channel: str, ts: str) -> Suggestion:
    s = await h.engine.answered(f"{TEAM_ID}:{channel}:{ts}")
    assert s is not None
    return s


def streamed(s: Suggestion) -> str:
    """What the streamed message's text must add up to: the lead line and the reply."""
    return blocks.streamed_lead(s.situation) + escape_mrkdwn(s.reply)


def stream_calls(fake: FakeSlack, ts: str) -> list[ApiCall]:
    def of_stream(c: ApiCall) -> bool:
        if c.method == "chat.startStream":
            return isinstance(c.response, dict) and c.response.get("ts") == ts
        return c.method in STREAM_CALLS and c.args.get("ts") == ts

    return [c for c in fake.calls if of_stream(c)]


async def test_the_reply_streams_into_slack_in_batches_well_before_the_card(
    start: Start, kit: Kit
) -> None:
    interval = 0.3
    h = await start(llm=slow_writer(kit, per_chunk=0.05), append_interval=interval)
    ev = await h.mention(GONG, user="U7", channel="C1")
    row = await h.done(ev, timeout=15)
    assert row["state"] == "done"
    s = await answered(h, "C1", ev["ts"])
    [reply] = h.replies("C1", ev["ts"])
    stream = h.fake.stream(reply["ts"])
    assert stream.state == "stopped"
    assert stream.text == streamed(s)  # the streamed pieces add up to the card's reply

    calls = stream_calls(h.fake, reply["ts"])
    first, *appends, stop = calls
    assert first.method == "chat.startStream" and stop.method == "chat.stopStream"
    assert first.args["recipient_user_id"] == "U7" and first.args["recipient_team_id"] == TEAM_ID
    assert all(c.ok for c in calls)
    assert stop.args["blocks"] == blocks.streamed_card(s)  # the card closes the stream
    # Batched: one append per interval at most, never one per chunk.
    chunks = kit.server.find(step="generate")[0].chunks_sent
    assert 2 <= len(appends) < chunks / 3
    gaps = [b.at - a.at for a, b in itertools.pairwise([first, *appends])]
    assert all(gap >= 0.9 * interval for gap in gaps), gaps
    # The first words reached Slack well before the card.
    pushed = h.pushed_at[ev["ts"]]
    first_ms, card_ms = (first.at - pushed) * 1000, (stop.at - pushed) * 1000
    assert card_ms - first_ms > 600
    status = calls_in(h.fake, "assistant.threads.setStatus", thread_ts=ev["ts"])[0]
    assert status.at - pushed < 1.0  # still working within a second
    print(
        f"\nfirst reply text in Slack {first_ms:.0f} ms after the message, card (stopStream) "
        f"{card_ms:.0f} ms; {len(appends)} appends for {chunks} chunks; "
        f"append gaps {min(gaps):.2f}-{max(gaps):.2f} s"
    )


async def test_without_streaming_it_posts_the_first_words_then_updates_once(
    start: Start, kit: Kit
) -> None:
    h = await start(llm=slow_writer(kit, per_chunk=0.03))
    h.fake.fail_next("chat.startStream", "unknown_method")
    ev = await h.mention(GONG)
    row = await h.done(ev, timeout=15)
    [reply] = h.replies("C1", ev["ts"])
    [post] = calls_in(h.fake, "chat.postMessage", thread_ts=ev["ts"])
    [update] = calls_in(h.fake, "chat.update", ts=reply["ts"])
    assert post.args["text"].startswith("*Price objection*")  # mrkdwn: one star
    assert update.at - post.at > 0.3  # the first words were up while the rest was written
    assert block(h.card("C1", row["reply_ts"]), "reply")  # ends as the whole card
    # and the next turn does not try to stream again
    await h.done(await h.mention("we need it by Q3", channel="C2"), timeout=15)
    assert len(h.fake.calls_to("chat.startStream")) == 1


async def test_a_stream_slack_closed_is_finished_with_an_update(start: Start, kit: Kit) -> None:
    fake = await FakeSlack.start(stream_lifetime=0.3)  # Slack's is about five minutes
    try:
        h = await start(llm=slow_writer(kit, per_chunk=0.05), fake=fake, append_interval=0.2)
        ev = await h.mention(GONG)
        row = await h.done(ev, timeout=15)
        assert row["state"] == "done"
        [reply] = h.replies("C1", ev["ts"])
        errors = [c.error for c in stream_calls(fake, reply["ts"]) if not c.ok]
        assert "message_not_in_streaming_state" in errors
        [update] = calls_in(fake, "chat.update", ts=reply["ts"])
        assert update.ok
        card = h.card("C1", reply["ts"])
        s = await answered(h, "C1", ev["ts"])
        assert card["blocks"] == blocks.card(s).blocks  # the whole card, reply included
    finally:
        await h.bot.stop()
        await fake.close()


async def test_over_the_workspace_stream_budget_turns_post_and_update(start: Start) -> None:
    limits = {"chat.startStream": 2, "chat.appendStream": 100, "chat.stopStream": 2}
    h = await start(stream_limits=limits)
    events = [await h.mention(f"{GONG} ({i})", channel=f"C{i}") for i in range(4)]
    for ev in events:
        assert (await h.done(ev))["state"] == "done"
        assert len(h.replies(ev["channel"], ev["ts"])) == 1  # none lost, none doubled
    assert len(h.fake.calls_to("chat.startStream")) == 2
    assert len(h.fake.calls_to("chat.stopStream")) == 2
    posted = [c for c in h.fake.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert len(posted) == 2 and len(h.fake.calls_to("chat.update")) == 2
    assert all(c.status == 200 for c in h.fake.calls)  # the budget kept Slack from refusing


async def test_slack_rate_limiting_a_stream_falls_back_and_loses_nothing(start: Start) -> None:
    # Another instance (or app) spent the workspace's startStream allowance: Slack says 429.
    fake = await FakeSlack.start(rate_limits={"chat.startStream": 1})
    try:
        h = await start(fake=fake)
        for i in range(3):  # one after another
            ev = await h.mention(f"{GONG} ({i})", channel=f"C{i}")
            assert (await h.done(ev, timeout=8))["state"] == "done"
            assert len(h.replies(ev["channel"], ev["ts"])) == 1
        statuses = [c.status for c in fake.calls_to("chat.startStream")]
        assert statuses == [200, 429]  # then the bot stopped asking until Retry-After
        assert len([c for c in fake.calls_to("chat.postMessage") if c.args.get("thread_ts")]) == 2
    finally:
        await h.bot.stop()
        await fake.close()


async def test_stopped_mid_stream_the_restart_finishes_that_message(
    start: Start, kit: Kit, tmp_path: Path
) -> None:
    router = slow_writer(kit, per_chunk=0.1)
    h = await start(llm=router, drain_timeout=0.1, db=tmp_path / "shared.db")
    ev = await h.mention(GONG)
    await h.fake.wait_for_call("chat.startStream", timeout=10)
    await h.bot.stop()  # the process goes away while the reply is streaming
    item = await h.inbox.get(f"{TEAM_ID}:C1:{ev['ts']}")
    assert item is not None and item.state == "pending" and item.reply_ts

    again = await start(llm=router, fake=h.fake, db=tmp_path / "shared.db")
    row = await again.done(ev, timeout=15)
    assert row["state"] == "done" and row["reply_ts"] == item.reply_ts
    await asyncio.sleep(0.2)
    assert len(again.replies("C1", ev["ts"])) == 1  # finished, not posted again
    assert len(h.fake.calls_to("chat.startStream")) == 1
    assert block(again.card("C1", item.reply_ts), "reply")


async def test_a_cache_hit_posts_its_card_at_once(start: Start) -> None:
    h = await start(cache=DictCache())
    first = await h.mention(GONG, channel="C1")
    await h.done(first)
    again = await h.mention(GONG, channel="C2")  # the same message, a new thread: a hit
    row = await h.done(again)
    assert len(h.fake.calls_to("chat.startStream")) == 1  # only the first turn streamed
    [post] = calls_in(h.fake, "chat.postMessage", thread_ts=again["ts"])
    s = await answered(h, "C2", again["ts"])
    assert s.cache == "exact" and post.args["blocks"] == blocks.card(s).blocks
    assert not calls_in(h.fake, "chat.update", ts=row["reply_ts"])
