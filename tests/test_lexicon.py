"""The rules and the cache guard read one lexicon, so they agree on what a message says."""

import json

import pytest

from engine.cache.guard import facts
from engine.data import DATA
from engine.rules.capture import capture
from engine.rules.lexicon import VENDORS


def _texts() -> list[str]:
    texts = []
    for name in ("golden", "holdout", "paraphrases", "hard_negatives"):
        for line in (DATA / f"{name}.jsonl").read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts += [row[key] for key in ("text", "a", "b") if key in row]
    return texts


def test_guard_and_capture_agree_on_the_competitor_named() -> None:
    texts = _texts()
    assert len(texts) > 800
    named = 0
    for text in texts:
        first = capture(text).slots.get("competitor")
        seen = [name.removeprefix("not ") for name in facts(text).competitors]
        assert (seen[0] if seen else None) == first, text
        named += bool(first)
    assert named > 100  # the sets do name vendors: the agreement is not vacuous


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Ramp time for new reps is getting longer", []),  # a sentence start, then a noun
        ("We looked at Ramp. Ramp time matters too.", ["Ramp"]),
        ("we moved off ZoomInfo Chorus last year", ["Chorus"]),  # the longest alias wins
        ("we use gong and outreach", ["Gong"]),  # "*Outreach" counts only capitalised
        ("Gong vs. Clari vs SFDC", ["Gong", "Clari", "Salesforce"]),
    ],
)
def test_vendor_mentions(text: str, names: list[str]) -> None:
    from engine.rules.text import sentences

    cased = "\n".join(sentence for sentence, _ in sentences(text))
    assert [m.name for m in VENDORS.mentions(cased.lower(), cased)] == names
    assert [n.removeprefix("not ") for n in facts(text).competitors] == names


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("we have twenty five reps", "25"),  # capture used to stop at "twenty"
        ("we're about a dozen AEs", "12"),
        ("a team of two hundred", "200"),
        ("we are a couple reps", "2"),
    ],
)
def test_rules_and_guard_read_number_words_alike(text: str, count: str) -> None:
    assert capture(text).slots.get("team_size") == count
    assert facts(text).numbers == (count,)


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("budget is $40k for the year", "money:40000"),
        ("we pay 40,000 USD a year", "money:40000"),
        ("somewhere in the low six figures", "figures:low-six"),
    ],
)
def test_rules_and_guard_see_the_same_money(text: str, amount: str) -> None:
    from engine.rules.detect import read

    assert "money" in read(text).features
    assert capture(text).slots.get("budget_signal")
    assert amount in facts(text).numbers
