"""Sales Agent: wiring and the command line.

`sales-agent run` starts the Slack bot when SLACK_BOT_TOKEN and SLACK_APP_TOKEN are set, and the
console chat otherwise. Everything is built here from one Settings object and passed down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

# Before numpy loads: a 5 ms embedding gains nothing from two BLAS threads, and on a busy
# 2-core machine they turn into second-long stalls (devtools/bench_embedder.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bot.logs import install_redaction
from engine.codec import suggestion_to_dict
from engine.data import GOLDEN, GROUNDING, HARD_NEGATIVES, PARAPHRASES, THREADS
from engine.errors import EmptyMessage, StoreUnavailable, TurnNotSaved
from engine.evaluation import GoldenError, Prediction, load_golden, score
from engine.knowledge import KnowledgeIndex
from engine.llm.factory import LLMStack, build_llm
from engine.model import Suggestion, ThreadContext, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import Embedder
from engine.settings import Settings, SettingsError
from engine.taxonomy import SITUATION_TITLES, SLOT_TITLES
from storage import Store, open_store

log = logging.getLogger("sales_agent")


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: Store


@contextlib.asynccontextmanager
async def runtime(settings: Settings, *, warm: bool = False) -> AsyncIterator[Runtime]:
    """The engine and its adapters; `warm` readies the embedder for commands that coach."""
    from engine.cache import open_cache
    from engine.cache.embedders import build_embedder
    from engine.cache.fingerprint import answer_version

    store = await open_store(
        settings.database_url or settings.db_path,
        history_window=settings.history_window,
        wait_s=settings.db_wait_s,
    )
    cache = None
    llm: LLMStack | None = None
    try:
        # The LLM providers behind the router (or the offline tier when no key is set).
        llm = await build_llm(settings, calls=store, warm_up=warm)
        embedder = build_embedder(settings)  # one model, shared by the cache and the knowledge
        knowledge = open_knowledge(settings, store, embedder)
        # The response cache: exact + semantic tiers, kept in the same database.
        cache = await open_cache(
            settings,
            persistence=store.cache_rows(),
            suggestion_of=store.suggestion,
            providers=llm.names,
            knowledge=knowledge.digest if knowledge else "",
            embedder=embedder,
        )
        if cache is not None and warm:
            await cache.warm_up()
        if knowledge is not None:
            if cache is not None:
                names, live = llm.names, cache
                knowledge.on_change = lambda digest: live.rekey(
                    answer_version(settings, names, digest)
                )
            if warm:
                await knowledge.prepare()
        engine = Engine(
            llm=llm.provider,
            store=store,
            settings=settings,
            playbook=default_playbook(),
            cache=cache,
            tiering=llm.tiering,
            calls=store,
            llm_stats=llm,
            locks=store.thread_locks,
            knowledge=knowledge,
        )
        yield Runtime(settings, engine, store)
    finally:
        # Providers first: closing them writes the last call records to the store.
        if llm is not None:
            await llm.aclose()
        if cache is not None:
            await cache.aclose()
        await store.close()


def open_knowledge(
    settings: Settings, store: Store, embedder: Embedder | None
) -> KnowledgeIndex | None:
    """The knowledge index of SALES_AGENT_KNOWLEDGE (None when unset), stored beside the rest."""
    if settings.knowledge_dir is None:
        return None
    return KnowledgeIndex(settings.knowledge_dir, store=store.knowledge_rows(), embedder=embedder)


# Console rendering -------------------------------------------------------------------------


def render_card(s: Suggestion) -> str:
    title = SITUATION_TITLES.get(s.situation, s.situation)
    lines = [f"── {title} ({s.confidence:.0%}) · strategy: {s.strategy}"]
    if s.slots:
        known = ", ".join(
            f"{SLOT_TITLES.get(k, k)}: {v}" + (" (new)" if k in s.slots_delta else "")
            for k, v in s.slots.items()
        )
        lines.append(f"   Deal: {known}")
    lines.append(f"   Suggested reply: {s.reply}")
    lines.append(f"   Tip: {s.coaching_tip}")
    lines.extend(f"   Note: {note}" for note in s.notes)
    if s.sources:
        lines.append(f"   Sources: {'; '.join(map(str, s.sources))}")
    providers = sorted({f"{c.provider}/{c.model}" for c in s.calls}) or ["cache"]
    lines.append(f"   {s.latency_ms:.0f} ms · cache: {s.cache} · {', '.join(providers)}")
    return "\n".join(lines)


def turn_json(s: Suggestion) -> dict[str, Any]:
    d = suggestion_to_dict(s)
    return {
        "thread": d["thread"],
        "situation": s.situation,
        "confidence": s.confidence,
        "slots": d["slots"],
        "slots_delta": d["slots_delta"],
        "strategy": s.strategy,
        "reply": s.reply,
        "coaching_tip": s.coaching_tip,
        "cache": s.cache,
        "providers": {c.step: f"{c.provider}/{c.model}" for c in s.calls},
        "latency_ms": d["latency_ms"],
        "step_ms": d["step_ms"],
        "reconciled": s.reconciled,
        "notes": d["notes"],
        "sources": d["sources"],
    }


# Commands ------------------------------------------------------------------------------------


async def cmd_chat(settings: Settings, stdin: TextIO, stdout: TextIO, thread: str | None) -> int:
    key = ThreadKey("console", "chat", thread or uuid.uuid4().hex[:12])
    interactive = stdin.isatty()
    unsaved = 0
    async with runtime(settings, warm=True) as rt:
        if interactive:
            print("Paste what the prospect said (Ctrl-D to quit).", file=stdout)
        while True:
            if interactive:
                print("prospect> ", end="", file=stdout, flush=True)
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            text = line.rstrip("\n")
            if not text.strip():
                if interactive:
                    print("   (empty message: paste what the prospect said)", file=stdout)
                continue
            turn = TurnInput(key=key, text=text, message_id=uuid.uuid4().hex)
            try:
                print(render_card(await rt.engine.handle(turn)), file=stdout, flush=True)
            except StoreUnavailable as exc:
                # The database stayed busy: show what was computed, say so, read on.
                if isinstance(exc, TurnNotSaved):
                    print(render_card(exc.suggestion), file=stdout, flush=True)
                print(f"sales-agent: not saved: {exc}", file=sys.stderr, flush=True)
                unsaved += 1
    return 1 if unsaved else 0


async def cmd_replay(settings: Settings, path: Path, as_json: bool, stdout: TextIO) -> int:
    turns = read_replay(path)
    run = uuid.uuid4().hex[:8]
    async with runtime(settings, warm=True) as rt:
        by_thread: dict[str, list[TurnInput]] = {}
        for thread, text, number in turns:
            key = ThreadKey("replay", run, thread)
            by_thread.setdefault(thread, []).append(
                TurnInput(key=key, text=text, message_id=f"{run}-{number}")
            )
        # Threads run one after another so output order is the file's order and repeats
        # across threads meet a warm cache, as they would in a real workspace.
        for thread_turns in by_thread.values():
            for turn in thread_turns:
                try:
                    s = await rt.engine.handle(turn)
                except EmptyMessage as exc:
                    print(json.dumps({"error": str(exc)}) if as_json else str(exc), file=stdout)
                    continue
                print(json.dumps(turn_json(s)) if as_json else render_card(s), file=stdout)
    return 0


def read_replay(path: Path) -> list[tuple[str, str, int]]:
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
            try:
                row = json.loads(line)
                turns.append((str(row.get("thread", "main")), str(row["text"]), number))
            except (json.JSONDecodeError, KeyError, AttributeError) as exc:
                raise UsageError(
                    f'{path}:{number}: expected {{"thread": ..., "text": ...}} ({exc})'
                ) from None
        else:
            turns.append(("main", line, number))
    return turns


async def cmd_eval(settings: Settings, golden: Path, as_json: bool, stdout: TextIO) -> int:
    try:
        examples = load_golden(golden)
    except OSError as exc:
        raise UsageError(f"cannot read {golden}: {exc.strerror or exc}") from None
    except GoldenError as exc:
        raise UsageError(str(exc)) from None
    async with runtime(settings) as rt:
        limit = asyncio.Semaphore(8)

        async def predict(i: int, text: str, context: dict[str, str]) -> Prediction:
            key = ThreadKey("eval", "golden", str(i))
            ctx = ThreadContext(key=key, slots={k: _slot(v) for k, v in context.items()})
            async with limit:
                analysis = await rt.engine.analyse(text, ctx)
            return Prediction(analysis.detection.situation, dict(analysis.capture.slots))

        predictions = await asyncio.gather(
            *(predict(i, e.text, dict(e.context)) for i, e in enumerate(examples))
        )
    report = score(zip(examples, predictions, strict=True))
    report["golden"] = str(golden)
    if as_json:
        print(json.dumps(report), file=stdout)
    else:
        print(f"{golden}: {report['n']} messages", file=stdout)
        for name in (
            "situation_accuracy",
            "situation_macro_f1",
            "slot_precision",
            "slot_recall",
            "slot_f1",
        ):
            print(f"  {name:20} {report[name]:.3f}", file=stdout)
        for name, value in report["value_accuracy"].items():
            print(
                f"  {name + ' value':20} {value if value is None else f'{value:.3f}'}", file=stdout
            )
        top = list(report["confusions"].items())[:8]
        if top:
            print("  most confused: " + ", ".join(f"{k} ×{v}" for k, v in top), file=stdout)
    return 0


async def cmd_eval_threads(settings: Settings, path: Path, as_json: bool, stdout: TextIO) -> int:
    """Each thread turn by turn through the engine on the offline tier and a throwaway store:
    the score is the rules' thread memory, whatever keys or database the settings name."""
    import tempfile

    from engine.llm.offline import OfflineProvider
    from engine.thread_eval import ThreadSetError, load_threads, run_threads, score_threads

    try:
        threads = load_threads(path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ThreadSetError as exc:
        raise UsageError(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(Path(tmp) / "threads.db", history_window=settings.history_window)
        try:
            engine = Engine(
                llm=OfflineProvider(), store=store, settings=settings, playbook=default_playbook()
            )
            results = await run_threads(threads, engine, store)
        finally:
            await store.close()
    report = score_threads(results)
    report["threads"] = str(path)
    if as_json:
        print(json.dumps(report), file=stdout)
        return 0
    print(f"{path}: {len(threads)} threads (t01-t26 tuning, the rest held out)", file=stdout)
    for part in ("tuning", "held_out", "all"):
        r = report[part]
        agreement = ", ".join(
            f"{name} {v['agree']}/{v['compared']}" for name, v in r["value_agreement"].items()
        )
        print(
            f"  {part:9} {r['threads']:3} threads  slot recall {r['slot_recall']:.3f}  "
            f"precision {r['slot_precision']:.3f}  situation {r['situation_accuracy']:.3f}",
            file=stdout,
        )
        print(f"  {'':9} values agree: {agreement}", file=stdout)
    return 0


async def cmd_grounding(
    settings: Settings, knowledge: Path, grounding: Path, as_json: bool, stdout: TextIO
) -> int:
    from devtools import grounding as runner
    from engine.knowledge.grounding import GroundingError, load_probes

    if not knowledge.is_dir():
        raise UsageError(f"--knowledge {knowledge}: not a directory")
    try:
        probes = load_probes(grounding)
    except OSError as exc:
        raise UsageError(f"cannot read {grounding}: {exc.strerror or exc}") from None
    except GroundingError as exc:
        raise UsageError(str(exc)) from None
    settings = replace(settings, knowledge_dir=knowledge)
    return await runner.run(settings, probes, default_playbook(), grounding, as_json, stdout)


def _slot(value: str) -> Any:
    from engine.model import SlotValue

    return SlotValue(value, "golden", 0.0)


async def cmd_stats(settings: Settings, as_json: bool, stdout: TextIO) -> int:
    async with runtime(settings) as rt:
        report = await rt.engine.stats()
    if as_json:
        print(json.dumps(report.to_json()), file=stdout)
        return 0
    c, r = report.cache, report.reconcile
    print(f"turns: {report.turns}", file=stdout)
    print(
        f"cache: hit rate {c.hit_rate:.1%} (exact {c.exact_hits}, "
        f"semantic {c.semantic_hits} of {c.lookups} lookups)",
        file=stdout,
    )
    if c.live is not None:
        print(
            f"cache: {c.live.size} entries, embedder {c.live.embedder or 'off'}, "
            f"semantic threshold {c.live.threshold}, {c.live.evictions} evictions, "
            f"{c.live.guard_rejections} guard rejections",
            file=stdout,
        )
    triggers = ", ".join(f"{k} {v}" for k, v in r.triggers.items()) or "none"
    print(f"reconcile: {r.rate:.1%} of {r.turns} analysed turns ({triggers})", file=stdout)
    for step, p in report.latency.items():
        print(
            f"latency {step:11} p50 {p.p50:.1f} ms  p95 {p.p95:.1f} ms  p99 {p.p99:.1f} ms",
            file=stdout,
        )
    for name, pr in report.llm.providers.items():
        print(
            f"provider {name}: {pr.requests} requests, {pr.wins} wins, "
            f"{pr.cancelled} cancelled, {pr.error_count} errors, "
            f"p95 {pr.latency_ms.p95:.0f} ms",
            file=stdout,
        )
    f = report.feedback
    print(f"feedback: {f.positive} of {f.rated} positive", file=stdout)
    return 0


async def cmd_guard(
    settings: Settings, paraphrases: Path, hard_negatives: Path, as_json: bool, stdout: TextIO
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
    print(json.dumps(report) if as_json else format_guard_report(report), file=stdout)
    return 0 if not report["false_hits_at_chosen"] else 1


def cmd_prompts(as_json: bool, stdout: TextIO) -> int:
    from dataclasses import asdict

    from engine.llm.prompts import format_token_report, token_report

    rows = token_report()
    if as_json:
        print(json.dumps([asdict(r) for r in rows]), file=stdout)
    else:
        print(format_token_report(rows), file=stdout)
    return 0


async def cmd_run(settings: Settings, stdin: TextIO, stdout: TextIO) -> int:
    if not settings.slack_enabled:
        print(
            "No SLACK_BOT_TOKEN/SLACK_APP_TOKEN set: starting the console chat instead of Slack.",
            file=sys.stderr,
        )
        return await cmd_chat(settings, stdin, stdout, None)
    return await run_slack(settings)


async def run_slack(settings: Settings) -> int:
    """The Slack bot over Socket Mode until SIGTERM/SIGINT, then a graceful stop: no new
    events, in-flight turns finish or stay in the inbox for the next start, pools and the
    database closed."""
    import signal

    from bot.app import SlackBot
    from bot.turns import BotConfig

    assert settings.slack_bot_token and settings.slack_app_token
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with runtime(settings, warm=True) as rt:
        bot = SlackBot(
            engine=rt.engine,
            inbox_store=rt.store.inbox(),
            bot_token=settings.slack_bot_token,
            app_token=settings.slack_app_token,
            api_url=settings.slack_api_url,
            config=BotConfig(
                admins=settings.admins,
                http_port=settings.http_port,
                lease_s=settings.inbox_lease_s,
            ),
        )
        try:
            await bot.run(stop)
        except Exception as exc:
            # The SDK's errors name Slack's answer, never the tokens; keep the line short.
            log.error("the Slack bot stopped: %s: %s", type(exc).__name__, str(exc)[:300])
            return 1
    return 0


# Entry point ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sales-agent", description="Coaching cards for sales reps.")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="start the Slack bot (or the console chat without Slack tokens)")
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
    guard.add_argument(
        "--hard-negatives", type=Path, default=HARD_NEGATIVES
    )
    guard.add_argument("--json", action="store_true")
    # The benchmark parses its own options (`sales-agent bench --help`), so that devtools is
    # imported only when it runs.
    sub.add_parser(
        "bench",
        add_help=False,
        help="latency ladder against the fake LLM server (--overhead: engine cost)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.command != "bench":
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"sales-agent: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_redaction(
        [
            *(p.api_key for p in settings.providers),
            settings.slack_bot_token,
            settings.slack_app_token,
            settings.database_url,
        ]
    )
    command = args.command or "run"
    try:
        match command:
            case "run":
                return asyncio.run(cmd_run(settings, sys.stdin, sys.stdout))
            case "chat":
                return asyncio.run(cmd_chat(settings, sys.stdin, sys.stdout, args.thread))
            case "replay":
                return asyncio.run(cmd_replay(settings, args.file, args.json, sys.stdout))
            case "eval" if args.threads is not None:
                return asyncio.run(cmd_eval_threads(settings, args.threads, args.json, sys.stdout))
            case "eval" if args.knowledge is not None:
                return asyncio.run(
                    cmd_grounding(settings, args.knowledge, args.grounding, args.json, sys.stdout)
                )
            case "eval":
                return asyncio.run(cmd_eval(settings, args.golden, args.json, sys.stdout))
            case "stats":
                return asyncio.run(cmd_stats(settings, args.json, sys.stdout))
            case "prompts":
                return cmd_prompts(args.json, sys.stdout)
            case "guard":
                return asyncio.run(
                    cmd_guard(
                        settings, args.paraphrases, args.hard_negatives, args.json, sys.stdout
                    )
                )
            case "bench":
                from devtools.bench.cli import main as bench_main

                return bench_main(rest, settings, sys.stdout)
    except UsageError as exc:
        print(f"sales-agent: error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:  # the database stayed unreachable past SALES_AGENT_DB_WAIT_S
        print(f"sales-agent: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`sales-agent stats | head`): nothing left to say to it.
        sys.stderr.close()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
