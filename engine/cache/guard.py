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
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

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

_CONTRACTIONS = (
    (re.compile(r"\bcan'?t\b|\bcannot\b"), "can not"),
    (re.compile(r"\bwon'?t\b"), "will not"),
    (re.compile(r"\bshan'?t\b"), "shall not"),
    (re.compile(r"\bain'?t\b"), "is not"),
    (re.compile(r"n't\b"), " not"),
    (
        re.compile(
            r"\b(dont|doesnt|didnt|isnt|arent|wasnt|werent|havent|hasnt|hadnt|wouldnt|"
            r"shouldnt|couldnt|mustnt|neednt)\b"
        ),
        r"\1 not",
    ),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'d\b"), " would"),
    (re.compile(r"'s\b"), ""),
    (re.compile(r"s'(?=\s|$)"), "s"),
)
_UNCONTRACT = {
    "dont": "do",
    "doesnt": "does",
    "didnt": "did",
    "isnt": "is",
    "arent": "are",
    "wasnt": "was",
    "werent": "were",
    "havent": "have",
    "hasnt": "has",
    "hadnt": "had",
    "wouldnt": "would",
    "shouldnt": "should",
    "couldnt": "could",
    "mustnt": "must",
    "neednt": "need",
}

# Upper-case words that lower-case into a stopword ("US", "IT").
_ACRONYMS = (
    (re.compile(r"\bU\.?S\.?A?\b\.?"), "usa"),
    (re.compile(r"\bU\.?K\.?\b"), "uk"),
    (re.compile(r"\bIT\b"), "it-dept"),
    (re.compile(r"\bFY\b", re.IGNORECASE), "fiscal year"),
)

_NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without"}
)
# A negation covers the words after it up to a clause boundary.
_CLAUSE_END = frozenset(
    {"but", "and", "so", "because", "while", "although", "though", "however", "whereas", "or",
     "if", "unless", "which", "then"}
)  # fmt: skip
_SCOPE_WORDS = 6

_UNITS = {
    "k": 1e3,
    "thousand": 1e3,
    "grand": 1e3,
    "m": 1e6,
    "mm": 1e6,
    "million": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}
_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12, "twice": 2, "couple": 2,
    "single": 1, "half": 0.5,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_WORD_NUMBER = re.compile(
    r"\b(?:(?:a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
    r"seventy|eighty|ninety|zero|dozen|twice|couple|single|half)"
    r"(?:[- ](?:one|two|three|four|five|six|seven|eight|nine|hundred|thousand|million|dozen))*"
    r"(?:[- ](?:hundred|thousand|million))?)\b"
)
_CURRENCY = r"(?:usd|eur|gbp|dollars?|euros?|pounds?|bucks)"
_MONEY = re.compile(
    r"(?P<cur>[$€£])\s?(?P<num>\d[\d,]*(?:\.\d+)?)\s?(?P<unit>k|mm|m|bn|b|thousand|million|"
    r"billion|grand)?\b"
    r"|\b(?P<num2>\d[\d,]*(?:\.\d+)?)\s?(?P<unit2>k|mm|m|bn|thousand|million|billion)?\s?"
    r"(?P<cur2>" + _CURRENCY + r")\b"
    r"|\b(?P<fig>(?:low|mid|high)?[- ]?(?:five|six|seven|eight)|\d)[- ]figures?\b"
)
_PERCENT = re.compile(r"\b(\d+(?:\.\d+)?)\s?(?:%|percent\b|pct\b)")
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d\d))?\s?(am|pm)\b|\b(\d{1,2}):(\d\d)\b")
_PLAIN_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(k|m|x|st|nd|rd|th)?(?![\w])")
_QUARTER = re.compile(r"\b(q[1-4]|h[12])\b|\b(?:fy|fiscal year)\s?'?(\d{2,4})\b")
_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4,
    "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8,
    "sep": 9, "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11,
    "dec": 12, "december": 12,
}  # fmt: skip
_DAYS = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "weekend",
    "today", "tonight", "tomorrow", "yesterday", "morning", "afternoon", "evening", "noon",
    "midnight", "eod", "eow", "eom", "eoq", "eoy", "asap",
)  # fmt: skip
_UNIT_WORDS = {
    "day": "day", "days": "day", "daily": "per-day", "week": "week", "weeks": "week",
    "weekly": "per-week", "month": "month", "months": "month", "monthly": "per-month",
    "mo": "month", "quarter": "quarter", "quarters": "quarter", "quarterly": "per-quarter",
    "year": "year", "years": "year", "yr": "year", "yearly": "per-year", "annual": "per-year",
    "annually": "per-year", "annum": "year", "biweekly": "per-2week", "semester": "half-year",
}  # fmt: skip
_UNIT_MODIFIERS = {
    "this": "this", "next": "next", "last": "last", "past": "last", "previous": "last",
    "coming": "next", "following": "next", "per": "per", "a": "per", "an": "per",
    "every": "per", "each": "per", "/": "per", "current": "this",
}  # fmt: skip
_DATE_WORDS = re.compile(
    r"(?:\b(this|next|last|past|coming|following|early|mid|late|end of|start of) )?"
    r"\b(" + "|".join(sorted(list(_MONTHS) + list(_DAYS), key=len, reverse=True)) + r")\b"
)
_UNIT_RE = re.compile(
    r"(?:\b(this|next|last|past|previous|coming|following|per|a|an|every|each|current)\s+|/\s?)?"
    r"\b(" + "|".join(sorted(_UNIT_WORDS, key=len, reverse=True)) + r")\b"
)
_YEAR = re.compile(r"\b(19\d\d|20\d\d)\b")

