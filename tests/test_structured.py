"""Structured outputs per provider against the fake LLM server, which checks the request
shapes as the real APIs do: OpenAI's strict json_schema, Anthropic's output_config.format, a
compatible endpoint's lenient schema; a 400 to the schema steps down once and is remembered;
an answer cut at max_tokens is `truncated`, and that kind reaches the router and its log."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from devtools.fake_llm import ParsedRequest, default_answerer
from engine.errors import ProviderError
from engine.llm import prompts, schemas
from engine.llm.pool import Pool, http_client
from engine.llm.providers.openai import OpenAIProvider, openai_client
from engine.model import Capture, Detection, Draft
from engine.settings import Settings, SettingsError
from tests.llm_kit import GPT4O, HAIKU, Kit, generations, request

pytestmark = pytest.mark.timeout(20)


def compatible(kit: Kit, structured: str = "json_schema") -> OpenAIProvider:
    """An OpenAI-compatible endpoint's provider (max_tokens, the lenient schema)."""
    pool = Pool("local", http_client("h1"), "h1")
    kit.pools.append(pool)
    client = openai_client(pool, "unused", kit.server.openai_base_url)
    return OpenAIProvider(
        client,
        "smollm",
        pool,
        name="local",
        official=False,
        structured=structured,  # type: ignore[arg-type]
    )


async def test_openai_sends_the_strict_schema_and_explicit_sampling(kit: Kit) -> None:
    provider = kit.openai(GPT4O)
    for step, kind in (("capture", Capture), ("detect", Detection), ("generate", Draft)):
        assert isinstance((await provider.complete(request(step))).value, kind)
    recs = {r.step: r for r in generations(kit.server)}
    # The fake refuses a strict schema that leaves a property optional or an object open.
    assert {r.structured for r in recs.values()} == {"json_schema"}
    assert all(r.outcome == "ok" for r in recs.values())
    assert recs["capture"].temperature == recs["detect"].temperature == 0.0
    assert recs["generate"].temperature == prompts.TEMPERATURE["generate"] > 0


async def test_the_request_body_carries_the_taxonomy_schema(kit: Kit) -> None:
    seen: list[dict[str, Any]] = []

    def spy(req: ParsedRequest) -> Any:
        seen.append(req.body)
        return default_answerer(req)

    kit.server.answerer = spy
    await kit.openai().complete(request("detect"))
    await compatible(kit).complete(request("capture"))
    await kit.anthropic(HAIKU).complete(request("detect"))
    official, lenient, anthropic = seen
    assert official["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "detect",
            "schema": schemas.schema("detect", strict=True),
            "strict": True,
        },
    }
    fmt = lenient["response_format"]
    assert fmt["json_schema"]["schema"] == schemas.schema("capture")
    assert fmt["json_schema"]["strict"] is False
    assert lenient["max_tokens"] == prompts.MAX_TOKENS["capture"]
    assert anthropic["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": schemas.schema("detect", strict=True, bounds=False),
        }
    }
    assert "temperature" not in anthropic  # SDK 2.15's Messages API has no sampling knobs


async def test_a_400_to_the_schema_steps_down_once_logs_once_and_is_remembered(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    kit.server.faults.add("reject_schema", times=None)
    provider = compatible(kit)
    with caplog.at_level(logging.WARNING, logger="engine.llm.base"):
        for _ in range(3):
            assert isinstance((await provider.complete(request("detect"))).value, Detection)
    assert [r.structured for r in generations(kit.server)] == [
        "json_schema",  # 400
        "json_object",
        "json_object",
        "json_object",
    ]
    assert [r.status for r in generations(kit.server)] == [400, 200, 200, 200]
    assert provider.structured == "json_object"
    stepped = [r for r in caplog.records if "rejected structured output" in r.message]
    assert len(stepped) == 1


async def test_a_server_refusing_json_mode_too_ends_on_the_prompt_alone(kit: Kit) -> None:
    kit.server.faults.add("reject_schema", times=None, formats=["json_schema", "json_object"])
    provider = compatible(kit)
    assert isinstance((await provider.complete(request("generate"))).value, Draft)
    assert isinstance((await provider.complete(request("generate"))).value, Draft)
    assert [r.structured for r in generations(kit.server)] == [
        "json_schema",
        "json_object",
        None,
        None,
    ]


async def test_anthropic_steps_down_to_the_plain_request(kit: Kit) -> None:
    kit.server.faults.add("reject_schema", times=None)
    provider = kit.anthropic(HAIKU)
    assert isinstance((await provider.complete(request("detect"))).value, Detection)
    assert provider.structured == "none"  # the Messages API has no JSON mode in between
    assert [r.structured for r in generations(kit.server)] == ["json_schema", None]


async def test_a_400_about_something_else_is_a_client_error_not_a_step_down(kit: Kit) -> None:
    provider = compatible(kit)
    prompt = dataclasses.replace(prompts.build(request("detect")), temperature=3.0)
    with pytest.raises(ProviderError) as caught:
        await provider.run(prompt, timeout=2)
    assert caught.value.kind == "client"
    assert provider.structured == "json_schema"
    assert len(generations(kit.server)) == 1


@pytest.mark.parametrize("vendor", ["anthropic", "openai", "compatible"])
async def test_an_answer_cut_at_max_tokens_is_truncated(kit: Kit, vendor: str) -> None:
    provider = {
        "anthropic": lambda: kit.anthropic(HAIKU),
        "openai": kit.openai,
        "compatible": lambda: compatible(kit),
    }[vendor]()
    prompt = dataclasses.replace(prompts.build(request("generate")), max_tokens=8)
    with pytest.raises(ProviderError) as caught:
        await provider.run(prompt, timeout=2)
    assert caught.value.kind == "truncated", caught.value
    # A wrong-shaped answer that was not cut is still invalid output.
    kit.server.faults.add("invalid_contract")
    with pytest.raises(ProviderError) as caught:
        await provider.run(prompts.build(request("generate")), timeout=2)
    assert caught.value.kind == "invalid_output"


async def test_truncated_reaches_the_router_log_and_is_retried(kit: Kit) -> None:
    # A model that rambles past generate's budget: every answer is cut at max_tokens.
    kit.server.answerer = lambda req: {"reply": "word " * 2000, "coaching_tip": "x"}
    router = kit.router([kit.openai()], mode="single")
    result = await router.complete(request("generate"))
    await router.aclose()
    assert result.call.fallback  # retried once, then the offline tier answered
    assert [r.outcome for r in kit.log.records if r.provider == "openai"] == [
        "error:truncated",
        "error:truncated",
    ]
    assert [r.output_tokens for r in generations(kit.server)] == [
        prompts.MAX_TOKENS["generate"]
    ] * 2


def test_endpoints_take_a_structured_setting() -> None:
    env = {
        "SALES_AGENT_ENDPOINTS": '[{"name": "a", "base_url": "http://x/v1", "model": "m"},'
        ' {"name": "b", "base_url": "http://y/v1", "model": "m", "structured": "none"}]'
    }
    a, b = Settings.from_env(env).providers
    assert a.structured is None and b.structured == "none"
    with pytest.raises(SettingsError, match="structured must be one of"):
        Settings.from_env(
            {
                "SALES_AGENT_ENDPOINTS": '[{"name": "a", "base_url": "u", "model": "m",'
                ' "structured": "grammar"}]'
            }
        )
