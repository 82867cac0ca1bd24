"""The engine's ports: what it needs from the outside world, as protocols.

Adapters live elsewhere: LLM providers in `engine.llm`, SQLite in `storage`, embedders in
`engine.cache`. The engine only ever sees these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from .knowledge.chunk import Chunk
from .model import (
    CacheTier,
    Detection,
    HitTier,
    PromptStyle,
    StepCall,
    StepValue,
    Strategy,
    Suggestion,
    ThreadContext,
    ThreadKey,
    Tier,
    TurnInput,
)
from .taxonomy import Step

if TYPE_CHECKING:
    from .stats import CacheStats, LlmStats


@dataclass(frozen=True, slots=True)
class StepRequest:
    """Everything a provider needs to answer one step, and nothing it must look up."""

    step: Step
    text: str
    context: Mapping[str, str] = field(default_factory=dict)
    history: tuple[str, ...] = ()
    tier: Tier = "powerful"
    style: PromptStyle = "compact"
    # Set for generate only.
    detection: Detection | None = None
    strategy: Strategy | None = None
    # Generate only: the replies already suggested in the thread, which a reply must not repeat.
    replies: tuple[str, ...] = ()
    # When the answer is due, on the time.perf_counter() clock: the turn's one budget, shared
    # by its steps. None: the provider's own per-call budget applies.
    deadline: float | None = None
    # Generate only, when someone watches the reply being written: gets each piece of the
    # reply's text as the model streams it (a provider that cannot stream never calls it).
    on_reply: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    # Generate: the company's knowledge retrieved for this turn, best first (data, not orders).
    knowledge: tuple[Chunk, ...] = ()
    # Capture and detect: vendors beyond the rules' own list (the team's battlecards).
    vendors: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StepResult:
    value: StepValue
    call: StepCall


class Provider(Protocol):
    """Answers one pipeline step with a contract-valid, typed value, or raises ProviderError."""

    name: str

    async def complete(self, request: StepRequest) -> StepResult: ...


class Embedder(Protocol):
    name: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length rows, one per text."""
        ...


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One finished turn, as the stats see it."""

    at: float
    latency_ms: float
    step_ms: Mapping[str, float]
    cache: CacheTier
    reconciled: bool
    triggers: tuple[str, ...]
    situation: str
    feedback: int | None  # +1, -1 or None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One provider request: the prompt and the answer, kept for inspection and stats."""

    at: float
    step: str
    provider: str
    model: str
    tier: str
    outcome: str  # "win", "cancelled", "error:<kind>", "ok"
    ms: float
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    prompt: str = ""
    response: str = ""
    # Why the call failed, in words: the contract's rejection ("detect: unknown situation
    # 'x'"), "cut at max_tokens (...)", the API's error message. Empty for a win.
    error: str = ""


class ContextStore(Protocol):
    async def load(self, key: ThreadKey) -> ThreadContext: ...

    async def commit_turn(self, turn: TurnInput, suggestion: Suggestion) -> None:
        """Store the message, merge its slots and keep the suggestion: one transaction."""
        ...

    async def reset(self, key: ThreadKey) -> None: ...

    async def answer_to(self, message_id: str) -> Suggestion | None:
        """The latest suggestion stored for a message, if it was answered already."""
        ...

    async def turn_of(self, suggestion_id: str) -> TurnInput | None:
        """The message a suggestion answered."""
        ...

    async def record_feedback(self, suggestion_id: str, value: int) -> bool:
        """Store +1/-1 on a suggestion; False when there is no such suggestion."""
        ...

    async def recent_turns(self, limit: int) -> Sequence[TurnRecord]: ...

    async def latest_thread(self, team: str, channel: str, user: str) -> ThreadKey | None:
        """The thread of the latest message this user had coached in this channel."""
        ...



class ThreadLocks(Protocol):
    """Turns of one thread one at a time, in arrival order (`engine.locks.LocalThreadLocks` in
    one process; the Postgres store's advisory locks across instances)."""

    def hold(self, key: ThreadKey) -> AbstractAsyncContextManager[None]: ...


class CallLog(Protocol):
    async def log_calls(self, records: Sequence[CallRecord]) -> None: ...

    async def recent_calls(self, limit: int) -> Sequence[CallRecord]: ...


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored suggestion the cache judged valid for a new message."""

    suggestion: Suggestion
    tier: HitTier
    lookup_ms: float
    similarity: float = 1.0


class ResponseCache(Protocol):
    async def lookup(self, text: str, context: ThreadContext) -> CachedAnswer | None: ...

    async def store(self, text: str, context: ThreadContext, suggestion: Suggestion) -> None: ...

    async def forget(self, suggestion_id: str) -> None:
        """Evict an entry whose suggestion got negative feedback; it is never served again."""
        ...

    def stats(self) -> CacheStats: ...


class LlmStatsSource(Protocol):
    """The LLM stack, reporting its live figures (circuit states, pools, tiering...)."""

    def stats(self) -> LlmStats: ...
