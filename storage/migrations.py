"""Schema versions, applied in order; `PRAGMA user_version` records how far a file has come.

Append a function to add a version; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database


def _v1_threads(db: Database) -> None:
    db["threads"].create(
        {"key": str, "turns": int, "last_situation": str, "updated_at": float}, pk="key"
    )
    db["slots"].create(
        {"thread_key": str, "name": str, "value": str, "message_id": str, "set_at": float},
        pk=("thread_key", "name"),
    )
    db["messages"].create(
        {
            "id": str,
            "thread_key": str,
            "author": str,
            "text": str,
            "ts": float,
            "created_at": float,
        },
        pk="id",
    )
    db["messages"].create_index(["thread_key", "created_at"])
    db["suggestions"].create(
        {
            "id": str,
            "thread_key": str,
            "message_id": str,
            "created_at": float,
            "situation": str,
            "cache": str,
            "latency_ms": float,
            "reconciled": int,
            "feedback": int,
            "body": str,  # the whole suggestion as JSON: what the rep was shown
        },
        pk="id",
    )
    db["suggestions"].create_index(["created_at"])
    db["suggestions"].create_index(["message_id"])
    db["counters"].create({"name": str, "value": int}, pk="name")


def _v2_llm_calls(db: Database) -> None:
    db["llm_calls"].create(
        {
            "id": int,
            "at": float,
            "step": str,
            "provider": str,
            "model": str,
            "tier": str,
            "outcome": str,
            "ms": float,
            "tokens_in": int,
            "tokens_out": int,
            "cost_usd": float,
            "prompt": str,
            "response": str,
        },
        pk="id",
    )
    db["llm_calls"].create_index(["at"])


MIGRATIONS: tuple[Callable[[Database], None], ...] = (_v1_threads, _v2_llm_calls)


def migrate(db: Database) -> int:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        with db.conn:
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)
