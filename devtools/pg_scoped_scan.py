"""How long a semantic lookup would take if its candidates came from the database, against how
many cache entries share one context fingerprint.

The design not taken: each lookup reads every entry of the message's (version, fingerprint)
scope and scores it against the message's vector in numpy (no vector extension). The cache
instead follows the other instances' entries into its in-memory index
(`TwoTierCache.follow`), so no lookup waits for the database; these figures are why. This
measures that read + score, for the full rows and for keys and vectors only (the lean query a
tier would send, fetching the best candidate's row afterwards), on Postgres and on SQLite. The
storage adapters have no such reads any more, so the queries and the Postgres index they need
(dropped from the schema in v7) live here.

    .venv/bin/python -m devtools.pg_scoped_scan                # starts a throwaway server
    .venv/bin/python -m devtools.pg_scoped_scan --url postgresql://... --sizes 10,100,1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from engine.cache.persistence import StoredEntry
from storage import open_store
from storage.cache_store import COLUMNS, BufferedCacheStore, entry_from_row
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore

DIM = 384  # the local MiniLM embedder's dimension
BODY = json.dumps({"reply": "x" * 600, "coaching_tip": "y" * 200, "slots": {"a": "b"}})


def _entries(n: int, fingerprint: str, rng: np.random.Generator) -> list[StoredEntry]:
    vectors = rng.standard_normal((n, DIM)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        StoredEntry(
            key=f"{fingerprint}-{i}",
            fingerprint=fingerprint,
            version="v1",
            text=f"message number {i} about pricing and seats",
            embedder="minilm",
            vector=vectors[i].tobytes(),
            suggestion_id=f"s-{fingerprint}-{i}",
            body=BODY,
            created_at=1.0,
            used_at=1.0,
            hits=0,
        )
        for i in range(n)
    ]


def _score(vectors: list[bytes], query: np.ndarray) -> int:
    matrix = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), DIM)
    return int(np.argmax(matrix @ query))


async def _timed(fn: Callable[[], Awaitable[object]], reps: int) -> tuple[float, float]:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


async def measure(target: str | Path, sizes: list[int], reps: int) -> list[dict[str, object]]:
    store = await open_store(target)
    rows = store.cache_rows()
    assert isinstance(rows, BufferedCacheStore)
    if isinstance(store, PostgresStore):
        await _query(
            store,
            "CREATE INDEX IF NOT EXISTS scan_scope ON cache_entries (version, fingerprint)",
            [],
        )
    rng = np.random.default_rng(7)
    query = rng.standard_normal(DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    results = []
    await rows.save(_entries(1, "noise", rng)[0])
    for n in sizes:
        fingerprint = f"fp{n}"
        for e in _entries(n, fingerprint, rng):
            await rows.save(e)
        await rows.flush()

        async def full(fp: str = fingerprint) -> int:
            found = await _scoped(store, fp)
            return _score([e.vector or b"" for e in found], query)

        async def lean(fp: str = fingerprint) -> int:
            keys_vectors = await _keys_and_vectors(store, fp)
            best = _score([v for _, v in keys_vectors], query)
            return 0 if await _entry(store, keys_vectors[best][0]) is None else 1

        await full()
        full_p50, full_p95 = await _timed(full, reps)
        lean_p50, lean_p95 = await _timed(lean, reps)
        results.append(
            {
                "entries": n,
                "full_p50_ms": round(full_p50, 2),
                "full_p95_ms": round(full_p95, 2),
                "lean_p50_ms": round(lean_p50, 2),
                "lean_p95_ms": round(lean_p95, 2),
            }
        )
    await store.close()
    return results


async def _query(store: object, query: str, params: list[object]) -> list[tuple[object, ...]]:
    """`query` written with `{p}` for each parameter, on either backend."""
    if isinstance(store, PostgresStore):
        if not query.lstrip().startswith("SELECT"):
            await store.read("scan", lambda conn: conn.execute(query.format(p="%s"), params))
            return []
        return await store._all("scan", query.format(p="%s"), params)
    assert isinstance(store, SqliteStore)
    db = store.db

    def read() -> list[tuple[object, ...]]:
        return [tuple(r) for r in db.execute(query.format(p="?"), params).fetchall()]

    return await store.run(read)


async def _scoped(store: object, fingerprint: str) -> list[StoredEntry]:
    query = f"SELECT {COLUMNS} FROM cache_entries WHERE version = {{p}} AND fingerprint = {{p}}"
    return [entry_from_row(r) for r in await _query(store, query, ["v1", fingerprint])]


async def _entry(store: object, key: str) -> StoredEntry | None:
    rows = await _query(store, f"SELECT {COLUMNS} FROM cache_entries WHERE key = {{p}}", [key])
    return entry_from_row(rows[0]) if rows else None


async def _keys_and_vectors(store: object, fingerprint: str) -> list[tuple[str, bytes]]:
    query = "SELECT key, vector FROM cache_entries WHERE version = {p} AND fingerprint = {p}"
    rows = await _query(store, query, ["v1", fingerprint])
    return [(str(k), bytes(v)) for k, v in rows]  # type: ignore[call-overload]


def _table(name: str, results: list[dict[str, object]]) -> str:
    lines = [
        f"{name}: entries per fingerprint | full rows p50 / p95 ms | keys+vectors p50 / p95 ms",
    ]
    for r in results:
        lines.append(
            f"  {r['entries']:>7} | {r['full_p50_ms']:>8} / {r['full_p95_ms']:<8} | "
            f"{r['lean_p50_ms']:>8} / {r['lean_p95_ms']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing Postgres database (default: start one)")
    parser.add_argument("--sizes", default="10,100,1000,3000,10000,30000")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[str, list[dict[str, object]]] = {}
    if args.url:
        out["postgres"] = asyncio.run(measure(args.url, sizes, args.reps))
    else:
        from devtools.pgserver import PostgresServer

        with PostgresServer.start() as server:
            out["postgres"] = asyncio.run(measure(server.create_database("scan"), sizes, args.reps))
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = asyncio.run(measure(Path(tmp) / "scan.db", sizes, args.reps))
    if args.json:
        print(json.dumps(out))
    else:
        print("\n\n".join(_table(name, results) for name, results in out.items()))


if __name__ == "__main__":
    main()
