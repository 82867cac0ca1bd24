"""A local fake Slack that speaks the real protocols over real sockets.

``FakeSlack`` runs an aiohttp server on 127.0.0.1 (ephemeral port) that serves

* the Web API under ``/api/<method>`` (form-encoded, query-string and JSON
  bodies, ``Authorization: Bearer`` token checks, realistic JSON replies),
* Socket Mode: ``apps.connections.open`` hands out ``ws://127.0.0.1:PORT/link?ticket=...``
  and the WebSocket at ``/link`` sends ``hello``, pushes envelopes and records acks,
* ``response_url`` endpoints for slash commands and interactivity.

so the real ``slack_bolt`` ``AsyncApp`` + ``AsyncSocketModeHandler`` can be tested end to
end without reaching slack.com::

    async with FakeSlack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        app = AsyncApp(client=client)
        handler = AsyncSocketModeHandler(app, "xapp-test")
        await handler.connect_async()
        await fake.wait_connected()
        env_id = await fake.push_event(app_mention_event("hi"))
        await fake.wait_for_ack(env_id)
        call = await fake.wait_for_call("chat.postMessage")
        await handler.close_async()     # close the bot before the fake

Notes on fidelity (what the fake enforces, see the docstrings for details):

* bot methods need an ``xoxb-``/``xoxp-`` token (``not_authed``, ``invalid_auth``,
  ``not_allowed_token_type`` otherwise); ``apps.connections.open`` needs ``xapp-``.
* ``chat.postMessage`` needs text/blocks/attachments (``no_text``), text <= 40,000 chars
  (``msg_too_long``) and light Block Kit validation (``invalid_blocks``).
* channels registered with ``add_channel(..., is_member=False)`` answer ``not_in_channel``.
* ``chat.update``/``chat.delete``/``reactions.*`` need an existing message
  (``message_not_found``); only the bot's own messages can be updated/deleted.
* streams: ``chat.appendStream``/``chat.stopStream`` on a stopped (or ``expire_stream``-ed)
  stream answer ``message_not_in_streaming_state``, as does a stream older than
  ``stream_lifetime`` seconds (Slack closes streams after about five minutes);
  ``chat.startStream`` needs ``thread_ts`` and, in channels (C/G ids), ``recipient_user_id`` +
  ``recipient_team_id``.
* rate limits: ``rate_limits={"chat.startStream": 20, ...}`` allows that many calls of a method
  per ``rate_window`` seconds (Slack's tiers are per minute, per workspace); past it a call
  answers HTTP 429 ``ratelimited`` with ``Retry-After`` (whole seconds until a call leaves the
  window), and is recorded like any other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.web_request import FileField

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_NAME",
    "BOT_USER_ID",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TEAM_NAME",
    "Ack",
    "ApiCall",
    "FakeSlack",
    "StreamRecord",
    "app_mention_event",
    "assistant_thread_context_changed_event",
    "assistant_thread_started_event",
    "block_actions_payload",
    "bot_message_event",
    "message_changed_event",
    "message_deleted_event",
    "message_event",
    "new_ts",
    "slash_command_payload",
]

logger = logging.getLogger(__name__)

TEAM_ID = "T0001"
TEAM_NAME = "Acme Sales"
TEAM_DOMAIN = "acme-sales"
BOT_USER_ID = "U_BOT"
BOT_ID = "B_BOT"
BOT_NAME = "sales-agent"
APP_ID = "A0001"
VERIFICATION_TOKEN = "fake-verification-token"
BOT_SCOPES = (
    "app_mentions:read,assistant:write,channels:history,channels:read,chat:write,commands,"
    "groups:history,im:history,im:read,im:write,reactions:read,reactions:write,users:read"
)

# Arguments that arrive as JSON strings when a method is called form-encoded.
_JSON_ARGS = {
    "blocks",
    "attachments",
    "metadata",
    "chunks",
    "prompts",
    "view",
    "loading_messages",
    "unfurls",
    "user_auth_blocks",
}
_APP_TOKEN_METHODS = {"apps.connections.open", "apps.event.authorizations.list"}
_NO_AUTH_METHODS = {
    "api.test",
    "oauth.access",
    "oauth.v2.access",
    "oauth.v2.exchange",
    "openid.connect.token",
}

_MISSING = object()

# --------------------------------------------------------------------------------------
# timestamps / ids
# --------------------------------------------------------------------------------------

_TS_BASE_US = 1_700_000_000_000_100
_ts_counter = itertools.count()


def new_ts() -> str:
    """Process-wide monotonic, unique Slack-style ts: "1700000000.000100", "1700000000.000200", ...

    Shared by the event builders and the fake's Web API, so a bot reply always sorts after
    the user message it answers (as on real Slack)."""
    us = _TS_BASE_US + next(_ts_counter) * 100
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _short_id(prefix: str, n: int = 10) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def _channel_type_for(channel: str) -> str:
    if channel.startswith("D"):
        return "im"
    if channel.startswith("G"):
        return "group"
    return "channel"


_MENTION_RE = re.compile(r"<@([A-Z0-9_]+)(?:\|[^>]*)?>")


def _rich_text_blocks(text: str) -> list[dict]:
    """The rich_text block Slack generates for a plain-text message."""
    elements: list[dict] = []
    pos = 0
    for m in _MENTION_RE.finditer(text):
        if m.start() > pos:
            elements.append({"type": "text", "text": text[pos : m.start()]})
        elements.append({"type": "user", "user_id": m.group(1)})
        pos = m.end()
    if pos < len(text):
        elements.append({"type": "text", "text": text[pos:]})
    return [
        {
            "type": "rich_text",
            "block_id": _short_id("", 5),
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)


# --------------------------------------------------------------------------------------
# event / payload builders
# --------------------------------------------------------------------------------------


def message_event(
    text: str,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str | None = None,
    **extra: Any,
) -> dict:
    """A user's ``message`` event (no subtype). ``channel_type`` defaults from the id prefix
    (D -> "im", G -> "group", else "channel")."""
    ts = ts or new_ts()
    ev: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        "team": TEAM_ID,
        "blocks": _rich_text_blocks(text),
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type or _channel_type_for(channel),
    }
    if thread_ts:
        ev["thread_ts"] = thread_ts
        ev["parent_user_id"] = extra.pop("parent_user_id", user)
    ev.update(extra)
    return ev


def app_mention_event(
    text: str,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    bot_user_id: str = BOT_USER_ID,
    **extra: Any,
) -> dict:
    """An ``app_mention`` event; the text is prefixed with ``<@U_BOT> `` unless it already
    mentions the bot. (Real Slack sends no channel_type on app_mention.)"""
    if f"<@{bot_user_id}>" not in text:
        text = f"<@{bot_user_id}> {text}"
    ts = ts or new_ts()
    ev: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        "team": TEAM_ID,
        "blocks": _rich_text_blocks(text),
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        ev["thread_ts"] = thread_ts
        ev["parent_user_id"] = extra.pop("parent_user_id", user)
    ev.update(extra)
    return ev


def bot_message_event(
    text: str,
    bot_id: str = "B_OTHER",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str | None = None,
    username: str = "other-bot",
    subtype: str | None = "bot_message",
    user: str | None = None,
    **extra: Any,
) -> dict:
    """A message posted by a bot. Classic/legacy bots: ``subtype="bot_message"`` and no
    ``user``. Modern apps (including ourselves) post with no subtype, ``bot_id`` *and* a
    ``user``: ``bot_message_event("x", bot_id=BOT_ID, user=BOT_USER_ID, subtype=None)``
    is what Slack echoes back for the bot's own messages."""
    ts = ts or new_ts()
    ev: dict[str, Any] = {"type": "message"}
    if subtype:
        ev["subtype"] = subtype
    ev.update(
        {
            "text": text,
            "ts": ts,
            "bot_id": bot_id,
            "app_id": APP_ID if bot_id == BOT_ID else "A_OTHER",
            "channel": channel,
            "event_ts": ts,
            "channel_type": channel_type or _channel_type_for(channel),
            "bot_profile": {
                "id": bot_id,
                "name": username,
                "app_id": "A_OTHER",
                "team_id": TEAM_ID,
            },
        }
    )
    if subtype == "bot_message":
        ev["username"] = username
    if user:
        ev["user"] = user
        ev["team"] = TEAM_ID
        ev["blocks"] = _rich_text_blocks(text)
    if thread_ts:
        ev["thread_ts"] = thread_ts
    ev.update(extra)
    return ev


