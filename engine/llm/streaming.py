"""What the router needs from a provider, and nothing more: the streaming-provider protocol.

A provider streams one prompt, reports what it has produced so far to a `Progress` (the router
reads it for hedging and for the tokens of cancelled losers) and returns a `Completion`, or
raises `ProviderError`. Anything that does this can join a race: the SDK providers over pooled
HTTP (base.py) are one implementation; an in-process model would be another.

A `Connection` is what a provider runs on (an HTTP pool, a loaded model): the stack warms it up
before traffic and closes it at shutdown. The fast and powerful models of one endpoint share
one connection, so it is warmed and closed once, not once per model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ErrorKind, ProviderError
from ..model import StepValue
from .prompts import Prompt


class CallFailed(ProviderError):
    """A provider error that also carries what the call produced, for the call log."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retry_after: float | None = None,
        text: str = "",
    ) -> None:
        super().__init__(kind, message, retry_after=retry_after)
        self.text = text


class Progress:
    """What one in-flight call has produced so far; the router reads it (hedging, cancelled
    losers' tokens) while the call runs."""

    __slots__ = ("cut", "first_token_at", "on_piece", "parts", "tokens_in", "tokens_out")

    def __init__(self) -> None:
        # The API said it stopped the answer at max_tokens (finish_reason "length",
        # stop_reason "max_tokens"): a cut answer, whatever it looks like.
        self.cut = False
        self.first_token_at: float | None = None
        # Sees every piece as it arrives (generate's reply streams out through it).
        self.on_piece: Callable[[str], None] | None = None
        self.parts: list[str] = []
        self.tokens_in = 0
        self.tokens_out = 0

    def text_piece(self, piece: str) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.parts.append(piece)
        if self.on_piece is not None:
            self.on_piece(piece)

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True, slots=True)
class Completion:
    """One successful call: the typed value and what it cost."""

    value: StepValue
    text: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    ttft_ms: float | None
    ms: float


class StreamingProvider(Protocol):
    """One model of one provider, as the router races it."""

    @property
    def name(self) -> str:
        """The provider's name in call logs ("anthropic", an endpoint's name)."""
        ...

    @property
    def model(self) -> str: ...

    @property
    def key(self) -> str:
        """provider/model: unique within a router (breakers, TTFT samples)."""
        ...

    async def run(
        self, prompt: Prompt, *, timeout: float, progress: Progress | None = None
    ) -> Completion:
        """Stream the prompt and parse the answer; raises ProviderError."""
        ...

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """Estimated USD, for calls that ended without a Completion (cancelled, failed)."""
        ...


class Connection(Protocol):
    """What providers run on; owned by the stack that built them."""

    @property
    def name(self) -> str: ...

    async def warm_up(self, timeout_s: float = 5.0) -> bool:
        """Get ready for traffic; False (logged, never raised) on failure."""
        ...

    def snapshot(self) -> Mapping[str, Any]:
        """Health figures for stats."""
        ...

    async def aclose(self) -> None: ...


def as_provider_error(exc: BaseException) -> ProviderError:
    """A call's exception as a ProviderError: providers raise those already; anything else
    is a bug in the provider, which counts as a server error of that provider."""
    if isinstance(exc, ProviderError):
        return exc
    return CallFailed("server", f"{type(exc).__name__}: {exc}"[:300])
