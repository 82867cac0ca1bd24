"""The command line, run as a user runs it: a subprocess with its own database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_kit import ROOT, run


def test_chat_with_piped_stdin_prints_one_card_per_line(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "chat",
        stdin="We already use Gong and honestly it's too expensive for us\n\nWe're 40 reps\n",
    )
    assert out.returncode == 0, out.stderr
    cards = out.stdout.split("── ")[1:]
    assert len(cards) == 2
    assert "Competitor: Gong" in cards[0] and (
        "Price objection" in cards[0] or "Competitor mention" in cards[0]
    )
    assert "Suggested reply:" in cards[0]
    assert "Competitor: Gong" in cards[1] and "Team size: 40 (new)" in cards[1]


def test_run_without_slack_tokens_falls_back_to_console(tmp_path: Path) -> None:
    out = run(tmp_path, "run", stdin="Does it integrate with HubSpot?\n")
    assert out.returncode == 0
    assert "starting the console chat" in out.stderr
    assert "Feature question" in out.stdout


def test_replay_jsonl_json_output(tmp_path: Path) -> None:
    f = tmp_path / "turns.jsonl"
    f.write_text(
        '{"thread": "a", "text": "We use Gong, 25 reps"}\n'
        '{"thread": "b", "text": "Does it do SSO?"}\n'
        '{"thread": "a", "text": "It is too expensive"}\n'
    )
    out = run(tmp_path, "replay", str(f), "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    # The file's order, each row with its line; thread a keeps its context across b's turn.
    assert [r["thread"].split("/")[-1] for r in rows] == ["a", "b", "a"]
    assert [r["line"] for r in rows] == [1, 2, 3]
    keys = {
        "situation",
        "confidence",
        "slots",
        "slots_delta",
        "strategy",
        "reply",
        "coaching_tip",
        "cache",
        "providers",
        "latency_ms",
        "step_ms",
    }
    assert keys <= rows[0].keys()
    assert rows[2]["slots"] == {
        "competitor": "Gong",
        "current_solution": "Gong",
        "team_size": "25",
        "objection": "too expensive",
    }
    assert rows[2]["providers"]["detect"] == "offline/rules-v1"


def test_replay_plain_lines_share_one_thread(tmp_path: Path) -> None:
    f = tmp_path / "plain.txt"
    f.write_text("We use HubSpot\nwe're 12 people\n")
    out = run(tmp_path, "replay", str(f), "--json")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[1]["slots"] == {
        "competitor": "HubSpot",
        "current_solution": "HubSpot",
        "team_size": "12",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"thread": "a", "text": "ok"}\n{"thread": "a", "txt": "oops"}\n', "turns.jsonl:2"),
        (b'{"thread": "a", "text": "ok"}\n{not json\n', "turns.jsonl:2"),
        (b"caf\xe9 is too expensive\n", "not UTF-8"),
        # null would otherwise be coached as the word "None"
        (b'{"thread": "a", "text": "ok"}\n{"text": null}\n', 'turns.jsonl:2: "text" must be'),
        (b'{"thread": null, "text": "ok"}\n', 'turns.jsonl:1: "thread"'),
    ],
)
def test_replay_bad_files_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "turns.jsonl"
    f.write_bytes(content)
    out = run(tmp_path, "replay", str(f))
    assert message in one_line_error(out)
    assert out.stdout == ""  # checked before anything is coached


def test_missing_file_and_unknown_option(tmp_path: Path) -> None:
    missing = run(tmp_path, "replay", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unknown = run(tmp_path, "stats", "--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr


def test_bad_setting_is_named(tmp_path: Path) -> None:
    out = run(tmp_path, "stats", env={"SALES_AGENT_CACHE_SIZE": "lots"})
    assert out.returncode == 2 and "SALES_AGENT_CACHE_SIZE" in out.stderr


def test_eval_json_reports_the_metrics(tmp_path: Path) -> None:
    out = run(tmp_path, "eval", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n"] >= 200
    for key in (
        "situation_accuracy",
        "situation_macro_f1",
        "slot_precision",
        "slot_recall",
        "slot_f1",
    ):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["value_accuracy"]) == {"competitor", "team_size"}
    assert sum(v["n"] for v in report["per_label"].values()) == report["n"]


def test_stats_after_turns(tmp_path: Path) -> None:
    run(tmp_path, "chat", stdin="We use Gong\nDoes it do SSO?\n")
    out = run(tmp_path, "stats", "--json")
    report = json.loads(out.stdout)
    assert report["turns"] == 2
    assert report["latency"]["end_to_end"]["p50"] > 0


def test_the_product_cli_does_not_import_devtools(tmp_path: Path) -> None:
    script = (
        "import sys, app; code = app.main(['prompts']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'devtools'), file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0 and out.stderr.strip() == "[]", out.stderr


# Failing well: one clear line, nothing computed lost ------------------------------------------


def run_bytes(tmp_path: Path, *args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_"))
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        input=stdin,
        capture_output=True,
        env=environ | {"SALES_AGENT_DB": str(tmp_path / "cli.db"), "LC_ALL": "C"},
        timeout=60,
        cwd=tmp_path,
    )


def test_chat_skips_a_line_that_is_not_utf8_and_coaches_the_rest(tmp_path: Path) -> None:
    out = run_bytes(
        tmp_path, "chat", stdin=b"We use Gong\ncaf\xe9 is too expensive\nDoes it do SSO?\n"
    )
    stdout, stderr = out.stdout.decode(), out.stderr.decode()
    assert out.returncode == 2
    cards = stdout.split("── ")[1:]
    assert len(cards) == 2 and "Feature question" in cards[1]
    assert stderr.strip() == (
        "sales-agent: warning: input line 2 is not UTF-8 text (bad byte at offset 3); skipped"
    )


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_database_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "cli.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database\n" * 100)
    else:
        run(tmp_path, "replay", str(ROOT / "engine" / "data" / "golden.jsonl"))
        run(tmp_path, "stats")  # leaves a checkpointed file, then cut it in half
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2])
        for extra in tmp_path.glob("cli.db-*"):
            extra.unlink()
    for command in ("stats", "chat"):
        line = one_line_error(run(tmp_path, command, stdin="We use Gong\n"))
        assert line.startswith(f"sales-agent: error: cannot use the database {db}"), line


def test_a_database_in_a_read_only_place_is_one_line_naming_it(tmp_path: Path) -> None:
    # /proc refuses new files even to root, as a read-only mount or directory would.
    line = one_line_error(run(tmp_path, "stats", env={"SALES_AGENT_DB": "/proc/sales-agent.db"}))
    assert line.startswith("sales-agent: error: cannot use the database /proc/sales-agent.db"), line


def test_replay_text_output_is_in_file_order_with_labels(tmp_path: Path) -> None:
    f = tmp_path / "turns.jsonl"
    f.write_text(
        '{"thread": "a", "text": "We use Gong, 25 reps"}\n'
        '{"thread": "b", "text": "Does it do SSO?"}\n'
        "\n"
        '{"thread": "a", "text": "It is too expensive"}\n'
    )
    out = run(tmp_path, "replay", str(f))
    assert out.returncode == 0, out.stderr
    labels = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert labels == ["[line 1 · thread a]", "[line 2 · thread b]", "[line 4 · thread a]"]
    last = out.stdout.split("[line 4 · thread a]")[1]
    assert "Competitor: Gong" in last and "Team size: 25" in last
