"""The words the offline rules and the cache guard share, loaded once.

`vendors.txt` is the list of vendors a prospect may name; `lexicon.toml` holds the word tables
(numbers, months, negations, roles, units, directions, synonyms...). Both the rules (capture,
detect) and the guard read them from here, so they cannot disagree on what a message says:
whether it names a competitor, which words negate, what a number word is worth.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .text import Scanner

HERE: Final = Path(__file__).parent


# Vendors ---------------------------------------------------------------------------------------

# Nouns an everyday word that is also a vendor's name ("Close", "Ramp", "Outreach") qualifies.
_QUALIFIED = re.compile(
    r" (?:time|times|rates?|volume|leads?|efforts?|calls?|emails?|campaigns?|sequences?|"
    r"cadences?|metrics|numbers|process|motion|strategy|plans?|dates?|cycles?|quality|"
    r"activity|activities|performance|reps?|team|teams|targets?|goals?|speed|periods?)\b"
)


@dataclass(frozen=True, slots=True)
class Mention:
    """A vendor named in a text: where, the alias as matched (lower case), the canonical name."""

    at: int
    alias: str
    name: str


class Vendors:
    """vendors.txt, compiled: one canonical name a line, aliases after "|"; a leading "*" marks
    a name that is also an everyday word, which counts only capitalised as written."""

    def __init__(self, lines: list[str]) -> None:
        names: dict[str, str] = {}
        loose: list[str] = []
        strict: list[str] = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            aliases = line.lstrip("*").split("|")
            for alias in aliases:
                names.setdefault(alias.lower(), aliases[0])
                if line.startswith("*"):
                    strict.append(alias)
                else:
                    loose.append(alias.lower())
        self.names: Mapping[str, str] = names
        # Matched on lower-cased text; a strict candidate must then match the cased text too.
        self.scanner = Scanner([_alternation(loose), _alternation([a.lower() for a in strict])])
        self._strict_cased = _alternation(strict)

    @classmethod
    def load(cls, path: Path = HERE / "vendors.txt") -> Vendors:
        return cls(path.read_text("utf-8").splitlines())

    def mentions(self, text: str, cased: str) -> Iterator[Mention]:
        """Every vendor named, leftmost first, the longest alias where two start together.
        `text` is `cased` lower-cased (same length); a line break in them starts a sentence,
        where every word is capitalised: there "Ramp time" is not the vendor Ramp."""
        scan = self.scanner.scan(text)
        found = [(m.start(), m.end()) for m in scan.matches(0)]
        for candidate in scan.matches(1):
            at = candidate.start()
            strict = self._strict_cased.match(cased, at)
            if not strict:
                continue
            if (at == 0 or cased[at - 1] == "\n") and _QUALIFIED.match(text, strict.end()):
                continue
            found.append((at, strict.end()))
        end = -1
        for start, stop in sorted(found, key=lambda span: (span[0], -span[1])):
            if start < end:
                continue  # inside a longer alias already taken
            end = stop
            alias = text[start:stop]
            yield Mention(start, alias, self.names[alias])

    def first(self, text: str, cased: str) -> Mention | None:
        return next(self.mentions(text, cased), None)


def alternatives(words: Iterable[str]) -> str:
    """A regular-expression alternation of `words`, longest first."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _alternation(aliases: list[str]) -> re.Pattern[str]:
    body = "|".join(re.escape(a) for a in sorted(set(aliases), key=len, reverse=True))
    return re.compile(rf"\b(?<!\.)(?:{body})(?![\w]|\.\w)")


VENDORS: Final = Vendors.load()

