"""End to end: `app.py replay --json` as a user runs it, with ANTHROPIC_BASE_URL and
OPENAI_BASE_URL pointed at a fake LLM server running in this test."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fake_llm import FakeLLMServer
from engine.ports import CallRecord
from engine.stats import build_report

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).parent.parent
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-e2e-SECRET-1", "OPENAI_API_KEY": "sk-e2e-SECRET-2"}


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer(latency_profile="realistic", time_scale=0.02, seed=3)
    server.start_in_thread()
    yield server
    server.stop()


def run(
    tmp_path: Path, server: FakeLLMServer, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SALES_AGENT_"))}
    env |= KEYS | {
        "ANTHROPIC_BASE_URL": str(server.base_url),
        "OPENAI_BASE_URL": server.openai_base_url,
        "SALES_AGENT_DB": str(tmp_path / "e2e.db"),
        # The response cache is not under test here: every turn goes to the providers.
        "SALES_AGENT_CACHE": "off",
        "SALES_AGENT_LOG_LEVEL": "DEBUG",
    } | extra
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
        cwd=tmp_path,
    )


def test_replay_json_uses_both_providers_through_the_router(
    tmp_path: Path, fake: FakeLLMServer
) -> None:
    turns = tmp_path / "turns.jsonl"
    turns.write_text(
        "\n".join(
            json.dumps({"thread": thread, "text": text})
            for thread, text in [
                ("a", "We already use Gong and honestly it's too expensive for us"),
                ("a", "We're 40 reps and our CFO signs off next quarter"),
                ("b", "Does it integrate with HubSpot?"),
                ("b", "Can we do Thursday at 2pm for a demo?"),
            ]
        )
        + "\n"
    )
    out = run(tmp_path, fake, "replay", str(turns), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 4
    used = {p.split("/")[0] for row in rows for p in row["providers"].values()}
    assert used == {"anthropic", "openai"}
    assert all(not row["notes"] for row in rows)  # no offline fallback
    assert {r.api for r in fake.requests if r.endpoint in ("messages", "chat")} == {
        "anthropic",
        "openai",
    }
    # The keys never show: not in the output, not in the debug log, not in the call log.
    calls = sqlite3.connect(tmp_path / "e2e.db").execute(
        "SELECT provider, outcome, prompt, response FROM llm_calls"
    ).fetchall()
    assert {(p, o) for p, o, _, _ in calls} >= {("anthropic", "win"), ("openai", "win")}
    logged = out.stdout + out.stderr + "".join(prompt + resp for _, _, prompt, resp in calls)
    assert not any(key in logged for key in KEYS.values())

    # The figures `sales-agent stats` reports, from the persisted call log.
    records = [
        CallRecord(*row)
        for row in sqlite3.connect(tmp_path / "e2e.db").execute(
            "SELECT at, step, provider, model, tier, outcome, ms, tokens_in, tokens_out, "
            "cost_usd FROM llm_calls"
        )
    ]
    providers = build_report([], records).llm.providers
    assert any(name.startswith("anthropic/") for name in providers)
    assert any(name.startswith("openai/") for name in providers)
    for p in providers.values():
        assert p.wins + p.cancelled + p.error_count == p.requests
        assert p.tokens_in > 0 and p.cost_usd > 0


def test_a_turn_has_one_budget_when_one_provider_hangs_and_the_other_answers_garbage(
    tmp_path: Path, fake: FakeLLMServer
) -> None:
    fake.faults.add("hang", api="anthropic", times=None)
    fake.faults.add("invalid_contract", api="openai", times=None)
    turns = tmp_path / "turns.jsonl"
    texts = [
        "We already use Gong and honestly it's too expensive for us",
        "We're 40 reps and our CFO signs off next quarter",
        "Can we do Thursday at 2pm for a demo?",
    ]
    turns.write_text("".join(json.dumps({"thread": "a", "text": t}) + "\n" for t in texts))
    budget_s = 1.0
    out = run(
        tmp_path, fake, "replay", str(turns), "--json", env={"SALES_AGENT_TURN_BUDGET_S": "1"}
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3
    for row in rows:
        # Three steps in a row used to take a budget each; now they share one (plus the
        # offline tier's few milliseconds), and every card still arrives.
        assert row["latency_ms"] < 1.5 * budget_s * 1000, row
        assert row["reply"] and any("offline" in note for note in row["notes"])


def test_a_model_that_misses_a_slot_does_not_erase_what_the_rules_found(
    tmp_path: Path, fake: FakeLLMServer
) -> None:
    # Valid JSON, no slots: a weak model's capture. The rules saw the competitor.
    fake.faults.add(
        "invalid_contract", step="capture", times=None, payload={"slots": {}, "confidence": 0.9}
    )
    turns = tmp_path / "turns.jsonl"
    turns.write_text(json.dumps({"text": "We already use Gong and it's too expensive"}) + "\n")
    out = run(tmp_path, fake, "replay", str(turns), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert row["providers"]["capture"].split("/")[0] in ("anthropic", "openai")
    assert row["slots"].get("competitor") == "Gong"
