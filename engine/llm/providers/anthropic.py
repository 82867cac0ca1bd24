"""Anthropic's Messages API through the official SDK (`AsyncAnthropic`), streamed.

Held to the step's JSON schema by structured outputs: `output_config={"format": {"type":
"json_schema", "schema": ...}}` (anthropic 2.15), with the strict schema minus numeric bounds,
which Anthropic's structured outputs do not take (the contract checks the confidence's range).
Fallback: a model or endpoint that answers 400 to `output_config` (older Claude models) gets the
plain request from then on (base.py steps down; the Messages API has no JSON mode between the
two), where the system prompt asks for one JSON object and the contract parser takes the outer
object. Not strict tool use: it would put the answer in a tool call's input instead of the text
stream the reply is read from as it is written. No prefill either (newer Claude models reject
assistant prefill). `stop_reason: "max_tokens"` marks the answer as cut. The system prompt is
sent as a cacheable block when it is long enough for Anthropic's prompt cache (1,024 tokens).
No `temperature`: the Messages API of SDK 2.15 no longer takes sampling parameters (the
schema, not sampling, is what holds capture and detect to their labels here).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from anthropic import AsyncAnthropic, Omit, omit
from anthropic.types import (
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextDelta,
)
from anthropic.types.output_config_param import OutputConfigParam

from .. import schemas
from ..base import SDKProvider
from ..pool import Pool, PoolKind, http_client
from ..pricing import PriceTable
from ..prompts import Prompt
from ..streaming import CallFailed, Progress
from . import Connected, StructuredOutput, spec

if TYPE_CHECKING:
    from ...settings import ProviderSettings

CACHEABLE_SYSTEM_TOKENS = 1024


def anthropic_client(pool: Pool, api_key: str, base_url: str | None) -> AsyncAnthropic:
    """The SDK client over the endpoint's pool; SDK retries off (the router owns retries)."""
    client = AsyncAnthropic(
        api_key=api_key, base_url=base_url, http_client=pool.client, max_retries=0
    )
    pool.probe = lambda: client.models.list(limit=1)
    return client


def connect(
    config: ProviderSettings, *, pool: PoolKind, verify: ssl.SSLContext | bool, timeout_s: float
) -> Connected:
    """The registry's entry point: one pooled client, a provider per model over it."""
    p = Pool(config.name, http_client(pool, verify=verify), pool)
    client = anthropic_client(p, config.api_key or "", config.base_url)
    structured = config.structured or spec(config.kind).structured_output
    return Connected(
        p,
        lambda model: AnthropicProvider(
            client, model, p, name=config.name, timeout_s=timeout_s, structured=structured
        ),
    )


class AnthropicProvider(SDKProvider):
    LADDER: tuple[StructuredOutput, ...] = ("json_schema", "none")

    def __init__(
        self,
        client: AsyncAnthropic,
        model: str,
        pool: Pool,
        *,
        name: str = "anthropic",
        prices: PriceTable | None = None,
        timeout_s: float = 8.0,
        structured: StructuredOutput = "json_schema",
    ) -> None:
        super().__init__(
            name, model, pool, prices=prices, timeout_s=timeout_s, structured=structured
        )
        self.client = client

    @staticmethod
    def output_config(step: str, structured: StructuredOutput) -> OutputConfigParam | Omit:
        if structured != "json_schema":
            return omit
        schema = schemas.schema(step, strict=True, bounds=False)
        return {"format": {"type": "json_schema", "schema": schema}}

    async def _stream(
        self, prompt: Prompt, timeout: float, progress: Progress, structured: StructuredOutput
    ) -> None:
        system: Any = prompt.system
        if len(prompt.system) // 4 >= CACHEABLE_SYSTEM_TOKENS:
            system = [
                {"type": "text", "text": prompt.system, "cache_control": {"type": "ephemeral"}}
            ]
        stream = await self.client.messages.create(
            model=self.model,
            max_tokens=prompt.max_tokens,
            system=system,
            messages=[{"role": "user", "content": prompt.user}],
            output_config=self.output_config(prompt.step, structured),
            stream=True,
            timeout=timeout,
        )
        stopped = False
        try:
            async for event in stream:
                if isinstance(event, RawContentBlockDeltaEvent):
                    delta = event.delta
                    if isinstance(delta, TextDelta) and delta.text:
                        progress.text_piece(delta.text)
                elif isinstance(event, RawMessageStartEvent):
                    usage = event.message.usage
                    progress.tokens_in = (
                        usage.input_tokens
                        + (usage.cache_creation_input_tokens or 0)
                        + (usage.cache_read_input_tokens or 0)
                    )
                elif isinstance(event, RawMessageDeltaEvent):
                    progress.tokens_out = event.usage.output_tokens
                    progress.cut = event.delta.stop_reason == "max_tokens"
                elif isinstance(event, RawMessageStopEvent):
                    stopped = True
        finally:
            # Cancelled or cut short: closing an unfinished HTTP/1.1 response closes its
            # connection (the server sees the disconnect); open a spare in the background.
            await stream.close()
            if not stopped:
                self.pool.replenish()
        if not stopped:
            raise CallFailed(
                "connection", "the stream ended before message_stop", text=progress.text
            )
