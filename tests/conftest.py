from __future__ import annotations

import os

# As app.py does, before numpy loads: one BLAS thread for small embeddings.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import SlackBot
from bot.turns import BotConfig
from devtools.fake_llm import FakeLLMServer
from devtools.fake_slack import FakeSlack
from devtools.pgserver import PostgresServer, ServerUnavailable
from engine.inbox import Spool
from engine.llm.offline import OfflineProvider
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import Provider
from engine.settings import Settings
from storage import SqliteStore, Store, open_store
from tests.llm_kit import Kit
from tests.slack_kit import APP_TOKEN, BOT_TOKEN, DictCache, Harness, Start


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "agent.db")
    yield s
    await s.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "agent.db")


@pytest.fixture
def engine(store: SqliteStore, settings: Settings) -> Engine:
    return Engine(
        llm=OfflineProvider(),
        store=store,
        settings=settings,
        playbook=default_playbook(),
        calls=store,
    )


# Both backends -------------------------------------------------------------------------------
# Store-level tests take `backend` and run once on SQLite and once on a real PostgreSQL server,
# started for the session (devtools.pgserver). No server is a failure that says why, not a skip.


@dataclass
class Backend:
    name: str
    target: str | Path  # a SQLite path or a postgresql:// URL; opening it twice shares it

    async def open(self, **options: Any) -> Store:
        return await open_store(self.target, **options)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server_cm = PostgresServer.start()
        server = server_cm.__enter__()
    except ServerUnavailable as exc:
        pytest.fail(f"the Postgres store tests need a PostgreSQL server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server_cm.__exit__(None, None, None)


_databases = itertools.count(1)


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh empty database on the session's server."""
    return pg_server.create_database(f"t{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path / "agent.db")
    return Backend("postgres", request.getfixturevalue("pg_url"))


# The fake LLM server and providers over it (provider, router, tiering tests) ----------------


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(latency_profile="zero", time_scale=0) as srv:
        yield srv


@pytest_asyncio.fixture
async def kit(server: FakeLLMServer) -> AsyncIterator[Kit]:
    k = Kit(server)
    yield k
    await k.close()


# A running Slack bot against the fake Slack (Slack bot and streaming tests) ----------------


@pytest_asyncio.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """start(llm=..., cache=..., **BotConfig fields) -> a running bot against a fresh fake."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def _start(
        llm: Provider | None = None,
        cache: DictCache | None = None,
        fake: FakeSlack | None = None,
        db: Path | None = None,
        wait_s: float = 30.0,
        store: Store | None = None,
        spool: Spool | None = None,
        **config: Any,
    ) -> Harness:
        if fake is None:
            fake = await FakeSlack.start()
            cleanups.append(fake.close)
        if store is None:
            store = await SqliteStore.open(db or tmp_path / "bot.db", wait_s=wait_s)
            cleanups.append(store.close)
        engine = Engine(
            llm=llm or OfflineProvider(),
            store=store,
            settings=Settings(),
            playbook=default_playbook(),
            cache=cache,
            calls=store,
        )
        inbox = store.inbox()
        settings = {"append_interval": 0.2, "drain_timeout": 2.0, **config}
        bot = SlackBot(
            engine=engine,
            inbox_store=inbox,
            bot_token=BOT_TOKEN,
            app_token=APP_TOKEN,
            api_url=fake.api_url.rstrip("/"),  # the bot adds the slash slack_sdk needs
            config=BotConfig(**settings),
            rate_buckets=store.rate_buckets(),
            spool=spool,
        )
        await bot.start()
        cleanups.append(bot.stop)
        await fake.wait_connected()
        return Harness(fake, store, engine, inbox, bot)

    yield _start
    for cleanup in reversed(cleanups):
        await cleanup()
