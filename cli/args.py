"""The product's command-line arguments. `bench` parses its own (devtools/bench/cli.py), so
that devtools is imported only when the benchmark runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.data import GOLDEN, GROUNDING, HARD_NEGATIVES, PARAPHRASES, THREADS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sales-agent", description="Coaching cards for sales reps.")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="start the Slack bot (or the console chat without Slack tokens)")
    book = sub.add_parser("playbook", help="your own playbook file (SALES_AGENT_PLAYBOOK)")
    book_sub = book.add_subparsers(dest="action", required=True)
    check = book_sub.add_parser("check", help="validate a playbook file; print what it changes")
    check.add_argument("file", type=Path)
    chat = sub.add_parser("chat", help="coach in the console; piped stdin gives one card a line")
    chat.add_argument("--thread", help="continue a named console thread")
    replay = sub.add_parser("replay", help="coach every line of a file (plain lines or JSONL)")
    replay.add_argument("file", type=Path)
    replay.add_argument("--json", action="store_true", help="one JSON object per turn")
    ev = sub.add_parser("eval", help="score capture and detect on a labelled golden set")
    ev.add_argument("--golden", type=Path, default=GOLDEN)
    ev.add_argument(
        "--threads",
        type=Path,
        nargs="?",
        const=THREADS,
        help="score thread memory on multi-turn threads instead (default: the packaged set)",
    )
    ev.add_argument(
        "--knowledge",
        type=Path,
        help="score grounding instead: how often cards use the right section of this dir",
    )
    ev.add_argument("--grounding", type=Path, default=GROUNDING)
    ev.add_argument("--json", action="store_true")
    st = sub.add_parser("stats", help="cache, reconcile, provider and latency figures")
    st.add_argument("--json", action="store_true")
    pr = sub.add_parser("prompts", help="prompt token counts per step and style")
    pr.add_argument("--json", action="store_true")
    guard = sub.add_parser(
        "guard", help="semantic cache: paraphrase hits and hard-negative false hits per threshold"
    )
    guard.add_argument("--paraphrases", type=Path, default=PARAPHRASES)
    guard.add_argument("--hard-negatives", type=Path, default=HARD_NEGATIVES)
    guard.add_argument("--json", action="store_true")
    sub.add_parser(
        "bench",
        add_help=False,
        help="latency ladder against the fake LLM server (--overhead: engine cost)",
    )
    return p
