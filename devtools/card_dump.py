"""Offline cards for a human review: `python -m devtools.card_dump --n 30 --out cards.md`.

A fixed mix, so two runs (before and after a change) show the same messages: two thirds are
turns of the labelled threads (engine/data/threads.jsonl), each coached after the thread's
earlier messages so the card has a deal context; one third are holdout messages, coached in a
fresh thread. Each card shows the message, the thread so far and its slots, the situation, the
suggested reply and the tip, for a reviewer to score (would you send it? does it use the deal
context? is it wrong?).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.data import HOLDOUT, THREADS
from engine.llm.offline import OfflineProvider
from engine.model import Suggestion, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from engine.taxonomy import SITUATION_TITLES, SLOT_TITLES
from engine.thread_eval import load_threads
from storage import SqliteStore


@dataclass(frozen=True, slots=True)
class Sample:
    source: str
    earlier: tuple[str, ...]  # the thread's messages before this one
    message: str


def samples(n: int) -> list[Sample]:
    """n messages: threads' turns (the last turn and a middle one in turn, spread over the set)
    and holdout messages (every k-th), interleaved two to one."""
    threads = load_threads(THREADS)
    from_threads: list[Sample] = []
    for i, t in enumerate(threads):
        at = len(t.messages) - 1 if i % 4 < 2 else max(1, len(t.messages) // 2)
        from_threads.append(Sample(f"{t.thread} turn {at + 1}", t.messages[:at], t.messages[at]))
    holdout = [json.loads(line) for line in HOLDOUT.read_text("utf-8").splitlines() if line]
    n_threads = n - n // 3
    n_holdout = n - n_threads
    step_t = max(1, len(from_threads) // n_threads)
    step_h = max(1, len(holdout) // max(1, n_holdout))
    picked_t = from_threads[::step_t][:n_threads]
    picked_h = [
        Sample(f"holdout line {i + 1}", (), holdout[i]["text"])
        for i in range(0, len(holdout), step_h)
    ][:n_holdout]
    mixed: list[Sample] = []
    while picked_t or picked_h:
        mixed.extend(picked_t[:2])
        picked_t = picked_t[2:]
        mixed.extend(picked_h[:1])
        picked_h = picked_h[1:]
    return mixed[:n]


async def coach(items: Sequence[Sample]) -> list[tuple[Sample, Suggestion]]:
    cards = []
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "cards.db")
        try:
            engine = Engine(
                llm=OfflineProvider(),
                store=store,
                settings=Settings(db_path=Path(tmp) / "cards.db"),
                playbook=default_playbook(),
            )
            for number, item in enumerate(items):
                key = ThreadKey("cards", "dump", str(number))
                for i, text in enumerate(item.earlier):
                    await engine.handle(TurnInput(key, text, f"{number}-{i}"))
                cards.append((item, await engine.handle(TurnInput(key, item.message, f"{number}"))))
        finally:
            await store.close()
    return cards


def render(cards: Sequence[tuple[Sample, Suggestion]]) -> str:
    out = [
        "# Offline cards for review",
        "",
        "Score each card: **send** (would you send the reply as it is? yes / with edits / no), "
        "**context** (does it use what the thread said? yes / partly / no), "
        "**wrong** (does it say anything false or inappropriate? yes / no).",
        "",
    ]
    for number, (item, s) in enumerate(cards, start=1):
        out.append(f"## Card {number} ({item.source})")
        out.append("")
        if item.earlier:
            out.append("Earlier in the thread:")
            out.extend(f"> {m}".replace("\n", "\n> ") for m in item.earlier)
            out.append("")
        out.append("Prospect:")
        out.append(f"> {item.message}".replace("\n", "\n> "))
        out.append("")
        deal = "; ".join(f"{SLOT_TITLES.get(k, k)}: {v}" for k, v in s.slots.items()) or "none"
        out.append(f"- Situation: {SITUATION_TITLES.get(s.situation, s.situation)}")
        out.append(f"- Deal so far: {deal}")
        out.append(f"- Suggested reply: {s.reply}")
        out.append(f"- Tip: {s.coaching_tip}")
        out.append("")
        out.append("Score: send __ · context __ · wrong __")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.card_dump", description=__doc__)
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    cards = asyncio.run(coach(samples(args.n)))
    args.out.write_text(render(cards), "utf-8")
    print(f"{len(cards)} cards written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
