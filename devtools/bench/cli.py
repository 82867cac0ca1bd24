"""`sales-agent bench`: the optimisation ladder against the fake LLM server, or, with
`--overhead`, the engine's own cost per turn, throughput and memory.

The product's command line imports this module only when `bench` is asked for, and hands it
the arguments after `bench`: the benchmark's options live here, beside the code they drive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from engine.settings import Settings

    from .ladder import Config

DEFAULT_OUT = Path("bench-out")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sales-agent bench",
        description="The latency ladder against the fake LLM server, or (--overhead) the "
        "engine's own cost per turn, throughput and memory.",
    )
    p.add_argument(
        "--overhead",
        action="store_true",
        help="engine overhead, throughput and memory with zero-latency providers",
    )
    p.add_argument(
        "--turns",
        type=int,
        help="turns in the workload (default 336; --overhead: 2,000 one at a time and 3,000 "
        "in flight, 600 and 1,000 for the SDK path)",
    )
    p.add_argument(
        "--threads", type=int, help="threads in the workload (default: one per 6 turns, 56)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.1,
        help="multiply every modelled delay (figures stay in model time)",
    )
    p.add_argument("--in-flight", type=int, default=8, help="turns in flight at once")
    p.add_argument("--rows", help="comma-separated subset of rows (baseline,P1,...,B3)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    p.add_argument("--json", type=Path, help="also write the JSON document here")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument(
        "--memory-turns", type=int, default=10_000, help="--overhead: turns of the memory run"
    )
    p.add_argument(
        "--instances",
        help="turns/s with N real `sales-agent run` processes on one Postgres, for each N of "
        "this comma-separated list (e.g. 1,2,3), after one on SQLite; --turns messages "
        "(default 600) over --threads threads",
    )
    p.add_argument(
        "--database-url",
        help="--overhead: also run on Postgres; --instances: the Postgres to use. Each run "
        "gets a fresh scratch database on this server (postgresql://...; default "
        "DATABASE_URL), or 'auto' for a throwaway server (--instances: the default)",
    )
    return p


def main(argv: Sequence[str], settings: Settings, stdout: TextIO) -> int:
    args = parser().parse_args(argv)
    args.overhead_turns = args.turns
    if args.turns is None:
        args.turns = 600 if args.instances else 336
    if args.threads is None:
        args.threads = max(1, round(args.turns / 6))
    args.command_line = "sales-agent bench " + " ".join(shlex.quote(a) for a in argv)
    if args.turns < 1 or args.threads < 1 or args.turns < args.threads:
        print("sales-agent: error: need --turns >= --threads >= 1", file=sys.stderr)
        return 2
    if args.time_scale < 0 or args.in_flight < 1:
        print("sales-agent: error: need --time-scale >= 0 and --in-flight >= 1", file=sys.stderr)
        return 2
    import logging

    from .ladder import select
    from .stats import pin_blas_threads

    try:
        configs = select(args.rows)
    except ValueError as exc:
        print(f"sales-agent: error: {exc}", file=sys.stderr)
        return 2
    blas = pin_blas_threads(1)
    # Racing cancels losers mid-stream; the fake server's aiohttp front-end logs each one.
    quiet = logging.getLogger("aiohttp.server")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        if args.instances:
            return instances(args, settings, stdout)
        if args.overhead:
            return overhead(args, settings, stdout)
        return ladder(args, settings, stdout, configs)
    finally:
        quiet.setLevel(level)
        if blas is not None:
            pin_blas_threads(blas)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ladder(
    args: argparse.Namespace, settings: Settings, stdout: TextIO, configs: tuple[Config, ...]
) -> int:
    from engine.settings import Settings

    from . import report
    from .harness import Bench, RowResult
    from .workload import generate

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    workload = generate(seed=args.seed, threads=args.threads, turns=args.turns)
    _say(f"bench: workload {workload.summary()}")
    results: list[RowResult] = []
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    base = Settings(log_level=settings.log_level)
    with Bench(workload, time_scale=args.time_scale, seed=args.seed) as bench:
        for config in configs:
            result = asyncio.run(bench.run_row(config, base, out / "db", in_flight=args.in_flight))
            results.append(result)
            m = result.metrics()
            rows.append(m)
            _say(
                f"bench: {config.name:15} p50 {m['p50']:7.0f}  p95 {m['p95']:7.0f}  "
                f"p99 {m['p99']:7.0f} model ms  ({m['wall_s']:.1f} s)"
            )
    report.add_ratios(rows)
    doc = report.document(
        rows,
        workload=workload.summary(),
        time_scale=args.time_scale,
        in_flight=args.in_flight,
        command=args.command_line.strip(),
        goal=report.goal(rows),
    )
    latencies = {r.config.name: r.latencies() for r in results}
    report.write_json(doc, out / "ladder.json", latencies)
    if args.json:
        report.write_json(doc, args.json, latencies)
    m = doc["machine"]
    heading = (
        f"Ladder on {m['nproc']} × {m['cpu']}, {m['date']}: {workload.summary()['turns']} "
        f"turns / {workload.summary()['threads']} threads, {args.in_flight} in flight, "
        f"time scale {args.time_scale}; model milliseconds"
    )
    text = "\n".join([heading, "", report.table(rows), "", report.legend(rows), ""])
    g = doc["goal"]
    if g.get("evaluated"):
        text += (
            f"\nGoal (best beyond row p95 <= 0.75 × P5 at <= 1.15 requests/step): "
            f"{g['best']} at {g['p95_vs_p5']} × P5, {g['requests_per_step']} req/step -> "
            f"{'met' if g['met'] else 'not met'}\n"
        )
    (out / "ladder.md").write_text(text, encoding="utf-8")
    if not args.no_plot and latencies:
        try:
            png = report.plot(
                latencies,
                out / "ladder.png",
                title="Sales Agent: end-to-end latency per turn, by configuration",
                subtitle=heading,
            )
        except ModuleNotFoundError as exc:
            if exc.name != "matplotlib":
                raise
            _say("bench: no plot: the PNG needs the bench extra (pip install 'sales-agent[bench]')")
        else:
            _say(f"bench: plot {png}")
    _say(f"bench: {time.perf_counter() - started:.0f} s; JSON {out / 'ladder.json'}")
    print(text, file=stdout)
    return 0


def instances(args: argparse.Namespace, settings: Settings, stdout: TextIO) -> int:
    from . import instances as bench

    try:
        counts = [int(n) for n in args.instances.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or max(counts) > 10:
        # Slack opens at most 10 Socket Mode connections per app.
        print("sales-agent: error: --instances: numbers from 1 to 10, e.g. 1,2,3", file=sys.stderr)
        return 2
    url: str | None = args.database_url or (
        str(settings.database_url) if settings.database_url else None
    )
    if url is None or url == "auto":
        _say("bench: starting a throwaway Postgres server for the run")
        with bench.auto_server() as server:
            return _instances(args, stdout, counts, server)
    if not url.startswith(("postgresql://", "postgres://")):
        print("sales-agent: error: --database-url: postgresql://... or auto", file=sys.stderr)
        return 2
    return _instances(args, stdout, counts, bench.Server(url))


def _instances(
    args: argparse.Namespace, stdout: TextIO, counts: list[int], server: Any
) -> int:
    from . import instances as bench
    from . import pg, report

    out: Path = args.out
    results = []
    for backend, n in [("sqlite", 1), *(("postgres", n) for n in counts)]:
        result = asyncio.run(
            bench.measure(
                backend=backend,
                instances=n,
                count=args.turns,
                threads=args.threads,
                out_dir=out / "instances" / f"{backend}-{n}",
                server=server,
                say=_say,
            )
        )
        results.append(result.as_dict())
    doc = {
        "machine": report.machine(),
        "command": args.command_line.strip(),
        "database": pg.redact(server.url),
        "settings": bench.passed_settings(),
        "results": results,
    }
    text = bench.table(doc)
    for path in (out / "instances.json", args.json):
        if path is not None:
            path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(text, file=stdout)
    return 0


def overhead(args: argparse.Namespace, settings: Settings, stdout: TextIO) -> int:
    from . import pg

    url: str | None = args.database_url or (
        str(settings.database_url) if settings.database_url else None
    )
    if url == "auto":
        _say("bench: starting a throwaway Postgres server for the run")
        with pg.auto_server() as server_url:
            return _overhead(args, settings, stdout, server_url)
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        print("sales-agent: error: --database-url: postgresql://... or auto", file=sys.stderr)
        return 2
    return _overhead(args, settings, stdout, url)


def _overhead(
    args: argparse.Namespace, settings: Settings, stdout: TextIO, database_url: str | None
) -> int:
    from engine.settings import Settings

    from . import pg, report
    from .overhead import measure

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results = []
    # SQLite first, then the same runs on Postgres: the ratios are within one run.
    for url in (None, database_url) if database_url else (None,):
        for provider in ("offline", "fake-sdk"):
            offline = provider == "offline"
            n = args.overhead_turns
            # The memory run (10,000 turns, both cache tiers full) needs no second provider:
            # the SDK path's pools are fixed-size; it gets the latency and throughput runs only.
            results.append(
                asyncio.run(
                    measure(
                        Settings(log_level=settings.log_level, embedder="minilm"),
                        out / "db",
                        provider=provider,
                        database_url=url,
                        memory_turns=args.memory_turns if offline else 0,
                        throughput_turns=n or (3000 if offline else 1000),
                        latency_turns=n or (2000 if offline else 600),
                        seed=args.seed,
                        progress=_say,
                    )
                ).as_dict()
            )
    doc = {
        "machine": report.machine(),
        "command": args.command_line.strip(),
        "database": pg.redact(database_url) if database_url else None,
        "results": results,
    }
    (out / "overhead.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(overhead_table(doc), file=stdout)
    return 0


def overhead_table(doc: dict[str, Any]) -> str:
    from . import pg

    m = doc["machine"]
    lines = [
        f"Engine overhead on {m['nproc']} × {m['cpu']}, {m['date']} (persistence on, caches on)",
        "",
        "| providers | store | overhead p50 | overhead p99 | CPU overhead p50 | CPU overhead p99 "
        "| turns/s | RSS start → end (MiB) | growth after 2,000 turns |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        o, c, rss = r["overhead_ms"], r["overhead_cpu_ms"], r["rss_mb"]
        memory, growth = "not run", "–"
        if len(rss) > 1:
            memory = (
                f"{rss[0]['rss_mb']:.0f} → {rss[-1]['rss_mb']:.0f} over {rss[-1]['turns']:,} turns"
            )
        if r.get("rss_growth_after_2000_mb") is not None:
            growth = f"{r['rss_growth_after_2000_mb']:+.1f} MiB"
        lines.append(
            f"| {r['provider']} | {r.get('backend', 'sqlite')} | {o['p50']:.3f} ms | "
            f"{o['p99']:.3f} ms | {c['p50']:.3f} ms | {c['p99']:.3f} ms | "
            f"{r['throughput_turns_per_s']:.0f} ({r['in_flight']} in flight) | "
            f"{memory} | {growth} |"
        )
    lines.append("")
    lines += _backend_ratios(doc["results"])
    for r in doc["results"]:
        load = r.get("db_load_per_turn")
        if load:
            lines.append(f"Postgres load per turn ({r['provider']}): {pg.describe(load)}")
            scans = {
                t: v for t, v in r.get("db_tables_per_turn", {}).items() if v.get("seq_tup_read")
            }
            for table, v in sorted(scans.items(), key=lambda kv: -kv[1]["seq_tup_read"]):
                lines.append(
                    f"  {table}: {v['seq_scan']:.2f} sequential scans reading "
                    f"{v['seq_tup_read']:.0f} rows per turn"
                )
    for r in doc["results"]:
        if len(r["rss_mb"]) > 1:
            lines.append(
                f"RSS every 1,000 turns ({r['provider']}, {r.get('backend', 'sqlite')}): "
                + " ".join(f"{s['rss_mb']:.0f}" for s in r["rss_mb"])
                + " MiB"
            )
        c = r.get("cache") or {}
        if c.get("lookup_ms"):
            lines.append(
                f"cache after the memory run: {c.get('size')}/{c.get('capacity')} entries, "
                f"{c.get('vectors')} vectors ({c.get('embedder')}), {c.get('evictions')} "
                f"evictions; lookup p50/p99 {c['lookup_ms']['p50']:.2f}/"
                f"{c['lookup_ms']['p99']:.2f} ms, with a local embedding "
                f"{c['lookup_ms_embedded']['p50']:.2f}/{c['lookup_ms_embedded']['p99']:.2f} ms"
            )
    return "\n".join(lines)


def _backend_ratios(results: list[dict[str, Any]]) -> list[str]:
    """Postgres against SQLite for each provider measured on both, within this run."""
    by = {(r["provider"], r.get("backend", "sqlite")): r for r in results}
    lines = []
    for (provider, backend), pg_row in by.items():
        lite = by.get((provider, "sqlite"))
        if backend != "postgres" or lite is None:
            continue
        o, lo = pg_row["overhead_ms"], lite["overhead_ms"]
        lines.append(
            f"Postgres / SQLite ({provider}): overhead p50 × {o['p50'] / lo['p50']:.2f}, "
            f"p99 × {o['p99'] / lo['p99']:.2f}, turns/s × "
            f"{pg_row['throughput_turns_per_s'] / lite['throughput_turns_per_s']:.2f}"
        )
    return lines
