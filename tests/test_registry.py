"""The provider registry is the one place a provider is declared: settings read its variables,
the factory connects its module, log redaction masks its key shape, and the router races
anything that streams, HTTP or not."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio

from bot.logs import RedactSecrets
from devtools.fake_llm import FakeLLMServer
from engine import contract
from engine.cache.fingerprint import answer_version
from engine.llm import prompts
from engine.llm.factory import build_llm
from engine.llm.offline import answer
from engine.llm.providers import (
    ENDPOINT_KIND,
    PROVIDERS,
    STRUCTURED_OUTPUTS,
    ProviderSpec,
    spec,
)
from engine.llm.recorder import CallRecorder
from engine.llm.router import Router, RouterConfig
from engine.llm.streaming import Completion, Progress, StreamingProvider
from engine.model import Detection
from engine.ports import CallRecord, StepRequest
from engine.settings import ProviderSettings, Settings

pytestmark = pytest.mark.timeout(20)

NATIVE = [row for row in PROVIDERS if row.native]
# One real-looking key per provider with a key shape: a row added without one fails here.
SAMPLE_KEYS = {"anthropic": "sk-ant-api03-abcdefghijk", "openai": "sk-proj-ABCDEFGH123"}


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(latency_profile="zero", time_scale=0) as srv:
        yield srv


def test_every_row_is_complete_and_its_module_connects() -> None:
    assert [row.name for row in PROVIDERS] == ["anthropic", "openai", ENDPOINT_KIND]
    for row in PROVIDERS:
        assert callable(row.connector())
        assert row.structured_output in STRUCTURED_OUTPUTS
    for row in NATIVE:
        assert row.base_url_env and row.fast_model and row.powerful_model and row.secret_shape


@pytest.mark.parametrize("native", NATIVE, ids=lambda r: r.name)
def test_settings_read_each_native_provider_from_its_registry_variables(
    native: ProviderSpec,
) -> None:
    assert native.key_env is not None and native.base_url_env is not None
    env = {native.key_env: "key-123456", native.base_url_env: "http://127.0.0.1:9/v1"}
    [p] = Settings.from_env(env).providers
    assert (p.kind, p.name, p.api_key, p.base_url) == (
        native.name,
        native.name,
        "key-123456",
        "http://127.0.0.1:9/v1",
    )
    assert (p.fast_model, p.powerful_model) == (native.fast_model, native.powerful_model)
    env |= {native.fast_env: "small-1", native.powerful_env: "big-1"}
    [p] = Settings.from_env(env).providers
    assert (p.fast_model, p.powerful_model) == ("small-1", "big-1")
    # The model of a configured provider is part of the cache's answer version.
    assert answer_version(Settings.from_env(env)) != answer_version(
        Settings.from_env(env | {native.powerful_env: "big-2"})
    )


def test_tier_order_is_registry_order_then_endpoints() -> None:
    env = {row.key_env or "": "k-123456" for row in reversed(NATIVE)}
    env["SALES_AGENT_ENDPOINTS"] = '[{"name": "local", "base_url": "http://x/v1", "model": "m"}]'
    names = [p.name for p in Settings.from_env(env).providers]
    assert names == [*(row.name for row in NATIVE), "local"]


def test_log_redaction_masks_every_registered_key_shape() -> None:
    shaped = {row.name for row in PROVIDERS if row.secret_shape}
    assert set(SAMPLE_KEYS) == shaped
    redact = RedactSecrets([])
    for name, key in SAMPLE_KEYS.items():
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s here", (key,), None)
        redact.filter(record)
        assert key not in record.getMessage(), name
        assert record.getMessage().endswith("-*** here"), record.getMessage()


async def test_the_factory_connects_each_configured_row(server: FakeLLMServer) -> None:
    settings = Settings(
        providers=(
            ProviderSettings.native("anthropic", "test-key", server.base_url),
            ProviderSettings.native("openai", "test-key", server.openai_base_url),
            ProviderSettings(
                ENDPOINT_KIND, "local", None, server.openai_base_url, "llama-1", "llama-1"
            ),
        ),
        router="single",
        tiering=False,
    )
    stack = await build_llm(settings)
    try:
        assert set(stack.names) == {
            "anthropic/claude-3-5-haiku-latest",
            "anthropic/claude-sonnet-4-20250514",
            "openai/gpt-4o-mini",
            "openai/gpt-4o",
            "local/llama-1",
        }
        assert list(stack.stats().pools) == ["anthropic", "openai", "local"]
        result = await stack.complete(StepRequest("detect", "It costs too much", {}))
        assert result.call.provider == "anthropic" and not result.call.fallback
    finally:
        await stack.aclose()
    # One warm-up per connection, not per model: fast and powerful share the pool.
    assert server.count(endpoint="models") == 3


class InProcess:
    """A provider that is not HTTP at all: it answers from the rules, in this process, after
    "thinking" long enough for its HTTP rival's request to reach the server."""

    name = "inproc"
    model = "rules-inproc"
    key = "inproc/rules-inproc"

    async def run(
        self, prompt: prompts.Prompt, *, timeout: float, progress: Progress | None = None
    ) -> Completion:
        started = time.perf_counter()
        await asyncio.sleep(0.3)
        assert prompt.step == "detect"
        value = answer(StepRequest("detect", "It costs too much, we use Gong", {}))
        text = str(contract.to_json(value))
        if progress is not None:
            progress.text_piece(text)
        ms = (time.perf_counter() - started) * 1000
        return Completion(value, text, prompt.tokens, 1, 0.0, ms, ms)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return 0.0


class MemoryLog:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    async def log_calls(self, records: Sequence[CallRecord]) -> None:
        self.records.extend(records)

    async def recent_calls(self, limit: int) -> Sequence[CallRecord]:
        return self.records[-limit:]


async def test_a_provider_that_is_not_http_joins_a_race(server: FakeLLMServer) -> None:
    config = ProviderSettings.native("anthropic", "test-key", server.base_url)
    connected = spec("anthropic").connector()(config, pool="h1", verify=True, timeout_s=5.0)
    hanging = connected.provider("claude-hangs")
    server.faults.add("hang", model="claude-hangs", times=None)
    inproc: StreamingProvider = InProcess()
    log = MemoryLog()
    router = Router(
        {"powerful": [hanging, inproc]},
        config=RouterConfig(mode="race", explore=0, budget_s=3.0),
        recorder=CallRecorder(log),
    )
    try:
        result = await router.complete(StepRequest("detect", "It costs too much", {}))
        assert isinstance(result.value, Detection)
        assert result.call.provider == "inproc" and not result.call.fallback
        await server.wait_for(model="claude-hangs", outcome="client_disconnected")
        await router.aclose()
    finally:
        await connected.connection.aclose()
    assert {(r.provider, r.outcome) for r in log.records} == {
        ("inproc", "win"),
        ("anthropic", "cancelled"),
    }
