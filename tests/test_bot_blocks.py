"""Block Kit rendering: escaping, neutralised mentions and Slack's limits, checked with the
fake Slack's own validator (the one that answers `invalid_blocks`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot import blocks
from bot.blocks import card, fit, stats_message
from bot.text import (
    CUT_MARK,
    WORD_JOINER,
    MrkdwnStream,
    clean_incoming,
    escape_mrkdwn,
    truncate,
)
from devtools.fake_slack import FakeSlack, _ApiError
from engine.model import StepCall, Suggestion, ThreadKey
from engine.ports import CallRecord, TurnRecord
from engine.stats import build_report

pytestmark = pytest.mark.timeout(10)


def suggestion(**changes: Any) -> Suggestion:
    base: dict[str, Any] = {
        "id": "s1",
        "key": ThreadKey("T1", "C1", "1700000000.000100"),
        "message_id": "m1",
        "reply": "Happy to help.",
        "coaching_tip": "Ask a question.",
        "situation": "price_objection",
        "confidence": 0.82,
        "secondary": None,
        "strategy": "value_vs_price",
        "talk_track": "",
        "slots_delta": {"competitor": "Gong"},
        "slots": {"competitor": "Gong", "team_size": "30"},
        "cache": "miss",
        "calls": (StepCall("generate", "offline", "rules-v1", 1.0),),
        "step_ms": {"generate": 1.0},
        "latency_ms": 12.3,
        "reconciled": False,
    }
    return Suggestion(**(base | changes))


def validate(message_blocks: list[dict[str, Any]]) -> None:
    try:
        FakeSlack()._validate_blocks(message_blocks)
    except _ApiError as exc:
        raise AssertionError(exc.extra) from None


def visible(value: Any) -> int:
    if isinstance(value, list):
        return sum(visible(v) for v in value)
    if isinstance(value, dict):
        own = len(value["text"]) if isinstance(value.get("text"), str) else 0
        return own + sum(visible(v) for k, v in value.items() if k != "text" or not own)
    return 0


def test_escape_neutralises_every_kind_of_ping() -> None:
    raw = "<!channel> <!here> <!everyone> <@U1> <!subteam^S1|@sales> @channel @here a&b>c"
    out = escape_mrkdwn(raw)
    assert "<" not in out and ">" not in out.replace("&gt;", "")
    assert out.startswith("&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;@")
    assert f"@{WORD_JOINER}channel @{WORD_JOINER}here" in out
    assert "a&amp;b&gt;c" in out
    assert escape_mrkdwn("mail ann@acme.com") == "mail ann@acme.com"  # e-mail untouched


def test_clean_incoming_strips_the_bot_and_slack_markup() -> None:
    text = "<@U_BOT> they use <https://gong.io|Gong> &amp; ask <@U2|ann> in <#C1|deals> <!here>"
    assert clean_incoming(text, "U_BOT") == "they use Gong & ask @ann in #deals @here"
    assert clean_incoming("<@U_BOT>   ", "U_BOT") == ""
    assert clean_incoming("see <https://x.example/a?b=1&amp;c=2>", "U_BOT") == (
        "see https://x.example/a?b=1&c=2"
    )


def test_truncate_marks_the_cut_and_never_splits_an_escape() -> None:
    assert truncate("short", 10) == "short"
    text = "x" * 2990 + " &amp; more words here"
    cut = truncate(text, 3000)
    assert len(cut) <= 3000 and cut.endswith(CUT_MARK)
    assert "&am" not in cut.replace("&amp;", "")


def test_a_card_has_every_part_and_passes_validation() -> None:
    message = card(
        suggestion(notes=("The message was 9,000 characters; I read the first 4,000.",))
    )
    validate(message.blocks)
    kinds = [b["type"] for b in message.blocks]
    assert kinds[0] == "header" and kinds[-1] == "actions"
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert "Price objection · 82% confident" in shown
    assert "```Happy to help.```" in shown
    assert "*Competitor* 🆕\\nGong" in shown and "*Team size*\\n30" in shown
    assert "⏱ 12 ms · cache: miss · offline/rules-v1" in shown
    assert "⚠️ The message was 9,000 characters" in shown


def test_a_card_at_its_worst_stays_inside_every_limit() -> None:
    worst = suggestion(
        reply="<!channel> " + "word " * 5000,
        coaching_tip="tip " * 2000,
        strategy="s" * 500,
        slots={f"slot{i}": "v" * 3000 for i in range(25)},
        slots_delta={f"slot{i}": "v" for i in range(25)},
        notes=tuple(f"note {i} " + "n" * 500 for i in range(30)),
        calls=tuple(StepCall("generate", f"p{i}" * 50, "m" * 50, 1.0) for i in range(40)),
        secondary="competitor_mention" * 20,
    )
    message = card(worst)
    validate(message.blocks)
    assert len(message.blocks) <= 50
    assert visible(message.blocks) <= 4500
    assert len(message.text) <= 3000
    assert "<!channel>" not in json.dumps(message.blocks) + message.text
    reply = next(b for b in message.blocks if b.get("block_id") == "reply")["text"]["text"]
    assert reply.startswith("```") and reply.endswith("```") and CUT_MARK in reply


def test_fit_keeps_the_actions_and_says_what_it_cut() -> None:
    many = [{"type": "section", "text": {"type": "mrkdwn", "text": f"b{i}"}} for i in range(80)]
    many.append({"type": "actions", "elements": [{"type": "button", "action_id": "a"}]})
    fitted = fit(many)
    assert len(fitted) == 50 and fitted[-1]["type"] == "actions"
    assert "32 more blocks cut" in fitted[-2]["elements"][0]["text"]


def test_stats_message_shows_real_figures_and_escapes_names() -> None:
    turns = [
        TurnRecord(1.0, 100.0, {"capture": 10.0}, "miss", True, ("low_confidence",), "x", 1),
        TurnRecord(2.0, 5.0, {"cache": 1.0}, "exact", False, (), "x", -1),
    ]
    calls = [
        CallRecord(1.0, "capture", "<!channel>", "m", "fast", "win", 10.0),
        CallRecord(1.0, "capture", "<!channel>", "m", "fast", "error:timeout", 99.0),
    ]
    report = build_report(turns, calls)
    message = stats_message(report, "all")
    validate(message.blocks)
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert "*2* turns" in shown and "*50.0%* (1 of 2 rated)" in shown
    assert "hit rate *50.0%* of 2 lookups" in shown
    assert "rate *100.0%* (1 of 1 analysed turns)" in shown and "low_confidence 1" in shown
    assert "2 requests · 1 wins · 1 errors (timeout 1)" in shown
    assert "&lt;!channel&gt;/m" in shown and "<!channel>" not in shown
    assert "`end_to_end` p50 52.5" in shown
    only = json.dumps(stats_message(report, "reconcile").blocks)
    assert "Reconcile" in only and "Latency" not in only


@pytest.mark.parametrize("size", [1, 2, 7])
def test_streamed_pieces_escape_to_the_whole_replys_escaping(size: int) -> None:
    reply = "Fair point <!here> & thanks @channel, ann@acme.com @@here. " * 3 + "@"
    stream = MrkdwnStream()
    pieces = [stream.feed(reply[i : i + size]) for i in range(0, len(reply), size)]
    assert "".join(pieces) + stream.rest() == escape_mrkdwn(reply)
    assert "<!here>" not in "".join(pieces) and "@channel" not in "".join(pieces)


def test_a_streamed_card_is_the_card_without_its_reply() -> None:
    s = suggestion()
    under = blocks.streamed_card(s)
    validate(under)
    full = blocks.card(s).blocks
    assert len(under) == len(full) - 2
    assert all(b.get("block_id") != "reply" for b in under)
    assert "Suggested reply" not in json.dumps(under)


def test_help_and_notices_fit() -> None:
    for message in (blocks.help_message(), blocks.help_message(files_only=True)):
        validate(message.blocks)
        assert message.text


def test_the_console_and_slack_cards_show_the_same_facts() -> None:
    from cli.render import card_text
    from engine.card import card_view

    s = suggestion(
        secondary="competitor_mention",
        reconciled=True,
        notes=("Message cut to 4,000 characters",),
        calls=(StepCall("generate", "offline", "rules-v1", 1.0, fallback=True),),
    )
    view = card_view(s)
    slack, console = json.dumps(card(s).blocks, ensure_ascii=False), card_text(view)
    facts = [
        view.title, f"also {view.also}", view.play, view.reply, view.tip, *view.notes,
        *(slot.title for slot in view.slots), *(slot.value for slot in view.slots),
        "cache: miss", "offline/rules-v1", "offline fallback", "reconciled",
    ]
    assert view.also == "Competitor mention" and view.play == "value vs price"
    assert [f for f in facts if f not in slack] == []
    assert [f for f in facts if f not in console] == []
