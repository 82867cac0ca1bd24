"""Rule-based situation detection: weighted cue patterns, read in context, scored and compared.

A message is read once (`read`, cached): it is split into sentences that do or do not ask a
question, every cue of `cues.toml` is matched, a cue that a negation cancels ("not too
expensive") is dropped, and feature combinations (a price word together with pushback) add
their weight. `detect` then adds what the thread already knows, applies the priorities and
ranks the situations.

Confidence reflects how strong the winning cues are and how clearly they beat the runner-up,
so weak or contested evidence falls under the reconcile threshold.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..model import Detection
from ..taxonomy import OBJECTIONS, SITUATIONS, Situation, is_situation
from . import lexicon
from .text import Scanner, sentences

HERE = Path(__file__).parent

# Discovery is the catch-all for a prospect describing their world: when an explicit objection
# scores at least OBJECTION_FLOOR, discovery's score is scaled by this before ranking.
DISCOVERY_YIELD = 0.75
OBJECTION_FLOOR = 2.5
FULL_CUE = 2.5

# Negation, from rules/lexicon.toml (the guard reads the same words).
_NEGATORS = lexicon.NEGATIONS
_BARE_NEGATIONS = frozenset(lexicon.BARE_NEGATIONS)
_HYPOTHETICAL = lexicon.HYPOTHETICAL
# Words that open a new clause: a negation before them does not reach the cue after them.
_SCOPE_BREAKS = lexicon.CLAUSE_BREAKS
_TOKEN = re.compile(r"[\w']+|[^\w\s']")
# The `money` feature: an amount (the lexicon's money pattern), or thousands ("40k").
_THOUSANDS = re.compile(r"\b\d[\d,]*(?:\.\d+)?\s?k\b")
_BUILT_IN = frozenset({"question", "vendor", "money"})
_COUNT = re.compile(r"\b\d[\d,]*\+? (?:[a-z][\w-]* ){0,2}[a-z]+s\b")
_CLAUSE_ENDS = (".", "?", "!", "\n", ";", ",", " - ", ":")
_PHRASE_TAIL = 4  # words a phrase may take from the rest of its clause


@dataclass(frozen=True, slots=True)
class Cue:
    number: int  # its pattern in the lexicon's scanner
    weight: float
    # True: counts only inside a question; False: only outside one; None: anywhere.
    asks: bool | None = None
    negatable: bool = True
    # Whether "if"/"unless" before it leaves it standing (a risk is often hypothetical).
    hypothetical: bool = False
    objection: bool = False
    pain: bool = False


@dataclass(frozen=True, slots=True)
class Combo:
    features: frozenset[str]
    weight: float


@dataclass(frozen=True, slots=True)
class Lexicon:
    """cues.toml, compiled: every pattern sits in one scanner."""

    scanner: Scanner
    features: Mapping[str, int]  # feature family -> pattern number
    negatable: frozenset[str]  # the feature families a negation cancels
    cues: Mapping[Situation, tuple[Cue, ...]]
    combos: Mapping[Situation, tuple[Combo, ...]]
    # The feature families whose phrase is the objection when a situation won on a combo.
    objection_features: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Hit:
    situation: Situation
    start: int
    end: int
    weight: float
    asks: bool
    objection: bool
    pain: bool


@dataclass(frozen=True, slots=True)
class Reading:
    """What the rules see in one message, before any thread context."""

    text: str  # lower-cased plain sentences, one a line
    cased: str  # the same, case kept (same length, so spans fit both)
    hits: tuple[Hit, ...]
    features: frozenset[str]
    scores: Mapping[Situation, float]
    # Where each [features] family first matched (not negated): (start, end) in `text`.
    feature_spans: Mapping[str, tuple[int, int]]
    vendor: tuple[int, str] | None  # the first vendor named: (offset, canonical name)

    def span(self, hit: Hit) -> str:
        """The clause around a hit: the cue phrase with the words that complete it."""
        return clause(self.cased, hit.start, hit.end)

    def phrase(self, start: int, end: int) -> str:
        """The words matched, with the rest of their clause when that is short: "too
        expensive for us", not the whole sentence around it."""
        stop = min(
            (at for sep in _CLAUSE_ENDS if (at := self.cased.find(sep, end)) != -1),
            default=len(self.cased),
        )
        if len(self.cased[end:stop].split()) <= _PHRASE_TAIL:
            end = stop
        return self.cased[start:end].strip(" -:;,'\"()")

    def feature_phrase(self, name: str) -> str | None:
        """The phrase of the first match of a feature family, if it matched."""
        where = self.feature_spans.get(name)
        return self.phrase(*where) if where else None


