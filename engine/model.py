"""Typed values that flow through one turn: input, thread context, step results, suggestion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .taxonomy import Situation

CacheTier = Literal["miss", "exact", "semantic", "bypass"]
HitTier = Literal["exact", "semantic"]  # the cache tiers that answer
Tier = Literal["fast", "powerful"]
# compact: the default; verbose: few-shot (the benchmark's baseline); terse: compact with a
# shorter reply asked for and a tighter output budget, since output tokens dominate latency.
PromptStyle = Literal["compact", "verbose", "terse"]


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """Where a conversation lives: a Slack thread, a DM thread, or a console session."""

    team: str
    channel: str
    thread: str

    def __str__(self) -> str:
        return f"{self.team}/{self.channel}/{self.thread}"

    @classmethod
    def parse(cls, text: str) -> ThreadKey:
        team, channel, thread = text.split("/", 2)
        return cls(team, channel, thread)


@dataclass(frozen=True, slots=True)
class TurnInput:
    key: ThreadKey
    text: str
    message_id: str
    author: str = "rep"
    ts: float = 0.0
    # Regenerate asks for a fresh answer: the cache is bypassed, the suggestion replaced.
    regenerate: bool = False


@dataclass(frozen=True, slots=True)
class SlotValue:
    value: str
    message_id: str
    at: float
    # What the slot held before a correction replaced it, and the message that said it: both
    # messages stay the slot's provenance.
    previous: str | None = None
    previous_message_id: str | None = None


def merge_slots(before: Mapping[str, str], delta: Mapping[str, str]) -> dict[str, str]:
    """A thread's slots after a turn: the delta's values replace, an empty value clears."""
    merged = dict(before) | dict(delta)
    return {name: value for name, value in merged.items() if value}


@dataclass(frozen=True, slots=True)
class ThreadContext:
    key: ThreadKey
    slots: Mapping[str, SlotValue] = field(default_factory=dict)
    turns: int = 0
    last_situation: str | None = None
    # The latest prospect messages, oldest first, bounded by the store.
    history: tuple[str, ...] = ()
    # The replies already suggested in this thread, oldest first (same bound): a reply is not
    # suggested twice.
    replies: tuple[str, ...] = ()

    def values(self) -> dict[str, str]:
        return {name: slot.value for name, slot in self.slots.items() if slot.value}


@dataclass(frozen=True, slots=True)
class Capture:
    slots: Mapping[str, str]
    confidence: float


@dataclass(frozen=True, slots=True)
class Detection:
    situation: Situation
    confidence: float
    secondary: Situation | None = None


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    talk_track: str
    coaching_tip: str
    reply_template: str


@dataclass(frozen=True, slots=True)
class Citation:
    """A knowledge section a card used: its file and heading."""

    file: str
    heading: str

    def __str__(self) -> str:
        return f"{self.file} › {self.heading}"


@dataclass(frozen=True, slots=True)
class Draft:
    reply: str
    coaching_tip: str
    # The knowledge sections the draft drew on, when its writer knows (the offline tier does).
    sources: tuple[Citation, ...] = ()


StepValue = Capture | Detection | Draft


@dataclass(frozen=True, slots=True)
class StepCall:
    """Who answered one step, how fast, and at what token cost."""

    step: str
    provider: str
    model: str
    ms: float
    tokens_in: int = 0
    tokens_out: int = 0
    fallback: bool = False
    # From the step's start to the answer's first streamed token; None when nothing streamed.
    ttft_ms: float | None = None
    # An offline-tier fallback only: the time spent on providers before it answered (its own
    # time is `ms`), and why they did not: "unavailable" or "answered_badly".
    waited_ms: float = 0.0
    fallback_reason: str | None = None

    @property
    def elapsed_ms(self) -> float:
        """The step as the rep waited for it."""
        return self.ms + self.waited_ms


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: str
    key: ThreadKey
    message_id: str
    reply: str
    coaching_tip: str
    situation: str
    confidence: float
    secondary: str | None
    strategy: str
    talk_track: str
    slots_delta: Mapping[str, str]
    slots: Mapping[str, str]
    cache: CacheTier
    calls: tuple[StepCall, ...]
    step_ms: Mapping[str, float]
    latency_ms: float
    reconciled: bool
    reconcile_triggers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # The knowledge sections the reply drew on (file and heading), shown on the card.
    sources: tuple[Citation, ...] = ()
    # The qualification question worth asking next (engine/deal.py), from the playbook.
    next_question: str | None = None

    @property
    def offline(self) -> bool:
        return any(call.fallback for call in self.calls)
