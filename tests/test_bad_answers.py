"""A provider that answers badly is not a provider that is down: the router, the breaker, the
call log and the card tell them apart; a provider that keeps hanging counts as failing and its
wait is charged to it, not to the offline tier."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from engine.llm.router import Router
from engine.model import ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from storage import SqliteStore
from tests.llm_kit import GPT4O, SONNET, Kit, request

pytestmark = pytest.mark.timeout(30)

MESSAGE = "We already use Gong and honestly it's too expensive for us"


async def engine_for(router: Router, tmp_path: Path) -> tuple[Engine, SqliteStore]:
    store = await SqliteStore.open(tmp_path / "agent.db")
    settings = Settings(db_path=tmp_path / "agent.db", cache=False)
    engine = Engine(
        llm=router, store=store, settings=settings, playbook=default_playbook(), calls=store
    )
    return engine, store


async def test_a_model_answering_garbage_gets_the_rep_a_card_that_says_so(
    kit: Kit, tmp_path: Path
) -> None:
    kit.server.faults.add("invalid_contract", times=None)
    router = kit.router([kit.openai()], mode="hedge")
    engine, store = await engine_for(router, tmp_path)
    card = await engine.handle(TurnInput(ThreadKey("t", "c", "x"), MESSAGE, "m1"))
    assert card.offline and card.reply and card.situation == "price_objection"
    assert {c.fallback_reason for c in card.calls} == {"answered_badly"}
    assert "LLM providers answered badly: the offline playbook answered." in card.notes
    assert not any("unavailable" in note for note in card.notes)
    await router.aclose()
    rows = [r for r in kit.log.records if r.provider == "openai"]
    assert rows and {r.outcome for r in rows} == {"error:invalid_output"}
    assert all(r.error.startswith(("capture:", "detect:", "generate:")) for r in rows)
    breaker = router.breakers[f"openai/{GPT4O}"]
    assert breaker.snapshot()["recent_bad_answers"] + 5 * breaker.times_opened == len(rows)
    assert breaker.opened_for in (None, "bad")
    await store.close()


async def test_a_down_provider_still_says_unavailable(kit: Kit, tmp_path: Path) -> None:
    kit.server.faults.add("http_500", times=None)
    router = kit.router([kit.openai()], mode="single")
    engine, store = await engine_for(router, tmp_path)
    card = await engine.handle(TurnInput(ThreadKey("t", "c", "y"), MESSAGE, "m1"))
    assert {c.fallback_reason for c in card.calls} == {"unavailable"}
    assert "LLM providers were unavailable: the offline playbook answered." in card.notes
    await router.aclose()
    await store.close()


async def test_a_hedge_loser_without_a_token_is_a_timeout_failure_not_a_cancellation(
    kit: Kit,
) -> None:
    hanging, good = kit.anthropic(), kit.openai()
    kit.server.faults.add("hang", model=SONNET, times=None)
    # (explore: a provider that never wrote a token has no TTFT sample and stays first in line)
    router = kit.router(
        [hanging, good], mode="hedge", hedge_prior_s={"powerful": 0.1}, explore=10
    )
    for _ in range(5):
        assert (await router.complete(request())).call.provider == "openai"
    await router.aclose()
    losers = [r for r in kit.log.records if r.provider == "anthropic"]
    assert [r.outcome for r in losers] == ["error:timeout"] * 5
    assert all("no first token" in r.error for r in losers)
    # Five timeouts in a row: out of rotation, and the stats count them as errors.
    assert router.breakers[hanging.key].state == "open"
    assert router.breakers[hanging.key].opened_for == "down"
    assert (await router.complete(request())).call.provider == "openai"
    assert kit.server.count(model=SONNET) == 5


async def test_the_wait_for_a_hanging_provider_is_charged_to_it_not_to_the_offline_tier(
    kit: Kit,
) -> None:
    kit.server.faults.add("hang", times=None)
    router = kit.router([kit.openai()], mode="single", budget_s=0.4)
    started = time.perf_counter()
    result = await router.complete(request("detect"))
    waited = (time.perf_counter() - started) * 1000
    await router.aclose()
    call = result.call
    assert call.fallback and call.fallback_reason == "unavailable"
    assert call.ms < 100 and 380 <= call.waited_ms <= waited
    assert call.elapsed_ms == pytest.approx(call.ms + call.waited_ms)
    rows = {r.provider: r for r in kit.log.records}
    assert rows["openai"].outcome == "error:timeout" and rows["openai"].ms >= 380
    assert "before its first token" in rows["openai"].error
    assert rows["offline"].ms < 100
    assert Counter(r.outcome for r in kit.log.records) == {"error:timeout": 1, "ok": 1}


async def test_a_refused_answer_is_reasked_once_on_another_provider_with_the_error(
    kit: Kit,
) -> None:
    bad, good = kit.anthropic(), kit.openai()
    kit.server.faults.add("invalid_contract", model=SONNET, times=None)
    router = kit.router([bad, good], mode="single")
    result = await router.complete(request("detect"))
    await router.aclose()
    assert result.call.provider == "openai" and not result.call.fallback
    sent = [r for r in kit.log.records]
    assert [(r.provider, r.outcome) for r in sent] == [
        ("anthropic", "error:invalid_output"),
        ("openai", "win"),
    ]
    # The re-ask carries the validation error, after the data, and nothing else changed.
    assert "<rejected_answer>An earlier answer to this request was rejected: detect:" in (
        sent[1].prompt
    )
    assert "<rejected_answer>" not in sent[0].prompt


async def test_alone_the_same_provider_gets_the_one_reask_then_the_offline_tier(
    kit: Kit,
) -> None:
    kit.server.faults.add("invalid_contract", times=None)
    router = kit.router([kit.openai()], mode="single", retries_per_provider=3)
    result = await router.complete(request("detect"))
    await router.aclose()
    assert result.call.fallback and result.call.fallback_reason == "answered_badly"
    prompts_sent = [r.prompt for r in kit.log.records if r.provider == "openai"]
    assert len(prompts_sent) == 2  # one re-ask, whatever the retry allowance
    assert "<rejected_answer>" not in prompts_sent[0] and "<rejected_answer>" in prompts_sent[1]


async def test_two_bad_providers_get_one_reask_between_them(kit: Kit) -> None:
    kit.server.faults.add("invalid_contract", times=None)
    router = kit.router([kit.anthropic(), kit.openai()], mode="hedge")
    result = await router.complete(request("generate"))
    await router.aclose()
    assert result.call.fallback and result.call.fallback_reason == "answered_badly"
    sent = [(r.provider, "<rejected_answer>" in r.prompt) for r in kit.log.records[:-1]]
    assert sent == [("anthropic", False), ("openai", True)]


async def test_no_reask_when_the_deadline_leaves_no_room(kit: Kit) -> None:
    kit.server.faults.add("invalid_contract", times=None)
    router = kit.router([kit.openai()], mode="single")
    deadline = time.perf_counter() + 0.03  # less than the least time worth an attempt left
    result = await router.complete(request("detect", deadline=deadline))
    await router.aclose()
    assert result.call.fallback
    assert len([r for r in kit.log.records if r.provider == "openai"]) <= 1
