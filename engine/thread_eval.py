"""Scoring thread memory: labelled multi-turn threads run turn by turn through the engine.

Each thread of threads.jsonl is a prospect's messages in order, with the slots a person would
keep by the last one and the last message's situation. `run_threads` feeds the messages to an
engine (the offline tier and a throwaway store, built by the caller) as one thread, then reads
the thread's context back from the store: what the card shows at the last turn. `score_threads`
compares it with the labels: which slots are present (recall, precision), whether the values
agree where a value can be compared (competitor, team size, timeline, budget), and the final
situation.

The set was written by someone who never saw the rules. Threads t01-t26 are the tuning part,
t27-t40 the held-out part: rules are changed looking at the first only, and both are reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .model import Suggestion, ThreadContext, ThreadKey, TurnInput
from .rules import values
from .taxonomy import SITUATIONS, SLOTS

# The last tuning thread: t01..t26 tune, the rest is held out.
TUNING_LAST = 26
COMPARED = ("competitor", "team_size", "timeline", "budget_signal")


class ThreadSetError(ValueError):
    """A thread file that cannot be read; the message names the line."""


@dataclass(frozen=True, slots=True)
class LabelledThread:
    thread: str
    messages: tuple[str, ...]
    final_slots: Mapping[str, str]
    final_situation: str
    notes: str = ""

    @property
    def tuning(self) -> bool:
        number = re.sub(r"\D", "", self.thread)
        return bool(number) and int(number) <= TUNING_LAST


@dataclass(frozen=True, slots=True)
class ThreadResult:
    thread: LabelledThread
    slots: Mapping[str, str]  # the thread's context after the last turn
    situation: str  # the last turn's situation
    suggestions: tuple[Suggestion, ...]


class Coach(Protocol):
    """What `run_threads` needs of an engine."""

    async def handle(self, turn: TurnInput) -> Suggestion: ...


class ContextReader(Protocol):
    async def load(self, key: ThreadKey) -> ThreadContext: ...


def load_threads(path: Path) -> list[LabelledThread]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ThreadSetError(f"{path} is not UTF-8 text") from None
    threads = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            thread = LabelledThread(
                thread=str(row["thread"]),
                messages=tuple(str(m) for m in row["messages"]),
                final_slots={str(k): str(v) for k, v in row["final_slots"].items()},
                final_situation=str(row["final_situation"]),
                notes=str(row.get("notes", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ThreadSetError(f"{path}:{number}: not a thread row ({exc})") from None
        bad = ({thread.final_situation} - set(SITUATIONS)) | (set(thread.final_slots) - set(SLOTS))
        if bad or not thread.messages:
            raise ThreadSetError(f"{path}:{number}: unknown labels or no messages {sorted(bad)}")
        threads.append(thread)
    return threads


async def run_threads(
    threads: Iterable[LabelledThread], engine: Coach, store: ContextReader, run: str = "eval"
) -> list[ThreadResult]:
    results = []
    for labelled in threads:
        key = ThreadKey("eval", run, labelled.thread)
        made = []
        for i, text in enumerate(labelled.messages):
            turn = TurnInput(key=key, text=text, message_id=f"{run}-{labelled.thread}-{i}")
            made.append(await engine.handle(turn))
        context = await store.load(key)
        results.append(ThreadResult(labelled, context.values(), made[-1].situation, tuple(made)))
    return results


def score_threads(results: Sequence[ThreadResult]) -> dict[str, Any]:
    """The tuning part, the held-out part and all, each scored the same way."""
    return {
        "tuning": _score([r for r in results if r.thread.tuning]),
        "held_out": _score([r for r in results if not r.thread.tuning]),
        "all": _score(results),
        "misses": {
            r.thread.thread: _misses(r)
            for r in results
            if _misses(r)["missing"] or _misses(r)["extra"] or _misses(r)["disagree"]
        },
    }


def _score(results: Sequence[ThreadResult]) -> dict[str, Any]:
    tp = fp = fn = correct = 0
    hits = {name: 0 for name in COMPARED}
    compared = {name: 0 for name in COMPARED}
    for r in results:
        gold, got = set(r.thread.final_slots), set(r.slots)
        tp += len(gold & got)
        fp += len(got - gold)
        fn += len(gold - got)
        correct += r.situation == r.thread.final_situation
        for name in COMPARED:
            verdict = agrees(name, r.thread.final_slots.get(name), r.slots.get(name))
            if verdict is not None:
                compared[name] += 1
                hits[name] += verdict
    n = len(results)
    return {
        "threads": n,
        "slot_recall": _r(tp / (tp + fn) if tp + fn else 0.0),
        "slot_precision": _r(tp / (tp + fp) if tp + fp else 0.0),
        "situation_accuracy": _r(correct / n if n else 0.0),
        "value_agreement": {
            name: {"agree": hits[name], "compared": compared[name]} for name in COMPARED
        },
    }


def agrees(name: str, expected: str | None, got: str | None) -> bool | None:
    """Whether a captured value says what the label says; None where they cannot be compared
    (the label lacks the slot or a comparable value, e.g. a budget with no amount)."""
    if expected is None:
        return None
    if name == "competitor":
        return got is not None and expected.casefold() == got.strip().casefold()
    if name == "team_size":
        want = values.head_count(expected)
        return None if want is None else values.head_count(got or "") == want
    if name == "budget_signal":
        amount = values.amount(expected)
        if amount is None:
            return None
        found = values.amount(got or "")
        return found is not None and found.value == amount.value
    if name == "timeline":
        when = values.when(expected)
        return None if not when else bool(when & values.when(got or ""))
    return None


def _misses(r: ThreadResult) -> dict[str, Any]:
    gold, got = r.thread.final_slots, r.slots
    return {
        "missing": sorted(set(gold) - set(got)),
        "extra": {k: got[k] for k in sorted(set(got) - set(gold))},
        "disagree": {
            name: {"expected": gold[name], "got": got.get(name)}
            for name in COMPARED
            if agrees(name, gold.get(name), got.get(name)) is False
        },
        "situation": None
        if r.situation == r.thread.final_situation
        else f"{r.thread.final_situation}->{r.situation}",
    }


def _r(value: float) -> float:
    return round(value, 4)
