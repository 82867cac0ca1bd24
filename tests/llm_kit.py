"""What the provider, router, tiering and pool tests share: model names, a request builder,
and `Kit`, providers over pooled SDK clients for one fake LLM server (the `kit` fixture in
conftest.py). A helper module, not a test module: tests never import each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from devtools.fake_llm import FakeLLMServer
from engine.llm.base import SDKProvider
from engine.llm.pool import Pool, PoolKind, http_client
from engine.llm.providers.anthropic import AnthropicProvider, anthropic_client
from engine.llm.providers.openai import OpenAIProvider, openai_client
from engine.llm.recorder import CallRecorder
from engine.llm.router import Router, RouterConfig
from engine.model import Detection
from engine.playbook import default_playbook
from engine.ports import CallRecord, StepRequest

HAIKU, SONNET = "claude-3-5-haiku-latest", "claude-sonnet-4-20250514"
MINI, GPT4O = "gpt-4o-mini", "gpt-4o"
MESSAGE = "We already use Gong and honestly it's too expensive for us, we're 40 reps"


class MemoryLog:
    """The CallLog port in memory."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    async def log_calls(self, records: Sequence[CallRecord]) -> None:
        self.records.extend(records)

    async def recent_calls(self, limit: int) -> Sequence[CallRecord]:
        return list(reversed(self.records))[:limit]


@dataclass
class Kit:
    """Providers over pooled SDK clients for one fake server."""

    server: FakeLLMServer
    pools: list[Pool] = field(default_factory=list)
    log: MemoryLog = field(default_factory=MemoryLog)

    def anthropic(self, model: str = SONNET, *, kind: PoolKind = "h1") -> AnthropicProvider:
        pool = Pool("anthropic", http_client(kind), kind)
        self.pools.append(pool)
        client = anthropic_client(pool, "test-key", self.server.base_url)
        return AnthropicProvider(client, model, pool)

    def openai(self, model: str = GPT4O, *, kind: PoolKind = "h1") -> OpenAIProvider:
        pool = Pool("openai", http_client(kind), kind)
        self.pools.append(pool)
        client = openai_client(pool, "test-key", self.server.openai_base_url)
        return OpenAIProvider(client, model, pool)

    def router(
        self, providers: Sequence[SDKProvider] | dict[str, Sequence[SDKProvider]], **config: Any
    ) -> Router:
        routes = providers if isinstance(providers, dict) else {"powerful": providers}
        config.setdefault("explore", 0)  # configured order: the tests choose who goes first
        return Router(routes, config=RouterConfig(**config), recorder=CallRecorder(self.log))

    async def close(self) -> None:
        for pool in self.pools:
            await pool.aclose()


def request(step: str = "detect", text: str = MESSAGE, **kw: Any) -> StepRequest:
    if step == "generate":
        kw.setdefault("detection", Detection("price_objection", 0.8, "competitor_mention"))
        kw.setdefault("strategy", default_playbook().select("price_objection", {}))
    return StepRequest(step, text, kw.pop("context", {"pain": "deals slip"}), **kw)  # type: ignore[arg-type]


def generations(server: FakeLLMServer, **filters: Any) -> list[Any]:
    return server.find(endpoint=lambda e: e in ("messages", "chat"), **filters)
