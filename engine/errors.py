"""Errors the engine raises or expects from its adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .model import Suggestion

# Why one provider could not answer one step; the router's retry, cooldown and breaker rules
# read it, and the call log stores it as "error:<kind>".
ErrorKind = Literal[
    "timeout",
    "rate_limit",
    "server",
    "invalid_output",
    "truncated",
    "connection",
    "client",
    "circuit_open",
]


class EngineError(Exception):
    """Base for the engine's own errors."""


class EmptyMessage(EngineError):
    """The message has no text to coach on; the caller shows help instead of a card."""


class ProviderError(EngineError):
    """One provider could not give a valid answer for one step."""

    def __init__(self, kind: ErrorKind, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.retry_after = retry_after


class InvalidOutput(ProviderError):
    """The answer broke the output contract (not JSON, unknown label, wrong types)."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        # A truncated answer (cut at max_tokens or mid-stream) is its own kind: the cure is a
        # bigger budget or a shorter answer, not a different model.
        super().__init__("truncated" if truncated else "invalid_output", message)


class StoreUnavailable(EngineError):
    """The database stayed busy, locked or unreachable for longer than the store waits.

    Raised by storage adapters after their bounded backoff, so callers can fail the operation
    visibly (and keep what they computed) instead of crashing on a driver's own error.
    """


class TurnNotSaved(StoreUnavailable):
    """The turn's card was computed but could not be stored: `suggestion` is that card, for
    the caller to show (and keep) rather than lose; the thread's context did not change."""

    def __init__(self, message: str, suggestion: Suggestion) -> None:
        super().__init__(message)
        self.suggestion = suggestion
