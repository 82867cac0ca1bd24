"""One stats report for `sales-agent stats`, `/agent-stats` and the ops endpoints.

Figures come from the last `window` turns and calls in SQLite, so they survive restarts;
live parts (cache size, circuit states) come from the components that own them, each as its
own small frozen type defined here. Renderers read attributes; `to_json()` gives the JSON
that `sales-agent stats --json` prints and the ops endpoints serve (field names are its keys,
in order).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .taxonomy import STEPS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from .ports import CallRecord, TurnRecord
    from .settings import RouterMode

JsonObject = dict[str, Any]


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of non-empty sorted values; the project's one quantile."""
    # Linear interpolation between closest ranks, as numpy's default does.
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class _Json:
    """`to_json()` for a dataclass whose field names are its JSON keys."""

    __slots__ = ()

    def to_json(self) -> JsonObject:
        return asdict(cast("DataclassInstance", self))  # every subclass is a dataclass


@dataclass(frozen=True, slots=True)
class Percentiles(_Json):
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles:
        data = sorted(values)
        if not data:
            return cls()
        return cls(*(round(quantile(data, q / 100), 3) for q in (50, 95, 99)))


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99 as JSON, for reports outside the stats report (guard, benchmarks)."""
    return Percentiles.of(values).to_json()


# Live parts, reported by the components that own them -------------------------------------


@dataclass(frozen=True, slots=True)
class CacheCounts(_Json):
    """The response cache's counters since this process started."""

    lookups: int
    exact_hits: int
    semantic_hits: int
    misses: int
    hit_rate: float
    stored: int
    refused_blocked: int
    embed_errors: int


@dataclass(frozen=True, slots=True)
class CacheStats(_Json):
    """The response cache now: its size and settings, evictions, guard rejections, timings."""

    size: int
    capacity: int
    vectors: int
    ttl_s: float
    version: str
    embedder: str
    semantic: str  # "on", or "off: <why>"
    threshold: float | None  # None: no semantic tier
    blocked: int
    evictions: int
    evicted: Mapping[str, int]
    guard_rejections: int
    guard_reasons: Mapping[str, int]
    lookup_ms: Percentiles
    lookup_ms_exact_hits: Percentiles
    lookup_ms_embedded: Percentiles
    since_start: CacheCounts


@dataclass(frozen=True, slots=True)
class TieringStats(_Json):
    """The complexity tiering's decisions since start."""

    decisions: int
    fast: int
    powerful: int
    fast_share: float
    by_step: Mapping[str, Mapping[str, int]]  # step -> complexity -> decisions


@dataclass(frozen=True, slots=True)
class ExtraRequests(_Json):
    """Provider requests beyond one per step, and why."""

    hedges: int
    failovers: int
    retries: int
    probes: int
    per_request: float
    hedge_rate: float


@dataclass(frozen=True, slots=True)
class RouterStats(_Json):
    """The router's live figures (the per-provider figures come from the call log)."""

    mode: RouterMode
    budget_s: float
    requests: int
    attempts: int
    outcomes: Mapping[str, int]  # win, cancelled, error
    extra_requests: ExtraRequests
    fallbacks: int
    budget_exceeded: int
    skipped_open_circuit: int
    circuits: Mapping[str, Mapping[str, Any]]  # provider key -> the breaker's snapshot
    rate_limited_for_s: Mapping[str, float]
    ttft_p90_ms: Mapping[str, Mapping[str, float]]  # provider key -> "step/tier" -> ms
    tier_requests: Mapping[str, int]
    call_log: Mapping[str, int]  # written, dropped


@dataclass(frozen=True, slots=True)
class LlmStats:
    """The LLM stack now: the router (None when the offline tier answers alone), its
    connections, and the tiering policy (None when every step goes to the powerful models)."""

    router: RouterStats | None
    pools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> snapshot
    tiering: TieringStats | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"mode": "offline"}
        if self.router is not None:
            out = self.router.to_json() | {"pools": dict(self.pools)}
        if self.tiering is not None:
            out["tiering"] = self.tiering.to_json()
        return out


