"""Waiting out a busy, locked or unreachable database: exponential backoff up to a bound.

Both backends run every database operation through `Backoff.run`: a transient failure (SQLite's
"database is locked", Postgres unreachable, a pool with no connection, a deadlock or
serialization failure) is retried after 50 ms, 100 ms, ... at most 2 s apart, until `wait_s` has
passed; then `engine.errors.StoreUnavailable` says what failed and for how long. Other errors
(a bug in a query, a constraint) are raised at once: retrying them would only hide them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import StoreUnavailable

__all__ = ["Backoff"]

T = TypeVar("T")
log = logging.getLogger("sales_agent.storage")


@dataclass(frozen=True, slots=True)
class Backoff:
    transient: Callable[[BaseException], bool]
    wait_s: float = 30.0
    first_s: float = 0.05
    max_s: float = 2.0

    async def run(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        delay = self.first_s
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt()
            except Exception as exc:
                if not self.transient(exc):
                    raise
                waited = time.monotonic() - started
                if waited + delay > self.wait_s:
                    raise StoreUnavailable(
                        f"the database is unavailable ({_brief(exc)}): gave up on {what} "
                        f"after {waited:.1f} s and {tries} tries"
                    ) from exc
                if tries == 1:
                    log.warning(
                        "database busy or unreachable during %s (%s): waiting", what, _brief(exc)
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_s)


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
