"""Operations: Prometheus metrics and a small aiohttp server with `/healthz`, `/metrics` and
the stats report's sections as JSON (`/cache/stats`, `/reconcile/stats`, `/llm/stats`).

Metrics live in their own registry (one per bot), so several bots in one test process do not
collide. Provider error figures come from the engine's call log (a window of recent calls),
read at most once per `STATS_TTL_S` however often /metrics or the stats endpoints are read:
that read parses up to 10,000 rows on the database thread, so the stats endpoints' figures may
be that old too. Everything else in /metrics is counted as it happens and stays live.

The server binds 127.0.0.1 unless told otherwise: it has no authentication.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from engine.model import Suggestion
from engine.stats import StatsReport

log = logging.getLogger("sales_agent.bot.ops")

DEFAULT_HOST = "127.0.0.1"
STATS_TTL_S = 15.0  # how long /metrics reuses the engine's stats report

T = TypeVar("T")

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "sales_agent_slack_events",
            "Slack messages seen, by what the bot did with them",
            ["outcome"],  # accepted, duplicate, ignored
            registry=r,
        )
        self.turns = Counter(
            "sales_agent_turns",
            "Turns finished, by outcome",
            ["outcome"],  # card, help, failed, channel_error, gave_up, regenerated
            registry=r,
        )
        self.turn_seconds = Histogram(
            "sales_agent_turn_seconds",
            "From accepting a Slack message to its finished card",
            buckets=_SECONDS,
            registry=r,
        )
        self.working_seconds = Histogram(
            "sales_agent_working_signal_seconds",
            "From accepting a message to showing it is being worked on (status or reaction)",
            buckets=_SECONDS,
            registry=r,
        )
        self.engine_seconds = Histogram(
            "sales_agent_engine_step_seconds",
            "Engine latency per step (end_to_end, capture, detect, reconcile, generate, cache)",
            ["step"],
            buckets=_SECONDS,
            registry=r,
        )
        self.cache = Counter(
            "sales_agent_cache_lookups",
            "Suggestions by cache tier (exact and semantic are hits)",
            ["tier"],
            registry=r,
        )
        self.provider_calls = Counter(
            "sales_agent_provider_calls",
            "Step calls behind delivered suggestions, by provider and model",
            ["provider", "model"],
            registry=r,
        )
        self.offline_fallbacks = Counter(
            "sales_agent_offline_fallbacks",
            "Turns the offline playbook answered because the LLM providers were unavailable",
            registry=r,
        )
        self.provider_errors = Gauge(
            "sales_agent_provider_errors",
            "Provider errors in the engine's recent call log, by provider and kind",
            ["provider", "kind"],
            registry=r,
        )
        self.contract_failures = Gauge(
            "sales_agent_contract_failure_rate",
            "Answers the output contract refused (invalid or truncated) over answered requests, "
            "in the engine's recent call log, by provider/model",
            ["provider"],
            registry=r,
        )
        self.slack_errors = Counter(
            "sales_agent_slack_api_errors",
            "Slack Web API errors, by error code",
            ["error"],
            registry=r,
        )
        self.feedback = Counter(
            "sales_agent_feedback", "Feedback clicks on cards", ["value"], registry=r
        )
        self.socket_connected = Gauge(
            "sales_agent_socket_connected", "1 when the Socket Mode connection is up", registry=r
        )
        self.inbox = Gauge("sales_agent_inbox_items", "Inbox rows by state", ["state"], registry=r)
        self.inflight = Gauge("sales_agent_turns_in_flight", "Turns running now", registry=r)

    def observe_suggestion(self, s: Suggestion) -> None:
        self.cache.labels(s.cache).inc()
        self.engine_seconds.labels("end_to_end").observe(s.latency_ms / 1000)
        for step, ms in s.step_ms.items():
            self.engine_seconds.labels(step).observe(ms / 1000)
        for call in s.calls:
            self.provider_calls.labels(call.provider, call.model).inc()
        if s.offline:
            self.offline_fallbacks.inc()

    def set_provider_errors(self, report: StatsReport) -> None:
        self.provider_errors.clear()
        self.contract_failures.clear()
        for name, p in report.llm.providers.items():
            for kind, n in p.errors.items():
                self.provider_errors.labels(name, kind).set(n)
            if p.contract is not None:
                self.contract_failures.labels(name).set(p.contract.rate)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimedMemo(Generic[T]):
    """The last result of `load()`, reused for `ttl` seconds. Concurrent callers share one
    load; a failed load is not remembered."""

    def __init__(
        self,
        load: Callable[[], Awaitable[T]],
        ttl: float = STATS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl = ttl
        self._clock = clock
        self._value: T | None = None
        self._at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._at is not None and self._clock() - self._at < self.ttl

    async def get(self) -> T:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    self._value = await self._load()
                    self._at = self._clock()
        return self._value  # type: ignore[return-value]  # set by the load above

    def clear(self) -> None:
        self._value, self._at = None, None


HealthCheck = Callable[[], Awaitable[Mapping[str, bool]]]
Refresh = Callable[[], Awaitable[None]]
Report = Callable[[], Awaitable[StatsReport]]

# The report's sections served as JSON, by path (the design's own stats endpoints).
STATS_PATHS = {"/cache/stats": "cache", "/reconcile/stats": "reconcile", "/llm/stats": "llm"}


class OpsServer:
    """`GET /healthz`: 200 when every check passes, else 503, with a JSON body of the checks.
    `GET /metrics`: Prometheus text format. With `report`, `GET /cache/stats`,
    `/reconcile/stats` and `/llm/stats`: that section of the stats report as JSON, the same
    as in `sales-agent stats --json` (503 when the report cannot be read). Unauthenticated, so
    it listens on 127.0.0.1 unless `host` says otherwise (e.g. "0.0.0.0" for a scraper outside
    the host)."""

    def __init__(
        self,
        metrics: Metrics,
        health: HealthCheck,
        refresh: Refresh | None = None,
        *,
        report: Report | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.refresh = refresh
        self.report = report
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if self.report is not None:
            for path in STATS_PATHS:
                app.router.add_get(path, self._stats)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])
        paths = ["/healthz", "/metrics", *(STATS_PATHS if self.report is not None else ())]
        log.info("ops endpoints on http://%s:%d (%s)", self.host, self.port, ", ".join(paths))
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            checks = dict(await asyncio.wait_for(self.health(), 3.0))
        except Exception as exc:
            checks = {"error": False}
            log.warning("health check failed: %s", type(exc).__name__)
        ok = all(checks.values())
        body = {"ok": ok, **checks}
        return web.Response(
            status=200 if ok else 503, text=json.dumps(body), content_type="application/json"
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.refresh is not None:
            try:
                await asyncio.wait_for(self.refresh(), 3.0)
            except Exception as exc:
                log.warning("refreshing metrics failed: %s", type(exc).__name__)
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _stats(self, request: web.Request) -> web.Response:
        if self.report is None:  # the routes exist only with a report
            raise web.HTTPNotFound()
        try:
            report = await asyncio.wait_for(self.report(), 3.0)
        except Exception as exc:
            log.warning("reading the stats report failed: %s", type(exc).__name__)
            body = {"error": "the stats report is unavailable"}
            return web.json_response(body, status=503)
        return web.json_response(report.section(STATS_PATHS[request.path]))
