"""OpenAI Chat Completions through the official SDK (`AsyncOpenAI`), streamed; the same class
serves OpenAI-compatible endpoints (openai_compatible.py).

Held to the step's JSON schema through `response_format`: on OpenAI's own API
`{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}` with the strict
schema (every property required, absent slots `null`, `additionalProperties: false`); on a
compatible endpoint the same shape with the lenient schema (slots optional, so a grammar-
constrained model is not made to write nine nulls) and `strict: false`. One step down is JSON
mode (`{"type": "json_object"}`), then no `response_format` at all (base.py: a 400 steps down).
`finish_reason: "length"` marks the answer as cut at max_tokens. Usage comes from the final
chunk (`stream_options.include_usage`).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from openai import AsyncOpenAI, Omit, omit
from openai.types.chat.completion_create_params import ResponseFormat

from .. import schemas
from ..base import SDKProvider
from ..pool import Pool, PoolKind, http_client
from ..pricing import PriceTable
from ..prompts import Prompt
from ..streaming import CallFailed, Progress
from . import Connected, StructuredOutput, spec

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
    structured = config.structured or spec(config.kind).structured_output
    return Connected(
        p,
        lambda model: OpenAIProvider(
            client,
            model,
            p,
            name=config.name,
            official=official,
            timeout_s=timeout_s,
            structured=structured,
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
        structured: StructuredOutput = "json_schema",
    ) -> None:
        super().__init__(
            name, model, pool, prices=prices, timeout_s=timeout_s, structured=structured
        )
        self.client = client
        # OpenAI's own API wants max_completion_tokens (newer models reject max_tokens);
        # compatible servers still expect max_tokens.
        self.official = official

    def response_format(self, step: str, structured: StructuredOutput) -> ResponseFormat | Omit:
        if structured == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {
                    "name": step,
                    "schema": schemas.schema(step, strict=self.official),
                    "strict": self.official,
                },
            }
        if structured == "json_object":
            return {"type": "json_object"}
        return omit

    async def _stream(
        self, prompt: Prompt, timeout: float, progress: Progress, structured: StructuredOutput
    ) -> None:
        stream = await self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            response_format=self.response_format(prompt.step, structured),
            temperature=prompt.temperature,
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
                        progress.cut = choice.finish_reason == "length"
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
