"""The coaching card as a rep sees it, before any surface draws it.

One view model for every surface: `bot/blocks.py` turns it into Block Kit, the console
(`cli/render.py`) into text. Titles, labels and the footer's facts are decided here once, so the
two cards cannot drift apart; escaping, limits and layout stay with each surface.
"""

from __future__ import annotations

from dataclasses import dataclass

from .deal import DealView
from .model import Suggestion
from .taxonomy import SITUATION_TITLES, SLOT_TITLES


@dataclass(frozen=True, slots=True)
class SlotLine:
    """One captured fact about the deal; `new` when this turn captured it."""

    title: str
    value: str
    new: bool


@dataclass(frozen=True, slots=True)
class CardView:
    title: str  # the situation's title
    confidence: float
    also: str | None  # the secondary situation's title
    play: str  # the playbook strategy, as words
    reply: str
    tip: str
    slots: tuple[SlotLine, ...]
    notes: tuple[str, ...]
    sources: tuple[str, ...]  # the knowledge sections the reply drew on, "file › heading"
    latency_ms: float
    cache: str
    providers: tuple[str, ...]  # "provider/model" that answered, or ("cache",)
    offline: bool  # the offline tier answered for a provider
    reconciled: bool
    next_question: str | None  # the qualification question worth asking next


def card_view(s: Suggestion) -> CardView:
    return CardView(
        title=SITUATION_TITLES.get(s.situation, s.situation),
        confidence=s.confidence,
        also=SITUATION_TITLES.get(s.secondary, s.secondary) if s.secondary else None,
        play=s.strategy.replace("_", " "),
        reply=s.reply,
        tip=s.coaching_tip,
        slots=tuple(
            SlotLine(SLOT_TITLES.get(name, name), value, name in s.slots_delta)
            for name, value in s.slots.items()
        ),
        notes=tuple(s.notes),
        sources=tuple(map(str, s.sources)),
        latency_ms=s.latency_ms,
        cache=s.cache,
        providers=tuple(sorted({f"{c.provider}/{c.model}" for c in s.calls})) or ("cache",),
        offline=s.offline,
        reconciled=s.reconciled,
        next_question=s.next_question,
    )


@dataclass(frozen=True, slots=True)
class DealSummary:
    """The deal so far, as the Deal summary button, `/agent-deal` and `sales-agent deal` show
    it: every line plain text, each surface escapes and lays it out."""

    headline: str
    known: tuple[str, ...]  # "Budget: around 30k (message 1712.5)"
    missing: tuple[str, ...]
    risks: tuple[str, ...]
    next_steps: tuple[str, ...]
    next_question: str | None


def deal_summary(view: DealView) -> DealSummary:
    known = []
    for k in view.known:
        line = f"{k.item.title}: {k.value.value} (message {k.value.message_id})"
        if k.value.previous:
            line += f", corrected from {k.value.previous} (message {k.value.previous_message_id})"
        known.append(line)
    return DealSummary(
        headline=f"{view.framework} {view.score:.0%} complete "
        f"({len(view.known)} of {len(view.known) + len(view.missing)} known)",
        known=tuple(known),
        missing=tuple(item.title for item in view.missing),
        risks=view.risks,
        next_steps=view.next_steps,
        next_question=view.next_question,
    )


def deal_text(d: DealSummary) -> str:
    """The summary as plain lines (the console; Slack's blocks build on the same fields)."""
    lines = [f"Deal summary · {d.headline}"]
    lines += [f"  Known: {line}" for line in d.known] or ["  Known: nothing yet"]
    if d.missing:
        lines.append(f"  Missing: {', '.join(d.missing)}")
    if d.next_question:
        lines.append(f"  Next question: {d.next_question}")
    lines += [f"  Risk: {r}" for r in d.risks]
    lines += [f"  Next step: {s}" for s in d.next_steps]
    return "\n".join(lines)
