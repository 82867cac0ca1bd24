"""The offline tier: rules and the playbook answer every step, deterministic and local.

It is the embedded default with no API keys and the last resort when every provider fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

from .. import contract
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
        return capture(request.text, request.context)
    if request.step == "detect":
        return detect(request.text, request.context)
    strategy = request.strategy or default_playbook().select(
        request.detection.situation if request.detection else "other", request.context
    )
    return draft(strategy, request.context)


def draft(strategy: Strategy, slots: Mapping[str, str]) -> Draft:
    return Draft(reply=fill(strategy.reply_template, slots), coaching_tip=strategy.coaching_tip)


def answer_contract(
    step: str,
    message: str,
    context: Mapping[str, str],
    situation: str | None = None,
) -> dict[str, Any]:
    """The contract JSON the offline tier would answer: what the fake LLM server replies."""
    slots = {k: str(v) for k, v in context.items()}
    if step == "generate":
        chosen = default_playbook().select(situation or detect(message, slots).situation, slots)
        return contract.to_json(draft(chosen, slots))
    if step not in ("capture", "detect"):
        raise ValueError(f"unknown step {step!r}")
    return contract.to_json(answer(StepRequest(step=cast(Step, step), text=message, context=slots)))
