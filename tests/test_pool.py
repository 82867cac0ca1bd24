"""The connection pool survives racing: 1,000 raced-and-cancelled requests leave it healthy.

Each race (the router in race mode) has a winner and two losers on the pool under test: one
that hangs before its first byte, one that streams a first chunk and then stalls, so
cancellation hits both "waiting for headers" and "mid-body". The winner answers once the
server holds the round's loser requests. 500 races, 25 at a time, cancel 1,000 requests.
Afterwards: the server saw every loser go away (no stream left open to keep generating), the
pool has nothing active or queued, and a normal request on it succeeds at once. Run against
the fake's plain HTTP/1.1 front-end and its TLS front-end (which offers h2 and http/1.1 by
ALPN). The stock HTTP/2 client fails this; see engine/llm/pool.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from devtools.fake_llm import FakeLLMServer
from engine.llm.base import SDKProvider
from engine.llm.pool import MAX_KEEPALIVE, Pool, PoolKind, http_client
from engine.llm.prompts import Prompt
from engine.llm.providers.anthropic import AnthropicProvider, anthropic_client
from engine.llm.providers.openai import OpenAIProvider, openai_client
from engine.llm.streaming import Progress
from engine.model import Detection
from tests.llm_kit import GPT4O, Kit, generations, request

pytestmark = pytest.mark.timeout(45)

CANCELS = 1000
AT_ONCE = 25


@pytest_asyncio.fixture
async def tls_server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(latency_profile="zero", time_scale=0) as srv:
        await srv.start_h2_tls()
        yield srv


def losers(server: FakeLLMServer) -> list[object]:
    return server.find(model=lambda m: bool(m) and m.startswith("loser"))


class Stopwatch(SDKProvider):
    """The race's winner, without a socket (only the losers' pool is under test): a valid
    answer once the server holds this round's loser requests, so each is cancelled while
    the server is working on it."""

    target = 0
    patience_s = 2.0
    server: FakeLLMServer

    async def _stream(
        self, prompt: Prompt, timeout: float, progress: Progress, structured: object
    ) -> None:
        with contextlib.suppress(TimeoutError):  # (a broken pool never gets them there)
            await self.server.wait_for(
                lambda s: len(losers(s)) >= self.target, timeout=self.patience_s
            )
        await asyncio.sleep(0.005)
        progress.text_piece('{"situation": "price_objection", "confidence": 0.9}')


async def race_and_cancel(
    server: FakeLLMServer,
    base_url: str,
    verify: ssl.SSLContext | bool,
    kind: PoolKind,
    cancels: int = CANCELS,
    patience_s: float = 2.0,
) -> tuple[Pool, OpenAIProvider, dict[str, object]]:
    kit = Kit(server)
    kit.pools.append(Pool("stopwatch", http_client()))
    winner = Stopwatch("stopwatch", "stopwatch-1", kit.pools[-1])
    winner.server, winner.patience_s = server, patience_s
    server.faults.add("hang", model="loser-hang", times=None)
    server.faults.add("slow", model="loser-stall", delay=0.0, per_chunk=30.0, times=None)
    pool = Pool("under-test", http_client(kind, verify=verify), kind)
    a_client = anthropic_client(pool, "test-key", base_url)
    o_client = openai_client(pool, "test-key", base_url + "/v1")
    hang = AnthropicProvider(a_client, "loser-hang", pool)
    stall = OpenAIProvider(o_client, "loser-stall", pool)
    router = kit.router([winner, hang, stall], mode="race", budget_s=10.0)
    started = time.perf_counter()
    for n in range(cancels // 2 // AT_ONCE):
        winner.target = (n + 1) * AT_ONCE * 2
        results = await asyncio.gather(*(router.complete(request()) for _ in range(AT_ONCE)))
        assert all(r.call.provider == "stopwatch" for r in results)
    await router.aclose()
    seconds = time.perf_counter() - started
    outcomes = Counter(r.outcome for r in kit.log.records if r.model.startswith("loser"))
    await kit.close()
    return pool, OpenAIProvider(o_client, GPT4O, pool), {"s": seconds, "log": outcomes}


async def assert_healthy(
    server: FakeLLMServer, pool: Pool, normal: OpenAIProvider, cancels: int = CANCELS
) -> None:
    # Every loser the server saw ended as a client disconnect: nothing left generating.
    with contextlib.suppress(TimeoutError):
        await server.wait_for(lambda s: all(r.outcome for r in losers(s)), timeout=3.0)
    seen = Counter(r.outcome for r in losers(server))
    assert set(seen) == {"client_disconnected"}, f"streams the server still serves: {seen}"
    # Nearly all reached the server first (the rest were cancelled while connecting).
    assert sum(seen.values()) >= 0.9 * cancels, seen
    await pool.settled()  # a background warm-up replacing a closed connection may be running
    snap = pool.snapshot()
    assert snap["active"] == 0 and snap["requests_in_flight"] == 0, snap
    assert snap["connections"] <= MAX_KEEPALIVE, snap
    server.faults.clear()
    started = time.perf_counter()
    async with asyncio.timeout(3.0):
        result = await normal.complete(request())
    assert isinstance(result.value, Detection)
    assert time.perf_counter() - started < 1.0
    await pool.aclose()


async def test_http11_pool_stays_healthy_after_1000_cancelled_requests(
    tls_server: FakeLLMServer,
) -> None:
    assert tls_server.base_url is not None
    pool, normal, info = await race_and_cancel(tls_server, tls_server.base_url, True, "h1")
    assert info["log"] == {"cancelled": CANCELS}
    await assert_healthy(tls_server, pool, normal)


async def test_pool_over_the_tls_front_end_stays_healthy_after_1000_cancelled_requests(
    tls_server: FakeLLMServer,
) -> None:
    """The front-end offers h2; our pool speaks HTTP/1.1 over TLS (the decision in pool.py)."""
    tls = tls_server.tls
    assert tls is not None
    pool, normal, info = await race_and_cancel(tls_server, tls.base_url, tls.ssl_context(), "h1")
    assert info["log"] == {"cancelled": CANCELS}
    versions = {r.http_version for r in losers(tls_server)}
    assert versions == {"1.1"}
    await assert_healthy(tls_server, pool, normal)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="httpcore2 sends no RST_STREAM for a cancelled HTTP/2 request (httpcore #1022): "
    "the server keeps every abandoned stream open and the pool hits 'Max outbound streams'. "
    "If this starts passing, HTTP/2 can be reconsidered (engine/llm/pool.py).",
)
async def test_stock_http2_pool_after_1000_cancelled_requests(tls_server: FakeLLMServer) -> None:
    tls = tls_server.tls
    assert tls is not None
    # 400 are enough: the server allows 256 concurrent streams per connection.
    ctx = tls.ssl_context()
    pool, normal, _ = await race_and_cancel(
        tls_server, tls.base_url, ctx, "h2", cancels=400, patience_s=0.3
    )
    assert {r.http_version for r in losers(tls_server)} == {"2"}
    await assert_healthy(tls_server, pool, normal, cancels=400)


@pytest.mark.parametrize(("kind", "connections"), [("h1", 1), ("fresh", 10), ("aiohttp", 1)])
async def test_pooled_clients_keep_one_connection_and_fresh_opens_one_per_call(
    tls_server: FakeLLMServer, kind: PoolKind, connections: int
) -> None:
    pool = Pool("p", http_client(kind), kind)
    provider = OpenAIProvider(
        openai_client(pool, "test-key", tls_server.openai_base_url), GPT4O, pool
    )
    assert await pool.warm_up()  # the warm-up opens the connection the calls then reuse
    before = tls_server.connections_accepted
    for _ in range(10):
        await provider.complete(request())
    opened = tls_server.connections_accepted - before
    assert opened == (0 if connections == 1 else connections)
    await pool.aclose()


async def test_a_connection_the_server_closed_while_idle_is_retried_at_once(kit: Kit) -> None:
    """The server hangs up on a kept-alive connection (its idle timeout), and again as the
    next request arrives on a reused one: each request is sent again at once on a new
    connection, and nothing counts against the provider."""
    provider = kit.openai()
    router = kit.router([provider], mode="single")
    assert not (await router.complete(request())).call.fallback
    assert await kit.server.close_idle_connections() == 1
    assert not (await router.complete(request())).call.fallback  # (the pool saw the close)
    # The race: the request goes out on a pooled connection the server is closing.
    kit.server.faults.add("drop_connection")
    assert not (await router.complete(request())).call.fallback
    await router.aclose()
    dropped, resent = generations(kit.server)[-2:]
    assert dropped.outcome == "fault:drop_connection" and not dropped.new_connection
    assert resent.outcome == "ok" and resent.new_connection
    assert [r.outcome for r in kit.log.records] == ["win"] * 3
    assert router.breakers[provider.key].snapshot()["recent_failures"] == 0
    assert provider.pool.snapshot()["stale_retries"] == 1
