"""The threshold curve: paraphrase hits and false hits per semantic threshold, with the guard.

Three labelled sets, all scored as the cache would score them (the first message cached, the
second looked up, both in the same context):

- paraphrases (engine/data/paraphrases.jsonl): the same intent and facts, reworded; a hit is
  what we want;
- hard negatives (engine/data/hard_negatives.jsonl): similar words, different meaning or facts;
  any hit, in either direction, is a false hit;
- other pairs: the first message of one paraphrase pair against the second of another. Most
  are other intents, a few the same intent in other words; they show how often a threshold
  alone lets two merely related messages meet.

The threshold chosen is the lowest on the grid where (1) the guarded hard-negative false hits
are zero there and one step below (a margin), and (2) without the guard at most 0.1 % of the
other pairs would meet, so the threshold, not the guard alone, keeps topics apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..ports import Embedder
from ..rules.text import plain
from ..stats import percentiles
from .fingerprint import message_text
from .guard import disagreement, facts

__all__ = [
    "CurvePoint",
    "Pair",
    "calibrate",
    "choose_threshold",
    "format_guard_report",
    "guard_report",
    "load_pairs",
]

F32 = npt.NDArray[np.float32]
GRID = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50 ... 0.95
MAX_OTHER_RATE = 0.001
MARGIN_STEPS = 1


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    kind: str = ""


@dataclass(frozen=True, slots=True)
class CurvePoint:
    threshold: float
    paraphrase_hits: int
    paraphrase_rate: float
    paraphrase_rate_unguarded: float
    hard_negative_false_hits: int
    hard_negative_false_hits_unguarded: int
    other_pair_hits: int
    other_pair_rate_unguarded: float


def load_pairs(path: Path) -> list[Pair]:
    pairs = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(Pair(str(row["a"]), str(row["b"]), str(row.get("kind", ""))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: expected {{'a': ..., 'b': ...}} ({exc})") from None
    return pairs


def _agree(cached: str, new: str) -> bool:
    return disagreement(facts(plain(new)), facts(plain(cached))) is None


def calibrate(
    vectors_a: F32,
    vectors_b: F32,
    paraphrases: Sequence[Pair],
    hard_vectors_a: F32,
    hard_vectors_b: F32,
    hard_negatives: Sequence[Pair],
    grid: Sequence[float] = GRID,
) -> dict[str, Any]:
    """The curve over `grid` and the chosen threshold; vectors are unit rows of the pairs'
    `message_text`, in the order of the pairs."""
    para_sim = np.sum(vectors_a * vectors_b, axis=1)
    para_ok = np.array([_agree(p.a, p.b) for p in paraphrases], dtype=bool)
    hard_sim = np.sum(hard_vectors_a * hard_vectors_b, axis=1)
    hard_ok = np.array([_agree(p.a, p.b) or _agree(p.b, p.a) for p in hard_negatives], dtype=bool)
    other = vectors_a @ vectors_b.T
    np.fill_diagonal(other, -1.0)
    n = len(paraphrases)
    other_total = n * (n - 1)
    # The guard only matters for pairs over the lowest threshold: check just those.
    lowest = min(grid)
    other_idx = np.argwhere(other >= lowest)
    other_ok = np.array(
        [_agree(paraphrases[i].a, paraphrases[j].b) for i, j in other_idx], dtype=bool
    )
    other_sims = other[other_idx[:, 0], other_idx[:, 1]] if len(other_idx) else np.zeros(0)

    points = []
    for t in grid:
        para_hit = (para_sim >= t) & para_ok
        points.append(
            CurvePoint(
                threshold=t,
                paraphrase_hits=int(para_hit.sum()),
                paraphrase_rate=round(float(para_hit.mean()), 4) if n else 0.0,
                paraphrase_rate_unguarded=round(float((para_sim >= t).mean()), 4) if n else 0.0,
                hard_negative_false_hits=int(((hard_sim >= t) & hard_ok).sum()),
                hard_negative_false_hits_unguarded=int((hard_sim >= t).sum()),
                other_pair_hits=int(((other_sims >= t) & other_ok).sum()),
                other_pair_rate_unguarded=round(float((other >= t).sum()) / other_total, 5)
                if other_total
                else 0.0,
            )
        )
    chosen = choose_threshold(points)
    false_hits = [
        {"kind": p.kind, "a": p.a, "b": p.b, "similarity": round(float(s), 4)}
        for p, s, ok in zip(hard_negatives, hard_sim, hard_ok, strict=True)
        if ok and chosen is not None and s >= chosen
    ]
    other_hits = [
        {"a": paraphrases[i].a, "b": paraphrases[j].b, "similarity": round(float(s), 4)}
        for (i, j), s, ok in zip(other_idx, other_sims, other_ok, strict=True)
        if ok and chosen is not None and s >= chosen
    ]
    return {
        "paraphrase_pairs": n,
        "hard_negative_pairs": len(hard_negatives),
        "other_pairs": other_total,
        "paraphrase_similarity": percentiles(float(x) for x in para_sim),
        "hard_negative_similarity": percentiles(float(x) for x in hard_sim),
        "guard_passes": {
            "paraphrases": int(para_ok.sum()),
            "hard_negatives": int(hard_ok.sum()),
        },
        "curve": [asdict(p) for p in points],
        "chosen_threshold": chosen,
        "false_hits_at_chosen": false_hits,
        "other_pair_hits_at_chosen": other_hits,
    }


def choose_threshold(points: Sequence[CurvePoint]) -> float | None:
    ordered = sorted(points, key=lambda p: p.threshold)
    for i, point in enumerate(ordered):
        below = ordered[max(0, i - MARGIN_STEPS) : i + 1]
        if all(p.hard_negative_false_hits == 0 for p in below) and (
            point.other_pair_rate_unguarded <= MAX_OTHER_RATE
        ):
            return point.threshold
    return None


def texts(pairs: Sequence[Pair]) -> tuple[list[str], list[str]]:
    """The pairs' messages as the cache embeds them."""
    return [message_text(p.a) for p in pairs], [message_text(p.b) for p in pairs]


