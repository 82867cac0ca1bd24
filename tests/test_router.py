"""The router over real SDK providers and the fake LLM server: racing, hedging, failover,
circuit breakers, Retry-After, the step budget, the offline tier, the call log and stats."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.llm.factory import LLMStack
from engine.llm.offline import OfflineProvider
from engine.llm.recorder import CallRecorder
from engine.llm.router import Router
from engine.model import Detection, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from engine.stats import build_report
from storage import SqliteStore
from tests.llm_kit import GPT4O, HAIKU, MINI, SONNET, Kit, generations, request

pytestmark = pytest.mark.timeout(20)



async def test_race_returns_the_fastest_valid_answer_and_cancels_the_loser(kit: Kit) -> None:
    slow, fast = kit.anthropic(), kit.openai()
    kit.server.faults.add("slow", model=SONNET, delay=3.0)
    router = kit.router([slow, fast], mode="race")
    started = time.perf_counter()
    result = await router.complete(request())
    assert result.call.provider == "openai" and not result.call.fallback
    assert time.perf_counter() - started < 2.0
    # The loser's request was cancelled: the server saw the client go away.
    [lost] = await kit.server.wait_for(model=SONNET, outcome="client_disconnected")
    assert lost.finished_at is not None
    await router.aclose()
    outcomes = {(r.provider, r.outcome) for r in kit.log.records}
    assert outcomes == {("openai", "win"), ("anthropic", "cancelled")}


async def test_race_skips_an_invalid_fast_answer_for_a_valid_slower_one(kit: Kit) -> None:
    a, o = kit.anthropic(), kit.openai()
    kit.server.faults.add("malformed_json", model=SONNET)
    kit.server.faults.add("slow", model=GPT4O, delay=0.2)
    router = kit.router([a, o], mode="race")
    result = await router.complete(request())
    assert result.call.provider == "openai" and isinstance(result.value, Detection)
    await router.aclose()
    assert Counter(r.outcome for r in kit.log.records) == {"error:invalid_output": 1, "win": 1}


async def test_malformed_json_goes_to_another_provider(kit: Kit) -> None:
    a, o = kit.anthropic(), kit.openai()
    kit.server.faults.add("malformed_json", model=SONNET)
    router = kit.router([a, o], mode="single")
    result = await router.complete(request("capture"))
    assert result.call.provider == "openai"
    await router.aclose()
    assert [(r.provider, r.outcome) for r in kit.log.records] == [
        ("anthropic", "error:invalid_output"),
        ("openai", "win"),
    ]
    assert "```json" in kit.log.records[0].response  # the bad answer is kept for inspection


async def engine_for(kit: Kit, router: Router, tmp_path: Path) -> tuple[Engine, SqliteStore]:
    store = await SqliteStore.open(tmp_path / "router.db")
    router.recorder = CallRecorder(store)  # the call log in SQLite, as the app wires it
    stack = LLMStack(router, tiering=None, connections=[])  # as build_llm wraps it for the app
    engine = Engine(
        llm=stack,
        store=store,
        settings=Settings(db_path=tmp_path / "router.db"),
        playbook=default_playbook(),
        calls=store,
        llm_stats=stack,
    )
    return engine, store


TURNS = [
    "Hi there",
    "We already use Gong and honestly it's too expensive for us",
    "We're 40 reps and our CFO signs off next quarter",
    "Does it integrate with HubSpot?",
    "Can we do Thursday at 2pm for a demo?",
    "Not sure we have budget this year",
    "Send me the security questionnaire",
    "Sounds good, what are the next steps?",
]


@pytest.mark.parametrize("mode", ["single", "hedge", "race"])
async def test_one_provider_failing_every_call_still_answers_every_turn(
    kit: Kit, tmp_path: Path, mode: str
) -> None:
    kit.server.faults.add("http_500", model=SONNET, times=None)
    # explore=3 (the default): a provider without TTFT samples is tried first until measured.
    router = kit.router([kit.anthropic(), kit.openai()], mode=mode, explore=3)
    engine, store = await engine_for(kit, router, tmp_path)
    key = ThreadKey("t", "c", mode)
    for i, text in enumerate(TURNS):
        s = await engine.handle(TurnInput(key, text, f"m{i}"))
        assert not s.offline and s.reply
        assert {c.provider for c in s.calls} == {"openai"}
    # After 5 straight failures the breaker opened and anthropic got no more traffic.
    assert router.breakers[f"anthropic/{SONNET}"].state == "open"
    assert kit.server.count(model=SONNET) <= 6
    await router.aclose()
    live = (await engine.stats()).llm.live
    assert live is not None and live.router is not None
    assert live.router.circuits[f"anthropic/{SONNET}"]["state"] == "open"
    report = build_report([], await store.recent_calls(1000)).llm.providers
    assert report[f"openai/{GPT4O}"].wins == sum(
        1 for r in generations(kit.server, model=GPT4O) if r.outcome == "ok"
    )
    await store.close()


async def test_all_providers_failing_gives_the_offline_tier_marked_as_fallback(
    kit: Kit, tmp_path: Path
) -> None:
    kit.server.faults.add("http_500", times=None)
    router = kit.router([kit.anthropic(), kit.openai()], mode="hedge")
    engine, store = await engine_for(kit, router, tmp_path)
    s = await engine.handle(TurnInput(ThreadKey("t", "c", "x"), TURNS[1], "m1"))
    assert s.offline and all(c.fallback and c.provider == "offline" for c in s.calls)
    assert any("offline playbook" in note for note in s.notes)
    assert s.situation == "price_objection" and "{" not in s.reply
    await router.aclose()
    outcomes = Counter(r.outcome for r in await store.recent_calls(100))
    assert outcomes["ok"] == len(s.calls)  # the offline answers, logged
    # Each provider tried, then retried once after the other had its turn, until both
    # breakers opened (5 straight failures each); then the offline tier answers at once.
    assert set(outcomes) == {"ok", "error:server"} and outcomes["error:server"] == 10
    assert {b.state for b in router.breakers.values()} == {"open"}
    await store.close()


async def test_breaker_opens_after_five_failures_and_recovers_after_the_cooldown(kit: Kit) -> None:
    a, o = kit.anthropic(), kit.openai()
    fault = kit.server.faults.add("http_500", model=SONNET, times=None)
    router = kit.router(
        [a, o], mode="single", retries_per_provider=0, breaker={"cooldown_s": 0.3}, explore=3
    )
    for _ in range(5):
        assert (await router.complete(request())).call.provider == "openai"
    breaker = router.breakers[a.key]
    assert breaker.state == "open" and kit.server.count(model=SONNET) == 5
    for _ in range(3):  # open: anthropic is skipped
        assert (await router.complete(request())).call.provider == "openai"
    assert kit.server.count(model=SONNET) == 5
    kit.server.faults.remove(fault)
    await asyncio.sleep(0.35)
    # Half-open: one probe goes out alongside the normal request; it succeeds and closes.
    await router.complete(request())
    await router.aclose()
    assert kit.server.count(model=SONNET) == 6
    assert breaker.state == "closed"
    assert router.stats().extra_requests.probes == 1
    assert (await router.complete(request())).call.provider == "anthropic"


async def test_hedge_asks_the_second_provider_only_after_the_delay(kit: Kit) -> None:
    a, o = kit.anthropic(), kit.openai()
    kit.server.faults.add("slow", model=SONNET, delay=3.0)
    router = kit.router([a, o], mode="hedge", hedge_prior_s={"powerful": 0.3})
    started = time.perf_counter()
    result = await router.complete(request())
    elapsed = time.perf_counter() - started
    assert result.call.provider == "openai"
    assert 0.3 <= elapsed < 2.0
    # Time to first token counts from the step's start, the hedge's wait included.
    assert result.call.ttft_ms is not None
    assert 280 <= result.call.ttft_ms <= result.call.ms
    [first] = generations(kit.server, model=SONNET)
    [second] = generations(kit.server, model=GPT4O)
    assert second.started_at - first.started_at >= 0.28
    await kit.server.wait_for(model=SONNET, outcome="client_disconnected")
    assert router.stats().extra_requests.hedges == 1


async def test_hedge_sends_no_second_request_when_the_first_is_fast(kit: Kit) -> None:
    a, o = kit.anthropic(), kit.openai()
    router = kit.router([a, o], mode="hedge", hedge_prior_s={"powerful": 0.3})
    for step in ("capture", "detect", "generate") * 6:
        assert (await router.complete(request(step))).call.provider == "anthropic"
    assert kit.server.count(model=GPT4O) == 0
    stats = router.stats()
    assert stats.extra_requests.hedges == 0 and stats.attempts == 18
    # The delay adapts: the observed p90 TTFT (tiny here) replaces the prior, floored.
    assert router._hedge_delay(router_attempt(router, a), request("detect")) == 0.05


def router_attempt(router: object, provider: object) -> object:
    from engine.llm.router import _Attempt

    return _Attempt(provider)  # type: ignore[arg-type]


async def test_rate_limit_retry_after_is_honoured_within_the_budget(kit: Kit) -> None:
    only = kit.anthropic()
    kit.server.faults.add("rate_limit_429", model=SONNET, retry_after=0.4)
    router = kit.router([only], mode="single", budget_s=3.0)
    started = time.perf_counter()
    result = await router.complete(request())
    assert result.call.provider == "anthropic" and not result.call.fallback
    assert time.perf_counter() - started >= 0.4
    first, second = generations(kit.server, model=SONNET)
    assert first.outcome == "fault:rate_limit_429" and second.outcome == "ok"
    assert second.started_at - first.started_at >= 0.38


async def test_rate_limit_beyond_the_budget_switches_provider_and_cools_down(kit: Kit) -> None:
    a, o = kit.anthropic(), kit.openai()
    kit.server.faults.add("rate_limit_429", model=SONNET, retry_after=30)
    router = kit.router([a, o], mode="single", budget_s=2.0)
    started = time.perf_counter()
    assert (await router.complete(request())).call.provider == "openai"
    assert time.perf_counter() - started < 1.0
    # Retry-After is honoured for later requests too: anthropic is not asked again.
    for _ in range(3):
        assert (await router.complete(request())).call.provider == "openai"
    assert kit.server.count(model=SONNET) == 1
    assert router.stats().rate_limited_for_s[a.key] > 25
    # With no other provider, a 30 s Retry-After cannot fit a 2 s budget: offline, at once.
    lone = kit.router([kit.anthropic(HAIKU)], mode="single", budget_s=2.0)
    kit.server.faults.add("rate_limit_429", model=HAIKU, retry_after=30)
    started = time.perf_counter()
    assert (await lone.complete(request())).call.fallback
    assert time.perf_counter() - started < 1.0


async def test_step_budget_cuts_hanging_providers_and_the_offline_tier_answers(kit: Kit) -> None:
    kit.server.faults.add("hang", times=None)
    router = kit.router([kit.anthropic(), kit.openai()], mode="race", budget_s=0.4)
    started = time.perf_counter()
    result = await router.complete(request("generate"))
    assert result.call.fallback and 0.4 <= time.perf_counter() - started < 1.5
    await kit.server.wait_for(
        lambda s: s.count(outcome="client_disconnected") == 2, timeout=3.0
    )
    await router.aclose()
    assert Counter(r.outcome for r in kit.log.records) == {"error:timeout": 2, "ok": 1}


async def test_stats_add_up(kit: Kit) -> None:
    a, o = kit.anthropic(HAIKU), kit.openai(MINI)
    server = kit.server
    server.faults.add("http_500", model=HAIKU, times=3)
    server.faults.add("malformed_json", model=MINI, times=2)
    server.faults.add("slow", model=MINI, delay=0.15, times=4)
    server.faults.add("rate_limit_429", model=HAIKU, retry_after=0.05, times=1)
    for mode in ("race", "hedge", "single"):
        router = kit.router(
            {"fast": [a, o]}, mode=mode, hedge_prior_s={"fast": 0.05}, budget_s=2.0
        )
        results = await asyncio.gather(
            *(router.complete(request(step, tier="fast")) for step in ("capture", "detect") * 6)
        )
        await router.aclose()
        assert all(not r.call.fallback for r in results)
        stats = router.stats()
        assert sum(stats.outcomes.values()) == stats.attempts
        assert stats.outcomes["win"] == stats.requests == len(results)
    records = kit.log.records
    report = build_report([], records)
    for name, p in report.llm.providers.items():
        assert p.wins + p.cancelled + p.error_count == p.requests, name
    # Every request the server saw is one call record, and the other way round.
    await server.wait_for(lambda s: all(r.outcome for r in generations(s)), timeout=3.0)
    assert len(generations(server)) == len(records)
    served = Counter(r.outcome for r in generations(server))
    logged = Counter(r.outcome for r in records)
    assert logged["error:server"] == served["fault:http_500"] == 3
    assert logged["error:invalid_output"] == served["fault:malformed_json"] == 2
    assert logged["error:rate_limit"] == served["fault:rate_limit_429"] == 1
    answered = served["ok"] + served["fault:slow"] + served["client_disconnected"]
    assert logged["win"] + logged["cancelled"] == answered


async def test_router_never_raises_even_when_a_provider_misbehaves(kit: Kit) -> None:
    class Broken(type(kit.anthropic())):  # type: ignore[misc]
        async def _stream(self, *args: object) -> None:
            raise RuntimeError("a bug in an adapter")

    good = kit.anthropic()
    broken = Broken(good.client, SONNET, good.pool)
    router = kit.router([broken], mode="single")
    result = await router.complete(request())
    assert result.call.fallback and isinstance(result.value, Detection)
    assert isinstance(router.fallback, OfflineProvider)
    await router.aclose()
    assert [r.outcome for r in kit.log.records] == ["error:server", "error:server", "ok"]


async def test_call_records_are_written_on_close_without_waiting_on_the_request_path(
    kit: Kit,
) -> None:
    router = kit.router([kit.anthropic()], mode="single")
    for _ in range(5):
        await router.complete(request())
    assert len(kit.log.records) == 0  # batched, not written inline
    await router.aclose()
    assert len(kit.log.records) == 5
    rec = kit.log.records[0]
    assert rec.outcome == "win" and rec.tokens_in > 0 and rec.cost_usd > 0
    assert rec.prompt.startswith("# step: detect") and "situation" in rec.response
    assert "test-key" not in rec.prompt + rec.response
