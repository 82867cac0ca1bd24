"""Thread memory through the engine: a slot keeps the value a person would keep."""

from __future__ import annotations

import itertools

from engine.model import ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.rules.capture import capture
from storage import SqliteStore

KEY = ThreadKey("T", "C", "memory")
_ids = itertools.count()


async def say(engine: Engine, *texts: str) -> dict[str, str]:
    """The thread's slots after these messages, each a new message of the one thread."""
    for text in texts:
        suggestion = await engine.handle(TurnInput(KEY, text, message_id=f"m{next(_ids)}"))
    return dict(suggestion.slots)


async def test_an_approval_threshold_does_not_overwrite_the_budget(
    engine: Engine, store: SqliteStore
) -> None:
    slots = await say(
        engine,
        "We're thinking around 30k for this.",
        "Anything over 25k needs CFO sign-off, so she'll be involved.",
    )
    assert slots["budget_signal"] == "around $30k"
    assert slots["decision_maker"] == "CFO (approval over $25k)"
    # The budget is still the first message's; the threshold's message named the decider.
    stored = (await store.load(KEY)).slots
    assert stored["budget_signal"].message_id != stored["decision_maker"].message_id
    assert stored["budget_signal"].previous is None


async def test_a_quote_does_not_replace_the_budget_but_a_new_budget_does(engine: Engine) -> None:
    slots = await say(
        engine,
        "Budget for this is maybe $12k a year, tops.",
        "Your quote came in at $16k. That's way over what we can do.",
    )
    assert slots["budget_signal"] == "up to $12k/year"
    slots = await say(engine, "Update from finance: budget is now $42k.")
    assert slots["budget_signal"] == "$42k"


async def test_a_negated_competitor_is_removed_and_the_one_still_in_stays(engine: Engine) -> None:
    slots = await say(engine, "We've had demos from Orbitra and Crewlytic so far.")
    assert slots["competitor"] == "Orbitra"  # a vendor vendors.txt does not list
    slots = await say(
        engine,
        "Quick update: we're not looking at Orbitra anymore. Crewlytic is still in the mix.",
    )
    assert slots["competitor"] == "Crewlytic"
    slots = await say(engine, "Crewlytic is out too, their app went down on our busiest day.")
    assert "competitor" not in slots


async def test_a_passing_count_does_not_replace_the_team_size(engine: Engine) -> None:
    slots = await say(
        engine,
        "We have about 320 nurses across 4 units.",
        "We find out at 6am that 5 people aren't coming.",
    )
    assert slots["team_size"] == "320"
    slots = await say(engine, "Sorry, correction: it's 350 nurses, I forgot the float pool.")
    assert slots["team_size"] == "350"


def test_a_deadline_is_a_timeline_even_in_a_message_we_cannot_place() -> None:
    assert capture("by June").slots["timeline"] == "by June"
    assert capture("Ideally in place by June, before the busy season.").slots["timeline"]
    # A date told of the past, or an out-of-office return, is not one.
    assert "timeline" not in capture("I left Acme Corp in June, please update your records.").slots
    assert "timeline" not in capture("I'm out of the office until June 4.").slots


def test_people_counted_in_any_words_and_summed() -> None:
    assert (
        capture("Morning. I run ops here, 600 guards across 90 client sites.").slots["team_size"]
        == "600"
    )
    assert (
        capture("We've got 95 drivers and about 20 warehouse loaders.").slots["team_size"] == "115"
    )
    assert "team_size" not in capture("You're a 40-person startup, what if you shut down?").slots
