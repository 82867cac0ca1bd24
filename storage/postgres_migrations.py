"""Postgres schema versions, applied in order; table `schema_version` records how far a database
has come. Append a version; never edit one that has shipped.

v1 is the SQLite schema of migrations v1-v6 in Postgres types (epoch seconds stay
`double precision`, the suggestion stays JSON text, so both backends store the same values),
plus an index for reading one fingerprint's entries (dropped by v7). v2 is SQLite's v7 (inbox
leases), v3 its v8 (the knowledge index), v4 its v9 (slot provenance), v5 its v10 (call
errors), v6 its v11 (the thread index of suggestions); v7 is Postgres's own: the index the
cache's poll of other instances' rows reads; v8 too: the shared rate buckets.

Several instances may start at once: the migrating connection holds an advisory lock, so one
applies each version, in its own transaction, and the others find it done.
"""

from __future__ import annotations

from psycopg import AsyncConnection

__all__ = ["MIGRATIONS", "migrate"]

_LOCK = (0x5341, 1)  # advisory lock key: ('SA', migrations)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE threads (key text PRIMARY KEY, turns integer NOT NULL DEFAULT 0, "
        "last_situation text, updated_at double precision, reset_at double precision)",
        "CREATE TABLE slots (thread_key text NOT NULL, name text NOT NULL, value text, "
        "message_id text, set_at double precision, PRIMARY KEY (thread_key, name))",
        "CREATE TABLE messages (id text PRIMARY KEY, thread_key text, author text, text text, "
        "ts double precision, created_at double precision)",
        "CREATE INDEX messages_thread ON messages (thread_key, created_at)",
        "CREATE TABLE suggestions (id text PRIMARY KEY, thread_key text, message_id text, "
        "created_at double precision, situation text, cache text, latency_ms double precision, "
        "reconciled integer, feedback integer, body text)",
        "CREATE INDEX suggestions_created ON suggestions (created_at)",
        "CREATE INDEX suggestions_message ON suggestions (message_id)",
        "CREATE TABLE llm_calls (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "at double precision, step text, provider text, model text, tier text, outcome text, "
        "ms double precision, tokens_in integer, tokens_out integer, "
        "cost_usd double precision, prompt text, response text)",
        "CREATE INDEX llm_calls_at ON llm_calls (at)",
        "CREATE TABLE cache_entries (key text PRIMARY KEY, fingerprint text, version text, "
        "text text, embedder text, vector bytea, suggestion_id text, body text, "
        "created_at double precision, used_at double precision, hits integer)",
        "CREATE INDEX cache_entries_suggestion ON cache_entries (suggestion_id)",
        "CREATE INDEX cache_entries_used ON cache_entries (used_at)",
        # The semantic tier reads the entries of one (version, fingerprint) scope.
        "CREATE INDEX cache_entries_scope ON cache_entries (version, fingerprint)",
        "CREATE TABLE inbox (id text PRIMARY KEY, team text, channel text, thread_ts text, "
        'ts text, "user" text, text text, payload text, state text, attempts integer, '
        "received_at double precision, done_at double precision, reply_ts text, "
        "suggestion_id text, error text)",
        "CREATE INDEX inbox_state ON inbox (state, received_at)",
        "CREATE INDEX inbox_thread ON inbox (team, channel, thread_ts)",
    ),
    ("ALTER TABLE inbox ADD COLUMN lease_owner text, ADD COLUMN lease_until double precision",),
    (
        "CREATE TABLE knowledge_chunks (team text NOT NULL, file text NOT NULL, digest text, "
        "position integer NOT NULL, heading text, title text, text text, competitor text, "
        "situations text, vector bytea, PRIMARY KEY (team, file, position))",
    ),
    # SQLite's v9: the value and message a correction replaced.
    ("ALTER TABLE slots ADD COLUMN previous_value text, ADD COLUMN previous_message_id text",),
    # Why a provider call failed, beside its outcome kind.
    ("ALTER TABLE llm_calls ADD COLUMN error text",),
    # A turn loads its thread's last replies: without this index that read walked every
    # suggestion newer than the thread's reset (~1,300 rows a turn at 3,000 turns, growing).
    ("CREATE INDEX suggestions_thread ON suggestions (thread_key, created_at)",),
    # Every instance polls the entries and blocks written since a time (TwoTierCache.follow);
    # nothing reads one fingerprint's entries from the database any more.
    (
        "CREATE INDEX cache_entries_version_created ON cache_entries (version, created_at)",
        "DROP INDEX cache_entries_scope",
    ),
    # Slack's per-workspace method limits, one budget for every instance (bot.ratelimit).
    (
        "CREATE TABLE rate_buckets (name text PRIMARY KEY, tokens double precision NOT NULL, "
        "at double precision NOT NULL)",
    ),
)


async def migrate(conn: AsyncConnection) -> int:
    """Bring the database up to date; returns the schema version. `conn` is in autocommit."""
    await conn.execute("SELECT pg_advisory_lock(%s, %s)", _LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = await (await conn.execute("SELECT max(version) FROM schema_version")).fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        for number, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version(version) VALUES (%s)", [number])
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s, %s)", _LOCK)
    return len(MIGRATIONS)
