"""The coaching card as a rep sees it, before any surface draws it.

One view model for every surface: `bot/blocks.py` turns it into Block Kit, the console
(`cli/render.py`) into text. Titles, labels and the footer's facts are decided here once, so the
two cards cannot drift apart; escaping, limits and layout stay with each surface.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    )