# Words that point one way on some scale: the two messages must point the same ways.
_DIRECTIONS = {
    "more": "more", "additional": "more", "extra": "more", "less": "less", "fewer": "less",
    "cheaper": "cheaper", "cheap": "cheaper", "inexpensive": "cheaper", "affordable": "cheaper",
    "pricier": "pricier", "costlier": "pricier",
    "higher": "up", "increase": "up", "increased": "up", "increasing": "up", "raise": "up",
    "raised": "up", "grow": "up", "growing": "up", "grew": "up", "rise": "up", "rising": "up",
    "rose": "up", "lower": "down", "decrease": "down", "decreased": "down",
    "decreasing": "down", "reduce": "down", "reduced": "down", "cut": "down", "cutting": "down",
    "cuts": "down", "shrink": "down", "shrinking": "down", "slash": "down", "slashed": "down",
    "add": "add", "adding": "add", "added": "add", "hire": "add", "hiring": "add",
    "expand": "add", "expanding": "add", "upgrade": "upgrade", "upgrading": "upgrade",
    "downgrade": "downgrade", "downgrading": "downgrade",
    "better": "better", "best": "better", "worse": "worse", "worst": "worse",
    "faster": "faster", "quicker": "faster", "slower": "slower",
    "longer": "longer", "shorter": "shorter", "bigger": "bigger", "larger": "bigger",
    "smaller": "smaller", "easier": "easier", "harder": "harder",
    "least": "least", "most": "most", "max": "most", "maximum": "most", "minimum": "least",
    "success": "success", "successful": "success", "failure": "failure", "failed": "failure",
}  # fmt: skip
# Particles that are directions only next to what they point at: "went up", "after 3pm",
# "over $20k"; elsewhere ("set up", "send over", "before anything else") they are idiom.
_MOTION = r"(?:went|go|goes|going|gone|come|came|comes|trending|trended|moved|moving|shot|jumped)"
_CONTEXTUAL_DIRECTIONS = (
    (re.compile(r"\b" + _MOTION + r" (up|down)\b"), {"up": "up", "down": "down"}),
    (re.compile(r"\bup to (?=[$€£\d])"), {"": "most"}),
    (
        re.compile(
            r"\b(before|prior to|earlier than|after|later than|since|until|till|by|from)"
            r" (?=(?:the |this |next |our |a )?(?:end|start|beginning|middle|[$€£\d]|q[1-4]\b|"
            r"h[12]\b|fy|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|mon|tue|wed|thu|fri|"
            r"sat|sun|today|tomorrow|tonight|week|month|quarter|year|noon|midnight|eo[dwmqy]))"
        ),
        {
            "before": "before",
            "prior to": "before",
            "earlier than": "before",
            "after": "after",
            "later than": "after",
            "since": "after",
            "until": "until",
            "till": "until",
            "by": "by",
            "from": "from",
        },
    ),
    (
        re.compile(
            r"\b(over|above|more than|under|below|less than|within|at least|at most)"
            r" (?=(?:a |an )?[$€£\d])"
        ),
        {
            "over": "over",
            "above": "over",
            "more than": "over",
            "under": "under",
            "below": "under",
            "less than": "under",
            "within": "under",
            "at least": "least",
            "at most": "most",
        },
    ),
)
_COMPARATORS = re.compile(
    r"\b(?:than|as much as|as many as|versus|vs\.?|instead of|rather than)\s+"
    r"((?:the |our |your |their |a |an )?[\w$€£%.,-]+(?: [\w.-]+)?)"
)
_COMPARE_SKIP = frozenset({"the", "a", "an", "with", "for", "at", "in", "on", "to", "using"})
_PRONOUNS = {
    "you": "you", "your": "you", "yours": "you", "yourselves": "you",
    "we": "we", "us": "we", "our": "we", "ours": "we", "i": "we", "me": "we", "my": "we",
    "they": "they", "them": "they", "their": "they",
}  # fmt: skip

