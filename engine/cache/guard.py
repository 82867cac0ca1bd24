"""The false-hit guard: a semantic hit is served only if the two messages state the same facts.

Sentence embeddings score "we have budget" and "we don't have budget" 0.92 apart from 1.0, and
"Gong is cheaper than you" against "you are cheaper than Gong" 0.95: they see the topic, not the
facts. So before a cached answer is reused for a new message, the guard extracts from both what
the answer depends on and requires every part to agree:

- negation: as many negations, covering the same words (a clause "don't have budget" is not
  "can't sign");
- numbers and money amounts, percentages, times of day, in order ("$30k instead of $45k");
- dates and periods: weekdays, months, quarters, years, "next week", "per month", "annually";
- named competitors (the offline tier's vendor list), in order and each with its polarity
  ("we don't use Gong, we use Clari");
- decision-maker roles (CFO, VP of Sales, procurement, legal...), with polarity;
- comparison and direction: what follows "than"/"as", and direction words (more/fewer,
  up/down, before/after, upgrade/downgrade...);
- minimal pairs: when the two messages are the same words but for a swapped content word
  ("SSO"/"SCIM", "EU"/"US", "reps"/"managers"), that word is the whole difference and the
  embedding cannot judge it, so it must be a known synonym;
- the offline tier's situation (checked last: it is the dearest to compute).

The guard errs towards a miss: a reworded message the guard cannot prove equal costs one fresh
answer; a wrong card costs the rep's trust.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from ..rules import lexicon
from ..rules.detect import detect
from ..rules.lexicon import VENDORS
from ..rules.text import plain, sentences

__all__ = ["REASONS", "Facts", "disagreement", "facts"]

REASONS = (
    "negation",
    "numbers",
    "dates",
    "competitors",
    "roles",
    "comparison",
    "wording",
    "situation",
)


# The word tables are rules/lexicon.toml, shared with the offline rules; the patterns that
# put them together stay here.
_CONTRACTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"\bcan'?t\b|\bcannot\b"), "can not"),
    (re.compile(r"\bwon'?t\b"), "will not"),
    (re.compile(r"\bshan'?t\b"), "shall not"),
    (re.compile(r"\bain'?t\b"), "is not"),
    (re.compile(r"n't\b"), " not"),
    (
        re.compile(r"\b(" + lexicon.alternatives(lexicon.BARE_NEGATIONS) + r")\b"),
        lambda m: lexicon.BARE_NEGATIONS[m[1]] + " not",
    ),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'d\b"), " would"),
    (re.compile(r"'s\b"), ""),
    (re.compile(r"s'(?=\s|$)"), "s"),
)

# Upper-case words that lower-case into a stopword ("US", "IT").
_ACRONYMS = (
    (re.compile(r"\bU\.?S\.?A?\b\.?"), "usa"),
    (re.compile(r"\bU\.?K\.?\b"), "uk"),
    (re.compile(r"\bIT\b"), "it-dept"),
    (re.compile(r"\bFY\b", re.IGNORECASE), "fiscal year"),
)

_NEGATIONS = lexicon.NEGATIONS
# A negation covers the words after it up to a clause boundary, at most this many.
_CLAUSE_END = lexicon.CLAUSE_BREAKS
_SCOPE_WORDS = 6

_UNITS = lexicon.UNITS
_SMALL = lexicon.NUMBER_WORDS
_SCALES = lexicon.SCALES
_WORD_NUMBER = re.compile(r"\b(?:" + lexicon.WORD_NUMBER_PATTERN + r")\b")
_MONEY = lexicon.MONEY
_PERCENT = re.compile(r"\b(\d+(?:\.\d+)?)\s?(?:%|percent\b|pct\b)")
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d\d))?\s?(am|pm)\b|\b(\d{1,2}):(\d\d)\b")
_PLAIN_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(k|m|x|st|nd|rd|th)?(?![\w])")
_QUARTER = re.compile(r"\b(q[1-4]|h[12])\b|\b(?:fy|fiscal year)\s?'?(\d{2,4})\b")
_MONTHS = lexicon.MONTHS
_DAYS = lexicon.DAYS
_UNIT_WORDS = lexicon.PERIODS
_UNIT_MODIFIERS = lexicon.PERIOD_MODIFIERS
_DATE_WORDS = re.compile(
    r"(?:\b(" + lexicon.alternatives(lexicon.DATE_PLACING) + r") )?"
    r"\b(" + lexicon.alternatives([*_MONTHS, *_DAYS]) + r")\b"
)
_UNIT_RE = re.compile(
    r"(?:\b(" + lexicon.alternatives(m for m in _UNIT_MODIFIERS if m != "/") + r")\s+|/\s?)?"
    r"\b(" + lexicon.alternatives(_UNIT_WORDS) + r")\b"
)
_YEAR = re.compile(r"\b(19\d\d|20\d\d)\b")

# Words that point one way on some scale: the two messages must point the same ways.
_DIRECTIONS = lexicon.DIRECTIONS
# Particles that are directions only next to what they point at: "went up", "after 3pm",
# "over $20k"; elsewhere ("set up", "send over", "before anything else") they are idiom.
_CONTEXTUAL_DIRECTIONS: tuple[tuple[re.Pattern[str], Mapping[str, str]], ...] = (
    (
        re.compile(r"\b(?:" + lexicon.alternatives(lexicon.MOTION) + r") (up|down)\b"),
        {"up": "up", "down": "down"},
    ),
    (re.compile(r"\bup to (?=[$€£\d])"), {"": "most"}),
    (
        re.compile(
            r"\b(" + lexicon.alternatives(lexicon.TIME_DIRECTIONS) + r")"
            r" (?=(?:the |this |next |our |a )?(?:end|start|beginning|middle|[$€£\d]|q[1-4]\b|"
            r"h[12]\b|fy|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|mon|tue|wed|thu|fri|"
            r"sat|sun|today|tomorrow|tonight|week|month|quarter|year|noon|midnight|eo[dwmqy]))"
        ),
        lexicon.TIME_DIRECTIONS,
    ),
    (
        re.compile(
            r"\b(" + lexicon.alternatives(lexicon.AMOUNT_DIRECTIONS) + r") (?=(?:a |an )?[$€£\d])"
        ),
        lexicon.AMOUNT_DIRECTIONS,
    ),
)
_COMPARATORS = re.compile(
    r"\b(?:than|as much as|as many as|versus|vs\.?|instead of|rather than)\s+"
    r"((?:the |our |your |their |a |an )?[\w$€£%.,-]+(?: [\w.-]+)?)"
)
_COMPARE_SKIP = lexicon.COMPARE_SKIP
_PRONOUNS = lexicon.PRONOUNS
_ROLES = tuple((re.compile(pattern), name) for pattern, name in lexicon.ROLES)

# Function words, fillers and intensifiers: changing them does not change a fact.
_STOPWORDS = lexicon.STOPWORDS
# Groups of words that say the same thing for a sales message.
_SYNONYMS: dict[str, int] = {w: i for i, g in enumerate(lexicon.SYNONYM_GROUPS) for w in g.split()}
# Near-duplicates: this share of tokens in common makes a pair a minimal pair.
_MINIMAL_PAIR_RATIO = 0.6

_TOKEN = re.compile(r"[$€£]?\d[\d,.]*(?:k|m)?%?|[a-z][a-z0-9'-]*|[$€£%/]")


@dataclass(frozen=True, slots=True)
class Facts:
    """What a message asserts, in a form two messages can be compared on."""

    tokens: tuple[str, ...]
    negations: int
    negated_words: tuple[frozenset[str], ...]
    numbers: tuple[str, ...]
    dates: tuple[str, ...]
    competitors: tuple[str, ...]
    roles: tuple[str, ...]
    comparison: tuple[str, ...]
    text: str

    @property
    def situation(self) -> str:
        """The offline tier's situation, computed on first use and remembered."""
        return _situation(self.text)


