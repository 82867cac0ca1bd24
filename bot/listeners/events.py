"""Events: which messages the bot answers, the agent surface, and the Home tab.

It answers DMs, @-mentions and any later message in a thread where it has answered. It ignores
its own messages and other bots, edits and deletes (including those its own `chat.update`s
cause), and channel chatter not addressed to it. Every subscribed event has a listener, so
every envelope is acked (bolt leaves unmatched ones unacked and Slack would retry them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from engine.inbox import InboxItem

from ..delivery import slack_error
from ..text import clean_incoming
from . import Deps

log = logging.getLogger("sales_agent.bot.events")

Reason = Literal["dm", "mention", "thread"]

# Message subtypes written by people; everything else (edits, deletes, joins, bots) is ignored.
_PEOPLE_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})

SUGGESTED_PROMPTS = [
    {
        "title": "Price objection",
        "message": "They said: honestly it's too expensive for us, we can't justify the cost.",
    },
    {
        "title": "Competitor mention",
        "message": "They said: we're already talking to Gong and they're cheaper.",
    },
    {
        "title": "Timing objection",
        "message": "They said: let's revisit this next quarter, we're swamped right now.",
    },
    {
        "title": "Decision maker",
        "message": "They said: I need to run this by my VP before we go any further.",
    },
]


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention")
    async def on_mention(
        body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest
    ) -> None:
        await consider(deps, body, event, request, mention_event=True)

    @app.event("message")
    async def on_message(
        body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest
    ) -> None:
        await consider(deps, body, event, request, mention_event=False)

    @app.event("assistant_thread_started")
    async def on_assistant_thread(event: dict[str, Any], client: AsyncWebClient) -> None:
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not channel or not thread_ts:
            return
        deps.runner.spawn(_suggest_prompts(client, channel, thread_ts))

    @app.event("assistant_thread_context_changed")
    async def on_context_changed() -> None:
        return None  # the thread key does not depend on the channel the rep is looking at

    @app.event("app_context_changed")
    async def on_app_context_changed() -> None:
        return None  # agent_view's "what the rep is viewing": the same, acked and ignored

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") == "home" and event.get("user"):
            deps.runner.spawn(_publish_home(client, event["user"]))


async def consider(
    deps: Deps,
    body: Mapping[str, Any],
    event: Mapping[str, Any],
    request: AsyncBoltRequest,
    *,
    mention_event: bool,
) -> bool:
    """Accept the message into the inbox when it is for the bot; True when a turn started."""
    bot_user = deps.identity.bot_user_id
    team = str(body.get("team_id") or event.get("team") or deps.identity.team_id)
    reason = addressed(event, bot_user, mention_event=mention_event)
    if (
        reason is None
        and _thread_reply(event)
        and await deps.runner.inbox.engaged(team, event["channel"], event["thread_ts"])
    ):
        reason = "thread"
    if reason is None:
        deps.metrics.events.labels("ignored").inc()
        return False
    retry = _header(request, "x-slack-retry-num")
    if retry not in (None, "", "0"):
        log.info(
            "Slack redelivered event %s (retry %s, %s)",
            body.get("event_id"),
            retry,
            _header(request, "x-slack-retry-reason"),
        )
    ts = str(event["ts"])
    channel = str(event["channel"])
    item = InboxItem(
        id=InboxItem.make_id(team, channel, ts),
        team=team,
        channel=channel,
        thread_ts=str(event.get("thread_ts") or ts),
        ts=ts,
        user=str(event.get("user") or ""),
        text=clean_incoming(str(event.get("text") or ""), bot_user),
        payload={
            "event_id": body.get("event_id"),
            "kind": reason,
            "files": len(event.get("files") or []),
            "channel_type": event.get("channel_type"),
        },
    )
    return await deps.runner.accept(item)


def addressed(
    event: Mapping[str, Any], bot_user_id: str, *, mention_event: bool = False
) -> Reason | None:
    """Why the bot should answer this event without looking anything up, or None."""
    if event.get("subtype") not in _PEOPLE_SUBTYPES:
        return None  # edits, deletes (ours included), joins, bot_message...
    if event.get("bot_id") or event.get("bot_profile"):
        return None  # ourselves (bolt drops most of these already) and other bots
    user = event.get("user")
    if not user or user == bot_user_id:
        return None
    if not event.get("channel") or not event.get("ts"):
        return None
    if mention_event:
        return "mention"
    if event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D"):
        return "dm"
    if f"<@{bot_user_id}" in str(event.get("text") or ""):
        return "mention"
    return None


def _thread_reply(event: Mapping[str, Any]) -> bool:
    thread_ts = event.get("thread_ts")
    return (
        bool(thread_ts)
        and thread_ts != event.get("ts")
        and event.get("subtype") in _PEOPLE_SUBTYPES
        and not (event.get("bot_id") or event.get("bot_profile"))
        and bool(event.get("user"))
        and bool(event.get("channel"))
    )


def _header(request: AsyncBoltRequest, name: str) -> str | None:
    values = request.headers.get(name)
    if not values:
        return None
    return str(values[0])


async def _suggest_prompts(client: AsyncWebClient, channel: str, thread_ts: str) -> None:
    try:
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=channel,
            thread_ts=thread_ts,
            title="Paste what the prospect said, or try one of these:",
            prompts=SUGGESTED_PROMPTS,
        )
    except SlackApiError as exc:
        log.info("could not set suggested prompts: %s", slack_error(exc))


async def _publish_home(client: AsyncWebClient, user: str) -> None:
    view = {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Sales Agent"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Paste what a prospect said and I'll name the situation, capture "
                    "the deal context and suggest a reply with a coaching tip.\n"
                    "• DM me, or open me from the AI apps bar\n"
                    "• @-mention me in a channel; keep talking in that thread, no mention needed\n"
                    "• `/agent-stats` shows cache, reconcile, provider and latency figures",
                },
            },
        ],
    }
    try:
        await client.views_publish(user_id=user, view=view)
    except SlackApiError as exc:
        log.info("could not publish the Home tab: %s", slack_error(exc))