# The report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheReport:
    """Cache figures from the logged turns, and the live cache (None when it is off)."""

    lookups: int
    exact_hits: int
    semantic_hits: int
    hit_rate: float
    exact_hit_rate: float
    semantic_hit_rate: float
    hit_latency_ms: Percentiles
    live: CacheStats | None = None

    @property
    def enabled(self) -> bool:
        return self.live is not None

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "lookups": self.lookups,
            "exact_hits": self.exact_hits,
            "semantic_hits": self.semantic_hits,
            "hit_rate": self.hit_rate,
            "exact_hit_rate": self.exact_hit_rate,
            "semantic_hit_rate": self.semantic_hit_rate,
            "hit_latency_ms": self.hit_latency_ms.to_json(),
            "enabled": self.enabled,
        }
        return out | (self.live.to_json() if self.live is not None else {})


@dataclass(frozen=True, slots=True)
class ReconcileReport(_Json):
    turns: int  # analysed turns (not served from the cache)
    reconciled: int
    rate: float
    triggers: Mapping[str, int]


CONTRACT_FAILURES = ("invalid_output", "truncated")


@dataclass(frozen=True, slots=True)
class ContractFailures(_Json):
    """Answers of one provider/model the contract refused: `invalid_output` + `truncated`
    over the requests it answered (those two plus wins; timeouts and the like answered
    nothing), with the most frequent rejection reasons (llm_calls.error), most first."""

    answered: int
    invalid_output: int
    truncated: int
    rate: float
    reasons: Mapping[str, int]

    @classmethod
    def of(cls, calls: Sequence[CallRecord]) -> ContractFailures:
        kinds = Counter(c.outcome.removeprefix("error:") for c in calls)
        answered = kinds["win"] + sum(kinds[k] for k in CONTRACT_FAILURES)
        refused = [c for c in calls if c.outcome.removeprefix("error:") in CONTRACT_FAILURES]
        reasons = Counter(_reason(c.error) for c in refused if c.error)
        return cls(
            answered=answered,
            invalid_output=kinds["invalid_output"],
            truncated=kinds["truncated"],
            rate=_rate(len(refused), answered),
            reasons=dict(reasons.most_common(3)),
        )


def _reason(error: str) -> str:
    """A rejection reason without what it quotes from the answer, so alike reasons count
    together ("detect: unknown situation 'x'" and "... None" are one reason)."""
    general = _SPECIFICS.sub("", error.split(" (", 1)[0])
    return " ".join(general.split())[:80]


# What a contract message quotes from the answer: a repr, None, a number.
_SPECIFICS = re.compile(r"""'[^']*'|"[^"]*"|\bNone\b|-?\b\d+(?:\.\d+)?\b""")


@dataclass(frozen=True, slots=True)
class ProviderReport(_Json):
    """One provider/model's calls in the call log."""

    requests: int
    wins: int
    cancelled: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    errors: Mapping[str, int]  # error kind -> calls
    error_count: int
    latency_ms: Percentiles  # of the calls that answered
    contract: ContractFailures | None = None  # None: the offline tier (nothing was asked)


@dataclass(frozen=True, slots=True)
class LlmReport:
    providers: Mapping[str, ProviderReport]  # "provider/model" -> figures
    live: LlmStats | None = None

    @property
    def contract_failure_rate(self) -> float:
        """Refused answers over answered requests, over every provider."""
        figures = [p.contract for p in self.providers.values() if p.contract is not None]
        answered = sum(c.answered for c in figures)
        return _rate(sum(c.invalid_output + c.truncated for c in figures), answered)

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "providers": {k: p.to_json() for k, p in self.providers.items()},
            "contract_failure_rate": self.contract_failure_rate,
        }
        return out | (self.live.to_json() if self.live is not None else {})


@dataclass(frozen=True, slots=True)
class FeedbackReport(_Json):
    rated: int
    positive: int
    positive_share: float