def disagreement(a: Facts, b: Facts) -> str | None:
    """The first reason the two messages differ in fact, or None when they agree."""
    if a.negations != b.negations or not _scopes_match(a.negated_words, b.negated_words):
        return "negation"
    if a.numbers != b.numbers:
        return "numbers"
    if a.dates != b.dates:
        return "dates"
    if a.competitors != b.competitors:
        return "competitors"
    if a.roles != b.roles:
        return "roles"
    if a.comparison != b.comparison:
        return "comparison"
    if _swapped_word(a.tokens, b.tokens):
        return "wording"
    if a.situation != b.situation:
        return "situation"
    return None


@lru_cache(maxsize=4096)
def facts(text: str) -> Facts:
    """The facts of one prospect message (cached: cache entries are compared many times)."""
    prepared = _prepare(text)
    polarity = _polarity_marks(prepared)
    negated_spans = polarity.spans
    return Facts(
        tokens=tuple(_TOKEN.findall(prepared)),
        negations=polarity.count,
        negated_words=polarity.words,
        numbers=tuple(_numbers(prepared)),
        dates=tuple(sorted(_dates(prepared))),
        competitors=tuple(_with_polarity(_competitors(text, prepared), negated_spans)),
        roles=tuple(_with_polarity(_roles(prepared), negated_spans)),
        comparison=tuple(_comparison(prepared)),
        text=text,
    )


@lru_cache(maxsize=4096)
def _situation(text: str) -> str:
    return detect(text).situation


# Preparation -------------------------------------------------------------------------------