async def guard_report(
    embedder: Embedder | None,
    paraphrases_path: Path,
    hard_negatives_path: Path,
    threshold_in_use: float | None,
) -> dict[str, Any]:
    """What `sales-agent guard` prints: the curve for this embedder and the chosen threshold."""
    paraphrases = load_pairs(paraphrases_path)
    hard = load_pairs(hard_negatives_path)
    base: dict[str, Any] = {
        "embedder": embedder.name if embedder else "off",
        "threshold_in_use": threshold_in_use,
        "paraphrases": str(paraphrases_path),
        "hard_negatives": str(hard_negatives_path),
    }
    if embedder is None:
        passes = sum(_agree(p.a, p.b) for p in paraphrases)
        false = [p for p in hard if _agree(p.a, p.b) or _agree(p.b, p.a)]
        return base | {
            "paraphrase_pairs": len(paraphrases),
            "hard_negative_pairs": len(hard),
            "guard_passes": {"paraphrases": passes, "hard_negatives": len(false)},
            "curve": [],
            "chosen_threshold": None,
            "false_hits_at_chosen": [{"kind": p.kind, "a": p.a, "b": p.b} for p in false],
        }
    para_a, para_b = texts(paraphrases)
    hard_a, hard_b = texts(hard)
    vectors = await _embed_all(embedder, [*para_a, *para_b, *hard_a, *hard_b])
    n, m = len(paraphrases), len(hard)
    return base | calibrate(
        vectors[:n],
        vectors[n : 2 * n],
        paraphrases,
        vectors[2 * n : 2 * n + m],
        vectors[2 * n + m :],
        hard,
    )


async def _embed_all(embedder: Embedder, items: Sequence[str], batch: int = 64) -> F32:
    parts = [await embedder.embed(items[i : i + batch]) for i in range(0, len(items), batch)]
    if not parts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


def format_guard_report(report: Mapping[str, Any]) -> str:
    lines = [
        f"embedder: {report['embedder']}",
        f"pairs: {report['paraphrase_pairs']} paraphrases, "
        f"{report['hard_negative_pairs']} hard negatives",
        f"guard alone lets through: {report['guard_passes']['paraphrases']} paraphrases, "
        f"{report['guard_passes']['hard_negatives']} hard negatives",
    ]
    if report["curve"]:
        lines.append(
            f"similarity p50: paraphrases {report['paraphrase_similarity']['p50']:.3f}, "
            f"hard negatives {report['hard_negative_similarity']['p50']:.3f}"
        )
        lines.append("")
        lines.append(
            "threshold | paraphrase hits (unguarded) | hard-negative false hits (unguarded)"
            " | other pairs served (unguarded rate)"
        )
        for p in report["curve"]:
            para = f"{p['paraphrase_rate']:.1%} ({p['paraphrase_rate_unguarded']:.1%})"
            hard = f"{p['hard_negative_false_hits']} ({p['hard_negative_false_hits_unguarded']})"
            other = f"{p['other_pair_hits']} ({p['other_pair_rate_unguarded']:.2%})"
            lines.append(f"     {p['threshold']:.2f} | {para:>27} | {hard:>36} | {other:>35}")
        lines.append("")
        chosen = report["chosen_threshold"]
        lines.append(
            f"chosen threshold: {chosen if chosen is not None else 'none qualifies'}"
            f" (in use: {report['threshold_in_use']})"
        )
        for hit in report.get("other_pair_hits_at_chosen", []):
            lines.append(
                f"  other pair served at {hit['similarity']:.3f}: {hit['a']!r} -> {hit['b']!r}"
            )
    else:
        lines.append("no embedder: the semantic tier is off; only the guard was checked")
    false_hits = report["false_hits_at_chosen"]
    lines.append(f"hard-negative false hits: {len(false_hits)}")
    lines.extend(f"  FALSE HIT [{h['kind']}] {h['a']!r} -> {h['b']!r}" for h in false_hits)
    return "\n".join(lines)