# A vendor vendors.txt does not list is still a vendor where the sentence says so: "we're on
# Tandemly", "demos from Orbitra and Crewlytic", "comparing you with Crewlytic", "Crewlytic's
# forecasting". The name is a capitalised word (or two) in one of these frames, and not a word
# that is capitalised for another reason (a pronoun, a month, a spreadsheet everybody has).
_NAME = r"([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*(?:\.(?:ai|io|com))?)"
_BEFORE_NAME = re.compile(
    r"(?i:\b(?:we(?:'re| are| were)(?: currently| still)? (?:on|using|with)"
    r"|(?:we|they|i) (?:currently |still |also )?"
    r"(?:use|used|run|tried|trialed|trialled|piloted|chose|picked)"
    r"|(?:using|on) an? (?:older |old )?"
    r"|(?:tool|system|vendor|platform|provider|software|solution) is|demos? from|quotes? from|"
    r"a quote from|proposals? from|pilot with|trial with|(?:looking|look|looked) at|evaluating"
    r"|considering|"
    r"compar(?:e|ed|ing)(?: you| us)? (?:with|to|against)|versus|vs\.?|switch(?:ing)? from|"
    r"sign(?:ed)? with|deal with|going with|go with|moving to|replace|replacing|"
    r"(?:we|they) pay)\s)" + _NAME + r"(?:(?:,| and| or|, and) " + _NAME + r")?"
)
_AFTER_NAME = re.compile(
    r"\b" + _NAME + r"(?:'s (?:\w+ )?(?:app|demo|pricing|forecasting|module|contract|quote|"
    r"product|platform|tool|ad|team)| (?:is|was) (?:out|still in the mix|off the list)|"
    r" (?:module|mobile app|app|ad|demo|pilot|trial|quote|contract|beta|customers?)|"
    r"(?:'s)? (?:forecasting|scheduling) (?:beta|module|tool))\b"
)


def unlisted_vendors(cased: str) -> Iterator[Mention]:
    """Vendors vendors.txt does not list, named where a sentence says they are one."""
    seen: set[int] = set()
    for pattern in (_BEFORE_NAME, _AFTER_NAME):
        for found in pattern.finditer(cased):
            for group in range(1, (pattern.groups or 1) + 1):
                name, at = found.group(group), found.start(group)
                if not name or name in NOT_VENDOR_NAMES or at in seen:
                    continue
                if name.lower() in VENDORS.names or name.isupper():
                    continue
                seen.add(at)
                yield Mention(at, name.lower(), name)


def named_vendors(text: str, cased: str) -> list[Mention]:
    """Every vendor named, listed or not, leftmost first."""
    listed = list(VENDORS.mentions(text, cased))
    taken = {m.at for m in listed}
    more = [m for m in unlisted_vendors(cased) if m.at not in taken]
    return sorted(listed + more, key=lambda m: m.at)


# Word tables -----------------------------------------------------------------------------------


