"""Drive an engine through a workload: turns of different threads concurrently, a bounded
number in flight, the turns of one thread strictly in order.

A closed-loop load generator: whenever a slot frees, the earliest-arriving turn whose thread
has nothing in flight starts. Each turn's time is measured around `Engine.stream`, with the
moment its first text became visible (the first reply delta, or the card when nothing streamed
before it: a cache hit, an offline answer), and, when
the engine's provider is wrapped in `TimedProvider`, so is the time spent inside provider calls
(the union of their intervals, as capture and detect overlap). The benchmark scales only that
part back to model time: engine work runs at real speed whatever the fake server's time_scale.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.events import Done, ReplyDelta, TurnEvent
from engine.model import Suggestion, ThreadKey, TurnInput
from engine.ports import Provider, StepRequest, StepResult

from .workload import Turn

Span = tuple[float, float, float, float]  # wall start, wall end, CPU start, CPU end
_spans: contextvars.ContextVar[list[Span] | None] = contextvars.ContextVar(
    "bench_provider_spans", default=None
)


class TimedProvider:
    """Wraps a provider and records, for the turn it serves, when each call ran."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name

    async def complete(self, request: StepRequest) -> StepResult:
        spans = _spans.get()
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return await self.inner.complete(request)
        finally:
            if spans is not None:
                spans.append((start, time.perf_counter(), cpu, time.process_time()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def union_ms(spans: Sequence[tuple[float, float]]) -> float:
    """Milliseconds covered by at least one of the (start, end) intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total * 1000


@dataclass(frozen=True, slots=True)
class Timed:
    turn: Turn
    suggestion: Suggestion
    ms: float  # wall time of the whole turn, in real milliseconds
    started: float  # perf_counter at the start
    provider_ms: float = 0.0  # wall time inside provider calls (union)
    cpu_ms: float = 0.0  # process CPU time over the turn (meaningful one turn at a time)
    provider_cpu_ms: float = 0.0
    visible_ms: float = 0.0  # wall time until the first text a rep sees
    visible_provider_ms: float = 0.0  # of which inside provider calls

    def model_ms(self, time_scale: float) -> float:
        """The turn's time with provider waits scaled back to model time."""
        return _model(self.ms, self.provider_ms, time_scale)

    def visible_model_ms(self, time_scale: float) -> float:
        """Model time until the first text a rep sees."""
        return _model(self.visible_ms, self.visible_provider_ms, time_scale)


def _model(ms: float, provider_ms: float, time_scale: float) -> float:
    if time_scale <= 0:
        return ms
    return ms - provider_ms + provider_ms / time_scale



def turn_input(turn: Turn, run: str) -> TurnInput:
    return TurnInput(
        key=ThreadKey("bench", run, turn.thread),
        text=turn.text,
        message_id=f"{run}-{turn.thread}-{turn.index}",
    )


async def drive(
    stream: Callable[[TurnInput], AsyncIterator[TurnEvent]],
    turns: Sequence[Turn],
    *,
    in_flight: int,
    run: str,
    on_done: Callable[[Timed], None] | None = None,
    keep: bool = True,
) -> list[Timed]:
    """Run `turns`; returns them timed, in completion order (none with keep=False, for long
    runs that only watch them through `on_done`)."""
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    pending = list(turns)
    busy: set[str] = set()
    running: set[asyncio.Task[Timed]] = set()
    done: list[Timed] = []

    async def one(turn: Turn) -> Timed:
        spans: list[Span] = []
        _spans.set(spans)  # this task's own context: its child tasks inherit the list
        started, cpu = time.perf_counter(), time.process_time()
        visible: float | None = None
        suggestion: Suggestion | None = None
        async for event in stream(turn_input(turn, run)):
            if visible is None and isinstance(event, ReplyDelta | Done):
                visible = time.perf_counter()
            if isinstance(event, Done):
                suggestion = event.suggestion
        assert suggestion is not None and visible is not None
        ms = (time.perf_counter() - started) * 1000
        # A provider call still running when the text showed counts up to that moment.
        before = [(a, min(b, visible)) for a, b, _, _ in spans if a < visible]
        return Timed(
            turn,
            suggestion,
            ms,
            started,
            provider_ms=union_ms([(a, b) for a, b, _, _ in spans]),
            cpu_ms=(time.process_time() - cpu) * 1000,
            provider_cpu_ms=union_ms([(c, d) for _, _, c, d in spans]),
            visible_ms=(visible - started) * 1000,
            visible_provider_ms=union_ms(before),
        )

    try:
        while pending or running:
            i = 0
            while len(running) < in_flight and i < len(pending):
                turn = pending[i]
                if turn.thread in busy:
                    i += 1
                    continue
                del pending[i]
                busy.add(turn.thread)
                running.add(asyncio.create_task(one(turn)))
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                running.discard(task)
                timed = task.result()
                busy.discard(timed.turn.thread)
                if keep:
                    done.append(timed)
                if on_done is not None:
                    on_done(timed)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    return done