def message_changed_event(
    channel: str,
    ts: str,
    text: str,
    user: str = "U1",
    previous_text: str = "",
    thread_ts: str | None = None,
    channel_type: str | None = None,
    **extra: Any,
) -> dict:
    """``message`` / ``message_changed``: the message at ``ts`` was edited to ``text``.
    Note the top-level ``ts``/``event_ts`` is the edit's ts; the edited message is in
    ``event["message"]`` (bolt's ``@app.message`` ignores this subtype; use ``@app.event``)."""
    edit_ts = new_ts()
    msg: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "edited": {"user": user, "ts": edit_ts},
        "ts": ts,
        "team": TEAM_ID,
        "blocks": _rich_text_blocks(text),
        "client_msg_id": str(uuid.uuid4()),
    }
    prev: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": previous_text,
        "ts": ts,
        "team": TEAM_ID,
        "blocks": _rich_text_blocks(previous_text),
        "client_msg_id": msg["client_msg_id"],
    }
    if thread_ts:
        msg["thread_ts"] = prev["thread_ts"] = thread_ts
    ev: dict[str, Any] = {
        "type": "message",
        "subtype": "message_changed",
        "message": msg,
        "previous_message": prev,
        "channel": channel,
        "hidden": True,
        "ts": edit_ts,
        "event_ts": edit_ts,
        "channel_type": channel_type or _channel_type_for(channel),
    }
    ev.update(extra)
    return ev


def message_deleted_event(
    channel: str,
    deleted_ts: str,
    previous_text: str = "",
    user: str = "U1",
    thread_ts: str | None = None,
    channel_type: str | None = None,
    **extra: Any,
) -> dict:
    ts = new_ts()
    prev: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": previous_text,
        "ts": deleted_ts,
    }
    if thread_ts:
        prev["thread_ts"] = thread_ts
    ev: dict[str, Any] = {
        "type": "message",
        "subtype": "message_deleted",
        "previous_message": prev,
        "channel": channel,
        "hidden": True,
        "deleted_ts": deleted_ts,
        "ts": ts,
        "event_ts": ts,
        "channel_type": channel_type or _channel_type_for(channel),
    }
    ev.update(extra)
    return ev


def assistant_thread_started_event(
    user: str = "U1",
    channel: str = "D1",
    thread_ts: str | None = None,
    context: dict | None = None,
) -> dict:
    """``assistant_thread_started`` (user opened the AI-app container). ``context`` is
    e.g. ``{"channel_id": "C1", "team_id": "T0001", "enterprise_id": None}`` or ``{}``."""
    thread_ts = thread_ts or new_ts()
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "context": context if context is not None else {},
            "channel_id": channel,
            "thread_ts": thread_ts,
        },
        "event_ts": new_ts(),
    }


def assistant_thread_context_changed_event(
    user: str = "U1", channel: str = "D1", thread_ts: str = "", context: dict | None = None
) -> dict:
    ev = assistant_thread_started_event(
        user=user, channel=channel, thread_ts=thread_ts or None, context=context
    )
    ev["type"] = "assistant_thread_context_changed"
    return ev


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    user_id: str = "U1",
    channel: str = "C1",
    message_ts: str | None = None,
    thread_ts: str | None = None,
    blocks: list[dict] | None = None,
    *,
    block_id: str | None = None,
    action_type: str = "button",
    button_text: str = "Click",
    message_text: str = "",
    response_url: str | None = None,
    trigger_id: str | None = None,
    state_values: dict | None = None,
    **action_extra: Any,
) -> dict:
    """A ``block_actions`` payload for a click on a bot message (``message_ts``).
    ``response_url=None`` is filled in by ``FakeSlack.push_action`` with a URL on the fake
    (``FakeSlack.block_actions_payload`` also fills blocks/text from the stored message)."""
    message_ts = message_ts or new_ts()
    if blocks is None:
        blocks = [
            {
                "type": "actions",
                "block_id": block_id or "actions",
                "elements": [
                    {
                        "type": action_type,
                        "action_id": action_id,
                        "text": {"type": "plain_text", "text": button_text, "emoji": True},
                        **({"value": value} if value is not None else {}),
                    }
                ],
            }
        ]
    if block_id is None:
        block_id = _find_block_id(blocks, action_id) or "actions"
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": False,
    }
    message: dict[str, Any] = {
        "user": BOT_USER_ID,
        "type": "message",
        "ts": message_ts,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "text": message_text,
        "team": TEAM_ID,
        "blocks": blocks,
    }
    if thread_ts:
        container["thread_ts"] = thread_ts
        message["thread_ts"] = thread_ts
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type,
        "action_ts": new_ts(),
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": button_text, "emoji": True}
        if value is not None:
            action["value"] = value
    elif action_type == "static_select":
        action["selected_option"] = {
            "text": {"type": "plain_text", "text": value or ""},
            "value": value,
        }
    elif value is not None:
        action["value"] = value
    action.update(action_extra)
    return {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": TEAM_ID,
        },
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel.lower()},
        "message": message,
        "state": {"values": state_values or {}},
        "response_url": response_url,
        "actions": [action],
    }


def _find_block_id(blocks: list[dict], action_id: str) -> str | None:
    for b in blocks or []:
        for el in b.get("elements", []) or []:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return b.get("block_id")
        acc = b.get("accessory")
        if isinstance(acc, dict) and acc.get("action_id") == action_id:
            return b.get("block_id")
    return None


