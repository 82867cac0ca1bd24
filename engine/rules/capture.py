"""Rule-based slot capture: money, seats, vendors, dates, titles, pains, objections, next steps.

Facts with a fixed shape (money, head counts, dates, titles, vendors, tools) come from the
patterns below. Pain and objection are read from the cues detect scores: the phrase that made a
message an objection is the objection; the phrase that made it discovery is the pain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ..model import Capture
from ..taxonomy import OBJECTIONS, SITUATION_SPECS, Situation
from . import lexicon
from .detect import LEXICON, Reading, detect, negated, read
from .text import Scan, Scanner

# A head count: in figures ("40", "1.5k") or in words (the lexicon's: "a dozen", "forty").
_NUM = r"(\d[\d,]*(?:\.\d+)?\s?(?:k|m)?|" + lexicon.WORD_NUMBER_PATTERN + r")"
_PEOPLE = (
    r"(?:(?:sales|support|customer success|cs|marketing|field|inside|outside|account|full[- ]time|"
    r"active|named|concurrent|frontline|front-line|pilot|new|\w+)\s)?"
    r"(?:reps?|people|users?|seats?|agents?|employees|engineers|aes|sdrs|bdrs|sellers|licen[cs]es|"
    r"staff|members|headcount|recruiters|nurses|drivers|technicians|csms|managers|"
    r"developers|analysts|accountants|lawyers|attorneys|associates|clinicians|producers|closers|"
    r"setters|callers|adjusters|underwriters|consultants|specialists|representatives|techs|"
    r"installers|inspectors|planners|recruiters|estimators|bankers|producers|"
    r"account (?:executives|managers|execs)|ams|ses|salespeople|folks|ftes?|"
    r"doctors|teachers|advisors|brokers|dispatchers|operators|heads|coaches|trainers|leaders)\b"
)
_TEAM_SIZE = [
    # (pattern, strong): a strong pattern says outright that it is a head count.
    (
        re.compile(
            r"\b(?:team|staff|org|group|department|crew|force|company) of (?:about |around |roughly |~)?"
            + _NUM
            + r"\b"
        ),
        True,
    ),
    (re.compile(r"\b" + _NUM + r"(?:[- ]person|-(?:people|seat|user|rep))\b"), True),
    (
        re.compile(
            r"\b(?:we(?:'re| are)|we have|we've got|there are|i have|i manage|i lead) (?:about |around |roughly |only |just |~)?"
            + _NUM
            + r"\s+(?=\w)"
            + _PEOPLE
        ),
        True,
    ),
    (re.compile(r"\bheadcount (?:is |of )?(?:about |around )?" + _NUM), True),
    (
        re.compile(
            r"\bteam (?:has |is |have )?(?:grown|grew|growing|scaled|scaling|doubled|going) (?:from \d+ )?to (?:about |around |~)?"
            + _NUM
        ),
        True,
    ),
    (
        re.compile(
            r"(?:~|about |around |roughly |nearly |almost |over |close to |like )?"
            + _NUM
            + r"[- ]?(?:\+\s?)?"
            + _PEOPLE
        ),
        False,
    ),
]
# An amount (the lexicon's money pattern, with its rate: "$30 per seat a month"), or thousands
# an amount bounds or a budget word follows ("up to 40k", "40k for the year").
_MONEY = re.compile(
    r"(?:(?:" + lexicon.MONEY_PATTERN + r")"
    r"(?:\s?(?:/|per|a|an)\s?(?:seat|user|licen[cs]e|month|mo|year|yr|annum|rep|head))*"
    r"|\b(?:above|over|under|below|up to|around|about|max|maximum|roughly|~)\s?\d[\d,]*(?:\.\d+)?\s?k\b"
    r"|\b\d[\d,]*(?:\.\d+)?\s?k\b(?=[^.?!]{0,30}\b(?:budget|year|annually|per|contract|deal|spend|quote)))",
)
_BUDGET_PHRASES = re.compile(
    r"\b(?:(?:no|zero|limited|tight|small|fixed|frozen|allocated|approved|remaining) budget(?! (?:authority|holder|owner|cycle))"
    r"|(?:the|our|any|some|a|annual|this year's|next year's) budget (?:is|was|for|until|left|till|got|has been|remaining|isn't|is not|of|around|about)\b[^.?!,;]{0,30}"
    r"|budget(?:'s|s)? (?:is |are |was |were |got |has been |have been )?(?:approved|frozen|cut|set|allocated|tight|locked|spent|gone|exhausted|slashed|capped|signed off)[^.?!,;]{0,25}"
    r"|(?:don'?t|do not|doesn'?t) have (?:the |a |any )?budget(?! (?:authority|holder|owner))[^.?!,;]{0,30}"
    r"|budget (?:freeze|cuts?|approval|constraints?)"
    r"|budget (?:for (?:next|this) (?:year|quarter)|isn't|is not|hasn't|has not|won't)[^.?!,;]{0,25}"
    r"|set aside|earmarked|unfunded|not funded|no funding"
    r"|spend(?:ing)? freeze|hiring freeze)",
)
_QUARTER = r"(?:q[1-4](?:\s?(?:'?\d{2}|20\d{2}))?|h[12](?:\s?20\d{2})?)"
_MONTH = "(?:" + lexicon.alternatives(lexicon.MONTHS) + ")"
_DAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?"
_TIMELINE = re.compile(
    r"\b(?:(?:by|before|after|until|till|in|during|for|early|mid|late|end of|start of|beginning of|this|next)[\s-])?"
    r"(?:" + _QUARTER + r"|" + _MONTH + r"\.?(?:\s\d{1,2}(?:st|nd|rd|th)?)?(?:,?\s20\d{2})?"
    r"|(?:this|next|last) (?:week|month|quarter|year|fiscal year|fy|spring|summer|fall|autumn|winter|sprint|cycle)"
    r"|(?:early|mid|late)[- ](?:spring|summer|fall|autumn|winter|year)"
    r"|(?:winter|spring|summer|holiday|christmas|thanksgiving) break"
    r"|end of (?:the )?(?:week|month|quarter|year|fiscal year|fy|day)|eo[ymqw]|eofy|year[- ]end|fiscal (?:year[- ]end|close)"
    r"|(?:in|after|until|till|by) the new year"
    r"|(?:after|before|post|until) (?:the )?(?:holidays|new year|summer|break|long weekend|weekend|re-?org|reorganization|merger|acquisition|migration|launch|audit|renewal|busy season|budget cycle|board meeting|funding round|conference|offsite)"
    r"|(?:in|within|for|over) (?:a |the next |about |around |roughly |another )?~?(?:few|couple(?: of)?|two|three|four|six|\d+) (?:days|weeks|months|quarters)"
    r"|~\d+ (?:days|weeks|months)"
    r"|(?:the )?week of (?:the )?\d{1,2}(?:st|nd|rd|th)?"
    r"|the \d{1,2}(?:st|nd|rd|th)"
    r"|"
    + _DAY
    + r"(?: (?:morning|afternoon|evening))?(?: (?:at|after|before) \d{1,2}(?::\d\d)?\s?(?:am|pm)?(?: [ecmp][sd]?t)?)?"
    r"|\d{1,2}(?::\d\d)?\s?(?:am|pm)(?: [ecmp][sd]?t)?(?: (?:on )?" + _DAY + r")?"
    r"|\d{1,2}:\d\d"
    r"|tomorrow|asap|right away|immediately|\d{1,2}/\d{1,2}(?:/\d{2,4})?|20\d{2})\b",
)
_SENIOR = re.compile(
    r"\b(?:(?:our|my|the|their) )?(?:(?:new |interim |acting )?(?:ceo|cfo|cto|cio|coo|cro|cmo|cpo|ciso|cso|chief \w+(?: \w+)? officer|general counsel|president)"
    r"|(?:svp|evp|vp|vice president|head|director|managing director|gm|general manager)(?: of)? (?:\w+ ){0,2}?(?:"
    + lexicon.ROLE_FUNCTIONS
    + r")"
    r"|(?:svp|evp|vp|vice president|director|head honcho)"
    r"|(?:co-?)?founders?|(?:managing |senior )?partners|owners?|(?:school |the |our )board(?: of directors)?(?! meeting| deck| call| prep| pack)|(?:buying|steering|investment|purchasing|review) committee"
    r"|(?:(?:it|exec|executive|leadership|architecture|security|tech) )?steering (?:group|committee|board)|(?:architecture|security|change advisory) (?:board|council))\b",
)
_GROUP = re.compile(
    r"\b(?:(?:our|my|the|their) )?(?:procurement(?: team)?|legal(?: team)?|finance(?: team)?|my boss|(?:my|our|the) (?:sales |frontline |regional )?managers?|leadership(?: team)?|exec(?:utive)? team|execs|(?:it )?security(?: team)?|infosec(?: team)?|it(?: department| team)|(?:global )?(?:sourcing|purchasing)(?: team| department)?|parent company|corporate|headquarters|hq|the sales managers)\b",
)
_APPROVAL = re.compile(
    r"\b(?:approv\w*|sign(?:s|ed)?[- ]?off|sign anything|decides?|decision|final say|veto|(?:needs?|has|have|will|to) (?:to )?(?:review|vet|see)|vet|thumbs[- ]?up|green[- ]?light|go[- ]?ahead|the nod|blessing|(?:is|are) (?:happy|ok|okay|fine|good) with the (?:terms|contract|msa|dpa|paperwork)|cleared|signed|done with|run (?:it|this|that) by|check with|loop in|business case|build a case|goes? (?:up )?(?:to|through)|weigh in|buy-?in|bless\w*|has to|have to|needs? to|justify|bring (?:it|this)|killed|dead on arrival|with my|with our)\b",
)
_CURRENT = re.compile(
    r"\b(?:spreadsheets?|excel|google sheets?|(?:a )?shared (?:drive|docs?|inbox|sheet|pricing sheet|spreadsheet)|(?:an? |our own |our )?(?:in-?house|home-?grown|homegrown|custom[- ]built|internal) (?:\w+ )?(?:tool|system|solution|script|app|crm|platform|dashboard|database)"
    r"|something (?:in-?house|internal|we built)|built (?:it |something )?in-?house|(?:\w+ )?(?:program|process|tool) internally"
    r"|pen(?:,)? (?:and )?paper(?: and phone calls)?|paper forms?|on paper|paper-based|paper (?:records|files|logs|copies)|whiteboards?|sticky notes|post-?its|email threads?|(?:by|over|via|through) email|email (?:and|\+) [\w ]{2,30}|(?:email|slack) (?:threads|channels|messages)"
    r"|manual(?:ly)? (?:process|entry|tracking|reports?|spreadsheets?|notes|csv exports?|exports?)|csv exports?|legacy (?:system|tool|crm|software)|word docs?|notebooks?|slide (?:templates?|decks?)|voice memos?|fax(?:es)?|wiki(?: pages?)?"
    r"|(?:peer )?shadowing|ride-?alongs?(?: and role-?plays?)?|role-?plays?|(?:weekly )?(?:1:1|one-on-one)s?(?: call reviews)?|(?:a )?(?:weekly )?(?:standups?|pipeline meetings?|call reviews?|team meetings?)"
    r"|call recording through (?:our|the) phone system|(?:our|the) phone system|(?:a |our )?shared sheet(?: and a weekly standup)?|(?:a )?spreadsheet process)\b",
)
_NEXT_STEP = re.compile(
    r"\b(?:(?:send|share|forward|draft|put together|prepare|resend|get|turn around) (?:me |us |over |across )*(?:a |an |the |your |those |our )?(?:rough |final |redlined |updated |signed |formal |short |one-page |quick )?(?:proposal|contract|quote|deck|order form|msa|sow|dpa|case stud(?:y|ies)|one-?pager|one-page summary|summary|pricing(?: and contract terms)?|info|details|security (?:docs|questionnaire|package)|soc ?2(?: report)?|references?|trial(?: link)?|paperwork|final version|both|calendar invite|invite|agreement|terms|recap|w-?9|po)\b(?: for signature)?"
    r"|one-?pager|(?:calendar|meeting) invite"
    r"|get started(?: with (?:the |a )?[^.?!;,]{2,30})?|ready to sign|how do we (?:sign|buy|get started|proceed|move forward)"
    r"|get (?:our |the |us |them |everyone )?[\w ]{0,20}?(?:onboarded|set up|live|provisioned)"
    r"|expand (?:it |this )?to (?:the |our |all )?[^.?!;,]{2,30}"
    r"|(?:let'?s|can we|could we|we'd like to|i'd like to|happy to|want to|yes to|schedule|set up|book|lock in|do|arrange|get|find|plan|reschedule|jump on|hop on|grab) (?:a |an |the |our |some |tomorrow'?s |\d+[- ]?min(?:ute)? )?(?:quick |technical |paid |short |intro |follow-?up |formal |\d+[- ]?min(?:ute)? )?(?:demo|call|meeting|pilot|trial|poc|workshop|follow-?up|deep dive|walkthrough|walk-through|technical review|security review(?: call)?|intro|onsite|review call)(?! recording)(?: (?:with|for|in) [^.?!;,]{2,30})?"
    r"|(?:a |the |tomorrow'?s |our |this |next )(?:demo|follow-?up|deep dive|walkthrough|pilot|trial|onsite|security review call|review call)\b(?! (?:recording|link|notes|went|was))(?: (?:with|in) [^.?!;,]{2,30})?"
    r"|(?:paid )?(?:pilot|poc) with \d+"
    r"|(?:intro|introduce|introduction) (?:me |us |you )?to [^.?!;,]{2,30}"
    r"|get you (?:\d+ min(?:utes)?|some time|time|a meeting|an intro|in front of)[^.?!;,]{0,25}"
    r"|(?:pitch|present|bring|take) (?:it|this) (?:at|to) (?:our|the|my) [^.?!;,]{2,30}"
    r"|walk through the (?:proposal|contract|numbers|results|quote|terms)"
    r"|(?:start|kick off|begin|run) (?:a |the )?(?:pilot|trial|poc|onboarding)(?: [^.?!;,]{0,25})?"
    r"|roll(?:ing)? (?:it|this) out(?: to [^.?!;,]{2,30})?"
    r"|get you set up as a vendor|set you up as a vendor|vendor setup"
    r"|(?:get|start|kick off|finali[sz]e) (?:the )?(?:contract|order form|paperwork|msa|agreement)(?: (?:started|going|signed|moving))?"
    r"|sign (?:the )?(?:contract|order form|paperwork)|move (?:forward|ahead)(?: with [^.?!;,]{2,25})?)",
)
_PAST_TENSE = re.compile(
    r"\b(?:was|were|had|did|got|grew|fell|went|lost|dropped|declined|increased|decreased|rose|"
    r"cut|slipped|missed|hit|closed|took|saw|came|ago|spent|built|rebuilt|launched|began|finished|"
    r"moved|switched|bought|hired|tried|used)\b",
)
_DETERMINERS = re.compile(r"^(?:the|a|an|our|my|your|their)\s+")
_SCANNED = (
    _MONEY,
    _BUDGET_PHRASES,
    _TIMELINE,
    _SENIOR,
    _GROUP,
    _CURRENT,
    _NEXT_STEP,
    *(pattern for pattern, _ in _TEAM_SIZE),
)
_SCANNER = Scanner(_SCANNED)
_NUMBERS = {pattern: number for number, pattern in enumerate(_SCANNED)}


@dataclass(frozen=True, slots=True)
class _Message:
    """One message as the extractors see it."""

    text: str  # plain text, one sentence a line, case kept
    low: str  # the same lower-cased, for matching (same length: spans fit both)
    reading: Reading
    top: Situation  # the situation detect finds
    scan: Scan  # `low`, scanned for the patterns above

    def matches(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        return self.scan.matches(_NUMBERS[pattern])

    def first(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return self.scan.first(_NUMBERS[pattern])


def capture(
    text: str, context: Mapping[str, str] | None = None, vendors: frozenset[str] = frozenset()
) -> Capture:
    """`vendors`: names to take as vendors beyond vendors.txt (a team's battlecards)."""
    reading = read(text, vendors)
    message = _Message(
        reading.cased,
        reading.text,
        reading,
        detect(text, context, vendors).situation,
        _SCANNER.scan(reading.text),
    )
    slots: dict[str, str] = {}
    for name, extract in _EXTRACTORS:
        value = extract(message)
        if value:
            slots[name] = value
    known = {k: _key(v) for k, v in (context or {}).items()}
    # A value the thread already holds is no news; keep only what this message changes.
    delta = {k: v for k, v in slots.items() if known.get(k) != _key(v)}
    confidence = 0.9 if delta else 0.6
    return Capture(slots=delta, confidence=confidence)


def _key(value: str) -> str:
    return _DETERMINERS.sub("", value.strip().casefold())


def _tidy(value: str) -> str:
    return value.strip(" ,;:-").rstrip(".")


def _negated_at(message: _Message, match: re.Match[str]) -> bool:
    return negated(message.low, match.start())


def _cased(message: _Message, match: re.Match[str]) -> str:
    return _tidy(message.text[match.start() : match.end()])


def _pain(message: _Message) -> str | None:
    if message.top != "discovery":
        return None
    hits = [h for h in message.reading.hits if h.pain and h.situation == "discovery"]
    if not hits:
        return None
    return _tidy(message.reading.span(min(hits, key=lambda h: h.start)))


def _objection(message: _Message) -> str | None:
    if message.top not in OBJECTIONS:
        return None
    hits = [h for h in message.reading.hits if h.objection and h.weight > 0]
    own = [h for h in hits if h.situation == message.top]
    chosen = own or [h for h in hits if h.situation in OBJECTIONS]
    if not chosen:
        # Won on a combination (a price word with pushback): the pushback is the objection.
        for family in LEXICON.objection_features.get(message.top, ()):
            span = message.reading.feature_phrase(family)
            if span:
                return _tidy(span)
        return None
    best = max(chosen, key=lambda h: (h.weight, -h.start))
    return _tidy(message.reading.phrase(best.start, best.end))


def _team_size(message: _Message) -> str | None:
    text = message.low
    weak: str | None = None
    for pattern, strong in _TEAM_SIZE:
        for match in message.matches(pattern):
            raw = match.group(1).strip()
            if raw[0].isalpha():
                in_words = lexicon.word_value(raw)
                if in_words is None:
                    continue
                value = in_words
            else:
                number = raw.replace(",", "").replace(" ", "")
                scale = 1000 if number.endswith("k") else 1_000_000 if number.endswith("m") else 1
                try:
                    value = float(number.rstrip("km")) * scale
                except ValueError:
                    continue
            preceding = text[max(0, match.start() - 2) : match.start()]
            if value < 1 or "$" in preceding or "€" in preceding or "£" in preceding:
                continue
            # "two people can edit it" counts a few people, not the team.
            if not strong and value < 3:
                continue
            if strong:
                return str(int(value))
            weak = weak or str(int(value))
    return weak


def _budget(message: _Message) -> str | None:
    found = message.first(_MONEY) or message.first(_BUDGET_PHRASES)
    return _cased(message, found) if found else None


def _competitor(message: _Message) -> str | None:
    return message.reading.vendor[1] if message.reading.vendor else None


def _timeline(message: _Message) -> str | None:
    if message.top == "other":  # an out-of-office return date is not a deal timeline
        return None
    text = message.low
    for match in message.matches(_TIMELINE):
        value = _cased(message, match)
        low = value.lower()
        # "may" and "march" are verbs too: a bare month must look like a date.
        if low in {"may", "march", "this", "next", "sun", "sat", "wed", "mar"}:
            continue
        before = text[max(0, match.start() - 12) : match.start()]
        after = text[match.end() : match.end() + 8]
        # Looking back ("last year"), every week ("every Monday") or a greeting ("happy
        # Friday") is not a timeline.
        if low.startswith("last ") or re.search(r"\b(?:every|each|happy|since|most)\s$", before):
            continue
        if after.startswith(("s ", "s.", "s,", " a week", " ago", " per ", " each")):
            continue
        if low.endswith("end of day") and not re.search(r"\b(?:by|before)\s$", before):
            continue
        if re.match(r"(?:(?:this|in) (?:week|month|quarter|year)\b|(?:in |during )?20\d\d$)", low):
            clause = text[max(0, text.rfind(",", 0, match.start()) + 1) : match.start()]
            clause = clause[clause.rfind(".") + 1 :]
            if _PAST_TENSE.search(clause):
                continue
        return value
    return None


def _decision_maker(message: _Message) -> str | None:
    text = message.low
    for match in message.matches(_SENIOR):
        if "your" in text[max(0, match.start() - 6) : match.start()]:
            continue
        return _cased(message, match)
    committing = message.top in _DECIDER_IMPLIED
    for match in message.matches(_GROUP):
        start = max(text.rfind(c, 0, match.start()) for c in ".?!\n") + 1
        ends = [i for i in (text.find(c, match.end()) for c in ".?!\n") if i != -1]
        sentence = text[start : min(ends, default=len(text))]
        if committing or _APPROVAL.search(sentence):
            return _cased(message, match)
    return None


def _current_solution(message: _Message) -> str | None:
    # How they work today matters when they describe it, defend it or compare against it.
    if message.top not in _DESCRIBING:
        return None
    match = message.first(_CURRENT)
    return _cased(message, match) if match else None


def _next_step(message: _Message) -> str | None:
    # A next step is agreed when the deal moves (buying, scheduling) or to clear a blocker
    # (approval, risk, timing); elsewhere a "demo" or "quote" is a topic, not a plan.
    if message.top not in _NEXT_STEP_ALLOWED:
        return None
    for match in message.matches(_NEXT_STEP):
        if not _negated_at(message, match):
            return _cased(message, match)
    return None


# What taxonomy.toml says of each situation, as the extractors ask it.
_DESCRIBING = frozenset(s.id for s in SITUATION_SPECS if s.describes_current)
_NEXT_STEP_ALLOWED = frozenset(s.id for s in SITUATION_SPECS if s.allows_next_step)
_DECIDER_IMPLIED = frozenset(s.id for s in SITUATION_SPECS if s.implies_decider)
_EXTRACTORS: tuple[tuple[str, Callable[[_Message], str | None]], ...] = (
    ("pain", _pain),
    ("objection", _objection),
    ("budget_signal", _budget),
    ("competitor", _competitor),
    ("timeline", _timeline),
    ("decision_maker", _decision_maker),
    ("team_size", _team_size),
    ("current_solution", _current_solution),
    ("next_step", _next_step),
)
