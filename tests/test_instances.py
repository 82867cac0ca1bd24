"""Three `sales-agent run` processes on one Postgres, against the fake Slack with three Socket
Mode connections and the events spread over them: 60 messages over 15 threads, with Slack's
redeliveries and mention/message twins, and one instance SIGKILLed in the middle of a turn.

Every message gets exactly one reply, every thread ends with the slots a single instance on
SQLite gives it, the killed instance's turn is finished by another within the lease plus a few
seconds, and `/agent-stats` on either survivor counts the turns of all three.

Run as a script, this file is the process under test: `app.main(["run"])`. With
SALES_AGENT_TEST_STALL_ROUND=K (a hook that exists only here) every turn of the K-th round of
messages hangs just before its commit: its reply streaming in Slack, the thread's lock held,
nothing saved, as a process that hangs mid-turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE_TS = 1_800_000_000  # message k of thread i has ts BASE_TS + 1000 * k + i


def _serve() -> int:
    sys.path.insert(0, str(ROOT))
    stall_round = os.environ.get("SALES_AGENT_TEST_STALL_ROUND")
    if stall_round is not None:
        from storage.postgres import PostgresStore

        original = PostgresStore.commit_turn

        async def stalling(self: PostgresStore, turn: Any, suggestion: Any) -> None:
            # The reply is streaming by now and the thread's lock is held: hang there.
            if (int(turn.ts) - BASE_TS) // 1000 == int(stall_round):
                await asyncio.sleep(3600)
            await original(self, turn, suggestion)

        PostgresStore.commit_turn = stalling  # type: ignore[method-assign]
    import app

    return app.main(["run"])


if __name__ == "__main__":
    sys.exit(_serve())


import psycopg  # noqa: E402

from devtools.fake_slack import (  # noqa: E402
    TEAM_ID,
    FakeSlack,
    app_mention_event,
    message_event,
)
from engine.data import THREADS  # noqa: E402
from engine.llm.offline import OfflineProvider  # noqa: E402
from engine.model import ThreadKey, TurnInput  # noqa: E402
from engine.pipeline.orchestrator import Engine  # noqa: E402
from engine.playbook import default_playbook  # noqa: E402
from engine.settings import Settings  # noqa: E402
from storage import SqliteStore, open_store  # noqa: E402
from tests.slack_kit import spawn_run  # noqa: E402

pytestmark = pytest.mark.asyncio

LEASE_S = 3.0
CHANNEL = "C1"
APP_TOKEN = "xapp-1-A0001-7777-INSTANCESAPPTOKEN"


def _token(n: int) -> str:
    # One token each, so the fake's call log tells the instances apart.
    return f"xoxb-9999-8888-INSTANCE{n}BOTTOKEN"


@dataclass(frozen=True)
class Message:
    thread: int
    turn: int
    text: str

    @property
    def ts(self) -> str:
        return f"{BASE_TS + 1000 * self.turn + self.thread}.000100"

    @property
    def thread_ts(self) -> str:
        return Message(self.thread, 0, "").ts


# Deals (engine/data/threads.jsonl, first four messages) whose final slots depend on their
# order: run the second message after the other two, and what it said wins. The dead instance
# is given these deals' second messages; `_order_matters` checks that claim on each run.
ORDER_SENSITIVE = ("t01", "t03", "t05", "t11", "t13", "t15", "t19", "t26")
OTHERS = ("t02", "t07", "t10", "t16", "t18", "t21", "t28")


def _threads() -> list[list[Message]]:
    lines = THREADS.read_text(encoding="utf-8").splitlines()
    deals = {r["thread"]: r["messages"][:4] for r in map(json.loads, lines)}
    return [
        [Message(i, k, text) for k, text in enumerate(deals[name])]
        for i, name in enumerate(ORDER_SENSITIVE + OTHERS)
    ]


async def _order_matters(thread: list[Message], tmp_path: Path) -> bool:
    """Do the messages in order 0, 2, 3, 1 leave other slots than in order 0, 1, 2, 3?"""

    async def slots(order: Sequence[int], name: str) -> dict[str, str]:
        store = await SqliteStore.open(tmp_path / f"{name}.db")
        engine = Engine(
            llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
        )
        key = ThreadKey(TEAM_ID, CHANNEL, thread[0].ts)
        for k in order:
            m = thread[k]
            await engine.handle(TurnInput(key=key, text=m.text, message_id=m.ts, ts=float(m.ts)))
        context = await store.load(key)
        await store.close()
        return {k: v.value for k, v in context.slots.items()}

    name = f"order-{thread[0].thread}"
    return await slots((0, 1, 2, 3), name + "a") != await slots((0, 2, 3, 1), name + "b")


def _event(m: Message, *, twin: bool) -> dict[str, Any]:
    thread_ts = m.thread_ts if m.turn else None
    if twin:  # the `message` event Slack also sends for a message that mentions the bot
        return message_event(f"<@U_BOT> {m.text}", channel=CHANNEL, ts=m.ts, thread_ts=thread_ts)
    if m.turn % 2:  # a plain follow-up in a thread the bot is in
        return message_event(m.text, channel=CHANNEL, ts=m.ts, thread_ts=thread_ts)
    return app_mention_event(m.text, channel=CHANNEL, ts=m.ts, thread_ts=thread_ts)


Route = Callable[[Message], int | None]


async def _push_round(
    fake: FakeSlack, messages: Sequence[Message], *, doubled: bool, to: Route = lambda m: None
) -> None:
    """One message per thread, to connection `to(message)` (None: the next round-robin);
    with `doubled`, every third mention also arrives as its message twin at once, and once
    every first delivery is acked, every fifth event comes again as Slack's redelivery (same
    event id, retry 1); both go round-robin."""
    acks, again = [], []
    for n, m in enumerate(messages):
        event = _event(m, twin=False)
        event_id = f"Ev{m.ts.replace('.', '')}"
        acks.append(await fake.push_event(event, event_id, to=to(m)))
        if doubled and event["type"] == "app_mention" and m.thread % 3 == 0:
            await fake.push_event(_event(m, twin=True), event_id + "twin")
        if doubled and n % 5 == 0:
            again.append((event, event_id))
    for envelope_id in acks:
        await fake.wait_for_ack(envelope_id, timeout=20)
    for event, event_id in again:
        await fake.wait_for_ack(await fake.push_event(event, event_id, retry_num=1), timeout=20)


class Instance:
    def __init__(self, proc: asyncio.subprocess.Process, n: int, connection: int) -> None:
        self.proc, self.n, self.connection = proc, n, connection

    @property
    def owner(self) -> str:
        return f":{self.proc.pid}:"  # inside the lease owner, host:pid:nonce


async def _spawn(
    fake: FakeSlack, n: int, log: Path, database: dict[str, str], **hooks: str
) -> Instance:
    env = database | {
        "SLACK_BOT_TOKEN": _token(n),
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": fake.api_url,
        "SALES_AGENT_INBOX_LEASE_S": str(LEASE_S),
        # Exact hits only: a semantic hit applies a similar message's slots, and which
        # instance has which entry when is timing, not what this test compares.
        "SALES_AGENT_EMBEDDER": "none",
    }
    before = fake.connection_count
    proc = await spawn_run(Path(__file__).resolve(), env | hooks, log)
    await fake.wait_connected(timeout=30, count=before + 1)
    return Instance(proc, n, fake.connection_count)


async def _stop(instance: Instance) -> None:
    if instance.proc.returncode is None:
        instance.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(instance.proc.wait(), 20)
        except TimeoutError:
            instance.proc.kill()
            await instance.proc.wait()


async def _rows(url: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT id, thread_ts, state, reply_ts, lease_owner, done_at FROM inbox ORDER BY ts"
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def _until(what: str, probe: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def _slots(target: str | Path, threads: list[list[Message]]) -> dict[str, Any]:
    store = await open_store(target)
    try:
        out = {}
        for thread in threads:
            context = await store.load(ThreadKey(TEAM_ID, CHANNEL, thread[0].ts))
            out[thread[0].ts] = (context.turns, {k: v.value for k, v in context.slots.items()})
        return out
    finally:
        await store.close()


async def _single_instance(threads: list[list[Message]], tmp_path: Path) -> dict[str, Any]:
    """The reference: one instance on SQLite (the default), the same messages, no faults."""
    db = tmp_path / "reference.db"
    async with FakeSlack(spread=True) as fake:
        one = await _spawn(fake, 0, tmp_path / "reference.log", {"SALES_AGENT_DB": str(db)})
        try:
            for turn in range(4):
                await _push_round(fake, [t[turn] for t in threads], doubled=False)

            async def all_done() -> bool:
                with contextlib.closing(sqlite3.connect(db)) as conn:
                    row = conn.execute("SELECT COUNT(*) FROM inbox WHERE state = 'done'")
                    return bool(row.fetchone()[0] == 60)

            await _until("the reference run's 60 messages", all_done, 60)
        finally:
            await _stop(one)
    return await _slots(db, threads)


@pytest.mark.timeout(240)
async def test_three_instances_on_one_postgres_answer_each_message_once(
    pg_url: str, tmp_path: Path
) -> None:
    threads = _threads()
    sensitive = threads[: len(ORDER_SENSITIVE)]
    assert all([await _order_matters(t, tmp_path) for t in sensitive])
    reference = await _single_instance(threads, tmp_path)
    database = {"DATABASE_URL": pg_url}
    log = tmp_path / "instances.log"
    async with FakeSlack(spread=True, redeliver_after=3.0) as fake:
        # The first hangs mid-turn on each deal's second message (round 1, the hook above).
        victim = await _spawn(fake, 1, log, database, SALES_AGENT_TEST_STALL_ROUND="1")
        others = [await _spawn(fake, n, log, database) for n in (2, 3)]
        try:
            await _push_round(fake, [t[0] for t in threads], doubled=True)
            # The order-sensitive deals' second messages go to the victim, the rest elsewhere.
            survivors = iter(itertools.cycle([o.connection for o in others]))
            await _push_round(
                fake,
                [t[1] for t in threads],
                doubled=True,
                to=lambda m: victim.connection if m.thread < len(sensitive) else next(survivors),
            )

            # Kill it while it writes those replies: Slack has them (streams, or posts where
            # the workspace's shared stream budget ran out), the turns are unfinished.
            async def stalled() -> bool:
                rows = await _rows(pg_url)
                return len(_writing(rows, victim)) == len(sensitive)

            await _until("the victim hangs mid-stream", stalled, 30)
            victim.proc.kill()
            await victim.proc.wait()
            killed_at = time.time()

            async def closed() -> bool:
                return fake.open_connections == 2

            await _until("the victim's connection closed", closed, 10)
            held = _writing(await _rows(pg_url), victim)
            await _push_round(fake, [t[2] for t in threads], doubled=True)
            await _push_round(fake, [t[3] for t in threads], doubled=True)

            async def all_done() -> bool:
                rows = await _rows(pg_url)
                return len(rows) == 60 and all(r["state"] != "pending" for r in rows)

            await _until("all 60 messages finished", all_done, 90)
            rows = await _rows(pg_url)
            stats = [await _agent_stats(fake, o.connection) for o in others]
        finally:
            for instance in (victim, *others):
                await _stop(instance)

        # Exactly one reply per message: 60 distinct reply ts, and those are all the bot
        # posted in the threads; none of them is the failure notice.
        assert [r["state"] for r in rows] == ["done"] * 60
        replies = {r["reply_ts"] for r in rows}
        assert None not in replies and len(replies) == 60
        for thread in threads:
            posted = fake.messages(CHANNEL, thread[0].ts)
            mine = {r["reply_ts"] for r in rows if r["thread_ts"] == thread[0].ts}
            assert sorted(m["ts"] for m in posted) == sorted(mine)
            assert all("couldn't coach" not in json.dumps(m) for m in posted)
        # The events were spread: every instance finished replies of its own.
        finishing = ("chat.stopStream", "chat.update")
        finished_by = {c.token for m in finishing for c in fake.calls_to(m) if c.ok}
        assert finished_by >= {_token(n) for n in (1, 2, 3)}

    # The victim's unfinished turns were finished by the others, soon after its lease ran out.
    assert sorted(held) == sorted(f"{TEAM_ID}:{CHANNEL}:{t[1].ts}" for t in sensitive)
    finished = {r["id"]: r for r in rows}
    took = [round(finished[i]["done_at"] - killed_at, 2) for i in held]
    print(f"the victim held {len(held)} turn(s) when killed; others finished them after {took} s")
    for item_id in held:
        row = finished[item_id]
        assert row["done_at"] - killed_at < LEASE_S + 5.0, (item_id, row["done_at"] - killed_at)

    # Every thread ends where a single instance leaves it, four turns each.
    assert await _slots(pg_url, threads) == reference
    assert {turns for turns, _ in reference.values()} == {4}

    # Either survivor reports the turns of all three instances.
    assert stats == ["Sales Agent stats (all): 60 turns"] * 2

    text = log.read_text(errors="replace")
    for n in (1, 2, 3):
        assert _token(n) not in text


def _writing(rows: list[dict[str, Any]], instance: Instance) -> list[str]:
    """The messages `instance` holds with a reply begun in Slack but not finished."""
    return [
        r["id"]
        for r in rows
        if r["state"] == "pending" and r["reply_ts"] and instance.owner in (r["lease_owner"] or "")
    ]


async def _agent_stats(fake: FakeSlack, connection: int) -> str:
    envelope = await fake.push_command("/agent-stats", to=connection)
    payload = await fake.wait_for_ack(envelope, timeout=10)
    assert payload is not None
    return str(payload["text"])
