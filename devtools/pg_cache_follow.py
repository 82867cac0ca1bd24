"""What following other instances costs on Postgres: the cache's poll (`changes_since`, once per
`follow_s` per instance) against a realistic table, and the read by key an exact miss would add
if it also asked the database (the design not taken; see engine.cache.response_cache).

The table holds `--entries` cache entries of one version (MiniLM-sized vectors, a ~1 KB body),
created evenly over the TTL, plus `--blocks` tombstones and as many rows of an older version.
A poll reads the 60 s window the cache reads (its clock-skew allowance):
  - steady: every entry in the window is known to the poller (sent as `known`): the usual poll;
  - new: as steady, plus `--new` entries another instance just stored;
  - unfiltered: the same window without `known`, the rows a poll would carry back without it.
`key read` is one primary-key SELECT of a full row, what an exact miss would pay per lookup;
`local miss` is a TwoTierCache exact-tier miss (no embedder) in this process, for scale.

    .venv/bin/python -m devtools.pg_cache_follow            # starts a throwaway server
    .venv/bin/python -m devtools.pg_cache_follow --url postgresql://... --entries 10000

Prints a table and the poll's plan; writes bench-out/pg-cache-follow.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.cache.persistence import StoredEntry
from engine.cache.response_cache import TwoTierCache
from engine.model import ThreadContext, ThreadKey
from storage.cache_store import COLUMNS
from storage.postgres import PostgresStore
from storage.postgres_cache import PostgresCacheStore

DIM = 384  # the local MiniLM embedder's dimension
TTL_S = 3600.0
WINDOW_S = 60.0  # engine.cache.response_cache._CLOCK_SKEW_S
BODY = json.dumps({"reply": "x" * 700, "coaching_tip": "y" * 200, "slots": {"a": "b"}})
OUT = Path(__file__).resolve().parent.parent / "bench-out" / "pg-cache-follow.json"


def _entry(i: int, version: str, created_at: float, vector: bytes) -> StoredEntry:
    return StoredEntry(
        key=f"{version}-{i:08d}",
        fingerprint=f"fp{i % 200}",
        version=version,
        text=f"message number {i} about pricing and seats for the team",
        embedder="minilm",
        vector=vector,
        suggestion_id=f"s-{version}-{i}",
        body=BODY,
        created_at=created_at,
        used_at=created_at,
        hits=0,
    )


async def _fill(rows: PostgresCacheStore, entries: int, blocks: int, now: float) -> list[str]:
    """Returns the keys of this version's entries inside the poll's window."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((entries, DIM)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    window = []
    for version in ("v1", "v0"):
        for i in range(entries):
            at = now - TTL_S + (i + 1) * TTL_S / entries
            await rows.save(_entry(i, version, at, vectors[i].tobytes()))
            if version == "v1" and at >= now - WINDOW_S:
                window.append(f"v1-{i:08d}")
        await rows.flush()
    for i in range(blocks):
        await rows.block(f"answer-{i}", f"s-{i}", now - TTL_S + i * TTL_S / blocks)
    return window


async def _timed(fn: Callable[[], Awaitable[object]], reps: int) -> dict[str, float]:
    await fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 3),
    }


async def measure(url: str, entries: int, blocks: int, new: int, reps: int) -> dict[str, Any]:
    store = await PostgresStore.open(url)
    rows = PostgresCacheStore(store, flush_after_s=3600)
    now = time.time()
    known = await _fill(rows, entries, blocks, now)
    await store.read("analyze", lambda conn: conn.execute("ANALYZE cache_entries"))
    since = now - WINDOW_S
    sizes: dict[str, int] = {}

    def poll(what: str, keys: list[str]) -> Callable[[], Awaitable[object]]:
        async def run() -> None:
            changes = await rows.changes_since("v1", since, keys)
            sizes[what] = len(changes.entries)

        return run

    results: dict[str, Any] = {"entries": entries, "blocks": blocks, "window_entries": len(known)}
    results["steady"] = await _timed(poll("steady", known), reps)
    vector = bytes(DIM * 4)
    for i in range(new):
        await rows.save(_entry(entries + i, "v1", now, vector))
    await rows.flush()
    results["new"] = await _timed(poll("new", known), reps)
    results["unfiltered"] = await _timed(poll("unfiltered", []), reps)
    results["returned"] = dict(sizes)
    select = f"SELECT {COLUMNS} FROM cache_entries WHERE key = %s"
    results["key_read"] = await _timed(lambda: store._one("key", select, [known[0]]), reps)
    plan = await store._all(
        "plan",
        f"EXPLAIN ANALYZE SELECT {COLUMNS} FROM cache_entries WHERE (version = %s OR version = %s) "
        "AND created_at >= %s AND NOT (key = ANY(%s::text[])) ORDER BY created_at, key",
        ["v1", "blocked", since, known],
    )
    results["plan"] = [str(r[0]) for r in plan]
    await store.close()
    results["local_miss"] = await _local_miss(reps)
    return results


async def _local_miss(reps: int) -> dict[str, float]:
    cache = TwoTierCache(version="v1", max_entries=1000)
    context = ThreadContext(key=ThreadKey("T", "C", "1"))
    n = iter(range(10**9))
    return await _timed(lambda: cache.lookup(f"never asked {next(n)}", context), reps * 10)


def _table(r: dict[str, Any]) -> str:
    returned = r["returned"]
    lines = [
        f"{r['entries']} entries of this version (+{r['entries']} of another, {r['blocks']} "
        f"blocks); {r['window_entries']} in the {WINDOW_S:.0f} s window",
        "what                          | rows back | p50 ms  | p95 ms",
    ]
    for name, label in (
        ("steady", "poll, nothing new"),
        ("new", "poll, new entries"),
        ("unfiltered", "poll without `known`"),
    ):
        lines.append(
            f"{label:<29} | {returned[name]:>9} | {r[name]['p50_ms']:>7} | {r[name]['p95_ms']}"
        )
    for name, label in (("key_read", "read one key (exact miss)"), ("local_miss", "local miss")):
        lines.append(f"{label:<29} | {'':>9} | {r[name]['p50_ms']:>7} | {r[name]['p95_ms']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty Postgres database (default: start a server)")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    figures = (args.entries, args.blocks, args.new, args.reps)
    if args.url:
        results = asyncio.run(measure(args.url, *figures))
    else:
        from devtools.pgserver import PostgresServer

        with PostgresServer.start() as server:
            results = asyncio.run(measure(server.create_database("follow"), *figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(_table(results))
    plan = [line if len(line) < 160 else line[:150] + " ..." for line in results["plan"]]
    print("\n".join(["", "plan of the poll with new entries:", *plan]))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
