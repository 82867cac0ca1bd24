"""The offline tier: rules and the playbook answer every step, deterministic and local.

It is the embedded default with no API keys and the last resort when every provider fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from .. import contract
from ..knowledge.chunk import Chunk
from ..knowledge.quote import quote
from ..model import Draft, StepCall, StepValue, Strategy
from ..playbook import default_playbook, fill
from ..ports import StepRequest, StepResult
from ..rules.capture import capture
from ..rules.detect import detect
from ..taxonomy import Step
from . import voice

MODEL = "rules-v1"


class OfflineProvider:
    name = "offline"

    def __init__(self, *, fallback: bool = False) -> None:
        # As a fallback its answers are marked, so a rep can see the LLMs were unavailable.
        self.fallback = fallback

    async def complete(self, request: StepRequest) -> StepResult:
        return self.complete_now(request)

    def complete_now(self, request: StepRequest) -> StepResult:
        started = time.perf_counter()
        value = answer(request)
        call = StepCall(
            step=request.step,
            provider=self.name,
            model=MODEL,
            ms=(time.perf_counter() - started) * 1000,
            fallback=self.fallback,
        )
        return StepResult(value=value, call=call)


def answer(request: StepRequest) -> StepValue:
    if request.step == "capture":
        return capture(request.text, request.context, request.vendors)
    if request.step == "detect":
        return detect(request.text, request.context, request.vendors)
    situation = request.detection.situation if request.detection else "other"
    strategy = request.strategy or default_playbook().select(situation, request.context)
    return draft(
        strategy,
        request.context,
        request.knowledge,
        request.text,
        situation=situation,
        given=request.replies,
    )


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z{])")


def draft(
    strategy: Strategy,
    slots: Mapping[str, str],
    knowledge: Sequence[Chunk] = (),
    message: str = "",
    *,
    situation: str = "other",
    given: Sequence[str] = (),
) -> Draft:
    """The play's reply, filled from the thread with its slots said to the prospect ("your VP
    of Sales"); with knowledge, its best line for this message stands in for the template's
    generic middle (or fills `{knowledge|...}` where a template has one), and a battlecard's
    advice becomes the tip. A reply the thread was already `given` is not given again: another
    play of the situation, else a follow-up that asks for what the deal still lacks and
    proposes the situation's next step."""
    phrases = voice.slot_phrases(slots)
    found = quote(knowledge, message) if knowledge else None
    line = found.line if found else None
    tip = found.advice if found and found.advice else strategy.coaching_tip
    sources = found.sources if found else ()
    said = {_same(reply) for reply in given}
    candidates = [strategy.reply_template]
    candidates += [
        play.strategy.reply_template
        for play in default_playbook().plays
        if play.situation == situation
        and play.strategy.reply_template not in candidates
        and all(slots.get(s) for s in play.when)
    ]
    for template in candidates:
        reply = fill(template, {**phrases, "knowledge": line} if line else phrases)
        if line and "{knowledge" not in template:
            reply = _with_fact(reply, line)
        if _same(reply) not in said:
            return Draft(reply=reply, coaching_tip=tip, sources=sources)
    return Draft(reply=follow_up(situation, phrases, said), coaching_tip=tip, sources=sources)


def follow_up(situation: str, phrases: Mapping[str, str], said: Collection[str] = ()) -> str:
    """A reply for a turn whose plays were all used: the next missing fact worth asking for
    in this situation, then the situation's next step."""
    opening, order, step = FOLLOW_UPS.get(situation, FOLLOW_UPS["other"])
    questions = [QUESTIONS[name] for name in order if not phrases.get(name)]
    for question in [*questions, ""]:
        reply = " ".join(part for part in (opening, question, fill(step, phrases)) if part)
        if _same(reply) not in said:
            return reply
    return fill(step, phrases)


def _same(reply: str) -> str:
    return " ".join(reply.casefold().split())


