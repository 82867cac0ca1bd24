"""The stats report: its JSON keeps the shape `sales-agent stats --json` has always printed,
and its one quantile function agrees with numpy's default."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np

from engine.ports import CallRecord, TurnRecord
from engine.stats import (
    CacheCounts,
    CacheStats,
    ExtraRequests,
    LlmStats,
    Percentiles,
    RouterStats,
    TieringStats,
    build_report,
    quantile,
)

TURNS = [
    TurnRecord(
        1.0, 100.0, {"capture": 10.0, "detect": 9.0, "generate": 40.0}, "miss", False, (), "x", 1
    ),
    TurnRecord(
        2.0, 90.0, {"capture": 3.0, "reconcile": 5.0}, "bypass", True, ("critical_slot",), "x", -1
    ),
    TurnRecord(3.0, 5.0, {"cache": 1.0}, "exact", False, (), "x", None),
]
CALLS = [
    CallRecord(1.0, "capture", "anthropic", "haiku", "fast", "win", 10.0, 5, 6, 0.001),
    CallRecord(1.0, "capture", "openai", "mini", "fast", "error:timeout", 99.0),
]
CACHE = CacheStats(
    size=1,
    capacity=100,
    vectors=1,
    ttl_s=3600.0,
    version="v1",
    embedder="all-MiniLM-L6-v2",
    semantic="on",
    threshold=0.7,
    blocked=0,
    evictions=2,
    evicted={"lru": 2},
    guard_rejections=1,
    guard_reasons={"numbers": 1},
    lookup_ms=Percentiles(1.0, 2.0, 3.0),
    lookup_ms_exact_hits=Percentiles(),
    lookup_ms_embedded=Percentiles(),
    since_start=CacheCounts(3, 1, 0, 2, 0.3333, 2, 0, 0),
)
ROUTER = RouterStats(
    mode="hedge",
    budget_s=8.0,
    requests=3,
    attempts=4,
    outcomes={"win": 3, "cancelled": 0, "error": 1},
    extra_requests=ExtraRequests(1, 0, 0, 0, 0.3333, 0.3333),
    fallbacks=0,
    budget_exceeded=0,
    skipped_open_circuit=0,
    circuits={"openai/mini": {"state": "closed"}},
    rate_limited_for_s={},
    ttft_p90_ms={"anthropic/haiku": {"capture/fast": 120.0}},
    tier_requests={"fast": 3},
    call_log={"written": 4, "dropped": 0},
)
POOLS = {"openai": {"kind": "h1", "warmups": 1}}
TIERING = TieringStats(3, 2, 1, 0.6667, {"capture": {"simple": 2, "complex": 1}})

# The key tree of `sales-agent stats --json` (in order), as printed before the report was typed
# (the pools follow the call log since the router stopped owning them).
SHAPE = {
    "turns": None,
    "cache": [
        "lookups", "exact_hits", "semantic_hits", "hit_rate", "exact_hit_rate",
        "semantic_hit_rate", "hit_latency_ms", "enabled", "size", "capacity", "vectors", "ttl_s",
        "version", "embedder", "semantic", "threshold", "blocked", "evictions", "evicted",
        "guard_rejections", "guard_reasons", "lookup_ms", "lookup_ms_exact_hits",
        "lookup_ms_embedded", "since_start",
    ],
    "reconcile": ["turns", "reconciled", "rate", "triggers"],
    "llm": [
        "providers", "contract_failure_rate", "mode", "budget_s", "requests", "attempts",
        "outcomes", "extra_requests",
        "fallbacks", "budget_exceeded", "skipped_open_circuit", "circuits", "rate_limited_for_s",
        "ttft_p90_ms", "tier_requests", "call_log", "pools", "tiering",
    ],
    "latency": ["end_to_end", "capture", "detect", "generate", "reconcile", "cache"],
    "feedback": ["rated", "positive", "positive_share"],
}  # fmt: skip


def _keys(doc: dict[str, Any]) -> dict[str, list[str] | None]:
    return {k: list(v) if isinstance(v, dict) else None for k, v in doc.items()}


def test_the_json_keeps_the_shape_stats_json_has_always_printed() -> None:
    doc = build_report(TURNS, CALLS, cache=CACHE, llm=LlmStats(ROUTER, POOLS, TIERING)).to_json()
    assert json.loads(json.dumps(doc)) == doc  # plain JSON all the way down
    assert _keys(doc) == SHAPE
    assert list(doc["cache"]["since_start"]) == [
        "lookups", "exact_hits", "semantic_hits", "misses", "hit_rate", "stored",
        "refused_blocked", "embed_errors",
    ]  # fmt: skip
    assert list(doc["llm"]["extra_requests"]) == [
        "hedges", "failovers", "retries", "probes", "per_request", "hedge_rate",
    ]  # fmt: skip
    assert doc["llm"]["providers"]["anthropic/haiku"] == {
        "requests": 1,
        "wins": 1,
        "cancelled": 0,
        "tokens_in": 5,
        "tokens_out": 6,
        "cost_usd": 0.001,
        "errors": {},
        "error_count": 0,
        "latency_ms": {"p50": 10.0, "p95": 10.0, "p99": 10.0},
        # Added with the contract-failure rate: answers the contract refused, of those given.
        "contract": {
            "answered": 1,
            "invalid_output": 0,
            "truncated": 0,
            "rate": 0.0,
            "reasons": {},
        },
    }
    assert doc["llm"]["providers"]["openai/mini"]["errors"] == {"timeout": 1}
    assert doc["llm"]["contract_failure_rate"] == 0.0
    assert doc["llm"]["tiering"] == {
        "decisions": 3,
        "fast": 2,
        "powerful": 1,
        "fast_share": 0.6667,
        "by_step": {"capture": {"simple": 2, "complex": 1}},
    }
    assert doc["cache"]["hit_rate"] == 0.5  # one exact hit in two lookups (bypass is none)
    assert doc["reconcile"] == {
        "turns": 2,
        "reconciled": 1,
        "rate": 0.5,
        "triggers": {"critical_slot": 1},
    }
    assert doc["feedback"] == {"rated": 2, "positive": 1, "positive_share": 0.5}


def test_without_live_parts_the_cache_says_disabled_and_the_llm_has_only_providers() -> None:
    doc = build_report(TURNS, CALLS).to_json()
    assert doc["cache"]["enabled"] is False and "size" not in doc["cache"]
    assert list(doc["llm"]) == ["providers", "contract_failure_rate"]
    offline = build_report([], [], llm=LlmStats(None, tiering=TIERING)).to_json()["llm"]
    assert list(offline) == ["providers", "contract_failure_rate", "mode", "tiering"]
    assert offline["mode"] == "offline"


def test_quantile_interpolates_as_numpy_does() -> None:
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101):
        data = sorted(rng.uniform(0, 500) for _ in range(n))
        for q in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
            assert abs(quantile(data, q) - float(np.percentile(data, q * 100))) < 1e-9
    assert Percentiles.of([]) == Percentiles(0.0, 0.0, 0.0)
    assert Percentiles.of([1.0, 2.0, 3.0, 4.0]).to_json() == {"p50": 2.5, "p95": 3.85, "p99": 3.97}
