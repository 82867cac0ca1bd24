"""Slot phrases, said to the prospect: the offline tier's templates fill them in a reply.

A slot holds the prospect's own words ("my VP of Sales", "our reps waste 5 hours a week"); a
reply speaks to them, so the person is turned around ("your VP of Sales"), a role gets its
possessive ("your CFO", not "CFO"), and a date loses the preposition the template supplies
("by June" is "June" in "is June still the date you're working toward?").
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The prospect's first person, turned to the second; longest first where one contains another.
_TURNS = {
    "i'm": "you're",
    "i am": "you are",
    "i've": "you've",
    "i'd": "you'd",
    "i'll": "you'll",
    "we're": "you're",
    "we are": "you are",
    "we've": "you've",
    "we'd": "you'd",
    "we'll": "you'll",
    "ourselves": "yourselves",
    "myself": "yourself",
    "ours": "yours",
    "mine": "yours",
    "our": "your",
    "my": "your",
    "we": "you",
    "us": "you",
    "me": "you",
    "i": "you",
}
_PERSON = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(_TURNS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
# A leading preposition a template's own words replace.
_DATE_LEAD = re.compile(
    r"^(?:by|before|until|till|in|on|at|for|after|from|around|during|no later than)\s+", re.I
)
# Words that open a role rather than a person's name: they take "your".
_ROLE = re.compile(
    r"^(?:c[a-z]{1,2}o|vp|svp|evp|vice president|head|director|manager|gm|general manager|"
    r"owners?|ownership|founders?|co-?founders?|partners|board|county board|school board|"
    r"procurement|legal|finance|it|security|leadership|exec\w*|boss|president|superintendent|"
    r"administrator|committee|steering|purchasing|corporate|headquarters|hq|chief)\b",
    re.I,
)


def to_prospect(phrase: str) -> str:
    """The prospect's words with the person turned: "my VP of Sales" -> "your VP of Sales"."""

    def turn(match: re.Match[str]) -> str:
        word = match.group(1)
        turned = _TURNS[word.lower()]
        return turned.capitalize() if word[0].isupper() and word.lower() != "i" else turned

    return _PERSON.sub(turn, phrase)


def slot_phrase(name: str, value: str) -> str:
    """How a slot's value reads inside a reply to the prospect."""
    value = to_prospect(value.strip())
    if name == "decision_maker":
        value = re.sub(r"\s*\([^)]*\)$", "", value)  # "Priya (COO)": Priya
        if _ROLE.match(value):
            value = f"your {value}"
    elif name == "timeline":
        value = _DATE_LEAD.sub("", value)
    elif name in ("pain", "objection"):
        # A phrase from mid-sentence: lower case, unless it opens with a name or an acronym.
        first = value.split(" ", 1)[0]
        if first[:1].isupper() and first[1:].islower() and len(first) > 1:
            value = value[0].lower() + value[1:]
    return value


def slot_phrases(slots: Mapping[str, str]) -> dict[str, str]:
    return {name: slot_phrase(name, value) for name, value in slots.items() if value}
