"""The offline tier's rules on the language of sales."""

import pytest

from engine.rules.capture import capture
from engine.rules.detect import detect


@pytest.mark.parametrize(
    ("text", "slot", "value"),
    [
        ("We already use Gong and it's too expensive", "competitor", "Gong"),
        ("our team of 45 reps lives in spreadsheets", "team_size", "45"),
        ("we're about a dozen AEs", "team_size", "12"),
        ("budget is $40k for the year", "budget_signal", "$40k"),
        ("we need this live by Q3", "timeline", "by Q3"),
        ("I'll need to run this by our CFO", "decision_maker", "our CFO"),
        ("we track everything in spreadsheets", "current_solution", "spreadsheets"),
    ],
)
def test_capture_finds_slot(text: str, slot: str, value: str) -> None:
    assert capture(text).slots.get(slot) == value


def test_capture_reports_only_news() -> None:
    found = capture("We use Gong, about 45 reps", {"competitor": "gong"})
    assert "competitor" not in found.slots
    assert found.slots["team_size"] == "45"


def test_capture_ignores_money_as_team_size() -> None:
    assert "team_size" not in capture("it's $45 users pay per month").slots


@pytest.mark.parametrize(
    ("text", "situation"),
    [
        ("That's way over our budget, honestly too expensive", "price_objection"),
        ("Does it integrate with HubSpot?", "feature_question"),
        ("Not interested, please stop emailing me", "not_interested"),
        ("Send over the contract and we'll sign this week", "buying_signal"),
        ("Hi Sam, nice to meet you", "greeting"),
    ],
)
def test_detect_situation(text: str, situation: str) -> None:
    assert detect(text).situation == situation


def test_detect_confidence_reflects_cue_strength() -> None:
    strong = detect("Way too expensive, way over our budget, can't justify the spend")
    contested = detect("pricing seems steep but does it integrate with Salesforce?")
    assert strong.confidence > contested.confidence
    assert detect("hmm").confidence < 0.7
