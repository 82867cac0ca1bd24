"""Anthropic's Messages API through the official SDK (`AsyncAnthropic`), streamed.

JSON as plain text: the system prompt asks for one JSON object and the contract parser takes the
outer object, so no tool use and no prefill (newer Claude models reject assistant prefill, and
the parser already tolerates a sentence or a code fence around the object). The system prompt is
sent as a cacheable block when it is long enough for Anthropic's prompt cache (1,024 tokens).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from anthropic import AsyncAnthropic
from anthropic.types import (
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextDelta,
)

from ..base import SDKProvider
from ..pool import Pool, PoolKind, http_client
from ..pricing import PriceTable
from ..prompts import Prompt
from ..streaming import CallFailed, Progress
from . import Connected

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
    return Connected(
        p, lambda model: AnthropicProvider(client, model, p, name=config.name, timeout_s=timeout_s)
    )


class AnthropicProvider(SDKProvider):
    def __init__(
        self,
        client: AsyncAnthropic,
        model: str,
        pool: Pool,
        *,
        name: str = "anthropic",
        prices: PriceTable | None = None,
        timeout_s: float = 8.0,
    ) -> None:
        super().__init__(name, model, pool, prices=prices, timeout_s=timeout_s)
        self.client = client

    async def _stream(self, prompt: Prompt, timeout: float, progress: Progress) -> None:
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