@dataclass(frozen=True, slots=True)
class StatsReport:
    turns: int
    cache: CacheReport
    reconcile: ReconcileReport
    llm: LlmReport
    latency: Mapping[str, Percentiles]  # end_to_end, then each step that ran
    feedback: FeedbackReport

    def section(self, name: str) -> JsonObject:
        """One section's JSON: cache, reconcile, llm, latency or feedback."""
        match name:
            case "cache":
                return self.cache.to_json()
            case "reconcile":
                return self.reconcile.to_json()
            case "llm":
                return self.llm.to_json()
            case "latency":
                return {step: p.to_json() for step, p in self.latency.items()}
            case "feedback":
                return self.feedback.to_json()
        raise KeyError(name)

    def to_json(self) -> JsonObject:
        sections = ("cache", "reconcile", "llm", "latency", "feedback")
        return {"turns": self.turns} | {name: self.section(name) for name in sections}


def build_report(
    turns: Sequence[TurnRecord],
    calls: Sequence[CallRecord],
    *,
    cache: CacheStats | None = None,
    llm: LlmStats | None = None,
) -> StatsReport:
    n = len(turns)
    tiers = Counter(t.cache for t in turns)
    hits = tiers["exact"] + tiers["semantic"]
    lookups = n - tiers["bypass"]
    cache_report = CacheReport(
        lookups=lookups,
        exact_hits=tiers["exact"],
        semantic_hits=tiers["semantic"],
        hit_rate=_rate(hits, lookups),
        exact_hit_rate=_rate(tiers["exact"], lookups),
        semantic_hit_rate=_rate(tiers["semantic"], lookups),
        hit_latency_ms=Percentiles.of(
            t.step_ms.get("cache", 0.0) for t in turns if t.cache in ("exact", "semantic")
        ),
        live=cache,
    )
    analysed = [t for t in turns if t.cache in ("miss", "bypass")]
    triggers = Counter(trigger for t in analysed for trigger in t.triggers)
    reconciled = sum(t.reconciled for t in analysed)
    reconcile = ReconcileReport(
        turns=len(analysed),
        reconciled=reconciled,
        rate=_rate(reconciled, len(analysed)),
        triggers=dict(sorted(triggers.items())),
    )
    latency = {"end_to_end": Percentiles.of(t.latency_ms for t in turns)}
    for step in (*STEPS, "reconcile", "cache"):
        values = [t.step_ms[step] for t in turns if step in t.step_ms]
        if values:
            latency[step] = Percentiles.of(values)
    rated = [t.feedback for t in turns if t.feedback]
    positive = sum(1 for f in rated if f > 0)
    return StatsReport(
        turns=n,
        cache=cache_report,
        reconcile=reconcile,
        llm=LlmReport(_providers(calls), llm),
        latency=latency,
        feedback=FeedbackReport(len(rated), positive, _rate(positive, len(rated))),
    )


def _providers(calls: Sequence[CallRecord]) -> dict[str, ProviderReport]:
    by_name: dict[str, list[CallRecord]] = {}
    for call in calls:
        by_name.setdefault(f"{call.provider}/{call.model}", []).append(call)
    out: dict[str, ProviderReport] = {}
    for name, group in sorted(by_name.items()):
        answered = [c for c in group if c.outcome in ("win", "ok")]
        errors = Counter(
            c.outcome.removeprefix("error:")
            for c in group
            if c.outcome not in ("win", "ok", "cancelled")
        )
        out[name] = ProviderReport(
            requests=len(group),
            wins=len(answered),
            cancelled=sum(1 for c in group if c.outcome == "cancelled"),
            tokens_in=sum(c.tokens_in for c in group),
            tokens_out=sum(c.tokens_out for c in group),
            cost_usd=round(sum(c.cost_usd for c in group), 6),
            errors=dict(errors),
            error_count=sum(errors.values()),
            latency_ms=Percentiles.of(c.ms for c in answered),
            # The offline tier logs its answers as "ok": nothing was asked of a model.
            contract=None if all(c.outcome == "ok" for c in group) else ContractFailures.of(group),
        )
    return out


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
