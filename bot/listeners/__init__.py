"""Bolt listeners, grouped by kind; each turns one Slack request into engine or runner calls."""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt.async_app import AsyncApp

from ..ops import Metrics
from ..turns import BotConfig, Coach, Identity, TurnRunner


@dataclass(frozen=True, slots=True)
class Deps:
    runner: TurnRunner
    engine: Coach
    config: BotConfig
    metrics: Metrics
    identity: Identity


def register(app: AsyncApp, deps: Deps) -> None:
    from . import actions, commands, events

    events.register(app, deps)
    commands.register(app, deps)
    actions.register(app, deps)
