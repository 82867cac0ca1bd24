"""Build the LLM side from Settings: pooled SDK clients, providers per tier, the router, the
tiering policy; or the plain offline tier when no provider is configured.

    stack = await build_llm(settings, calls=store)
    engine = Engine(llm=stack.provider, tiering=stack.tiering, llm_stats=stack, ...)
    ...
    await stack.aclose()     # losers' streams closed, call records written, pools closed

Providers: those of `settings.providers` (the registry's native providers whose key is set,
then the OpenAI-compatible endpoints of SALES_AGENT_ENDPOINTS), each connected by its registry
row's module. Each tier lists them in that order: fast = the Claude Haiku / GPT-4o-mini class
models, powerful = Sonnet / GPT-4o.

Connections: one pool per endpoint, HTTP/1.1 keep-alive; see
pool.py for the measurement behind that (cancelled HTTP/2 streams are never reset by the HTTP
stack, and racing cancels on every call). `pool=False` gives the benchmark's baseline: a new
connection per call. `pool="h2"` or `"aiohttp"` choose those clients explicitly.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..model import Tier
from ..pipeline.orchestrator import always_powerful
from ..ports import CallLog, StepRequest, StepResult
from ..settings import Settings
from ..stats import LlmStats
from .offline import OfflineProvider
from .providers import spec
from .tiering import ComplexityTiering

if TYPE_CHECKING:
    from .pool import PoolKind
    from .router import Router, RouterConfig
    from .streaming import Connection, StreamingProvider

log = logging.getLogger(__name__)


class LLMStack:
    """What the app wires: a Provider (the router, or the offline tier), the tiering policy,
    live stats, and one async close. It is itself a Provider, delegating to `provider`."""

    def __init__(
        self,
        provider: Router | OfflineProvider,
        *,
        tiering: ComplexityTiering | None,
        connections: list[Connection],
    ) -> None:
        self.provider = provider
        self.router = None if isinstance(provider, OfflineProvider) else provider
        self._tiering = tiering
        self.connections = connections
        self.name = provider.name

    @property
    def tiering(self) -> Callable[[str, str, Mapping[str, str]], Tier]:
        """The Engine's TierPolicy: the complexity classifier, or always "powerful"."""
        return self._tiering if self._tiering is not None else always_powerful

    @property
    def names(self) -> tuple[str, ...]:
        """provider/model of every provider (the cache's answer version includes them)."""
        return self.router.names if self.router is not None else (self.provider.name,)

    async def complete(self, request: StepRequest) -> StepResult:
        return await self.provider.complete(request)

    def stats(self) -> LlmStats:
        return LlmStats(
            router=self.router.stats() if self.router is not None else None,
            pools={c.name: c.snapshot() for c in self.connections},
            tiering=self._tiering.stats() if self._tiering is not None else None,
        )

    async def warm_up(self, timeout_s: float = 3.0) -> None:
        if self.connections:
            await asyncio.gather(*(c.warm_up(timeout_s) for c in self.connections))

    async def aclose(self) -> None:
        try:
            if self.router is not None:
                await self.router.aclose()
        finally:
            for connection in self.connections:
                try:
                    await connection.aclose()
                except Exception as exc:
                    log.warning("closing the %s connection: %s", connection.name, exc)


async def build_llm(
    settings: Settings,
    calls: CallLog | None = None,
    *,
    pool: bool | PoolKind = True,
    warm_up: bool = True,
    verify: ssl.SSLContext | bool = True,
    config: RouterConfig | None = None,
) -> LLMStack:
    tiering = ComplexityTiering() if settings.tiering else None
    if not settings.providers:
        return LLMStack(OfflineProvider(), tiering=tiering, connections=[])
    # The SDKs take a second or more to import: only when a provider is configured (each
    # registry row's module is imported by its `connector()`).
    from .recorder import CallRecorder
    from .router import Router, RouterConfig

    kind: PoolKind = ("h1" if pool else "fresh") if isinstance(pool, bool) else pool
    connections: list[Connection] = []
    routes: dict[str, list[StreamingProvider]] = {"fast": [], "powerful": []}
    budget = settings.turn_budget_s
    for provider in settings.providers:
        connected = spec(provider.kind).connector()(
            provider, pool=kind, verify=verify, timeout_s=budget
        )
        connections.append(connected.connection)
        made: dict[str, StreamingProvider] = {}
        for tier, model in (("fast", provider.fast_model), ("powerful", provider.powerful_model)):
            if model not in made:
                made[model] = connected.provider(model)
            routes[tier].append(made[model])

    _quiet_http_logs()
    router = Router(
        routes,
        config=config or RouterConfig(mode=settings.router, budget_s=budget),
        recorder=CallRecorder(calls),
        fallback=OfflineProvider(fallback=True),
    )
    stack = LLMStack(router, tiering=tiering, connections=connections)
    if warm_up:
        await stack.warm_up(min(3.0, budget))
    return stack


def _quiet_http_logs() -> None:
    """httpx2 logs every request at INFO: one line per LLM call would drown the app's own log.
    Left alone when the operator set a level for it."""
    for name in ("httpx2", "httpcore2"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
