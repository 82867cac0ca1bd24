"""A circuit breaker per provider: stop sending to a provider that keeps failing, probe it
again after a cooldown.

closed    -> calls flow; the breaker opens after `max_consecutive` failures in a row, or when at
             least `min_calls` of the last `window` calls ended and half or more of them failed.
open      -> no calls until `cooldown_s` has passed.
half_open -> one probe call at a time; success closes the breaker (with a clean window),
             failure opens it again for another cooldown.

Cancelled calls (race losers) are neither successes nor failures. Rate limits are handled by
the router's Retry-After cooldown, not here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

State = Literal["closed", "open", "half_open"]


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
        self._results: deque[bool] = deque(maxlen=window)  # True = failure
        self._consecutive = 0
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
            self._results.clear()
        self._probing = False
        self._consecutive = 0
        self._results.append(False)

    def failure(self) -> None:
        self._probing = False
        if self.state != "closed":
            self._open()
            return
        self._consecutive += 1
        self._results.append(True)
        failed = sum(self._results)
        if self._consecutive >= self.max_consecutive or (
            len(self._results) >= self.min_calls and failed >= self.error_rate * len(self._results)
        ):
            self._open()

    def release(self) -> None:
        """A call that took permission ended without a verdict (cancelled)."""
        self._probing = False

    def _open(self) -> None:
        self.state = "open"
        self.opened_at = self.clock()
        self.times_opened += 1
        self._consecutive = 0
        self._results.clear()

    def snapshot(self) -> dict[str, Any]:
        state = self.state
        if state == "open" and self.available():
            state = "half_open"  # the next call will probe
        return {
            "state": state,
            "recent_calls": len(self._results),
            "recent_failures": sum(self._results),
            "consecutive_failures": self._consecutive,
            "times_opened": self.times_opened,
        }
