"""Card buttons: feedback (stored with the suggestion), Regenerate (a fresh answer that bypasses
the cache, replacing the card), Deal summary (the thread's qualification, posted in the thread)
and Reset context (after Slack's confirm dialog).

Each listener acks at once and leaves the work to a background task the runner tracks.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from engine.card import deal_summary
from engine.model import ThreadKey

from .. import blocks
from ..delivery import slack_error
from ..turns import METADATA_EVENT
from . import Deps

log = logging.getLogger("sales_agent.bot.actions")


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(blocks.FEEDBACK_UP)
    async def feedback_up(
        ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        deps.runner.spawn(_feedback(deps, action, body, respond, positive=True))

    @app.action(blocks.FEEDBACK_DOWN)
    async def feedback_down(
        ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        deps.runner.spawn(_feedback(deps, action, body, respond, positive=False))

    @app.action(blocks.REGENERATE)
    async def regenerate(
        ack: AsyncAck,
        action: dict[str, Any],
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        deps.runner.spawn(_regenerate(deps, action, body, respond, client))

    @app.action(blocks.DEAL_SUMMARY)
    async def deal_summary(
        ack: AsyncAck,
        action: dict[str, Any],
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        deps.runner.spawn(_deal(deps, action, body, respond, client))

    @app.action(blocks.RESET_CONTEXT)
    async def reset_context(
        ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        deps.runner.spawn(_reset(deps, action, body, respond))


async def _feedback(
    deps: Deps,
    action: dict[str, Any],
    body: dict[str, Any],
    respond: AsyncRespond,
    *,
    positive: bool,
) -> None:
    suggestion_id = str(action.get("value") or "")
    stored = await deps.engine.feedback(suggestion_id, positive)
    deps.metrics.feedback.labels("positive" if positive else "negative").inc()
    if stored:
        text = "Thanks! Glad it helped." if positive else "Thanks, noted: I'll do better."
    else:
        text = "I couldn't find that suggestion any more, so the feedback wasn't stored."
    await _tell(respond, text)


async def _regenerate(
    deps: Deps,
    action: dict[str, Any],
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
) -> None:
    suggestion_id = str(action.get("value") or "")
    channel = str((body.get("channel") or {}).get("id") or "")
    container = body.get("container") or {}
    message = body.get("message") or {}
    message_ts = str(container.get("message_ts") or message.get("ts") or "")
    thread_ts = str(message.get("thread_ts") or container.get("thread_ts") or message_ts)
    user = str((body.get("user") or {}).get("id") or "")
    if channel and thread_ts:
        try:
            await client.assistant_threads_setStatus(
                channel_id=channel, thread_ts=thread_ts, status=deps.config.status_text
            )
        except SlackApiError as exc:
            log.debug("no status for regenerate: %s", slack_error(exc))
    try:
        fresh = await deps.engine.regenerate(suggestion_id)
    except Exception as exc:
        log.exception("regenerate failed: %s", type(exc).__name__)
        await _tell(respond, "Sorry, I couldn't regenerate that one. Try again in a moment.")
        return
    if fresh is None:
        await _tell(respond, "I couldn't find the message behind that card any more.")
        return
    deps.metrics.observe_suggestion(fresh)
    deps.metrics.turns.labels("regenerated").inc()
    card = blocks.card(fresh, regenerated_by=user or None)
    try:
        await client.chat_update(
            channel=channel,
            ts=message_ts,
            text=card.text,
            blocks=card.blocks,
            metadata={
                "event_type": METADATA_EVENT,
                "event_payload": {"suggestion_id": fresh.id},
            },
        )
    except SlackApiError as exc:
        log.warning("could not update the card: %s", slack_error(exc))
        await _tell(respond, "I regenerated it but couldn't update the card.")


async def _reset(
    deps: Deps, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
) -> None:
    channel = str((body.get("channel") or {}).get("id") or "")
    try:
        key = ThreadKey.parse(str(action.get("value") or ""))
    except ValueError:
        await _tell(respond, "That button is out of date; I couldn't tell which thread it was.")
        return
    if key.channel != channel:
        log.warning("reset for another channel refused")
        return
    await deps.engine.reset(key)
    await _tell(
        respond,
        "Done: I've forgotten this thread's deal context. The next message starts fresh.",
    )


async def _deal(
    deps: Deps,
    action: dict[str, Any],
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
) -> None:
    """The deal so far, posted in the card's thread for everyone on the deal to see."""
    channel = str((body.get("channel") or {}).get("id") or "")
    try:
        key = ThreadKey.parse(str(action.get("value") or ""))
    except ValueError:
        await _tell(respond, "That button is out of date; I couldn't tell which thread it was.")
        return
    if key.channel != channel:
        log.warning("deal summary for another channel refused")
        return
    message = blocks.deal_message(deal_summary(await deps.engine.deal(key)))
    try:
        await client.chat_postMessage(
            channel=channel, thread_ts=key.thread, text=message.text, blocks=message.blocks
        )
    except SlackApiError as exc:
        log.warning("could not post the deal summary: %s", slack_error(exc))
        await _tell(respond, "I couldn't post the deal summary in the thread.")


async def _tell(respond: AsyncRespond, text: str) -> None:
    """An ephemeral note to whoever clicked, leaving the card as it is."""
    try:
        await respond(response_type="ephemeral", replace_original=False, text=text)
    except Exception as exc:
        log.info("could not answer the click: %s", type(exc).__name__)
