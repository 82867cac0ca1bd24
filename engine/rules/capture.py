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
from . import lexicon, values
from .detect import LEXICON, Reading, detect, negated, read
from .text import Scan, Scanner

# A head count: in figures ("40", "1.5k") or in words (the lexicon's: "a dozen", "forty").
_NUM = r"(\d[\d,]*(?:\.\d+)?(?:\s?[km]\b)?|" + lexicon.WORD_NUMBER_PATTERN + r")"
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
    # Where a thread narrows the count: "we'd start with 450 in the ED", "start with the main
    # campus, which is 650".
    (
        re.compile(
            r"\bstart(?:ing)? (?:with|at) (?:just |only |about |around )?(?:"
            + _NUM
            + r"\b|[^.?!\d]{0,40}?\b(?:which is|that's|that is|of) (?:about |around )?"
            + _NUM
            + r"\b)"
        ),
        True,
    ),
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
            r"\b(?:staff|headcount|team|employees|workforce)(?: count| size)? (?:is |are |of |= )?"
            r"(?:about |around |roughly |approximately |~)" + _NUM + r"\b"
        ),
        True,
    ),
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
# A count of people in any words ("600 guards", "140 hourly workers", "~75 field crew"): a
# figure, up to two qualifiers, then a noun that names people (see `_people_noun`).
_COUNTED = re.compile(r"(?<![$€£\d.,/:])(\d[\d,]*)\+?((?:\s[a-z][\w'-]*){1,3})")
_PEOPLE_WORDS = frozenset(
    [
        "staff",
        "crew",
        "personnel",
        "workforce",
        "nurses",
        "guards",
        "medics",
        "emts",
        "techs",
        "temps",
        "aides",
        "baristas",
        "caregivers",
        "cleaners",
        "stylists",
        "pharmacists",
        "loaders",
        "drivers",
        "associates",
        "employees",
        "workers",
        "hires",
        "hands",
        "docs",
        "doctors",
        "agents",
        "reps",
        "people",
        "members",
        "seats",
        "users",
        "folks",
    ]
)
# Nouns ending like people ("-ers", "-ists") that name things.
_NOT_PEOPLE = frozenset(
    [
        "customers",
        "orders",
        "centers",
        "centres",
        "servers",
        "computers",
        "printers",
        "numbers",
        "others",
        "containers",
        "trailers",
        "lockers",
        "stickers",
        "quarters",
        "hours",
        "dollars",
        "years",
        "letters",
        "papers",
        "chapters",
        "filters",
        "matters",
        "layers",
        "markers",
        "towers",
        "corners",
        "headers",
        "timesheets",
    ]
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
    r"|(?:after|before|post|until|by) (?:memorial day|labou?r day|independence day|thanksgiving|christmas|black friday|peak season|the season opens?)"
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
    r"\b(?:(?:our|my|the|their) )?(?:(?:new |interim |acting )?(?:ceo|cfo|cto|cio|coo|cro|cmo|cpo|ciso|cso|c[a-z]o|chief \w+(?: \w+)? officer|general counsel|president)"
    r"|(?:svp|evp|vp|vice president|head|director|managing director|gm|general manager)(?: of)? (?:\w+ ){0,2}?(?:"
    + lexicon.ROLE_FUNCTIONS
    + r")"
    r"|(?:svp|evp|vp|vice president|director|head honcho)"
    r"|(?:co-?)?founders?|(?:managing |senior )?partners|owners?|ownership|(?:school |the |our )board(?: of directors)?(?! meeting| deck| call| prep| pack)|(?:buying|steering|investment|purchasing|review) committee"
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
    r"|call recording through (?:our|the) phone system|(?:our|the) phone system|(?:a |our )?shared sheet(?: and a weekly standup)?|(?:a )?spreadsheet process"
    r"|(?:group|mass) (?:texts?|chats?|text blasts?|messages?)|text(?:ing)? (?:messages|blasts?)|(?:by|via|over) text\b|whatsapp(?: groups?)?|(?:a |our )?(?:shared )?outlook(?: calendar)?|shared calendar"
    r"|(?:an? )?access database|(?:an? )?(?:\d+-year-old |old )?desktop (?:program|app|software)|(?:standalone |old |paper )?time ?clocks?|(?:paper|printed) (?:timesheets?|schedules?|rotas?|visit logs)|printed (?:rota|schedule)|timesheets"
    r"|(?:the )?scheduling (?:tab|feature|module) in our pos|(?:our|a) pos\b|(?:our )?payroll provider'?s? (?:app|tool|system)|(?:a |the )?state (?:evv )?portal|whiteboards?)\b",
)
_NEXT_STEP = re.compile(
    r"\b(?:(?:send|share|forward|draft|put together|prepare|resend|get|turn around) (?:me |us |over |across )*(?:a |an |the |your |those |our )?(?:rough |final |redlined |updated |signed |formal |short |one-page |quick )?(?:proposal|contract|quote|deck|order form|msa|sow|dpa|case stud(?:y|ies)|one-?pager|one-page summary|summary|pricing(?: and contract terms)?|info|details|security (?:docs|questionnaire|package)|soc ?2(?: report)?|references?|trial(?: link)?|paperwork|(?:signed |order )?form|final version|both|calendar invite|invite|agreement|terms|recap|w-?9|po)\b(?: for signature)?"
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
# Words that make a date a deal's deadline.
_DEADLINE = re.compile(
    r"\b(?:decide|decision|live|in place|roll(?:ed)? out|rollout|launch|start|sign|target|"
    r"deadline|ideally|need (?:it|this)|implement\w*|up and running)\b"
)
_PERIOD_OR_YEAR = re.compile(
    r"(?:(?:this|in) (?:week|month|quarter|year)\b|(?:in |during )?20\d\d$)"
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
    known: Mapping[str, str]  # what the thread knew before this message

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
        context or {},
    )
    slots: dict[str, str] = {}
    for name, extract in _EXTRACTORS:
        value = extract(message)
        if value is not None:
            slots[name] = value
    known = {k: _key(v) for k, v in (context or {}).items()}
    # A value the thread already holds is no news; keep only what this message changes. An
    # empty value clears a slot the thread holds (a competitor ruled out).
    delta = {k: v for k, v in slots.items() if known.get(k, "") != _key(v) and (v or k in known)}
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
    # Said outright ("the real pain is overtime", "scheduling is a nightmare"), a pain counts
    # in any message that is not pushing back; else it is the cue that made it discovery.
    if message.top not in OBJECTIONS:
        for pattern in _PAIN_SAID:
            found = pattern.search(message.low)
            if found:
                phrase = _short(message.text[found.start(1) : found.end(1)])
                if len(phrase) >= 4:
                    return phrase
    if message.top != "discovery":
        return None
    hits = [h for h in message.reading.hits if h.pain and h.situation == "discovery"]
    if not hits:
        return None
    return _short(message.reading.span(min(hits, key=lambda h: h.start)), 12)


_CLAUSE = r"([^.?!\n;]{3,90})"
# A pain named as one: the words that say what hurts, in the prospect's words.
_PAIN_SAID = (
    re.compile(
        r"\b(?:biggest|main|real|big|major|top|#1|number one|only|other) (?:headache|issue|problem|"
        r"pain(?: point)?|challenge|frustration|complaint|struggle)s? (?:is|are|=|:|for us is)\s*"
        + _CLAUSE
    ),
    re.compile(
        r"\b(?:pain|problem|issue|headache|challenge)(?: point)?s?\s?(?:=|:|is|are)\s*" + _CLAUSE
    ),
    re.compile(
        r"(?:^|[,:]\s*)"
        + r"([^.?!\n;,:]{3,60}?) (?:is|are) (?:a|an|the|our) (?:big |real |biggest |main |total |"
        r"absolute )?(?:pain|nightmare|headache|mess|problem|issue|struggle)\b"
    ),
    re.compile(
        r"\b(?:(?:hate|hates) (?:that|how|the fact that|it when|having to)|struggle with|"
        r"struggling with|frustrated (?:by|with)|sick of|tired of|fed up with) " + _CLAUSE
    ),
    re.compile(r"(?:^|\n)\s*need:\s*" + _CLAUSE),
    re.compile(
        r"\b((?:\w+ ){0,3}(?:spend|spends|waste|wastes|lose|loses) ~?\d+ ?(?:hrs|hours|days)[^.?!\n;]{0,40})"
    ),
    re.compile(r"\b((?:nobody|no one) (?:really )?(?:knows|noticed|can see)[^.?!\n;]{0,50})"),
    re.compile(r"\b((?:\w+ ){0,2}(?:have|has) no (?:idea|visib\w*)|\bno visib\w*[^.?!\n;]{0,50})"),
    re.compile(r"\b((?:\w+ ){0,3}(?:keep|keeps) getting (?:rejected|lost|missed)[^.?!\n;]{0,30})"),
    re.compile(
        r"\b((?:half the time |often |always )?(?:they|we|people|staff|reps|managers|drivers) "
        r"(?:often |always |keep |sometimes )?(?:miss|forget|forgot)\b[^.?!\n;]{0,40})"
    ),
)


def _short(phrase: str, words: int = 10) -> str:
    """A pain as a short phrase: the first `words` words of its clause, without fillers."""
    phrase = re.sub(
        r"^(?:honestly|really|just|so|that|basically|the fact that),?\s+",
        "",
        _tidy(phrase),
        flags=re.I,
    )
    # A clause joined on ("..., so the wrong tech gets the call") ends the phrase.
    head = re.split(r",\s(?:so|and|but|which|because)\b", phrase, maxsplit=1)[0]
    if len(head.split()) >= 3:
        phrase = head
    cut = phrase.split()
    return " ".join(cut[:words]).rstrip(" ,;:-")


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
    found, strong = _head_count(message)
    if found is None:
        return None
    # A count said in passing ("5 people aren't coming") does not replace the team size the
    # thread holds; one said as a head count, or as a correction, does.
    if "team_size" in message.known and not strong and not _CORRECTION.search(message.low):
        return None
    return found


# Words that say a message corrects what was said before.
_CORRECTION = re.compile(
    r"\b(?:actually|correction|scratch that|sorry|i mean|to be precise|not \d[\d,]*\b|"
    r"update|now (?:at|is|we)|instead|changed|revised|turns out)"
)


def _head_count(message: _Message) -> tuple[str | None, bool]:
    """The team's size in this message, and whether it is said outright as a head count."""
    text = message.low
    weak: str | None = None
    # Two counts that add up to the team outrank one of them said alone.
    counted, parts = _counted(text)
    if parts > 1:
        return counted, True
    for pattern, strong in _TEAM_SIZE:
        for match in message.matches(pattern):
            raw = next(g for g in match.groups() if g).strip()
            value = _count(raw)
            if value is None:
                continue
            preceding = text[max(0, match.start() - 2) : match.start()]
            if value < 1 or "$" in preceding or "€" in preceding or "£" in preceding:
                continue
            # "You're a 40-person startup" sizes the vendor, not their team.
            if re.search(r"\b(?:you're|you are|your) (?:a |an )?(?:\w+ )?$", text[: match.start()]):
                continue
            # "two people can edit it" counts a few people, not the team.
            if not strong and value < 3:
                continue
            if strong:
                return str(int(value)), True
            weak = weak or str(int(value))
    if weak:
        return weak, False
    return counted, False


def _count(raw: str) -> float | None:
    if raw[0].isalpha():
        return lexicon.word_value(raw)
    number = raw.replace(",", "").replace(" ", "")
    scale = 1000 if number.endswith("k") else 1_000_000 if number.endswith("m") else 1
    try:
        return float(number.rstrip("km")) * scale
    except ValueError:
        return None


def _counted(text: str) -> tuple[str | None, int]:
    """A count of people in any words ("600 guards", "140 hourly workers"), and of how many
    counts it is the sum: "95 drivers and about 20 warehouse loaders" is one team of 115."""
    total = parts = 0
    last_end = -1
    for match in _COUNTED.finditer(text):
        words = match.group(2).split()
        # The first noun that counts something: people, or a thing ("22 stores").
        noun = next((w for w in words if _people_noun(w) or w.endswith("s")), "")
        if not _people_noun(noun):
            continue
        value = int(match.group(1).replace(",", "") or 0)
        if value < 3:
            continue
        between = text[last_end : match.start()] if last_end >= 0 else ""
        joined = re.fullmatch(r"\s*(?:,|and|plus|\+)\s*(?:about |around |roughly |~)?", between)
        if parts and not joined:
            break
        total += value
        parts += 1
        last_end = (
            match.start() + len(match.group(1)) + len(match.group(2).split(noun)[0]) + len(noun)
        )
    return (str(total) if total else None), parts


def _people_noun(word: str) -> bool:
    if word in _NOT_PEOPLE:
        return False
    return word in _PEOPLE_WORDS or word.endswith(("ers", "ors", "ists", "ians", "ees", "ants"))


def _budget(message: _Message) -> str | None:
    """What they can spend, as a short phrase ("around $35k"). An approval threshold ("anything
    over $25k needs the CFO") is who decides, not the budget; a price quoted ("your quote came
    in at $16k") does not replace a budget the thread holds."""
    held = "budget_signal" in message.known
    threshold: str | None = None
    for found in message.matches(_MONEY):
        sentence = _sentence(message.low, found.start())
        if _threshold(message.low, found):
            bound = re.search(
                r"(over|above|more than|under|below|up to|beyond)\s?$",
                message.low[max(0, found.start() - 14) : found.start()],
            )
            threshold = threshold or (f"{bound.group(1)} " if bound else "") + _cased(
                message, found
            )
            continue
        if held and _QUOTED.search(sentence) and not _BUDGET_WORD.search(sentence):
            continue
        return _budget_phrase(message, found)
    phrase = message.first(_BUDGET_PHRASES)
    if (
        phrase
        and not _negated_at(message, phrase)
        and not _OWNS_BUDGET.search(message.low, max(0, phrase.start() - 12))
    ):
        return _cased(message, phrase)
    # With no budget known, where approval starts is what they have said about spend.
    if threshold and not held:
        return f"approval needed {threshold}"
    return None


_BUDGET_WORD = re.compile(r"\b(?:budget\w*|spend|afford|allocated|set aside|earmarked|tops)\b")
_QUOTED = re.compile(
    r"\b(?:quote[sd]?|came in at|pric(?:e|ed|ing)|you charge|list price|a head|per head|"
    r"we pay|they charge|costs?)\b"
)
_THRESHOLD_BEFORE = re.compile(
    r"(?:over|above|more than|exceeding|under|below|less than|up to|beyond)\s?$"
)
_APPROVAL_WORDS = re.compile(
    r"\b(?:approv\w*|sign[- ]?off|sign(?:s)? off|signs?|needs?|has to|have to|goes to|go to|"
    r"board|committee|on his own|on her own)\b"
)
_OWNS_BUDGET = re.compile(r"\b(?:owns?|controls?|holds?|manages?) the budget")


def _threshold(text: str, found: re.Match[str]) -> bool:
    """Whether an amount is where an approval begins: "anything over 25k needs sign-off"."""
    before = text[max(0, found.start() - 14) : found.start()]
    sentence = _sentence(text, found.start())
    bound = _THRESHOLD_BEFORE.search(before) or _THRESHOLD_BEFORE.search(
        text[found.start() : found.start() + 12].split(" ")[0] + " "
    )
    return bool(bound and _APPROVAL_WORDS.search(sentence))


def _budget_phrase(message: _Message, found: re.Match[str]) -> str:
    """The amount, normalised ("$35k", "$1.2k/month"), with how firm it is ("around", "up to")."""
    raw = _cased(message, found)
    amount = values.amount(raw)
    if amount is None:
        return raw
    if amount.per is None:
        after = message.low[found.end() : found.end() + 30]
        period = re.match(
            r"\s?(?:a|per|/|for (?:this|the|next) (?:fiscal )?)\s?(year|month|yr|mo)\b", after
        )
        if period:
            amount = values.Amount(
                amount.value,
                amount.currency,
                "year" if period.group(1) in ("year", "yr") else "month",
            )
    around = message.low[max(0, found.start() - 16) : found.end() + 8]
    if re.search(r"\b(?:tops|max(?:imum)?|at most|up to|no more than|ceiling)\b", around):
        return f"up to {amount}"
    if re.search(
        r"(?:~|\b(?:about|around|roughly|approximately|maybe|like|some)\b|-?ish\b)", around
    ):
        return f"around {amount}"
    return str(amount)


def _competitor(message: _Message) -> str | None:
    """The vendor they evaluate or use. One they rule out ("we're not looking at Orbitra
    anymore", "Crewlytic is out") is not: it clears the slot when the thread held it."""
    named = _named(message)
    standing = [m for m in named if not _ruled_out(message.low, m)]
    if standing:
        return standing[0].name
    held = message.known.get("competitor", "").casefold()
    if held and any(m.name.casefold() == held for m in named):
        return ""
    return None


def _named(message: _Message) -> list[lexicon.Mention]:
    """Every vendor the message names: listed, unlisted in a vendor's place, or one the team
    has a battlecard for (the reading's vendor, when it is none of the others)."""
    named = lexicon.named_vendors(message.low, message.text)
    vendor = message.reading.vendor
    if vendor and all(m.at != vendor[0] for m in named):
        alias = message.low[vendor[0] : vendor[0] + len(vendor[1])]
        named = sorted([*named, lexicon.Mention(vendor[0], alias, vendor[1])], key=lambda m: m.at)
    return named


# A vendor taken out of the running, said of it by name or as "it"/"they" in its sentence.
_RULED_OUT = re.compile(
    r"(?:\b(?:not|no longer|n't|never)(?: \w+){0,2} (?:looking at|going with|go with|considering|"
    r"evaluating|pursuing|moving forward with|signing with|using|doing that again)\b"
    r"|\b(?:is|it's|they're|are|was) (?:out|off the list|ruled out|out of the running|eliminated)\b"
    r"|\b(?:ruled out|dropped|crossed off|eliminated)\b|\boff the list\b"
    r"|\bfailed our \w+|\bso it'?s out\b)"
)


def _ruled_out(text: str, mention: lexicon.Mention) -> bool:
    """Whether the sentence naming `mention` rules it out (or any sentence of the message
    does, by name: "We're not doing that again, Crewlytic is out.")."""
    start = text.rfind("\n", 0, mention.at) + 1
    end = text.find("\n", mention.at)
    sentence = text[start : end if end != -1 else len(text)]
    if _RULED_OUT.search(sentence):
        # "Crewlytic is still in the mix" after another's "not looking at" stays in.
        rest = sentence[mention.at - start :]
        return not re.match(re.escape(mention.alias) + r"(?:'s)? (?:is )?still\b", rest)
    alias = re.escape(mention.alias)
    return bool(re.search(alias + r" (?:is|was|are) (?:out|off the list|ruled out)\b", text))


def _timeline(message: _Message) -> str | None:
    # A message we cannot place gives a timeline only as a deadline ("by June", "ideally in
    # place by June"); an out-of-office return date or "I left in June" is not one.
    unplaced = message.top == "other"
    if unplaced and any(h.situation == "other" for h in message.reading.hits):
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
        if low in {"24/7", "24/5"}:  # around the clock, not a date
            continue
        # "the 6th follow-up" counts, it does not date.
        if re.match(r"\s(?:follow|email|time|message|call|attempt|reminder)", after):
            continue
        if unplaced and not (
            low.startswith(("by ", "before ")) or _DEADLINE.search(_sentence(text, match.start()))
        ):
            continue
        # Told of the past ("the app went down on July 4th", "back in 2024"), not a plan.
        clause = text[max(0, text.rfind(",", 0, match.start()) + 1) : match.start()]
        clause = clause[clause.rfind("\n") + 1 :]
        # A period of this year, or a year, in a clause about the past; any date right after
        # a verb in the past ("went down on July 4th").
        if _PERIOD_OR_YEAR.match(low) and _PAST_TENSE.search(clause):
            continue
        near = " ".join(clause.split()[-4:])
        if _PAST_TENSE.search(near) or near.endswith("back in"):
            continue
        return value
    return None


def _decision_maker(message: _Message) -> str | None:
    found = _decider(message)
    if not found:
        return None
    # The role, not whose it is: "my VP of Sales" is "VP of Sales" ("the board" keeps "the").
    role = re.sub(r"^(?:my|our|their) ", "", found, flags=re.I)
    # Where their approval starts is part of who decides: "CFO (approval over $25k)".
    for money in message.matches(_MONEY):
        if _threshold(message.low, money):
            amount = values.amount(_cased(message, money))
            return f"{role} (approval over {amount})" if amount else role
    return role


_CHIEFS = frozenset({"ceo", "cfo", "cto", "cio", "coo", "cro", "cmo", "cpo", "cso"})


def _decider(message: _Message) -> str | None:
    text = message.low
    for match in message.matches(_SENIOR):
        if "your" in text[max(0, match.start() - 6) : match.start()]:
            continue
        found = _cased(message, match)
        # A chief's three letters ("CNO") only as an acronym, not a word like "coo".
        title = found.split()[-1]
        if len(title) == 3 and title[0] in "cC" and not title.isupper() and title not in _CHIEFS:
            continue
        return found
    committing = message.top in _DECIDER_IMPLIED
    for match in message.matches(_GROUP):
        start = max(text.rfind(c, 0, match.start()) for c in ".?!\n") + 1
        ends = [i for i in (text.find(c, match.end()) for c in ".?!\n") if i != -1]
        sentence = text[start : min(ends, default=len(text))]
        if committing or _APPROVAL.search(sentence):
            return _cased(message, match)
    return None


def _current_solution(message: _Message) -> str | None:
    # How they work today matters when they describe it, defend it or compare against it, or
    # say outright that it is what they use now.
    text = message.low
    found: list[str] = []
    for mention in _named(message):
        if _IN_USE.search(_sentence(text, mention.at)) and not _ruled_out(text, mention):
            found.append(mention.name)
            break
    for match in message.matches(_CURRENT):
        said = message.top in _DESCRIBING or _IN_USE.search(_sentence(text, match.start()))
        if said and not _negated_at(message, match):
            found.append(_cased(message, match))
            break
    return " and ".join(found) if found else None


# A sentence saying what they use today.
_IN_USE = re.compile(
    r"\b(?:today|currently|right now|at the moment|we use|we're using|we are using|we're on|"
    r"we are on|we run|is done (?:in|on|by|with|through)|are done (?:in|on|by|with|through)|"
    r"lives? (?:in|on)|handled by|we do (?:it|this|everything)|current(?: tool| system|ly)?:?|"
    r"(?:tool|system|process) is|we've had it|came bundled|it's (?:a|all)|schedules (?:live|are)|"
    r"we (?:still )?(?:rely|depend) on|using|use)\b"
)


def _sentence(text: str, at: int) -> str:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start : end if end != -1 else len(text)]


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
