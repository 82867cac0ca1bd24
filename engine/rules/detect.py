"""Rule-based situation detection: weighted cue patterns, scored and compared.

Confidence reflects how strong the winning cues are and how clearly they beat the runner-up,
so weak or contested evidence falls under the reconcile threshold.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..model import Detection
from ..taxonomy import SITUATIONS
from .text import normalised


@dataclass(frozen=True, slots=True)
class Cue:
    pattern: re.Pattern[str]
    weight: float


@cache
def cues() -> dict[str, tuple[Cue, ...]]:
    raw = tomllib.loads((Path(__file__).parent / "cues.toml").read_text("utf-8"))
    table: dict[str, tuple[Cue, ...]] = {}
    for situation, spec in raw.items():
        if situation not in SITUATIONS:
            raise ValueError(f"cues.toml: unknown situation {situation!r}")
        table[situation] = tuple(
            Cue(re.compile(p, re.IGNORECASE), float(w)) for p, w in spec["cues"]
        )
    return table


def scores(text: str) -> dict[str, float]:
    norm = normalised(text)
    found: dict[str, float] = {}
    for situation, situation_cues in cues().items():
        total = sum(cue.weight for cue in situation_cues if cue.pattern.search(norm))
        if total:
            found[situation] = total
    return found


def detect(text: str, context: Mapping[str, str] | None = None) -> Detection:
    found = scores(text)
    words = len(text.split())
    if not found:
        # No cue at all: a question is most often about the product, a long message about
        # the prospect's world; anything else we cannot place.
        if "?" in text:
            return Detection("feature_question", 0.4, None)
        if words >= 12:
            return Detection("discovery", 0.4, None)
        return Detection("other", 0.3, None)
    ranked = sorted(found.items(), key=lambda item: (-item[1], SITUATIONS.index(item[0])))
    (top, top_score), runner = ranked[0], ranked[1] if len(ranked) > 1 else (None, 0.0)
    strength = top_score / (top_score + 1.5)
    margin = (top_score - runner[1]) / top_score
    confidence = round(min(0.97, 0.25 + 0.45 * strength + 0.35 * margin), 3)
    return Detection(top, confidence, runner[0])
