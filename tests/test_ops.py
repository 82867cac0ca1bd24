"""The ops server's stats endpoints, over HTTP, with a real engine, cache and LLM stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.ops import STATS_PATHS, Metrics, OpsServer
from engine.cache import TwoTierCache
from engine.llm.factory import LLMStack
from engine.llm.offline import OfflineProvider
from engine.llm.tiering import ComplexityTiering
from engine.model import ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import Settings
from engine.stats import StatsReport
from storage import SqliteStore
from storage.cache_store import SqliteCacheStore

pytestmark = pytest.mark.timeout(20)

GONG = "We already use Gong and honestly it's too expensive for us"


async def healthy() -> Mapping[str, bool]:
    return {"ok": True}


@dataclass
class Served:
    engine: Engine
    tiering: ComplexityTiering
    base: str


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """Three turns (one an exact cache hit) through an engine, its report behind the server."""
    store = await SqliteStore.open(tmp_path / "ops.db")
    tiering = ComplexityTiering()
    stack = LLMStack(OfflineProvider(), tiering=tiering, connections=[])
    cache = TwoTierCache(version="v1", persistence=SqliteCacheStore(store))
    engine = Engine(
        llm=stack,
        store=store,
        settings=Settings(db_path=tmp_path / "ops.db"),
        playbook=default_playbook(),
        cache=cache,
        tiering=stack.tiering,
        calls=store,
        llm_stats=stack,
    )
    for i, text in enumerate([GONG, GONG, "Does it integrate with HubSpot?"]):
        await engine.handle(TurnInput(ThreadKey("T", "C", str(i)), text, f"m{i}"))
    ops = OpsServer(Metrics(), healthy, report=engine.stats, port=0)
    port = await ops.start()
    try:
        yield Served(engine, tiering, f"http://127.0.0.1:{port}")
    finally:
        await ops.stop()
        await cache.aclose()
        await store.close()


async def _get(url: str) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, resp.content_type, await resp.json()


async def test_each_stats_endpoint_serves_its_section_of_the_report(served: Served) -> None:
    bodies = {}
    for path in ("/cache/stats", "/reconcile/stats", "/llm/stats"):
        status, kind, bodies[path] = await _get(served.base + path)
        assert status == 200 and kind == "application/json", path
    # The same JSON as `sales-agent stats --json` prints for that section.
    report = (await served.engine.stats()).to_json()
    assert bodies == {path: report[name] for path, name in STATS_PATHS.items()}

    cache = bodies["/cache/stats"]
    assert (cache["lookups"], cache["exact_hits"], cache["semantic_hits"]) == (3, 1, 0)
    assert cache["enabled"] is True and cache["size"] == 2  # live, from the cache itself
    assert cache["since_start"]["lookups"] == 3
    reconcile = bodies["/reconcile/stats"]
    assert reconcile["turns"] == 2  # the cache hit was not analysed
    assert set(reconcile) == {"turns", "reconciled", "rate", "triggers"}
    llm = bodies["/llm/stats"]
    assert llm["mode"] == "offline" and llm["providers"] == {}
    assert llm["tiering"]["decisions"] == served.tiering.stats().decisions > 0


async def test_a_report_that_fails_is_a_503_with_a_json_error() -> None:
    async def broken() -> StatsReport:
        raise RuntimeError("database is locked")

    ops = OpsServer(Metrics(), healthy, report=broken, port=0)
    port = await ops.start()
    try:
        status, kind, body = await _get(f"http://127.0.0.1:{port}/llm/stats")
    finally:
        await ops.stop()
    assert (status, kind) == (503, "application/json")
    assert body == {"error": "the stats report is unavailable"}


async def test_without_a_report_there_are_no_stats_endpoints() -> None:
    ops = OpsServer(Metrics(), healthy, port=0)
    port = await ops.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/cache/stats") as resp:
                assert resp.status == 404
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
    finally:
        await ops.stop()
