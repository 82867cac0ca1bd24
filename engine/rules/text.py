"""Text handling shared by the rules, the cache key and the guard: normalisation, sentences,
and a scanner that runs a fixed set of patterns only where each could match."""

from __future__ import annotations

import functools
import importlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

_SLACK_MARKUP = re.compile(r"<(?:[@#!][^>|]*)(?:\|([^>]*))?>")
_SLACK_LINK = re.compile(r"<(https?://[^>|]+)(?:\|([^>]*))?>")
_EMOJI = re.compile(r":[a-z0-9_+\-]+:")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def plain(text: str) -> str:
    """Slack mrkdwn and typography folded to plain text, keeping case and punctuation."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _SLACK_MARKUP.sub(lambda m: m.group(1) or "", text)
    text = _EMOJI.sub(" ", text)
    text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    text = re.sub(r"(?m)^\s*(?:>|•|-|\*)\s+", "", text)
    text = re.sub(r"[*_~`]", "", text)
    return " ".join(text.split())


def normalised(text: str) -> str:
    """Lower-case plain text: what cue patterns and cache keys see."""
    return plain(text).lower()


# Sentences -------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\s+(?=\d+[.)]\s)|\s[-–—]\s|\.{3}\s*")
_ABBREVIATION = re.compile(r"\b(?:vs|e\.g|i\.e|etc|approx|mr|ms|mrs|dr|inc|no|st)\.$", re.I)
_QUESTION_START = re.compile(
    r"(?i)^(?:so |and |but |ok |okay |also |hey |quick q\W* |re: [^-:]*[-:] )?"
    r"(?:how|what|when|where|who|whom|why|which|can|could|would|will|do|does|did|is|are|was|"
    r"should|shall|may|might|any|have you|has it|is there|are there)\b"
)


def sentences(text: str) -> tuple[tuple[str, bool], ...]:
    """The plain sentences of a message, each with whether it asks a question.

    Lines are kept apart (a bullet list is several sentences); a sentence asks a question
    when it ends with "?" or, left unpunctuated, opens like one ("can it log calls").
    """
    found: list[tuple[str, bool]] = []
    for line in text.splitlines():
        parts: list[str] = []
        for part in _SENTENCE_END.split(plain(line)):
            part = part.strip()
            if not part:
                continue
            if parts and _ABBREVIATION.search(parts[-1]):  # "vs. Growth" goes on
                parts[-1] = f"{parts[-1]} {part}"
            else:
                parts.append(part)
        for part in parts:
            ends = part.rstrip(" )\"'")[-1:]
            asks = ends == "?" or (ends not in {".", "!"} and bool(_QUESTION_START.match(part)))
            found.append((part, asks))
    return tuple(found)


# Scanning --------------------------------------------------------------------------------------

LONG_LEAD = 6  # leading characters indexed at word and line starts
_PARSER: Any = importlib.import_module("re._parser")
_ZERO_WIDTH = frozenset({"AT", "ASSERT", "ASSERT_NOT"})


class Scanner:
    """A fixed set of lower-case patterns, matched against lower-cased text.

    Each pattern's parse tree tells which strings (up to six characters) every match starts
    with. One regular expression built once from all those leads, a trie, finds at each word
    or line start the longest lead there, and so every pattern that could match from there:
    `scan` tries a pattern only at those places, instead of at every position. A pattern
    whose matches may start anywhere or with anything is simply searched. It is a shortcut
    only: the pattern itself still decides every match.
    """

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.patterns = tuple(patterns)
        self.searched = frozenset(n for n, p in enumerate(self.patterns) if _leads_of(p) is None)
        owners: dict[str, set[int]] = {}
        for number, pattern in enumerate(self.patterns):
            for key in _leads_of(pattern) or ():
                owners.setdefault(key, set()).add(number)
        # A lead found at a place is the longest there: it stands for every shorter one too.
        self._owners = {
            key: tuple(sorted(set().union(*(owners.get(key[:n], set()) for n in range(1, 7)))))
            for key in owners
        }
        trie = _trie(list(owners))
        self._heads = re.compile(rf"(?:\b(?=\w)|^)(?=({trie}))", re.M) if trie else None

    def scan(self, text: str) -> Scan:
        starts: dict[int, list[int]] = {}
        if self._heads is not None:
            owners = self._owners
            for found in self._heads.finditer(text):
                at = found.start()
                for number in owners[found.group(1)]:
                    where = starts.get(number)
                    if where is None:
                        starts[number] = [at]
                    elif where[-1] != at:
                        where.append(at)
        return Scan(self, text, starts)


class Scan:
    """One text scanned by a `Scanner`."""

    __slots__ = ("_scanner", "_starts", "text")

    def __init__(self, scanner: Scanner, text: str, starts: dict[int, list[int]]) -> None:
        self._scanner = scanner
        self._starts = starts
        self.text = text

    def possible(self, number: int) -> bool:
        """Whether pattern `number` may match at all (else `matches` yields nothing)."""
        return number in self._starts or number in self._scanner.searched

    def matches(self, number: int) -> Iterator[re.Match[str]]:
        """Pattern `number`'s matches, leftmost first (they may overlap)."""
        pattern = self._scanner.patterns[number]
        if number in self._scanner.searched:
            yield from pattern.finditer(self.text)
            return
        for at in self._starts.get(number, ()):
            found = pattern.match(self.text, at)
            if found:
                yield found

    def first(self, number: int) -> re.Match[str] | None:
        return next(self.matches(number), None)


