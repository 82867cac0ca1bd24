"""The commands that read or score: replay, eval, stats, guard, prompts.

Each receives what it uses: `open_engine` (app.py's wiring: the engine with its adapters,
closed when the command ends), paths and output streams. The console chat is `cli/chat.py`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TextIO

from engine.card import card_view
from engine.errors import EmptyMessage
from engine.evaluation import GoldenError, Prediction, load_golden, score
from engine.model import SlotValue, ThreadContext, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import Playbook
from engine.settings import Settings
from engine.thread_eval import ContextReader

from .errors import UsageError
from .render import card_text, eval_text, stats_text, threads_text, turn_json
from .replay import read_replay

OpenEngine = Callable[[], AbstractAsyncContextManager[Engine]]


async def replay(open_engine: OpenEngine, path: Path, as_json: bool, out: TextIO) -> int:
    """Every turn in the file's order, each labelled with its line and thread; threads keep
    their own context, and a repeat across threads meets a warm cache as in a workspace."""
    turns = read_replay(path)
    run = uuid.uuid4().hex[:8]
    skipped = 0
    async with open_engine() as engine:
        for t in turns:
            turn = TurnInput(
                key=ThreadKey("replay", run, t.thread), text=t.text, message_id=f"{run}-{t.line}"
            )
            try:
                s = await engine.handle(turn)
            except EmptyMessage as exc:
                skipped += 1
                print(f"sales-agent: warning: {path}:{t.line}: {exc}; skipped", file=sys.stderr)
                if as_json:
                    print(json.dumps({"line": t.line, "error": str(exc)}), file=out, flush=True)
                continue
            if as_json:
                print(json.dumps({"line": t.line, **turn_json(s)}), file=out, flush=True)
            else:
                print(f"[line {t.line} · thread {t.thread}]", file=out)
                print(card_text(card_view(s)), file=out, flush=True)
    return 2 if skipped else 0


async def evaluate(open_engine: OpenEngine, golden: Path, as_json: bool, out: TextIO) -> int:
    try:
        examples = load_golden(golden)
    except OSError as exc:
        raise UsageError(f"cannot read {golden}: {exc.strerror or exc}") from None
    except GoldenError as exc:
        raise UsageError(str(exc)) from None
    async with open_engine() as engine:
        limit = asyncio.Semaphore(8)

        async def predict(i: int, text: str, context: dict[str, str]) -> Prediction:
            key = ThreadKey("eval", "golden", str(i))
            slots = {k: SlotValue(v, "golden", 0.0) for k, v in context.items()}
            async with limit:
                analysis = await engine.analyse(text, ThreadContext(key=key, slots=slots))
            return Prediction(analysis.detection.situation, dict(analysis.capture.slots))

        predictions = await asyncio.gather(
            *(predict(i, e.text, dict(e.context)) for i, e in enumerate(examples))
        )
    report = score(zip(examples, predictions, strict=True))
    report["golden"] = str(golden)
    print(json.dumps(report) if as_json else eval_text(report), file=out)
    return 0


async def evaluate_threads(
    open_scratch: Callable[[], AbstractAsyncContextManager[tuple[Engine, ContextReader]]],
    path: Path,
    as_json: bool,
    out: TextIO,
) -> int:
    """Each thread turn by turn through the engine that `open_scratch` gives (app.py: the
    offline tier on a throwaway store), scored on the slots and situations it remembers."""
    from engine.thread_eval import ThreadSetError, load_threads, run_threads, score_threads

    try:
        threads = load_threads(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ThreadSetError as exc:
        raise UsageError(str(exc)) from None
    async with open_scratch() as (engine, store):
        results = await run_threads(threads, engine, store)
    report = score_threads(results)
    report["threads"] = str(path)
    print(json.dumps(report) if as_json else threads_text(report, len(threads)), file=out)
    return 0


async def stats(open_engine: OpenEngine, as_json: bool, out: TextIO) -> int:
    async with open_engine() as engine:
        report = await engine.stats()
    print(json.dumps(report.to_json()) if as_json else stats_text(report), file=out)
    return 0


async def guard(
    settings: Settings, paraphrases: Path, hard_negatives: Path, as_json: bool, out: TextIO
) -> int:
    """The semantic cache's threshold curve: paraphrase hit rate and hard-negative false hits
    per threshold, with the false-hit guard, for the embedder the settings choose."""
    from engine.cache.calibration import format_guard_report, guard_report
    from engine.cache.embedders import build_embedder, threshold_for

    embedder = build_embedder(settings)
    try:
        report = await guard_report(
            embedder, paraphrases, hard_negatives, threshold_for(embedder, settings)
        )
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        closer = getattr(embedder, "aclose", None)
        if closer is not None:
            await closer()
    print(json.dumps(report) if as_json else format_guard_report(report), file=out)
    return 0 if not report["false_hits_at_chosen"] else 1


def playbook_check(path: Path, base: Playbook, out: TextIO) -> int:
    """What a playbook file would change in the built-in plays (or a PlaybookError: why not)."""
    from engine.playbook_file import load_playbook

    playbook, changes = load_playbook(path, base)
    print(f"{path}: valid, {len(playbook.plays)} plays in force", file=out)
    for change in changes:
        print(f"  {change.situation:22} {change.action:8} {change.strategy}", file=out)
    if not changes:
        print("  no change to the built-in plays", file=out)
    return 0


def prompts(as_json: bool, out: TextIO) -> int:
    from dataclasses import asdict

    from engine.llm.prompts import format_token_report, token_report

    rows = token_report()
    if as_json:
        print(json.dumps([asdict(r) for r in rows]), file=out)
    else:
        print(format_token_report(rows), file=out)
    return 0