def _load() -> Lexicon:
    raw = tomllib.loads((HERE / "cues.toml").read_text("utf-8"))
    patterns: list[re.Pattern[str]] = []

    def add(pattern: re.Pattern[str]) -> int:
        patterns.append(pattern)
        return len(patterns) - 1

    families = dict(raw.pop("features", {}))
    negatable = frozenset(families.pop("negatable", ()))
    features = {name: add(_compile(p)) for name, p in families.items()}
    if negatable - set(features):
        raise ValueError(f"cues.toml: negatable names unknown features {negatable - set(features)}")
    table: dict[Situation, tuple[Cue, ...]] = {}
    combos: dict[Situation, tuple[Combo, ...]] = {}
    objection_features: dict[str, tuple[str, ...]] = {}
    for situation, spec in raw.items():
        if not is_situation(situation):
            raise ValueError(f"cues.toml: unknown situation {situation!r}")
        table[situation] = tuple(_cue(entry, add) for entry in spec.get("cues", ()))
        combos[situation] = tuple(
            Combo(frozenset(names), float(weight)) for names, weight in spec.get("combos", ())
        )
        unknown = {n for c in combos[situation] for n in c.features} - set(features)
        unknown = {n for n in unknown if n not in _BUILT_IN and not n.startswith("ctx:")}
        if unknown:
            raise ValueError(f"cues.toml: {situation} combines unknown features {unknown}")
        objection_features[situation] = tuple(spec.get("objection_from", ()))
        if unknown := set(objection_features[situation]) - set(features):
            raise ValueError(f"cues.toml: {situation} takes objections from unknown {unknown}")
    return Lexicon(
        Scanner(patterns),
        features,
        negatable,
        table,
        combos,
        objection_features,
    )


def _compile(pattern: str) -> re.Pattern[str]:
    # Messages are matched lower-cased, so patterns are written lower-case and compiled
    # without IGNORECASE, which makes Python's matcher several times faster.
    if re.search("[A-Z]", re.sub(r"\\.", "", pattern)):
        raise ValueError(f"cues.toml: write patterns in lower case: {pattern[:60]!r}")
    return re.compile(pattern, re.MULTILINE)


def _cue(entry: list[Any], add: Any) -> Cue:
    pattern, weight, *rest = entry
    flags = str(rest[0]) if rest else ""
    return Cue(
        add(_compile(pattern)),
        float(weight),
        True if "q" in flags else False if "s" in flags else None,
        negatable="!" not in flags,
        hypothetical="h" in flags,
        objection="o" in flags,
        pain="p" in flags,
    )


LEXICON = _load()


def _extra_vendor(reading_text: str, names: frozenset[str]) -> tuple[int, str] | None:
    found = [
        (match.start(), name)
        for name in names
        if (match := _extra_pattern(name.lower()).search(reading_text))
    ]
    return min(found) if found else None


@lru_cache(maxsize=256)
def _extra_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?<!\.){re.escape(name)}(?![\w]|\.\w)")