def _trie(keys: list[str]) -> str:
    """A regular expression matching the longest of `keys` that starts here."""
    root: dict[str, Any] = {}
    for key in keys:
        node = root
        for char in key:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


@functools.cache
def _leads_of(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """The strings every match starts with, when every match starts at a word or line start;
    else None."""
    try:
        parsed = list(_PARSER.parse(pattern.pattern, pattern.flags))
        anchor = _anchor(parsed)
        if anchor is None:
            return None
        done, open_ = _leads(parsed, {""})
    except _GiveUp:
        return None
    except Exception:  # another Python's parser: no shortcut, the pattern still works
        return None
    keys = done | open_
    if "" in keys:
        return None
    # After \b a match starts at a word start only if it starts with a word character.
    if anchor != "line" and any(not (k[0].isalnum() or k[0] == "_") for k in keys):
        return None
    return frozenset(keys)


def _anchor(items: list[Any]) -> str | None:
    """How every match of a parsed sequence starts: "word" (\\b), "line" (^), "both", None."""
    if not items:
        return None
    op, av = items[0]
    name = str(op)
    if name == "AT":
        kind = str(av)
        if kind == "AT_BOUNDARY":
            return "word"
        return "line" if kind in {"AT_BEGINNING_LINE", "AT_BEGINNING"} else None
    if name == "SUBPATTERN":
        return _anchor(list(av[-1]))
    if name == "BRANCH":
        kinds = {_anchor(list(branch)) for branch in av[1]}
        if None in kinds:
            return None
        return kinds.pop() if len(kinds) == 1 else "both"
    return None


class _GiveUp(Exception):
    pass


def _leads(items: list[Any], partial: set[str]) -> tuple[set[str], set[str]]:
    """Walk a parsed sequence from `partial` leading strings: (finished, still open) leads."""
    done: set[str] = set()
    for op, av in items:
        if not partial:
            break
        name = str(op)
        if name in _ZERO_WIDTH:
            continue
        chars = chr(av) if name == "LITERAL" else _small_class(av) if name == "IN" else None
        if chars is not None:
            grown = {p + c for p in partial for c in chars}
            done |= {p for p in grown if len(p) == LONG_LEAD}
            partial = {p for p in grown if len(p) < LONG_LEAD}
        elif name == "SUBPATTERN":
            more, partial = _leads(list(av[-1]), partial)
            done |= more
        elif name == "BRANCH":
            opened: set[str] = set()
            for branch in av[1]:
                more, still = _leads(list(branch), set(partial))
                done |= more
                opened |= still
            partial = opened
        elif name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}:
            low, high, sub = av
            more, still = _leads(list(sub), set(partial))
            done |= more
            if high != 1:  # after one round another may follow: stop growing here
                done |= still
                still = set()
            partial = (partial | still) if low == 0 else still
        else:  # a wide class, a wildcard, a back reference: the lead ends here
            if "" in partial:
                raise _GiveUp
            done |= partial
            partial = set()
    return done, partial


def _small_class(items: list[Any]) -> str | None:
    """The characters of a small character class ([cs], [$€£], \\d), else None."""
    chars = ""
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            chars += chr(av)
        elif name == "RANGE" and av[1] - av[0] < 12:
            chars += "".join(chr(c) for c in range(av[0], av[1] + 1))
        elif name == "CATEGORY" and str(av) == "CATEGORY_DIGIT":
            chars += "0123456789"
        else:
            return None
    return chars if len(chars) <= 12 else None
