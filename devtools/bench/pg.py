"""Postgres for the benchmarks: a fresh scratch database per run, and what the server did.

Each run gets its own empty database (`CREATE DATABASE bench_<random>` on the given server,
dropped afterwards), so no run reads rows another left behind, as SQLite runs get a fresh file.
The load a run put on the server comes from `pg_stat_database` (the whole database) and
`pg_stat_user_tables` (per table: which one is scanned sequentially, and how many rows that
read), as the difference of two snapshots. Postgres 15+ keeps these counters in shared
memory, but a backend publishes its own at most once a second, and at the latest when it
exits: the snapshot after a run is taken once the run's connections are closed.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

__all__ = [
    "DATABASE_COUNTERS",
    "auto_server",
    "database_counters",
    "per_turn",
    "redact",
    "scratch_database",
    "table_counters",
    "wait_idle",
]

# The columns of pg_stat_database that say how much work the database did.
DATABASE_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blks_hit",
    "blks_read",
)
_TABLE_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch")


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead (user, password, host and options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def redact(url: str) -> str:
    """The URL without its password, for tables and JSON."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A fresh empty database on the server of `server_url`; its URL. Dropped afterwards,
    whoever is still connected (WITH (FORCE), Postgres 13+)."""
    name = f"bench_{secrets.token_hex(4)}"
    admin = with_database(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextlib.contextmanager
def auto_server() -> Iterator[str]:
    """A throwaway server (devtools.pgserver) for `--database-url auto`; its URL."""
    from devtools.pgserver import PostgresServer

    with PostgresServer.start() as server:
        yield server.url


def wait_idle(url: str, timeout: float = 10.0) -> int:
    """Wait until no other session is connected to the database of `url` (a closed pool's
    backends exit, and publish their counters, a moment after the client closes them).
    Returns how many were still connected at the end (0 unless the timeout ran out)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            others = int(row[0]) if row else 0
            if others == 0 or time.monotonic() > deadline:
                return others
            time.sleep(0.05)


def database_counters(url: str) -> dict[str, int]:
    """pg_stat_database's work counters for the database of `url`, now."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {', '.join(DATABASE_COUNTERS)} FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return {name: int(value or 0) for name, value in zip(DATABASE_COUNTERS, row, strict=True)}


def table_counters(url: str) -> dict[str, dict[str, int]]:
    """Per table of the database of `url`: sequential scans, rows they read, index scans."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT relname, {', '.join(_TABLE_COUNTERS)} FROM pg_stat_user_tables"
        ).fetchall()
    return {
        str(r[0]): {name: int(v or 0) for name, v in zip(_TABLE_COUNTERS, r[1:], strict=True)}
        for r in rows
    }


def per_turn(before: Mapping[str, int], after: Mapping[str, int], turns: int) -> dict[str, float]:
    """What the counters grew by, per turn."""
    return {k: round((after[k] - before.get(k, 0)) / max(1, turns), 2) for k in after}


def tables_per_turn(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]], turns: int
) -> dict[str, dict[str, float]]:
    """Per table, what its scan counters grew by per turn; tables nothing touched left out."""
    out: dict[str, dict[str, float]] = {}
    for table, now in sorted(after.items()):
        delta = per_turn(before.get(table, {}), now, turns)
        if any(delta.values()):
            out[table] = delta
    return out


def describe(doc: Mapping[str, Any]) -> str:
    """One line of per-turn load: transactions, rows read, rows written, buffer pages."""
    return (
        f"{doc['xact_commit']:.1f} commits, {doc['tup_returned']:.0f} rows returned / "
        f"{doc['tup_fetched']:.0f} fetched, {doc['tup_inserted'] + doc['tup_updated']:.1f} "
        f"written, {doc['blks_hit'] + doc['blks_read']:.0f} buffer pages"
    )
