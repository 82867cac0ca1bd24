"""The provider registry: one row per provider, read by settings (which variables to read),
the factory (which module connects it), log redaction (what its keys look like) and the
response cache's answer version (through the configured providers settings built from it).

Adding a native provider: a module here with `connect` (see `Connector`), one row below, and
its test. The module is imported only when the provider is configured: the SDKs take a second
or more to import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, cast

if TYPE_CHECKING:
    import ssl

    from ...settings import ProviderSettings
    from ..pool import PoolKind
    from ..streaming import Connection, StreamingProvider

# The strongest way the API can be held to the output contract: a JSON schema it enforces
# (OpenAI `response_format` json_schema, strict; Anthropic `output_config.format`; llama.cpp,
# vLLM and Ollama compile it into a grammar), JSON mode (any one object), or nothing but the
# prompt. A provider that gets a 400 for it steps down once and remembers (engine/llm/base.py).
StructuredOutput = Literal["json_schema", "json_object", "none"]
STRUCTURED_OUTPUTS: tuple[StructuredOutput, ...] = ("json_schema", "json_object", "none")


@dataclass(frozen=True, slots=True)
class Connected:
    """One configured provider, connected: what it runs on, and its provider for a model."""

    connection: Connection
    provider: Callable[[str], StreamingProvider]


class Connector(Protocol):
    """The `connect` function of a provider module."""

    def __call__(
        self,
        config: ProviderSettings,
        *,
        pool: PoolKind,
        verify: ssl.SSLContext | bool,
        timeout_s: float,
    ) -> Connected: ...


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    # engine.llm.providers.<module>; its `connect` builds the client.
    module: str
    structured_output: StructuredOutput
    # Native providers are configured by their key variable; the others only through
    # SALES_AGENT_ENDPOINTS (a name, a base URL, models; a key is optional there).
    key_env: str | None = None
    base_url_env: str | None = None
    fast_model: str = ""
    powerful_model: str = ""
    # A regex for this provider's keys, masked in every log line even when the key is not
    # ours; its one group is the prefix left visible ("sk-ant-***").
    secret_shape: str | None = None

    @property
    def native(self) -> bool:
        return self.key_env is not None

    @property
    def fast_env(self) -> str:
        return f"SALES_AGENT_{self.name.upper()}_FAST"

    @property
    def powerful_env(self) -> str:
        return f"SALES_AGENT_{self.name.upper()}_POWERFUL"

    def connector(self) -> Connector:
        module = importlib.import_module(f"{__name__}.{self.module}")
        return cast("Connector", module.connect)


# Tier order: each tier lists the configured providers in this order, endpoints last.
PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        name="anthropic",
        module="anthropic",
        structured_output="json_schema",
        key_env="ANTHROPIC_API_KEY",
        base_url_env="ANTHROPIC_BASE_URL",
        fast_model="claude-3-5-haiku-latest",
        powerful_model="claude-sonnet-4-20250514",
        secret_shape=r"\b(sk-ant)-[A-Za-z0-9_-]{8,}",
    ),
    ProviderSpec(
        name="openai",
        module="openai",
        structured_output="json_schema",
        key_env="OPENAI_API_KEY",
        base_url_env="OPENAI_BASE_URL",
        fast_model="gpt-4o-mini",
        powerful_model="gpt-4o",
        secret_shape=r"\b(sk(?:-proj)?)-[A-Za-z0-9_-]{8,}",
    ),
    # Gemini's OpenAI endpoint, vLLM, Ollama and llama.cpp all take a json_schema
    # `response_format` (llama.cpp compiles it into a grammar); one that does not answers 400
    # and the provider steps down to JSON mode. An endpoint's own `structured` overrides it.
    ProviderSpec(
        name="openai_compatible", module="openai_compatible", structured_output="json_schema"
    ),
)

ENDPOINT_KIND = "openai_compatible"


def spec(name: str) -> ProviderSpec:
    for row in PROVIDERS:
        if row.name == name:
            return row
    raise KeyError(f"no provider {name!r} in the registry")
