"""One turn through the real engine and SQLite, with the offline tier or a scripted provider."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from engine.errors import EmptyMessage
from engine.llm.offline import OfflineProvider
from engine.locks import LocalThreadLocks
from engine.model import Capture, Detection, StepCall, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import StepRequest, StepResult
from engine.settings import Settings
from engine.stats import FeedbackReport
from storage import SqliteStore

KEY = ThreadKey("T1", "C1", "1700000000.000100")


def turn(text: str, n: int = 1, key: ThreadKey = KEY) -> TurnInput:
    return TurnInput(key=key, text=text, message_id=f"m{n}")


class Scripted:
    """A provider whose capture and detect answers a test sets; generate comes from rules."""

    name = "scripted"

    def __init__(self, capture: Capture, detections: list[Detection]) -> None:
        self.capture, self.detections = capture, detections
        self.requests: list[StepRequest] = []

    async def complete(self, request: StepRequest) -> StepResult:
        self.requests.append(request)
        call = StepCall(request.step, self.name, "script", 1.0)
        if request.step == "capture":
            return StepResult(self.capture, call)
        if request.step == "detect":
            return StepResult(self.detections.pop(0), call)
        return OfflineProvider().complete_now(request)


async def test_offline_turn_makes_a_card_and_keeps_context(engine: Engine) -> None:
    s = await engine.handle(turn("We already use Gong and honestly it's too expensive for us"))
    assert s.situation in ("price_objection", "competitor_mention")
    assert s.slots["competitor"] == "Gong"
    assert "Gong" in s.reply
    follow = await engine.handle(turn("We're a team of 30 and need it by Q3", 2))
    assert follow.slots["competitor"] == "Gong"  # remembered from the first turn
    assert follow.slots_delta == {"team_size": "30", "timeline": "by Q3"}


async def test_parallel_and_sequential_give_the_same_suggestion(store: SqliteStore) -> None:
    text = "Our CFO says $50k is way over budget and we're happy with Excel"
    results = []
    for i, mode in enumerate(("parallel", "sequential")):
        settings = Settings(pipeline=mode)
        eng = Engine(
            llm=OfflineProvider(), store=store, settings=settings, playbook=default_playbook()
        )
        results.append(await eng.handle(turn(text, i, ThreadKey("T", "C", mode))))
    par, seq = results
    for field in ("situation", "strategy", "reply", "coaching_tip", "slots", "slots_delta"):
        assert getattr(par, field) == getattr(seq, field), field


@pytest.mark.parametrize(
    ("capture", "detection", "trigger"),
    [
        (Capture({}, 0.9), Detection("discovery", 0.5), "low_confidence"),
        (
            Capture({"competitor": "Gong"}, 0.9),
            Detection("competitor_mention", 0.9),
            "critical_slot",
        ),
        (
            Capture(
                {
                    "team_size": "5",
                    "current_solution": "excel",
                    "next_step": "demo",
                    "pain": "slow",
                },
                0.9,
            ),
            Detection("discovery", 0.9),
            "many_slots",
        ),
    ],
)
async def test_each_reconcile_trigger_fires_and_is_counted(
    store: SqliteStore, settings: Settings, capture: Capture, detection: Detection, trigger: str
) -> None:
    llm = Scripted(capture, [detection, Detection("discovery", 0.95)])
    eng = Engine(llm=llm, store=store, settings=settings, playbook=default_playbook())
    s = await eng.handle(turn("some message"))
    assert trigger in s.reconcile_triggers and s.reconciled
    detects = [r for r in llm.requests if r.step == "detect"]
    assert len(detects) == 2
    assert detects[0].context == {} and detects[1].context == dict(capture.slots)
    assert s.situation == "discovery" and s.confidence == 0.95
    report = await eng.stats()
    assert report.reconcile.triggers[trigger] == 1
    assert report.reconcile.reconciled == 1


async def test_confident_detection_without_news_skips_reconcile(
    store: SqliteStore, settings: Settings
) -> None:
    llm = Scripted(Capture({"team_size": "5"}, 0.9), [Detection("discovery", 0.9)])
    eng = Engine(llm=llm, store=store, settings=settings, playbook=default_playbook())
    s = await eng.handle(turn("we are five people"))
    assert not s.reconciled
    assert sum(r.step == "detect" for r in llm.requests) == 1


async def test_empty_message_is_refused_and_stores_nothing(
    engine: Engine, store: SqliteStore
) -> None:
    for text in ("", "   \n\t "):
        with pytest.raises(EmptyMessage, match="Paste what the prospect said"):
            await engine.handle(turn(text))
    assert (await store.load(KEY)).turns == 0
    assert await store.recent_turns(10) == []


async def test_oversized_message_is_cut_with_a_note(engine: Engine, store: SqliteStore) -> None:
    text = ("We use Gong and it's too expensive. " * 1200)[:40_000]
    s = await engine.handle(turn(text))
    assert any("40,000 characters" in note for note in s.notes)
    context = await store.load(KEY)
    assert context.turns == 1
    # The rep's whole message is kept; only the pipeline reads a bounded part.
    assert len(context.history[-1]) == 40_000


async def test_turns_of_one_thread_run_in_order_others_concurrently(
    store: SqliteStore, settings: Settings
) -> None:
    order: list[str] = []

    class Slow(OfflineProvider):
        async def complete(self, request: StepRequest) -> StepResult:
            if request.step == "capture":
                order.append(request.text)
                await asyncio.sleep(0.01)
            return self.complete_now(request)

    eng = Engine(llm=Slow(), store=store, settings=settings, playbook=default_playbook())
    texts = [f"message {i}" for i in range(10)]
    await asyncio.gather(*(eng.handle(turn(t, i)) for i, t in enumerate(texts)))
    assert order == texts
    assert isinstance(eng.locks, LocalThreadLocks) and len(eng.locks) == 0  # released


async def test_regenerate_answers_the_same_message_again(
    engine: Engine, store: SqliteStore
) -> None:
    first = await engine.handle(turn("Does it integrate with HubSpot?"))
    again = await engine.regenerate(first.id)
    assert again is not None and again.id != first.id
    assert again.message_id == first.message_id
    assert (await store.load(KEY)).turns == 1
    assert await engine.regenerate("no-such-id") is None


async def test_feedback_is_stored(engine: Engine) -> None:
    s = await engine.handle(turn("Does it integrate with HubSpot?"))
    assert await engine.feedback(s.id, positive=True)
    assert not await engine.feedback("missing", positive=False)
    report = await engine.stats()
    assert report.feedback == FeedbackReport(rated=1, positive=1, positive_share=1.0)


def test_suggestion_is_immutable() -> None:
    s = Detection("greeting", 0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.situation = "other"  # type: ignore[misc]


async def test_fallback_answers_are_not_cached_and_hits_keep_their_notes(
    store: SqliteStore, settings: Settings
) -> None:
    from engine.cache import TwoTierCache

    def engine_with(llm: OfflineProvider) -> Engine:
        cache = TwoTierCache(version="v1")  # exact tier only
        return Engine(
            llm=llm, store=store, settings=settings, playbook=default_playbook(), cache=cache
        )

    outage = engine_with(OfflineProvider(fallback=True))
    first = await outage.handle(
        turn("Does it integrate with HubSpot?", 1, ThreadKey("T", "C", "a"))
    )
    again = await outage.handle(
        turn("Does it integrate with HubSpot?", 2, ThreadKey("T", "C", "b"))
    )
    assert first.offline and again.cache == "miss" and again.offline

    normal = engine_with(OfflineProvider())
    long = "We use Gong and it's too expensive. " * 200
    await normal.handle(turn(long, 3, ThreadKey("T", "C", "c")))
    hit = await normal.handle(turn(long, 4, ThreadKey("T", "C", "d")))
    assert hit.cache == "exact"
    assert any("characters; I read the first" in note for note in hit.notes)


async def test_regenerating_an_old_card_keeps_newer_deal_facts(
    engine: Engine, store: SqliteStore
) -> None:
    first = await engine.handle(turn("Budget is $50k and we are 20 people", 1))
    await engine.handle(turn("Actually budget is $90k and we are 45 people now", 2))
    again = await engine.regenerate(first.id)
    assert again is not None
    context = await store.load(KEY)
    assert context.values()["team_size"] == "45"
    assert context.slots["team_size"].message_id == "m2"
    assert context.turns == 2


async def test_a_message_already_answered_is_found_by_its_id(engine: Engine) -> None:
    s = await engine.handle(turn("Does it integrate with HubSpot?", 7))
    found = await engine.answered("m7")
    assert found is not None and found.id == s.id and found.reply == s.reply
    assert await engine.answered("m8") is None
