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


@pytest.mark.timeout(60)
async def test_two_instances_share_the_messages_and_report_what_each_did(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    from devtools.bench import instances

    before = _databases(pg_server)
    result = await instances.measure(
        backend="postgres",
        instances=2,
        count=8,
        threads=4,
        out_dir=tmp_path,
        server=instances.Server(pg_server.url),
        warm=1,
        timeout_s=30,
    )
    doc = result.as_dict()
    assert doc["completed"] == 8 and doc["turns_per_s"] > 0
    each = doc["per_instance"]
    # The fake gives envelopes round-robin: both ran turns, and every turn is counted once.
    assert [i["turns"] for i in each] == [4, 4]
    assert all(i["cpu_s"] > 0 for i in each)
    # Each instance held connections of its own, named by its DATABASE_URL.
    assert all(i["db_connections_peak"] >= 1 for i in each)
    assert doc["db_connections_peak"] >= 2
    assert doc["db_load_per_turn"]["xact_commit"] >= 2
    assert doc["db_cpu_s"] is None  # a server we did not start: its CPU is not ours to read
    table = instances.table(
        {"machine": {"nproc": 2, "cpu": "x", "date": "d"}, "results": [doc]}
    )
    assert "| postgres | 2 |" in table
    assert _databases(pg_server) == before
    # The bots were stopped with SIGTERM and said so in their logs.
    for n in (1, 2):
        assert "Traceback" not in (tmp_path / f"instance-{n}.log").read_text()