def slash_command_payload(
    command: str = "/agent-stats",
    text: str = "",
    user_id: str = "U1",
    channel_id: str = "C1",
    *,
    response_url: str = "",
    trigger_id: str | None = None,
    user_name: str | None = None,
    channel_name: str | None = None,
) -> dict:
    """The form fields of a slash command invocation (all strings, as Slack sends them)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name
        or ("directmessage" if channel_id.startswith("D") else channel_id.lower()),
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------


@dataclass
class ApiCall:
    """One HTTP request to the fake. ``method`` is the Web API method name, or
    ``"response_url"`` for POSTs to a response_url. ``args`` merges query string + body
    (JSON-string args such as blocks are decoded). ``at`` is ``time.monotonic()`` at arrival.
    Failed/injected calls are recorded too: check ``status``/``ok``/``error``."""

    method: str
    args: dict
    token: str | None
    at: float
    http_method: str = "POST"
    content_type: str = ""
    path: str = ""
    status: int = 200
    response: Any = None

    @property
    def ok(self) -> bool:
        return isinstance(self.response, dict) and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return self.response.get("error") if isinstance(self.response, dict) else None


@dataclass
class Ack:
    envelope_id: str
    payload: dict | None
    at: float


@dataclass
class StreamRecord:
    """State of one chat.startStream ... chat.stopStream message."""

    channel: str
    ts: str
    thread_ts: str
    recipient_user_id: str | None
    recipient_team_id: str | None
    state: str = "streaming"  # "streaming" | "stopped" | "expired"
    text: str = ""
    chunks: list[dict] = field(default_factory=list)  # every chunk received, in order
    blocks: list[dict] | None = None  # blocks given to chat.stopStream
    metadata: dict | None = None
    append_calls: int = 0
    start_args: dict = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: int | None
    remaining: int
    when: Callable[[dict], bool] | None
    extra: dict


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    ticket: str
    number: int


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any):
        super().__init__(error)
        self.error = error
        self.extra = extra


# --------------------------------------------------------------------------------------
# the fake
# --------------------------------------------------------------------------------------


class FakeSlack:
    """In-process fake of Slack's Web API + Socket Mode + response_url endpoints.

    Use ``async with FakeSlack() as fake`` or ``fake = await FakeSlack.start()`` /
    ``await fake.close()``. Close the bot's socket handler *before* the fake, otherwise
    slack_sdk's auto-reconnect keeps retrying a dead port."""

    def __init__(
        self,
        *,
        valid_tokens: set | None = None,
        strict_blocks: bool = True,
        require_stream_recipients: bool = True,
        stream_lifetime: float = 300.0,
        rate_limits: dict[str, int] | None = None,
        rate_window: float = 60.0,
        spread: bool = False,
        redeliver_after: float | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        # Slack delivers each envelope to ONE of an app's open connections (up to 10, in no
        # promised order): `spread` sends them round-robin; by default to the newest.
        self.spread = spread
        # An events_api envelope not acked this many seconds after it went out is sent again
        # (retry_num + 1, reason "timeout", up to 3 retries), to another open connection
        # when there is one, as Slack retries an event its app did not ack.
        self.redeliver_after = redeliver_after
        self.delivered_to: dict[str, int] = {}  # envelope_id -> connection number
        self.port: int = 0
        self.valid_tokens = set(valid_tokens) if valid_tokens is not None else None
        self.strict_blocks = strict_blocks
        self.require_stream_recipients = require_stream_recipients
        self.stream_lifetime = stream_lifetime
        self.rate_limits = dict(rate_limits or {})
        self.rate_window = rate_window
        self._rate_calls: dict[str, list[float]] = {}

        self.calls: list[ApiCall] = []
        self.unknown_methods: list[str] = []
        self.server_errors: list[str] = []  # exceptions inside the fake (bugs), never silent
        self.envelopes: list[dict] = []
        self.acks: list[Ack] = []
        self.client_messages: list[Any] = []  # every frame the client sent (parsed JSON)
        self.ephemeral_messages: list[dict] = []
        self.thread_statuses: dict[tuple[str, str], list[str]] = {}
        self.suggested_prompts: dict[tuple[str, str], dict] = {}
        self.thread_titles: dict[tuple[str, str], str] = {}
        self.views: dict[str, dict] = {}
        self.streams: dict[str, StreamRecord] = {}
        self.channels: dict[str, dict] = {}
        self.users: dict[str, dict] = {}
        self.connection_count = 0  # WebSocket connections accepted so far (ever)

        self._store: dict[str, list[dict]] = {}
        self._origin: dict[tuple[str, str], str] = {}  # (channel, ts) -> "api" | "event" | "seed"
        self._faults: dict[str, list[_Fault]] = {}
        self._latency: dict[str, float] = {}
        self._tickets: set = set()
        self._conns: list[_Conn] = []
        self._response_urls: dict[str, dict] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._closed = False
        self._counter = itertools.count(1)
        self._next_conn = itertools.count()
        self._redeliveries: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    async def start(cls, **kwargs: Any) -> FakeSlack:
        fake = cls(**kwargs)
        await fake.listen()
        return fake

    async def listen(self) -> FakeSlack:
        if self._runner is not None:
            return self
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/link", self._handle_link)
        app.router.add_get("/link/", self._handle_link)
        app.router.add_post("/commands/{team}/{hook}/{secret}", self._handle_response_url)
        app.router.add_post("/actions/{team}/{hook}/{secret}", self._handle_response_url)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._closed or self._runner is None:
            return
        self._closed = True
        for task in list(self._redeliveries):
            task.cancel()
        for conn in list(self._conns):
            with contextlib.suppress(Exception):  # best effort
                await asyncio.wait_for(
                    conn.ws.close(code=1001, message=b"fake slack shutting down"), 2.0
                )
        await self._runner.cleanup()
        self._bump()

    async def __aenter__(self) -> FakeSlack:
        return await self.listen()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """For ``AsyncWebClient(base_url=...)`` (the trailing slash matters: urljoin)."""
        return f"{self.base_url}/api/"

    # ---------------------------------------------------------------- configuration

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
        when: Callable[[dict], bool] | None = None,
        **extra_response: Any,
    ) -> None:
        """Make the next ``times`` calls to ``method`` ("*" = any method) fail.

        ``status`` defaults to 429 for "ratelimited" (with a ``Retry-After: retry_after``
        header) and to 200 for other errors (Slack's usual ``{"ok": false, "error": ...}``),
        e.g. ``fail_next("chat.postMessage", "not_in_channel")``. ``when(args)`` limits the
        fault to matching calls. Extra kwargs are merged into the error body."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        self._faults.setdefault(method, []).append(
            _Fault(
                error=error,
                status=status,
                retry_after=retry_after,
                remaining=times,
                when=when,
                extra=extra_response,
            )
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay responses to ``method`` ("*" = all) by ``seconds``."""
        self._latency[method] = seconds

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_member: bool = True,
        is_archived: bool = False,
        is_private: bool | None = None,
        user: str | None = None,
        **extra: Any,
    ) -> dict:
        info = self._default_channel_info(channel_id)
        info.update({"is_member": is_member, "is_archived": is_archived})
        if name:
            info["name"] = info["name_normalized"] = name
        if is_private is not None:
            info["is_private"] = is_private
        if user:
            info["user"] = user
        info.update(extra)
        self.channels[channel_id] = info
        return info

    def add_user(self, user_id: str, name: str | None = None, **fields: Any) -> dict:
        """Register a user for users.info; ``fields`` may include real_name, email, tz,
        title, is_bot, deleted... (profile fields are mirrored into ``profile``)."""
        info = self._default_user_info(user_id)
        if name:
            info["name"] = name
            info["profile"]["display_name"] = info["profile"]["display_name_normalized"] = name
        profile_keys = {"real_name", "display_name", "email", "title", "phone", "image_72"}
        for k, v in fields.items():
            if k == "profile":
                info["profile"].update(v)
            elif k in profile_keys:
                info["profile"][k] = v
                if k == "real_name":
                    info["real_name"] = info["profile"]["real_name_normalized"] = v
            else:
                info[k] = v
        self.users[user_id] = info
        return info

    def seed_message(
        self,
        channel: str,
        text: str,
        user: str = "U1",
        ts: str | None = None,
        thread_ts: str | None = None,
        **extra: Any,
    ) -> dict:
        """Put a (user) message into channel history without sending an event."""
        ev = message_event(text, user=user, channel=channel, ts=ts, thread_ts=thread_ts, **extra)
        msg = {k: v for k, v in ev.items() if k not in ("channel", "event_ts", "channel_type")}
        self._insert(channel, msg, "seed")
        return copy.deepcopy(msg)

    def expire_stream(self, ts: str) -> None:
        """Simulate Slack ending a stream server-side (they expire after a few minutes):
        further appendStream/stopStream calls answer message_not_in_streaming_state."""
        self.streams[ts].state = "expired"

    # ---------------------------------------------------------------- inspection

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def messages(
        self, channel: str, thread_ts: str | None = None, *, include_events: bool = False
    ) -> list[dict]:
        """Messages the app created through the Web API in ``channel`` (posted, updated,
        streamed, in_channel responses; deleted ones are gone), oldest first, as copies.
        With ``thread_ts``: the thread's parent (if the app posted it) + replies.
        ``include_events=True`` also returns messages that arrived via pushed events or
        ``seed_message`` (users, other bots)."""
        out = []
        for m in self._store.get(channel, []):
            if not include_events and self._origin.get((channel, m["ts"])) != "api":
                continue
            if thread_ts is not None and m["ts"] != thread_ts and m.get("thread_ts") != thread_ts:
                continue
            out.append(copy.deepcopy(m))
        return out

    def message(self, channel: str, ts: str) -> dict | None:
        m = self._find(channel, ts)
        return copy.deepcopy(m) if m is not None else None

    def stream(self, ts: str) -> StreamRecord:
        return self.streams[ts]

    def envelope(self, envelope_id: str) -> dict:
        for env in self.envelopes:
            if env["envelope_id"] == envelope_id:
                return env
        raise KeyError(envelope_id)

    def ack_for(self, envelope_id: str) -> Any:
        """The ack payload (None for a bare ack), or raises KeyError if not acked yet."""
        for a in self.acks:
            if a.envelope_id == envelope_id:
                return a.payload
        raise KeyError(envelope_id)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # ---------------------------------------------------------------- waiting

    def _bump(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def _wait_until(
        self, probe: Callable[[], Any], timeout: float, describe: Callable[[], str]
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = probe()
            if result is not _MISSING:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closed:
                raise TimeoutError(describe())
            ev = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ev.wait(), remaining)

    def _methods_seen(self) -> str:
        seen = []
        for c in self.calls:
            failed = not c.ok and c.method != "response_url"
            seen.append(f"{c.method}({c.status}{' ' + str(c.error) if failed else ''})")
        return ", ".join(seen) if seen else "none"

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        timeout: float = 5.0,
    ) -> ApiCall:
        """First call to ``method`` (already made or future) for which ``predicate(call)``
        is true. Raises TimeoutError listing the methods seen."""

        def probe() -> Any:
            for c in self.calls:
                if c.method == method and (predicate is None or predicate(c)):
                    return c
            return _MISSING

        def describe() -> str:
            n = len(self.calls_to(method))
            matching = " matching predicate" if predicate else ""
            return (
                f"FakeSlack: no {method} call{matching} within {timeout}s "
                f"({n} non-matching {method} call(s)). Calls seen: {self._methods_seen()}. "
                f"Acked envelopes: {len(self.acks)}/{len(self.envelopes)}."
            )

        return await self._wait_until(probe, timeout, describe)

    async def wait_for_calls(
        self,
        method: str,
        count: int,
        predicate: Callable[[ApiCall], bool] | None = None,
        timeout: float = 5.0,
    ) -> list[ApiCall]:
        """Wait until at least ``count`` matching calls were made; returns all matching."""

        def matching() -> list[ApiCall]:
            return [
                c for c in self.calls if c.method == method and (predicate is None or predicate(c))
            ]

        def probe() -> Any:
            m = matching()
            return m if len(m) >= count else _MISSING

        def describe() -> str:
            return (
                f"FakeSlack: wanted {count} {method} call(s), got {len(matching())} "
                f"within {timeout}s. "
                f"Calls seen: {self._methods_seen()}"
            )

        return await self._wait_until(probe, timeout, describe)

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict | None:
        """The payload of the client's ack for ``envelope_id`` (None for a bare ack)."""

        def probe() -> Any:
            for a in self.acks:
                if a.envelope_id == envelope_id:
                    return a.payload
            return _MISSING

        def describe() -> str:
            try:
                kind = self.envelope(envelope_id)["type"]
            except KeyError:
                kind = "unknown envelope"
            return (
                f"FakeSlack: envelope {envelope_id} ({kind}) not acked within {timeout}s. "
                f"{len(self.acks)} ack(s) for {len(self.envelopes)} envelope(s); "
                f"open sockets: {len(self._conns)}. "
                "Note: bolt only acks when a listener matched "
                "(unhandled requests get 404 and no ack), "
                "and commands/actions/views are acked only when the listener calls ack(). "
                f"Calls seen: {self._methods_seen()}"
            )

        return await self._wait_until(probe, timeout, describe)

    async def wait_connected(self, timeout: float = 5.0, *, count: int = 1) -> int:
        """Wait for an open Socket Mode connection (and for at least ``count`` connections
        accepted in total, e.g. ``count=2`` after ``disconnect_clients()``). Returns the total."""

        def probe() -> Any:
            return (
                self.connection_count
                if self._conns and self.connection_count >= count
                else _MISSING
            )

        def describe() -> str:
            return (
                f"FakeSlack: no Socket Mode connection (wanted total>={count}, "
                f"have {self.connection_count}, "
                f"open {len(self._conns)}) within {timeout}s. Calls seen: {self._methods_seen()}"
            )

        return await self._wait_until(probe, timeout, describe)

    # ---------------------------------------------------------------- socket mode: pushing

    async def push_envelope(
        self,
        type: str,
        payload: dict,
        *,
        accepts_response_payload: bool = False,
        timeout: float = 5.0,
        to: int | None = None,
        **extra: Any,
    ) -> str:
        """Send any envelope to one open connection (waiting up to ``timeout`` for one): the
        newest, the next in turn with ``spread``, or connection number ``to``. Returns the
        envelope_id."""
        await self.wait_connected(timeout)
        conn = self._pick_connection(to)
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        envelope.update(extra)
        self.envelopes.append(envelope)
        self.delivered_to[envelope["envelope_id"]] = conn.number
        await conn.ws.send_str(json.dumps(envelope))
        self._bump()
        return envelope["envelope_id"]

    def _pick_connection(self, to: int | None) -> _Conn:
        if to is not None:
            for conn in self._conns:
                if conn.number == to:
                    return conn
            raise KeyError(f"no open connection number {to}")
        if self.spread:
            return self._conns[next(self._next_conn) % len(self._conns)]
        return self._conns[-1]

    @property
    def connection_numbers(self) -> list[int]:
        """The open connections' numbers (1, 2, ... in the order they were accepted)."""
        return [conn.number for conn in self._conns]

    async def push_event(
        self,
        event: dict,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        *,
        event_time: int | None = None,
        timeout: float = 5.0,
        to: int | None = None,
    ) -> str:
        """Push an ``events_api`` envelope wrapping ``event`` in a full event_callback.

        First deliveries carry ``retry_attempt: 0, retry_reason: ""`` like real Slack (so
        bolt sets ``x-slack-retry-num: 0`` - treat >0 as a redelivery). For a redelivery
        pass the same ``event_id`` and ``retry_num=1`` (reason defaults to "timeout").
        Message/app_mention events are also stored as channel history."""
        event_id = event_id or _short_id("Ev")
        payload = {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": event_time or int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_urlsafe(24),
        }
        if not retry_num:
            self._record_event_side_effects(event)
        envelope_id = await self.push_envelope(
            "events_api",
            payload,
            accepts_response_payload=False,
            retry_attempt=retry_num or 0,
            retry_reason=(retry_reason or "timeout") if retry_num else (retry_reason or ""),
            timeout=timeout,
            to=to,
        )
        if self.redeliver_after is not None and (retry_num or 0) < 3:
            task = asyncio.create_task(self._redeliver(envelope_id, event, event_id, retry_num))
            self._redeliveries.add(task)
            task.add_done_callback(self._redeliveries.discard)
        return envelope_id

    async def _redeliver(
        self, envelope_id: str, event: dict, event_id: str, retry_num: int | None
    ) -> None:
        assert self.redeliver_after is not None
        await asyncio.sleep(self.redeliver_after)
        if self._closed or any(a.envelope_id == envelope_id for a in self.acks):
            return
        first = self.delivered_to[envelope_id]
        others = [n for n in self.connection_numbers if n != first]
        with contextlib.suppress(TimeoutError):  # no connection left: nothing to retry on
            await self.push_event(
                event, event_id, (retry_num or 0) + 1, "timeout", to=others[0] if others else None
            )

    async def push_command(
        self,
        command: str = "/agent-stats",
        text: str = "",
        user_id: str = "U1",
        channel_id: str = "C1",
        *,
        timeout: float = 5.0,
        to: int | None = None,
        **fields: Any,
    ) -> str:
        """Push a ``slash_commands`` envelope (to connection ``to``, see push_envelope). Its
        response_url points at the fake; POSTs there are recorded as
        ApiCall(method="response_url")."""
        url = self._new_response_url("commands", {"channel": channel_id, "user": user_id})
        payload = slash_command_payload(
            command, text, user_id, channel_id, response_url=url, **fields
        )
        return await self.push_envelope(
            "slash_commands", payload, accepts_response_payload=True, timeout=timeout, to=to
        )

    async def push_action(self, payload: dict, *, timeout: float = 5.0) -> str:
        """Push an ``interactive`` envelope (block_actions, view_submission, shortcut...).
        A missing/None ``response_url`` is replaced by one on the fake."""
        payload = copy.deepcopy(payload)
        wants_url = payload.get("type") in ("block_actions", "message_action", "shortcut")
        if (wants_url or "response_url" in payload) and not payload.get("response_url"):
            channel = (payload.get("channel") or {}).get("id")
            message_ts = (payload.get("container") or {}).get("message_ts")
            user = (payload.get("user") or {}).get("id")
            payload["response_url"] = self._new_response_url(
                "actions", {"channel": channel, "message_ts": message_ts, "user": user}
            )
        accepts = payload.get("type") in ("view_submission",)
        return await self.push_envelope(
            "interactive", payload, accepts_response_payload=accepts, timeout=timeout
        )

    def block_actions_payload(
        self,
        action_id: str,
        value: str | None = None,
        user_id: str = "U1",
        channel: str = "C1",
        message_ts: str | None = None,
        thread_ts: str | None = None,
        blocks: list[dict] | None = None,
        **kwargs: Any,
    ) -> dict:
        """Like the module-level helper, but takes text/blocks/thread_ts from the stored
        message at ``message_ts`` when it exists."""
        stored = self._find(channel, message_ts) if message_ts else None
        if stored is not None:
            if blocks is None and stored.get("blocks"):
                blocks = copy.deepcopy(stored["blocks"])
            thread_ts = thread_ts or stored.get("thread_ts")
            kwargs.setdefault("message_text", stored.get("text", ""))
        return block_actions_payload(
            action_id, value, user_id, channel, message_ts, thread_ts, blocks, **kwargs
        )

    async def disconnect_clients(
        self,
        *,
        send_disconnect_message: bool = False,
        reason: str = "refresh_requested",
        code: int = 1000,
    ) -> None:
        """Close every open Socket Mode connection (optionally after Slack's
        ``{"type": "disconnect"}`` message). slack_sdk reconnects via apps.connections.open;
        use ``wait_connected(count=previous_total + 1)`` to wait for that."""
        for conn in list(self._conns):
            if send_disconnect_message and not conn.ws.closed:
                await conn.ws.send_str(
                    json.dumps(
                        {
                            "type": "disconnect",
                            "reason": reason,
                            "debug_info": {"host": "applink-fake"},
                        }
                    )
                )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()), 2.0)
        self._bump()

    # ---------------------------------------------------------------- socket mode: server side

    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets or self._closed:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        self.connection_count += 1
        conn = _Conn(ws=ws, ticket=ticket, number=self.connection_count)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._conns) + 1,
                    "debug_info": {
                        "host": f"applink-fake-{conn.number}",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        self._conns.append(conn)
        self._bump()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_client_frame(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
            self._bump()
        return ws

    def _on_client_frame(self, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            self.client_messages.append(data)
            return
        self.client_messages.append(frame)
        if isinstance(frame, dict) and "envelope_id" in frame:
            self.acks.append(Ack(frame["envelope_id"], frame.get("payload"), time.monotonic()))
            self._bump()

    def _record_event_side_effects(self, event: dict) -> None:
        """Keep channel history in sync with pushed message events."""
        etype, subtype, channel = event.get("type"), event.get("subtype"), event.get("channel")
        if etype == "assistant_thread_started":
            thread = event.get("assistant_thread") or {}
            ch, ts = thread.get("channel_id"), thread.get("thread_ts")
            if ch and ts and self._find(ch, ts) is None:
                # Slack creates the (system) root message of an AI-app thread.
                root = {
                    "type": "message",
                    "subtype": "assistant_app_thread",
                    "user": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "text": "New Assistant Thread",
                    "ts": ts,
                    "thread_ts": ts,
                    "assistant_app_thread": {"title": "", "title_blocks": [], "artifacts": []},
                }
                self._insert(ch, root, "event")
            return
        if not isinstance(channel, str) or not channel:
            return
        if (
            etype in ("message", "app_mention")
            and subtype in (None, "bot_message", "thread_broadcast", "file_share")
            and event.get("ts")
        ):
            if self._find(channel, event["ts"]) is None:
                msg = {
                    k: v
                    for k, v in event.items()
                    if k not in ("channel", "event_ts", "channel_type")
                }
                self._insert(channel, copy.deepcopy(msg), "event")
        elif etype == "message" and subtype == "message_changed":
            new = event.get("message") or {}
            stored = self._find(channel, new.get("ts", ""))
            if stored is not None:
                stored.update(copy.deepcopy(new))
        elif etype == "message" and subtype == "message_deleted":
            self._remove(channel, event.get("deleted_ts", ""))

    # ---------------------------------------------------------------- response_url

    def _new_response_url(self, kind: str, ctx: dict) -> str:
        hook = str(next(self._counter) + 1_000_000)
        secret = secrets.token_hex(12)
        self._response_urls[f"{hook}/{secret}"] = ctx
        return f"{self.base_url}/{kind}/{TEAM_ID}/{hook}/{secret}"

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        raw = await request.text()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw}
        ctx = self._response_urls.get(
            f"{request.match_info['hook']}/{request.match_info['secret']}"
        )
        call = ApiCall(
            method="response_url",
            args=body,
            token=None,
            at=at,
            http_method=request.method,
            content_type=request.content_type,
            path=request.path,
        )
        if ctx is None:
            call.status, call.response = 404, "invalid response_url"
            self.calls.append(call)
            self._bump()
            return web.Response(status=404, text="invalid response_url")
        try:
            self._apply_response_url(ctx, body)
        except Exception as e:  # pragma: no cover - fake bug
            self.server_errors.append(f"response_url: {e!r}")
            logger.exception("FakeSlack response_url handler failed")
        call.response = "ok"
        self.calls.append(call)
        self._bump()
        return web.Response(text="ok")

    def _apply_response_url(self, ctx: dict, body: dict) -> None:
        channel = ctx.get("channel")
        if not channel or not isinstance(body, dict):
            return
        if _truthy(body.get("delete_original")):
            if ctx.get("message_ts"):
                self._remove(channel, ctx["message_ts"])
            return
        if _truthy(body.get("replace_original")) and ctx.get("message_ts"):
            stored = self._find(channel, ctx["message_ts"])
            if stored is not None:
                if "text" in body:
                    stored["text"] = body["text"]
                stored["blocks"] = body.get("blocks") or _rich_text_blocks(body.get("text", ""))
                stored["edited"] = {"user": BOT_USER_ID, "ts": new_ts()}
            return
        if body.get("response_type") == "in_channel":
            self._insert(
                channel,
                self._bot_message(
                    body.get("text", ""), body.get("blocks"), body.get("thread_ts"), channel=channel
                ),
                "api",
            )
        else:
            self.ephemeral_messages.append(
                {
                    "channel": channel,
                    "user": ctx.get("user"),
                    "text": body.get("text", ""),
                    "blocks": body.get("blocks"),
                    "thread_ts": body.get("thread_ts"),
                    "ts": new_ts(),
                    "via": "response_url",
                }
            )

    # ---------------------------------------------------------------- Web API

    async def _parse_args(self, request: web.Request) -> dict:
        args: dict[str, Any] = dict(request.query)
        if request.method in ("POST", "PUT"):
            ctype = request.content_type
            if ctype == "application/json":
                raw = await request.text()
                if raw:
                    body = json.loads(raw)
                    if isinstance(body, dict):
                        args.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for k, v in form.items():
                    if isinstance(v, FileField):
                        args[k] = {
                            "filename": v.filename,
                            "content_type": v.content_type,
                            "size": len(v.file.read()),
                        }
                    else:
                        args[k] = v
        for k in _JSON_ARGS:
            raw_arg = args.get(k)
            if isinstance(raw_arg, str) and raw_arg[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    args[k] = json.loads(raw_arg)
        return args

    async def _handle_api(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        method = request.match_info["method"]
        try:
            args = await self._parse_args(request)
        except ValueError:
            args = {}
            body: Any = {"ok": False, "error": "invalid_json"}
            return self._finish(request, method, args, None, at, 200, body, {})

        token: str | None = None
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if "token" in args:
            token = token or args["token"]
            args.pop("token")

        delay = self._latency.get(method, self._latency.get("*", 0.0))
        if delay:
            await asyncio.sleep(delay)

        headers: dict[str, str] = {"x-slack-req-id": secrets.token_hex(16)}
        fault = self._take_fault(method, args)
        if fault is not None:
            body = {"ok": False, "error": fault.error, **fault.extra}
            if fault.status == 429 and fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            return self._finish(request, method, args, token, at, fault.status, body, headers)

        retry_after = self._over_rate(method, at)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            body = {"ok": False, "error": "ratelimited"}
            return self._finish(request, method, args, token, at, 429, body, headers)

        auth_error = self._auth_error(method, token)
        if auth_error:
            body = {"ok": False, "error": auth_error}
            return self._finish(request, method, args, token, at, 200, body, headers)

        if token and token.startswith("xoxb-"):
            headers["x-oauth-scopes"] = BOT_SCOPES

        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        status = 200
        try:
            if handler is None:
                self.unknown_methods.append(method)
                body = {"ok": True}
            else:
                body = handler(args, token)
        except _ApiError as e:
            body = {"ok": False, "error": e.error, **e.extra}
        except Exception as e:
            self.server_errors.append(f"{method}: {e!r}")
            logger.exception("FakeSlack handler for %s failed", method)
            status, body = 500, {"ok": False, "error": "fatal_error"}
        return self._finish(request, method, args, token, at, status, body, headers)

    def _finish(
        self,
        request: web.Request,
        method: str,
        args: dict,
        token: str | None,
        at: float,
        status: int,
        body: Any,
        headers: dict[str, str],
    ) -> web.Response:
        self.calls.append(
            ApiCall(
                method=method,
                args=args,
                token=token,
                at=at,
                http_method=request.method,
                content_type=request.content_type,
                path=request.path,
                status=status,
                response=copy.deepcopy(body),
            )
        )
        self._bump()
        return web.json_response(body, status=status, headers=headers)

    def _over_rate(self, method: str, at: float) -> int | None:
        """Seconds to wait when ``method`` is past its budget for the window, else None (and
        the call is counted)."""
        limit = self.rate_limits.get(method)
        if limit is None:
            return None
        calls = self._rate_calls.setdefault(method, [])
        calls[:] = [t for t in calls if t > at - self.rate_window]
        if len(calls) >= limit:
            return max(1, int(calls[0] + self.rate_window - at + 0.999))
        calls.append(at)
        return None

    def _take_fault(self, method: str, args: dict) -> _Fault | None:
        for key in (method, "*"):
            for f in self._faults.get(key, []):
                if f.remaining > 0 and (f.when is None or f.when(args)):
                    f.remaining -= 1
                    if f.remaining == 0:
                        self._faults[key].remove(f)
                    return f
        return None

    def _auth_error(self, method: str, token: str | None) -> str | None:
        if method in _NO_AUTH_METHODS:
            return None
        if not token:
            return "not_authed"
        if self.valid_tokens is not None and token not in self.valid_tokens:
            return "invalid_auth"
        is_app = token.startswith("xapp-")
        is_bot_or_user = token.startswith(("xoxb-", "xoxp-"))
        if not (is_app or is_bot_or_user):
            return "invalid_auth"
        if method in _APP_TOKEN_METHODS:
            return None if is_app else "not_allowed_token_type"
        return "not_allowed_token_type" if is_app else None

    # ---------------------------------------------------------------- store helpers

    def _find(self, channel: str, ts: str) -> dict | None:
        for m in self._store.get(channel, []):
            if m["ts"] == ts:
                return m
        return None

    def _insert(self, channel: str, msg: dict, origin: str) -> dict:
        lst = self._store.setdefault(channel, [])
        lst.append(msg)
        lst.sort(key=lambda m: float(m["ts"]))
        self._origin[(channel, msg["ts"])] = origin
        parent_ts = msg.get("thread_ts")
        if parent_ts and parent_ts != msg["ts"]:
            parent = self._find(channel, parent_ts)
            if parent is not None:
                parent["thread_ts"] = parent_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                users = parent.setdefault("reply_users", [])
                author = msg.get("user") or msg.get("bot_id")
                if author and author not in users:
                    users.append(author)
                parent["reply_users_count"] = len(users)
                parent["latest_reply"] = msg["ts"]
                msg.setdefault("parent_user_id", parent.get("user"))
        self._bump()
        return msg

    def _remove(self, channel: str, ts: str) -> bool:
        lst = self._store.get(channel, [])
        for i, m in enumerate(lst):
            if m["ts"] == ts:
                del lst[i]
                self._origin.pop((channel, ts), None)
                self._bump()
                return True
        return False

    def _bot_message(
        self,
        text: str,
        blocks: list[dict] | None,
        thread_ts: str | None,
        *,
        channel: str,
        metadata: dict | None = None,
        attachments: list | None = None,
        ts: str | None = None,
    ) -> dict:
        msg: dict[str, Any] = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": ts or new_ts(),
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": text or "",
            "team": TEAM_ID,
            "bot_profile": {
                "id": BOT_ID,
                "app_id": APP_ID,
                "name": BOT_NAME,
                "icons": {"image_48": "https://example.invalid/bot_48.png"},
                "deleted": False,
                "team_id": TEAM_ID,
            },
            "blocks": copy.deepcopy(blocks)
            if blocks
            else (_rich_text_blocks(text) if text else []),
        }
        if attachments:
            msg["attachments"] = copy.deepcopy(attachments)
        if thread_ts:
            msg["thread_ts"] = thread_ts
        if metadata:
            msg["metadata"] = copy.deepcopy(metadata)
        return msg

    def _default_channel_info(self, channel_id: str) -> dict:
        is_im = channel_id.startswith("D")
        info: dict[str, Any] = {
            "id": channel_id,
            "created": 1690000000,
            "is_archived": False,
            "is_org_shared": False,
            "is_shared": False,
            "is_ext_shared": False,
            "context_team_id": TEAM_ID,
            "updated": 1690000000000,
        }
        if is_im:
            info.update(
                {
                    "is_im": True,
                    "is_channel": False,
                    "is_group": False,
                    "is_private": True,
                    "user": "U1",
                    "is_open": True,
                    "is_member": True,
                }
            )
        else:
            name = channel_id.lower()
            private = channel_id.startswith("G")
            info.update(
                {
                    "name": name,
                    "name_normalized": name,
                    "is_channel": not private,
                    "is_group": private,
                    "is_im": False,
                    "is_mpim": False,
                    "is_private": private,
                    "is_general": False,
                    "is_member": True,
                    "creator": "U1",
                    "topic": {"value": "", "creator": "", "last_set": 0},
                    "purpose": {"value": "", "creator": "", "last_set": 0},
                    "num_members": 5,
                }
            )
        return info

    def _channel_info(self, channel_id: str | None) -> dict | None:
        if not channel_id:
            return None
        if channel_id in self.channels:
            return self.channels[channel_id]
        if channel_id[:1] in ("C", "G", "D"):
            return self._default_channel_info(channel_id)
        return None

    def _resolve_channel(self, channel: str | None, *, for_write: bool = True) -> str:
        """Channel id checks; a user id (U.../W...) means 'DM with that user'."""
        if channel and channel[:1] in ("U", "W") and channel not in self.channels:
            return "D" + channel
        info = self._channel_info(channel)
        if info is None:
            raise _ApiError("channel_not_found")
        if for_write:
            if info.get("is_archived"):
                raise _ApiError("is_archived")
            if not info.get("is_member", True):
                raise _ApiError("not_in_channel")
        return channel  # type: ignore[return-value]

    def _default_user_info(self, user_id: str) -> dict:
        is_bot = user_id == BOT_USER_ID
        name = BOT_NAME if is_bot else user_id.lower()
        real = "Sales Agent" if is_bot else f"Rep {user_id}"
        return {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real,
            "tz": "America/New_York",
            "tz_label": "Eastern Standard Time",
            "tz_offset": -18000,
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1690000000,
            "profile": {
                "real_name": real,
                "real_name_normalized": real,
                "display_name": name,
                "display_name_normalized": name,
                "title": "" if is_bot else "Account Executive",
                "email": None if is_bot else f"{user_id.lower()}@acme-sales.example",
                "image_72": "https://example.invalid/avatar_72.png",
                "team": TEAM_ID,
                **({"bot_id": BOT_ID} if is_bot else {}),
            },
        }

    # ---------------------------------------------------------------- blocks validation

    def _validate_blocks(self, blocks: Any, limit: int = 50) -> None:
        """A light subset of Slack's Block Kit validation (the limits bots trip over)."""
        if blocks is None or not self.strict_blocks:
            return
        if not isinstance(blocks, list):
            raise _ApiError("invalid_blocks_format")
        problems: list[str] = []

        def err(msg: str, pointer: str) -> None:
            problems.append(f"[ERROR] {msg} [json-pointer:{pointer}]")

        def max_len(value: Any, most: int, pointer: str) -> None:
            if len(str(value or "")) > most:
                err(f"must be less than {most + 1} characters", pointer)

        def max_items(items: Any, most: int, pointer: str) -> None:
            if len(items or []) > most:
                err(f"no more than {most} items allowed", pointer)

        max_items(blocks, limit, "/blocks")
        seen_ids: set[str] = set()
        for i, b in enumerate(blocks):
            p = f"/blocks/{i}"
            if not isinstance(b, dict) or not isinstance(b.get("type"), str):
                err("missing required field: type", p)
                continue
            bid = b.get("block_id")
            if bid is not None:
                max_len(bid, 255, f"{p}/block_id")
                if bid in seen_ids:
                    err("duplicate block_id", f"{p}/block_id")
                seen_ids.add(bid)
            t = b["type"]
            if t == "section":
                text, fields = b.get("text"), b.get("fields") or []
                if text is None and not fields:
                    err("must provide either text or fields", p)
                if isinstance(text, dict):
                    max_len(text.get("text"), 3000, f"{p}/text/text")
                    if not text.get("text"):
                        err("must be more than 0 characters", f"{p}/text/text")
                max_items(fields, 10, f"{p}/fields")
                for j, f in enumerate(fields):
                    if isinstance(f, dict):
                        max_len(f.get("text"), 2000, f"{p}/fields/{j}/text")
            elif t == "header":
                text = b.get("text") or {}
                if text.get("type") != "plain_text":
                    err("must be plain_text", f"{p}/text/type")
                max_len(text.get("text"), 150, f"{p}/text/text")
            elif t == "context":
                max_items(b.get("elements"), 10, f"{p}/elements")
            elif t == "actions":
                els = b.get("elements") or []
                if not els:
                    err("must provide at least 1 element", f"{p}/elements")
                max_items(els, 25, f"{p}/elements")
                for j, el in enumerate(els):
                    if not isinstance(el, dict):
                        continue
                    ep = f"{p}/elements/{j}"
                    if el.get("type") == "button":
                        max_len((el.get("text") or {}).get("text"), 75, f"{ep}/text/text")
                        max_len(el.get("value"), 2000, f"{ep}/value")
                    max_len(el.get("action_id"), 255, f"{ep}/action_id")
            elif t == "markdown":
                max_len(b.get("text"), 12000, f"{p}/text")
        if problems:
            raise _ApiError("invalid_blocks", response_metadata={"messages": problems})

    # ---------------------------------------------------------------- Web API methods

    def _m_api_test(self, args: dict, token: str | None) -> dict:
        return {"ok": True, "args": args}

    def _m_auth_test(self, args: dict, token: str | None) -> dict:
        base = {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "team_id": TEAM_ID,
            "is_enterprise_install": False,
        }
        if token and token.startswith("xoxp-"):
            return {**base, "user": "u1", "user_id": "U1"}
        return {**base, "user": BOT_NAME, "user_id": BOT_USER_ID, "bot_id": BOT_ID}

    def _m_apps_connections_open(self, args: dict, token: str | None) -> dict:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {
            "ok": True,
            "url": f"ws://{self.host}:{self.port}/link?ticket={ticket}&app_id={APP_ID}",
        }

    def _require_text(self, args: dict) -> str:
        text = args.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        if not (text or args.get("blocks") or args.get("attachments") or args.get("markdown_text")):
            raise _ApiError("no_text")
        if text and len(text) > 40000:
            raise _ApiError("msg_too_long")
        if args.get("markdown_text") and len(args["markdown_text"]) > 12000:
            raise _ApiError("msg_too_long")
        self._validate_blocks(args.get("blocks"))
        return text or args.get("markdown_text") or ""

    def _m_chat_postMessage(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        text = self._require_text(args)
        msg = self._bot_message(
            text,
            args.get("blocks"),
            args.get("thread_ts") or None,
            channel=channel,
            metadata=args.get("metadata"),
            attachments=args.get("attachments"),
        )
        self._insert(channel, msg, "api")
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _m_chat_update(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        stored = self._find(channel, args.get("ts", ""))
        if stored is None:
            raise _ApiError("message_not_found")
        if stored.get("bot_id") != BOT_ID:
            raise _ApiError("cant_update_message")
        if "text" in args or "blocks" in args or "markdown_text" in args:
            if args.get("text") and len(args["text"]) > 40000:
                raise _ApiError("msg_too_long")
            self._validate_blocks(args.get("blocks"))
        if "text" in args:
            stored["text"] = args["text"]
        if "markdown_text" in args:
            stored["text"] = args["markdown_text"]
        if "blocks" in args:
            stored["blocks"] = copy.deepcopy(args["blocks"]) or []
        if "attachments" in args:
            stored["attachments"] = copy.deepcopy(args["attachments"])
        if "metadata" in args:
            stored["metadata"] = copy.deepcopy(args["metadata"])
        stored["edited"] = {"user": BOT_USER_ID, "ts": new_ts()}
        self._bump()
        return {
            "ok": True,
            "channel": channel,
            "ts": stored["ts"],
            "text": stored["text"],
            "message": copy.deepcopy(stored),
        }

    def _m_chat_delete(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"), for_write=False)
        stored = self._find(channel, args.get("ts", ""))
        if stored is None:
            raise _ApiError("message_not_found")
        if stored.get("bot_id") != BOT_ID:
            raise _ApiError("cant_delete_message")
        self._remove(channel, stored["ts"])
        return {"ok": True, "channel": channel, "ts": stored["ts"]}

    def _m_chat_postEphemeral(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        if not args.get("user"):
            raise _ApiError("user_not_in_channel")
        text = self._require_text(args)
        ts = new_ts()
        self.ephemeral_messages.append(
            {
                "channel": channel,
                "user": args["user"],
                "text": text,
                "blocks": copy.deepcopy(args.get("blocks")),
                "thread_ts": args.get("thread_ts"),
                "ts": ts,
                "via": "chat.postEphemeral",
            }
        )
        self._bump()
        return {"ok": True, "message_ts": ts}

    def _m_chat_getPermalink(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"), for_write=False)
        ts = args.get("message_ts", "")
        if self._find(channel, ts) is None:
            raise _ApiError("message_not_found")
        p_ts = ts.replace(".", "")
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{p_ts}",
        }

    # -- streaming

    def _stream_chunks_text(self, args: dict, record: StreamRecord) -> None:
        md = args.get("markdown_text")
        if md:
            if len(md) > 12000:
                raise _ApiError("msg_too_long")
            record.text += md
        chunks = args.get("chunks") or []
        if not isinstance(chunks, list):
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] chunks must be an array"]},
            )
        for ch in chunks:
            if not isinstance(ch, dict) or "type" not in ch:
                raise _ApiError("invalid_chunks")
            if ch["type"] == "markdown_text":
                if len(ch.get("text", "")) > 12000:
                    raise _ApiError("msg_too_long")
                record.text += ch.get("text", "")
            record.chunks.append(copy.deepcopy(ch))

    def _m_chat_startStream(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"))
        thread_ts = args.get("thread_ts")
        missing = []
        if not thread_ts:
            missing.append("thread_ts")
        if self.require_stream_recipients and channel[:1] in ("C", "G"):
            missing += [k for k in ("recipient_user_id", "recipient_team_id") if not args.get(k)]
        if missing:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={
                    "messages": [f"[ERROR] missing required field: {k}" for k in missing]
                },
            )
        ts = new_ts()
        record = StreamRecord(
            channel=channel,
            ts=ts,
            thread_ts=thread_ts,
            recipient_user_id=args.get("recipient_user_id"),
            recipient_team_id=args.get("recipient_team_id"),
            start_args=copy.deepcopy(args),
        )
        self._stream_chunks_text(args, record)
        self.streams[ts] = record
        msg = self._bot_message("", None, thread_ts, channel=channel, ts=ts)
        msg["text"] = record.text
        self._insert(channel, msg, "api")
        return {"ok": True, "channel": channel, "ts": ts}

    def _stream_for(self, args: dict) -> tuple[StreamRecord, dict]:
        channel = self._resolve_channel(args.get("channel"), for_write=False)
        ts = args.get("ts", "")
        record = self.streams.get(ts)
        stored = self._find(channel, ts)
        if record is None or stored is None or record.channel != channel:
            raise _ApiError("message_not_found")
        if record.state == "streaming" and (
            time.monotonic() - record.started_at > self.stream_lifetime
        ):
            record.state = "expired"  # Slack closed it
        if record.state != "streaming":
            raise _ApiError("message_not_in_streaming_state")
        return record, stored

    def _m_chat_appendStream(self, args: dict, token: str | None) -> dict:
        record, stored = self._stream_for(args)
        self._stream_chunks_text(args, record)
        record.append_calls += 1
        stored["text"] = record.text
        self._bump()
        return {"ok": True, "channel": record.channel, "ts": record.ts}

    def _m_chat_stopStream(self, args: dict, token: str | None) -> dict:
        record, stored = self._stream_for(args)
        self._validate_blocks(args.get("blocks"))
        self._stream_chunks_text(args, record)
        record.state = "stopped"
        record.blocks = copy.deepcopy(args.get("blocks"))
        record.metadata = copy.deepcopy(args.get("metadata"))
        stored["text"] = record.text
        stored["blocks"] = copy.deepcopy(args.get("blocks")) or []
        if record.metadata:
            stored["metadata"] = copy.deepcopy(record.metadata)
        self._bump()
        return {
            "ok": True,
            "channel": record.channel,
            "ts": record.ts,
            "message": copy.deepcopy(stored),
        }

    # -- assistant

    def _thread_key(self, args: dict) -> tuple[str, str]:
        channel_id, thread_ts = args.get("channel_id"), args.get("thread_ts")
        if not channel_id or not thread_ts:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={
                    "messages": ["[ERROR] missing required field: channel_id/thread_ts"]
                },
            )
        if self._channel_info(channel_id) is None:
            raise _ApiError("channel_not_found")
        return channel_id, thread_ts

    def _m_assistant_threads_setStatus(self, args: dict, token: str | None) -> dict:
        key = self._thread_key(args)
        if "status" not in args:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: status"]},
            )
        self.thread_statuses.setdefault(key, []).append(args["status"])
        return {"ok": True}

    def _m_assistant_threads_setSuggestedPrompts(self, args: dict, token: str | None) -> dict:
        key = self._thread_key(args)
        prompts = args.get("prompts")
        if not isinstance(prompts, list) or not prompts or len(prompts) > 4:
            raise _ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] prompts: 1-4 items"]}
            )
        for p in prompts:
            if not isinstance(p, dict) or not p.get("title") or not p.get("message"):
                raise _ApiError(
                    "invalid_arguments",
                    response_metadata={"messages": ["[ERROR] prompt needs title+message"]},
                )
        self.suggested_prompts[key] = {
            "prompts": copy.deepcopy(prompts),
            "title": args.get("title"),
        }
        return {"ok": True}

    def _m_assistant_threads_setTitle(self, args: dict, token: str | None) -> dict:
        key = self._thread_key(args)
        self.thread_titles[key] = args.get("title", "")
        root = self._find(*key)
        if root is not None and root.get("subtype") == "assistant_app_thread":
            root["assistant_app_thread"]["title"] = args.get("title", "")
        return {"ok": True}

    # -- reactions

    def _m_reactions_add(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"), for_write=False)
        name = args.get("name")
        if not name:
            raise _ApiError("invalid_name")
        stored = self._find(channel, args.get("timestamp", ""))
        if stored is None:
            raise _ApiError("message_not_found")
        reactions = stored.setdefault("reactions", [])
        for r in reactions:
            if r["name"] == name:
                if BOT_USER_ID in r["users"]:
                    raise _ApiError("already_reacted")
                r["users"].append(BOT_USER_ID)
                r["count"] += 1
                break
        else:
            reactions.append({"name": name, "users": [BOT_USER_ID], "count": 1})
        self._bump()
        return {"ok": True}

    def _m_reactions_remove(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"), for_write=False)
        stored = self._find(channel, args.get("timestamp", ""))
        if stored is None:
            raise _ApiError("message_not_found")
        for r in stored.get("reactions", []):
            if r["name"] == args.get("name") and BOT_USER_ID in r["users"]:
                r["users"].remove(BOT_USER_ID)
                r["count"] -= 1
                if r["count"] == 0:
                    stored["reactions"].remove(r)
                if not stored["reactions"]:
                    del stored["reactions"]
                self._bump()
                return {"ok": True}
        raise _ApiError("no_reaction")

    # -- conversations / users

    def _public(self, msg: dict, include_metadata: bool) -> dict:
        m = copy.deepcopy(msg)
        if not include_metadata:
            m.pop("metadata", None)
        return m

    def _m_conversations_replies(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"), for_write=False)
        ts = args.get("ts")
        if not ts:
            raise _ApiError("invalid_arguments")
        lst = self._store.get(channel, [])
        parent = self._find(channel, ts)
        replies = [m for m in lst if m.get("thread_ts") == ts and m["ts"] != ts]
        if parent is None and not replies:
            raise _ApiError("thread_not_found")
        inclusive = _truthy(args.get("inclusive", False))
        oldest, latest = args.get("oldest"), args.get("latest")

        def in_range(m: dict) -> bool:
            t = float(m["ts"])
            if oldest is not None and (t < float(oldest) or (t == float(oldest) and not inclusive)):
                return False
            return not (
                latest is not None and (t > float(latest) or (t == float(latest) and not inclusive))
            )

        replies = [m for m in replies if in_range(m)]
        cursor = args.get("cursor")
        start = int(cursor.split(":")[1]) if cursor and cursor.startswith("next_ts:") else 0
        limit = int(args.get("limit") or 1000)
        page = replies[start : start + limit]
        has_more = start + limit < len(replies)
        meta = _truthy(args.get("include_all_metadata", False))
        messages = ([self._public(parent, meta)] if parent is not None and start == 0 else []) + [
            self._public(m, meta) for m in page
        ]
        body: dict[str, Any] = {"ok": True, "messages": messages, "has_more": has_more}
        if has_more:
            body["response_metadata"] = {"next_cursor": f"next_ts:{start + limit}"}
        return body

    def _m_conversations_history(self, args: dict, token: str | None) -> dict:
        channel = self._resolve_channel(args.get("channel"), for_write=False)
        meta = _truthy(args.get("include_all_metadata", False))
        top = [
            m
            for m in self._store.get(channel, [])
            if not m.get("thread_ts") or m["thread_ts"] == m["ts"]
        ]
        oldest, latest = args.get("oldest"), args.get("latest")
        if oldest is not None:
            top = [m for m in top if float(m["ts"]) > float(oldest)]
        if latest is not None:
            top = [m for m in top if float(m["ts"]) < float(latest)]
        top = list(reversed(top))
        limit = int(args.get("limit") or 100)
        return {
            "ok": True,
            "messages": [self._public(m, meta) for m in top[:limit]],
            "has_more": len(top) > limit,
        }

    def _m_conversations_info(self, args: dict, token: str | None) -> dict:
        info = self._channel_info(args.get("channel"))
        if info is None:
            raise _ApiError("channel_not_found")
        return {"ok": True, "channel": copy.deepcopy(info)}

    def _m_conversations_open(self, args: dict, token: str | None) -> dict:
        users = args.get("users") or ""
        if isinstance(users, list):
            users = ",".join(users)
        if not users and args.get("channel"):
            return {"ok": True, "channel": {"id": args["channel"]}}
        if not users:
            raise _ApiError("users_list_not_supplied")
        ids = [u for u in users.split(",") if u]
        dm = "D" + ids[0] if len(ids) == 1 else "G" + "".join(ids)
        return {
            "ok": True,
            "no_op": dm in self.channels,
            "already_open": dm in self.channels,
            "channel": {"id": dm},
        }

    def _m_users_info(self, args: dict, token: str | None) -> dict:
        user = args.get("user") or ""
        if user in self.users:
            return {"ok": True, "user": copy.deepcopy(self.users[user])}
        if user[:1] not in ("U", "W"):
            raise _ApiError("user_not_found")
        return {"ok": True, "user": self._default_user_info(user)}

    # -- views

    def _view_response(self, view: dict, view_id: str | None = None) -> dict:
        view_id = view_id or _short_id("V")
        out = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": view.get("type", "modal"),
            "blocks": copy.deepcopy(view.get("blocks", [])),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        self.views[view_id] = out
        return out

    def _checked_view(self, args: dict, limit: int = 100) -> dict:
        view = args.get("view")
        if not isinstance(view, dict) or not view.get("type"):
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: view"]},
            )
        self._validate_blocks(view.get("blocks", []), limit=limit)
        return view

    def _m_views_open(self, args: dict, token: str | None) -> dict:
        if not args.get("trigger_id") and not args.get("interactivity_pointer"):
            raise _ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] missing trigger_id"]}
            )
        return {"ok": True, "view": self._view_response(self._checked_view(args))}

    def _m_views_push(self, args: dict, token: str | None) -> dict:
        return self._m_views_open(args, token)

    def _m_views_update(self, args: dict, token: str | None) -> dict:
        view = self._checked_view(args)
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (k for k, v in self.views.items() if v.get("external_id") == args["external_id"]),
                None,
            )
        if not view_id or view_id not in self.views:
            raise _ApiError("not_found")
        return {"ok": True, "view": self._view_response(view, view_id)}

    def _m_views_publish(self, args: dict, token: str | None) -> dict:
        if not args.get("user_id"):
            raise _ApiError("invalid_arguments")
        return {"ok": True, "view": self._view_response(self._checked_view(args))}
