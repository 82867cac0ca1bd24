"""One pooled HTTP client per provider endpoint: created once at start, warmed up, closed at
shutdown; and why it speaks HTTP/1.1.

Decision (measured, see tests/test_pool.py and the numbers below): **keep-alive HTTP/1.1 pools**
(`httpx2` with http2=False) for every provider, even where the server offers HTTP/2.

Racing and hedging cancel requests all the time: every race cancels its losers, every budget
overrun cancels whatever is in flight. On HTTP/2 a cancelled request must reset its stream
(RST_STREAM); httpcore does not (encode/httpcore #1022, #1093), and httpcore2 2.16.2 (under
httpx2, the SDKs' HTTP stack) still does not: `_response_closed` frees the client's own slot
but never tells the server. Measured against the fake server's HTTP/2 TLS front-end (hypercorn,
SETTINGS_MAX_CONCURRENT_STREAMS 256), 1,000 streamed requests raced and cancelled in batches of
50 while the server was still thinking:

- httpx2 http2=True: after 256 cancellations every request fails with
  `LocalProtocolError('Max outbound streams is 256, 256 open')`, including a normal request
  afterwards; the server never saw a single disconnect, so a real provider would have kept
  generating (and billing) all 256 abandoned answers. Cancelling earlier (20 ms, mid-write)
  broke the connection with `WriteError` after about 100 requests instead.
- httpx2 http1 (plain and over TLS): 1,000 of 1,000 cancellations seen by the server as
  client disconnects, the next request succeeded at once, no connection left active.
- The SDKs' aiohttp client (`DefaultAioHttpClient`, HTTP/1.1 only): the same, healthy.

Fixing HTTP/2 would mean patching httpcore2's private connection classes (reset the stream on
close, shield writes from cancellation); we do not carry a patch of a library's internals. On
HTTP/1.1 a cancelled request closes its connection, which is exactly "the loser's stream is
closed"; the price is a new connection for the next call to that provider, which `replenish()`
pays in the background (a warm-up request right after a cancellation), off the critical path.
The per-call difference between the HTTP/1.1 clients is small (zero-latency fake, streaming,
p50: httpx2 1.3-2.1 ms, aiohttp 0.9-1.5 ms), so we stay on the SDKs' own stack (httpx2);
`kind="aiohttp"` is available, and `kind="h2"` is kept only so the hazard stays measurable.
`kind="fresh"` opens a new connection per call: the benchmark's "no pool" baseline.

A kept-alive connection the server closed while it sat idle (load balancers close them after
60-90 s; llama-server and vLLM sooner) is retried at once on a new connection, below the SDK:
when a request sent on a reused connection gets no response at all (the server hung up first),
`StaleRetry` sends it again, once, and the provider never sees an error (nothing counts
against it; `stale_retries` in the pool's figures says how often). A request on a fresh
connection that gets no response is a real connection failure and is not retried here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx2

log = logging.getLogger(__name__)

PoolKind = Literal["h1", "h2", "aiohttp", "fresh"]

MAX_CONNECTIONS = 100
MAX_KEEPALIVE = 32
# Below the usual 60-90 s idle timeout of API load balancers, so we rarely reuse a dead socket.
KEEPALIVE_EXPIRY_S = 45.0


def http_client(
    kind: PoolKind = "h1",
    *,
    verify: ssl.SSLContext | bool = True,
    connect_timeout_s: float = 5.0,
    max_connections: int = MAX_CONNECTIONS,
    max_keepalive: int = MAX_KEEPALIVE,
) -> httpx2.AsyncClient:
    """The HTTP client one SDK client runs on (the SDKs take it as `http_client=`)."""
    timeout = httpx2.Timeout(60.0, connect=connect_timeout_s)
    keepalive = 0 if kind == "fresh" else max_keepalive
    limits = httpx2.Limits(
        max_connections=max_connections,
        max_keepalive_connections=keepalive,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    if kind == "aiohttp":
        from anthropic import DefaultAioHttpClient

        client: httpx2.AsyncClient = DefaultAioHttpClient(
            verify=verify, limits=limits, timeout=timeout
        )
        return client
    transport = httpx2.AsyncHTTPTransport(
        http1=True, http2=kind == "h2", verify=verify, limits=limits
    )
    return httpx2.AsyncClient(
        transport=StaleRetry(transport), timeout=timeout, follow_redirects=True
    )


class StaleRetry(httpx2.AsyncBaseTransport):
    """Sends a request again, once, when it went out on a reused connection and the server
    hung up without any response: the connection had been closed while idle in the pool.
    One pool serves one endpoint, so an idle connection in it is one this request reuses."""

    def __init__(self, inner: httpx2.AsyncHTTPTransport) -> None:
        self.inner = inner
        self.retried = 0

    @property
    def _pool(self) -> Any:  # what Pool.snapshot reads
        return getattr(self.inner, "_pool", None)

    def _reusing(self) -> bool:
        connections = getattr(self._pool, "connections", ())
        return any(c.is_idle() for c in connections)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        reused = self._reusing()
        try:
            return await self.inner.handle_async_request(request)
        except (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError) as exc:
            if not reused:
                raise
            self.retried += 1
            log.info("a pooled connection was closed by the server (%s); retrying at once", exc)
            return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Pool:
    """The pooled client of one provider endpoint, with its warm-up and its health figures."""

    def __init__(self, name: str, client: httpx2.AsyncClient, kind: PoolKind = "h1") -> None:
        self.name = name
        self.client = client
        self.kind = kind
        # Set by the provider factory: a cheap SDK request (GET /models).
        self.probe: Callable[[], Awaitable[object]] | None = None
        self.warmups = 0
        self.warmup_failures = 0
        self.replenished = 0
        self.last_warmup_ms: float | None = None
        self._replenishing: asyncio.Task[None] | None = None
        self._closed = False

    async def warm_up(self, timeout_s: float = 5.0) -> bool:
        """Open a connection with a cheap request; False (logged, never raised) on failure."""
        if self.probe is None or self._closed:
            return False
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                await self.probe()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.warmup_failures += 1
            # The type and the status only: SDK messages never hold keys, but stay terse.
            status = getattr(exc, "status_code", None)
            log.warning(
                "warm-up of %s failed: %s%s",
                self.name,
                type(exc).__name__,
                f" ({status})" if status else "",
            )
            return False
        self.warmups += 1
        self.last_warmup_ms = (time.perf_counter() - started) * 1000
        return True

    def replenish(self) -> None:
        """After a cancelled call closed its connection (HTTP/1.1), open a spare in the
        background so the next call does not pay the handshake. One at a time."""
        if self.kind not in ("h1", "aiohttp") or self._closed or self.probe is None:
            return
        if self._replenishing is not None and not self._replenishing.done():
            return
        try:
            self._replenishing = asyncio.get_running_loop().create_task(self._replenish())
        except RuntimeError:  # no running loop (shutdown)
            return

    async def settled(self) -> None:
        """Wait for a background replenishing request, if one is in flight."""
        task = self._replenishing
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await task

    async def _replenish(self) -> None:
        if await self.warm_up():
            self.replenished += 1

    def snapshot(self) -> dict[str, Any]:
        """Connections by state, for stats and for the pool-health test."""
        out: dict[str, Any] = {"kind": self.kind, "warmups": self.warmups}
        if self.replenished:
            out["replenished"] = self.replenished
        if self.warmup_failures:
            out["warmup_failures"] = self.warmup_failures
        transport = getattr(self.client, "_transport", None)
        if isinstance(transport, StaleRetry) and transport.retried:
            out["stale_retries"] = transport.retried
        pool = getattr(getattr(self.client, "_transport", None), "_pool", None)
        if pool is None:
            return out
        connections = list(getattr(pool, "connections", []))
        requests = list(getattr(pool, "_requests", []))
        out.update(
            connections=len(connections),
            idle=sum(1 for c in connections if c.is_idle()),
            active=sum(1 for c in connections if not c.is_idle() and not c.is_closed()),
            requests_in_flight=len(requests),
        )
        return out

    async def aclose(self) -> None:
        self._closed = True
        task = self._replenishing
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.client.aclose()
