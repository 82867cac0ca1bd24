"""The benchmark: its workload, and a smoke run of `sales-agent bench` on a tiny workload.

Structure only (rows, columns, JSON keys), never timings: the figures depend on the machine.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

import app
from devtools.bench.drive import union_ms
from devtools.bench.ladder import LADDER, select
from devtools.bench.report import COLUMNS
from devtools.bench.workload import generate

ROW_KEYS = {
    "name", "adds", "group", "turns", "p50", "p95", "p99", "miss_p95", "hit_p99", "hit_rate",
    "reconcile_rate", "llm_steps_per_turn", "requests_per_turn", "requests_per_step",
    "tokens_in_per_turn", "tokens_out_per_turn", "cost_per_turn_usd", "p95_vs_baseline",
    "speculation", "first_text_ms",
}


def test_default_workload_is_big_enough_and_repeats_a_quarter() -> None:
    wl = generate()
    summary = wl.summary()
    assert summary["turns"] >= 300 and summary["threads"] >= 50
    assert 0.22 <= float(summary["repeat_share"]) <= 0.32  # type: ignore[arg-type]
    assert generate().turns == wl.turns  # seeded
    assert generate(seed=8).turns != wl.turns


def test_threads_arrive_in_order_and_echoes_after_their_origin() -> None:
    wl = generate(seed=3)
    seen: dict[str, int] = defaultdict(lambda: -1)
    first_fresh: dict[str, int] = {}
    for i, turn in enumerate(wl.turns):
        assert turn.index == seen[turn.thread] + 1
        seen[turn.thread] = turn.index
        if turn.kind == "fresh":
            first_fresh.setdefault(turn.text, i)
        else:
            assert first_fresh.get(turn.source, -1) < i, "a repeat arrived before its source"
            assert turn.situation  # labelled like its source
    reworded = [t for t in wl.turns if t.kind == "reworded"]
    assert reworded and all(t.text != t.source for t in reworded)


def test_union_of_overlapping_intervals() -> None:
    assert union_ms([(0.0, 0.002), (0.001, 0.003), (0.005, 0.006)]) == pytest.approx(4.0)
    assert union_ms([]) == 0.0


def test_rows_select_by_name_or_prefix() -> None:
    assert select(None) == LADDER
    assert [c.name for c in select("b3,baseline")] == ["baseline", "B3-speculative"]
    with pytest.raises(ValueError, match="rows:"):
        select("P9")


@pytest.mark.timeout(120)
def test_bench_smoke_writes_table_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = app.main([
        "bench", "--turns", "10", "--threads", "4", "--time-scale", "0", "--in-flight", "4",
        "--out", str(out), "--json", str(tmp_path / "ladder.json"),
    ])
    text = capsys.readouterr().out
    doc = json.loads((tmp_path / "ladder.json").read_text())
    names = [r["name"] for r in doc["rows"]]
    assert names == [c.name for c in LADDER]
    assert {"machine", "command", "time_scale", "workload", "rows", "goal", "latencies_ms"} <= set(
        doc
    )
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == [title for _, title in COLUMNS]
    assert len(table) == 2 + len(LADDER)
    for row, line in zip(doc["rows"], table[2:], strict=True):
        assert line.split("|")[1].strip() == row["name"]
    assert code == 0
    for row in doc["rows"]:
        assert set(row) >= ROW_KEYS, ROW_KEYS - set(row)
        assert row["turns"] == 10
        # Each turn's first text shows no later than its card.
        assert 0 < row["first_text_ms"]["p95"] <= row["p95"]
        assert len(doc["latencies_ms"][row["name"]]) == 10
        for line in table[2:]:
            if line.split("|")[1].strip() == row["name"]:
                assert len(line.strip("|").split("|")) == len(COLUMNS)
    assert (out / "ladder.png").stat().st_size > 1000
    assert re.search(r"Ladder on \d+ ×", text)


@pytest.mark.timeout(120)
def test_overhead_smoke(tmp_path: Path) -> None:
    import asyncio

    from devtools.bench.overhead import measure
    from engine.settings import Settings

    result = asyncio.run(
        measure(Settings(embedder="none"), tmp_path, latency_turns=150, throughput_turns=100,
                memory_turns=2000, in_flight=8)
    ).as_dict()
    assert result["turns"] == 50
    assert set(result["overhead_ms"]) == {"p50", "p95", "p99"}
    assert result["throughput_turns_per_s"] > 0
    assert [s["turns"] for s in result["rss_mb"]] == [0, 1000, 2000]


@pytest.mark.timeout(120)
def test_bench_without_matplotlib_says_so_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    # As in an install without the `bench` extra: importing matplotlib fails.
    script = (
        "import sys; sys.modules['matplotlib'] = None; import app; "
        "sys.exit(app.main(sys.argv[1:]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, "bench", "--rows", "baseline", "--turns", "6",
         "--time-scale", "0", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=110, cwd=Path(app.__file__).parent,
        env={k: v for k, v in os.environ.items() if not k.startswith("SALES_AGENT_")},
    )
    assert out.returncode == 0, out.stderr
    assert "| baseline |" in out.stdout
    assert json.loads((tmp_path / "out" / "ladder.json").read_text())["rows"][0]["turns"] == 6
    said = [line for line in out.stderr.splitlines() if "extra" in line or "png" in line]
    assert said == [
        "bench: no plot: the PNG needs the bench extra (pip install 'sales-agent[bench]')"
    ]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out" / "ladder.png").exists()
