"""The cache from the command line, as a user runs it: replay, stats, guard, and the latency
command (whose figures are printed, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.cache.embedders import DEFAULT_THRESHOLDS
from engine.cache.minilm import MiniLMEmbedder

ROOT = Path(__file__).parent.parent


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, module: str | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_"))
    }
    environ |= {"SALES_AGENT_DB": str(tmp_path / "cli.db"), "OPENBLAS_NUM_THREADS": "1"}
    environ |= env or {}
    command = ["-m", module] if module else [str(ROOT / "app.py")]
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        cwd=ROOT if module else tmp_path,
    )


def test_replay_serves_repeats_and_rewordings_from_the_cache(tmp_path: Path) -> None:
    # Fresh threads with the same (empty) deal context: a message, its exact repeat, and
    # rewordings. Each thread's first message is the message under test.
    f = tmp_path / "turns.jsonl"
    lines = [
        ("a", "Honestly it's just too expensive for a team our size"),
        ("b", "Honestly it's just too expensive for a team our size"),
        ("c", "It's honestly too pricey for a team of our size"),
        ("d", "Does it integrate with HubSpot?"),
        ("e", "Is there a HubSpot integration?"),
        ("f", "We don't have budget for this until Q3"),
    ]
    f.write_text("".join(json.dumps({"thread": t, "text": x}) + "\n" for t, x in lines))
    out = run(tmp_path, "replay", str(f), "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    tiers = [r["cache"] for r in rows]
    assert tiers[0] == "miss" and tiers[1] == "exact"
    assert "semantic" in (tiers[2], tiers[4]), tiers
    assert tiers[3] == "miss" and tiers[5] == "miss"
    assert rows[1]["reply"] == rows[0]["reply"]
    assert rows[1]["providers"] == {} and "cache" in rows[1]["step_ms"]

    stats = run(tmp_path, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    cache = json.loads(stats.stdout)["cache"]
    assert cache["exact_hits"] == 1 and cache["semantic_hits"] >= 1
    assert cache["size"] == 3 and cache["vectors"] == 3  # reloaded from SQLite
    assert cache["embedder"] == MiniLMEmbedder.name and cache["semantic"] == "on"


def test_replay_without_an_embedder_still_serves_exact_repeats(tmp_path: Path) -> None:
    f = tmp_path / "turns.jsonl"
    text = "We already use Gong and it's too expensive"
    f.write_text(
        json.dumps({"thread": "a", "text": text}) + "\n"
        + json.dumps({"thread": "b", "text": text}) + "\n"
        + json.dumps({"thread": "c", "text": "We're on Gong already and it's too pricey"}) + "\n"
    )  # fmt: skip
    out = run(tmp_path, "replay", str(f), "--json", env={"SALES_AGENT_EMBEDDER": "none"})
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["cache"] for line in out.stdout.splitlines()] == [
        "miss",
        "exact",
        "miss",
    ]
    off = {"SALES_AGENT_EMBEDDER": "none"}
    stats = json.loads(run(tmp_path, "stats", "--json", env=off).stdout)["cache"]
    assert stats["embedder"] == "off" and stats["semantic"] == "off: no embedder"


def test_guard_reports_the_curve_and_zero_false_hits(tmp_path: Path) -> None:
    out = run(tmp_path, "guard", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["hard_negative_pairs"] >= 60 and report["paraphrase_pairs"] >= 60
    assert report["false_hits_at_chosen"] == []
    assert all(p["hard_negative_false_hits"] == 0 for p in report["curve"])
    # The shipped threshold is the one the curve chooses.
    assert report["chosen_threshold"] == DEFAULT_THRESHOLDS[MiniLMEmbedder.name]
    assert report["threshold_in_use"] == report["chosen_threshold"]
    text = run(tmp_path, "guard")
    assert "chosen threshold: 0.7" in text.stdout and "hard-negative false hits: 0" in text.stdout


def test_guard_without_an_embedder_checks_the_guard_alone(tmp_path: Path) -> None:
    out = run(tmp_path, "guard", "--json", env={"SALES_AGENT_EMBEDDER": "none"})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["embedder"] == "off" and report["curve"] == []
    assert report["guard_passes"]["hard_negatives"] == 0


def test_the_latency_command_prints_its_figures(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "--entries",
        "60",
        "--exact",
        "50",
        "--semantic",
        "5",
        "--json",
        module="devtools.cache_bench",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for key in ("exact_lookup_ms", "semantic_lookup_ms", "semantic_without_embedding_ms"):
        assert set(report[key]) >= {"p50", "p95", "p99", "n"}
    print(report)  # shown with -s; the figures depend on the machine and are not asserted
