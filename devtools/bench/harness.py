"""Run the ladder: each configuration of the same engine against the fake LLM server.

The fake server runs on its own event loop in a daemon thread (`start_in_thread`), so its
modelled delays do not share the engine's loop. Delays are shrunk by `time_scale`; figures are
reported in model time: the time spent inside provider calls is divided by the scale, the
engine's own time (cache lookups, embedding, SQLite, Python) is kept as measured.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devtools.fake_llm import FakeLLMServer, RequestRecord
from engine.settings import ProviderSettings, Settings

from . import engines
from .answerer import make_answerer
from .drive import Timed, TimedProvider, drive
from .ladder import Config
from .stats import quantiles, rate
from .workload import Workload

LATENCY_FILE = Path(__file__).with_name("latency.toml")
PROFILE = "bench"

# USD per million tokens (input, output): the providers' list prices, by model class.
PRICES: Mapping[str, tuple[float, float]] = {
    "sonnet": (3.00, 15.00),
    "haiku": (0.80, 4.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "embedding": (0.02, 0.0),
    "default": (2.50, 10.00),
}
GENERATION = ("messages", "chat")


@dataclass
class RowResult:
    config: Config
    timed: list[Timed]
    records: list[RequestRecord]
    time_scale: float
    wall_s: float
    speculation: dict[str, int] = field(default_factory=dict)
    model_class: Callable[[str], str] = lambda m: "default"
    connections: int = 0
    error: str | None = None

    def latencies(self) -> list[float]:
        """End-to-end per turn, model milliseconds, arrival order."""
        return [t.model_ms(self.time_scale) for t in self.timed]

    def metrics(self) -> dict[str, Any]:
        c = self.config
        if self.error is not None:
            return {"name": c.name, "adds": c.adds, "group": c.group, "error": self.error}
        n = len(self.timed)
        lat = self.latencies()
        tiers = Counter(t.suggestion.cache for t in self.timed)
        hits = [
            m
            for m, t in zip(lat, self.timed, strict=True)
            if t.suggestion.cache in ("exact", "semantic")
        ]
        misses = [t for t in self.timed if t.suggestion.cache in ("miss", "bypass")]
        miss_ms = [t.model_ms(self.time_scale) for t in misses]
        steps = sum(len(t.suggestion.calls) for t in self.timed)
        fallback = sum(1 for t in self.timed if t.suggestion.offline)
        gen = [r for r in self.records if r.endpoint in GENERATION]
        embed = [r for r in self.records if r.endpoint == "embeddings"]
        tokens_in = sum(r.input_tokens for r in gen)
        tokens_out = sum(_billed_output(r) for r in gen)
        cost = sum(self._cost(r) for r in [*gen, *embed])
        step_ms: dict[str, dict[str, float]] = {}
        scale = self.time_scale if self.time_scale > 0 else 1.0
        for step in ("capture", "detect", "reconcile", "generate"):
            values = [
                t.suggestion.step_ms[step] / scale for t in misses if step in t.suggestion.step_ms
            ]
            if values:
                step_ms[step] = {k: round(v, 1) for k, v in quantiles(values).items()}
        outcomes = Counter(r.outcome or "unfinished" for r in gen)
        return {
            "name": c.name,
            "adds": c.adds,
            "group": c.group,
            "settings": dict(c.settings),
            "providers": list(c.providers),
            "pool": c.pool,
            "turns": n,
            **{k: round(v, 1) for k, v in quantiles(lat).items()},
            "miss_p95": round(quantiles(miss_ms)["p95"], 1) if miss_ms else None,
            "hit_p99": round(quantiles(hits)["p99"], 2) if hits else None,
            "hit_rate": {
                "exact": round(rate(tiers["exact"], n), 3),
                "semantic": round(rate(tiers["semantic"], n), 3),
                "total": round(rate(tiers["exact"] + tiers["semantic"], n), 3),
            },
            "reconcile_rate": round(
                rate(sum(t.suggestion.reconciled for t in misses), len(misses)), 3
            ),
            "llm_steps_per_turn": round(rate(steps, n), 3),
            "requests_per_turn": round(rate(len(gen), n), 3),
            "requests_per_step": round(rate(len(gen), steps), 3),
            "request_outcomes": dict(outcomes),
            "embedding_requests": len(embed),
            "tokens_in_per_turn": round(rate(tokens_in, n), 1),
            "tokens_out_per_turn": round(rate(tokens_out, n), 1),
            "cost_per_turn_usd": round(rate(cost, n), 6),
            "fallback_turns": fallback,
            # What a rep waits for before reading anything: the first reply delta of
            # Engine.stream (a cache hit or an offline answer: the whole card).
            "first_text_ms": {
                k: round(v, 1)
                for k, v in quantiles([t.visible_model_ms(self.time_scale) for t in self.timed])
                .items()
            }
            if self.timed
            else None,
            "step_ms": step_ms,
            "speculation": dict(self.speculation),
            "connections_opened": self.connections,
            "wall_s": round(self.wall_s, 2),
        }

    def _cost(self, r: RequestRecord) -> float:
        price_in, price_out = PRICES.get(self.model_class(r.model or ""), PRICES["default"])
        return (r.input_tokens * price_in + _billed_output(r) * price_out) / 1e6


def _billed_output(r: RequestRecord) -> int:
    """Output tokens a provider bills: all of a finished answer; of one cut off, what streamed."""
    if r.outcome == "ok":
        return r.output_tokens
    return min(r.output_tokens, r.chunks_sent * 4)


class Bench:
    """The fake server (own thread) and the workload, shared by every row of one run."""

    def __init__(self, workload: Workload, *, time_scale: float, seed: int) -> None:
        self.workload = workload
        self.time_scale = time_scale
        self.seed = seed
        self.server = FakeLLMServer(
            make_answerer(workload),
            latency_profile=PROFILE,
            time_scale=time_scale,
            seed=seed,
            latency_file=str(LATENCY_FILE),
        )
        self.base_url = ""
        self.factory: engines.LlmFactory | None = None  # None: engine.llm.factory.build_llm

    def __enter__(self) -> Bench:
        self.base_url = self.server.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def settings(self, config: Config, base: Settings, db: Path) -> Settings:
        key = "bench-key"
        fields: dict[str, Any] = {
            "db_path": db,
            "providers": tuple(
                ProviderSettings.native(kind, key, url)
                for kind, url in (
                    ("anthropic", self.base_url),
                    ("openai", self.server.openai_base_url),
                )
                if kind in config.providers
            ),
        }
        fields.update(config.settings)
        return replace(base, **fields)

    async def run_row(
        self,
        config: Config,
        base: Settings,
        out_dir: Path,
        *,
        in_flight: int,
        turns: Sequence[Any] | None = None,
    ) -> RowResult:
        db = out_dir / f"{config.name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        settings = self.settings(config, base, db)
        self.server.reset()
        self.server.reseed(self.seed)
        opened = self.server.connections_opened
        built = await engines.build(
            settings, wrap=TimedProvider, pool=config.pool, factory=self.factory
        )
        try:
            self.server.reset()  # drop the warm-up requests: only turns are counted
            started = time.perf_counter()
            timed = await drive(
                built.engine.stream,
                list(turns if turns is not None else self.workload.turns),
                in_flight=in_flight,
                run=config.name,
            )
            wall = time.perf_counter() - started
            speculation = dict(getattr(built.engine, "speculation", {}))
        finally:
            await built.close()
        await asyncio.sleep(0.05 * max(self.time_scale, 0.1))  # let the server log cut-offs
        profile = self.server.latency.profile
        records = [r for r in self.server.requests if r.endpoint != "models"]
        return RowResult(
            config,
            timed,
            records,
            self.time_scale,
            wall,
            speculation,
            lambda model: profile.model_class(model).name,
            self.server.connections_opened - opened,
        )
