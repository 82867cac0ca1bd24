"""Rule-based slot capture: money, seats, vendors, dates, titles, pains and objections."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..model import Capture
from .text import plain

_NUMBER_WORDS = {
    "a dozen": 12,
    "dozen": 12,
    "two dozen": 24,
    "a couple": 2,
    "a few": 3,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "a hundred": 100,
    "one hundred": 100,
    "two hundred": 200,
}
_NUM = (
    r"(\d[\d,]*(?:\.\d+)?\s?(?:k|m)?|"
    + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True))
    + r")"
)
_PEOPLE = (
    r"(?:(?:sales|support|customer success|cs|marketing|field|inside|account|full[- ]time|"
    r"active|named|concurrent|\w+)\s)?"
    r"(?:reps?|people|users?|seats?|agents?|employees|engineers|aes|sdrs|bdrs|sellers|licen[cs]es|"
    r"staff|members|headcount|recruiters|nurses|drivers|technicians|agents|csms|managers|"
    r"developers|analysts|accountants|lawyers|attorneys|associates|stores|locations|clinicians|"
    r"doctors|teachers|advisors|brokers|dispatchers|operators|heads)\b"
)

_TEAM_SIZE = [
    re.compile(
        r"\b(?:team|staff|org|group|department|crew|force) of (?:about |around |roughly |~)?"
        + _NUM
        + r"\b",
        re.I,
    ),
    re.compile(
        r"(?:~|about |around |roughly |nearly |almost |over |close to |like )?"
        + _NUM
        + r"[- ]?(?:\+\s?)?"
        + _PEOPLE,
        re.I,
    ),
    re.compile(r"\b" + _NUM + r"[- ]person\b", re.I),
    re.compile(r"\bheadcount (?:is |of )?(?:about |around )?" + _NUM, re.I),
]
_MONEY = re.compile(
    r"(?:[$€£]\s?\d[\d,]*(?:\.\d+)?\s?(?:k|m|mm|million|thousand|grand)?\b"
    r"(?:\s?(?:/|per|a|an)\s?(?:seat|user|licen[cs]e|month|mo|year|yr|annum|rep|head))*"
    r"|\b\d[\d,]*(?:\.\d+)?\s?(?:k|m)?\s?(?:usd|eur|gbp|dollars|euros|pounds|bucks)\b"
    r"|\b\d[\d,]*(?:\.\d+)?\s?k\b(?=[^.?!]{0,30}\b(?:budget|year|annually|per|contract|deal|spend|quote))"
    r"|\b(?:five|six|seven|low|mid|high)[- ](?:five|six|seven)?[- ]?figures?\b)",
    re.I,
)
_BUDGET_PHRASES = re.compile(
    r"\b(?:(?:no|zero|limited|tight|small|fixed|frozen|annual|allocated|approved|the|our|any|some|a) budget"
    r"(?: (?:is|was|for|until|this|left|till|got|has been|remaining|line|holder|cycle)\b[^.?!,;]{0,30})?"
    r"|budget(?:s)? (?:is|are|was|were|got|has been|have been) (?:approved|frozen|cut|set|allocated|tight|locked|spent|gone|exhausted|slashed)[^.?!,;]{0,25}"
    r"|(?:don'?t|do not|doesn'?t) have (?:the |a |any )?budget[^.?!,;]{0,30}"
    r"|budget (?:freeze|cuts?|approval|constraints?)"
    r"|spend(?:ing)? freeze|hiring freeze)",
    re.I,
)
_QUARTER = r"(?:q[1-4](?:\s?(?:'?\d{2}|20\d{2}))?|h[12](?:\s?20\d{2})?)"
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_TIMELINE = re.compile(
    r"\b(?:(?:by|before|after|until|till|in|during|for|early|mid|late|end of|start of|beginning of|this|next)\s)?"
    r"(?:" + _QUARTER + r"|" + _MONTH + r"\.?(?:\s\d{1,2}(?:st|nd|rd|th)?)?(?:,?\s20\d{2})?"
    r"|(?:this|next|last) (?:week|month|quarter|year|fiscal year|fy|spring|summer|fall|autumn|winter|sprint)"
    r"|end of (?:the )?(?:week|month|quarter|year|fiscal year|fy|day)|eo[ymqw]|eofy|year[- ]end|fiscal (?:year[- ]end|close)"
    r"|(?:after|before|post|until) (?:the )?(?:holidays|new year|summer|break|re-?org|reorganization|merger|acquisition|migration|launch|audit|renewal|busy season|budget cycle|board meeting|funding round|conference)"
    r"|(?:in|within) (?:a |the next )?(?:few|couple(?: of)?|two|three|four|six|\d+) (?:days|weeks|months|quarters)"
    r"|(?:mon|tues|wednes|thurs|fri|satur|sun)day(?: (?:morning|afternoon|evening))?(?: at \d{1,2}(?::\d\d)?\s?(?:am|pm)?)?"
    r"|tomorrow|today|asap|right away|immediately|\d{1,2}/\d{1,2}(?:/\d{2,4})?|20\d{2})\b",
    re.I,
)
_TITLES = re.compile(
    r"\b(?:(?:our|my|the) )?(?:c[efiotrm]o|ceo|cfo|cto|cio|coo|cro|cmo|ciso|chief \w+(?: \w+)? officer"
    r"|(?:svp|evp|vp|vice president|head|director|manager|lead)(?: of)? (?:\w+ ){0,2}?(?:sales|finance|it|engineering|operations|ops|marketing|revenue|revops|procurement|security|product|people|hr|customer success|cs|support|enablement|growth|technology|data|legal)"
    r"|procurement(?: team)?|legal(?: team)?|finance(?: team)?|the board|board of directors|my boss|my manager|our founders?|the founders?|owner|partners|purchasing(?: department)?|(?:buying|steering|investment) committee|leadership(?: team)?|exec(?:utive)? team|it department|security team|infosec)\b",
    re.I,
)
_PAIN = re.compile(
    r"\b(?:(?:we|our (?:team|reps|people|agents|managers|ops|staff)|my team|the team|they|reps|i) (?:currently |still |constantly |keep |always )?"
    r"(?:spend|spends|waste|wastes|lose|loses|losing|struggle|struggles|struggling|can'?t|cannot|keep missing|miss|are drowning|drown|have trouble|have no (?:way|visibility)|don'?t have (?:a way|visibility|insight)|are stuck|get stuck|end up)\b[^.?!;]{3,80}"
    r"|(?:the|our|my|biggest|main|real|big) (?:problem|issue|challenge|headache|pain(?: point)?|bottleneck)s? (?:is|are|has been|right now is)\b[^.?!;]{3,80}"
    r"|(?:takes|taking|took) (?:us |me |them |our team )?(?:hours|days|weeks|forever|ages)[^.?!;]{0,60}"
    r"|(?:no|zero|zero|little|poor|bad) (?:visibility|insight|transparency|data|reporting|forecasting|accuracy)\b[^.?!;]{0,50}"
    r"|(?:falls?|falling|fell) through the cracks[^.?!;]{0,40}|error[- ]prone[^.?!;]{0,40}|(?:high|rising|crazy) (?:churn|turnover|attrition)[^.?!;]{0,40}"
    r"|(?:it'?s|it is|this is|that'?s) (?:a )?(?:nightmare|mess|chaos|painful|killing us)[^.?!;]{0,40})",
    re.I,
)
_OBJECTION = re.compile(
    r"\b(?:(?:too|way too|really|pretty|a bit|quite|very|super) (?:expensive|pricey|steep|costly|high|complex|complicated|much)"
    r"|(?:over|beyond|above|outside) (?:our |the |my )?budget"
    r"|can'?t (?:justify|afford) [^.?!;,]{0,30}"
    r"|not (?:the )?right time|not a (?:priority|fit|good fit|good time)|bad timing|not now"
    r"|no (?:budget|time|bandwidth|need)(?: [^.?!;,]{0,25})?"
    r"|(?:need|needs|have|has) to (?:run (?:it|this) by|check with|get (?:sign-?off|approval|buy-?in) from|loop in|clear (?:it|this) with) [^.?!;,]{1,30}"
    r"|not my (?:call|decision)|(?:happy|fine|content|satisfied) with (?:what we have|our current \w+|the current \w+|our \w+|how \w+ \w+)"
    r"|(?:works?|working) (?:fine|well|for us)|good enough|built (?:it |our own )?in-?house"
    r"|(?:worried|concerned|nervous) about [^.?!;,]{2,40}|security (?:review|concerns?|questions?)|(?:locked|tied) into [^.?!;,]{2,30}"
    r"|not interested|cheaper [^.?!;,]{0,30}|(?:price|pricing|cost) is (?:a )?(?:non-?starter|too high|high|steep))",
    re.I,
)
_CURRENT = re.compile(
    r"\b(?:spreadsheets?|excel|google sheets|shared (?:drive|docs?|inbox)|(?:an? |our own |our )?(?:in-?house|home-?grown|homegrown|custom[- ]built|internal) (?:tool|system|solution|script|app|crm|platform)"
    r"|pen and paper|paper forms?|whiteboards?|sticky notes|email threads?|(?:by|over|via) email|manual(?:ly)? (?:process|entry|tracking|reports?|spreadsheets?)|manually|legacy (?:system|tool|crm|software)|word docs?|notebooks?|post-?its)\b",
    re.I,
)
_NEXT_STEP = re.compile(
    r"\b(?:send (?:me |us |over )?(?:a |the |your )?(?:proposal|contract|quote|deck|order form|msa|sow|dpa|case stud(?:y|ies)|one-?pager|pricing|info|details|security (?:docs|questionnaire|package)|soc ?2(?: report)?|references?|trial(?: link)?)"
    r"|(?:set up|schedule|book|do|see|arrange|get) (?:a |an |the )?(?:demo|call|meeting|pilot|trial|poc|workshop|follow-?up|deep dive|walkthrough|technical review)(?: [^.?!;,]{0,25})?"
    r"|(?:intro|introduce|introduction) (?:me |us )?to [^.?!;,]{2,30}|loop in [^.?!;,]{2,30}"
    r"|(?:start|kick off|begin|run) (?:a |the )?(?:pilot|trial|poc|onboarding)(?: [^.?!;,]{0,25})?"
    r"|sign (?:the )?(?:contract|order form|paperwork)|move forward(?: with [^.?!;,]{2,25})?)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str
    pattern: re.Pattern[str]


@cache
def vendors() -> tuple[Vendor, ...]:
    lines = (Path(__file__).parent / "vendors.txt").read_text("utf-8").splitlines()
    found = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        strict = line.startswith("*")
        names = line.lstrip("*").split("|")
        alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        flags = 0 if strict else re.IGNORECASE
        found.append(Vendor(names[0], re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w])", flags)))
    return tuple(found)


def capture(text: str, context: Mapping[str, str] | None = None) -> Capture:
    source = plain(text)
    slots: dict[str, str] = {}
    for name, extract in _EXTRACTORS:
        value = extract(source)
        if value:
            slots[name] = value
    known = dict(context or {})
    # A value the thread already holds is no news; keep only what this message changes.
    delta = {k: v for k, v in slots.items() if known.get(k, "").lower() != v.lower()}
    confidence = 0.9 if delta else 0.6
    return Capture(slots=delta, confidence=confidence)


def _first(pattern: re.Pattern[str]) -> Callable[[str], str | None]:
    def extract(text: str) -> str | None:
        match = pattern.search(text)
        return _tidy(match.group(0)) if match else None

    return extract


def _team_size(text: str) -> str | None:
    for pattern in _TEAM_SIZE:
        for match in pattern.finditer(text):
            raw = match.group(1).lower().strip()
            if raw in _NUMBER_WORDS:
                return str(_NUMBER_WORDS[raw])
            number = raw.replace(",", "").replace(" ", "")
            scale = 1000 if number.endswith("k") else 1_000_000 if number.endswith("m") else 1
            try:
                value = float(number.rstrip("km")) * scale
            except ValueError:
                continue
            preceding = text[max(0, match.start() - 2) : match.start()]
            if value < 1 or "$" in preceding or "€" in preceding or "£" in preceding:
                continue
            return str(int(value))
    return None


def _budget(text: str) -> str | None:
    money = _MONEY.search(text)
    if money:
        return _tidy(money.group(0))
    phrase = _BUDGET_PHRASES.search(text)
    return _tidy(phrase.group(0)) if phrase else None


def _competitor(text: str) -> str | None:
    hits = [(m.start(), v.name) for v in vendors() if (m := v.pattern.search(text))]
    return min(hits)[1] if hits else None


def _timeline(text: str) -> str | None:
    for match in _TIMELINE.finditer(text):
        value = _tidy(match.group(0))
        # "may" and "march" are verbs too: a bare month must look like a date.
        if value.lower() in {"may", "march", "today", "this", "next"}:
            continue
        return value
    return None


def _tidy(value: str) -> str:
    return value.strip(" ,;:-").rstrip(".")


_EXTRACTORS: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("pain", _first(_PAIN)),
    ("objection", _first(_OBJECTION)),
    ("budget_signal", _budget),
    ("competitor", _competitor),
    ("timeline", _timeline),
    ("decision_maker", _first(_TITLES)),
    ("team_size", _team_size),
    ("current_solution", _first(_CURRENT)),
    ("next_step", _first(_NEXT_STEP)),
)
