"""The lines the offline tier can take from retrieved chunks: one fact to say to the prospect,
and one piece of advice for the rep.

A battlecard mixes both: "They charge $0.04 per SMS reminder" can go in the reply, "Ask about
the text-message bill" is advice for the rep, so sentences that open with an instruction go to
the coaching tip. A battlecard's one-line counter is said whole: it was written to be said.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..model import Citation
from ..rules.text import sentences
from .chunk import Chunk
from .retrieve import terms

__all__ = ["Quote", "quote"]

MAX_LINE_WORDS = 45
_SHORT_WORDS = 8  # a results bullet ("Overtime hours down 22%") needs its neighbour and name
_INSTRUCTION = frozenset(
    """ask don't do never always raise find position move lead offer check use mention avoid
    push qualify price remember try make get show bring keep send tell note watch""".split()  # noqa: SIM905
)
# Talk among the sales team, never for the prospect's ears.
_INTERNAL = re.compile(
    r"\bwe (?:will not|won't|can't|cannot|never|don't|do not) win\b|\bwe lose\b|\bkills? them\b"
    r"|\breps?\b|\bour (?:sales|deals?|pipeline)\b|\bdeal desk\b|\bin any deal\b",
    re.IGNORECASE,
)
_COUNTER = re.compile(r"\bcounter\b|\bin one (?:line|sentence)\b", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:[-*+]|\d+[.)])?\s*\*\*[^*]{1,40}:?\*\*:?\s*")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


@dataclass(frozen=True, slots=True)
class Quote:
    line: str | None  # a fact for the reply, in the rep's voice
    advice: str | None  # an instruction for the rep, for the coaching tip
    sources: tuple[Citation, ...]  # the chunks the line and the advice came from


def quote(chunks: Sequence[Chunk], message: str) -> Quote:
    """The best line and advice in the top chunks (a lower chunk only fills what is missing)."""
    wanted = set(terms(message))
    line: str | None = None
    advice: str | None = None
    sources: list[Citation] = []
    for chunk in chunks[:2]:
        facts, tips = _units(chunk)
        got = False
        if line is None and facts:
            line = _line(chunk, facts, wanted)
            got = True
        if advice is None and tips and chunk.competitor:
            advice = max(tips, key=lambda t: (_overlap(t, wanted), -tips.index(t)))
            got = True
        if got:
            sources.append(chunk.citation)
        if line is not None:
            break
    return Quote(line, advice, tuple(dict.fromkeys(sources)))


def _units(chunk: Chunk) -> tuple[list[str], list[str]]:
    """(facts, instructions): the chunk's sentences, from its lines and bullets."""
    facts: list[str] = []
    tips: list[str] = []
    for raw in chunk.text.split("\n"):
        stripped = raw.strip()
        if not stripped or stripped.startswith(("|", "#", ">")):
            continue
        if stripped.startswith("_") and stripped.endswith("_"):
            continue  # an italic note about the file itself ("Last reviewed...")
        body = _BULLET.sub("", _LABEL.sub("", raw)).strip()
        if not body:
            continue
        said: list[str] = []
        for sentence, _asks in sentences(body):
            text = sentence.strip()
            if len(text.split()) < 2:
                continue
            text = text[0].upper() + text[1:]
            first = text.split()[0].lower().strip("\"'")
            internal = first in _INSTRUCTION or _INTERNAL.search(text)
            (tips if internal else said).append(text)
        # A bullet is one fact: said whole when short, else sentence by sentence.
        whole = " ".join(said)
        facts.extend([whole] if said and len(whole.split()) <= MAX_LINE_WORDS else said)
    return facts, tips


def _line(chunk: Chunk, facts: list[str], wanted: set[str]) -> str:
    if chunk.competitor and _COUNTER.search(chunk.heading):
        return _speak(facts[0], chunk)
    ranked = sorted(range(len(facts)), key=lambda i: (-_overlap(facts[i], wanted), i))
    best = facts[ranked[0]]
    if len(best.split()) < _SHORT_WORDS and not chunk.competitor:
        others = [facts[i] for i in ranked[1:] if len(facts[i].split()) < _SHORT_WORDS]
        joined = "; ".join([best.rstrip("."), *(o.rstrip(".") for o in others[:1])])
        return _sentence(f"{chunk.heading}: {joined[0].lower()}{joined[1:]}")
    return _speak(best, chunk)


def _speak(text: str, chunk: Chunk) -> str:
    """A battlecard speaks of the competitor as "they"; in a reply, name them once."""
    if chunk.competitor:
        name = chunk.competitor
        text = re.sub(r"^Their\b", f"{name}'s", text)
        text = re.sub(r"^They're\b", f"{name} is", text)
        text = re.sub(r"^Theirs\b", f"{name}'s", text)
    words = text.split()
    if len(words) > MAX_LINE_WORDS:
        text = " ".join(words[:MAX_LINE_WORDS]).rstrip(",;:") + "…"
    return _sentence(text)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?…" else f"{text}."


def _overlap(text: str, wanted: set[str]) -> int:
    return len(wanted & set(terms(text)))
