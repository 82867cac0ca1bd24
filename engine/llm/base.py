"""What every SDK-backed provider shares: streaming a prompt, timing it, parsing the answer
against the output contract, mapping SDK exceptions to `ProviderError` kinds, and cost.

The streaming contract itself (Progress, Completion, CallFailed) is in streaming.py. A subclass
implements `_stream(prompt, timeout, progress, structured)`: send the prompt with the official
SDK, streaming, held to the output contract the way `structured` says (a JSON schema, JSON mode
or the prompt alone), report each text piece, the usage and a stop at `max_tokens` to
`progress`, and raise `CallFailed` for a stream that ends before the answer is complete.
Everything else lives here.

Structured output steps down, never loops: a provider starts at its registry row's (or its
endpoint's) `structured` setting; when the API answers 400 to that request shape (the error
names the schema, `response_format` or the format), the same call is sent again at once one
step down its `LADDER` (json_schema -> json_object -> none), logged once, and the provider
keeps the lower setting for every later call. A 400 at `none` is an ordinary client error.

An answer the contract refuses is `invalid_output`, or `truncated` when the API said it stopped
at `max_tokens` (or the JSON ran out mid-object): the router reads the kind.
"""

from __future__ import annotations

import email.utils
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import httpx2

from .. import contract
from ..errors import InvalidOutput, ProviderError
from ..model import StepCall
from ..ports import StepRequest, StepResult
from . import prompts
from .pool import Pool
from .pricing import PriceTable, default_prices
from .prompts import Prompt, count_tokens
from .providers import StructuredOutput
from .reply_stream import ReplyTap
from .streaming import CallFailed, Completion, Progress

log = logging.getLogger(__name__)

# Words of a 400's message that say the request's output format was the problem.
_FORMAT_WORDS = ("schema", "response_format", "format", "json")


class SDKProvider(ABC):
    """A StreamingProvider (and a Provider) for one model of one vendor endpoint, over that
    endpoint's pooled client."""

    # The structured-output settings this API has, strongest first (a 400 steps down).
    LADDER: tuple[StructuredOutput, ...] = ("json_schema", "json_object", "none")

    def __init__(
        self,
        name: str,
        model: str,
        pool: Pool,
        *,
        prices: PriceTable | None = None,
        timeout_s: float = 8.0,
        structured: StructuredOutput = "json_schema",
    ) -> None:
        self.name = name
        self.model = model
        self.pool = pool
        self.prices = prices or default_prices()
        self.timeout_s = timeout_s
        # A setting this API lacks (JSON mode on Anthropic) means the next one down it has.
        self.structured: StructuredOutput = self.LADDER[_rank(self.LADDER, structured)]

    @property
    def key(self) -> str:
        return f"{self.name}/{self.model}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"

    # The Provider port: one call, no routing.
    async def complete(self, request: StepRequest) -> StepResult:
        progress = Progress()
        if request.on_reply is not None:
            ReplyTap(request.on_reply).attach(progress, self)
        done = await self.run(prompts.build(request), timeout=self.timeout_s, progress=progress)
        call = StepCall(
            step=request.step,
            provider=self.name,
            model=self.model,
            ms=done.ms,
            tokens_in=done.tokens_in,
            tokens_out=done.tokens_out,
            ttft_ms=done.ttft_ms,
        )
        return StepResult(value=done.value, call=call)

    async def run(
        self, prompt: Prompt, *, timeout: float, progress: Progress | None = None
    ) -> Completion:
        """Stream the prompt and parse the answer; raises ProviderError (usually CallFailed)."""
        progress = progress if progress is not None else Progress()
        started = time.perf_counter()
        try:
            while True:
                try:
                    remaining = timeout - (time.perf_counter() - started)
                    await self._stream(prompt, max(remaining, 0.001), progress, self.structured)
                    break
                except ProviderError:
                    raise
                except Exception as exc:
                    error = map_error(exc, text=progress.text)
                    if not self._step_down(exc, error, progress):
                        raise error from exc
        finally:
            # Usage arrives at the end of a stream; a call cut short after it began writing
            # was still billed: estimate what the API did not report.
            if progress.parts:
                progress.tokens_in = progress.tokens_in or prompt.tokens
                progress.tokens_out = progress.tokens_out or count_tokens(progress.text)
        text = progress.text
        try:
            value = contract.parse(prompt.step, text)
        except InvalidOutput as exc:
            # The API said it stopped at max_tokens: whatever the parser saw, it was cut off.
            kind = "truncated" if progress.cut else exc.kind
            reason = f"cut at max_tokens ({exc})" if progress.cut and kind != exc.kind else str(exc)
            raise CallFailed(kind, reason, text=text) from None
        if prompts.repeats_prompt(prompt.system, text):
            raise CallFailed("invalid_output", "the answer quotes the prompt", text=text)
        ended = time.perf_counter()
        ttft = progress.first_token_at
        return Completion(
            value=value,
            text=text,
            tokens_in=progress.tokens_in,
            tokens_out=progress.tokens_out,
            cost_usd=self.cost(progress.tokens_in, progress.tokens_out),
            ttft_ms=(ttft - started) * 1000 if ttft is not None else None,
            ms=(ended - started) * 1000,
        )

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return self.prices.cost(self.model, tokens_in, tokens_out)

    def _step_down(self, exc: BaseException, error: ProviderError, progress: Progress) -> bool:
        """A 400 to the structured request shape, before anything streamed: use the next
        setting down, from now on. False when it is some other error (or nothing is left)."""
        if error.kind != "client" or getattr(exc, "status_code", None) != 400 or progress.parts:
            return False
        if self.structured == "none" or not any(w in str(error).lower() for w in _FORMAT_WORDS):
            return False
        lower = self.LADDER[_rank(self.LADDER, self.structured) + 1]
        log.warning(
            "%s rejected structured output %r (%s); using %r from now on",
            self.key,
            self.structured,
            error,
            lower,
        )
        self.structured = lower
        return True

    @abstractmethod
    async def _stream(
        self, prompt: Prompt, timeout: float, progress: Progress, structured: StructuredOutput
    ) -> None: ...


