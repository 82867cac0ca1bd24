"""Response-cache lookup latency with a full cache: exact hits, and semantic lookups including
the local embedding of each new message.

    .venv/bin/python -m devtools.cache_bench [--entries 1000] [--exact 3000] [--semantic 300]
                                             [--embedder minilm|none] [--json]

The cache is filled with `--entries` distinct prospect messages, all in the same (empty)
context, the worst case for the semantic scan (every entry is a candidate row). Exact lookups
repeat stored messages; semantic lookups are messages the cache has never seen (each one is
embedded, scored against every row and, over the threshold, checked by the guard). Figures
are wall-clock per `lookup()` call, as the engine sees them; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.cache.embedders import DEFAULT_THRESHOLDS
from engine.cache.response_cache import TwoTierCache
from engine.model import Suggestion, ThreadContext, ThreadKey
from engine.ports import Embedder
from engine.stats import percentiles

F32 = npt.NDArray[np.float32]

_OPENERS = [
    "Honestly",
    "To be fair",
    "Quick one",
    "Just so you know",
    "FYI",
    "Look",
    "Between us",
    "For context",
]
_BODIES = [
    "we already use {v} and it's too expensive for our {n} reps",
    "does it integrate with {v}? we have {n} seats",
    "our contract with {v} ends in {m} and we pay ${k}k a year",
    "we need to run this by our {r} before we sign for {n} users",
    "can you match the price {v} gave us for {n} licenses",
    "we're evaluating {v} too, decision by {m}",
    "{v} quoted us ${k} per seat per month for {n} reps",
    "we don't have budget until {m}, maybe {n} seats then",
    "our {r} wants a demo for {n} people in {m}",
    "we moved off {v} last year, {n} reps hated it",
]
_VENDORS = ["Gong", "Clari", "Salesloft", "HubSpot", "Salesforce", "ZoomInfo", "Apollo.io"]
_MONTHS = ["January", "April", "June", "September", "November"]
_ROLES = ["CFO", "CTO", "VP of Sales", "head of RevOps", "procurement team"]


def messages(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        body = rng.choice(_BODIES).format(
            v=rng.choice(_VENDORS),
            n=rng.randint(5, 400),
            m=rng.choice(_MONTHS),
            k=rng.randint(5, 120),
            r=rng.choice(_ROLES),
        )
        out.add(f"{rng.choice(_OPENERS)}, {body}")
    return sorted(out)


class _Prefilled:
    """The real embedder, with the fill messages embedded up front in batches."""

    def __init__(self, inner: Embedder, table: dict[str, F32]) -> None:
        self.name, self.dim = inner.name, inner.dim
        self._inner, self._table = inner, table

    async def embed(self, texts: Sequence[str]) -> F32:
        if len(texts) == 1 and texts[0] in self._table:
            return self._table[texts[0]][None, :]
        return await self._inner.embed(texts)


def _suggestion(i: int) -> Suggestion:
    return Suggestion(
        id=f"s{i}",
        key=ThreadKey("bench", "c", str(i)),
        message_id=f"m{i}",
        reply=f"reply {i}",
        coaching_tip="tip",
        situation="price_objection",
        confidence=0.9,
        secondary=None,
        strategy="value",
        talk_track="",
        slots_delta={},
        slots={},
        cache="miss",
        calls=(),
        step_ms={},
        latency_ms=1.0,
        reconciled=False,
    )


async def run(entries: int, exact_n: int, semantic_n: int, embedder_name: str) -> dict[str, Any]:
    from engine.cache.fingerprint import message_text

    embedder: Embedder | None = None
    fill = messages(entries, seed=1)
    if embedder_name == "minilm":
        from engine.cache.minilm import MiniLMEmbedder

        model = MiniLMEmbedder()
        t0 = time.perf_counter()
        vectors = model.encode([message_text(t) for t in fill])
        fill_s = time.perf_counter() - t0
        table = {message_text(t): v for t, v in zip(fill, vectors, strict=True)}
        embedder = _Prefilled(model, table)
    cache = TwoTierCache(
        version="bench",
        embedder=embedder,
        threshold=DEFAULT_THRESHOLDS[embedder.name] if embedder else None,
        max_entries=entries,
    )
    context = ThreadContext(key=ThreadKey("bench", "c", "t"))
    for i, text in enumerate(fill):
        await cache.store(text, context, _suggestion(i))
    rng = random.Random(2)
    exact_ms = []
    for text in (rng.choice(fill) for _ in range(exact_n)):
        t0 = time.perf_counter()
        hit = await cache.lookup(text, context)
        exact_ms.append((time.perf_counter() - t0) * 1000)
        assert hit is not None and hit.tier == "exact"
    report: dict[str, Any] = {
        "entries": len(fill),
        "embedder": embedder.name if embedder else "off",
        "threshold": cache.threshold,
        "exact_lookup_ms": percentiles(exact_ms) | {"n": len(exact_ms)},
    }
    if embedder is not None:
        fresh = [t for t in messages(entries + semantic_n * 3, seed=3) if t not in set(fill)]
        fresh = list(itertools.islice(fresh, semantic_n))
        semantic_ms, tiers = [], []
        for text in fresh:
            t0 = time.perf_counter()
            hit = await cache.lookup(text, context)
            semantic_ms.append((time.perf_counter() - t0) * 1000)
            tiers.append(hit.tier if hit else "miss")
        stats = cache.stats()
        # The same lookups with their vectors computed beforehand: the semantic tier without
        # the embedding (mask, matrix-vector product, the guard on the candidates).
        keys = [message_text(t) for t in fresh]
        table.update(zip(keys, model.encode(keys), strict=True))
        search_ms = []
        for text in fresh:
            t0 = time.perf_counter()
            await cache.lookup(text, context)
            search_ms.append((time.perf_counter() - t0) * 1000)
        embed_ms = []
        for text in fresh:
            t0 = time.perf_counter()
            await model.embed([message_text(text)])
            embed_ms.append((time.perf_counter() - t0) * 1000)
        report |= {
            "fill_embedding_s": round(fill_s, 2),
            "semantic_lookup_ms": percentiles(semantic_ms) | {"n": len(semantic_ms)},
            "semantic_without_embedding_ms": percentiles(search_ms) | {"n": len(search_ms)},
            "embedding_alone_ms": percentiles(embed_ms) | {"n": len(embed_ms)},
            "semantic_outcomes": {t: tiers.count(t) for t in sorted(set(tiers))},
            "guard_rejections": stats.guard_rejections,
            "guard_reasons": dict(stats.guard_reasons),
        }
    report["openblas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    report["cpus"] = os.cpu_count()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.cache_bench", description=__doc__)
    p.add_argument("--entries", type=int, default=1000)
    p.add_argument("--exact", type=int, default=3000)
    p.add_argument("--semantic", type=int, default=300)
    p.add_argument("--embedder", choices=("minilm", "none"), default="minilm")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report = asyncio.run(run(args.entries, args.exact, args.semantic, args.embedder))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"cache of {report['entries']} entries, embedder {report['embedder']}")
    for name in (
        "exact_lookup_ms",
        "semantic_lookup_ms",
        "semantic_without_embedding_ms",
        "embedding_alone_ms",
    ):
        if name in report:
            q = report[name]
            print(
                f"  {name:30} p50 {q['p50']:.4f}  p95 {q['p95']:.4f}  p99 {q['p99']:.4f}"
                f"  (n={q['n']})"
            )
    if "semantic_outcomes" in report:
        print(f"  semantic lookups: {report['semantic_outcomes']}, guard {report['guard_reasons']}")
    print(f"  cpus {report['cpus']}, OPENBLAS_NUM_THREADS={report['openblas_threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
