"""The Slack side's settings, read from the environment once, in `app.py`, beside the engine's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.settings import EnvReader, Secret


@dataclass(frozen=True, slots=True)
class BotSettings:
    bot_token: Secret | None = None  # xoxb-…
    app_token: Secret | None = None  # xapp-…, for Socket Mode
    api_url: str | None = None  # the Web API base URL; tests point it at a fake Slack
    admins: frozenset[str] = field(default_factory=frozenset)  # empty: everyone
    http_port: int | None = None  # /healthz and /metrics on loopback; None: off
    # A turn's hold on its inbox row; another instance takes the row over once it runs out.
    inbox_lease_s: float = 30.0
    # This instance's own file for messages accepted while the database was down.
    spool_path: Path = Path("sales-agent-spool.db")

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token and self.app_token)

    @property
    def secrets(self) -> tuple[Secret | None, ...]:
        return (self.bot_token, self.app_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BotSettings:
        r = EnvReader(env)
        return cls(
            bot_token=r.secret("SLACK_BOT_TOKEN"),
            app_token=r.secret("SLACK_APP_TOKEN"),
            api_url=r.optional("SLACK_API_URL"),
            admins=frozenset(
                a.strip() for a in r.text("SALES_AGENT_ADMINS", "").split(",") if a.strip()
            ),
            http_port=r.optional_int("SALES_AGENT_HTTP_PORT"),
            inbox_lease_s=r.number("SALES_AGENT_INBOX_LEASE_S", 30.0, minimum=0.5),
            spool_path=Path(r.text("SALES_AGENT_SPOOL", "sales-agent-spool.db")),
        )
