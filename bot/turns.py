"""Turns: accept a Slack message exactly once, then coach it into a card in its thread.

`TurnRunner.accept` writes the message to the inbox (a duplicate is dropped there) and starts
the turn as a task; listeners return at once, so Slack gets its ack. When the inbox's database
cannot take the message within `accept_wait_s` (down, or locked by another process), the
message goes to this instance's spool file instead and is acked all the same; the rep is told
in the thread that it waits, and once the database is back the spool empties into the inbox
and the turn runs, its card replacing that notice. A turn:

0. claims the row: a lease (owner, expiry) it renews while it runs, so of several instances
   sharing the database exactly one runs it; then waits while an earlier message of the thread
   (by Slack ts) is pending, so a thread's turns run in the order the rep sent them whichever
   instance Slack gave each one to;
1. counts an attempt (a message that keeps failing is given up after `max_attempts`; when
   Slack or the network fails for a while the turn is tried again after a backoff);
2. shows it is working within a second: `assistant.threads.setStatus` ("reading the deal…"),
   or an :eyes: reaction where status is unavailable;
3. asks the engine (or reuses the suggestion an earlier attempt stored), and streams its reply
   into the thread as the engine writes it, finishing it as the card (`bot.delivery`); a cache
   hit, or a suggestion an earlier attempt stored, is posted as the card at once;
4. marks the inbox row done.

At start-up `recover()` runs every pending row again, and every half lease it takes over the
rows whose holder died (lease run out). A row that already has a reply `ts` finishes that
message rather than posting another; one tried before without a ts is first looked for in the
thread (`conversations.replies`, by the inbox id in the reply's metadata), which closes the
window between Slack accepting a post and its ts being stored (a stream, which gets its
metadata only when it stops, is found as our one unfinished message after it). A busy or
unreachable database leaves the row pending, to be tried again. On shutdown in-flight turns
get `drain_timeout` seconds, then are cancelled, their leases released, and stay pending for
the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from engine.deal import DealView
from engine.errors import EmptyMessage, StoreUnavailable
from engine.events import Done, ReplyDelta, Status, TurnEvent
from engine.inbox import InboxItem, Spool
from engine.model import Suggestion, ThreadKey, TurnInput
from engine.stats import StatsReport

from . import blocks
from .delivery import CHANNEL_ERRORS, Delivery, slack_error
from .inbox import Inbox
from .ops import Metrics
from .ratelimit import STREAM_LIMITS, RateBudget
from .text import MrkdwnStream, escape_mrkdwn

log = logging.getLogger("sales_agent.bot.turns")

METADATA_EVENT = "sales_agent_turn"
SPOOLED = (
    "Got it. My database isn't answering right now, so I've kept your message and will coach "
    "it right here as soon as it's back. No need to send it again."
)


class Coach(Protocol):
    """What the bot needs from the engine (`engine.pipeline.orchestrator.Engine`)."""

    def stream(self, turn: TurnInput) -> AsyncGenerator[TurnEvent, None]: ...

    async def answered(self, message_id: str) -> Suggestion | None: ...

    async def regenerate(self, suggestion_id: str) -> Suggestion | None: ...

    async def feedback(self, suggestion_id: str, positive: bool) -> bool: ...

    async def reset(self, key: ThreadKey) -> None: ...

    async def stats(self, window: int = 10_000) -> StatsReport: ...

    async def deal(self, key: ThreadKey) -> DealView: ...

    async def latest_thread(self, team: str, channel: str, user: str) -> ThreadKey | None: ...


@dataclass(frozen=True, slots=True)
class BotConfig:
    admins: frozenset[str] = frozenset()
    status_text: str = "reading the deal…"
    working_reaction: str = "eyes"
    stream: bool = True
    append_interval: float = 1.0  # chat.appendStream at most about once a second a message
    # Calls a minute per workspace for the streaming methods (Slack's tiers, bot.ratelimit).
    stream_limits: Mapping[str, int] = field(default_factory=lambda: dict(STREAM_LIMITS))
    max_concurrent_turns: int = 16
    max_attempts: int = 3
    retry_backoff: float = 2.0  # seconds before a turn Slack failed is tried again (doubling)
    drain_timeout: float = 10.0
    # Finished inbox rows are kept this long: they dedupe redeliveries and remember threads.
    inbox_retention_s: float = 30 * 86400.0
    stats_timeout: float = 2.0  # /agent-stats answers in the ack when ready by then
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    # A running turn holds its inbox row this long and renews it every third of it; a row
    # whose holder died is taken over once its lease ran out (swept every half lease).
    lease_s: float = 30.0
    # The inbox write gets this long before the message goes to the spool instead: Slack
    # wants its ack within three seconds, and redelivers an unacked event only a few times.
    accept_wait_s: float = 2.0

    @property
    def order_wait_s(self) -> float:
        """How long a message waits for an earlier one of its thread: time for a dead
        instance's lease to run out, the sweep to find it, and its turn to run."""
        return 2 * self.lease_s + 30.0


