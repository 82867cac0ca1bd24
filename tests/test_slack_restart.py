"""A real `sales-agent run` process against the fake Slack, killed with SIGKILL mid-turn and
started again: the durable inbox posts the reply exactly once. Then SIGTERM stops it cleanly.

Run as a script, this file is the process under test: `app.main(["run"])`, with the engine made
slow by SALES_AGENT_TEST_TURN_DELAY_S (a hook that exists only here, in the test harness).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-9999-8888-KILLTESTBOTTOKEN"
APP_TOKEN = "xapp-1-A0001-7777-KILLTESTAPPTOKEN"


def _serve() -> int:
    sys.path.insert(0, str(ROOT))
    delay = float(os.environ.get("SALES_AGENT_TEST_TURN_DELAY_S") or 0)
    if delay:
        from engine.pipeline.orchestrator import Engine

        original = Engine.stream

        async def slow_stream(self: Engine, turn: Any) -> Any:
            await asyncio.sleep(delay)
            async for event in original(self, turn):
                yield event

        Engine.stream = slow_stream  # type: ignore[method-assign]
    import app

    return app.main(["run"])


if __name__ == "__main__":
    sys.exit(_serve())


from devtools.fake_slack import TEAM_ID, FakeSlack, app_mention_event  # noqa: E402
from tests.slack_kit import spawn_run  # noqa: E402

pytestmark = pytest.mark.asyncio


async def _spawn(fake: FakeSlack, db: Path, log: Path, delay: float) -> asyncio.subprocess.Process:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": fake.api_url,
        "SALES_AGENT_DB": str(db),
        "SALES_AGENT_LOG_LEVEL": "DEBUG",
        "SALES_AGENT_TEST_TURN_DELAY_S": str(delay),
        # The killed process's lease must run out before the next one takes its turn over.
        "SALES_AGENT_INBOX_LEASE_S": "2",
    }
    return await spawn_run(Path(__file__).resolve(), env, log)


def _row(db: Path, item_id: str) -> tuple[Any, ...] | None:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT state, attempts, reply_ts FROM inbox WHERE id = ?", [item_id]
        ).fetchone()


@pytest.mark.timeout(45)
async def test_killed_mid_turn_the_reply_is_posted_exactly_once_after_restart(
    tmp_path: Path,
) -> None:
    db, log = tmp_path / "agent.db", tmp_path / "bot.log"
    async with FakeSlack() as fake:
        proc = await _spawn(fake, db, log, delay=30.0)
        try:
            await fake.wait_connected(timeout=20)
            ev = app_mention_event("We already use Gong and honestly it's too expensive for us")
            # The ack goes out after the inbox row is written (process_before_response).
            await fake.wait_for_ack(await fake.push_event(ev), timeout=10)
            await fake.wait_for_call("assistant.threads.setStatus", timeout=10)
        finally:
            proc.kill()  # SIGKILL: no cleanup, mid-turn
            await proc.wait()
        item_id = f"{TEAM_ID}:C1:{ev['ts']}"
        assert _row(db, item_id) == ("pending", 1, None)
        assert fake.messages("C1", ev["ts"]) == []

        proc = await _spawn(fake, db, log, delay=0.0)
        try:
            await fake.wait_connected(timeout=20, count=2)
            await fake.wait_for_call("chat.stopStream", timeout=20)  # the card closes it
            deadline = time.monotonic() + 10
            while (_row(db, item_id) or ("",))[0] != "done" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            state, attempts, reply_ts = _row(db, item_id) or ("", 0, None)
            assert (state, attempts) == ("done", 2)
            await asyncio.sleep(0.5)  # nothing else arrives
            replies = fake.messages("C1", ev["ts"])
            assert [m["ts"] for m in replies] == [reply_ts]
            assert "Gong" in str(replies[0]["blocks"])
            assert len(fake.calls_to("chat.startStream")) == 1
        finally:
            proc.send_signal(signal.SIGTERM)  # graceful: stop taking events, close up
            code = await asyncio.wait_for(proc.wait(), 20)
        assert code == 0
    text = log.read_text(errors="replace")
    assert "resuming unfinished turn" in text and "Slack bot stopped" in text
    assert "Sending a request" in text  # DEBUG logs of the SDK were on
    for secret in (BOT_TOKEN, APP_TOKEN, "KILLTESTBOTTOKEN", "KILLTESTAPPTOKEN"):
        assert secret not in text
