"""The offline tier: rules and the playbook answer every step, deterministic and local.

It is the embedded default with no API keys and the last resort when every provider fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
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
    strategy = request.strategy or default_playbook().select(
        request.detection.situation if request.detection else "other", request.context
    )
    return draft(strategy, request.context, request.knowledge, request.text)


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z{])")


def draft(
    strategy: Strategy,
    slots: Mapping[str, str],
    knowledge: Sequence[Chunk] = (),
    message: str = "",
) -> Draft:
    """The play's reply, filled from the thread; with knowledge, its best line for this message
    stands in for the template's generic middle (or fills `{knowledge|...}` where a template
    has one), and a battlecard's advice becomes the tip."""
    template = strategy.reply_template
    found = quote(knowledge, message) if knowledge else None
    line = found.line if found else None
    reply = fill(template, {**slots, "knowledge": line} if line else slots)
    if line and "{knowledge" not in template:
        reply = _with_fact(reply, line)
    tip = found.advice if found and found.advice else strategy.coaching_tip
    return Draft(reply=reply, coaching_tip=tip, sources=found.sources if found else ())


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
        chosen = default_playbook().select(situation or detect(message, slots).situation, slots)
        return contract.to_json(draft(chosen, slots, knowledge, message))
    if step not in ("capture", "detect"):
        raise ValueError(f"unknown step {step!r}")
    return contract.to_json(answer(StepRequest(step=cast(Step, step), text=message, context=slots)))