def _table(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    for part in path.split("."):
        raw = raw[part]
    if not isinstance(raw, dict):
        raise ValueError(f"lexicon.toml: {path} must be a table")
    return raw


def _words(raw: Mapping[str, Any], path: str) -> tuple[str, ...]:
    *table, name = path.split(".")
    value = _table(raw, ".".join(table))[name] if table else raw[name]
    if isinstance(value, str):
        value = value.split()
    if not all(isinstance(word, str) for word in value):
        raise ValueError(f"lexicon.toml: {path} must list words")
    return tuple(value)


def _names(raw: Mapping[str, Any], path: str) -> dict[str, str]:
    table = _table(raw, path)
    if not all(isinstance(value, str) for value in table.values()):
        raise ValueError(f"lexicon.toml: {path} must map words to words")
    return table


def _amounts(raw: Mapping[str, Any], path: str) -> dict[str, float]:
    table = _table(raw, path)
    if not all(isinstance(value, int | float) for value in table.values()):
        raise ValueError(f"lexicon.toml: {path} must map words to numbers")
    return table


_RAW: Final = tomllib.loads((HERE / "lexicon.toml").read_text("utf-8"))

# Negation: what negates, how far it reaches, and what only supposes.
NEGATIONS: Final = frozenset(_words(_RAW, "negation.words"))
BARE_NEGATIONS: Final[Mapping[str, str]] = _names(_RAW, "negation.bare")
CLAUSE_BREAKS: Final = frozenset(_words(_RAW, "negation.clause_breaks"))
HYPOTHETICAL: Final = frozenset(_words(_RAW, "negation.hypothetical"))

# Numbers.
NUMBER_WORDS: Final[Mapping[str, float]] = _amounts(_RAW, "numbers.words")
COMPOUND_NUMBERS: Final = _words(_RAW, "numbers.compound")
SCALES: Final[Mapping[str, float]] = _amounts(_RAW, "numbers.scales")
# A number in words: "twenty five", "a dozen", "two hundred", "a couple".
WORD_NUMBER_PATTERN: Final = (
    r"(?:a[- ])?(?:" + alternatives([*NUMBER_WORDS, *SCALES]) + r")"
    r"(?:[- ](?:" + alternatives([*COMPOUND_NUMBERS, *SCALES]) + r"))*"
)


def word_value(phrase: str) -> float | None:
    """What a number in words is worth: 'a dozen' 12, 'twenty five' 25, 'two hundred' 200."""
    total = current = 0.0
    seen = False
    for word in phrase.replace("-", " ").split():
        if word == "a":
            continue
        if word in SCALES:
            current = max(current, 1) * SCALES[word]
            if SCALES[word] >= 1000:
                total, current = total + current, 0.0
        elif word == "dozen":
            current = max(current, 1) * 12
        elif word in NUMBER_WORDS:
            current += NUMBER_WORDS[word]
        else:
            return None
        seen = True
    return total + current if seen else None


UNITS: Final[Mapping[str, float]] = _amounts(_RAW, "numbers.units")

# Money: one pattern for the rules and the guard. Its groups: `cur` `num` `unit` (a symbol
# before the amount), `num2` `unit2` `cur2` (a currency word after it), `fig` (in figures).
CURRENCY_SYMBOLS: Final = str(_table(_RAW, "money")["symbols"])
_AMOUNT = r"\d[\d,]*(?:\.\d+)?"
_SYMBOL = "[" + re.escape(CURRENCY_SYMBOLS) + "]"
MONEY_PATTERN: Final = (
    rf"(?P<cur>{_SYMBOL})\s?(?P<num>{_AMOUNT})\s?(?P<unit>{alternatives(UNITS)})?\b"
    rf"|\b(?P<num2>{_AMOUNT})\s?(?P<unit2>{alternatives(UNITS)})?\s?"
    rf"(?P<cur2>{alternatives(_words(_RAW, 'money.currencies'))})\b"
    rf"|\b(?P<fig>(?:{alternatives(_words(_RAW, 'money.figure_levels'))})?[- ]?"
    rf"(?:{alternatives(_words(_RAW, 'money.figures'))})|\d)[- ]figures?\b"
)
MONEY: Final = re.compile(MONEY_PATTERN)

# Dates and periods.
MONTHS: Final[Mapping[str, float]] = _amounts(_RAW, "dates.months")
VERB_MONTHS: Final = frozenset(_words(_RAW, "dates.verb_months"))
DAYS: Final = _words(_RAW, "dates.days")
DATE_PLACING: Final = _words(_RAW, "dates.placing")
PERIODS: Final[Mapping[str, str]] = _names(_RAW, "dates.periods")
PERIOD_MODIFIERS: Final[Mapping[str, str]] = _names(_RAW, "dates.modifiers")

# Directions and comparison.
DIRECTIONS: Final[Mapping[str, str]] = _names(_RAW, "directions.words")
MOTION: Final = _words(_RAW, "directions.motion")
TIME_DIRECTIONS: Final[Mapping[str, str]] = _names(_RAW, "directions.time")
AMOUNT_DIRECTIONS: Final[Mapping[str, str]] = _names(_RAW, "directions.amount")
COMPARE_SKIP: Final = frozenset(_words(_RAW, "comparison.skip"))
PRONOUNS: Final[Mapping[str, str]] = _names(_RAW, "comparison.pronouns")

# Roles: the functions a leader heads, as an alternation; (pattern, role name) pairs.
ROLE_FUNCTIONS: Final = alternatives(_words(_RAW, "roles.functions"))
ROLES: Final[tuple[tuple[str, str], ...]] = tuple(
    (str(pattern).replace("{functions}", ROLE_FUNCTIONS), str(name))
    for pattern, name in _table(_RAW, "roles")["patterns"]
)

# Capitalised words that are not a vendor's name where a vendor could stand ("we use Excel").
NOT_VENDOR_NAMES: Final = frozenset(_words(_RAW, "vendors.not_names"))

# Wording.
STOPWORDS: Final = frozenset(_words(_RAW, "wording.stopwords"))
SYNONYM_GROUPS: Final = _words(_RAW, "wording.synonyms")
