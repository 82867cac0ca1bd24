"""The grounding set: messages whose right answer needs one section of a sample knowledge dir,
and how a run is scored.

Each probe (one JSON object a line): `text`, optional `thread_slots` (what the thread knew
before), `expect_file` and `expect_heading` (the section that holds the answer), `expect_terms`
(words of that answer) and `situation`. A card scores:

- a **retrieval hit** when the expected file and heading are among the sections it cites;
- a **term hit** when its reply contains one of the expected terms (case aside); a card term
  hit when its reply or its coaching tip does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import Suggestion

__all__ = ["GroundingError", "Probe", "load_probes", "score_run"]


class GroundingError(ValueError):
    """A grounding file we cannot read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Probe:
    text: str
    expect_file: str
    expect_heading: str
    expect_terms: tuple[str, ...]
    situation: str | None = None
    thread_slots: Mapping[str, str] = field(default_factory=dict)


def load_probes(path: Path) -> list[Probe]:
    probes = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            probes.append(
                Probe(
                    text=str(raw["text"]),
                    expect_file=str(raw["expect_file"]),
                    expect_heading=str(raw["expect_heading"]),
                    expect_terms=tuple(str(t) for t in raw["expect_terms"]),
                    situation=raw.get("situation"),
                    thread_slots={
                        str(k): str(v) for k, v in (raw.get("thread_slots") or {}).items()
                    },
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GroundingError(f"{path}:{number}: not a grounding probe ({exc})") from None
    if not probes:
        raise GroundingError(f"{path}: no probes")
    return probes


@dataclass(frozen=True, slots=True)
class Outcome:
    retrieved: bool
    term: bool
    card_term: bool
    situation: bool


def judge(probe: Probe, card: Suggestion) -> Outcome:
    cited = {(c.file, c.heading) for c in card.sources}
    reply = card.reply.casefold()
    tip = card.coaching_tip.casefold()
    terms = [t.casefold() for t in probe.expect_terms]
    return Outcome(
        retrieved=(probe.expect_file, probe.expect_heading) in cited,
        term=any(t in reply for t in terms),
        card_term=any(t in reply or t in tip for t in terms),
        situation=probe.situation is None or probe.situation == card.situation,
    )


def score_run(pairs: Iterable[tuple[Probe, Suggestion]]) -> dict[str, Any]:
    """Rates over the probes, overall and per expected file, plus the misses."""
    outcomes: list[tuple[Probe, Suggestion, Outcome]] = [(p, s, judge(p, s)) for p, s in pairs]
    by_file: dict[str, list[Outcome]] = defaultdict(list)
    for probe, _, outcome in outcomes:
        by_file[probe.expect_file].append(outcome)
    report: dict[str, Any] = _rates([o for _, _, o in outcomes])
    report["by_file"] = {name: _rates(found) for name, found in sorted(by_file.items())}
    report["misses"] = [
        {
            "text": probe.text,
            "expected": f"{probe.expect_file} › {probe.expect_heading}",
            "cited": [str(c) for c in card.sources],
            "reply": card.reply,
        }
        for probe, card, outcome in outcomes
        if not (outcome.retrieved and outcome.term)
    ]
    return report


def _rates(found: Sequence[Outcome]) -> dict[str, Any]:
    n = len(found)

    def rate(hits: int) -> float:
        return round(hits / n, 3) if n else 0.0

    return {
        "n": n,
        "retrieval_hit": rate(sum(o.retrieved for o in found)),
        "term_hit": rate(sum(o.term for o in found)),
        "card_term_hit": rate(sum(o.card_term for o in found)),
        "both": rate(sum(o.retrieved and o.term for o in found)),
        "situation_accuracy": rate(sum(o.situation for o in found)),
    }
