"""The ladder's outputs: a markdown table, a JSON document and a PNG of latency CDFs."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS: tuple[tuple[str, str], ...] = (
    ("config", "config"),
    ("p50", "p50 ms"),
    ("p95", "p95 ms"),
    ("p99", "p99 ms"),
    ("miss_p95", "miss p95"),
    ("hit_p99", "hit p99"),
    ("first", "1st text p95"),
    ("hits", "hits exact/sem"),
    ("reconcile", "reconcile"),
    ("calls", "calls/turn"),
    ("req_step", "req/step"),
    ("tokens", "tokens in/out"),
    ("cost", "$/turn"),
    ("ratio", "p95/base"),
)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d"),
        # Other work on the machine skews every figure: record how busy it was.
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "blas_threads": 1,
    }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """p95 as a ratio of the baseline's, and of P5's, where those rows ran."""
    by_name = {r["name"]: r for r in rows}
    for ref, key in (("baseline", "p95_vs_baseline"), ("P5", "p95_vs_p5")):
        base = by_name.get(ref, {}).get("p95")
        for r in rows:
            r[key] = round(r["p95"] / base, 3) if base else None


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def cells(row: Mapping[str, Any]) -> dict[str, str]:
    h = row["hit_rate"]
    return {
        "config": row["name"],
        "p50": _fmt(row["p50"]),
        "p95": _fmt(row["p95"]),
        "p99": _fmt(row["p99"]),
        "miss_p95": _fmt(row["miss_p95"]),
        "hit_p99": _fmt(row["hit_p99"], 1),
        "first": _fmt((row.get("first_text_ms") or {}).get("p95")),
        "hits": f"{h['exact']:.0%}/{h['semantic']:.0%}",
        "reconcile": f"{row['reconcile_rate']:.0%}",
        "calls": _fmt(row["requests_per_turn"], 2),
        "req_step": _fmt(row["requests_per_step"], 2),
        "tokens": f"{row['tokens_in_per_turn']:,.0f}/{row['tokens_out_per_turn']:,.0f}",
        "cost": f"{row['cost_per_turn_usd']:.4f}",
        "ratio": _fmt(row.get("p95_vs_baseline"), 2),
    }


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" if k == "config" else "---:" for k, _ in COLUMNS) + "|"
    lines = [head, rule]
    for row in rows:
        c = cells(row)
        lines.append("| " + " | ".join(c.get(k, "") for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def legend(rows: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"- **{r['name']}**: {r['adds']}" for r in rows)


def document(
    rows: list[dict[str, Any]],
    *,
    workload: Mapping[str, Any],
    time_scale: float,
    in_flight: int,
    command: str,
    goal: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "machine": machine(),
        "command": command,
        "time_scale": time_scale,
        "in_flight": in_flight,
        "workload": dict(workload),
        "units": "model milliseconds (provider waits divided by time_scale)",
        "rows": rows,
        "goal": dict(goal or {}),
    }


def goal(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The issue's goal for the best row beyond P5: p95 <= 0.75 x P5's p95 at <= 1.15
    provider requests per LLM step."""
    p5 = next((r for r in rows if r["name"] == "P5"), None)
    beyond = [r for r in rows if r["group"] == "beyond"]
    if p5 is None or not beyond:
        return {"evaluated": False}
    eligible = [r for r in beyond if r["requests_per_step"] <= 1.15]
    best = min(eligible or beyond, key=lambda r: r["p95"])
    ratio = best["p95"] / p5["p95"] if p5["p95"] else None
    return {
        "evaluated": True,
        "best": best["name"],
        "p95_vs_p5": round(ratio, 3) if ratio is not None else None,
        "requests_per_step": best["requests_per_step"],
        "met": bool(ratio is not None and ratio <= 0.75 and best["requests_per_step"] <= 1.15),
    }


def write_json(
    doc: Mapping[str, Any], path: Path, latencies: Mapping[str, Sequence[float]]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    full = dict(doc)
    full["latencies_ms"] = {k: [round(v, 1) for v in vs] for k, vs in latencies.items()}
    path.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")


def plot(
    latencies: Mapping[str, Sequence[float]], path: Path, *, title: str, subtitle: str = ""
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (full, tail) = plt.subplots(
        1, 2, figsize=(12, 5.5), dpi=110, gridspec_kw={"width_ratios": [1, 1.15]}
    )
    top = 1.0
    for name, values in latencies.items():
        if not values:
            continue
        data = np.sort(np.asarray(values, dtype=float)) / 1000
        y = np.arange(1, data.size + 1) / data.size
        top = max(top, float(np.percentile(data, 99)))
        style = "--" if name.startswith("B") else "-"
        for ax in (full, tail):
            ax.step(data, y, where="post", linestyle=style, linewidth=1.5, label=name)
    full.set_xscale("log")
    full.set_xlabel("model seconds (log): cache hits on the left")
    tail.set_xlim(0, top * 1.05)
    tail.set_ylim(0.2, 1.005)
    tail.set_xlabel("model seconds (linear): misses, up to the slowest p99")
    full.set_ylim(0, 1.01)
    full.set_ylabel("share of turns at or under")
    for ax in (full, tail):
        ax.axhline(0.95, color="grey", linewidth=0.8, linestyle=":")
        ax.grid(True, which="both", alpha=0.25)
    tail.text(
        0.01,
        0.955,
        "p95",
        color="grey",
        fontsize=8,
        va="bottom",
        transform=tail.get_yaxis_transform(),
    )
    tail.legend(loc="lower right", fontsize=8)
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
