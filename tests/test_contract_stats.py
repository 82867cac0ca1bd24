"""The contract-failure rate: answers a provider gave that the contract refused (invalid or
truncated) over the requests it answered, with the rejection reasons stored in llm_calls,
shown by `sales-agent stats`, `/agent-stats` and `/metrics`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.blocks import stats_message
from bot.ops import Metrics
from devtools.fake_llm import FakeLLMServer
from engine.ports import CallRecord
from engine.stats import build_report

ROOT = Path(__file__).parent.parent


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The app as a user runs it, with its own database and no foreign provider keys."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_"))
    }
    environ |= {"SALES_AGENT_DB": str(tmp_path / "cli.db"), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        input="We use Gong and it's too expensive\n" if args[0] == "chat" else "",
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        cwd=tmp_path,
    )


def call(outcome: str, provider: str = "local", error: str = "") -> CallRecord:
    return CallRecord(1.0, "detect", provider, "smol", "fast", outcome, 10.0, error=error)


CALLS = [
    call("win"),
    call("win"),
    call("error:invalid_output", error="detect: unknown situation 'sales'"),
    call("error:invalid_output", error="detect: unknown situation 'hello'"),
    call("error:truncated", error="cut at max_tokens (answer holds no JSON object)"),
    call("error:timeout"),  # no answer: not in the denominator
    call("cancelled"),
    call("ok", provider="offline"),  # the offline tier is not asked
    call("win", provider="other"),
]


def test_the_rate_is_refused_answers_over_answered_requests() -> None:
    report = build_report([], CALLS)
    local = report.llm.providers["local/smol"].contract
    other = report.llm.providers["other/smol"].contract
    assert local is not None and other is not None
    assert (local.answered, local.invalid_output, local.truncated) == (5, 2, 1)
    assert local.rate == 0.6 and other.rate == 0.0
    # Alike reasons count together; the most frequent first.
    assert list(local.reasons.items()) == [
        ("detect: unknown situation", 2),
        ("cut at max_tokens", 1),
    ]
    assert report.llm.providers["offline/smol"].contract is None  # nothing was asked
    assert report.llm.contract_failure_rate == 0.5  # 3 of 6 answered, over both providers
    shown = report.to_json()["llm"]
    assert shown["contract_failure_rate"] == 0.5
    assert shown["providers"]["local/smol"]["contract"]["rate"] == 0.6
    assert shown["providers"]["local/smol"]["errors"] == {
        "invalid_output": 2,
        "truncated": 1,
        "timeout": 1,
    }


def test_agent_stats_and_metrics_show_it() -> None:
    report = build_report([], CALLS)
    text = json.dumps(stats_message(report, "llm").blocks)
    assert "contract failures *60.0%* of 5 answered" in text
    metrics = Metrics()
    metrics.set_provider_errors(report)
    scraped = metrics.render().decode()
    assert 'sales_agent_contract_failure_rate{provider="local/smol"} 0.6' in scraped
    assert 'sales_agent_contract_failure_rate{provider="other/smol"} 0.0' in scraped


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer(latency_profile="zero", time_scale=0)
    server.start_in_thread()
    yield server
    server.stop()


def test_stats_command_reports_it_from_a_real_run(tmp_path: Path, fake_llm: FakeLLMServer) -> None:
    """Detect answers with the wrong schema every time: the rate and the stored reason say
    so, through the app as a user runs it."""
    fake_llm.faults.add("invalid_contract", step="detect", times=None)
    endpoints = json.dumps(
        [{"name": "local", "base_url": fake_llm.openai_base_url, "model": "smol"}]
    )
    env = {"SALES_AGENT_ENDPOINTS": endpoints, "SALES_AGENT_CACHE": "off"}
    chat = run(tmp_path, "chat", env=env)
    assert chat.returncode == 0, chat.stderr
    report = json.loads(run(tmp_path, "stats", "--json", env=env).stdout)
    contract = report["llm"]["providers"]["local/smol"]["contract"]
    # Every detect answer the server gave was refused; capture and generate were fine.
    detects = fake_llm.count(step="detect", outcome="fault:invalid_contract")
    answered = fake_llm.count(endpoint="chat")
    assert detects >= 1 and answered > detects
    assert (contract["invalid_output"], contract["answered"]) == (detects, answered)
    assert contract["rate"] == round(detects / answered, 4)
    assert list(contract["reasons"]) == ["detect: unknown situation"]
    text = run(tmp_path, "stats", env=env).stdout
    assert (
        f"contract failures {detects / answered:.1%} of {answered} answered "
        f"({detects} invalid, 0 truncated)"
    ) in text
