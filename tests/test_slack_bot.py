"""The Slack bot end to end, offline: the real bolt AsyncApp + AsyncSocketModeHandler (through
`bot.app.SlackBot`), the real engine on its offline tier and SQLite, against the fake Slack."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import blocks
from bot.app import BotStartError, SlackBot
from bot.ops import Metrics, OpsServer
from bot.text import escape_mrkdwn
from bot.turns import BotConfig
from devtools.fake_slack import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    app_mention_event,
    assistant_thread_started_event,
    bot_message_event,
    message_changed_event,
    message_deleted_event,
    message_event,
)
from engine.llm.offline import OfflineProvider
from engine.model import Draft, StepCall
from engine.ports import StepRequest, StepResult
from tests.slack_kit import (
    APP_TOKEN,
    BOT_TOKEN,
    GONG,
    DictCache,
    SlowProvider,
    Start,
    block,
    calls_in,
    dump,
)

pytestmark = pytest.mark.asyncio



# Harness -------------------------------------------------------------------------------------


class ScriptedReply:
    """Offline capture and detect; generate answers with a reply (and tip) a test chooses."""

    name = "scripted"

    def __init__(self, reply: str, tip: str = "Stay calm and ask a question.") -> None:
        self.reply, self.tip = reply, tip

    async def complete(self, request: StepRequest) -> StepResult:
        if request.step != "generate":
            return OfflineProvider().complete_now(request)
        return StepResult(
            Draft(self.reply, self.tip), StepCall("generate", self.name, "script-1", 1.0)
        )


def texts(message: Mapping[str, Any]) -> str:
    """Every piece of text a message shows: its text and all of its blocks, as JSON."""
    return dump({"text": message.get("text"), "blocks": message.get("blocks")})


def visible_chars(value: Any) -> int:
    """Characters of text a rep sees in blocks (every "text" string, buttons included)."""
    if isinstance(value, list):
        return sum(visible_chars(v) for v in value)
    if isinstance(value, dict):
        own = len(value["text"]) if isinstance(value.get("text"), str) else 0
        return own + sum(visible_chars(v) for k, v in value.items() if k != "text" or not own)
    return 0


def button_value(message: Mapping[str, Any], action_id: str) -> str:
    for b in message["blocks"]:
        for element in b.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button")


# A turn --------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_mention_shows_status_then_streams_a_card_into_the_thread(start: Start) -> None:
    h = await start()
    ev = await h.mention(GONG, user="U7", channel="C1")
    row = await h.done(ev)
    assert row["state"] == "done"

    status = calls_in(h.fake, "assistant.threads.setStatus", thread_ts=ev["ts"])[0]
    assert status.args["status"] == "reading the deal…" and status.args["channel_id"] == "C1"
    assert status.at - h.pushed_at[ev["ts"]] < 1.0  # working within a second
    start_stream = h.fake.calls_to("chat.startStream")[0]
    assert start_stream.at >= status.at  # status first, then the reply
    assert start_stream.args["thread_ts"] == ev["ts"]
    assert start_stream.args["recipient_user_id"] == "U7"
    assert start_stream.args["recipient_team_id"] == TEAM_ID
    # The offline tier's reply is one delta: it opens the stream; the card closes it.
    [stop] = h.fake.calls_to("chat.stopStream")
    assert stop.ok and not h.fake.calls_to("chat.update")

    [reply] = h.replies("C1", ev["ts"])  # exactly one message in the thread
    assert reply["ts"] == row["reply_ts"] == start_stream.response["ts"]
    stream = h.fake.stream(reply["ts"])
    suggestion = await h.engine.answered(f"{TEAM_ID}:C1:{ev['ts']}")
    assert suggestion is not None and "Gong" in suggestion.reply
    assert stream.state == "stopped"
    assert stream.text == blocks.streamed_lead(suggestion.situation) + escape_mrkdwn(
        suggestion.reply
    )
    card = h.card("C1", reply["ts"])
    assert card["blocks"] == stop.args["blocks"] == blocks.streamed_card(suggestion)
    assert re.search(r"Price objection|Competitor mention", stream.text)
    header = card["blocks"][0]
    assert header["type"] == "header" and "% confident" in header["text"]["text"]
    assert "*Coaching tip:*" in block(card, "tip")["text"]["text"]
    slots = dump(block(card, "slots0"))
    assert "Competitor" in slots and "Gong" in slots
    footer = block(card, "footer")["elements"][0]["text"]
    assert "ms" in footer and "cache: miss" in footer and "offline/rules-v1" in footer
    actions = [e["action_id"] for e in block(card, "card_actions")["elements"]]
    assert actions == list(blocks.CARD_ACTIONS)
    assert button_value(card, "feedback_up") == row["suggestion_id"]
    reset = block(card, "card_actions")["elements"][4]  # after Deal summary
    assert reset["confirm"]["confirm"]["text"] == "Reset"  # Slack asks before resetting
    assert not any("link_names" in c.args for c in h.fake.calls)
    assert h.fake.server_errors == []


@pytest.mark.timeout(20)
async def test_follow_up_in_the_thread_without_a_mention_uses_the_slots(start: Start) -> None:
    h = await start()
    ev = await h.mention(GONG)
    await h.done(ev)
    follow = await h.send(
        message_event("We're a team of 30 and need it by Q3", thread_ts=ev["ts"])
    )
    row = await h.done(follow)
    assert row["state"] == "done"
    replies = h.replies("C1", ev["ts"])
    assert len(replies) == 2
    card = h.card("C1", row["reply_ts"])
    slots = dump(block(card, "slots0"))
    assert "Gong" in slots and "30" in slots and "by Q3" in slots  # remembered + new
    assert "Team size* 🆕" in slots and "Competitor* 🆕" not in slots


@pytest.mark.timeout(20)
async def test_a_redelivered_envelope_and_the_twin_message_event_make_one_reply(
    start: Start,
) -> None:
    h = await start()
    ev = app_mention_event(GONG)
    twin = {k: v for k, v in ev.items() if k != "type"} | {"type": "message"}
    twin["channel_type"] = "channel"
    first = await h.fake.push_event(ev, event_id="Ev0SAME")
    again = await h.fake.push_event(ev, event_id="Ev0SAME", retry_num=1, retry_reason="timeout")
    other = await h.fake.push_event(twin, event_id="Ev0TWIN")  # message.channels, same ts
    for env in (first, again, other):
        await h.fake.wait_for_ack(env)
    await h.done(ev)
    third = await h.fake.push_event(ev, event_id="Ev0SAME", retry_num=2, retry_reason="timeout")
    await h.fake.wait_for_ack(third)
    await asyncio.sleep(0.3)
    assert len(h.replies("C1", ev["ts"])) == 1
    assert len(h.fake.calls_to("chat.startStream")) == 1
    counts = await h.inbox.counts()
    assert counts == {"done": 1}


# Slash command -------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_agent_stats_is_ephemeral_with_real_figures_and_refused_for_others(
    start: Start,
) -> None:
    h = await start(admins=frozenset({"U_ADMIN"}))
    for text, channel in ((GONG, "C1"), ("Can we start a pilot next month?", "C2")):
        await h.done(await h.mention(text, channel=channel))

    env = await h.fake.push_command("/agent-stats", "", user_id="U_ADMIN")
    ack = await h.fake.wait_for_ack(env)
    assert ack is not None and ack["response_type"] == "ephemeral"
    shown = dump(ack["blocks"])
    report = await h.engine.stats()
    assert report.turns == 2
    assert "*2* turns" in shown
    for section in ("Cache", "Reconcile", "LLM providers", "Latency"):
        assert f"*{section}" in shown
    assert f"of {report.reconcile.turns} analysed turns" in shown
    p95 = report.latency["end_to_end"].p95
    assert f"`end_to_end` p50 {report.latency['end_to_end'].p50:.1f}" in shown
    assert f"p95 {p95:.1f}" in shown

    env = await h.fake.push_command("/agent-stats", "latency", user_id="U_ADMIN")
    only = dump((await h.fake.wait_for_ack(env))["blocks"])
    assert "*Latency" in only and "*Cache" not in only

    env = await h.fake.push_command("/agent-stats", "all", user_id="U_SOMEONE")
    refusal = await h.fake.wait_for_ack(env)
    assert refusal["response_type"] == "ephemeral"
    assert "limited to the bot's admins" in refusal["text"] and "turns" not in refusal["text"]

    env = await h.fake.push_command("/agent-stats", "pipeline", user_id="U_ADMIN")
    usage = await h.fake.wait_for_ack(env)
    assert usage["text"].startswith("Usage: `/agent-stats")
    assert h.fake.messages("C9") == []  # nothing was posted for everyone to see


# Buttons -------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_feedback_click_is_stored_with_the_suggestion(start: Start) -> None:
    h = await start()
    ev = await h.mention(GONG)
    row = await h.done(ev)
    card = h.card("C1", row["reply_ts"])
    payload = h.fake.block_actions_payload(
        "feedback_down",
        button_value(card, "feedback_down"),
        user_id="U1",
        channel="C1",
        message_ts=row["reply_ts"],
    )
    await h.fake.wait_for_ack(await h.fake.push_action(payload))
    note = await h.fake.wait_for_call("response_url")
    assert note.args["response_type"] == "ephemeral" and note.args["replace_original"] is False
    stored = await h.store.run(
        lambda: h.store.db.execute(
            "SELECT feedback FROM suggestions WHERE id = ?", [row["suggestion_id"]]
        ).fetchone()
    )
    assert stored == (-1,)
    assert (await h.engine.stats()).feedback.rated == 1


@pytest.mark.timeout(20)
async def test_regenerate_bypasses_the_cache_and_replaces_the_card(start: Start) -> None:
    cache = DictCache()
    h = await start(cache=cache)
    first = await h.done(await h.mention(GONG, channel="C1"))
    ev = await h.mention(GONG, channel="C2")  # same words, same (empty) context: a cache hit
    hit = await h.done(ev)
    card = h.card("C2", hit["reply_ts"])
    assert "cache: exact" in block(card, "footer")["elements"][0]["text"]
    assert hit["suggestion_id"] != first["suggestion_id"]

    lookups = cache.lookups
    payload = h.fake.block_actions_payload(
        "regenerate",
        button_value(card, "regenerate"),
        user_id="U1",
        channel="C2",
        message_ts=hit["reply_ts"],
    )
    await h.fake.wait_for_ack(await h.fake.push_action(payload))
    update = await h.fake.wait_for_call(
        "chat.update", lambda c: "regenerated by" in dump(c.args.get("blocks"))
    )
    assert update.args["ts"] == hit["reply_ts"]  # the card is replaced, not a new message
    assert cache.lookups == lookups  # the cache was not even asked
    fresh = h.card("C2", hit["reply_ts"])
    footer = block(fresh, "footer")["elements"][0]["text"]
    assert "cache: bypass" in footer and "offline/rules-v1" in footer
    new_id = button_value(fresh, "regenerate")
    assert new_id != hit["suggestion_id"]
    stored = await h.store.suggestion(new_id)
    assert stored is not None and stored.cache == "bypass"
    assert len(h.replies("C2", ev["ts"])) == 1


@pytest.mark.timeout(20)
async def test_reset_context_clears_the_thread_slots(start: Start) -> None:
    h = await start()
    ev = await h.mention(GONG)
    row = await h.done(ev)
    card = h.card("C1", row["reply_ts"])
    payload = h.fake.block_actions_payload(
        "reset_context",
        button_value(card, "reset_context"),
        channel="C1",
        message_ts=row["reply_ts"],
    )
    await h.fake.wait_for_ack(await h.fake.push_action(payload))
    await h.fake.wait_for_call("response_url")
    follow = await h.done(await h.send(message_event("ok, what next?", thread_ts=ev["ts"])))
    slots = dump(h.card("C1", follow["reply_ts"])["blocks"])
    assert "Gong" not in slots


# What it ignores -----------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_own_messages_other_bots_edits_and_chatter_are_ignored(start: Start) -> None:
    h = await start()
    ev = await h.mention(GONG)
    row = await h.done(ev)
    ignored = [
        # Slack echoes the bot's own reply (modern apps: bot_id + user, no subtype)
        bot_message_event(
            "Price objection", bot_id=BOT_ID, user=BOT_USER_ID, subtype=None, thread_ts=ev["ts"]
        ),
        bot_message_event("I'm another bot", thread_ts=ev["ts"]),
        bot_message_event("a modern bot", bot_id="B_X", user="U_X", subtype=None),
        # what our chat.update causes, and a delete
        message_changed_event(
            "C1", row["reply_ts"], "edited", user=BOT_USER_ID, thread_ts=ev["ts"]
        ),
        message_deleted_event("C1", row["reply_ts"], thread_ts=ev["ts"]),
        # channel chatter not addressed to the bot, and a thread it never answered
        message_event("lunch anyone?"),
        message_event("nice deal!", thread_ts="1600000000.000100"),
        # a channel join
        message_event("joined", subtype="channel_join"),
    ]
    for event in ignored:
        env = await h.fake.push_event(event)
        assert await h.fake.wait_for_ack(env) is None  # acked, so Slack won't retry
    await asyncio.sleep(0.3)
    assert await h.inbox.counts() == {"done": 1}
    assert len(h.fake.calls_to("chat.startStream")) == 1
    assert len(h.fake.calls_to("assistant.threads.setStatus")) == 1


# Safety --------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_mentions_in_model_output_arrive_neutralised(start: Start) -> None:
    nasty = (
        "Hey <!channel> and <!here|here>, <!everyone> @channel @here: ask <@U999> and "
        "<!subteam^S123|@sales> about <https://evil.example|this> & the >50% discount"
    )
    h = await start(llm=ScriptedReply(nasty, tip="Loop in @everyone <!channel>"))
    ev = await h.mention(GONG)
    row = await h.done(ev)
    card = h.card("C1", row["reply_ts"])
    shown = [texts(card), h.fake.stream(row["reply_ts"]).text]
    shown += [dump(c.args) for c in h.fake.calls if c.method.startswith("chat.")]
    for text in shown:
        for live in ("<!channel>", "<!here", "<!everyone>", "<@U999>", "<!subteam", "<https"):
            assert live not in text, (live, text[:300])
        assert not re.search(r"(?<![\w.])@(channel|here|everyone)\b", text), text[:300]
    reply = h.fake.stream(row["reply_ts"]).text  # the reply streamed; the card is under it
    assert "&lt;!channel&gt;" in reply and "&amp; the &gt;50% discount" in reply
    assert "scripted/script-1" in block(card, "footer")["elements"][0]["text"]
    assert not any("link_names" in c.args for c in h.fake.calls)


@pytest.mark.timeout(20)
async def test_empty_mention_and_file_only_message_get_help(start: Start) -> None:
    h = await start()
    ev = await h.mention("")  # just "<@U_BOT> "
    row = await h.done(ev)
    [help_reply] = h.replies("C1", ev["ts"])
    assert help_reply["text"] == blocks.HELP_TEXT and row["suggestion_id"] is None
    dm = message_event(
        "", channel="D1", subtype="file_share", files=[{"id": "F1", "name": "deck.pdf"}]
    )
    await h.send(dm)
    await h.done(dm)
    [file_help] = h.replies("D1", dm["ts"])
    assert file_help["text"] == blocks.FILE_HELP_TEXT
    assert (await h.engine.stats()).turns == 0


@pytest.mark.timeout(20)
async def test_a_huge_reply_is_cut_to_slack_limits_with_a_marker(start: Start) -> None:
    h = await start(llm=ScriptedReply("Let me explain. " * 800, tip="Be brief. " * 300))
    ev = await h.mention(GONG)
    row = await h.done(ev)
    assert row["state"] == "done"
    card = h.card("C1", row["reply_ts"])
    assert len(card["blocks"]) <= 50
    reply = block(card, "reply")["text"]["text"]
    assert len(reply) <= 3000 and "✂" in reply
    assert "Message cut" in dump(block(card, "notes"))
    assert visible_chars(card["blocks"]) <= 4500  # about 4,000 characters a message
    assert not [c for c in h.fake.calls if c.error == "invalid_blocks"]


@pytest.mark.timeout(20)
async def test_tokens_never_appear_in_logs(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await start()
    h.fake.fail_next("chat.startStream", "invalid_arguments")  # an error on the way
    await h.done(await h.mention(GONG))
    h.fake.add_channel("C_LOCKED", is_member=False)
    await h.done(await h.mention("hello", channel="C_LOCKED"))
    logged = "\n".join(
        r.getMessage() + (r.exc_text or "") for r in caplog.records
    )
    assert "Sending a request" in logged  # slack_sdk debug logs were captured
    for secret in (BOT_TOKEN, APP_TOKEN, "SECRETBOTTOKEN", "SECRETAPPTOKEN"):
        assert secret not in logged
    for message in h.fake.messages("C1") + h.fake.messages("C_LOCKED"):
        assert "SECRET" not in texts(message)


# Slack failures -----------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_a_rate_limited_stream_posts_and_updates_at_once_other_calls_wait(
    start: Start,
) -> None:
    h = await start()
    h.fake.fail_next("chat.startStream", retry_after=30)  # not waited for
    h.fake.fail_next("chat.update", retry_after=0)  # waited for (no time) and tried again
    ev = await h.mention(GONG)
    row = await h.done(ev, timeout=8)
    assert row["state"] == "done"
    assert [c.status for c in h.fake.calls_to("chat.startStream")] == [429]
    assert len(calls_in(h.fake, "chat.postMessage", thread_ts=ev["ts"])) == 1
    assert [c.status for c in h.fake.calls_to("chat.update")] == [429, 200]
    assert len(h.replies("C1", ev["ts"])) == 1
    assert block(h.card("C1", row["reply_ts"]), "reply")  # the whole card replaced the text
    # The workspace's startStream budget is spent until Retry-After: the next turn posts.
    await h.done(await h.mention("we need it by Q3", channel="C2"))
    assert len(h.fake.calls_to("chat.startStream")) == 1


@pytest.mark.timeout(20)
async def test_slack_down_for_a_while_the_turn_is_tried_again_and_posted_once(
    start: Start,
) -> None:
    h = await start(retry_backoff=0.05)
    # 500s outlast the SDK's own retries (1 try + 2 retries): the turn itself tries again,
    # finishing the message it already streamed.
    h.fake.fail_next("chat.stopStream", "fatal_error", status=500, times=3)
    h.fake.fail_next("chat.update", "fatal_error", status=500, times=3)
    ev = await h.mention(GONG)
    row = await h.done(ev, timeout=8)
    assert row["state"] == "done" and row["attempts"] == 2
    assert [c.status for c in h.fake.calls_to("chat.update")] == [500, 500, 500, 200]
    assert len(h.fake.calls_to("chat.startStream")) == 1
    assert len(h.replies("C1", ev["ts"])) == 1
    assert block(h.card("C1", row["reply_ts"]), "reply")
    assert (await h.engine.stats()).turns == 1  # the second attempt reused the suggestion


@pytest.mark.timeout(20)
async def test_not_in_channel_is_logged_once_and_the_bot_keeps_going(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    h = await start()
    h.fake.add_channel("C_PRIV", "deals", is_member=False)
    first = await h.done(await h.mention("price is too high", channel="C_PRIV"))
    second = await h.done(await h.mention("still too high", channel="C_PRIV"))
    assert first["state"] == second["state"] == "failed"
    assert first["error"] == "not_in_channel"
    warnings = [r for r in caplog.records if "cannot post in channel C_PRIV" in r.getMessage()]
    assert len(warnings) == 1
    assert first["attempts"] == 1  # no retry loop
    ok = await h.done(await h.mention(GONG, channel="C1"))
    assert ok["state"] == "done"


@pytest.mark.timeout(20)
async def test_where_status_is_unavailable_a_reaction_shows_it_is_working(start: Start) -> None:
    h = await start()
    h.fake.fail_next("assistant.threads.setStatus", "missing_scope")
    ev = await h.mention(GONG)
    await h.done(ev)
    add = h.fake.calls_to("reactions.add")[0]
    assert add.args["timestamp"] == ev["ts"] and add.args["name"] == "eyes"
    assert add.at - h.pushed_at[ev["ts"]] < 1.0
    await h.fake.wait_for_call("reactions.remove")  # cleared once the card is there
    assert "reactions" not in h.fake.message("C1", ev["ts"])


# Surfaces ------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_dm_and_assistant_thread_get_prompts_and_answers(start: Start) -> None:
    h = await start()
    started = assistant_thread_started_event(user="U1", channel="D1")
    thread_ts = started["assistant_thread"]["thread_ts"]
    await h.fake.wait_for_ack(await h.fake.push_event(started))
    await h.fake.wait_for_call("assistant.threads.setSuggestedPrompts")
    prompts = h.fake.suggested_prompts[("D1", thread_ts)]["prompts"]
    assert 1 <= len(prompts) <= 4 and all(p["title"] and p["message"] for p in prompts)

    dm = await h.send(message_event(GONG, channel="D1", thread_ts=thread_ts))
    row = await h.done(dm)
    assert row["state"] == "done"
    assert h.fake.stream(row["reply_ts"]).thread_ts == thread_ts
    top = await h.send(message_event("Can we start next month?", channel="D2"))
    assert (await h.done(top))["state"] == "done"

    await h.fake.wait_for_ack(
        await h.fake.push_event({"type": "app_home_opened", "user": "U1", "tab": "home"})
    )
    await h.fake.wait_for_call("views.publish")
    # agent_view tells the app what the rep is looking at: acked (bolt acks only an event a
    # listener takes), nothing sent.
    calls = len(h.fake.calls)
    await h.fake.wait_for_ack(
        await h.fake.push_event({"type": "app_context_changed", "context": {}})
    )
    assert len(h.fake.calls) == calls and h.fake.server_errors == []


# Shutdown and restart ------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_stopping_mid_turn_leaves_it_in_the_inbox_and_a_restart_answers_once(
    start: Start, tmp_path: Path
) -> None:
    slow = SlowProvider(delay=3.0)
    h = await start(llm=slow, drain_timeout=0.2, db=tmp_path / "shared.db")
    ev = await h.mention(GONG)
    await asyncio.wait_for(slow.started.wait(), 5)
    await h.bot.stop()  # SIGTERM path: stop taking events, hand back the turn
    item = await h.inbox.get(f"{TEAM_ID}:C1:{ev['ts']}")
    assert item is not None and item.state == "pending"
    assert h.replies("C1", ev["ts"]) == []

    again = await start(fake=h.fake, db=tmp_path / "shared.db")
    row = await again.done(ev)
    assert row["state"] == "done" and row["attempts"] == 2
    await asyncio.sleep(0.2)
    assert len(again.replies("C1", ev["ts"])) == 1


@pytest.mark.timeout(20)
async def test_a_turn_whose_reply_was_started_is_finished_not_posted_again(
    start: Start, tmp_path: Path
) -> None:
    """The crash window after the reply began streaming: the restart updates that message."""
    h = await start(db=tmp_path / "shared.db")
    ev = await h.mention(GONG)
    row = await h.done(ev)
    # Rewind the row as if the process died right after the stream started.
    stream_ts = row["reply_ts"]

    def rewind() -> None:
        with h.store.db.conn:
            h.store.db.conn.execute(
                "UPDATE inbox SET state = 'pending', suggestion_id = NULL WHERE reply_ts = ?",
                [stream_ts],
            )

    await h.store.run(rewind)
    h.fake.streams[stream_ts].state = "streaming"
    await h.bot.stop()
    again = await start(fake=h.fake, db=tmp_path / "shared.db")
    done = await again.done(ev)
    assert done["state"] == "done" and done["reply_ts"] == stream_ts
    assert len(again.replies("C1", ev["ts"])) == 1
    assert len(h.fake.calls_to("chat.startStream")) == 1
    assert len(h.fake.calls_to("chat.postMessage")) == 0


@pytest.mark.timeout(20)
async def test_a_failed_start_cleans_up_like_stop_and_says_why(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Socket Mode refuses the app token after recover() resumed a turn: run() raises a clear
    error, the resumed turn is handed back to the inbox and every HTTP session is closed."""
    slow = SlowProvider(delay=3.0)
    h = await start(llm=slow, drain_timeout=0.2, db=tmp_path / "shared.db")
    ev = await h.mention(GONG)
    await asyncio.wait_for(slow.started.wait(), 5)
    await h.bot.stop()  # leaves the turn pending for the next start
    item_id = f"{TEAM_ID}:C1:{ev['ts']}"

    sessions: list[aiohttp.ClientSession] = []
    real_session = aiohttp.ClientSession

    def recording_session(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = real_session(*args, **kwargs)
        sessions.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", recording_session)
    slow.started.clear()
    h.fake.fail_next("apps.connections.open", "invalid_auth")
    bot = SlackBot(
        engine=h.engine,
        inbox_store=h.inbox,
        bot_token=BOT_TOKEN,
        app_token=APP_TOKEN,
        api_url=h.fake.api_url,
        config=BotConfig(append_interval=0.2, drain_timeout=0.2),
    )
    caplog.set_level(logging.WARNING)
    with pytest.raises(BotStartError, match=r"Socket Mode.*invalid_auth") as raised:
        await bot.run(asyncio.Event())
    assert APP_TOKEN not in str(raised.value) and BOT_TOKEN not in str(raised.value)
    assert slow.started.is_set(), "recover() had resumed the turn before the connect failed"

    assert bot.runner is not None and not bot.runner._tasks and bot.runner.in_flight == 0
    assert bot.handler is None and bot.ops is None and bot._session is None
    assert sessions and all(s.closed for s in sessions)
    item = await h.inbox.get(item_id)
    assert item is not None and item.state == "pending"  # the next start runs it
    assert h.replies("C1", ev["ts"]) == []
    sessions.clear()
    del bot
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


# Operations ----------------------------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_healthz_and_metrics(start: Start) -> None:
    h = await start(http_port=0, http_host="127.0.0.1")
    await h.done(await h.mention(GONG))
    assert h.bot.ops is not None
    base = f"http://127.0.0.1:{h.bot.ops.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
            assert await resp.json() == {
                "ok": True,
                "socket_connected": True,
                "database_writable": True,
            }
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            metrics = await resp.text()
        async with http.get(f"{base}/reconcile/stats") as resp:  # the bot serves its report
            assert resp.status == 200
            assert (await resp.json())["turns"] == 1
    assert 'sales_agent_turns_total{outcome="card"} 1.0' in metrics
    assert 'sales_agent_cache_lookups_total{tier="miss"} 1.0' in metrics
    assert "sales_agent_turn_seconds_bucket" in metrics
    assert 'sales_agent_engine_step_seconds_count{step="generate"} 1.0' in metrics
    assert "# TYPE sales_agent_provider_errors gauge" in metrics
    assert 'sales_agent_inbox_items{state="done"} 1.0' in metrics
    assert "sales_agent_socket_connected 1.0" in metrics
    assert 'sales_agent_slack_events_total{outcome="accepted"} 1.0' in metrics

    await h.fake.disconnect_clients()
    await h.fake.close()  # Slack is gone: the socket cannot come back
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as resp:
        body = await resp.json()
        assert resp.status == 503 and body["socket_connected"] is False


@pytest.mark.timeout(20)
async def test_metrics_scrapes_reuse_the_engine_stats_for_a_while(start: Start) -> None:
    """The stats report parses up to 10,000 call-log rows on the database thread: scrapes
    within the window share one read, the live counters still move between them."""
    h = await start(http_port=0, http_host="127.0.0.1")
    reads = 0
    real_stats = h.engine.stats

    async def counting_stats(window: int = 10_000) -> Any:
        nonlocal reads
        reads += 1
        return await real_stats(window)

    h.engine.stats = counting_stats  # type: ignore[method-assign]
    assert h.bot.ops is not None
    url = f"http://127.0.0.1:{h.bot.ops.port}/metrics"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 200
            assert 'sales_agent_turns_total{outcome="card"}' not in await resp.text()
        await h.done(await h.mention(GONG))
        async with http.get(url) as resp:
            assert resp.status == 200
            second = await resp.text()
    assert reads == 1
    assert 'sales_agent_turns_total{outcome="card"} 1.0' in second  # live, not cached

    h.bot._stats.clear()  # the window has passed
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
    assert reads == 2


async def test_ops_server_listens_on_loopback_unless_told_otherwise() -> None:
    async def healthy() -> Mapping[str, bool]:
        return {"ok": True}

    ops = OpsServer(Metrics(), healthy, port=0)
    assert ops.host == "127.0.0.1"
    port = await ops.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200
    finally:
        await ops.stop()


@pytest.mark.timeout(20)
async def test_agent_deal_shows_the_latest_threads_completeness_and_next_question(
    start: Start,
) -> None:
    h = await start()
    env = await h.fake.push_command("/agent-deal", "", user_id="U1")
    empty = await h.fake.wait_for_ack(env)
    assert "haven't coached a thread for you in this channel" in empty["text"]

    ev = await h.mention("We use Gong, 40 reps, budget is $30k")
    row = await h.done(ev)
    card = h.card("C1", row["reply_ts"])
    assert "*Ask next:*" in dump(card["blocks"])
    env = await h.fake.push_command("/agent-deal", "", user_id="U1")
    ack = await h.fake.wait_for_ack(env)
    assert ack["response_type"] == "ephemeral"
    shown = dump(ack["blocks"])
    rules = h.engine.playbook.deal
    assert "BANT" in shown and "% complete" in shown and "*Ask next:*" in shown
    assert any(
        i.question in shown or any(q in shown for q in i.question_in.values())
        for i in rules.framework.items
    )
    # Provenance: the inbox id of the message that said it (team:channel:ts).
    assert "Budget: $30k (message T" in shown and f":C1:{ev['ts']})" in shown
    assert "25% complete" not in shown and "20% complete" in shown  # budget 2 of BANT's 10
    assert h.fake.messages("C1", ev["ts"])[-1]["ts"] == row["reply_ts"]  # nothing posted


@pytest.mark.timeout(20)
async def test_deal_summary_button_posts_the_deal_in_the_thread(start: Start) -> None:
    h = await start()
    ev = await h.mention(GONG)
    row = await h.done(ev)
    card = h.card("C1", row["reply_ts"])
    payload = h.fake.block_actions_payload(
        "deal_summary",
        button_value(card, "deal_summary"),
        user_id="U1",
        channel="C1",
        message_ts=row["reply_ts"],
    )
    await h.fake.wait_for_ack(await h.fake.push_action(payload))
    call = await h.fake.wait_for_call("chat.postMessage", lambda c: "Deal summary" in str(c.args))
    assert call.args["channel"] == "C1" and call.args["thread_ts"] == ev["ts"]
    assert "% complete" in call.args["text"]
