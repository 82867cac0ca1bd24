"""OpenAI Chat Completions through the official SDK (`AsyncOpenAI`), streamed; the same class
serves OpenAI-compatible endpoints (openai_compatible.py).

JSON as plain text with `response_format={"type": "json_object"}` (JSON mode, no tools), so any
compatible endpoint works. Usage comes from the final chunk (`stream_options.include_usage`).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from openai import AsyncOpenAI, omit

from ..base import SDKProvider
from ..pool import Pool, PoolKind, http_client
from ..pricing import PriceTable
from ..prompts import Prompt
from ..streaming import CallFailed, Progress
from . import Connected

if TYPE_CHECKING:
    from ...settings import ProviderSettings


def openai_client(pool: Pool, api_key: str, base_url: str | None) -> AsyncOpenAI:
    """The SDK client over the endpoint's pool; SDK retries off (the router owns retries)."""
    client = AsyncOpenAI(api_key=api_key, base_url=base_url, http_client=pool.client, max_retries=0)
    pool.probe = client.models.list
    return client


def connect(
    config: ProviderSettings,
    *,
    pool: PoolKind,
    verify: ssl.SSLContext | bool,
    timeout_s: float,
    official: bool = True,
) -> Connected:
    """The registry's entry point: one pooled client, a provider per model over it."""
    p = Pool(config.name, http_client(pool, verify=verify), pool)
    # Local servers take any key; the SDK insists on one.
    client = openai_client(p, config.api_key or "unused", config.base_url)
    return Connected(
        p,
        lambda model: OpenAIProvider(
            client, model, p, name=config.name, official=official, timeout_s=timeout_s
        ),
    )


class OpenAIProvider(SDKProvider):
    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        pool: Pool,
        *,
        name: str = "openai",
        official: bool = True,
        prices: PriceTable | None = None,
        timeout_s: float = 8.0,
    ) -> None:
        super().__init__(name, model, pool, prices=prices, timeout_s=timeout_s)
        self.client = client
        # OpenAI's own API wants max_completion_tokens (newer models reject max_tokens);
        # compatible servers still expect max_tokens.
        self.official = official

    async def _stream(self, prompt: Prompt, timeout: float, progress: Progress) -> None:
        stream = await self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            response_format={"type": "json_object"},
            max_completion_tokens=prompt.max_tokens if self.official else omit,
            max_tokens=omit if self.official else prompt.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            timeout=timeout,
        )
        finished = False
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    progress.tokens_in = chunk.usage.prompt_tokens
                    progress.tokens_out = chunk.usage.completion_tokens
                error = (chunk.model_extra or {}).get("error")
                if error:
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise CallFailed("server", f"error in stream: {message}", text=progress.text)
                for choice in chunk.choices or ():
                    piece = choice.delta.content if choice.delta is not None else None
                    if piece:
                        progress.text_piece(piece)
                    if choice.finish_reason:
                        finished = True
        finally:
            # Cancelled or cut short: closing the unfinished response closes its HTTP/1.1
            # connection (the server sees the disconnect); open a spare in the background.
            await stream.close()
            if not finished:
                self.pool.replenish()
        if not finished:
            raise CallFailed(
                "connection", "the stream ended without a finish_reason", text=progress.text
            )
