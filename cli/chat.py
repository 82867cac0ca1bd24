"""The console chat: one card per message, all in one thread.

The engine runs on an event loop of its own thread and the main thread reads the input, so
Ctrl-C stops the chat at once: a read on a worker thread (asyncio.to_thread) cannot be
interrupted and held the process until Enter. At a terminal, input() goes through the
standard library's readline (arrow keys, history). A line that is not UTF-8 is skipped with a
warning, the lines after it are still coached, and the exit status is then 2. A turn the
database could not save is still shown, with a line saying so, and the exit status is 1.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import sys
import threading
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, TextIO, TypeVar

from engine.card import card_view
from engine.errors import StoreUnavailable, TurnNotSaved
from engine.model import Suggestion, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine

from .commands import OpenEngine
from .render import card_text

T = TypeVar("T")
PROMPT = "prospect> "


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An input line that is not UTF-8 text; `offset` is the first bad byte."""

    offset: int


Line = str | Undecodable


def chat(
    open_engine: OpenEngine,
    stdin: TextIO,
    out: TextIO,
    thread: str | None,
    *,
    err: TextIO | None = None,
) -> int:
    err = err or sys.stderr
    key = ThreadKey("console", "chat", thread or uuid.uuid4().hex[:12])
    interactive = stdin.isatty()
    skipped = unsaved = 0
    with EngineThread(open_engine) as engine:
        if interactive:
            print("Paste what the prospect said (Ctrl-D or Ctrl-C to quit).", file=out)
        lines = typed_lines() if interactive else piped_lines(stdin)
        for number, line in enumerate(lines, start=1):
            if isinstance(line, Undecodable):
                skipped += 1
                print(
                    f"sales-agent: warning: input line {number} is not UTF-8 text "
                    f"(bad byte at offset {line.offset}); skipped",
                    file=err,
                    flush=True,
                )
                continue
            if not line.strip():
                if interactive:
                    print("   (empty message: paste what the prospect said)", file=out)
                continue
            turn = TurnInput(key=key, text=line, message_id=uuid.uuid4().hex)
            try:
                print(card_text(card_view(engine.handle(turn))), file=out, flush=True)
            except StoreUnavailable as exc:
                # The database stayed busy: show what was computed, say so, read on.
                if isinstance(exc, TurnNotSaved):
                    print(card_text(card_view(exc.suggestion)), file=out, flush=True)
                print(f"sales-agent: not saved: {exc}", file=err, flush=True)
                unsaved += 1
    return 2 if skipped else 1 if unsaved else 0


def typed_lines() -> Iterator[Line]:
    # Importing readline gives input() line editing and history; not every platform has it.
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401
    while True:
        try:
            text = input(PROMPT)
        except EOFError:
            print()
            return
        except UnicodeDecodeError as exc:
            yield Undecodable(exc.start)
            continue
        yield _checked(text)


def piped_lines(stdin: TextIO) -> Iterator[Line]:
    raw: BinaryIO | None = getattr(stdin, "buffer", None)
    if raw is None:  # a text stream with no bytes below it (a test's StringIO)
        for text in stdin:
            yield _checked(text.rstrip("\r\n"))
        return
    for data in raw:
        try:
            yield data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield Undecodable(exc.start)


def _checked(text: str) -> Line:
    # A terminal in a C or POSIX locale hands bad bytes over as lone surrogates, which fail
    # later, on the way to SQLite or stdout: catch them here instead.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return Undecodable(exc.start)
    return text


class EngineThread:
    """The engine, opened and closed on an event loop that runs on its own thread; `handle`
    runs one turn there and waits for it. Ctrl-C while it waits cancels the turn."""

    def __init__(self, open_engine: OpenEngine) -> None:
        self._open = open_engine
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="engine", daemon=True)
        self._opened: AbstractAsyncContextManager[Engine] | None = None
        self._engine: Engine | None = None
        self._pending: concurrent.futures.Future[Any] | None = None

    def __enter__(self) -> EngineThread:
        self._thread.start()
        try:
            self._opened = self._open()
            self._engine = self._call(self._opened.__aenter__())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def handle(self, turn: TurnInput) -> Suggestion:
        assert self._engine is not None
        return self._call(self._engine.handle(turn))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._pending is not None:
                self._pending.cancel()
            if self._engine is not None and self._opened is not None:
                self._engine = None
                # Not the exception itself: a KeyboardInterrupt thrown into a task on the
                # loop would stop the loop; the runtime closes the same way either way.
                self._call(self._opened.__aexit__(None, None, None))
            self._call(self._loop.shutdown_asyncgens())
            self._call(self._loop.shutdown_default_executor())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def _serve(self) -> None:
        # The kernel may hand Ctrl-C's SIGINT to any thread that does not block it; given to
        # this one (or to a thread it starts: they inherit the mask), it would not wake the
        # main thread's read. Blocked here, it always reaches the main thread.
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._pending = future
        result = future.result()
        self._pending = None
        return result
