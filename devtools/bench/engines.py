"""Build an engine for one benchmark configuration, through the project's public APIs.

This is the one place the benchmark touches `engine.llm` (providers, router, factory) and
`engine.cache`; everything else sees an `Engine`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.cache import open_cache
from engine.llm.factory import build_llm
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import Provider, ResponseCache
from engine.settings import Settings
from storage import Store, open_store


@dataclass
class Built:
    engine: Engine
    store: Store
    cache: ResponseCache | None
    llm: Any
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()


async def build_cache(
    settings: Settings, store: Store, providers: tuple[str, ...] = ()
) -> ResponseCache | None:
    """The response cache the settings ask for, persisted in the run's store, as the app
    wires it (`engine.cache.open_cache` with the store's `cache_rows()`)."""
    if not settings.cache:
        return None
    cache: ResponseCache | None = await open_cache(
        settings,
        persistence=store.cache_rows(),
        suggestion_of=store.suggestion,
        providers=providers,
    )
    embedder = getattr(cache, "embedder", None)
    if embedder is not None and hasattr(embedder, "load"):
        await embedder.load()  # read the weights before the clock starts, not in turn one
    return cache


LlmFactory = Callable[..., Awaitable[Any]]


async def build(
    settings: Settings,
    *,
    wrap: Callable[[Provider], Provider] | None = None,
    pool: bool = True,
    factory: LlmFactory | None = None,
) -> Built:
    """A whole engine over the settings' store (SQLite at `db_path`, or Postgres at
    `database_url`) with the providers and cache the settings ask for, as app.py wires it."""
    make_llm = factory or build_llm
    store = await open_store(
        settings.database_url or settings.db_path, history_window=settings.history_window
    )
    closers: list[Callable[[], Awaitable[None]]] = [store.close]
    try:
        llm = await make_llm(settings, calls=store, pool=pool)
        closers.append(llm.aclose)
        cache = await build_cache(settings, store, tuple(getattr(llm, "names", ())))
        if cache is not None and hasattr(cache, "aclose"):
            closers.append(cache.aclose)
        provider: Provider = wrap(llm) if wrap else llm
        engine = Engine(
            llm=provider,
            store=store,
            settings=settings,
            playbook=default_playbook(),
            cache=cache,
            tiering=llm.tiering,
            calls=store,
            llm_stats=llm,
            locks=store.thread_locks,
        )
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    return Built(engine, store, cache, llm, closers)
