"""The Slack bot: the bolt `AsyncApp` factory and the service that runs it over Socket Mode.

`SlackBot.start()` builds the Web API client (429s and connection errors retried), learns who
the bot is (`auth.test`), registers the listeners, resumes unfinished inbox turns, connects the
`AsyncSocketModeHandler` and starts the ops endpoints. `stop()` is the graceful shutdown:
stop taking events, let in-flight turns finish (or leave them pending in the inbox), close the
HTTP pool. The database belongs to the caller (app.py) and is closed there afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from engine.inbox import InboxStore, Spool
from engine.ratebuckets import RateBuckets

from .delivery import STREAM_METHODS
from .inbox import Inbox
from .listeners import Deps, register
from .ops import Metrics, OpsServer, TimedMemo
from .ratelimit import RateBudget
from .turns import BotConfig, Coach, Identity, TurnRunner

log = logging.getLogger("sales_agent.bot")

DEFAULT_API_URL = "https://slack.com/api/"
CONNECT_TIMEOUT_S = 30.0  # Socket Mode connect at start, after the WebSocket URL was issued


def api_base_url(url: str | None) -> str:
    """slack_sdk joins method names onto the base URL: it must end with a slash."""
    base = url or DEFAULT_API_URL
    return base if base.endswith("/") else base + "/"


def build_client(
    bot_token: str, api_url: str | None = None, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The bot's Web API client. slack_sdk retries only connection errors by default; rate
    limits (429 + Retry-After) and 5xx are opted in here, except a rate-limited streaming
    call, which falls back at once instead of waiting (bot.delivery). bolt copies these
    settings into its per-request clients."""
    return AsyncWebClient(
        token=str(bot_token),
        base_url=api_base_url(api_url),
        session=session,
        timeout=30,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            _RateLimitRetry(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class _RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.rstrip("/").rsplit("/", 1)[-1] in STREAM_METHODS:
            return False
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


def create_app(client: AsyncWebClient, deps: Deps) -> AsyncApp:
    """The bolt app. `process_before_response=True`: listeners are short (write the inbox,
    start a task) and the ack goes out after them, so an acked message is already durable."""
    bolt_log = logging.getLogger("sales_agent.bolt")
    # bolt reads SLACK_BOT_TOKEN from the environment by itself and warns that the client's
    # token wins over it; the client is built from the same token, so the warning is noise.
    bolt_log.addFilter(_drop_token_skipped_warning)
    app = AsyncApp(client=client, process_before_response=True, logger=bolt_log)

    @app.error
    async def on_error(error: Exception, context: AsyncBoltContext) -> None:
        # Never the request or the client in the log line: only what went wrong.
        log.error("listener failed: %s: %s", type(error).__name__, _safe(str(error)))

    register(app, deps)
    return app


class BotStartError(RuntimeError):
    """The bot could not start; what was already running has been shut down."""


class SlackBot:
    def __init__(
        self,
        *,
        engine: Coach,
        inbox_store: InboxStore,
        bot_token: str,
        app_token: str,
        api_url: str | None = None,
        config: BotConfig | None = None,
        metrics: Metrics | None = None,
        rate_buckets: RateBuckets | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.engine = engine
        # Slack's limits are the workspace's: shared buckets when instances share a database.
        self.rate_buckets = rate_buckets
        self.spool = spool  # where messages wait while the inbox's database is down
        self.inbox = Inbox(inbox_store)
        self.config = config or BotConfig()
        self.metrics = metrics or Metrics()
        self._bot_token = bot_token
        self._app_token = app_token
        self._api_url = api_url
        self._session: aiohttp.ClientSession | None = None
        self.client: AsyncWebClient | None = None
        self.app: AsyncApp | None = None
        self.handler: AsyncSocketModeHandler | None = None
        self.runner: TurnRunner | None = None
        self.ops: OpsServer | None = None
        self.identity: Identity | None = None
        self._starting = ""
        # /metrics scrapes and the stats endpoints reuse the engine's stats report for
        # ops.STATS_TTL_S seconds.
        self._stats = TimedMemo(lambda: self.engine.stats())

    async def start(self) -> None:
        """Start the bot. If any step fails (bad token, Slack unreachable), everything started so
        far is shut down the way `stop()` does it (resumed turns finish or stay in the inbox, the
        HTTP pool is closed) and `BotStartError` is raised naming the step and Slack's answer."""
        self._starting = "opening the HTTP pool"
        try:
            await self._start()
        except Exception as exc:
            step = self._starting
            await self._abort_start()
            raise BotStartError(
                f"the Slack bot could not start while {step}: {_describe(exc)}"
            ) from exc
        except BaseException:
            await self._abort_start()
            raise

    async def _abort_start(self) -> None:
        try:
            await asyncio.shield(self.stop())
        except Exception as exc:  # the start error is the one worth reporting
            log.warning("cleaning up after a failed start: %s", type(exc).__name__)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        self.client = build_client(self._bot_token, self._api_url, self._session)
        self._starting = "signing in (auth.test)"
        auth = await self.client.auth_test()
        self.identity = Identity(
            bot_user_id=str(auth.get("user_id") or ""),
            bot_id=str(auth.get("bot_id") or ""),
            team_id=str(auth.get("team_id") or ""),
        )
        log.info(
            "signed in as %s (bot %s) in team %s",
            self.identity.bot_user_id,
            self.identity.bot_id,
            self.identity.team_id,
        )
        self.runner = TurnRunner(
            engine=self.engine,
            inbox=self.inbox,
            client=self.client,
            identity=self.identity,
            metrics=self.metrics,
            config=self.config,
            budget=RateBudget(self.config.stream_limits, self.rate_buckets),
            spool=self.spool,
        )
        deps = Deps(self.runner, self.engine, self.config, self.metrics, self.identity)
        self.app = create_app(self.client, deps)
        self._starting = "preparing the inbox"
        pruned = await self.inbox.store.prune(time.time() - self.config.inbox_retention_s)
        if pruned:
            log.info("forgot %d inbox row(s) older than the retention", pruned)
        await self.runner.resume_spool()  # first: its rows are the spool's to start
        resumed = await self.runner.recover()
        if resumed:
            log.info("resumed %d unfinished turn(s) from the inbox", resumed)
        self.runner.start_sweeping()
        self._starting = "connecting Socket Mode (apps.connections.open)"
        self.handler = AsyncSocketModeHandler(self.app, str(self._app_token))
        # slack_sdk's connect() retries every failure forever, a refused app token included.
        # Ask for the WebSocket URL here first, so a bad token or an unreachable Slack fails
        # the start (connect() then uses this URL), and bound the connect itself.
        self.handler.client.wss_uri = await self.handler.client.issue_new_wss_url()
        await asyncio.wait_for(
            self.handler.connect_async(),  # type: ignore[no-untyped-call]
            CONNECT_TIMEOUT_S,
        )
        if self.config.http_port is not None:
            self._starting = "starting the ops endpoints"
            self.ops = OpsServer(
                self.metrics,
                self.health,
                self.refresh_metrics,
                report=self._stats.get,
                host=self.config.http_host,
                port=self.config.http_port,
            )
            await self.ops.start()
        log.info("Slack bot running (Socket Mode)")

    async def stop(self) -> None:
        """Graceful shutdown: no new events, in-flight turns finish or stay in the inbox."""
        if self.handler is not None:
            try:
                await self.handler.close_async()  # type: ignore[no-untyped-call]
            except Exception as exc:
                log.warning("closing the socket: %s", type(exc).__name__)
            self.handler = None
        if self.runner is not None:
            await self.runner.drain()
        if self.ops is not None:
            await self.ops.stop()
            self.ops = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        log.info("Slack bot stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then shut down gracefully. A failed start has already been
        cleaned up by `start()` and raises `BotStartError`."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def connected(self) -> bool:
        if self.handler is None:
            return False
        try:
            return bool(await self.handler.client.is_connected())
        except Exception:
            return False

    async def health(self) -> Mapping[str, bool]:
        socket, db = await asyncio.gather(self.connected(), self.inbox.store.writable())
        self.metrics.socket_connected.set(1 if socket else 0)
        return {"socket_connected": socket, "database_writable": db}

    async def refresh_metrics(self) -> None:
        self.metrics.socket_connected.set(1 if await self.connected() else 0)
        counts = await self.inbox.store.counts()
        for state in ("pending", "done", "failed"):
            self.metrics.inbox.labels(state).set(counts.get(state, 0))
        report = await self._stats.get()
        self.metrics.set_provider_errors(report)


def _drop_token_skipped_warning(record: logging.LogRecord) -> bool:
    return "`token` will be unused" not in record.getMessage()


def _describe(exc: BaseException) -> str:
    """Slack's error code for an API error, else the exception's type and (trimmed) text."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, SlackApiError):
        code = exc.response.get("error") if exc.response is not None else None
        if code:
            return str(code)
    text = _safe(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _safe(text: str) -> str:
    """Error texts from the SDK name URLs and Slack's answer, not tokens; trim them anyway."""
    return text.replace("\n", " ")[:300]
