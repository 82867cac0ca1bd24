"""The engine's typed settings, read from the environment once, in `app.py`, and passed down.

The Slack side reads its own (`bot/settings.py`) with the same `EnvReader`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .llm.providers import ENDPOINT_KIND, PROVIDERS, STRUCTURED_OUTPUTS, StructuredOutput, spec
from .model import PromptStyle

PipelineMode = Literal["parallel", "sequential"]
RouterMode = Literal["single", "race", "hedge"]
EmbedderChoice = Literal["auto", "openai", "minilm", "none"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(ValueError):
    """A variable is set to something we cannot use; the message names it."""


class Secret(str):
    """A string that never shows itself in reprs, logs or tracebacks of settings."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One configured provider: a native one of the registry (its key variable is set), or an
    extra OpenAI-compatible endpoint (Gemini, vLLM, Ollama...) that joins the race."""

    kind: str  # the registry row (engine/llm/providers)
    name: str  # in routes and call logs: the row's name, or the endpoint's
    api_key: Secret | None
    base_url: str | None
    fast_model: str
    powerful_model: str
    # How the API is held to the output contract; None: the registry row's setting.
    structured: StructuredOutput | None = None

    @classmethod
    def native(
        cls,
        kind: str,
        api_key: str,
        base_url: str | None = None,
        *,
        fast_model: str | None = None,
        powerful_model: str | None = None,
    ) -> ProviderSettings:
        """A native provider with the registry's default models unless given."""
        row = spec(kind)
        return cls(
            kind=kind,
            name=kind,
            api_key=Secret(api_key),
            base_url=base_url,
            fast_model=fast_model or row.fast_model,
            powerful_model=powerful_model or row.powerful_model,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    db_path: Path = Path("sales-agent.db")
    # postgresql://user:password@host/db: every store in Postgres (shared by instances).
    database_url: Secret | None = None
    # How long a busy, locked or unreachable database is waited for before a write fails.
    db_wait_s: float = 30.0
    max_message_chars: int = 4000
    history_window: int = 6
    pipeline: PipelineMode = "parallel"
    # Start generate on the offline tier's guess while capture and detect run (see Engine).
    speculative: bool = False
    reconcile_confidence: float = 0.7
    reconcile_max_new_slots: int = 3

    # LLM providers, in tier order: the registry's native ones whose key is set, then the
    # endpoints of SALES_AGENT_ENDPOINTS.
    providers: tuple[ProviderSettings, ...] = ()
    router: RouterMode = "hedge"
    tiering: bool = True
    prompt_style: PromptStyle = "compact"
    # One time budget per turn, shared by its steps (capture ∥ detect, reconcile, generate).
    turn_budget_s: float = 8.0

    # Response cache
    cache: bool = True
    cache_ttl_s: float = 3600.0
    cache_size: int = 1000
    embedder: EmbedderChoice = "auto"
    semantic_threshold: float | None = None

    # The company's knowledge: a directory of Markdown files (battlecards, pricing, FAQ...).
    knowledge_dir: Path | None = None
    # The company's own plays (engine/playbook_file.py), on top of the built-in ones.
    playbook_path: Path | None = None

    log_level: str = "INFO"

    def provider(self, kind: str) -> ProviderSettings | None:
        """The configured provider of one registry row, if any."""
        return next((p for p in self.providers if p.kind == kind), None)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        r = EnvReader(env)
        return cls(
            db_path=Path(r.text("SALES_AGENT_DB", "sales-agent.db")),
            database_url=_database_url(r.secret("DATABASE_URL")),
            db_wait_s=r.number("SALES_AGENT_DB_WAIT_S", 30.0, minimum=0.1),
            max_message_chars=r.integer("SALES_AGENT_MAX_CHARS", 4000, minimum=200),
            history_window=r.integer("SALES_AGENT_HISTORY", 6, minimum=0),
            pipeline=r.choice("SALES_AGENT_PIPELINE", "parallel", PipelineMode),
            speculative=r.flag("SALES_AGENT_SPECULATIVE", False),
            providers=(*_native(r), *_endpoints(r.optional("SALES_AGENT_ENDPOINTS"), env)),
            router=r.choice("SALES_AGENT_ROUTER", "hedge", RouterMode),
            tiering=r.flag("SALES_AGENT_TIERING", True),
            prompt_style=r.choice("SALES_AGENT_PROMPTS", "compact", PromptStyle),
            turn_budget_s=r.number("SALES_AGENT_TURN_BUDGET_S", 8.0, minimum=0.1),
            cache=r.flag("SALES_AGENT_CACHE", True),
            cache_ttl_s=r.number("SALES_AGENT_CACHE_TTL_S", 3600.0, minimum=0.0),
            cache_size=r.integer("SALES_AGENT_CACHE_SIZE", 1000, minimum=1),
            embedder=r.choice("SALES_AGENT_EMBEDDER", "auto", EmbedderChoice),
            semantic_threshold=_threshold(r.optional_float("SALES_AGENT_SEMANTIC_THRESHOLD")),
            log_level=r.choice("SALES_AGENT_LOG_LEVEL", "INFO", LogLevel, upper=True),
            knowledge_dir=_directory("SALES_AGENT_KNOWLEDGE", r.optional("SALES_AGENT_KNOWLEDGE")),
            playbook_path=_file("SALES_AGENT_PLAYBOOK", r.optional("SALES_AGENT_PLAYBOOK")),
        )


def _database_url(url: Secret | None) -> Secret | None:
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        # Never echo the value: it usually carries a password.
        raise SettingsError("DATABASE_URL must be a postgresql:// URL")
    return url


class EnvReader:
    """Typed reads of environment variables; a bad value raises SettingsError naming it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def secret(self, name: str) -> Secret | None:
        value = self.optional(name)
        return Secret(value) if value else None

    def integer(self, name: str, default: int, minimum: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {value}")
        return value

    def optional_int(self, name: str) -> int | None:
        return self.integer(name, 0) if self.optional(name) is not None else None

    def number(self, name: str, default: float, minimum: float | None = None) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise SettingsError(f"{name} must be a finite number, got {raw!r}")
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {value}")
        return value

    def optional_float(self, name: str) -> float | None:
        return self.number(name, 0.0) if self.optional(name) is not None else None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be on or off, got {raw!r}")

    def choice(self, name: str, default: str, options: Any, *, upper: bool = False) -> Any:
        allowed = get_args(options)
        value = self.text(name, default)
        value = value.upper() if upper else value
        if value not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value


def _directory(name: str, raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise SettingsError(f"{name} must be a directory of Markdown files; {raw!r} is not one")
    return path


def _file(name: str, raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(f"{name} must be a TOML file of plays; {raw!r} is not a file")
    return path


def _threshold(value: float | None) -> float | None:
    if value is not None and not 0.0 < value <= 1.0:
        raise SettingsError(f"SALES_AGENT_SEMANTIC_THRESHOLD must be in (0, 1], got {value}")
    return value


def _native(r: EnvReader) -> tuple[ProviderSettings, ...]:
    """Every native provider of the registry whose key variable is set."""
    found = []
    for row in PROVIDERS:
        key = r.secret(row.key_env) if row.key_env else None
        if key is None:
            continue
        found.append(
            ProviderSettings(
                kind=row.name,
                name=row.name,
                api_key=key,
                base_url=r.optional(row.base_url_env) if row.base_url_env else None,
                fast_model=r.text(row.fast_env, row.fast_model),
                powerful_model=r.text(row.powerful_env, row.powerful_model),
            )
        )
    return tuple(found)


def _endpoints(raw: str | None, env: Mapping[str, str]) -> tuple[ProviderSettings, ...]:
    """Extra endpoints: inline JSON, or the path of a JSON file, holding a list of objects
    {"name", "base_url", "key_env", "fast_model", "powerful_model", "structured"}; `structured`
    is json_schema (the default), json_object or none."""
    if raw is None:
        return ()
    text = raw
    if not raw.lstrip().startswith("["):
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"SALES_AGENT_ENDPOINTS: cannot read {path}: {exc}") from None
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"SALES_AGENT_ENDPOINTS is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise SettingsError("SALES_AGENT_ENDPOINTS must be a JSON list of endpoints")
    endpoints = []
    for i, item in enumerate(items):
        try:
            model = item.get("model")
            if not ((item.get("fast_model") or model) and (item.get("powerful_model") or model)):
                raise KeyError("model")
            key = env.get(item["key_env"], "") if item.get("key_env") else ""
            structured = item.get("structured")
            if structured is not None and structured not in STRUCTURED_OUTPUTS:
                raise SettingsError(
                    f"SALES_AGENT_ENDPOINTS item {i}: structured must be one of "
                    f"{', '.join(STRUCTURED_OUTPUTS)}; got {structured!r}"
                )
            endpoints.append(
                ProviderSettings(
                    kind=ENDPOINT_KIND,
                    name=str(item["name"]),
                    base_url=str(item["base_url"]),
                    api_key=Secret(key) if key else None,
                    fast_model=str(item.get("fast_model") or model),
                    powerful_model=str(item.get("powerful_model") or model),
                    structured=structured,
                )
            )
        except (KeyError, TypeError, AttributeError):
            raise SettingsError(
                f"SALES_AGENT_ENDPOINTS item {i} needs name, base_url and model "
                "(or fast_model and powerful_model)"
            ) from None
    return tuple(endpoints)
