"""Thread memory scored: labelled threads run turn by turn through the engine (offline tier)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.data import THREADS
from engine.rules import values
from engine.thread_eval import agrees, load_threads
from tests.cli_kit import run


def test_the_packaged_thread_set_loads_with_its_tuning_and_held_out_parts() -> None:
    threads = load_threads(THREADS)
    assert len(threads) == 40
    assert sum(t.tuning for t in threads) == 26
    assert all(3 <= len(t.messages) <= 6 for t in threads)


def test_eval_threads_runs_each_thread_through_the_engine_and_reads_its_context(
    tmp_path: Path,
) -> None:
    path = tmp_path / "threads.jsonl"
    rows = [
        # Everything the label expects is said plainly: full recall, the values agree.
        {
            "thread": "t01",
            "messages": [
                "We have 40 reps on the team.",
                "We use Gong today and it is too expensive",
            ],
            "final_slots": {"team_size": "40", "competitor": "Gong"},
            "final_situation": "price_objection",
        },
        # A slot nobody mentions cannot be recalled: the score must show the miss.
        {
            "thread": "t30",
            "messages": ["Hello there!", "Hi again"],
            "final_slots": {"budget_signal": "around $30k"},
            "final_situation": "greeting",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    out = run(tmp_path, "eval", "--threads", str(path), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["tuning"]["slot_recall"] == 1.0
    assert report["tuning"]["value_agreement"]["team_size"] == {"agree": 1, "compared": 1}
    assert report["tuning"]["value_agreement"]["competitor"] == {"agree": 1, "compared": 1}
    assert report["held_out"]["slot_recall"] == 0.0
    assert report["all"]["slot_recall"] == 0.6667
    assert report["misses"]["t30"]["missing"] == ["budget_signal"]
    text = run(tmp_path, "eval", "--threads", str(path))
    assert "held_out" in text.stdout and "slot recall" in text.stdout


def test_values_read_amounts_head_counts_and_dates() -> None:
    assert values.amount("roughly $35k for this fiscal year") == values.Amount(35000, "USD")
    assert values.amount("like $1,200/mo-ish") == values.Amount(1200, "USD", "month")
    assert values.amount("45k a year") == values.Amount(45000, "USD", "year")
    assert values.amount("we have 40 reps") is None
    assert str(values.Amount(35000, "USD", "year")) == "$35k/year"
    assert values.head_count("~1,100 seasonal staff") == 1100
    assert values.when("live before the March renewal") == {"month:3", "renewal"}
    assert values.when("may we talk") == frozenset()


def test_values_agree_on_meaning_not_wording() -> None:
    assert agrees("budget_signal", "around $42k", "$42,000")
    assert not agrees("budget_signal", "around $42k", "around $30k")
    assert agrees("budget_signal", "no budget until July 1", "zero budget") is None
    assert agrees("timeline", "revisit in January", "until January")
    assert agrees("team_size", "115", "115 people")
    assert agrees("competitor", None, "Gong") is None