def _prepare(text: str) -> str:
    out = plain(text)
    for acronym, word in _ACRONYMS:
        out = acronym.sub(word, out)
    out = out.lower()
    for pattern, replacement in _CONTRACTIONS:
        out = pattern.sub(replacement, out)
    return " ".join(out.split())


@dataclass(frozen=True, slots=True)
class _Polarity:
    count: int
    spans: tuple[tuple[int, int], ...]
    words: tuple[frozenset[str], ...]


def _polarity_marks(prepared: str) -> _Polarity:
    """Negation markers and the stretch of text each one covers."""
    spans: list[tuple[int, int]] = []
    words: list[frozenset[str]] = []
    tokens = list(re.finditer(r"[\w$€£%'.-]+|[,;:!?]", prepared))
    for i, tok in enumerate(tokens):
        if tok[0] not in _NEGATIONS:
            continue
        covered: list[str] = []
        end = tok.end()
        for nxt in tokens[i + 1 :]:
            word = nxt[0]
            if word in _CLAUSE_END or (not word[0].isalnum() and word[0] not in "$€£"):
                break
            end = nxt.end()
            if word not in _STOPWORDS and word not in _NEGATIONS:
                covered.append(_stem(word))
            if len(covered) >= _SCOPE_WORDS:
                break
        spans.append((tok.start(), end))
        words.append(frozenset(covered))
    return _Polarity(len(spans), tuple(spans), tuple(words))


def _scopes_match(a: tuple[frozenset[str], ...], b: tuple[frozenset[str], ...]) -> bool:
    """Each negation of one message covers some word a negation of the other covers."""
    if not a and not b:
        return True
    union_a = _canonical_set(frozenset().union(*a))
    union_b = _canonical_set(frozenset().union(*b))
    return all(not scope or _canonical_set(scope) & union_b for scope in a) and all(
        not scope or _canonical_set(scope) & union_a for scope in b
    )


def _canonical_set(words: Iterable[str]) -> frozenset[str]:
    return frozenset(f"~{_SYNONYMS[w]}" if w in _SYNONYMS else w for w in words)


def _with_polarity(
    found: Iterable[tuple[int, str]], negated: tuple[tuple[int, int], ...]
) -> list[str]:
    return [
        ("not " if any(start <= at < end for start, end in negated) else "") + name
        for at, name in sorted(found)
    ]


# Extractors --------------------------------------------------------------------------------


