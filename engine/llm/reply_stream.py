"""Generate's `reply`, read out of its JSON answer while the answer is still streaming.

A streamed answer is a prefix of `{"reply": "...", "coaching_tip": "..."}`. `jiter`'s partial
mode parses such a prefix, keeping an unfinished string as far as it goes, so each text piece
may add to the reply. What is handed on is what the finished answer will keep: leading
whitespace never, trailing whitespace only once more text follows (the contract strips both).

`ReplyTap` serves one request that may run several attempts (hedge, race, failover): the first
attempt that writes reply text is the one shown, and no other attempt's text gets through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jiter

if TYPE_CHECKING:
    from .streaming import Progress

ReplySink = Callable[[str], None]


class ReplyExtractor:
    """Feed it an answer's text pieces; it returns what each adds to the reply."""

    __slots__ = ("_buffer", "_done", "_sent", "_start")

    def __init__(self) -> None:
        self._buffer = ""
        self._start = -1  # where the JSON object begins (models may open with a fence)
        self._sent = 0  # characters of the reply handed on so far
        self._done = False  # a key after the reply: it is complete, nothing more to parse

    def feed(self, piece: str) -> str:
        if self._done:
            return ""
        self._buffer += piece
        if self._start < 0:
            self._start = self._buffer.find("{")
            if self._start < 0:
                return ""
        try:
            value = jiter.from_json(
                self._buffer[self._start :].encode(), partial_mode="trailing-strings"
            )
        except ValueError:
            return ""  # not JSON (yet): nothing to show
        reply = value.get("reply") if isinstance(value, dict) else None
        if not isinstance(reply, str):
            return ""
        self._done = next(reversed(value)) != "reply"
        ready = reply.strip()
        if len(ready) <= self._sent:
            return ""
        delta = ready[self._sent :]
        self._sent = len(ready)
        return delta


class ReplyTap:
    """Routes the reply text of one request's attempts to `sink`: only the shown attempt's."""

    __slots__ = ("shown", "sink")

    def __init__(self, sink: ReplySink) -> None:
        self.sink = sink
        self.shown: object | None = None  # the attempt whose text the rep is reading

    def attach(self, progress: Progress, attempt: object) -> None:
        extractor = ReplyExtractor()

        def piece(text: str) -> None:
            if self.shown is not None and self.shown is not attempt:
                return
            delta = extractor.feed(text)
            if delta:
                self.shown = attempt
                self.sink(delta)

        progress.on_piece = piece