@dataclass(frozen=True, slots=True)
class Identity:
    bot_user_id: str
    bot_id: str
    team_id: str


class TurnRunner:
    def __init__(
        self,
        *,
        engine: Coach,
        inbox: Inbox,
        client: AsyncWebClient,
        identity: Identity,
        metrics: Metrics,
        config: BotConfig,
        owner: str | None = None,
        budget: RateBudget | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.engine = engine
        self.inbox = inbox
        self.client = client
        self.identity = identity
        self.metrics = metrics
        self.config = config
        self._limit = asyncio.Semaphore(config.max_concurrent_turns)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running: set[str] = set()
        self._closing = False
        self._warned_channels: set[tuple[str, str]] = set()
        self._status_unavailable: set[str] = set()  # channel kinds (C, G, D) without status
        self._stream_unavailable = not config.stream
        self.budget = budget or RateBudget(config.stream_limits)  # per workspace
        # Who holds a row's lease: unique per process, so two instances never share one.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._sweeper: asyncio.Task[None] | None = None
        self._unstored_replies: dict[str, str] = {}  # reply ts the database did not take yet
        self.spool = spool
        self._spooled: set[str] = set()  # in the spool, waiting for the database
        self._telling: set[str] = set()  # spooled, the "it waits" message not posted yet
        self._drainer: asyncio.Task[None] | None = None

    # Accepting -------------------------------------------------------------------------------

    async def accept(self, item: InboxItem) -> bool:
        """Write the message to the inbox and start its turn; False for a duplicate. When the
        inbox cannot take it before Slack's ack deadline, the spool keeps it (see `_spool`)."""
        if self._closing:
            # Not acked as handled work: Slack will redeliver it to the next process.
            raise RuntimeError("the bot is shutting down")
        if item.id in self._spooled:
            return False  # its twin or a redelivery, while it waits in the spool
        item = replace(item, received_at=item.received_at or time.time())
        try:
            added = await asyncio.wait_for(self.inbox.accept(item), self.config.accept_wait_s)
        except (StoreUnavailable, TimeoutError) as exc:
            if self.spool is None:
                raise
            if item.id in self._spooled:
                return False  # its twin timed out at the same moment and spooled it
            await self._spool(item, exc)
            return True
        if not added:
            self.metrics.events.labels("duplicate").inc()
            log.info("duplicate delivery of %s ignored", item.id)
            return False
        self.metrics.events.labels("accepted").inc()
        self._start(item, time.monotonic())
        return True

    # The spool: messages accepted while the database was down -------------------------------

    async def _spool(self, item: InboxItem, exc: BaseException) -> None:
        assert self.spool is not None
        # Marked before the first await: a twin, or a drain already running, sees it at once.
        self._spooled.add(item.id)
        self._telling.add(item.id)
        try:
            await self.spool.add(item)
        except BaseException:
            self._spooled.discard(item.id)
            self._telling.discard(item.id)
            raise
        self.metrics.events.labels("spooled").inc()
        log.warning("inbox unavailable (%s): %s waits in the spool", _kind(exc), item.id)
        self.spawn(self._tell_waiting(item))

    async def _tell_waiting(self, item: InboxItem) -> None:
        """Say so in the thread at once; that message becomes the card when the turn runs."""
        assert self.spool is not None
        try:
            message = blocks.notice(SPOOLED)
            posted = await self.client.chat_postMessage(
                channel=item.channel,
                thread_ts=item.thread_ts,
                text=message.text,
                blocks=message.blocks,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"inbox_id": item.id}},
            )
            await self.spool.add(replace(item, reply_ts=str(posted["ts"])))
        except SlackApiError as exc:
            log.warning("could not say %s waits: %s", item.id, slack_error(exc))
        finally:
            self._telling.discard(item.id)
            self.drain_spool()

    async def resume_spool(self) -> None:
        """At start-up: what an earlier run left in the spool goes into the inbox when it can."""
        if self.spool is not None:
            self._spooled.update(i.id for i in await self.spool.items())
            if self._spooled:
                self.drain_spool()

    def drain_spool(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain_spool())

    async def _drain_spool(self) -> None:
        """Move what waits into the inbox once the database takes it, and run those turns."""
        assert self.spool is not None
        pause = 1.0
        while not self._closing:
            waiting = [i for i in await self.spool.items() if i.id not in self._telling]
            if not waiting:
                if not self._telling:
                    return
                await asyncio.sleep(0.1)
                continue
            try:
                for item in waiting:
                    await self._unspool(item)
            except Exception as exc:  # the database (or the spool file) failed: try again
                log.info("the spool waits for the database: %s", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    async def _unspool(self, item: InboxItem) -> None:
        assert self.spool is not None
        await self.inbox.accept(item)  # there already (a write that finished late): fine
        if item.reply_ts:
            await self.inbox.store.set_reply(item.id, item.reply_ts)
        await self.spool.remove(item.id)
        self._spooled.discard(item.id)
        log.info("%s left the spool for the inbox", item.id)
        self._start(item, time.monotonic())  # its claim refuses it if another worker has it

    async def recover(self, *, grace_s: float = 0.0) -> int:
        """Run the pending turns nobody runs: left by a previous process, or by an instance
        that died (its lease ran out). Rows received less than `grace_s` ago and never leased
        may still be queued on the instance that accepted them, and are left to it."""
        items = await self.inbox.store.unfinished()
        now = time.time()
        started = 0
        for item in items:
            if item.id in self._running or item.id in self._spooled:
                continue  # running here, or the spool will start it with its notice
            if item.lease_until is not None and item.lease_until > now:
                continue  # a live worker holds it (the claim would refuse anyway)
            if item.lease_owner is None and item.received_at > now - grace_s:
                continue
            log.info("resuming unfinished turn %s (attempt %d)", item.id, item.attempts + 1)
            self._start(item, time.monotonic())
            started += 1
        return started

    def start_sweeping(self) -> None:
        """Take over, every half lease, the turns of instances that died."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        interval = max(0.2, self.config.lease_s / 2)
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await self.recover(grace_s=self.config.lease_s)
            except StoreUnavailable as exc:
                log.warning("inbox sweep skipped: %s", exc)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run background work (clicks, late slash-command answers) that shutdown waits for."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float | None = None) -> None:
        """Stop taking turns; wait for in-flight ones, then cancel the rest (they stay pending
        in the inbox and run at the next start)."""
        self._closing = True
        for background in (self._sweeper, self._drainer):
            if background is not None:
                background.cancel()  # the spool keeps what waits, for the next start
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return
        wait = self.config.drain_timeout if timeout is None else timeout
        _, still = await asyncio.wait(pending, timeout=wait)
        for task in still:
            task.cancel()
        if still:
            log.warning("%d turn(s) unfinished at shutdown: they stay in the inbox", len(still))
            await asyncio.wait(still, timeout=5.0)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def _start(self, item: InboxItem, accepted_at: float) -> None:
        if item.id in self._running:
            return  # the claim would let a second task of this owner in: never two turns
        self._running.add(item.id)
        task = self.spawn(self._turn(item, accepted_at))
        task.add_done_callback(lambda _: self._running.discard(item.id))

    # One turn --------------------------------------------------------------------------------

    async def _turn(self, item: InboxItem, accepted_at: float) -> None:
        try:
            claimed = await self.inbox.store.claim(item.id, self.owner, self.config.lease_s)
        except StoreUnavailable as exc:
            log.error("cannot claim %s, it stays in the inbox: %s", item.id, exc)
            return
        if claimed is None:
            log.info("%s is another worker's (or finished): not running it", item.id)
            return
        turn = asyncio.current_task()
        keeper = asyncio.create_task(self._keep_lease(item.id, turn))
        try:
            await self._after_earlier(claimed)
            async with self._limit:
                await self._attempts(claimed, accepted_at)
        except StoreUnavailable as exc:
            log.error("database unavailable for %s, it stays in the inbox: %s", item.id, exc)
        finally:
            keeper.cancel()
            # Unfinished (shutdown, a database outage): free for another worker at once.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.inbox.store.release(item.id, self.owner))

    async def _attempts(self, claimed: InboxItem, accepted_at: float) -> None:
        self.metrics.inflight.inc()
        try:
            current: InboxItem | None = await self._adopt_reply(claimed)
            for retry in range(self.config.max_attempts):
                if current is None or not await self._attempt(current, accepted_at):
                    return
                # Slack, the network or the database failed for a while: try again,
                # finishing what the last attempt got done (its suggestion, its reply ts).
                await asyncio.sleep(self.config.retry_backoff * (2**retry))
                current = await self._adopt_reply(await self.inbox.store.get(claimed.id))
        finally:
            self.metrics.inflight.dec()

    async def _after_earlier(self, item: InboxItem) -> None:
        """A thread's messages run in the order the rep sent them (Slack's ts), whichever
        instance Slack gave each one to: while an earlier one is pending (queued on another
        instance, or waiting to be taken over from a dead one), wait. After `order_wait_s` run
        anyway, so one stuck message cannot hold up its thread for good."""
        deadline = time.monotonic() + self.config.order_wait_s
        pause = 0.05
        while await self.inbox.store.earlier_pending(item):
            if time.monotonic() >= deadline:
                log.warning("%s: an earlier message is still pending, running it anyway", item.id)
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _keep_lease(self, item_id: str, turn: asyncio.Task[Any] | None) -> None:
        """Renew the row's lease while the turn runs; if another worker took it over (this
        process stalled past the lease), stop the turn: only one may reply."""
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            try:
                kept = await self.inbox.store.renew(item_id, self.owner, self.config.lease_s)
            except StoreUnavailable:
                continue  # nobody else can claim it while the database is down either
            if not kept:
                log.warning("lost the lease on %s to another worker: stopping this turn", item_id)
                if turn is not None:
                    turn.cancel()
                return

    async def _adopt_reply(self, item: InboxItem | None) -> InboxItem | None:
        """A turn tried before without a stored reply ts: its reply may be in Slack already
        (posted, then the process died or the database failed before the ts was kept). Find
        it by the inbox id in its metadata, so the turn finishes that message, never a second."""
        if item is None or item.reply_ts or not item.attempts:
            return item
        known = self._unstored_replies.get(item.id)
        if known is not None:  # this process posted it; the database was down then
            await self.inbox.store.set_reply(item.id, known)
            self._unstored_replies.pop(item.id, None)
            return replace(item, reply_ts=known)
        try:
            found = await self.client.conversations_replies(
                channel=item.channel,
                ts=item.thread_ts,
                oldest=item.ts,
                include_all_metadata=True,
                limit=200,
            )
        except SlackApiError as exc:
            log.warning("cannot look for an earlier reply to %s: %s", item.id, slack_error(exc))
            return item
        for message in found.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == METADATA_EVENT and payload.get("inbox_id") == item.id:
                return await self._adopt(item, str(message["ts"]), "already has a reply")
        # A stream gets its metadata when it stops: one cut off before its ts was stored has
        # none. Every other reply of ours has it, and the thread's later messages wait for
        # this one, so our unfinished message after it in the thread is its reply.
        unfinished = [m for m in found.get("messages") or [] if self._unfinished(m, item)]
        if unfinished:
            ts = min(str(m["ts"]) for m in unfinished)
            return await self._adopt(item, ts, "has a reply cut off mid-stream")
        return item

    def _unfinished(self, message: Mapping[str, Any], item: InboxItem) -> bool:
        return (
            message.get("bot_id") == self.identity.bot_id
            and not message.get("metadata")
            and str(message.get("ts") or "") > item.ts
        )

    async def _adopt(self, item: InboxItem, ts: str, why: str) -> InboxItem:
        log.info("%s %s in Slack (%s): finishing that one", item.id, why, ts)
        await self.inbox.store.set_reply(item.id, ts)
        return replace(item, reply_ts=ts)

    async def _attempt(self, item: InboxItem, accepted_at: float) -> bool:
        """One try at the turn; True when it should be tried again (a transient failure)."""
        attempts = await self.inbox.store.start_attempt(item.id)
        if attempts > self.config.max_attempts:
            log.error("giving up on %s after %d attempts", item.id, attempts - 1)
            await self.inbox.store.finish(item.id, "failed", error="gave up after retries")
            self.metrics.turns.labels("gave_up").inc()
            return False
        working: asyncio.Task[str | None] | None = None
        if item.reply_ts is None:
            working = asyncio.create_task(self._show_working(item, accepted_at))
        delivery = self._delivery(item)
        try:
            outcome, suggestion_id = await self._coach_and_deliver(item, delivery, working)
            await self.inbox.store.finish(
                item.id, "done", reply_ts=delivery.ts, suggestion_id=suggestion_id
            )
            self._unstored_replies.pop(item.id, None)
            self.metrics.turns.labels(outcome).inc()
            self.metrics.turn_seconds.observe(time.monotonic() - accepted_at)
        except asyncio.CancelledError:
            raise  # shutdown: the row stays pending
        except SlackApiError as exc:
            error = slack_error(exc) or "unknown_error"
            self.metrics.slack_errors.labels(error).inc()
            if error in CHANNEL_ERRORS:
                self._warn_channel(item.channel, error)
                await self.inbox.store.finish(item.id, "failed", error=error)
                self.metrics.turns.labels("channel_error").inc()
            elif _transient(exc) and attempts < self.config.max_attempts:
                log.warning("Slack error on %s (%s): trying again", item.id, error)
                return True
            else:
                log.error("Slack error on %s: %s", item.id, error)
                await self._fail(item, delivery, f"slack:{error}")
        except StoreUnavailable as exc:
            # Nothing to mark while the database is down: the row stays pending, with what
            # the attempt got into Slack found again by `_adopt_reply`.
            self.metrics.turns.labels("store_unavailable").inc()
            log.error("database unavailable during %s: %s", item.id, exc)
            return attempts < self.config.max_attempts
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            if attempts < self.config.max_attempts:
                log.warning("cannot reach Slack for %s (%s): trying again", item.id, _kind(exc))
                return True
            log.error("cannot reach Slack for %s: %s", item.id, _kind(exc))
            await self.inbox.store.finish(item.id, "failed", error=_kind(exc))
            self.metrics.turns.labels("failed").inc()
        except Exception as exc:
            log.exception("turn %s failed: %s", item.id, _kind(exc))
            await self._fail(item, delivery, _kind(exc))
        finally:
            if working is not None:
                await self._clear_working(item, working)
        return False

    async def _coach_and_deliver(
        self, item: InboxItem, delivery: Delivery, working: asyncio.Task[str | None] | None
    ) -> tuple[str, str | None]:
        suggestion: Suggestion | None = None
        if item.suggestion_id:
            suggestion = await self.inbox.store.suggestion(item.suggestion_id)
        elif item.attempts:
            # Tried before: the engine may have answered just before the process stopped.
            suggestion = await self.engine.answered(item.id)
            if suggestion is not None:
                await self.inbox.store.set_suggestion(item.id, suggestion.id)
        # A reply already started (a restart) is finished, never streamed into again.
        writer = _ReplyWriter(delivery, working, live=not item.reply_ts)
        if suggestion is None:
            try:
                suggestion = await self._coach(item, writer)
            except EmptyMessage:
                if working is not None:
                    await asyncio.shield(working)
                message = blocks.help_message(files_only=bool(item.payload.get("files")))
                if item.reply_ts:
                    await delivery.resume(item.reply_ts, message)
                else:
                    await delivery.finish(message)
                return "help", None
            await self.inbox.store.set_suggestion(item.id, suggestion.id)
            self.metrics.observe_suggestion(suggestion)
        if working is not None:
            await asyncio.shield(working)  # the status shows before the reply starts
        card = blocks.card(suggestion)
        if item.reply_ts:
            await delivery.resume(item.reply_ts, card)
        else:
            await writer.finish(suggestion, card)
        return "card", suggestion.id

    async def _coach(self, item: InboxItem, writer: _ReplyWriter) -> Suggestion:
        """Run the engine's turn, writing its reply into the thread as it comes."""
        turn = TurnInput(
            key=item.key,
            text=item.text,
            message_id=item.id,
            author=item.user or "rep",
            ts=_float(item.ts),
        )
        # Closing the stream (a Slack error while writing) cancels the engine's turn.
        async with contextlib.aclosing(self.engine.stream(turn)) as events:
            async for event in events:
                if isinstance(event, Status):
                    writer.status(event)
                elif isinstance(event, ReplyDelta):
                    await writer.write(event.text)
                elif isinstance(event, Done):
                    return event.suggestion
        raise AssertionError("a turn's stream ends with its suggestion")

    def _delivery(self, item: InboxItem) -> Delivery:
        async def started(ts: str) -> None:
            # Known here even if the database refuses it: the next attempt resumes this reply.
            self._unstored_replies[item.id] = ts
            await self.inbox.store.set_reply(item.id, ts)
            self._unstored_replies.pop(item.id, None)

        def unavailable() -> None:
            self._stream_unavailable = True

        return Delivery(
            self.client,
            channel=item.channel,
            thread_ts=item.thread_ts,
            recipient_user=item.user or None,
            recipient_team=item.team or None,
            stream=not self._stream_unavailable,
            budget=self.budget,
            team=item.team,
            append_interval=self.config.append_interval,
            on_started=started,
            on_stream_unavailable=unavailable,
            metadata={"event_type": METADATA_EVENT, "event_payload": {"inbox_id": item.id}},
        )

    async def _fail(self, item: InboxItem, delivery: Delivery, error: str) -> None:
        """Tell the rep, without details (no tokens, no internals), and mark the row."""
        self.metrics.turns.labels("failed").inc()
        try:
            message = blocks.notice(
                "Sorry, I couldn't coach this one: something went wrong on my side. "
                "Try again in a moment."
            )
            if delivery.ts:
                await delivery.resume(delivery.ts, message)
            else:
                await delivery.finish(message)
        except Exception as exc:
            log.warning("could not tell the rep about the failure: %s", slack_error(exc) or exc)
        await self.inbox.store.finish(item.id, "failed", reply_ts=delivery.ts, error=error)

    # Working signal ---------------------------------------------------------------------------

    async def _show_working(self, item: InboxItem, accepted_at: float) -> str | None:
        kind = item.channel[:1]
        try:
            if kind not in self._status_unavailable:
                try:
                    await self.client.assistant_threads_setStatus(
                        channel_id=item.channel,
                        thread_ts=item.thread_ts,
                        status=self.config.status_text,
                    )
                    return "status"
                except SlackApiError as exc:
                    error = slack_error(exc)
                    if error in ("not_in_channel", "channel_not_found", "is_archived"):
                        return None
                    log.info("no status in %s channels (%s): reacting instead", kind, error)
                    self._status_unavailable.add(kind)
            try:
                await self.client.reactions_add(
                    channel=item.channel, timestamp=item.ts, name=self.config.working_reaction
                )
                return "reaction"
            except SlackApiError as exc:
                if slack_error(exc) == "already_reacted":
                    return "reaction"
                log.info("could not react to %s: %s", item.id, slack_error(exc))
                return None
        finally:
            self.metrics.working_seconds.observe(time.monotonic() - accepted_at)

    async def _clear_working(self, item: InboxItem, working: asyncio.Task[str | None]) -> None:
        if not working.done():
            working.cancel()
            return
        if working.cancelled() or working.exception() is not None:
            return
        if working.result() == "reaction":
            try:
                await self.client.reactions_remove(
                    channel=item.channel, timestamp=item.ts, name=self.config.working_reaction
                )
            except SlackApiError as exc:
                log.debug("could not remove the working reaction: %s", slack_error(exc))

    def _warn_channel(self, channel: str, error: str) -> None:
        """Log a channel's problem once per process, not for every message."""
        if (channel, error) in self._warned_channels:
            return
        self._warned_channels.add((channel, error))
        hint = ""
        if error == "not_in_channel":
            hint = " (invite the bot with /invite @Sales Agent)"
        log.warning("cannot post in channel %s: %s%s", channel, error, hint)