# What to ask for when a fact is missing, one question a fact.
QUESTIONS: Mapping[str, str] = {
    "pain": "What's the one thing you'd most like to fix first?",
    "team_size": "How many people would be using it day to day?",
    "current_solution": "How are you handling it today?",
    "timeline": "When would you ideally want something in place?",
    "decision_maker": "Who else would weigh in on a decision like this?",
    "budget_signal": "Is there a budget range you're working within?",
    "competitor": "Are you looking at any other options alongside us?",
}
# Per situation: an opening, the facts worth asking for in order, and the next step to propose.
FOLLOW_UPS: Mapping[str, tuple[str, tuple[str, ...], str]] = {
    "greeting": ("Good to hear from you.", ("pain", "team_size"), ""),
    "discovery": (
        "That helps me picture it.",
        ("pain", "current_solution", "team_size", "timeline"),
        "Would a 20-minute walkthrough focused on that be useful?",
    ),
    "feature_question": (
        "Happy to show you that live.",
        ("pain", "current_solution", "team_size"),
        "Shall I set up a short demo of exactly that?",
    ),
    "pricing_question": (
        "Let me make sure the numbers fit.",
        ("team_size", "timeline", "budget_signal"),
        "I'll put a written quote together for you.",
    ),
    "price_objection": (
        "I hear you on the number.",
        ("budget_signal", "pain", "decision_maker"),
        "Would it help to look at a smaller starting scope that fits {budget_signal|your budget}?",
    ),
    "competitor_mention": (
        "Good to know where you are in the evaluation.",
        ("pain", "timeline", "decision_maker"),
        "I can send a side-by-side on the points that matter most to you.",
    ),
    "timing_objection": (
        "No problem, timing is yours to call.",
        ("timeline", "pain"),
        "Shall I put a short check-in on the calendar for {timeline|a date that suits you}?",
    ),
    "authority_objection": (
        "Makes sense to bring them in.",
        ("decision_maker", "timeline"),
        "I can draft a one-page summary for {decision_maker|the people involved}.",
    ),
    "status_quo_objection": (
        "Fair enough, no need to change what works.",
        ("pain", "team_size"),
        "If it's useful, I can share how similar teams decided when to switch.",
    ),
    "risk_concern": (
        "Let's make sure that's fully covered.",
        ("decision_maker", "timeline"),
        "I can set up a call with our security lead to go through it.",
    ),
    "buying_signal": (
        "Great, let's keep the momentum.",
        ("decision_maker", "timeline"),
        "Tell me what you need from me and I'll get it to you today.",
    ),
    "scheduling": (
        "Sounds good.",
        (),
        "I'll confirm the details in the invite.",
    ),
    "not_interested": ("Understood, thanks for being clear.", (), "I won't follow up further."),
    "other": (
        "Thanks for the update.",
        (),
        "Let me know whenever you'd like to pick this back up.",
    ),
}


def _with_fact(reply: str, fact: str) -> str:
    """The reply's opening, the fact, and its closing question or next step."""
    parts = _SENTENCE.split(reply.strip())
    if len(parts) == 1:
        return f"{parts[0]} {fact}"
    return f"{parts[0]} {fact} {parts[-1]}"


def answer_contract(
    step: str,
    message: str,
    context: Mapping[str, str],
    situation: str | None = None,
    knowledge: Sequence[Chunk] = (),
) -> dict[str, Any]:
    """The contract JSON the offline tier would answer: what the fake LLM server replies.
    `knowledge`: the chunks the prompt carried, which generate quotes as the offline tier does."""
    slots = {k: str(v) for k, v in context.items()}
    if step == "generate":
        situation = situation or detect(message, slots).situation
        chosen = default_playbook().select(situation, slots)
        return contract.to_json(draft(chosen, slots, knowledge, message, situation=situation))
    if step not in ("capture", "detect"):
        raise ValueError(f"unknown step {step!r}")
    return contract.to_json(answer(StepRequest(step=cast(Step, step), text=message, context=slots)))
