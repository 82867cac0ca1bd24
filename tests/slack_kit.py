"""What the Slack bot tests share: tokens, a dict-backed response cache, and `Harness`, a
running bot (the `start` fixture in conftest.py builds one) against the fake Slack. A helper
module, not a test module: tests never import each other."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import SlackBot
from devtools.fake_slack import TEAM_ID, ApiCall, FakeSlack, app_mention_event
from engine.inbox import InboxStore
from engine.llm.offline import OfflineProvider
from engine.model import Suggestion, ThreadContext
from engine.pipeline.orchestrator import Engine
from engine.ports import CachedAnswer, StepRequest, StepResult
from engine.stats import CacheCounts, CacheStats, Percentiles
from storage import Store

BOT_TOKEN = "xoxb-1111-2222-SECRETBOTTOKEN"
APP_TOKEN = "xapp-1-A0001-3333-SECRETAPPTOKEN"
GONG = "We already use Gong and honestly it's too expensive for us"


class DictCache:
    """A minimal exact-match response cache behind the engine's ResponseCache port."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Suggestion] = {}
        self.lookups = 0

    def _key(self, text: str, context: ThreadContext) -> tuple[str, str]:
        return " ".join(text.lower().split()), json.dumps(context.values(), sort_keys=True)

    async def lookup(self, text: str, context: ThreadContext) -> CachedAnswer | None:
        self.lookups += 1
        hit = self.entries.get(self._key(text, context))
        return CachedAnswer(hit, "exact", 0.1) if hit else None

    async def store(self, text: str, context: ThreadContext, suggestion: Suggestion) -> None:
        self.entries[self._key(text, context)] = suggestion

    async def forget(self, suggestion_id: str) -> None:
        self.entries = {k: v for k, v in self.entries.items() if v.id != suggestion_id}

    def stats(self) -> CacheStats:
        # Only the size is kept: the other figures of this double are zero.
        return CacheStats(
            size=len(self.entries),
            capacity=0,
            vectors=0,
            ttl_s=0.0,
            version="memory",
            embedder="off",
            semantic="off: exact only",
            threshold=None,
            blocked=0,
            evictions=0,
            evicted={},
            guard_rejections=0,
            guard_reasons={},
            lookup_ms=Percentiles(),
            lookup_ms_exact_hits=Percentiles(),
            lookup_ms_embedded=Percentiles(),
            since_start=CacheCounts(0, 0, 0, 0, 0.0, 0, 0, 0),
        )


@dataclass
class Harness:
    fake: FakeSlack
    store: Store
    engine: Engine
    inbox: InboxStore
    bot: SlackBot
    pushed_at: dict[str, float] = field(default_factory=dict)

    async def mention(self, text: str, **kw: Any) -> dict[str, Any]:
        return await self.send(app_mention_event(text, **kw))

    async def send(self, event: dict[str, Any], **kw: Any) -> dict[str, Any]:
        self.pushed_at[event["ts"]] = time.monotonic()
        env = await self.fake.push_event(event, **kw)
        await self.fake.wait_for_ack(env)
        return event

    async def done(self, event: Mapping[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the inbox row of `event` to be done; returns it as a dict."""
        item_id = f"{TEAM_ID}:{event['channel']}:{event['ts']}"
        deadline = time.monotonic() + timeout
        while True:
            item = await self.inbox.get(item_id)
            if item is not None and item.state != "pending":
                return {
                    "state": item.state,
                    "reply_ts": item.reply_ts,
                    "suggestion_id": item.suggestion_id,
                    "error": item.error,
                    "attempts": item.attempts,
                }
            if time.monotonic() > deadline:
                raise TimeoutError(f"{item_id} not finished: {item}")
            await asyncio.sleep(0.01)

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return [m for m in self.fake.messages(channel, thread_ts) if m["ts"] != thread_ts]

    def card(self, channel: str, ts: str) -> dict[str, Any]:
        message = self.fake.message(channel, ts)
        assert message is not None
        return message


Start = Callable[..., Awaitable[Harness]]


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def block(message: Mapping[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in message["blocks"] if b.get("block_id") == block_id)


def calls_in(fake: FakeSlack, method: str, **args: str) -> list[ApiCall]:
    return [c for c in fake.calls_to(method) if all(c.args.get(k) == v for k, v in args.items())]


class SlowProvider:
    """The offline tier, but every step waits first: a turn that is still running."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.started = asyncio.Event()

    async def complete(self, request: StepRequest) -> StepResult:
        self.started.set()
        await asyncio.sleep(self.delay)
        return OfflineProvider().complete_now(request)


async def spawn_run(script: Path, env: Mapping[str, str], log: Path) -> asyncio.subprocess.Process:
    """`script` (a test file that runs `app.main(["run"])` as __main__) as a process of its
    own, in `log`'s folder: the shell's Slack, provider and Sales Agent settings left out,
    `env` put in, its output appended to `log`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_", "SALES_AGENT_", "DATABASE_URL"))
    }
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=clean | {"PYTHONUNBUFFERED": "1"} | dict(env),
            cwd=log.parent,
        )
