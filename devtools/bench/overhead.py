"""`sales-agent bench --overhead`: what the engine itself costs per turn, with providers that
answer at once.

* **overhead**: a turn's wall time minus the time spent inside provider calls (the union of
  the calls' intervals, since capture and detect overlap), measured one turn at a time so no
  other turn's work lands in it; p50 and p99.
* **throughput**: turns per second with many turns in flight, persistence on: SQLite, or
  Postgres with `database_url` (each run on a fresh scratch database, `devtools.bench.pg`),
  where the run also reports the database's load per turn (pg_stat_database and, per table,
  pg_stat_user_tables deltas divided by the turns).
* **memory**: RSS sampled every 1,000 turns over a long run with the caches full; it must stay
  flat once the caches reach their size limits.

Providers: the offline tier (rules, in process), and, where `engine/llm/factory.py` exists,
the real SDK path against the fake LLM server at time_scale 0 (its own thread and loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devtools.fake_llm import FakeLLMServer
from engine.llm.offline import OfflineProvider
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import ResponseCache
from engine.settings import ProviderSettings, Secret, Settings
from storage import open_store

from . import engines, pg
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
    backend: str = "sqlite"
    # Postgres only: the throughput run's pg_stat_database deltas per turn, and per table.
    db_load_per_turn: dict[str, float] = field(default_factory=dict)
    db_tables_per_turn: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "backend": self.backend,
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
            "db_load_per_turn": self.db_load_per_turn,
            "db_tables_per_turn": self.db_tables_per_turn,
        }




async def measure(
    settings: Settings,
    out_dir: Path,
    *,
    provider: str = "offline",
    database_url: str | None = None,
    latency_turns: int = 2000,
    throughput_turns: int = 3000,
    memory_turns: int = 10_000,
    in_flight: int = 32,
    seed: int = 11,
    progress: Callable[[str], None] | None = None,
) -> OverheadResult:
    """Run the three measurements with one kind of provider; each on a fresh store: a new
    SQLite file in `out_dir`, or, with `database_url` (a Postgres server), a new database.

    Latency and throughput run with the exact cache only: a local embedding is engine work
    (milliseconds of CPU), measured by the cache's own lookup figures instead. The memory run
    has both tiers on (`settings.embedder`), so entries *and* vectors fill up.
    """
    say = progress or (lambda _msg: None)
    backend = "postgres" if database_url else "sqlite"
    name = f"{provider}/{backend}"
    full = replace(settings, cache=True)
    base = replace(full, embedder="none")
    total = max(memory_turns, latency_turns, throughput_turns, 300)
    workload = generate(seed=seed, threads=max(50, total // 6), turns=total)
    say(f"overhead[{name}]: workload of {len(workload.turns)} turns ready")

    def fresh(run: str) -> contextlib.AbstractContextManager[Settings]:
        return _fresh_store(base, out_dir / f"overhead-{provider}-{run}.db", database_url)

    # 1. Overhead, one turn at a time.
    # Wall time is what a rep waits for; CPU time (all threads of the process) is the same
    # without the scheduling noise of a shared machine.
    samples: list[tuple[float, float, float]] = []
    with fresh("latency") as where:
        async with _engine(where, provider) as eng:
            warm = 100 if latency_turns > 100 else latency_turns // 3  # a short run: a third
            timed = await drive(
                eng.stream, workload.turns[:latency_turns], in_flight=1, run="lat"
            )
            samples = [(t.ms, t.provider_ms, t.cpu_ms - t.provider_cpu_ms) for t in timed[warm:]]
    overhead = quantiles(total - inside for total, inside, _ in samples)
    say(f"overhead[{name}]: p50 {overhead['p50']:.3f} ms p99 {overhead['p99']:.3f} ms")

    # 2. Throughput, many turns in flight; on Postgres also the database's work per turn.
    load: dict[str, float] = {}
    tables: dict[str, dict[str, float]] = {}
    with fresh("throughput") as where:
        url = str(where.database_url) if where.database_url else None
        async with _engine(where, provider) as eng:
            turns = workload.turns[:throughput_turns]
            before = (pg.database_counters(url), pg.table_counters(url)) if url else None
            await drive(eng.stream, turns[:200], in_flight=in_flight, run="warm")
            started = time.perf_counter()
            await drive(eng.stream, turns, in_flight=in_flight, run="tp")
            tps = len(turns) / (time.perf_counter() - started)
        if url and before is not None:
            # After the pool closed: its backends publish their last counters as they exit.
            pg.wait_idle(url)
            driven = len(turns) + 200
            load = pg.per_turn(before[0], pg.database_counters(url), driven)
            tables = pg.tables_per_turn(before[1], pg.table_counters(url), driven)
    say(f"overhead[{name}]: {tps:.0f} turns/s with {in_flight} in flight")
    if load:
        say(f"overhead[{name}]: per turn {pg.describe(load)}")

    # 3. Memory over a long run, caches full.
    rss: list[tuple[int, float]] = []
    cache_stats: dict[str, Any] = {}
    if memory_turns <= 0:
        say(f"overhead[{name}]: memory run skipped")
    with _fresh_store(full, out_dir / f"overhead-{provider}-memory.db", database_url) as where:
        async with _engine(where, provider) as eng:
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
                say(f"overhead[{name}]: RSS {rss[0][1]:.0f} -> {rss[-1][1]:.0f} MiB")
    return OverheadResult(
        provider=provider,
        backend=backend,
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
        db_load_per_turn=load,
        db_tables_per_turn=tables,
    )


@contextlib.contextmanager
def _fresh_store(settings: Settings, db: Path, database_url: str | None) -> Iterator[Settings]:
    """`settings` pointing at an empty store: `db` removed first, or a scratch database on
    the server of `database_url`, dropped afterwards."""
    if database_url is None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        yield replace(settings, db_path=db, database_url=None)
        return
    with pg.scratch_database(database_url) as url:
        yield replace(settings, database_url=Secret(url))


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


@contextlib.asynccontextmanager
async def _engine(settings: Settings, provider: str) -> AsyncIterator[Engine]:
    """An engine on the settings' store (as app.py opens it: `storage.open_store`, the
    store's thread locks) with the chosen zero-latency provider."""
    server: FakeLLMServer | None = None
    if provider == "offline":
        store = await open_store(
            settings.database_url or settings.db_path, history_window=settings.history_window
        )
        closers: list[Callable[[], Awaitable[None]]] = [store.close]
        try:
            cache: ResponseCache | None = await engines.build_cache(settings, store)
            if cache is not None and hasattr(cache, "aclose"):
                closers.append(cache.aclose)
            engine = Engine(
                llm=TimedProvider(OfflineProvider()),
                store=store,
                settings=settings,
                playbook=default_playbook(),
                cache=cache,
                calls=store,
                locks=store.thread_locks,
            )
        except BaseException:
            for close in reversed(closers):
                await close()
            raise
        stack = engines.Built(engine, store, cache, None, closers)
    else:
        # The real SDK path (router, pooled HTTP, streaming, parsing) against the fake
        # server with no delays, on its own thread and loop.
        server = FakeLLMServer(latency_profile="zero", time_scale=0.0)
        url = server.start_in_thread()
        key = "bench-key"
        settings = replace(
            settings,
            providers=(
                ProviderSettings.native("anthropic", key, url),
                ProviderSettings.native("openai", key, url + "/v1"),
            ),
            router="single",
            tiering=False,
            embedder="none" if settings.embedder == "openai" else settings.embedder,
        )
        try:
            stack = await engines.build(settings, wrap=TimedProvider)
        except BaseException:
            server.stop()
            raise
    try:
        yield stack.engine
    finally:
        try:
            await stack.close()
        finally:
            if server is not None:
                server.stop()


def run(settings: Settings, out_dir: Path, **kwargs: Any) -> OverheadResult:
    return asyncio.run(measure(settings, out_dir, **kwargs))


__all__ = ["OverheadResult", "Workload", "measure", "run"]
