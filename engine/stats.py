"""One stats report for `sales-agent stats` and `/agent-stats`, built from what the store logged.

Figures come from the last `window` turns and calls in SQLite, so they survive restarts;
live parts (cache size, circuit states) come from the components that own them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ports import CallRecord, TurnRecord
from .taxonomy import STEPS


def percentiles(values: Iterable[float]) -> dict[str, float]:
    data = sorted(values)
    if not data:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    return {f"p{q}": round(quantile(data, q / 100), 3) for q in (50, 95, 99)}


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of non-empty sorted values; the project's one quantile."""
    # Linear interpolation between closest ranks, as numpy's default does.
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class StatsReport:
    turns: int
    cache: dict[str, Any]
    reconcile: dict[str, Any]
    llm: dict[str, Any]
    latency: dict[str, Any]
    feedback: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "cache": self.cache,
            "reconcile": self.reconcile,
            "llm": self.llm,
            "latency": self.latency,
            "feedback": self.feedback,
            **self.extra,
        }


def build_report(
    turns: Sequence[TurnRecord],
    calls: Sequence[CallRecord],
    *,
    live: Mapping[str, Mapping[str, Any]] | None = None,
) -> StatsReport:
    live = live or {}
    n = len(turns)
    tiers = Counter(t.cache for t in turns)
    hits = tiers["exact"] + tiers["semantic"]
    lookups = n - tiers["bypass"]
    cache = {
        "lookups": lookups,
        "exact_hits": tiers["exact"],
        "semantic_hits": tiers["semantic"],
        "hit_rate": _rate(hits, lookups),
        "exact_hit_rate": _rate(tiers["exact"], lookups),
        "semantic_hit_rate": _rate(tiers["semantic"], lookups),
        "hit_latency_ms": percentiles(
            t.step_ms.get("cache", 0.0) for t in turns if t.cache in ("exact", "semantic")
        ),
        **dict(live.get("cache", {})),
    }
    analysed = [t for t in turns if t.cache in ("miss", "bypass")]
    triggers = Counter(trigger for t in analysed for trigger in t.triggers)
    reconcile = {
        "turns": len(analysed),
        "reconciled": sum(t.reconciled for t in analysed),
        "rate": _rate(sum(t.reconciled for t in analysed), len(analysed)),
        "triggers": dict(sorted(triggers.items())),
    }
    latency: dict[str, Any] = {"end_to_end": percentiles(t.latency_ms for t in turns)}
    for step in (*STEPS, "reconcile", "cache"):
        values = [t.step_ms[step] for t in turns if step in t.step_ms]
        if values:
            latency[step] = percentiles(values)
    rated = [t.feedback for t in turns if t.feedback]
    feedback = {
        "rated": len(rated),
        "positive": sum(1 for f in rated if f > 0),
        "positive_share": _rate(sum(1 for f in rated if f > 0), len(rated)),
    }
    return StatsReport(
        turns=n,
        cache=cache,
        reconcile=reconcile,
        llm=_llm(calls, live.get("llm", {})),
        latency=latency,
        feedback=feedback,
    )


def _llm(calls: Sequence[CallRecord], live: Mapping[str, Any]) -> dict[str, Any]:
    providers: dict[str, dict[str, Any]] = {}
    for call in calls:
        p = providers.setdefault(
            f"{call.provider}/{call.model}",
            {
                "requests": 0,
                "wins": 0,
                "cancelled": 0,
                "errors": Counter(),
                "ms": [],
                "tokens_in": 0,
                "tokens_out": 0,
                "cost_usd": 0.0,
            },
        )
        p["requests"] += 1
        if call.outcome in ("win", "ok"):
            p["wins"] += 1
            p["ms"].append(call.ms)
        elif call.outcome == "cancelled":
            p["cancelled"] += 1
        else:
            p["errors"][call.outcome.removeprefix("error:")] += 1
        p["tokens_in"] += call.tokens_in
        p["tokens_out"] += call.tokens_out
        p["cost_usd"] += call.cost_usd
    out: dict[str, Any] = {}
    for name, p in sorted(providers.items()):
        errors = dict(p.pop("errors"))
        ms = p.pop("ms")
        out[name] = p | {
            "errors": errors,
            "error_count": sum(errors.values()),
            "latency_ms": percentiles(ms),
            "cost_usd": round(p["cost_usd"], 6),
        }
    return {"providers": out, **dict(live)}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
