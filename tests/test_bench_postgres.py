"""The benchmarks on Postgres: `sales-agent bench --overhead --database-url` on a real server
(the session's, devtools.pgserver), each run on a scratch database of its own.

Structure and counts only (which backend, what the database did per turn), never timings.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import pytest

from devtools.bench.cli import main as bench_main
from devtools.pgserver import PostgresServer
from engine.settings import Settings


def _databases(server: PostgresServer) -> set[str]:
    with psycopg.connect(server.url, autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


@pytest.mark.timeout(60)
def test_overhead_on_postgres_names_the_backend_and_the_load_per_turn(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    before = _databases(pg_server)
    out = io.StringIO()
    argv = ["--overhead", "--turns", "120", "--memory-turns", "0", "--out", str(tmp_path)]
    code = bench_main([*argv, "--database-url", pg_server.url], Settings(), out)
    assert code == 0
    doc = json.loads((tmp_path / "overhead.json").read_text())
    rows = {(r["provider"], r["backend"]): r for r in doc["results"]}
    assert set(rows) == {
        ("offline", "sqlite"),
        ("fake-sdk", "sqlite"),
        ("offline", "postgres"),
        ("fake-sdk", "postgres"),
    }
    assert rows["offline", "sqlite"]["db_load_per_turn"] == {}
    load = rows["offline", "postgres"]["db_load_per_turn"]
    # Each turn commits its message and suggestion (and more): counted on the server.
    assert load["xact_commit"] >= 2 and load["tup_inserted"] >= 2
    # Loading a thread reads its own few rows, not every thread's suggestions (the
    # suggestions_thread index); without it each turn read most of the table.
    suggestions = rows["offline", "postgres"]["db_tables_per_turn"]["suggestions"]
    assert suggestions["seq_tup_read"] + suggestions["idx_tup_fetch"] < 20
    assert doc["database"] == pg_server.url  # no password in it to hide
    table = out.getvalue()
    assert "| offline | postgres |" in table and "Postgres / SQLite (offline)" in table
    assert "Postgres load per turn (offline)" in table
    # Every run had a scratch database of its own, and none is left behind.
    assert _databases(pg_server) == before


def test_a_database_url_that_is_not_postgres_is_refused(tmp_path: Path) -> None:
    code = bench_main(
        ["--overhead", "--database-url", "mysql://x", "--out", str(tmp_path)],
        Settings(),
        io.StringIO(),
    )
    assert code == 2
