"""Sales Agent: the entry point and the wiring.

`sales-agent run` starts the Slack bot when SLACK_BOT_TOKEN and SLACK_APP_TOKEN are set, and the
console chat otherwise. The settings are read here once (the engine's and the bot's), the
adapters are built here and passed down; the commands and the console live in `cli/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

# Before numpy loads: a 5 ms embedding gains nothing from two BLAS threads, and on a busy
# 2-core machine they turn into second-long stalls (devtools/bench_embedder.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bot.logs import install_redaction
from bot.settings import BotSettings
from cli import commands
from cli.args import parser
from cli.chat import chat
from cli.commands import OpenEngine
from cli.errors import UsageError
from engine.errors import StoreUnavailable
from engine.knowledge import KnowledgeIndex
from engine.llm.factory import LLMStack, build_llm
from engine.pipeline.orchestrator import Engine
from engine.playbook import Playbook, default_playbook
from engine.playbook_file import PlaybookError, load_playbook
from engine.ports import Embedder
from engine.settings import Settings, SettingsError
from storage import Store, open_store

log = logging.getLogger("sales_agent")


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

    store = await open_database(settings)
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
            playbook=playbook_for(settings),
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


def playbook_for(settings: Settings) -> Playbook:
    """The built-in plays, changed by SALES_AGENT_PLAYBOOK when it is set (checked at start)."""
    return _playbook(settings.playbook_path)


@functools.cache
def _playbook(path: Path | None) -> Playbook:
    return load_playbook(path, default_playbook())[0]


def open_knowledge(
    settings: Settings, store: Store, embedder: Embedder | None
) -> KnowledgeIndex | None:
    """The knowledge index of SALES_AGENT_KNOWLEDGE (None when unset), stored beside the rest."""
    if settings.knowledge_dir is None:
        return None
    return KnowledgeIndex(settings.knowledge_dir, store=store.knowledge_rows(), embedder=embedder)


async def open_database(settings: Settings) -> Store:
    try:
        return await open_store(
            settings.database_url or settings.db_path,
            history_window=settings.history_window,
            wait_s=settings.db_wait_s,
        )
    except (sqlite3.Error, OSError) as exc:
        # A damaged file, a directory we cannot write: one line naming the file and the
        # variable that chose it, not a traceback from the worker thread.
        raise UsageError(database_problem(settings, exc)) from None


def database_problem(settings: Settings, exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if settings.database_url:  # a URL may hold a password: name the variable only
        return f"cannot use the database at DATABASE_URL: {reason}"
    return f"cannot use the database {settings.db_path} (SALES_AGENT_DB): {reason}"


@contextlib.asynccontextmanager
async def offline_on_scratch(settings: Settings) -> AsyncIterator[tuple[Engine, Store]]:
    """The engine on the offline tier and a throwaway store: `eval --threads` scores the rules'
    thread memory, whatever keys or database the settings name."""
    import tempfile

    from engine.llm.offline import OfflineProvider

    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(Path(tmp) / "threads.db", history_window=settings.history_window)
        try:
            yield (
                Engine(
                    llm=OfflineProvider(),
                    store=store,
                    settings=settings,
                    playbook=playbook_for(settings),
                ),
                store,
            )
        finally:
            await store.close()


async def grounding(
    settings: Settings, knowledge: Path, probes_file: Path, as_json: bool, out: TextIO
) -> int:
    """`eval --knowledge`: how often cards use the right section of a knowledge directory,
    through the fake LLM server as well as offline (devtools/grounding.py runs both)."""
    from devtools import grounding as runner
    from engine.knowledge.grounding import GroundingError, load_probes

    if not knowledge.is_dir():
        raise UsageError(f"--knowledge {knowledge}: not a directory")
    try:
        probes = load_probes(probes_file)
    except OSError as exc:
        raise UsageError(f"cannot read {probes_file}: {exc.strerror or exc}") from None
    except GroundingError as exc:
        raise UsageError(str(exc)) from None
    settings = replace(settings, knowledge_dir=knowledge)
    return await runner.run(settings, probes, playbook_for(settings), probes_file, as_json, out)


def engine_opener(settings: Settings, *, warm: bool) -> OpenEngine:
    @contextlib.asynccontextmanager
    async def open_engine() -> AsyncIterator[Engine]:
        async with runtime(settings, warm=warm) as rt:
            yield rt.engine

    return open_engine


async def run_slack(settings: Settings, bot_settings: BotSettings) -> int:
    """The Slack bot over Socket Mode until SIGTERM/SIGINT, then a graceful stop: no new
    events, in-flight turns finish or stay in the inbox for the next start, pools and the
    database closed."""
    import signal

    from bot.app import SlackBot
    from bot.turns import BotConfig
    from storage.spool import SqliteSpool

    assert bot_settings.bot_token and bot_settings.app_token
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with runtime(settings, warm=True) as rt:
        bot = SlackBot(
            engine=rt.engine,
            inbox_store=rt.store.inbox(),
            rate_buckets=rt.store.rate_buckets(),
            spool=SqliteSpool(bot_settings.spool_path),
            bot_token=bot_settings.bot_token,
            app_token=bot_settings.app_token,
            api_url=bot_settings.api_url,
            config=BotConfig(
                admins=bot_settings.admins,
                http_port=bot_settings.http_port,
                lease_s=bot_settings.inbox_lease_s,
            ),
        )
        try:
            await bot.run(stop)
        except Exception as exc:
            # The SDK's errors name Slack's answer, never the tokens; keep the line short.
            log.error("the Slack bot stopped: %s: %s", type(exc).__name__, str(exc)[:300])
            return 1
    return 0


def run(settings: Settings, bot_settings: BotSettings, stdin: TextIO, stdout: TextIO) -> int:
    if bot_settings.enabled:
        return asyncio.run(run_slack(settings, bot_settings))
    print(
        "No SLACK_BOT_TOKEN/SLACK_APP_TOKEN set: starting the console chat instead of Slack.",
        file=sys.stderr,
    )
    return chat(engine_opener(settings, warm=True), stdin, stdout, None)


# Entry point ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.command != "bench":
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = Settings.from_env(os.environ)
        bot_settings = BotSettings.from_env(os.environ)
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
            *bot_settings.secrets,
            settings.database_url,
        ]
    )
    command = args.command or "run"
    out = sys.stdout
    try:
        if settings.playbook_path is not None and command != "playbook":
            playbook_for(settings)  # a bad file stops the start, naming its play and field
        match command:
            case "run":
                return run(settings, bot_settings, sys.stdin, out)
            case "chat":
                return chat(engine_opener(settings, warm=True), sys.stdin, out, args.thread)
            case "replay":
                opener = engine_opener(settings, warm=True)
                return asyncio.run(commands.replay(opener, args.file, args.json, out))
            case "eval" if args.threads is not None:
                return asyncio.run(
                    commands.evaluate_threads(
                        lambda: offline_on_scratch(settings), args.threads, args.json, out
                    )
                )
            case "eval" if args.knowledge is not None:
                return asyncio.run(
                    grounding(settings, args.knowledge, args.grounding, args.json, out)
                )
            case "eval":
                opener = engine_opener(settings, warm=False)
                return asyncio.run(commands.evaluate(opener, args.golden, args.json, out))
            case "stats":
                opener = engine_opener(settings, warm=False)
                return asyncio.run(commands.stats(opener, args.json, out))
            case "prompts":
                return commands.prompts(args.json, out)
            case "playbook":
                return commands.playbook_check(args.file, default_playbook(), out)
            case "guard":
                return asyncio.run(
                    commands.guard(settings, args.paraphrases, args.hard_negatives, args.json, out)
                )
            case "bench":
                from devtools.bench.cli import main as bench_main

                return bench_main(rest, settings, out)
    except (UsageError, PlaybookError) as exc:
        print(f"sales-agent: error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:  # the database stayed unreachable past SALES_AGENT_DB_WAIT_S
        print(f"sales-agent: error: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:
        # The file opened but a page read later is damaged (a truncated copy, say).
        print(f"sales-agent: error: {database_problem(settings, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`sales-agent stats | head`): nothing left to say to it.
        sys.stderr.close()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
