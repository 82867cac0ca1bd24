"""The durable inbox on both backends, and the redaction filter that keeps tokens out of logs."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from bot.inbox import Inbox
from bot.logs import RedactSecrets
from engine.inbox import InboxItem
from engine.llm.offline import OfflineProvider
from engine.model import TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings

from .conftest import Backend

pytestmark = pytest.mark.timeout(10)


def item(ts: str, thread_ts: str | None = None, channel: str = "C1") -> InboxItem:
    return InboxItem(
        id=InboxItem.make_id("T1", channel, ts),
        team="T1",
        channel=channel,
        thread_ts=thread_ts or ts,
        ts=ts,
        user="U1",
        text="too expensive",
        payload={"event_id": "Ev1", "kind": "mention", "files": 0},
        received_at=float(ts),
    )


async def test_the_inbox_dedupes_tracks_a_turn_and_survives_a_reopen(backend: Backend) -> None:
    store = await backend.open()
    inbox = Inbox(store.inbox())
    first = item("100.000100")
    assert await inbox.accept(first) is True
    assert await inbox.accept(first) is False  # a redelivery collides on the key
    assert await inbox.accept(item("101.000100", thread_ts="100.000100")) is True
    assert await inbox.accept(item("102.000100", channel="C2")) is True

    rows = inbox.store
    assert await rows.start_attempt(first.id) == 1
    await rows.set_reply(first.id, "100.000200")
    await rows.set_suggestion(first.id, "s1")
    await rows.finish(first.id, "done", reply_ts="100.000200", suggestion_id="s1")
    await rows.finish(item("102.000100", channel="C2").id, "failed", error="not_in_channel")
    assert await rows.counts() == {"done": 1, "pending": 1, "failed": 1}
    assert await rows.writable() is True
    await store.close()

    store = await backend.open()
    rows = store.inbox()
    done = await rows.get(first.id)
    assert done is not None
    assert (done.state, done.attempts, done.reply_ts, done.suggestion_id) == (
        "done",
        1,
        "100.000200",
        "s1",
    )
    assert done.payload == {"event_id": "Ev1", "kind": "mention", "files": 0}
    pending = await rows.unfinished()
    assert [p.ts for p in pending] == ["101.000100"] and pending[0].thread_ts == "100.000100"
    fresh = Inbox(rows)  # a new process: it learns from the database which threads it is in
    assert await fresh.engaged("T1", "C1", "100.000100") is True
    assert await fresh.engaged("T1", "C2", "102.000100") is False  # failed: not engaged
    assert await fresh.engaged("T1", "C1", "999.000100") is False
    assert await rows.prune(older_than=101.5) == 1  # the done row; pending ones stay
    assert await rows.get(first.id) is None and len(await rows.unfinished()) == 1
    await store.close()
    assert await rows.writable() is False  # closed: /healthz says so


async def test_the_inbox_finds_the_suggestion_a_turn_stored(backend: Backend) -> None:
    store = await backend.open()
    engine = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
    row = item("100.000100")
    s = await engine.handle(TurnInput(key=row.key, text="We use Gong", message_id=row.id))
    again = await store.inbox().suggestion(s.id)
    assert again is not None and again.id == s.id and again.reply == s.reply
    await store.close()


async def test_a_message_is_accepted_once_whichever_instance_receives_it(
    backend: Backend,
) -> None:
    """Slack delivers a message, its redeliveries and its mention twin to any connection."""
    stores = [await backend.open() for _ in range(3)]
    inboxes = [Inbox(s.inbox()) for s in stores]
    row = item("200.000100")
    accepted = await asyncio.gather(*(inboxes[i % 3].accept(row) for i in range(9)))
    assert accepted.count(True) == 1
    assert await stores[2].inbox().counts() == {"pending": 1}
    for s in stores:
        await s.close()


async def test_a_lease_gives_the_turn_to_exactly_one_live_worker(backend: Backend) -> None:
    a, b = await backend.open(), await backend.open()
    rows_a, rows_b = a.inbox(), b.inbox()
    row = item("300.000100")
    assert await rows_a.add(row) is True

    # Six workers on two instances claim at once: exactly one wins.
    claims = await asyncio.gather(
        *((rows_a if i % 2 else rows_b).claim(row.id, f"w{i}", 30.0) for i in range(6))
    )
    winners = [(i, c) for i, c in enumerate(claims) if c is not None]
    assert len(winners) == 1
    owner = f"w{winners[0][0]}"
    claimed = winners[0][1]
    assert claimed is not None and claimed.lease_owner == owner and claimed.text == row.text
    assert claimed.lease_until is not None and claimed.lease_until > row.received_at

    # The owner renews it; nobody else can take a live lease, nor renew it.
    assert await rows_b.renew(row.id, owner, 30.0) is True
    assert await rows_a.claim(row.id, "intruder", 30.0) is None
    assert await rows_a.renew(row.id, "intruder", 30.0) is False
    assert await rows_b.claim(row.id, owner, 30.0) is not None  # its own claim again: fine

    # The owner stops renewing (it died): once the lease runs out, another worker takes over,
    # and the old owner learns it lost the row when it next renews.
    assert await rows_a.claim(row.id, owner, 0.2) is not None
    assert await rows_b.claim(row.id, "taker", 30.0) is None
    await asyncio.sleep(0.4)
    taken = await rows_b.claim(row.id, "taker", 30.0)
    assert taken is not None and taken.lease_owner == "taker"
    assert await rows_a.renew(row.id, owner, 30.0) is False

    # Released at shutdown: free for anyone at once. Finished: nobody claims it again.
    await rows_b.release(row.id, "taker")
    assert (await rows_a.get(row.id)).lease_owner is None  # type: ignore[union-attr]
    assert await rows_a.claim(row.id, "next", 30.0) is not None
    await rows_a.finish(row.id, "done", reply_ts="300.000200")
    assert await rows_b.claim(row.id, "late", 30.0) is None
    assert await rows_b.renew(row.id, "next", 30.0) is False
    assert await rows_a.claim("no-such-row", "w", 30.0) is None
    await a.close()
    await b.close()


async def test_earlier_pending_counts_the_threads_earlier_unfinished_messages(
    backend: Backend,
) -> None:
    a, b = await backend.open(), await backend.open()
    root, second, third = (
        item("400.000100"),
        item("400.000200", "400.000100"),
        item("401.000100", "400.000100"),
    )
    elsewhere = item("399.000100", channel="C2")  # earlier, but another thread
    for row in (third, root, elsewhere, second):  # Slack's order of delivery is not the rep's
        assert await a.inbox().add(row)
    rows = b.inbox()  # another instance sees the same rows
    assert [await rows.earlier_pending(r) for r in (root, second, third)] == [0, 1, 2]
    await rows.finish(root.id, "done")
    await rows.finish(second.id, "failed", error="gave up after retries")
    assert [await rows.earlier_pending(r) for r in (second, third)] == [0, 0]
    assert await rows.earlier_pending(elsewhere) == 0
    await a.close()
    await b.close()


def test_redaction_masks_known_secrets_and_token_shapes() -> None:
    redact = RedactSecrets(["xoxb-1-2-KNOWN", None, ""])
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "token %s and %s", ("xoxb-1-2-KNOWN", "xapp-9-Z"), None
    )
    assert redact.filter(record) is True
    assert record.getMessage() == "token *** and xapp-***"
    try:
        raise RuntimeError("bad xoxp-123-456")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    redact.filter(record)
    assert "xoxp-123" not in (record.exc_text or "") and "xoxp-***" in (record.exc_text or "")


def test_redaction_masks_api_keys_by_shape() -> None:
    redact = RedactSecrets([])
    text = redact.redact(
        "anthropic sk-ant-api03-abcdefghijk, openai sk-proj-ABCDEFGH123, task-force"
    )
    assert text == "anthropic sk-ant-***, openai sk-proj-***, task-force"
