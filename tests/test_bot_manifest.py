"""manifest.yml has what the bot uses: Socket Mode, scopes, events, the command, interactivity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.listeners.commands import COMMAND, DEAL_COMMAND
from bot.listeners.events import SUGGESTED_PROMPTS

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.timeout(10)


def manifest() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_manifest_is_complete_for_socket_mode() -> None:
    m = manifest()
    settings = m["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert set(settings["event_subscriptions"]["bot_events"]) >= {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "app_home_opened",
        "assistant_thread_started",
        "assistant_thread_context_changed",
    }
    assert set(m["oauth_config"]["scopes"]["bot"]) >= {
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "im:history",
        "chat:write",
        "commands",
        "reactions:write",
        "assistant:write",
    }
    commands = m["features"]["slash_commands"]
    assert [c["command"] for c in commands] == [COMMAND, DEAL_COMMAND]
    assert all("url" not in c for c in commands)  # Socket Mode: no URL
    # A slash command has no thread: its help says which deal it shows.
    assert "latest thread" in commands[1]["description"]
    assert m["features"]["app_home"]["messages_tab_enabled"] is True
    assert m["features"]["app_home"]["messages_tab_read_only_enabled"] is False
    # Slack's current agent surface: agent_view (assistant_view is being deprecated), with
    # the same suggested prompts the bot sets in each new thread.
    agent = m["features"]["agent_view"]
    assert agent["agent_description"] and "assistant_view" not in m["features"]
    assert agent["suggested_prompts"] == SUGGESTED_PROMPTS
    assert "app_context_changed" in settings["event_subscriptions"]["bot_events"]
    assert 175 <= len(m["display_information"]["long_description"]) <= 4000
