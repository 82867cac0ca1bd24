"""Settings come from the environment once; a bad value is named, never silently used."""

import pytest

from bot.settings import BotSettings
from engine.settings import Settings, SettingsError


def test_defaults_need_nothing() -> None:
    s = Settings.from_env({})
    assert s.router == "hedge" and s.cache and not BotSettings.from_env({}).enabled
    assert s.provider("anthropic") is None and s.providers == ()


def test_secrets_never_show_in_reprs() -> None:
    env = {"OPENAI_API_KEY": "sk-very-secret-value", "SLACK_BOT_TOKEN": "xoxb-1"}
    s, bot = Settings.from_env(env), BotSettings.from_env(env)
    assert "sk-very-secret-value" not in repr(s) and "xoxb-1" not in repr(bot)
    openai = s.provider("openai")
    assert openai is not None and openai.api_key == "sk-very-secret-value"
    assert (openai.name, openai.base_url, openai.fast_model) == ("openai", None, "gpt-4o-mini")
    assert bot.bot_token == "xoxb-1" and not bot.enabled


def test_slack_settings_are_the_bots_not_the_engines() -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_APP_TOKEN": "xapp-1",
        "SALES_AGENT_ADMINS": " U1, U2 ,,",
        "SALES_AGENT_HTTP_PORT": "8080",
        "SALES_AGENT_SPOOL": "/var/lib/sales-agent/spool.db",
    }
    bot = BotSettings.from_env(env)
    assert bot.enabled and bot.admins == {"U1", "U2"} and bot.http_port == 8080
    assert str(bot.spool_path) == "/var/lib/sales-agent/spool.db"
    assert str(BotSettings.from_env({}).spool_path) == "sales-agent-spool.db"
    assert not any("slack" in name or name in {"admins", "http_port"} for name in vars_of(Settings))
    with pytest.raises(SettingsError, match="SALES_AGENT_HTTP_PORT"):
        BotSettings.from_env({"SALES_AGENT_HTTP_PORT": "eighty"})


def vars_of(cls: type) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SALES_AGENT_LOG_LEVEL": "chatty"}, "SALES_AGENT_LOG_LEVEL"),
        ({"SALES_AGENT_TURN_BUDGET_S": "nan"}, "SALES_AGENT_TURN_BUDGET_S"),
        ({"SALES_AGENT_CACHE_SIZE": "lots"}, "SALES_AGENT_CACHE_SIZE"),
        ({"SALES_AGENT_SEMANTIC_THRESHOLD": "1.5"}, "SALES_AGENT_SEMANTIC_THRESHOLD"),
        ({"SALES_AGENT_ROUTER": "fastest"}, "SALES_AGENT_ROUTER"),
        ({"SALES_AGENT_CACHE": "maybe"}, "SALES_AGENT_CACHE"),
        ({"SALES_AGENT_ENDPOINTS": '[{"name": "x", "base_url": "http://x"}]'}, "needs name"),
        ({"SALES_AGENT_ENDPOINTS": "{not json"}, "SALES_AGENT_ENDPOINTS"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_extra_endpoints_take_their_key_from_the_named_variable() -> None:
    s = Settings.from_env(
        {
            "SALES_AGENT_ENDPOINTS": '[{"name": "ollama", "base_url": "http://127.0.0.1:11434/v1",'
            ' "model": "llama3.1", "key_env": "OLLAMA_KEY"}]',
            "OLLAMA_KEY": "local-key",
            "SALES_AGENT_LOG_LEVEL": "debug",
        }
    )
    [e] = s.providers
    assert e.kind == "openai_compatible"
    assert (e.name, e.fast_model, e.powerful_model, e.api_key) == (
        "ollama",
        "llama3.1",
        "llama3.1",
        "local-key",
    )
    assert s.log_level == "DEBUG"
