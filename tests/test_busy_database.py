"""A busy or broken database loses nothing: writes wait with backoff up to a bound, then fail
visibly with `StoreUnavailable`; the card already computed is still shown.

Before the backoff, a second process holding SQLite's write lock for more than the 5 s busy
timeout crashed `chat` with `sqlite3.OperationalError: database is locked` when it saved the
turn: the card and the rest of the piped input were lost.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import psycopg
import pytest

from engine.errors import StoreUnavailable, TurnNotSaved
from engine.llm.offline import OfflineProvider
from engine.model import ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from storage import SqliteStore, open_store
from tests.cli_kit import run
from tests.db_kit import write_lock_held

KEY = ThreadKey("T1", "C1", "7.0")
async def _prepare(path: Path) -> None:
    store = await SqliteStore.open(path)  # the file exists and is migrated before the lock
    await store.close()


def _turns(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(turns), 0) FROM threads").fetchone()[0])


def test_chat_waits_out_a_write_lock_held_longer_than_sqlite_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    asyncio.run(_prepare(db))
    lines = "We use Gong\nWe're 40 reps\nToo expensive for us\n"
    started = time.monotonic()
    with write_lock_held(db, 7.0):
        out = run(tmp_path, "chat", stdin=lines)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split("── ")[1:]) == 3
    assert "not saved" not in out.stderr
    assert elapsed > 6.5  # the first save really waited for the lock (past the 5 s timeout)
    assert _turns(db) == 3


def test_chat_shows_the_card_and_says_so_when_the_lock_outlasts_the_wait(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    asyncio.run(_prepare(db))
    with write_lock_held(db, 60.0):
        started = time.monotonic()
        out = run(
            tmp_path,
            "chat",
            stdin="We use Gong\nWe're 40 reps\n",
            env={"SALES_AGENT_DB_WAIT_S": "1.5"},
        )
        elapsed = time.monotonic() - started
    assert out.returncode == 1  # visible failure, not a crash
    assert "Traceback" not in out.stderr
    cards = out.stdout.split("── ")[1:]
    assert len(cards) == 2 and "Competitor: Gong" in cards[0]  # both lines: no input lost
    assert out.stderr.count("sales-agent: not saved: the database is unavailable") == 2
    assert "database is locked" in out.stderr
    assert elapsed < 20  # bounded: 1.5 s a line, plus start-up
    assert _turns(db) == 0  # nothing half-written
    again = run(tmp_path, "chat", stdin="We use Gong\n")  # the lock is gone: all is normal
    assert again.returncode == 0 and _turns(db) == 1


async def test_the_engine_reports_an_unsaved_turn_with_its_card(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    store = await SqliteStore.open(db, wait_s=0.5)
    engine = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
    with write_lock_held(db, 30.0), pytest.raises(TurnNotSaved) as caught:
        await engine.handle(TurnInput(KEY, "We are evaluating Gong", message_id="m1"))
    assert caught.value.suggestion.slots_delta == {"competitor": "Gong"}
    assert "gave up on _commit_turn" in str(caught.value)
    # Retried once the database is back, the same card is kept exactly once.
    await store.commit_turn(
        TurnInput(KEY, "We are evaluating Gong", message_id="m1"), caught.value.suggestion
    )
    assert (await store.load(KEY)).values() == {"competitor": "Gong"}
    await store.close()


# Postgres --------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_postgres_fails_within_the_bound() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="the database is unavailable"):
        await open_store(url, wait_s=1.0)
    assert time.monotonic() - started < 5


async def test_postgres_sessions_killed_under_the_store_are_replaced(pg_url: str) -> None:
    """A restart or failover drops every connection: the next operation reconnects."""
    store = await open_store(pg_url)
    await store.load(KEY)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid != pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    engine = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
    await engine.handle(TurnInput(KEY, "We are evaluating Gong", message_id="m1"))
    assert (await store.load(KEY)).values() == {"competitor": "Gong"}
    await store.close()


async def test_a_postgres_table_lock_makes_a_commit_wait_then_fail_visibly(pg_url: str) -> None:
    store = await open_store(pg_url, wait_s=1.5)
    engine = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
    turn = TurnInput(KEY, "We are evaluating Gong", message_id="m1")
    holder = await psycopg.AsyncConnection.connect(pg_url)
    await holder.execute("LOCK TABLE threads IN EXCLUSIVE MODE")  # writes wait; reads go on
    started = time.monotonic()
    with pytest.raises(TurnNotSaved) as caught:
        await engine.handle(turn)
    assert 1.0 < time.monotonic() - started < 6
    assert "LockNotAvailable" in str(caught.value)

    # Held for less than the bound: the commit waits, then goes through.
    patient = await open_store(pg_url, wait_s=20.0)
    saving = asyncio.create_task(patient.commit_turn(turn, caught.value.suggestion))
    await asyncio.sleep(1.0)
    assert not saving.done()
    await holder.commit()
    await saving
    assert (await store.load(KEY)).values() == {"competitor": "Gong"}
    await holder.close()
    await store.close()
    await patient.close()


def test_settings_read_the_wait_and_never_echo_a_bad_url() -> None:
    from engine.settings import Settings, SettingsError

    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://u:pw@db/x", "SALES_AGENT_DB_WAIT_S": "2.5"}
    )
    assert settings.db_wait_s == 2.5 and settings.database_url == "postgresql://u:pw@db/x"
    assert "pw" not in repr(settings)
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({"DATABASE_URL": "mysql://u:secret@db/x"})
    assert "secret" not in str(bad.value)
