"""What must hold on a real model, however weak, now that its answers are held to the schema
(llama.cpp compiles the json_schema `response_format` into a grammar): through the app's own
wiring (SALES_AGENT_ENDPOINTS, the OpenAI SDK, the router), every step's answers parse in at
least 90% of the attempts that got an answer back on 30 holdout messages; the reply streams and
turns end inside the turn budget; and a model that answers garbage still gets the rep a card.

The situation accuracy of the model against the offline tier on the same messages is printed,
not asserted: a 135M model is not a coach.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from app import runtime
from devtools import llama_server
from devtools.llama_server import RunningServer
from devtools.real_model_parse import STEPS, markdown, measure
from engine.data import HOLDOUT
from engine.events import Done, ReplyDelta
from engine.model import ThreadKey, TurnInput
from engine.settings import Settings
from engine.taxonomy import SITUATIONS

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(900)]

# The turn budget the streaming test holds turns to (the product's default is 8 s; a 135M
# model on two shared cores writes ~20 tokens/s, so a turn of three steps needs more).
TURN_BUDGET_S = 30.0
MESSAGES = (
    "We already use Gong and honestly it's too expensive for us.",
    "Can it export call notes to Salesforce? Our VP of Sales, Dana, signs off by March.",
    "Send me a quote for 40 seats and we can start the pilot next week.",
)


def settings_for(server: RunningServer, tmp_path: Path, **endpoint: str) -> Settings:
    endpoints = [
        {"name": "llama", "base_url": server.base_url, "model": llama_server.MODEL_NAME}
        | endpoint
    ]
    return Settings.from_env(
        {
            "SALES_AGENT_ENDPOINTS": json.dumps(endpoints),
            "SALES_AGENT_DB": str(tmp_path / "agent.db"),
            "SALES_AGENT_CACHE": "off",
            "SALES_AGENT_EMBEDDER": "none",
            "SALES_AGENT_TURN_BUDGET_S": str(TURN_BUDGET_S),
        }
    )


def test_every_steps_answers_parse_under_the_schema(llama: RunningServer) -> None:
    report = measure(30, llama.base_url, 20.0, HOLDOUT)
    print("\n" + markdown(report))
    for step in STEPS:
        f = report.steps[step]
        assert f.answered >= 10, (step, f)  # the model was asked, and it answered
        assert f.parsed >= 0.9 * f.answered, (step, f)


async def test_the_reply_streams_and_turns_end_inside_the_turn_budget(
    llama: RunningServer, tmp_path: Path
) -> None:
    settings = settings_for(llama, tmp_path)
    streamed_by_model = 0
    async with runtime(settings) as rt:
        for i, text in enumerate(MESSAGES):
            key = ThreadKey("realmodel", "stream", uuid.uuid4().hex[:8])
            started = time.perf_counter()
            deltas: list[str] = []
            card = None
            async for event in rt.engine.stream(TurnInput(key=key, text=text, message_id=f"m{i}")):
                if isinstance(event, ReplyDelta):
                    deltas.append(event.text)
                elif isinstance(event, Done):
                    card = event.suggestion
            elapsed = time.perf_counter() - started
            assert card is not None and card.reply.strip() and card.situation in SITUATIONS
            # The budget, plus what the offline tier and the store take after it.
            assert elapsed <= TURN_BUDGET_S + 2.0, elapsed
            generate = next(c for c in card.calls if c.step == "generate")
            if generate.provider == "llama":
                streamed_by_model += 1
                # The reply arrived in pieces as the model wrote it, and they add up to it.
                assert len(deltas) > 1
                assert "".join(deltas).strip() == card.reply.strip()
    assert streamed_by_model >= 1, "the model never wrote a reply"


async def test_a_model_answering_garbage_still_gets_the_rep_a_card(
    llama: RunningServer, tmp_path: Path
) -> None:
    """Without the schema (structured "none") this model answers prose or broken JSON: the
    contract refuses it, and every turn still ends with a card that says so."""
    settings = settings_for(llama, tmp_path, structured="none")
    async with runtime(settings) as rt:
        cards = [
            await rt.engine.handle(
                TurnInput(ThreadKey("realmodel", "garbage", f"t{i}"), text, f"m{i}")
            )
            for i, text in enumerate(MESSAGES)
        ]
    for card in cards:
        assert card.situation in SITUATIONS and card.reply.strip() and card.strategy
        for call in card.calls:
            assert (call.provider, call.fallback) in (("llama", False), ("offline", True))
        if any(c.fallback_reason == "answered_badly" for c in card.calls):
            assert any("answered badly" in note for note in card.notes)
    assert any(c.fallback for card in cards for c in card.calls), "the model never failed"
