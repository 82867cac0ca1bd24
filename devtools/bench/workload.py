"""A seeded workload of sales threads for the benchmark, written like the golden set.

Threads follow a deal's arc (greeting -> discovery -> questions -> objections -> close), each
message drawn by situation from the golden and holdout sets (`engine/data/`). About a quarter
of the messages are repeats or rewordings *within the same deal context*, as reps meet them:

* an **echo thread** opens like an earlier thread: its first 1-3 messages repeat the earlier
  thread's (verbatim or reworded), so at each of those turns the thread context is the one the
  earlier thread had at that point (a hit applies the cached slot delta), then it goes its own way;
* a **common opener** ("hi, thanks for reaching out") starts many fresh threads.

Rewordings change words, not facts: every one is checked to keep the offline tier's situation
and captured slots (so the cache's false-hit guard may serve it) and to differ after
normalisation (so it is not an exact repeat). Each turn carries the golden label of the message
it came from, so the benchmark's fake LLM can answer as a good model would.

    wl = generate(seed=7, threads=56, turns=336)
    wl.turns            # arrival order; turns of one thread in order
    wl.summary()        # {"turns": 336, "threads": 56, "repeat_share": 0.26, ...}
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from engine.data import GOLDEN, HOLDOUT
from engine.rules.capture import capture
from engine.rules.detect import detect
from engine.rules.text import normalised

# The golden set (the rules were tuned on it) and the holdout set (they were not).
SOURCES = (GOLDEN, HOLDOUT)

Kind = Literal["fresh", "repeat", "reworded"]

# A deal's arc: each turn draws its situation from the next stage (stages may be skipped).
STAGES: tuple[tuple[str, ...], ...] = (
    ("greeting", "discovery"),
    ("discovery", "feature_question", "discovery"),
    ("feature_question", "pricing_question", "competitor_mention", "status_quo_objection"),
    ("price_objection", "risk_concern", "timing_objection", "authority_objection"),
    ("pricing_question", "risk_concern", "competitor_mention", "feature_question"),
    ("buying_signal", "scheduling", "not_interested", "authority_objection"),
    ("scheduling", "buying_signal", "other"),
)

# Word-level rewordings: (pattern, replacement). Facts (numbers, money, vendors, negation)
# are left alone; the check in `reword` rejects any rewording that changes what rules see.
_SWAPS: tuple[tuple[str, str], ...] = (
    (r"\bthanks\b", "thank you"),
    (r"\bthank you\b", "thanks"),
    (r"\bwe're\b", "we are"),
    (r"\bwe are\b", "we're"),
    (r"\bit's\b", "it is"),
    (r"\bI'm\b", "I am"),
    (r"\bdon't\b", "do not"),
    (r"\bcan't\b", "cannot"),
    (r"\bdoesn't\b", "does not"),
    (r"\bisn't\b", "is not"),
    (r"\bwon't\b", "will not"),
    (r"\bcan you\b", "could you"),
    (r"\bCan you\b", "Could you"),
    (r"\bright now\b", "at the moment"),
    (r"\bhonestly\b", "frankly"),
    (r"\bpretty\b", "quite"),
    (r"\breally\b", "truly"),
    (r"\bbig\b", "large"),
    (r"\bget\b", "receive"),
    (r"\bneed\b", "require"),
    (r"\bwant\b", "would like"),
    (r"\bmaybe\b", "perhaps"),
    (r"\bjust\b", "simply"),
    (r"\bsend\b", "share"),
    (r"\bhelp\b", "assist"),
    (r"\blooking at\b", "evaluating"),
    (r"\bteam\b", "group"),
    (r"\bbudget\b", "spend"),
    (r"\bcompany\b", "org"),
    (r"\bguys\b", "folks"),
    (r"\bok\b", "okay"),
)
_PREFIXES = ("So, ", "Honestly, ", "Quick one: ", "Ok so ", "Just to say, ", "Hey, ")
_SUFFIXES = (" Thanks.", " Cheers.", " Let me know.", " FYI.")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    situation: str
    slots: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Turn:
    thread: str
    index: int  # position within its thread, from 0
    text: str
    kind: Kind
    situation: str  # the golden label of the source message
    slots: Mapping[str, str] = field(default_factory=dict)  # its golden slots
    source: str = ""  # the original text a repeat or rewording came from


@dataclass(frozen=True, slots=True)
class Workload:
    seed: int
    turns: tuple[Turn, ...]  # arrival order

    @property
    def threads(self) -> dict[str, list[Turn]]:
        out: dict[str, list[Turn]] = {}
        for t in self.turns:
            out.setdefault(t.thread, []).append(t)
        return out

    def labels(self) -> dict[str, Turn]:
        """Normalised message text -> a turn holding its golden label (for the fake LLM)."""
        return {normalised(t.text): t for t in self.turns}

    def summary(self) -> dict[str, object]:
        kinds = Counter(t.kind for t in self.turns)
        n = len(self.turns)
        return {
            "seed": self.seed,
            "turns": n,
            "threads": len(self.threads),
            "repeat_share": round((kinds["repeat"] + kinds["reworded"]) / n, 3) if n else 0.0,
            "repeats": kinds["repeat"],
            "rewordings": kinds["reworded"],
        }


@cache
def golden(paths: tuple[Path, ...] = SOURCES) -> tuple[Example, ...]:
    rows = []
    for path in paths:
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append(Example(row["text"], row["situation"], dict(row.get("slots", {}))))
    return tuple(rows)


def reword(text: str, rng: random.Random, tries: int = 24) -> str | None:
    """A rewording that keeps the facts the rules see, or None when none was found."""
    want_detect = detect(text).situation
    want_slots = dict(capture(text).slots)
    norm = _loose(text)
    for _ in range(tries):
        out = text
        swaps = [s for s in _SWAPS if re.search(s[0], out)]
        rng.shuffle(swaps)
        for pattern, repl in swaps[: rng.randint(1, 2)]:
            out = re.sub(pattern, repl, out, count=1)
        if out == text or rng.random() < 0.5:
            if rng.random() < 0.6:
                prefix = rng.choice(_PREFIXES)
                out = prefix + (out[0].lower() + out[1:] if out[:2] != "I " else out)
            else:
                out = out.rstrip() + rng.choice(_SUFFIXES)
        if _loose(out) == norm:
            continue
        if detect(out).situation != want_detect or dict(capture(out).slots) != want_slots:
            continue
        return out
    return None


def _loose(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s$%]", " ", normalised(text)).split())


def generate(
    seed: int = 7,
    threads: int = 56,
    turns: int = 336,
    *,
    repeat_share: float = 0.27,
    examples: Iterable[Example] | None = None,
) -> Workload:
    """`threads` threads holding `turns` turns in all, about `repeat_share` of them repeats."""
    if threads < 1 or turns < threads:
        raise ValueError("need at least one thread and one turn per thread")
    rng = random.Random(seed)
    pool = tuple(examples or golden())
    by_situation: dict[str, list[Example]] = {}
    for ex in pool:
        by_situation.setdefault(ex.situation, []).append(ex)
    openers = [ex for ex in by_situation.get("greeting", []) if len(ex.text) < 90][:4]
    lengths = _lengths(rng, threads, turns)

    made: list[list[Turn]] = []
    echoes: dict[int, tuple[int, int]] = {}  # thread number -> (origin number, turns echoed)
    repeated = 0
    opened: set[str] = set()
    for n, length in enumerate(lengths):
        name = f"deal-{n:03d}"
        remaining_share = repeat_share * sum(lengths[: n + 1]) - repeated
        plan: list[Turn] = []
        if made and remaining_share >= 1 and rng.random() < 0.85:
            # An echo thread: open like an earlier thread, in the same context.
            o = rng.randrange(len(made))
            origin = made[o]
            depth = rng.choice((1, 2, 2, 3) if remaining_share < 4 else (2, 3, 3, 4))
            k = min(len(origin), length, depth, max(1, int(remaining_share)))
            echoes[n] = (o, k)
            for t in origin[:k]:
                text = t.text
                kind: Kind = "repeat"
                if rng.random() < 0.5 and (alt := reword(t.source or t.text, rng)) is not None:
                    text, kind = alt, "reworded"
                plan.append(
                    Turn(name, len(plan), text, kind, t.situation, t.slots, t.source or t.text)
                )
            repeated += k
        elif openers and rng.random() < 0.15 and remaining_share >= 1:
            # A common opener: the first use is news, every later one a repeat.
            ex = rng.choice(openers)
            kind = "repeat" if ex.text in opened else "fresh"
            opened.add(ex.text)
            plan.append(Turn(name, 0, ex.text, kind, ex.situation, ex.slots, ex.text))
            repeated += kind == "repeat"
        stage = len(plan)
        used = {t.source for t in plan}
        while len(plan) < length:
            stage_options = STAGES[min(stage, len(STAGES) - 1)]
            situation = rng.choice(stage_options)
            candidates = [e for e in by_situation.get(situation, []) if e.text not in used]
            if not candidates:
                candidates = [e for e in pool if e.text not in used]
            ex = rng.choice(candidates)
            used.add(ex.text)
            plan.append(Turn(name, len(plan), ex.text, "fresh", ex.situation, ex.slots, ex.text))
            stage += 1 if rng.random() < 0.8 else 2
        made.append(plan)
    return Workload(seed, tuple(_interleave(rng, made, echoes)))


def _lengths(rng: random.Random, threads: int, turns: int) -> list[int]:
    lengths = [1] * threads
    for _ in range(turns - threads):
        i = rng.randrange(threads)
        while lengths[i] >= 12:
            i = rng.randrange(threads)
        lengths[i] += 1
    return lengths


def _interleave(
    rng: random.Random, threads: list[list[Turn]], echoes: Mapping[int, tuple[int, int]]
) -> list[Turn]:
    """Arrival order: about eight conversations open at once, a thread's messages in order,
    and an echo thread only once its origin has got past the part it echoes."""
    order: list[Turn] = []
    emitted = [0] * len(threads)
    live: list[int] = []
    waiting = list(range(len(threads)))
    while waiting or live:
        for n in list(waiting):
            if len(live) >= 8 and rng.random() >= 0.1:
                break
            if n in echoes:
                o, k = echoes[n]
                if emitted[o] < min(k + 1, len(threads[o])):
                    continue
            live.append(n)
            waiting.remove(n)
        if not live:  # every waiting thread waits on one not started: start the first
            live.append(waiting.pop(0))
        n = rng.choice(live)
        order.append(threads[n][emitted[n]])
        emitted[n] += 1
        if emitted[n] == len(threads[n]):
            live.remove(n)
    return order
