"""Replay files: plain lines (one thread) or JSONL rows `{"thread": id, "text": ...}`.

The whole file is read and checked before anything is coached, so a bad row costs nothing: it
is named (file:line) in one line and the command exits with status 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

DEFAULT_THREAD = "main"


@dataclass(frozen=True, slots=True)
class ReplayTurn:
    line: int  # 1-based line in the file
    thread: str
    text: str


def read_replay(path: Path) -> list[ReplayTurn]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    turns = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            turns.append(_row(path, number, line))
        else:
            turns.append(ReplayTurn(number, DEFAULT_THREAD, line))
    return turns


def _row(path: Path, number: int, line: str) -> ReplayTurn:
    where = f"{path}:{number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UsageError(f'{where}: expected {{"thread": ..., "text": ...}} ({exc})') from None
    if not isinstance(row, dict) or "text" not in row:
        raise UsageError(f'{where}: expected {{"thread": ..., "text": ...}} (no "text")')
    text, thread = row["text"], row.get("thread", DEFAULT_THREAD)
    # json.loads gives None for null: str(None) would be coached as the word "None".
    if not isinstance(text, str):
        raise UsageError(f'{where}: "text" must be a string, got {json.dumps(text)}')
    if isinstance(thread, bool) or not isinstance(thread, str | int):
        got = json.dumps(thread)
        raise UsageError(f'{where}: "thread" must be a string or a number, got {got}')
    return ReplayTurn(number, str(thread), text)
