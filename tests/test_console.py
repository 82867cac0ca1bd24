"""The console chat at a real terminal (a pseudo-terminal): readline edits the line, and Ctrl-C
stops the chat at the prompt at once, without waiting for Enter."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LEFT = b"\x1b[D"  # what the left-arrow key sends


class Terminal:
    def __init__(self, tmp_path: Path) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_", "SALES_AGENT_"))
        }
        env |= {
            "SALES_AGENT_DB": str(tmp_path / "console.db"),
            "SALES_AGENT_EMBEDDER": "none",
            "TERM": "xterm",
        }
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the chat, with the terminal as its controlling tty
            # A shell ignores SIGINT in what it starts in the background (`pytest &`), and an
            # ignored signal stays ignored across exec: the chat would never see Ctrl-C.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.chdir(tmp_path)
            os.execve(sys.executable, [sys.executable, str(ROOT / "app.py"), "chat"], env)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = 30.0, count: int = 1) -> bytes:
        deadline = time.monotonic() + timeout
        while self.seen.count(marker) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {self.seen[-400:]!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    break
        return self.seen

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exit_status(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            self.drain()
            time.sleep(0.05)
        return None

    def drain(self) -> None:
        while select.select([self.fd], [], [], 0)[0]:
            try:
                self.seen += os.read(self.fd, 4096)
            except OSError:
                return

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.mark.timeout(90)
def test_arrow_keys_edit_the_line_and_ctrl_c_quits_at_the_prompt(tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    try:
        term.read_until(b"prospect> ")
        # Typed "Does it do SO?", then two steps left and the missing S.
        term.type(b"Does it do SO?" + LEFT + LEFT + b"S\r")
        term.read_until(b"Feature question")
        term.read_until(b"prospect> ", timeout=10, count=2)  # the next prompt
        # Ctrl-C, and no Enter after it. Not the instant the prompt shows: a signal between
        # readline drawing the prompt and starting to wait for keys is seen only at the next
        # key (CPython checks signals when the wait is interrupted), a window no typist hits.
        # A second Ctrl-C covers a slow machine; the old console ignored any number of them.
        time.sleep(0.3)
        term.type(b"\x03")
        status = term.exit_status(timeout=5)
        if status is None:
            term.type(b"\x03")
            status = term.exit_status(timeout=10)
        assert status == 130, term.seen[-600:]
        assert b"Traceback" not in term.seen and b"^[[D" not in term.seen
    finally:
        term.kill()
    with sqlite3.connect(tmp_path / "console.db") as db:
        texts = [row[0] for row in db.execute("SELECT text FROM messages")]
    assert texts == ["Does it do SSO?"]
