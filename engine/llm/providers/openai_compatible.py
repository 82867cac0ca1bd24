"""Any OpenAI-compatible endpoint (Gemini's, vLLM, Ollama, llama.cpp...) from
SALES_AGENT_ENDPOINTS: OpenAI's provider, with `max_tokens` where OpenAI's own API wants
`max_completion_tokens`."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from ..pool import PoolKind
from . import Connected
from . import openai as _openai

if TYPE_CHECKING:
    from ...settings import ProviderSettings


def connect(
    config: ProviderSettings, *, pool: PoolKind, verify: ssl.SSLContext | bool, timeout_s: float
) -> Connected:
    return _openai.connect(config, pool=pool, verify=verify, timeout_s=timeout_s, official=False)
