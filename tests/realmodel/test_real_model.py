"""The engine against a real model server (llama-server, SmolLM2-135M-Instruct), wired as the
app wires it: `SALES_AGENT_ENDPOINTS` names the server, the OpenAI SDK streams from it.

What must hold on any model, however weak: the steps ask the model, answers stream back
through the SDK, and every message still gets a card (the offline tier answers a step the
model got wrong). How often a 135M model's answers parse is measured, not asserted, here:
`python -m devtools.real_model_parse`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from app import runtime
from devtools import llama_server
from devtools.llama_server import RunningServer
from devtools.real_model_parse import app_env
from engine.model import ThreadKey, TurnInput
from engine.settings import Settings
from engine.taxonomy import SITUATIONS

ROOT = Path(__file__).resolve().parents[2]
# A turn is up to four model calls in a row (capture ∥ detect, reconcile, generate), each
# retried once on a bad answer; on 2 busy cores a 135M model writes ~20 tokens/s.
pytestmark = [pytest.mark.real_model, pytest.mark.timeout(420)]

MESSAGES = (
    "We already use Gong and honestly it's too expensive for us.",
    "Can it export call notes to Salesforce? Our VP of Sales, Dana, signs off by March.",
)
STEPS = ("capture", "detect", "generate")
PLACEHOLDER = re.compile(r"\[\w+\] ")


def model_settings(server: RunningServer, tmp_path: Path) -> dict[str, str]:
    return {
        "SALES_AGENT_ENDPOINTS": server.endpoints_json("llama"),
        "SALES_AGENT_DB": str(tmp_path / "agent.db"),
        # Every turn must reach the model, not the cache.
        "SALES_AGENT_CACHE": "off",
        "SALES_AGENT_EMBEDDER": "none",
        # Long enough that a slow machine still gets the model's answer: a timeout is
        # measured by the parse command, here we check what comes back.
        "SALES_AGENT_TURN_BUDGET_S": "90",
    }


def calls_of(db: Path, provider: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT step, model, outcome, tokens_in, tokens_out, response FROM llm_calls "
            "WHERE provider = ? ORDER BY id",
            (provider,),
        ).fetchall()
    return [dict(r) for r in rows]


def assert_asked_the_model(rows: list[dict[str, Any]]) -> None:
    """Capture and detect, the first steps of a turn, asked the model whatever it answered.
    Generate may not: after five bad answers in a row the breaker takes the provider out for
    a cooldown, and a 135M model can give five on one message."""
    assert {r["step"] for r in rows} >= {"capture", "detect"}, rows


def assert_streamed_answers(rows: list[dict[str, Any]]) -> None:
    """Answers that came back whole through the streaming SDK: the model's text, and the usage
    the server sends in its last chunk. A stream that broke would be error:connection."""
    answered = [
        r for r in rows if r["outcome"] in ("win", "error:invalid_output") and r["tokens_out"] > 0
    ]
    assert answered, f"no answer came back: {[r['outcome'] for r in rows]}"
    for r in answered:
        assert r["tokens_in"] > 0
        assert r["model"] == llama_server.MODEL_NAME
    # The router writes "[kind] message" only when nothing streamed.
    assert any(r["response"].strip() and not PLACEHOLDER.match(r["response"]) for r in answered)


async def test_a_turn_through_the_app_wiring_streams_from_the_model(
    llama: RunningServer, tmp_path: Path
) -> None:
    settings = Settings.from_env(model_settings(llama, tmp_path))
    key = ThreadKey("realmodel", "test", uuid.uuid4().hex[:8])
    async with runtime(settings) as rt:
        card = await rt.engine.handle(TurnInput(key=key, text=MESSAGES[0], message_id="m1"))

    assert card.situation in SITUATIONS
    assert card.reply.strip() and card.strategy
    by_step = {c.step: c for c in card.calls}
    assert set(STEPS) <= set(by_step)
    for call in card.calls:
        # The model's answer, or the offline tier's when the model's did not hold.
        assert (call.provider, call.fallback) in (("llama", False), ("offline", True))
        if call.provider == "llama":
            assert call.ttft_ms is not None and 0 < call.ttft_ms <= call.ms
    rows = calls_of(settings.db_path, "llama")
    assert_asked_the_model(rows)
    assert_streamed_answers(rows)


def test_replay_gives_every_message_a_card_from_a_weak_model(
    llama: RunningServer, tmp_path: Path
) -> None:
    source = tmp_path / "turns.jsonl"
    source.write_text(
        "".join(json.dumps({"thread": f"t{i}", "text": m}) + "\n" for i, m in enumerate(MESSAGES)),
        encoding="utf-8",
    )
    env = app_env(model_settings(llama, tmp_path))
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "replay", str(source), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cards = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(cards) == len(MESSAGES)
    for card in cards:
        assert card["situation"] in SITUATIONS
        # (The tip may be empty: the contract lets the model leave it out.)
        assert card["reply"].strip()
        assert set(card["providers"]) >= set(STEPS)
        assert all(p.split("/")[0] in ("llama", "offline") for p in card["providers"].values())
    rows = calls_of(tmp_path / "agent.db", "llama")
    assert_asked_the_model(rows)
    assert_streamed_answers(rows)


def test_a_server_that_cannot_start_says_why(
    llama_ready: llama_server.Installed, tmp_path: Path
) -> None:
    broken = tmp_path / "not-a-model.gguf"
    broken.write_bytes(b"GGUF but not really")
    with (
        pytest.raises(llama_server.SetupError, match="exited with code") as failed,
        llama_server.serving(
            llama_server.Installed(llama_ready.binary, broken), log_path=tmp_path / "server.log"
        ),
    ):
        pass
    # The reason comes with the server's own last lines.
    assert "not-a-model.gguf" in str(failed.value)
