"""Schema versions, applied in order; `PRAGMA user_version` records how far a file has come.

Append a function to add a version; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database


def _v1_threads(db: Database) -> None:
    db.table("threads").create(
        {"key": str, "turns": int, "last_situation": str, "updated_at": float}, pk="key"
    )
    db.table("slots").create(
        {"thread_key": str, "name": str, "value": str, "message_id": str, "set_at": float},
        pk=("thread_key", "name"),
    )
    db.table("messages").create(
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
    db.table("messages").create_index(["thread_key", "created_at"])
    db.table("suggestions").create(
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
    db.table("suggestions").create_index(["created_at"])
    db.table("suggestions").create_index(["message_id"])
    db.table("counters").create({"name": str, "value": int}, pk="name")


def _v2_llm_calls(db: Database) -> None:
    db.table("llm_calls").create(
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
    db.table("llm_calls").create_index(["at"])


def _v3_cache_entries(db: Database) -> None:
    db.table("cache_entries").create(
        {
            "key": str,  # exact-tier key: sha256 of normalised text, fingerprint, versions
            "fingerprint": str,  # the context fingerprint that scopes semantic matches
            "version": str,  # prompt and model version; another version never matches
            "text": str,  # the normalised message, for the guard
            "embedder": str,
            "vector": bytes,  # float32 little-endian, unit length; NULL without an embedder
            "suggestion_id": str,
            "body": str,  # the cached suggestion as JSON
            "created_at": float,
            "used_at": float,
            "hits": int,
        },
        pk="key",
    )
    db.table("cache_entries").create_index(["suggestion_id"])
    db.table("cache_entries").create_index(["used_at"])


def _v4_inbox(db: Database) -> None:
    db.table("inbox").create(
        {
            "id": str,  # Slack's event_id (or team:channel:ts): redeliveries collide here
            "team": str,
            "channel": str,
            "thread_ts": str,
            "ts": str,
            "user": str,
            "text": str,
            "payload": str,  # what the bot needs to process it again after a restart
            "state": str,  # pending, done, failed
            "attempts": int,
            "received_at": float,
            "done_at": float,
            "reply_ts": str,
            "suggestion_id": str,
            "error": str,
        },
        pk="id",
    )
    db.table("inbox").create_index(["state", "received_at"])


def _v5_inbox_threads(db: Database) -> None:
    # The bot answers later messages in threads it has answered: one lookup per thread message.
    db.table("inbox").create_index(["team", "channel", "thread_ts"])


def _v6_thread_reset(db: Database) -> None:
    # Reset context clears the slots and hides earlier messages from the model's history.
    db.table("threads").add_column("reset_at", float)


def _v7_inbox_leases(db: Database) -> None:
    # A worker claims a pending row for `lease_until` (epoch seconds) and renews it while the
    # turn runs; a row whose lease ran out is taken over by another worker.
    db.table("inbox").add_column("lease_owner", str)
    db.table("inbox").add_column("lease_until", float)


def _v8_knowledge(db: Database) -> None:
    # The knowledge index: each team's chunks of its Markdown files, with their vectors.
    db.table("knowledge_chunks").create(
        {
            "team": str,
            "file": str,  # path relative to the knowledge dir
            "digest": str,  # content hash + embedder: a changed file or embedder re-indexes
            "position": int,  # the chunk's place in its file
            "heading": str,
            "title": str,
            "text": str,
            "competitor": str,  # NULL unless the file is a battlecard
            "situations": str,  # JSON list of front-matter situation tags
            "vector": bytes,  # float32 little-endian, unit length; NULL without an embedder
        },
        pk=("team", "file", "position"),
    )


def _v9_slot_provenance(db: Database) -> None:
    # A correction replaces a slot's value; the value and message it replaced stay beside it.
    db.table("slots").add_column("previous_value", str)
    db.table("slots").add_column("previous_message_id", str)


def _v10_call_errors(db: Database) -> None:
    # Why a provider call failed (the contract's rejection reason, the API's error), beside
    # its outcome kind.
    db.table("llm_calls").add_column("error", str)


def _v11_suggestions_by_thread(db: Database) -> None:
    # A turn loads its thread's last replies (`load`): without this index that read scanned
    # the suggestions of every thread.
    db.table("suggestions").create_index(["thread_key", "created_at"])


MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _v1_threads,
    _v2_llm_calls,
    _v3_cache_entries,
    _v4_inbox,
    _v5_inbox_threads,
    _v6_thread_reset,
    _v7_inbox_leases,
    _v8_knowledge,
    _v9_slot_provenance,
    _v10_call_errors,
    _v11_suggestions_by_thread,
)


def migrate(db: Database) -> int:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        with db.conn:
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
    return len(MIGRATIONS)
