"""`/agent-stats [cache|reconcile|llm|latency|all]`: an ephemeral reply with real figures.
`/agent-deal`: the deal so far of the thread last coached for this user in this channel (a
slash command carries no thread), as an ephemeral reply.

The app runs with `process_before_response=True`, so the ack goes out when this listener
returns: the stats ride in the ack when they are ready within `stats_timeout`, otherwise the
ack says so and the figures follow through the command's `response_url`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from engine.card import deal_summary

from .. import blocks
from . import Deps

log = logging.getLogger("sales_agent.bot.commands")

COMMAND = "/agent-stats"
DEAL_COMMAND = "/agent-deal"
NO_DEAL = (
    "I haven't coached a thread for you in this channel yet. `/agent-deal` shows the deal of "
    "the latest thread I coached for you here; paste what a prospect said first."
)
REFUSAL = (
    "Sorry, `/agent-stats` is limited to the bot's admins in this workspace. "
    "Ask one of them if you need the figures."
)


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command(COMMAND)
    async def agent_stats(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        user = str(command.get("user_id") or "")
        admins = deps.config.admins
        if admins and user not in admins:
            refusal = blocks.notice(REFUSAL)
            await ack(response_type="ephemeral", text=refusal.text, blocks=refusal.blocks)
            return
        words = str(command.get("text") or "").split()
        section = words[0].lower() if words else "all"
        if len(words) > 1 or section not in (*blocks.STATS_SECTIONS, "all"):
            usage = blocks.notice(blocks.STATS_USAGE)
            await ack(response_type="ephemeral", text=usage.text, blocks=usage.blocks)
            return
        report = asyncio.ensure_future(deps.engine.stats())
        try:
            stats = await asyncio.wait_for(asyncio.shield(report), deps.config.stats_timeout)
        except TimeoutError:
            await ack(response_type="ephemeral", text="Crunching the numbers…")
            deps.runner.spawn(_respond_later(report, section, respond))
            return
        message = blocks.stats_message(stats, section)
        await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)

    @app.command(DEAL_COMMAND)
    async def agent_deal(ack: AsyncAck, command: dict[str, Any]) -> None:
        await _agent_deal(ack, command, deps)


async def _agent_deal(ack: AsyncAck, command: dict[str, Any], deps: Deps) -> None:
    key = await deps.engine.latest_thread(
        str(command.get("team_id") or ""),
        str(command.get("channel_id") or ""),
        str(command.get("user_id") or ""),
    )
    if key is None:
        message = blocks.notice(NO_DEAL)
    else:
        message = blocks.deal_message(deal_summary(await deps.engine.deal(key)))
    await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)


async def _respond_later(report: asyncio.Future[Any], section: str, respond: AsyncRespond) -> None:
    try:
        stats = await report
        message = blocks.stats_message(stats, section)
        await respond(response_type="ephemeral", text=message.text, blocks=message.blocks)
    except Exception as exc:
        log.warning("late /agent-stats answer failed: %s", type(exc).__name__)