_ROLES = (
    (re.compile(r"\bceo\b|\bchief executive(?: officer)?\b"), "ceo"),
    (re.compile(r"\bcfo\b|\bchief financial(?: officer)?\b"), "cfo"),
    (re.compile(r"\bcto\b|\bchief technology(?: officer)?\b|\bchief technical officer\b"), "cto"),
    (re.compile(r"\bcio\b|\bchief information officer\b"), "cio"),
    (re.compile(r"\bcoo\b|\bchief operating(?: officer)?\b"), "coo"),
    (re.compile(r"\bcro\b|\bchief revenue(?: officer)?\b"), "cro"),
    (re.compile(r"\bcmo\b|\bchief marketing(?: officer)?\b"), "cmo"),
    (re.compile(r"\bciso\b|\bchief (?:information )?security(?: officer)?\b"), "ciso"),
    (re.compile(r"\bcpo\b|\bchief product(?: officer)?\b"), "cpo"),
    (
        re.compile(
            r"\b(?:svp|evp|vp|vice president|head|director|manager|lead)s?(?: of)? "
            r"((?:sales|finance|it|engineering|operations|ops|marketing|revenue|revops|"
            r"procurement|security|product|people|hr|customer success|cs|support|"
            r"enablement|growth|technology|data|legal))\b"
        ),
        "lead:{0}",
    ),
    (re.compile(r"\bprocurement\b|\bpurchasing\b"), "procurement"),
    (re.compile(r"\blegal\b|\blawyers?\b|\bcounsel\b|\battorneys?\b"), "legal"),
    (re.compile(r"\bfinance\b|\baccounting\b"), "finance"),
    (re.compile(r"\bsecurity team\b|\binfosec\b|\bsecurity\b"), "security"),
    (re.compile(r"\bit (?:team|department|dept)\b|\bour it\b"), "it"),
    (re.compile(r"\bthe board\b|\bboard\b"), "board"),
    (re.compile(r"\bboss\b|\bmy manager\b"), "boss"),
    (re.compile(r"\bfounders?\b|\bowners?\b|\bpartners\b"), "founder"),
    (re.compile(r"\bleadership\b|\bexec(?:utive)?s?(?: team)?\b|\bmanagement\b"), "leadership"),
    (re.compile(r"\bcommittee\b"), "committee"),
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words, fillers and intensifiers: changing them does not change a fact.
_STOPWORDS = _words(
    """a an the this that these those it its i me my we us our ours you your yours they them
    their he she him her his hers there here what which who whom whose when where why how is
    are was were be been being am do does did doing done have has had having will would shall
    should can could may might must to of in on at by for with about as into onto from up out
    over off and or but if then so than too also very really just quite pretty honestly
    actually basically literally totally truly way much many some any all both each every few
    more most other such only own same again still even ever yet already now right currently
    today ok okay hey hi hello please thanks thank well oh um uh like get got getting going
    gonna go let lets need needs want wants one ones something anything thing things stuff bit
    lot lots kind sort"""
)
# Groups of words that say the same thing for a sales message.
_SYNONYM_GROUPS = (
    "expensive pricey costly steep overpriced",
    "price pricing cost costs prices quote quoted spend spending spent",
    "buy purchase procure",
    "start begin kick launch",
    "send share forward return",
    "talk speak chat discuss",
    "schedule set setup book arrange",
    "locked tied stuck committed",
    "seem seems look looks appear appears sound sounds",
    "call meeting",
    "big large huge",
    "small little tiny",
    "good great fine nice excellent",
    "help helpful useful",
    "need require requirement",
    "use using used utilize",
    "work works working compatible",
    "team group",
    "company business organization organisation org firm",
    "customer customers client clients",
    "tool tools software platform product solution system app",
    "worried concerned nervous",
    "issue problem concern",
    "complicated complex",
    "contract agreement",
    "pilot trial poc",
    "demo walkthrough",
    "seat seats license licenses licence licences user users",
    "rep reps seller sellers",
    "data information info",
    "question questions",
    "follow following",
)
_SYNONYMS: dict[str, int] = {w: i for i, g in enumerate(_SYNONYM_GROUPS) for w in g.split()}
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
    for pattern, replacement in _ACRONYMS:
        out = pattern.sub(replacement, out)
    out = out.lower()
    for pattern, replacement in _CONTRACTIONS:
        out = pattern.sub(replacement, out)
    out = re.sub(
        r"\b(" + "|".join(_UNCONTRACT) + r") not\b", lambda m: _UNCONTRACT[m[1]] + " not", out
    )
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
        amount = _word_value(m[0])
        if amount is not None:
            found.append((m.start(), _fmt(amount)))
    return [value for _, value in sorted(found)]


def _word_value(phrase: str) -> float | None:
    """'a dozen' 12, 'twenty five' 25, 'two hundred' 200, 'a couple' 2; None for 'a'."""
    words = phrase.replace("-", " ").split()
    total = current = 0.0
    seen = False
    for w in words:
        if w == "a":
            continue
        if w in _SCALES:
            current = max(current, 1) * _SCALES[w]
            if _SCALES[w] >= 1000:
                total, current = total + current, 0.0
        elif w == "dozen":
            current = max(current, 1) * 12
        elif w in _SMALL:
            current += _SMALL[w]
        seen = True
    return total + current if seen else None


_COUNTED_ONE = re.compile(r"[- ](?:year|month|week|day|quarter|time|seat|licen[cs]e|user|rep)")


def _pronoun_one(phrase: str, text: str, end: int) -> bool:
    """'no one', 'the one who', 'one of three': 'one' as a pronoun, not a count."""
    if phrase.strip() != "one":
        return False
    return not _COUNTED_ONE.match(text, end)


_VERB_MONTHS = frozenset({"may", "mar", "march"})
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