class _ReplyWriter:
    """The engine's reply deltas into one Delivery: the situation's lead line, then the reply
    escaped for Slack as it arrives; at the end, the card."""

    def __init__(
        self, delivery: Delivery, working: asyncio.Task[str | None] | None, *, live: bool
    ) -> None:
        self.delivery = delivery
        self.working = working
        self.live = live
        self.situation: str | None = None
        self.lead = ""
        self.reply = MrkdwnStream()

    def status(self, event: Status) -> None:
        if event.step == "generate":
            self.situation = event.situation

    async def write(self, text: str) -> None:
        if not self.live:
            return
        first = ""
        if not self.lead:
            if self.working is not None:
                await asyncio.shield(self.working)  # the status shows before the reply
            first = self.lead = blocks.streamed_lead(self.situation)
        await self.delivery.write(first + self.reply.feed(text))

    async def finish(self, suggestion: Suggestion, card: blocks.Message) -> None:
        """The card's other blocks under the streamed reply when that is the reply in full;
        else the whole card in place of what streamed."""
        if self.lead:
            await self.delivery.write(self.reply.rest())
        whole = self.lead + escape_mrkdwn(suggestion.reply)
        streamed = bool(self.lead) and self.delivery.shown + self.delivery.pending == whole
        await self.delivery.finish(card, blocks.streamed_card(suggestion) if streamed else None)


def _transient(exc: SlackApiError) -> bool:
    status = getattr(exc.response, "status_code", 200)
    return status >= 500 or status == 429 or slack_error(exc) in _TRANSIENT_ERRORS


_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _float(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return 0.0
