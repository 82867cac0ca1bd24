"""Writes CallRecords through the CallLog port in batches, off the request path.

`add` only appends to a buffer and makes sure a flusher task exists; the flusher writes what
has gathered every `interval_s` (or at once when `batch` records wait). `aclose` writes
everything left, so records are not lost on shutdown. A failing write is logged and dropped:
the call log must never break a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..ports import CallLog, CallRecord

log = logging.getLogger(__name__)


class CallRecorder:
    def __init__(self, sink: CallLog | None, *, batch: int = 64, interval_s: float = 0.2) -> None:
        self.sink = sink
        self.batch = batch
        self.interval_s = interval_s
        self.written = 0
        self.dropped = 0
        self._buffer: list[CallRecord] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def add(self, record: CallRecord) -> None:
        if self.sink is None:
            return
        self._buffer.append(record)
        if len(self._buffer) >= self.batch:
            self._wake.set()
        if self._closed:
            return
        if self._flusher is None or self._flusher.done():
            with contextlib.suppress(RuntimeError):  # no loop: aclose() writes it
                self._flusher = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._buffer:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if self.sink is None or not self._buffer:
            return
        records, self._buffer = self._buffer, []
        try:
            await self.sink.log_calls(records)
            self.written += len(records)
        except Exception as exc:
            self.dropped += len(records)
            log.warning("could not write %d LLM call records: %s", len(records), exc)

    async def aclose(self) -> None:
        self._closed = True
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            self._wake.set()
            try:
                await flusher
            except Exception:
                log.exception("the call-log flusher failed")
        await self.flush()
