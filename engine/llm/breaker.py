"""A circuit breaker per provider: stop sending to a provider that keeps failing, probe it
again after a cooldown.

closed    -> calls flow; the breaker opens after `max_consecutive` failures in a row, or when at
             least `min_calls` of the last `window` calls ended and half or more of them failed.
open      -> no calls until `cooldown_s` has passed.
half_open -> one probe call at a time; success closes the breaker (with a clean window),
             failure opens it again for another cooldown.

Two kinds of failure, counted apart: "down" (timeouts, 5xx, broken connections: the provider
could not answer) and "bad" (it answered, but the contract refused the answer: invalid or
truncated output). Each kind has its own consecutive count and window share, so three timeouts
and two bad answers are not five of one thing; whichever kind opens the breaker is its
`opened_for`, which the router passes on so the card can say "unavailable" or "answered badly".

Race losers are neither successes nor failures (a hedge loser that never wrote a token is a
timeout: the router reports it as "down"). Rate limits are handled by the router's Retry-After
cooldown, not here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

State = Literal["closed", "open", "half_open"]
# Could not answer, or answered with something the contract refused.
Failure = Literal["down", "bad"]


class CircuitBreaker:
    def __init__(
        self,
        *,
        max_consecutive: int = 5,
        window: int = 20,
        error_rate: float = 0.5,
        min_calls: int = 10,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_consecutive = max_consecutive
        self.window = window
        self.error_rate = error_rate
        self.min_calls = min_calls
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state: State = "closed"
        self.opened_at = 0.0
        self.times_opened = 0
        self.opened_for: Failure | None = None
        self._results: deque[Failure | None] = deque(maxlen=window)  # None = success
        self._consecutive: dict[Failure, int] = {"down": 0, "bad": 0}
        self._probing = False

    def available(self) -> bool:
        """Could a call go out now? (No side effect; `acquire` takes the probe slot.)"""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self.clock() - self.opened_at >= self.cooldown_s
        return not self._probing

    def acquire(self) -> bool:
        """Take permission for one call; in half-open state only one probe at a time."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = "half_open"
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        if self.state != "closed":
            self.state = "closed"
            self.opened_for = None
            self._results.clear()
        self._probing = False
        self._consecutive = {"down": 0, "bad": 0}
        self._results.append(None)

    def failure(self, kind: Failure = "down") -> None:
        self._probing = False
        if self.state != "closed":
            self._open(kind)
            return
        self._consecutive[kind] += 1
        self._results.append(kind)
        failed = sum(1 for r in self._results if r == kind)
        if self._consecutive[kind] >= self.max_consecutive or (
            len(self._results) >= self.min_calls and failed >= self.error_rate * len(self._results)
        ):
            self._open(kind)

    def release(self) -> None:
        """A call that took permission ended without a verdict (cancelled)."""
        self._probing = False

    def _open(self, kind: Failure) -> None:
        self.state = "open"
        self.opened_for = kind
        self.opened_at = self.clock()
        self.times_opened += 1
        self._consecutive = {"down": 0, "bad": 0}
        self._results.clear()

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        if state == "open" and self.available():
            state = "half_open"  # the next call will probe
        return {
            "state": state,
            "recent_calls": len(self._results),
            "recent_failures": sum(1 for r in self._results if r is not None),
            "recent_bad_answers": sum(1 for r in self._results if r == "bad"),
            "consecutive_failures": max(self._consecutive.values()),
            "times_opened": self.times_opened,
            "opened_for": self.opened_for,
        }
