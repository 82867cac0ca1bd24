"""Putting one reply into a Slack thread: streamed as the engine writes it when the workspace
allows, else one post and one update; either way it ends as the coaching card.

Streaming uses Slack's chat streaming API, what bolt's `say_stream` and slack_sdk's
`chat_stream` wrap; a turn restarted from the inbox has no bolt context, and the batching and
the workspace's rate budget are ours, so the Web API is called directly:

- `chat.startStream` with the first text, at once (in channels with `recipient_user_id` and
  `recipient_team_id`, which Slack requires there);
- `chat.appendStream` with what was written since, at most once per `append_interval` per
  message (never one call per token): text arriving in between waits for the next call;
- `chat.stopStream` with the text still waiting and the card's blocks, rendered under the
  streamed text. When the card must replace the text instead (the final reply is not what
  streamed), or Slack already closed the stream (`message_not_in_streaming_state`, about five
  minutes after it started), `chat.update` puts the whole card in.

Start and stop are paid for together from the workspace's budget (`bot.ratelimit`) before the
stream opens. Without budget, where streaming is unavailable, or when Slack answers
`ratelimited`, the reply is one `chat.postMessage` with the first text and one `chat.update`
with the card. The reply's `ts` is reported (`on_started`) as soon as the message exists, so
the inbox finishes that same message after a crash instead of posting another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from .blocks import Block, Message
from .ratelimit import RateBudget
from .text import truncate

log = logging.getLogger("sales_agent.bot.delivery")

# The channel itself is the problem: retrying or falling back cannot help.
CHANNEL_ERRORS = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "access_denied",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "team_access_not_granted",
        "account_inactive",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "missing_scope",
        "ekm_access_denied",
    }
)
# chat.startStream answers these where streaming is not available: post and update instead.
_STREAM_UNAVAILABLE = frozenset(
    {"unknown_method", "not_allowed", "feature_not_enabled", "method_deprecated", "not_supported"}
)
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
STREAM_TEXT_LIMIT = 11_000  # markdown_text takes 12,000 characters a call
POST_TEXT_LIMIT = 3900


def slack_error(exc: BaseException) -> str | None:
    if isinstance(exc, SlackApiError):
        try:
            return str(exc.response.get("error") or "unknown_error")
        except Exception:
            return "unknown_error"
    return None


def _retry_after(exc: SlackApiError) -> float:
    try:
        return float(exc.response.headers.get("Retry-After", 1))
    except (AttributeError, TypeError, ValueError):
        return 1.0


class Delivery:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        recipient_user: str | None,
        recipient_team: str | None,
        stream: bool = True,
        budget: RateBudget | None = None,
        team: str = "",
        append_interval: float = 1.0,
        on_started: Callable[[str], Awaitable[None]] | None = None,
        on_stream_unavailable: Callable[[], None] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.recipient_user = recipient_user
        self.recipient_team = recipient_team
        self.mode = "stream" if stream else "post"
        self.budget = budget or RateBudget()
        self.team = team
        self.append_interval = append_interval
        self.on_started = on_started
        self.on_stream_unavailable = on_stream_unavailable
        self.metadata = metadata
        self.ts: str | None = None
        self.streaming = False  # a stream is open and takes appends
        self.shown = ""  # the text in Slack so far (streamed or posted)
        self._pending = ""  # written, not yet in Slack
        self._last_call = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._calling = False  # an appendStream is on the wire
        self._ending = False  # finish() has begun: no more appends

    @property
    def pending(self) -> str:
        """Written, not yet in Slack (it goes with the next append, or the stop)."""
        return self._pending

    async def write(self, markdown: str) -> None:
        """Add text to the reply as it is produced. The first text goes out at once; the rest
        in batches (streamed), or with the card (posted)."""
        if not markdown:
            return
        self._pending += markdown
        if self.ts is None:
            await self._open()
        elif self.streaming and self._flusher is None and not self._ending:
            self._flusher = asyncio.get_running_loop().create_task(self._append_later())

    async def finish(self, card: Message, closing: list[Block] | None = None) -> str:
        """End the reply as the card: `closing` (the card's blocks but the streamed reply)
        under the text shown, or else the whole `card` in place of it. Returns the reply's ts."""
        await self._settle()
        if self.ts is None:  # nothing was shown: the card is the reply (a cache hit)
            response = await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread_ts,
                text=card.text,
                blocks=card.blocks,
                metadata=self.metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
            await self._started(str(response["ts"]))
            assert self.ts is not None
            return self.ts
        if self.streaming and await self._stop(closing) and closing is not None:
            return self.ts
        await self._update(card)
        return self.ts

    async def resume(self, ts: str, message: Message) -> str:
        """Finish a reply an earlier attempt started (found in the inbox after a restart)."""
        self.ts = ts
        self.streaming = True  # it may still be an open stream: close it, quietly
        await self._stop(None)
        await self._update(message)
        return ts

    # Opening ---------------------------------------------------------------------------------

    async def _open(self) -> None:
        if self.mode == "stream":
            if await self.budget.take(self.team, "chat.startStream", "chat.stopStream"):
                if await self._start_stream():
                    return
            else:
                log.info("stream budget spent in %s: posting and updating instead", self.team)
                self.mode = "post"
        await self._post()

    async def _start_stream(self) -> bool:
        text, self._pending = truncate(self._pending, STREAM_TEXT_LIMIT), ""
        try:
            response = await self.client.chat_startStream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                markdown_text=text,
                recipient_user_id=self.recipient_user,
                recipient_team_id=self.recipient_team,
            )
        except SlackApiError as exc:
            self._pending = text + self._pending
            error = slack_error(exc)
            if error in CHANNEL_ERRORS and error != "missing_scope":
                raise
            if error == "ratelimited":
                await self.budget.exhausted(self.team, "chat.startStream", _retry_after(exc))
            log.info("not streaming this reply (%s): posting and updating instead", error)
            unavailable = error in _STREAM_UNAVAILABLE or error == "missing_scope"
            if unavailable and self.on_stream_unavailable is not None:
                self.on_stream_unavailable()
            self.mode = "post"
            return False
        self.streaming = True
        self.shown = text
        self._last_call = time.monotonic()
        await self._started(str(response["ts"]))
        return True

    async def _post(self) -> None:
        text, self._pending = self._pending, ""
        self.shown = text
        response = await self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=_mrkdwn(text),
            metadata=self.metadata,
            unfurl_links=False,
            unfurl_media=False,
        )
        self._last_call = time.monotonic()
        await self._started(str(response["ts"]))

    # Appending -------------------------------------------------------------------------------

    async def _append_later(self) -> None:
        try:
            wait = self._last_call + self.append_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._calling = True
            await self._append()
        finally:
            self._calling = False
            self._flusher = None
            if self._pending and self.streaming and not self._ending:  # written meanwhile
                self._flusher = asyncio.get_running_loop().create_task(self._append_later())

    async def _append(self) -> None:
        if not self._pending or not self.streaming or self.ts is None:
            return
        if not await self.budget.take(self.team, "chat.appendStream"):
            self._last_call = time.monotonic()  # try again a batch later; stop carries it
            return
        text, self._pending = truncate(self._pending, STREAM_TEXT_LIMIT), ""
        try:
            await self.client.chat_appendStream(
                channel=self.channel, ts=self.ts, markdown_text=text
            )
            self.shown += text
        except SlackApiError as exc:
            self._pending = text + self._pending
            error = slack_error(exc)
            if error in CHANNEL_ERRORS:
                raise
            if error == "ratelimited":
                await self.budget.exhausted(self.team, "chat.appendStream", _retry_after(exc))
            else:
                # e.g. message_not_in_streaming_state: Slack ended the stream; the card
                # replaces it with chat.update.
                log.info("stream ended early (%s); the card will replace it", error)
                self.streaming = False
        finally:
            self._last_call = time.monotonic()

    async def _settle(self) -> None:
        """Let an append on the wire land; drop one that is only waiting (stop carries it)."""
        self._ending = True
        flusher = self._flusher
        if flusher is None:
            return
        if not self._calling:
            flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await flusher
        self._flusher = None

    # Stopping --------------------------------------------------------------------------------

    async def _stop(self, closing: list[Block] | None) -> bool:
        """Close the stream with the waiting text and `closing` under it; False when Slack
        had closed it already, or refused (the caller then updates the message)."""
        assert self.ts is not None
        args: dict[str, Any] = {"channel": self.channel, "ts": self.ts}
        if self._pending:
            args["markdown_text"] = truncate(self._pending, STREAM_TEXT_LIMIT)
        if closing is not None:
            args["blocks"] = closing
            args["metadata"] = self.metadata
        self.streaming = False
        try:
            await self.client.chat_stopStream(**args)
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in CHANNEL_ERRORS:
                raise
            if error == "ratelimited":
                await self.budget.exhausted(self.team, "chat.stopStream", _retry_after(exc))
            log.info("stopping the stream: %s; the card replaces it", error)
            return False
        self.shown += self._pending
        self._pending = ""
        self._last_call = time.monotonic()
        return True

    async def _update(self, message: Message) -> None:
        assert self.ts is not None
        await self.client.chat_update(
            channel=self.channel,
            ts=self.ts,
            text=message.text,
            blocks=message.blocks,
            metadata=self.metadata,
        )
        self._last_call = time.monotonic()

    async def _started(self, ts: str) -> None:
        self.ts = ts
        if self.on_started is not None:
            await self.on_started(ts)


def _mrkdwn(markdown: str) -> str:
    """A message's `text` is mrkdwn, where bold is *one* star."""
    return truncate(markdown.replace("**", "*"), POST_TEXT_LIMIT)