def clause(text: str, start: int, end: int, limit: int = 80) -> str:
    """The clause of `text` holding text[start:end], cut at punctuation and `limit` chars."""
    left = max(text.rfind(sep, 0, start) for sep in (".", "?", "!", "\n", ";", ",", " - ", ":"))
    left = 0 if left < 0 else left + 1
    right = len(text)
    for sep in (".", "?", "!", "\n", ";", ",", " - "):
        at = text.find(sep, end)
        if at != -1:
            right = min(right, at)
    if end - start >= limit:
        return text[start:end].strip()
    if right - left > limit:
        # Too long: keep the cue, then whole words around it up to the limit.
        spare = limit - (end - start)
        lo = max(left, start - spare // 2)
        hi = min(right, end + spare - (start - lo))
        if lo > left:
            lo = text.find(" ", lo, start) + 1 or start
        if hi < right:
            cut = text.rfind(" ", end, hi)
            hi = cut if cut != -1 else end
        left, right = lo, hi
    return text[left:right].strip(" -:;,'\"()")


def negated(text: str, start: int, hypothetical: bool = True) -> bool:
    """Whether a negation in the three words before `start`, same clause, cancels a cue; so
    does "if"/"unless" unless the cue may be `hypothetical` ("expand if it works")."""
    tokens = _TOKEN.findall(text[max(0, start - 40) : start])
    for token in reversed(tokens[-3:]):
        if not (token[0].isalnum() or token[0] == "_"):
            return False
        word = token if token.endswith("n't") else token.split("'")[0]
        if word in _NEGATORS or word.endswith("n't") or word in _BARE_NEGATIONS:
            return True
        if word in _HYPOTHETICAL:
            return not hypothetical
        if word in _SCOPE_BREAKS:
            return False
    return False


@lru_cache(maxsize=1024)
def read(message: str, vendors: frozenset[str] = frozenset()) -> Reading:
    """`vendors`: extra vendor names to recognise (see find_vendor)."""
    parts = sentences(message)
    cased = "\n".join(s for s, _ in parts)
    text = cased.lower()
    if len(text) != len(cased):  # a rare letter whose lower case is longer
        cased = text
    starts: list[int] = []
    offset = 0
    for s, _ in parts:
        starts.append(offset)
        offset += len(s) + 1
    asks = [a for _, a in parts]

    def in_question(at: int) -> bool:
        return bool(asks) and asks[max(0, bisect_right(starts, at) - 1)]

    lex = LEXICON
    scan = lex.scanner.scan(text)
    hits: list[Hit] = []
    scores: dict[Situation, float] = {}
    for situation, situation_cues in lex.cues.items():
        total = 0.0
        taken: list[tuple[int, int]] = []
        for cue in situation_cues:
            if not scan.possible(cue.number):
                continue
            for match in scan.matches(cue.number):
                start, end = match.span()
                question = in_question(start)
                if cue.asks is not None and cue.asks != question:
                    continue
                if cue.negatable and negated(text, start, cue.hypothetical):
                    continue
                # Two cues of one situation on the same words count once (the first listed).
                if cue.weight > 0 and any(s < end and start < e for s, e in taken):
                    continue
                hits.append(
                    Hit(situation, start, end, cue.weight, question, cue.objection, cue.pain)
                )
                if cue.weight > 0:
                    taken.append((start, end))
                total += cue.weight
                break
        if total:
            scores[situation] = total
    feature_spans: dict[str, tuple[int, int]] = {}
    for name, number in lex.features.items():
        for match in scan.matches(number):
            if name not in lex.negatable or not negated(text, match.start()):
                feature_spans[name] = match.span()
                break
    features = set(feature_spans)
    if any(asks):
        features.add("question")
    if lexicon.MONEY.search(text) or _THOUSANDS.search(text):
        features.add("money")
    mention = next(iter(lexicon.named_vendors(text, cased)), None)
    vendor = (mention.at, mention.name) if mention else None
    if vendors:
        extra = _extra_vendor(text, vendors)
        if extra is not None and (vendor is None or extra[0] < vendor[0]):
            vendor = extra
    if vendor:
        features.add("vendor")
    for situation, combos in lex.combos.items():
        for combo in combos:
            if combo.features <= features:
                scores[situation] = scores.get(situation, 0.0) + combo.weight
    return Reading(text, cased, tuple(hits), frozenset(features), scores, feature_spans, vendor)


def scores(
    text: str, context: Mapping[str, str] | None = None, vendors: frozenset[str] = frozenset()
) -> dict[Situation, float]:
    """Each situation's score for a message in a thread that knows `context`."""
    reading = read(text, vendors)
    found = dict(reading.scores)
    if context:
        known = reading.features | {f"ctx:{name}" for name, value in context.items() if value}
        for situation, combos in LEXICON.combos.items():
            for combo in combos:
                if combo.features <= known and not combo.features <= reading.features:
                    found[situation] = found.get(situation, 0.0) + combo.weight
    return {situation: score for situation, score in found.items() if score > 0}


def rank(
    text: str, context: Mapping[str, str] | None = None, vendors: frozenset[str] = frozenset()
) -> list[tuple[Situation, float]]:
    """Situations with a positive score, best first, after the priority rules."""
    found = scores(text, context, vendors)
    strongest_objection = max((found.get(s, 0.0) for s in OBJECTIONS), default=0.0)
    if "discovery" in found and strongest_objection >= OBJECTION_FLOOR:
        found["discovery"] *= DISCOVERY_YIELD
    return sorted(found.items(), key=lambda item: (-item[1], SITUATIONS.index(item[0])))


def detect(
    text: str, context: Mapping[str, str] | None = None, vendors: frozenset[str] = frozenset()
) -> Detection:
    ranked = rank(text, context, vendors)
    if not ranked:
        # No cue at all: a long statement is most often about the prospect's world; a
        # question or a short remark we cannot place.
        if any(asks for _, asks in sentences(text)):
            return Detection("other", 0.35, None)
        # A fact about their world (a head count, an amount, a vendor) is discovery too.
        reading = read(text, vendors)
        states = reading.features & {"money", "vendor"} or _COUNT.search(reading.text)
        if len(text.split()) >= 12 or states:
            return Detection("discovery", 0.4, None)
        return Detection("other", 0.3, None)
    (top, top_score), runner = ranked[0], ranked[1] if len(ranked) > 1 else (None, 0.0)
    confidence = round(_confidence(top_score, runner[1]), 3)
    return Detection(top, confidence, runner[0])


def _confidence(top: float, runner: float) -> float:
    """How sure: strength of the winning cues, and by how much they beat the runner-up. A
    clear margin counts fully only behind one proper cue's worth of evidence (FULL_CUE), so
    a lone weak cue (a product word, a stray "ramp") stays under the reconcile threshold."""
    strength = top / (top + 1.5)
    margin = (top - runner) / top
    return min(0.97, 0.25 + 0.45 * strength + 0.35 * margin * min(1.0, top / FULL_CUE))
