"""`sales-agent bench --overhead`: what the engine itself costs per turn, with providers that
answer at once.

* **overhead**: a turn's wall time minus the time spent inside provider calls (the union of
  the calls' intervals, since capture and detect overlap), measured one turn at a time so no
  other turn's work lands in it; p50 and p99.
* **throughput**: turns per second with many turns in flight, SQLite persistence on.
* **memory**: RSS sampled every 1,000 turns over a long run with the caches full; it must stay
  flat once the caches reach their size limits.

Providers: the offline tier (rules, in process), and, where `engine/llm/factory.py` exists,
the real SDK path against the fake LLM server at time_scale 0 (its own thread and loop).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devtools.fake_llm import FakeLLMServer
from engine.llm.offline import OfflineProvider
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import ResponseCache
from engine.settings import ProviderSettings, Settings
from storage import SqliteStore

from . import engines
from .drive import Timed, TimedProvider, drive
from .stats import quantiles, rss_mb
from .workload import Workload, generate


@dataclass
class OverheadResult:
    provider: str
    turns: int
    overhead_ms: dict[str, float]
    overhead_cpu_ms: dict[str, float]
    provider_ms: dict[str, float]
    turn_ms: dict[str, float]
    throughput_tps: float
    throughput_turns: int
    in_flight: int
    rss_mb: list[tuple[int, float]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "turns": self.turns,
            "overhead_ms": self.overhead_ms,
            "overhead_cpu_ms": self.overhead_cpu_ms,
            "provider_ms": self.provider_ms,
            "turn_ms": self.turn_ms,
            "throughput_turns_per_s": round(self.throughput_tps, 1),
            "throughput_turns": self.throughput_turns,
            "in_flight": self.in_flight,
            "rss_mb": [{"turns": n, "rss_mb": round(mb, 1)} for n, mb in self.rss_mb],
            "rss_growth_mb": round(self.rss_mb[-1][1] - self.rss_mb[0][1], 1)
            if len(self.rss_mb) > 1
            else None,
            # From 2,000 turns on the caches are full (1,000 entries): this must stay ~0.
            "rss_growth_after_2000_mb": round(self.rss_mb[-1][1] - self.rss_mb[2][1], 1)
            if len(self.rss_mb) > 3
            else None,
            "cache": self.cache,
        }




async def measure(
    settings: Settings,
    out_dir: Path,
    *,
    provider: str = "offline",
    latency_turns: int = 2000,
    throughput_turns: int = 3000,
    memory_turns: int = 10_000,
    in_flight: int = 32,
    seed: int = 11,
    progress: Callable[[str], None] | None = None,
) -> OverheadResult:
    """Run the three measurements with one kind of provider; each on a fresh SQLite file.

    Latency and throughput run with the exact cache only: a local embedding is engine work
    (milliseconds of CPU), measured by the cache's own lookup figures instead. The memory run
    has both tiers on (`settings.embedder`), so entries *and* vectors fill up.
    """
    say = progress or (lambda _msg: None)
    full = replace(settings, cache=True)
    base = replace(full, embedder="none")
    total = max(memory_turns, latency_turns, throughput_turns, 300)
    workload = generate(seed=seed, threads=max(50, total // 6), turns=total)
    say(f"overhead[{provider}]: workload of {len(workload.turns)} turns ready")

    # 1. Overhead, one turn at a time.
    # Wall time is what a rep waits for; CPU time (all threads of the process) is the same
    # without the scheduling noise of a shared machine.
    samples: list[tuple[float, float, float]] = []
    async with _engine(base, out_dir / f"overhead-{provider}-latency.db", provider) as eng:
        warm = 100
        timed = await drive(eng.stream, workload.turns[:latency_turns], in_flight=1, run="lat")
        samples = [(t.ms, t.provider_ms, t.cpu_ms - t.provider_cpu_ms) for t in timed[warm:]]
    overhead = quantiles(total - inside for total, inside, _ in samples)
    say(f"overhead[{provider}]: p50 {overhead['p50']:.3f} ms p99 {overhead['p99']:.3f} ms")

    # 2. Throughput, many turns in flight.
    async with _engine(base, out_dir / f"overhead-{provider}-throughput.db", provider) as eng:
        turns = workload.turns[:throughput_turns]
        await drive(eng.stream, turns[:200], in_flight=in_flight, run="warm")
        started = time.perf_counter()
        await drive(eng.stream, turns, in_flight=in_flight, run="tp")
        tps = len(turns) / (time.perf_counter() - started)
    say(f"overhead[{provider}]: {tps:.0f} turns/s with {in_flight} in flight")

    # 3. Memory over a long run, caches full.
    rss: list[tuple[int, float]] = []
    cache_stats: dict[str, Any] = {}
    if memory_turns <= 0:
        say(f"overhead[{provider}]: memory run skipped")
    async with _engine(full, out_dir / f"overhead-{provider}-memory.db", provider) as eng:
        count = 0

        def sample(_t: Timed) -> None:
            nonlocal count
            count += 1
            if count % 1000 == 0:
                gc.collect()
                rss.append((count, rss_mb()))

        gc.collect()
        rss.append((0, rss_mb()))
        if memory_turns > 0:
            await drive(
                eng.stream,
                workload.turns[:memory_turns],
                in_flight=in_flight,
                run="mem",
                on_done=sample,
                keep=False,
            )
            cache_stats = eng.cache.stats().to_json() if eng.cache is not None else {}
            say(f"overhead[{provider}]: RSS {rss[0][1]:.0f} -> {rss[-1][1]:.0f} MiB")
    return OverheadResult(
        provider=provider,
        turns=len(samples),
        overhead_ms=overhead,
        overhead_cpu_ms=quantiles(cpu for _, _, cpu in samples),
        provider_ms=quantiles(inside for _, inside, _ in samples),
        turn_ms=quantiles(total for total, _, _ in samples),
        throughput_tps=tps,
        throughput_turns=len(turns),
        in_flight=in_flight,
        rss_mb=rss,
        cache=_cache_figures(cache_stats),
    )


def _cache_figures(stats: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "size",
        "capacity",
        "vectors",
        "embedder",
        "evictions",
        "lookup_ms",
        "lookup_ms_exact_hits",
        "lookup_ms_embedded",
        "since_start",
    )
    return {k: stats[k] for k in keep if k in stats}


class _engine:
    """A fresh engine on a fresh SQLite file, with the chosen zero-latency provider."""

    def __init__(self, settings: Settings, db: Path, provider: str) -> None:
        self.settings = replace(settings, db_path=db)
        self.provider = provider
        self._stack: engines.Built | None = None
        self._server: FakeLLMServer | None = None

    async def __aenter__(self) -> Engine:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.settings.db_path) + suffix).unlink(missing_ok=True)
        if self.provider == "offline":
            store = await SqliteStore.open(
                self.settings.db_path, history_window=self.settings.history_window
            )
            cache: ResponseCache | None = await engines.build_cache(self.settings, store)
            closers: list[Callable[[], Awaitable[None]]] = [store.close]
            if cache is not None and hasattr(cache, "aclose"):
                closers.append(cache.aclose)
            engine = Engine(
                llm=TimedProvider(OfflineProvider()),
                store=store,
                settings=self.settings,
                playbook=default_playbook(),
                cache=cache,
                calls=store,
            )
            self._stack = engines.Built(engine, store, cache, None, closers)
        else:
            # The real SDK path (router, pooled HTTP, streaming, parsing) against the fake
            # server with no delays, on its own thread and loop.
            self._server = FakeLLMServer(latency_profile="zero", time_scale=0.0)
            url = self._server.start_in_thread()
            key = "bench-key"
            settings = replace(
                self.settings,
                providers=(
                    ProviderSettings.native("anthropic", key, url),
                    ProviderSettings.native("openai", key, url + "/v1"),
                ),
                router="single",
                tiering=False,
                embedder="none" if self.settings.embedder == "openai" else self.settings.embedder,
            )
            self._stack = await engines.build(settings, wrap=TimedProvider)
        return self._stack.engine

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._stack is not None:
                await self._stack.close()
        finally:
            if self._server is not None:
                self._server.stop()


def run(settings: Settings, out_dir: Path, **kwargs: Any) -> OverheadResult:
    return asyncio.run(measure(settings, out_dir, **kwargs))


__all__ = ["OverheadResult", "Workload", "measure", "run"]
