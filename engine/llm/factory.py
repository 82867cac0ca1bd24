"""Build the LLM side from Settings: pooled SDK clients, providers per tier, the router, the
tiering policy; or the plain offline tier when no provider is configured.

    stack = await build_llm(settings, calls=store)
    engine = Engine(llm=stack.provider, tiering=stack.tiering, sources={"llm": stack}, ...)
    ...
    await stack.aclose()     # losers' streams closed, call records written, pools closed

Providers: Anthropic when ANTHROPIC_API_KEY is set, OpenAI when OPENAI_API_KEY is set (each at
its *_BASE_URL when given), and every extra OpenAI-compatible endpoint of SALES_AGENT_ENDPOINTS
(a key is optional there: local servers such as Ollama need none). Each tier lists them in
that order: fast = the Claude Haiku / GPT-4o-mini class models, powerful = Sonnet / GPT-4o.

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
from typing import TYPE_CHECKING, Any

from ..model import Tier
from ..ports import CallLog, StepRequest, StepResult
from ..settings import Settings
from .offline import OfflineProvider
from .tiering import ComplexityTiering

if TYPE_CHECKING:
    from .base import SDKProvider
    from .pool import Pool, PoolKind
    from .router import Router, RouterConfig

log = logging.getLogger(__name__)


def always_powerful(step: str, text: str, context: Mapping[str, str]) -> Tier:
    return "powerful"


class LLMStack:
    """What the app wires: a Provider (the router, or the offline tier), the tiering policy,
    live stats, and one async close. It is itself a Provider, delegating to `provider`."""

    def __init__(
        self,
        provider: Router | OfflineProvider,
        *,
        tiering: ComplexityTiering | None,
        pools: list[Pool],
    ) -> None:
        self.provider = provider
        self.router = None if isinstance(provider, OfflineProvider) else provider
        self._tiering = tiering
        self.pools = pools
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

    def stats(self) -> dict[str, Any]:
        if self.router is not None:
            return self.router.stats()
        out: dict[str, Any] = {"mode": "offline"}
        if self._tiering is not None:
            out["tiering"] = self._tiering.stats()
        return out

    async def warm_up(self, timeout_s: float = 3.0) -> None:
        if self.pools:
            await asyncio.gather(*(pool.warm_up(timeout_s) for pool in self.pools))

    async def aclose(self) -> None:
        try:
            if self.router is not None:
                await self.router.aclose()
        finally:
            for pool in self.pools:
                try:
                    await pool.aclose()
                except Exception as exc:
                    log.warning("closing the %s pool: %s", pool.name, exc)


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
    if not (settings.anthropic_api_key or settings.openai_api_key or settings.endpoints):
        return LLMStack(OfflineProvider(), tiering=tiering, pools=[])
    # The SDKs take a second or more to import: only when a provider is configured.
    from .anthropic_provider import AnthropicProvider, anthropic_client
    from .openai_provider import OpenAIProvider, openai_client
    from .pool import Pool, http_client
    from .recorder import CallRecorder
    from .router import Router, RouterConfig

    kind: PoolKind = ("h1" if pool else "fresh") if isinstance(pool, bool) else pool
    pools: list[Pool] = []
    routes: dict[str, list[SDKProvider]] = {"fast": [], "powerful": []}
    budget = settings.turn_budget_s

    def add(provider_of: Any, fast: str, powerful: str) -> None:
        made: dict[str, SDKProvider] = {}
        for tier, model in (("fast", fast), ("powerful", powerful)):
            if model not in made:
                made[model] = provider_of(model)
            routes[tier].append(made[model])

    if settings.anthropic_api_key:
        p = Pool("anthropic", http_client(kind, verify=verify), kind)
        a_client = anthropic_client(p, settings.anthropic_api_key, settings.anthropic_base_url)
        pools.append(p)
        add(
            lambda m: AnthropicProvider(a_client, m, p, timeout_s=budget),
            settings.anthropic_fast_model,
            settings.anthropic_powerful_model,
        )
    if settings.openai_api_key:
        q = Pool("openai", http_client(kind, verify=verify), kind)
        o_client = openai_client(q, settings.openai_api_key, settings.openai_base_url)
        pools.append(q)
        add(
            lambda m: OpenAIProvider(o_client, m, q, timeout_s=budget),
            settings.openai_fast_model,
            settings.openai_powerful_model,
        )
    for endpoint in settings.endpoints:
        e_pool = Pool(endpoint.name, http_client(kind, verify=verify), kind)
        # Local servers take any key; the SDK insists on one.
        e_client = openai_client(e_pool, endpoint.api_key or "unused", endpoint.base_url)
        pools.append(e_pool)
        add(
            lambda m, c=e_client, pl=e_pool, n=endpoint.name: OpenAIProvider(
                c, m, pl, name=n, official=False, timeout_s=budget
            ),
            endpoint.fast_model,
            endpoint.powerful_model,
        )

    _quiet_http_logs()
    router = Router(
        routes,
        config=config or RouterConfig(mode=settings.router, budget_s=budget),
        recorder=CallRecorder(calls),
        fallback=OfflineProvider(fallback=True),
        extra_stats={"tiering": tiering.stats} if tiering is not None else None,
    )
    stack = LLMStack(router, tiering=tiering, pools=pools)
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