def _rank(ladder: tuple[StructuredOutput, ...], setting: StructuredOutput) -> int:
    """Where a setting sits on a ladder that may lack it (in the full order of settings)."""
    order = ("json_schema", "json_object", "none")
    return next(
        (i for i, s in enumerate(ladder) if order.index(s) >= order.index(setting)),
        len(ladder) - 1,
    )


# Errors ---------------------------------------------------------------------------------------


def map_error(exc: BaseException, *, text: str = "") -> ProviderError:
    """An SDK or transport exception as a ProviderError kind.

    Works on both SDKs by shape (`status_code`, `response`), so one table serves Anthropic,
    OpenAI and any OpenAI-compatible endpoint.
    """
    if isinstance(exc, ProviderError):
        return exc
    name = type(exc).__name__
    message = _message(exc)
    if isinstance(exc, TimeoutError | httpx2.TimeoutException) or name == "APITimeoutError":
        return CallFailed("timeout", f"timed out: {message}", text=text)
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if isinstance(status, int) and status >= 400:
        headers = getattr(response, "headers", None)
        if status == 429:
            return CallFailed(
                "rate_limit",
                f"429 rate limited: {message}",
                retry_after=retry_after(headers),
                text=text,
            )
        if status == 408:
            return CallFailed("timeout", f"408: {message}", text=text)
        if status >= 500 or status in (409, 425):
            return CallFailed("server", f"{status}: {message}", text=text)
        return CallFailed("client", f"{status}: {message}", text=text)
    if name == "APIResponseValidationError":
        return CallFailed("invalid_output", f"response did not validate: {message}", text=text)
    if name == "APIConnectionError" or isinstance(exc, httpx2.TransportError | OSError):
        return CallFailed("connection", f"connection failed: {message}", text=text)
    if name in ("APIError", "APIStatusError"):
        # An error event in the middle of a 200 stream (overloaded, server error).
        return CallFailed("server", f"error in stream: {message}", text=text)
    log.warning("unexpected %s from an LLM call: %s", name, message)
    return CallFailed("server", f"{name}: {message}", text=text)


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
    text = str(exc) or type(exc).__name__
    return text[:300]


def retry_after(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        raw = headers.get("retry-after")
        if raw is None:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            when = email.utils.parsedate_to_datetime(raw)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None
