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
        ("budget is $40k for the year", "budget_signal", "$40k/year"),
        ("we need this live by Q3", "timeline", "by Q3"),
        ("I'll need to run this by our CFO", "decision_maker", "CFO"),
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


# Detection: the grammar of sales, not the examples ------------------------------------------


@pytest.mark.parametrize(
    ("text", "situation"),
    [
        # A question about price asks; a statement about it pushes back.
        ("how much is it for 30 seats?", "pricing_question"),
        ("Is annual billing required?", "pricing_question"),
        ("It costs too much for what it does.", "price_objection"),
        ("We were thinking more like $10k a year, not $35k.", "price_objection"),
        # Negation cancels a cue: "not too expensive" is no price objection.
        ("It's not too expensive, but does it integrate with HubSpot?", "feature_question"),
        (
            "Price isn't the issue, we're comparing you against Gong on features.",
            "competitor_mention",
        ),
        # "If it works" is a condition, not a defence of the status quo.
        ("Let's do a paid pilot with 10 reps and expand if it works.", "buying_signal"),
        (
            "Our current process works well enough, I don't see us changing it.",
            "status_quo_objection",
        ),
        # Evaluating one vendor against another is a competitor mention.
        ("We're evaluating Gong vs Chorus right now.", "competitor_mention"),
        ("What would make us pick you over Mindtickle?", "competitor_mention"),
        # An explicit objection outranks a generic discovery cue in the same message.
        (
            "Our biggest problem is ramp time, and honestly your price is way too high.",
            "price_objection",
        ),
        ("We're not looking to add anything until the merger closes.", "timing_objection"),
        (
            "I'll have to get our CFO's sign-off before we commit to anything.",
            "authority_objection",
        ),
        ("How do you make sure reps' personal calls don't get recorded?", "risk_concern"),
        ("Could we move Wednesday's call to Thursday morning?", "scheduling"),
        ("We're going to pass for now, thanks.", "not_interested"),
        ("Out of office until the 15th, limited access to email.", "other"),
    ],
)
def test_detect_reads_the_language_of_sales(text: str, situation: str) -> None:
    assert detect(text).situation == situation


def test_detect_uses_thread_context_to_break_ties() -> None:
    # "What gives?" alone is nothing; after a quote it pushes back on the price.
    assert detect("Hmm, what gives?").situation == "other"
    known_price = detect("Hmm, what gives?", {"budget_signal": "$40k"})
    assert known_price.situation == "price_objection"
    assert known_price.confidence < 0.7  # contextual evidence is weak evidence
    assert detect("Thursday at 2?", {"next_step": "demo"}).situation == "scheduling"


def test_detect_confidence_is_low_for_a_lone_weak_cue() -> None:
    assert detect("integrations").confidence < 0.7
    assert detect("Our legal team will ask about this.").confidence < 0.7
    assert detect("Not interested, please stop emailing me").confidence >= 0.7


# Capture --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slot", "value"),
    [
        ("It is too expensive", "objection", "too expensive"),
        ("Any support for Dynamics 365?", "competitor", "Dynamics 365"),
        ("We're 4 people in RevOps and already stretched.", "team_size", "4"),
        ("Our two pilot managers want it for their whole teams (~35 people).", "team_size", "35"),
        (
            "our board has to approve any new annual commitment above 50k",
            "budget_signal",
            "approval needed above 50k",
        ),
        ("Procurement has to approve all new vendors.", "decision_maker", "Procurement"),
        ("Let's get the order form going.", "next_step", "get the order form"),
        (
            "We pull it together from email threads and gut feel",
            "current_solution",
            "email threads",
        ),
    ],
)
def test_capture_reads_slots(text: str, slot: str, value: str) -> None:
    assert capture(text).slots.get(slot) == value


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("We trialed Clari last year.", "timeline"),  # looking back is no timeline
        ("Reply rates dropped to under 1% this year.", "timeline"),
        ("Only two people can edit the sheet.", "team_size"),  # a few people, not the team
        ("Finance asked me for a breakdown of the costs.", "decision_maker"),  # no say, just asks
        ("Ramp time for new reps is 6 months.", "competitor"),  # an everyday word, not Ramp
        ("We can't move forward without SSO.", "next_step"),  # negated
        ("Out of office until Monday, back then.", "timeline"),  # a return date
    ],
)
def test_capture_leaves_out_what_is_not_there(text: str, slot: str) -> None:
    assert slot not in capture(text).slots


def test_capture_files_pain_for_discovery_and_objection_for_pushback() -> None:
    discovery = capture("Our reps spend hours on data entry and managers have no visibility.")
    assert "pain" in discovery.slots and "objection" not in discovery.slots
    objection = capture("We'd love to, but there's no way we can swing five figures for this.")
    assert "objection" in objection.slots and "pain" not in objection.slots


def test_capture_knows_a_value_the_thread_holds_despite_articles() -> None:
    assert (
        "next_step"
        not in capture("Does Tuesday 3pm ET work for the demo?", {"next_step": "demo"}).slots
    )


# The scanner is only a shortcut ----------------------------------------------------------------


def test_scanner_finds_every_match_finditer_finds() -> None:
    import json

    from engine.data import GOLDEN
    from engine.rules import capture as capture_module
    from engine.rules.detect import LEXICON, read

    texts = [json.loads(line)["text"] for line in GOLDEN.read_text("utf-8").splitlines() if line]
    for text in texts:
        low = read(text).text
        for scanner in (LEXICON.scanner, capture_module._SCANNER):
            scan = scanner.scan(low)
            for number, pattern in enumerate(scanner.patterns):
                expected = {m.start() for m in pattern.finditer(low)}
                assert expected <= {m.start() for m in scan.matches(number)}, pattern.pattern


def test_capture_and_detect_are_fast() -> None:
    import json
    import time

    from engine.data import GOLDEN
    from engine.rules.detect import read

    rows = [json.loads(line) for line in GOLDEN.read_text("utf-8").splitlines() if line]
    start = time.process_time()
    for row in rows:
        read.cache_clear()
        capture(row["text"], row.get("context"))
        detect(row["text"], row.get("context"))
    mean_ms = (time.process_time() - start) / len(rows) * 1000
    assert mean_ms < 2.0  # typically ~0.2 ms; generous for a loaded CI machine


def test_using_a_tool_that_is_no_vendor_is_not_a_competitor_mention() -> None:
    assert detect("We're 25 reps and we use spreadsheets today").situation != "competitor_mention"
    assert detect("We already use Gong").situation == "competitor_mention"
