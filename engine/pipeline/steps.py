"""The four steps. Each asks the provider for one typed value; select asks the playbook.

Every request carries the turn's deadline, so three steps in a row share one budget instead of
taking one each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from ..errors import InvalidOutput
from ..knowledge.chunk import Chunk
from ..llm.offline import OfflineProvider
from ..model import Capture, Detection, Draft, PromptStyle, Strategy, Tier
from ..playbook import Playbook
from ..ports import Provider, StepRequest, StepResult
from ..rules.capture import capture as rules_capture


async def capture(
    llm: Provider,
    text: str,
    context: Mapping[str, str],
    history: tuple[str, ...],
    tier: Tier,
    style: PromptStyle,
    deadline: float | None = None,
    vendors: frozenset[str] = frozenset(),
) -> tuple[Capture, StepResult]:
    result = await llm.complete(
        StepRequest(
            "capture",
            text,
            context,
            history,
            tier=tier,
            style=style,
            deadline=deadline,
            vendors=vendors,
        )
    )
    value = _expect(result, Capture)
    slots = dict(value.slots)
    if result.call.provider != OfflineProvider.name:
        # What the rules found in this message stays unless the model says otherwise: a model
        # that misses a slot must not erase it. (An offline answer *is* the rules: not twice.)
        slots = dict(rules_capture(text, context, vendors).slots) | slots
    # Providers may repeat what the thread already knows; only changes count as news.
    delta = {
        name: v for name, v in slots.items() if context.get(name, "").casefold() != v.casefold()
    }
    return Capture(delta, value.confidence), result


async def detect(
    llm: Provider,
    text: str,
    context: Mapping[str, str],
    history: tuple[str, ...],
    tier: Tier,
    style: PromptStyle,
    deadline: float | None = None,
    vendors: frozenset[str] = frozenset(),
) -> tuple[Detection, StepResult]:
    result = await llm.complete(
        StepRequest(
            "detect",
            text,
            context,
            history,
            tier=tier,
            style=style,
            deadline=deadline,
            vendors=vendors,
        )
    )
    return _expect(result, Detection), result


def select(playbook: Playbook, detection: Detection, slots: Mapping[str, str]) -> Strategy:
    return playbook.select(detection.situation, slots)


async def generate(
    llm: Provider,
    text: str,
    context: Mapping[str, str],
    history: tuple[str, ...],
    detection: Detection,
    strategy: Strategy,
    tier: Tier,
    style: PromptStyle,
    deadline: float | None = None,
    on_reply: Callable[[str], None] | None = None,
    knowledge: tuple[Chunk, ...] = (),
    replies: tuple[str, ...] = (),
) -> tuple[Draft, StepResult]:
    request = StepRequest(
        "generate",
        text,
        context,
        history,
        tier=tier,
        style=style,
        detection=detection,
        strategy=strategy,
        deadline=deadline,
        on_reply=on_reply,
        knowledge=knowledge,
        replies=replies,
    )
    result = await llm.complete(request)
    return _expect(result, Draft), result


T = TypeVar("T")


def _expect(result: StepResult, kind: type[T]) -> T:
    if not isinstance(result.value, kind):
        raise InvalidOutput(
            f"{result.call.provider} answered {type(result.value).__name__} "
            f"for a {kind.__name__} step"
        )
    return result.value
