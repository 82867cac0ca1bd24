"""Which model tier a step needs: a deterministic complexity classifier, far under a millisecond.

Score a message (negative = simpler, positive = more complex):

- length: under 15 words -2 (simple), over 60 words +2 (complex);
- deal context: under 2 known slots -1 (simpler), over 8 +2 (complex);
- more than one question mark +3 (several asks in one message);
- complex vocabulary (procurement, legal, security, compliance, integration, multi-year...) +3;
  (these two outweigh shortness: a short message asking for the MSA is not a simple one)
- step: generate +1 (a reply the rep sends deserves more care than a label); detect +1 when the
  message mixes several concerns ("but", "also", "however"); capture -1 when the message has
  no digits and no capitalised names (little to extract).

Class: score < 0 simple -> "fast" models; 0-1 medium and >= 2 complex -> "powerful" models.
`ComplexityTiering` is the Engine's `tiering` hook and counts its decisions for the stats.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Literal

from ..model import Tier
from ..stats import TieringStats

Complexity = Literal["simple", "medium", "complex"]

SIMPLE_WORDS = 15
COMPLEX_WORDS = 60
FEW_SLOTS = 2
MANY_SLOTS = 8

_COMPLEX_TERMS = (
    r"procurement|legal|contract|msa|redline[sd]?|indemnif\w*|liabilit\w*|dpa|gdpr|hipaa|soc ?2|"
    r"iso ?27001|security review|questionnaire|compliance|audit|penetration|pen ?test|sso|saml|"
    r"scim|api|integrat\w*|migrat\w*|data residency|on-?prem\w*|sla|uptime|multi-?year|"
    r"enterprise|rfp|rfi|vendor assessment|board|budget cycle|fiscal|roi|tco|payback|"
    r"renewal|termination|exclusivity|pilot terms|volume discount"
)
_COMPLEX = re.compile(rf"\b(?:{_COMPLEX_TERMS})\b", re.IGNORECASE)
_MIXED = re.compile(r"\b(?:but|also|however|although|plus|on top of)\b", re.IGNORECASE)
_FACTS = re.compile(r"\d|(?<=\s)[A-Z][A-Za-z]+")


def score(step: str, text: str, context: Mapping[str, str]) -> int:
    words = len(text.split())
    points = 0
    if words < SIMPLE_WORDS:
        points -= 2
    elif words > COMPLEX_WORDS:
        points += 2
    slots = sum(1 for v in context.values() if v)
    if slots < FEW_SLOTS:
        points -= 1
    elif slots > MANY_SLOTS:
        points += 2
    if text.count("?") > 1:
        points += 3
    if _COMPLEX.search(text):
        points += 3
    if step == "generate":
        points += 1
    elif step == "detect":
        if _MIXED.search(text):
            points += 1
    elif step == "capture" and not _FACTS.search(text):
        points -= 1
    return points


def classify(step: str, text: str, context: Mapping[str, str]) -> Complexity:
    points = score(step, text, context)
    if points < 0:
        return "simple"
    return "complex" if points >= 2 else "medium"


def tier_of(complexity: Complexity) -> Tier:
    return "fast" if complexity == "simple" else "powerful"


class ComplexityTiering:
    """The Engine's TierPolicy: (step, text, context) -> tier, with counted decisions."""

    def __init__(self) -> None:
        self.decisions: Counter[tuple[str, Complexity]] = Counter()  # (step, complexity)

    def __call__(self, step: str, text: str, context: Mapping[str, str]) -> Tier:
        complexity = classify(step, text, context)
        self.decisions[(step, complexity)] += 1
        return tier_of(complexity)

    def stats(self) -> TieringStats:
        by_step: dict[str, dict[str, int]] = {}
        tiers: Counter[Tier] = Counter()
        for (step, complexity), n in sorted(self.decisions.items()):
            by_step.setdefault(step, {})[complexity] = n
            tiers[tier_of(complexity)] += n
        total = sum(tiers.values())
        return TieringStats(
            decisions=total,
            fast=tiers["fast"],
            powerful=tiers["powerful"],
            fast_share=round(tiers["fast"] / total, 4) if total else 0.0,
            by_step=by_step,
        )
