"""Putting one reply into a Slack thread: streamed when the workspace allows it, else one post
plus throttled `chat.update`s; either way it ends as the Block Kit card.

Streaming uses Slack's chat streaming API (`chat.startStream` / `appendStream` / `stopStream`,
what bolt's `say_stream` wraps); a turn restarted from the inbox has no bolt context, so both
paths call the Web API directly. The reply's `ts` is reported (`on_started`) as soon as the
message exists, so the inbox can finish that same message after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from .blocks import Message
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
STREAM_TEXT_LIMIT = 11_000  # markdown_text takes 12,000 characters a call


def slack_error(exc: BaseException) -> str | None:
    if isinstance(exc, SlackApiError):
        try:
            return str(exc.response.get("error") or "unknown_error")
        except Exception:
            return "unknown_error"
    return None


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
        min_update_interval: float = 1.0,
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
        self.min_update_interval = min_update_interval
        self.on_started = on_started
        self.on_stream_unavailable = on_stream_unavailable
        self.metadata = metadata
        self.ts: str | None = None
        self.streaming = False  # a stream is open and takes appends
        self._text = ""
        self._last_write = 0.0

    async def write(self, markdown: str) -> None:
        """Add text to the reply as it is produced."""
        if not markdown:
            return
        if self.mode == "stream":
            await self._stream(markdown)
        else:
            await self._post_or_update(markdown)

    async def finish(self, message: Message) -> str:
        """End the reply as `message` (the card); returns the reply's ts."""
        if self.ts is None:
            response = await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread_ts,
                text=message.text,
                blocks=message.blocks,
                metadata=self.metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
            await self._started(str(response["ts"]))
            assert self.ts is not None
            return self.ts
        if self.streaming:
            await self._stop_stream()
        else:
            await self._throttle()
        await self._update(message)
        return self.ts

    async def resume(self, ts: str, message: Message) -> str:
        """Finish a reply an earlier attempt started (found in the inbox after a restart)."""
        self.ts = ts
        self.streaming = True  # it may still be an open stream: close it, quietly
        await self._stop_stream()
        await self._update(message)
        return ts

    # Streaming ---------------------------------------------------------------------------

    async def _stream(self, markdown: str) -> None:
        markdown = truncate(markdown, STREAM_TEXT_LIMIT)
        if self.ts is None:
            try:
                response = await self.client.chat_startStream(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    markdown_text=markdown,
                    recipient_user_id=self.recipient_user,
                    recipient_team_id=self.recipient_team,
                )
            except SlackApiError as exc:
                error = slack_error(exc)
                if error in CHANNEL_ERRORS and error != "missing_scope":
                    raise
                log.info("streaming unavailable here (%s): posting and updating instead", error)
                unavailable = error in _STREAM_UNAVAILABLE or error == "missing_scope"
                if unavailable and self.on_stream_unavailable is not None:
                    self.on_stream_unavailable()
                self.mode = "post"
                await self._post_or_update(markdown)
                return
            self.streaming = True
            self._text = markdown
            await self._started(str(response["ts"]))
            return
        if not self.streaming:
            return  # the stream broke; the final update shows everything
        try:
            await self.client.chat_appendStream(
                channel=self.channel, ts=self.ts, markdown_text=markdown
            )
            self._text += markdown
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in CHANNEL_ERRORS:
                raise
            # e.g. message_not_in_streaming_state: Slack ended the stream; chat.update finishes.
            log.info("stream ended early (%s); the card will replace it", error)
            self.streaming = False

    async def _stop_stream(self) -> None:
        assert self.ts is not None
        try:
            await self.client.chat_stopStream(channel=self.channel, ts=self.ts)
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in CHANNEL_ERRORS:
                raise
            log.debug("stopping the stream: %s", error)
        self.streaming = False
        self._last_write = time.monotonic()

    # Post + throttled updates ----------------------------------------------------------------

    async def _post_or_update(self, markdown: str) -> None:
        self._text += markdown
        # A message's `text` is mrkdwn, where bold is *one* star.
        text = truncate(self._text.replace("**", "*"), 3900)
        if self.ts is None:
            response = await self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread_ts,
                text=text,
                metadata=self.metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
            self._last_write = time.monotonic()
            await self._started(str(response["ts"]))
            return
        if time.monotonic() - self._last_write < self.min_update_interval:
            return  # coalesced: the next update, or the card, carries this text
        await self.client.chat_update(channel=self.channel, ts=self.ts, text=text)
        self._last_write = time.monotonic()

    async def _throttle(self) -> None:
        wait = self._last_write + self.min_update_interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _update(self, message: Message) -> None:
        assert self.ts is not None
        await self.client.chat_update(
            channel=self.channel,
            ts=self.ts,
            text=message.text,
            blocks=message.blocks,
            metadata=self.metadata,
        )
        self._last_write = time.monotonic()

    async def _started(self, ts: str) -> None:
        self.ts = ts
        if self.on_started is not None:
            await self.on_started(ts)
