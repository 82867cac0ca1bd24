"""The offline tier's replies, read as a rep would send them."""

from __future__ import annotations

import itertools
import re

from engine.llm import voice
from engine.llm.offline import draft
from engine.model import ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.rules.capture import capture

KEY = ThreadKey("T", "C", "replies")
_ids = itertools.count()


async def reply_to(engine: Engine, text: str) -> str:
    suggestion = await engine.handle(TurnInput(KEY, text, message_id=f"m{next(_ids)}"))
    return suggestion.reply


def test_slot_phrases_speak_to_the_prospect() -> None:
    assert voice.to_prospect("my VP of Sales") == "your VP of Sales"
    assert voice.to_prospect("We're losing deals and our reps know it") == (
        "You're losing deals and your reps know it"
    )
    assert voice.slot_phrase("decision_maker", "VP of Sales") == "your VP of Sales"
    assert voice.slot_phrase("decision_maker", "Priya (COO)") == "Priya"
    assert voice.slot_phrase("decision_maker", "the board") == "the board"
    assert voice.slot_phrase("timeline", "by June") == "June"
    assert voice.slot_phrase("pain", "Our reps waste 5 hours a week") == (
        "your reps waste 5 hours a week"
    )


async def test_a_decision_maker_is_echoed_back_as_theirs(engine: Engine) -> None:
    reply = await reply_to(engine, "I can't sign this myself, my VP of Sales has to approve it.")
    assert "your VP of Sales" in reply
    assert not re.search(r"\b(?:my|our) VP", reply)


async def test_a_pain_is_quoted_as_a_short_phrase_not_the_whole_sentence(engine: Engine) -> None:
    text = (
        "Honestly the biggest problem is that our reps waste 5 hours a week on CRM data entry, "
        "and the managers keep chasing them about it at every single pipeline review."
    )
    pain = capture(text).slots["pain"]
    assert len(pain.split()) <= 10 and "pipeline review" not in pain
    reply = await reply_to(engine, text)
    assert "When you say" not in reply
    assert "your reps waste 5 hours" in reply


async def test_no_reply_is_given_twice_in_a_thread(engine: Engine) -> None:
    messages = [
        "We're a team of 40 reps.",
        "Our managers spend hours on call reviews.",
        "Onboarding new reps takes months.",
        "Forecasting is a guessing game too.",
        "And nobody can see which deals are at risk.",
    ]
    replies = [await reply_to(engine, text) for text in messages]
    assert len(set(replies)) == len(replies)


async def test_a_budget_statement_does_not_get_paperwork(engine: Engine) -> None:
    reply = await reply_to(engine, "Budget approved: $45k a year.")
    assert "paperwork" not in reply.lower()


def test_a_used_play_gives_way_to_a_follow_up_that_asks_what_is_missing() -> None:
    strategy = default_playbook().select("scheduling", {})
    first = draft(strategy, {}, situation="scheduling")
    again = draft(strategy, {"timeline": "Tuesday"}, situation="scheduling", given=[first.reply])
    assert again.reply != first.reply and "Tuesday" in again.reply
    third = draft(
        strategy, {"timeline": "Tuesday"}, situation="scheduling", given=[first.reply, again.reply]
    )
    assert third.reply not in (first.reply, again.reply)
