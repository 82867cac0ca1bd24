"""Ranking a team's chunks for one turn: meaning (cosine of embeddings), shared rare words,
and what the deal knows. A competitor the thread names pulls its battlecard's best section in
first; the other places go to the best sections of any file.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .chunk import Chunk

__all__ = ["Ranked", "TeamChunks", "rank"]

# Weights of the score's parts. Cosine similarities of sentence embeddings sit around 0.1-0.6;
# the word overlap is a 0..1 share of the query's (idf-weighted) words found in a chunk.
WORDS_WEIGHT = 0.35
TAG_BONUS = 0.05  # the file is tagged with the detected situation
MENTIONS_BONUS = 0.05  # the chunk names the deal's competitor (a case study of a switch)
COUNTER_BONUS = 0.1  # a battlecard's one-line counter: written to be said to a prospect
# Below this a chunk is not about the message: nothing is better than a wrong fact.
MIN_SCORE = 0.3

_WORD = re.compile(r"[a-z0-9$][a-z0-9$%.,/'-]*[a-z0-9%]|[a-z0-9]")
_STOP = frozenset(
    """a an and are as at be but by can could do does for from had has have how i if in into is
    it its me my no not of on or our so than that the their them then there these they this to
    us was we what when where which who why will with would you your yours it's we're i'm don't
    any about just also really very more most some such only own same too other all each much
    do did should may might been being were am get got one""".split()  # noqa: SIM905
)
_COUNTER = re.compile(r"\bcounter\b|\bin one (?:line|sentence)\b|\belevator\b", re.IGNORECASE)
# A battlecard's section on the competitor's strengths leads only when the prospect asks.
_THEIR_STRENGTHS = re.compile(r"\bwhere they win\b|\btheir strengths\b", re.IGNORECASE)
_ASKS_STRENGTHS = re.compile(
    r"\bbetter\b|\bstrengths?\b|\bgood at\b|\bdo well\b|\bbeat you\b|\badvantages?\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class TeamChunks:
    """A team's chunks as retrieval reads them (rebuilt whenever a file changes)."""

    chunks: tuple[Chunk, ...]
    vectors: npt.NDArray[np.float32] | None  # (n, dim) unit rows; zero rows when not embedded
    words: tuple[frozenset[str], ...]
    idf: Mapping[str, float]
    competitors: Mapping[str, str]  # lower-cased name -> name, battlecards only

    @classmethod
    def build(cls, chunks: Sequence[Chunk], vectors: npt.NDArray[np.float32] | None) -> TeamChunks:
        words = tuple(frozenset(terms(f"{c.title} {c.heading} {c.text}")) for c in chunks)
        df = Counter(w for ws in words for w in ws)
        n = max(len(chunks), 1)
        idf = {w: math.log(1 + n / count) for w, count in df.items()}
        competitors = {c.competitor.lower(): c.competitor for c in chunks if c.competitor}
        return cls(tuple(chunks), vectors, words, idf, competitors)

    def competitor_in(self, text: str, slots: Mapping[str, str]) -> str | None:
        """The battlecard competitor the deal names: its slot first, else the message."""
        known = slots.get("competitor", "").lower()
        for lowered, name in self.competitors.items():
            if lowered and (lowered == known or _named(lowered, known)):
                return name
        lowered_text = text.lower()
        found = [
            (m.start(), name)
            for lowered, name in self.competitors.items()
            if (m := re.search(rf"\b{re.escape(lowered)}\b", lowered_text))
        ]
        return min(found)[1] if found else None


@dataclass(frozen=True, slots=True)
class Ranked:
    chunk: Chunk
    score: float


def terms(text: str) -> list[str]:
    return [w.strip(".,'") for w in _WORD.findall(text.lower()) if w not in _STOP]


def rank(
    team: TeamChunks,
    text: str,
    query: npt.NDArray[np.float32] | None,
    slots: Mapping[str, str],
    situation: str | None,
    k: int = 3,
) -> tuple[Ranked, ...]:
    """The k best chunks for a message, best first; a named competitor's battlecard leads."""
    if not team.chunks:
        return ()
    competitor = team.competitor_in(text, slots)
    query_text = f"{text} {competitor}" if competitor else text
    scores = _scores(team, query_text, query, competitor, situation)
    order = sorted(range(len(team.chunks)), key=lambda i: -scores[i])
    picked: list[int] = []
    if competitor is not None:
        card = [i for i in order if team.chunks[i].competitor == competitor]
        if not _ASKS_STRENGTHS.search(text):
            # Not asked what they do better: lead with what we say, not what we concede.
            card.sort(key=lambda i: bool(_THEIR_STRENGTHS.search(team.chunks[i].heading)))
        picked = card[:1]
    for i in order:
        if len(picked) >= k:
            break
        if i not in picked and scores[i] >= MIN_SCORE:
            picked.append(i)
    return tuple(Ranked(team.chunks[i], round(float(scores[i]), 4)) for i in picked)


def _scores(
    team: TeamChunks,
    text: str,
    query: npt.NDArray[np.float32] | None,
    competitor: str | None,
    situation: str | None,
) -> list[float]:
    n = len(team.chunks)
    cosine = [0.0] * n
    if query is not None and team.vectors is not None:
        cosine = [float(x) for x in team.vectors @ query]
    wanted = set(terms(text))
    total = sum(team.idf.get(w, 0.0) for w in wanted) or 1.0
    out = []
    for i, chunk in enumerate(team.chunks):
        overlap = sum(team.idf.get(w, 0.0) for w in wanted & team.words[i]) / total
        score = cosine[i] + WORDS_WEIGHT * overlap
        if situation and situation in chunk.situations:
            score += TAG_BONUS
        if competitor and chunk.competitor != competitor and competitor.lower() in team.words[i]:
            score += MENTIONS_BONUS
        if chunk.competitor and _COUNTER.search(chunk.heading):
            score += COUNTER_BONUS
        out.append(score)
    return out


def _named(name: str, value: str) -> bool:
    return bool(value) and re.search(rf"\b{re.escape(name)}\b", value) is not None
