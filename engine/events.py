"""A turn as a stream of events: which step runs, the reply as it is written, the suggestion.

`Engine.stream(turn)` yields `Status` when a step starts, `ReplyDelta` pieces of the suggested
reply (plain text, not escaped for any surface), and ends with one `Done`. Joined, the deltas
are the reply on the final suggestion, except when the answer that won is not the one that
was being shown (a hedge or race winner, a failover after the shown call broke): then the
deltas stop, and the suggestion's reply is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .model import Suggestion

StepName = Literal["analyse", "reconcile", "generate"]


@dataclass(frozen=True, slots=True)
class Status:
    """A step started. Generate's status carries the detected situation."""

    step: StepName
    situation: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Done:
    suggestion: Suggestion


TurnEvent = Status | ReplyDelta | Done
