"""What the shared Slack rate budget costs: a take on Postgres (`storage.postgres_ratebuckets`)
against one in this process (`engine.ratebuckets.LocalBuckets`), alone and with several
instances taking at once from the same workspace's buckets.

A streamed reply takes twice (start+stop together, then about one append a second), so the
figure to compare is a take's latency against a Slack Web API call's (tens to hundreds of ms
from a data centre). This is the measurement that decides whether Redis earns its place.

    .venv/bin/python -m devtools.pg_rate_budget             # starts a throwaway server
    .venv/bin/python -m devtools.pg_rate_budget --url postgresql://... --takes 2000

Prints a table; writes bench-out/pg-rate-budget.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from engine.ratebuckets import LocalBuckets, RateBuckets
from engine.stats import percentiles
from storage.postgres import PostgresStore

OUT = Path(__file__).resolve().parent.parent / "bench-out" / "pg-rate-budget.json"
# A big allowance, so every take spends a token (the full path) rather than being refused.
LIMITS = {"slack:T1:chat.startStream": 10**9, "slack:T1:chat.stopStream": 10**9}


async def _timed(take: Callable[[], Awaitable[bool]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        assert await take()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _concurrent(buckets: list[RateBuckets], per: int, in_flight: int) -> dict[str, Any]:
    """`in_flight` takes at a time on each instance, all on the same two buckets."""
    ms: list[float] = []

    async def worker(b: RateBuckets) -> None:
        ms.extend(await _timed(lambda: b.take(LIMITS), per))

    started = time.perf_counter()
    await asyncio.gather(*(worker(b) for b in buckets for _ in range(in_flight)))
    wall = time.perf_counter() - started
    return {"takes": len(ms), "takes_per_s": round(len(ms) / wall), **_ms(ms)}


def _ms(values: list[float]) -> dict[str, float]:
    return {f"{k}_ms": round(v, 3) for k, v in percentiles(values).items()}


async def measure(url: str, takes: int) -> dict[str, Any]:
    stores = [await PostgresStore.open(url) for _ in range(3)]
    try:
        shared = [s.rate_buckets() for s in stores]
        await _timed(lambda: shared[0].take(LIMITS), 50)  # warm the pool
        local = LocalBuckets()
        return {
            "takes": takes,
            "local": _ms(await _timed(lambda: local.take(LIMITS), takes)),
            "postgres_one_instance": _ms(await _timed(lambda: shared[0].take(LIMITS), takes)),
            "postgres_three_instances_x4": await _concurrent(shared, takes // 12, 4),
        }
    finally:
        for s in stores:
            await s.close()


def _table(r: dict[str, Any]) -> str:
    rows = [
        ("in this process", r["local"]),
        ("Postgres, one instance", r["postgres_one_instance"]),
        ("Postgres, 3 instances x 4 at once", r["postgres_three_instances_x4"]),
    ]
    lines = [f"{'take (start+stop buckets)':<34} | p50 ms | p95 ms | p99 ms | takes/s"]
    for label, f in rows:
        rate = f.get("takes_per_s", "")
        lines.append(
            f"{label:<34} | {f['p50_ms']:>6} | {f['p95_ms']:>6} | {f['p99_ms']:>6} | {rate}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty Postgres database (default: start a server)")
    parser.add_argument("--takes", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.url:
        results = asyncio.run(measure(args.url, args.takes))
    else:
        from devtools.pgserver import PostgresServer

        with PostgresServer.start() as server:
            results = asyncio.run(measure(server.create_database("budget"), args.takes))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(_table(results))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
