"""The complexity classifier behind tiered models, and tiering end to end through the router."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.llm.tiering import ComplexityTiering, classify, score
from engine.model import ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from storage import SqliteStore
from tests.llm_kit import GPT4O, HAIKU, MINI, SONNET, Kit

pytestmark = pytest.mark.timeout(20)


FEW = {"competitor": "Gong"}
SOME = {"competitor": "Gong", "team_size": "40", "pain": "deals slip"}
MANY = {f"slot{i}": "x" for i in range(9)}
LONG = " ".join(["We have been looking at a few options for the sales team this year"] * 5)


@pytest.mark.parametrize(
    ("step", "text", "context", "expected"),
    [
        ("detect", "Too expensive.", {}, "simple"),
        ("capture", "Hi there!", {}, "simple"),
        ("generate", "We already use Gong and it's too expensive", FEW, "simple"),
        ("detect", "What does it cost per seat for a team of forty like ours", SOME, "simple"),
        # Medium: neither short nor long, a few slots known (generate leans powerful).
        ("generate", "We looked at your pricing page and it seems a lot higher than what "
         "we pay for our current tool today", SOME, "medium"),
        # Complex vocabulary or several questions outweigh shortness.
        ("detect", "Send me the MSA and your SOC 2 report", FEW, "medium"),
        ("detect", "How much is it? Does it do SSO? Is there an API?", FEW, "complex"),
        ("capture", LONG, SOME, "complex"),
        ("detect", "Fine.", MANY, "medium"),
        ("detect", "Fine, and the contract?", MANY, "complex"),
    ],
)
def test_classifier_follows_the_rules(
    step: str, text: str, context: dict[str, str], expected: str
) -> None:
    assert classify(step, text, context) == expected, score(step, text, context)


def test_step_specific_adjustments() -> None:
    text, ctx = "We're 40 reps on Gong right now, mostly outbound", SOME
    # generate leans powerful, detect leans powerful for mixed concerns, capture leans fast
    # when there is nothing to extract.
    assert score("generate", text, ctx) == score("detect", text, ctx) + 1
    mixed = "Love the demo but Gong is cheaper, also legal needs a look"
    assert score("detect", mixed, ctx) == score("capture", mixed, ctx) + 1
    plain = "thanks that sounds good to me let us talk soon about all of it please"
    assert score("capture", plain, {}) == score("detect", plain, {}) - 1


def test_deterministic_counted_and_far_under_a_millisecond() -> None:
    policy = ComplexityTiering()
    text = "We already use Gong and honestly it's too expensive, but our CFO wants ROI by Q3?"
    assert len({policy("detect", text, SOME) for _ in range(100)}) == 1
    n = 5000
    started = time.perf_counter()
    for _ in range(n):
        policy("generate", text, SOME)
    per_call_ms = (time.perf_counter() - started) * 1000 / n
    assert per_call_ms < 0.2, per_call_ms
    stats = policy.stats()
    assert stats.decisions == n + 100
    assert stats.fast + stats.powerful == stats.decisions
    assert sum(stats.by_step["generate"].values()) == n


async def test_tiering_picks_fast_models_for_simple_messages(kit: Kit, tmp_path: Path) -> None:
    fast = [kit.anthropic(HAIKU), kit.openai(MINI)]
    powerful = [kit.anthropic(SONNET), kit.openai(GPT4O)]
    router = kit.router({"fast": fast, "powerful": powerful}, mode="hedge")
    policy = ComplexityTiering()
    store = await SqliteStore.open(tmp_path / "t.db")
    engine = Engine(
        llm=router,
        store=store,
        settings=Settings(db_path=tmp_path / "t.db"),
        playbook=default_playbook(),
        tiering=policy,
        calls=store,
    )
    simple = await engine.handle(TurnInput(ThreadKey("t", "c", "1"), "Too expensive.", "m1"))
    assert {c.model for c in simple.calls} <= {HAIKU, MINI}
    complex_ = await engine.handle(
        TurnInput(
            ThreadKey("t", "c", "2"),
            "Before we sign, legal needs the MSA redlines and security wants your SOC 2 "
            "report. Can you also confirm SSO and data residency in the EU?",
            "m2",
        )
    )
    assert {c.model for c in complex_.calls} <= {SONNET, GPT4O}
    stats = router.stats()
    assert stats.tier_requests["fast"] == len(simple.calls)
    assert stats.tier_requests["powerful"] == len(complex_.calls)
    assert policy.stats().fast == len(simple.calls)
    await router.aclose()
    await store.close()
