"""The response cache: exact and semantic tiers, the false-hit guard, embedders.

`open_cache(settings, ...)` builds the cache the settings ask for (None when SALES_AGENT_CACHE is
off) and reloads what storage kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ..ports import Embedder
from ..settings import Settings
from .embedders import build_embedder, threshold_for
from .fingerprint import answer_version
from .persistence import CachePersistence
from .response_cache import SuggestionLookup, TwoTierCache

__all__ = ["TwoTierCache", "build_cache", "open_cache"]


def build_cache(
    settings: Settings,
    *,
    persistence: CachePersistence | None = None,
    suggestion_of: SuggestionLookup | None = None,
    providers: Iterable[str] = (),
    knowledge: str = "",
    embedder: Embedder | Literal["from settings"] | None = "from settings",
) -> TwoTierCache | None:
    """`embedder`: one to share with others (None: no semantic tier)."""
    if not settings.cache:
        return None
    if embedder == "from settings":
        embedder = build_embedder(settings)
    return TwoTierCache(
        version=answer_version(settings, providers, knowledge),
        embedder=embedder,
        threshold=threshold_for(embedder, settings),
        ttl_s=settings.cache_ttl_s,
        max_entries=settings.cache_size,
        persistence=persistence,
        suggestion_of=suggestion_of,
    )


async def open_cache(
    settings: Settings,
    *,
    persistence: CachePersistence | None = None,
    suggestion_of: SuggestionLookup | None = None,
    providers: Iterable[str] = (),
    knowledge: str = "",
    embedder: Embedder | Literal["from settings"] | None = "from settings",
) -> TwoTierCache | None:
    cache = build_cache(
        settings,
        persistence=persistence,
        suggestion_of=suggestion_of,
        providers=providers,
        knowledge=knowledge,
        embedder=embedder,
    )
    if cache is not None:
        await cache.load()
    return cache
