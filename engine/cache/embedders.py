"""Choosing the embedder and its threshold from the settings.

`auto` takes OpenAI `text-embedding-3-small` when an OpenAI key is set, else the local
all-MiniLM-L6-v2 when its weights are installed, else nothing (the semantic tier is off and the
cache's stats say so). The local model loads on first use, in a worker thread, so commands that
never look anything up (stats, eval) do not pay for reading 90 MB of weights.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..ports import Embedder
from ..settings import Settings
from .minilm import EmbedderUnavailable, MiniLMEmbedder, default_model_dir

__all__ = [
    "DEFAULT_THRESHOLDS",
    "EmbedderUnavailable",
    "LazyEmbedder",
    "build_embedder",
    "threshold_for",
]

log = logging.getLogger(__name__)

# Cosine similarity from which a cached answer is a candidate for a reworded message (the
# false-hit guard still has to agree). OpenAI's is the design's value; MiniLM's was chosen from
# the curve `sales-agent guard` prints over engine/data/paraphrases.jsonl and hard_negatives.jsonl.
DEFAULT_THRESHOLDS = {
    "text-embedding-3-small": 0.92,
    "text-embedding-3-large": 0.92,
    MiniLMEmbedder.name: 0.70,
}


class LazyEmbedder:
    """An embedder built on first use (off the event loop); later calls go straight to it."""

    def __init__(self, name: str, dim: int, factory: Callable[[], Embedder]) -> None:
        self.name = name
        self.dim = dim
        self._factory = factory
        self._inner: Embedder | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    async def load(self) -> Embedder:
        if self._inner is None:
            async with self._lock:
                if self._inner is None:
                    self._inner = await asyncio.to_thread(self._factory)
        return self._inner

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        inner = self._inner or await self.load()
        return await inner.embed(texts)


def build_embedder(settings: Settings) -> Embedder | None:
    choice = settings.embedder
    if choice == "none":
        return None
    openai = settings.provider("openai")
    if choice == "openai" or (choice == "auto" and openai is not None):
        if openai is None or openai.api_key is None:
            log.warning("SALES_AGENT_EMBEDDER=openai but OPENAI_API_KEY is not set: semantic off")
            return None
        from .openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder(api_key=str(openai.api_key), base_url=openai.base_url)
    try:
        default_model_dir()
    except EmbedderUnavailable as exc:
        level = logging.WARNING if choice == "minilm" else logging.INFO
        log.log(level, "local embedder unavailable, semantic cache off: %s", exc)
        return None
    return LazyEmbedder(MiniLMEmbedder.name, MiniLMEmbedder.dim, MiniLMEmbedder)


def threshold_for(embedder: Embedder | None, settings: Settings | None = None) -> float | None:
    if embedder is None:
        return None
    if settings is not None and settings.semantic_threshold is not None:
        return settings.semantic_threshold
    return DEFAULT_THRESHOLDS.get(embedder.name, 0.92)
