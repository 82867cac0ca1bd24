"""The playbook: situation and known slots -> strategy. Deterministic, kept as data (the plays
sit in taxonomy.toml beside the situation they answer)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .deal import DealRules, default_rules, parse_rules
from .model import Strategy
from .taxonomy import SITUATIONS, SLOTS, TAXONOMY_PATH, load_document

_PLACEHOLDER = re.compile(r"\{(\w+)(?:\|([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Play:
    situation: str
    when: tuple[str, ...]
    strategy: Strategy


class Playbook:
    def __init__(self, plays: tuple[Play, ...], deal: DealRules | None = None) -> None:
        missing = set(SITUATIONS) - {p.situation for p in plays if not p.when}
        if missing:
            raise ValueError(f"playbook has no unconditional play for: {sorted(missing)}")
        self.plays = plays
        # The qualification framework the card's next question and the deal summary use.
        self.deal = deal or default_rules()

    @classmethod
    def load(cls, path: Path = TAXONOMY_PATH) -> Playbook:
        """The plays of a taxonomy file: each situation's `[[situation.<id>.play]]`."""
        plays = []
        document = load_document(path)
        for situation, spec in document["situation"].items():
            if situation not in SITUATIONS:
                raise ValueError(f"playbook: unknown situation {situation!r}")
            for i, raw in enumerate(spec.get("play", ())):
                when = tuple(raw.get("when", ()))
                if unknown := set(when) - set(SLOTS):
                    raise ValueError(
                        f"playbook {situation} play {i}: unknown slots {sorted(unknown)}"
                    )
                plays.append(
                    Play(
                        situation=situation,
                        when=when,
                        strategy=Strategy(
                            name=raw["strategy"],
                            talk_track=raw["talk_track"],
                            coaching_tip=raw["coaching_tip"],
                            reply_template=raw["reply"],
                        ),
                    )
                )
        return cls(tuple(plays), parse_rules(document["deal"], source=path.name))

    def select(self, situation: str, slots: Mapping[str, str]) -> Strategy:
        for play in self.plays:
            if play.situation == situation and all(slots.get(s) for s in play.when):
                return _filled(play.strategy, slots)
        raise KeyError(situation)


@cache
def default_playbook() -> Playbook:
    return Playbook.load()


def fill(template: str, slots: Mapping[str, str]) -> str:
    """Put thread slots into a template; `{slot|fallback}` covers unknown slots."""

    def value(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        known = slots.get(name)
        if known:
            return f" {known}" if fallback == " " else known
        return "" if fallback == " " else (fallback or "")

    return _PLACEHOLDER.sub(value, template)


def _filled(strategy: Strategy, slots: Mapping[str, str]) -> Strategy:
    return Strategy(
        name=strategy.name,
        talk_track=fill(strategy.talk_track, slots),
        coaching_tip=fill(strategy.coaching_tip, slots),
        reply_template=strategy.reply_template,
    )