def _numbers(prepared: str) -> list[str]:
    """Money, percentages, clock times and plain numbers, each canonical, in order of appearance."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return not any(s < end and start < e for s, e in taken)

    for m in _MONEY.finditer(prepared):
        if m["fig"]:
            value = f"figures:{m['fig'].replace(' ', '-').strip('-')}"
        else:
            number = _to_float(m["num"] or m["num2"])
            unit = (m["unit"] or m["unit2"] or "").lower()
            value = f"money:{_fmt(number * _UNITS.get(unit, 1))}"
        found.append((m.start(), value))
        taken.append(m.span())
    for m in _PERCENT.finditer(prepared):
        if free(*m.span()):
            found.append((m.start(), f"pct:{_fmt(_to_float(m[1]))}"))
            taken.append(m.span())
    for m in _CLOCK.finditer(prepared):
        if not free(*m.span()):
            continue
        if m[3]:
            hour = int(m[1]) % 12 + (12 if m[3] == "pm" else 0)
            minute = int(m[2] or 0)
        else:
            hour, minute = int(m[4]), int(m[5])
        found.append((m.start(), f"time:{hour:02d}:{minute:02d}"))
        taken.append(m.span())
    for m in _YEAR.finditer(prepared):
        taken.append(m.span())  # years are dates
    for m in _PLAIN_NUMBER.finditer(prepared):
        if free(*m.span()):
            if m[2] in ("st", "nd", "rd", "th"):
                found.append((m.start(), f"nth:{_fmt(_to_float(m[1]))}"))
            elif m[2] == "x":  # "3x bigger": a multiple
                found.append((m.start(), f"times:{_fmt(_to_float(m[1]))}"))
            else:
                found.append((m.start(), _fmt(_to_float(m[1]) * _UNITS.get(m[2] or "", 1))))
            taken.append(m.span())
    for m in _WORD_NUMBER.finditer(prepared):
        if not free(*m.span()) or _pronoun_one(m[0], prepared, m.end()):
            continue
        amount = lexicon.word_value(m[0])
        if amount is not None:
            found.append((m.start(), _fmt(amount)))
    return [value for _, value in sorted(found)]


_COUNTED_ONE = re.compile(r"[- ](?:year|month|week|day|quarter|time|seat|licen[cs]e|user|rep)")


def _pronoun_one(phrase: str, text: str, end: int) -> bool:
    """'no one', 'the one who', 'one of three': 'one' as a pronoun, not a count."""
    if phrase.strip() != "one":
        return False
    return not _COUNTED_ONE.match(text, end)


_VERB_MONTHS = lexicon.VERB_MONTHS
_MONTH_CONTEXT = {
    word: re.compile(
        rf"\b(?:in|by|until|till|before|after|early|mid|late|end of|since|from|of) {word}\b"
        rf"|\b{word} \d"
    )
    for word in _VERB_MONTHS
}


def _dates(prepared: str) -> list[str]:
    found = [f"q:{m[1] or 'fy' + (m[2] or '')[-2:]}" for m in _QUARTER.finditer(prepared)]
    for m in _DATE_WORDS.finditer(prepared):
        word = m[2]
        if word in _VERB_MONTHS and not _MONTH_CONTEXT[word].search(prepared):
            continue  # "may" and "march" are most often verbs
        name = f"m:{_MONTHS[word]}" if word in _MONTHS else word
        found.append(f"{_UNIT_MODIFIERS.get(m[1] or '', m[1])}-{name}" if m[1] else name)
    found.extend(f"y:{m[1]}" for m in _YEAR.finditer(prepared))
    for m in _UNIT_RE.finditer(prepared):
        unit = _UNIT_WORDS[m[2]]
        if unit.startswith("per-"):
            found.append(unit)
            continue
        modifier = _UNIT_MODIFIERS.get(m[1] or ("/" if m[0].startswith("/") else ""), "")
        found.append(f"{modifier}-{unit}" if modifier else unit)
    return found


def _competitors(text: str, prepared: str) -> list[tuple[int, str]]:
    """Every vendor named, in order, found as the offline tier finds them (the same list and
    rules, on the same sentences), then placed in the prepared text (for the polarity check)
    by their name."""
    cased = "\n".join(sentence for sentence, _ in sentences(text))
    lower = cased.lower()
    if len(lower) != len(cased):  # a rare letter whose lower case is longer
        cased = lower
    out: list[tuple[int, str]] = []
    cursor: dict[str, int] = {}
    for mention in VENDORS.mentions(lower, cased):
        key = mention.alias
        at = prepared.find(key, cursor.get(key, 0))
        cursor[key] = at + 1 if at >= 0 else cursor.get(key, 0)
        out.append((at if at >= 0 else mention.at, mention.name))
    return out


def _roles(prepared: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern, name in _ROLES:
        for m in pattern.finditer(prepared):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            taken.append(m.span())
            out.append((m.start(), name.format(*m.groups()) if m.groups() else name))
    return out


def _comparison(prepared: str) -> list[str]:
    out = []
    for m in _COMPARATORS.finditer(prepared):
        target = m[1].split()
        head = next((w for w in target if w not in _COMPARE_SKIP), target[0])
        out.append("than:" + _PRONOUNS.get(head, _stem(head)))
    words = re.findall(r"[a-z]+", prepared)
    directions = [d for w in words if (d := _DIRECTIONS.get(w))]
    for pattern, names in _CONTEXTUAL_DIRECTIONS:
        directions.extend(names[m[1] if m.groups() else ""] for m in pattern.finditer(prepared))
    out.extend(sorted(directions))
    return out


def _swapped_word(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """True when the messages are near-identical but a content word was swapped or added."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < _MINIMAL_PAIR_RATIO:
        return False
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace":
            continue  # an added or dropped word is rewording; facts in it were compared above
        left = {_stem(w) for w in a[i1:i2] if _content(w)}
        right = {_stem(w) for w in b[j1:j2] if _content(w)}
        if not left or not right:
            continue
        if _canonical_set(left) != _canonical_set(right) and not _stems_cover(left, right):
            return True
    return False


def _stems_cover(left: set[str], right: set[str]) -> bool:
    # "set up"/"setup", "sign-off"/"sign off": the same letters, split differently.
    return "".join(sorted(left)).replace("-", "") == "".join(sorted(right)).replace("-", "")


def _content(word: str) -> bool:
    """A word that can carry meaning of its own; numbers are compared as facts instead."""
    return (
        word not in _STOPWORDS
        and word not in _NEGATIONS
        and word[0].isalpha()
        and word not in _SMALL
        and word not in _SCALES
    )


def _stem(word: str) -> str:
    """A crude suffix strip, enough to match 'reviews'/'reviewed' and 'signs'/'signed'."""
    w = word.strip("'-.")
    if w in _SYNONYMS or len(w) <= 3:
        return w
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            w = w[: len(w) - len(suffix)] + repl
            break
    return w[:-1] if w.endswith("e") and len(w) > 4 else w


def _to_float(raw: str) -> float:
    return float(raw.replace(",", "").rstrip("."))


def _fmt(value: float) -> str:
    return f"{value:g}" if value < 1e15 else str(int(value))
