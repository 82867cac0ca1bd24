"""`sales-agent eval --knowledge DIR`: how often a card uses the right knowledge section.

Every probe of the grounding set is coached twice, each time in a fresh thread holding the
probe's `thread_slots`, through the whole engine (capture ∥ detect, reconcile, select,
retrieval, generate):

- **offline**: the offline tier, which quotes the retrieved sections itself;
- **fake-llm**: the OpenAI provider over real sockets to `devtools.fake_llm`, whose answerer
  writes generate's reply from the `<knowledge>` sections it finds in the prompt (with the
  offline tier's quoting). So this figure measures retrieval, the prompt's knowledge block and
  the citation through the real wire; it says nothing of how well a real model uses the facts.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from engine.cache.embedders import build_embedder
from engine.knowledge import KnowledgeIndex
from engine.knowledge.grounding import Probe, score_run
from engine.llm.factory import build_llm
from engine.model import SlotValue, Suggestion, ThreadContext, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import Playbook
from engine.settings import Settings
from storage import SqliteStore

MODES = ("offline", "fake-llm")


class _Seeded:
    """The store, with each probe's thread starting from the slots the probe says it knew."""

    def __init__(self, store: SqliteStore, seeds: Mapping[ThreadKey, Mapping[str, str]]) -> None:
        self._store = store
        self._seeds = seeds

    async def load(self, key: ThreadKey) -> ThreadContext:
        context = await self._store.load(key)
        seeded = {
            name: SlotValue(value, "seed", 0.0) for name, value in self._seeds.get(key, {}).items()
        }
        return replace(context, slots=seeded | dict(context.slots))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def run_mode(
    mode: str, settings: Settings, probes: Sequence[Probe], playbook: Playbook
) -> list[Suggestion]:
    from devtools.fake_llm import FakeLLMServer

    with tempfile.TemporaryDirectory() as tmp:
        base = replace(
            settings,
            db_path=Path(tmp) / "grounding.db",
            cache=False,
            providers=(),
            speculative=False,
        )
        server = FakeLLMServer(time_scale=0) if mode == "fake-llm" else None
        if server is not None:
            await server.start()
            fake = {"OPENAI_API_KEY": "fake", "OPENAI_BASE_URL": server.openai_base_url}
            base = replace(
                base,
                providers=Settings.from_env(fake).providers,
                router="single",
                embedder="minilm" if settings.embedder == "auto" else settings.embedder,
            )
        store = await SqliteStore.open(base.db_path)
        llm = await build_llm(base, calls=store, warm_up=False)
        try:
            assert base.knowledge_dir is not None
            knowledge = KnowledgeIndex(
                base.knowledge_dir,
                store=store.knowledge_rows(),
                embedder=build_embedder(base),
            )
            keys = [ThreadKey("grounding", mode, str(i)) for i in range(len(probes))]
            seeds = {k: p.thread_slots for k, p in zip(keys, probes, strict=True)}
            engine = Engine(
                llm=llm.provider,
                store=_Seeded(store, seeds),
                settings=base,
                playbook=playbook,
                tiering=llm.tiering,
                knowledge=knowledge,
            )
            limit = asyncio.Semaphore(4)

            async def coach(key: ThreadKey, probe: Probe) -> Suggestion:
                async with limit:
                    return await engine.handle(TurnInput(key, probe.text, f"{key}:1"))

            await knowledge.refresh("grounding")  # index once, before the turns race for it
            return list(
                await asyncio.gather(*(coach(k, p) for k, p in zip(keys, probes, strict=True)))
            )
        finally:
            await llm.aclose()
            await store.close()
            if server is not None:
                await server.close()


async def run(
    settings: Settings,
    probes: Sequence[Probe],
    playbook: Playbook,
    grounding: Path,
    as_json: bool,
    stdout: TextIO,
) -> int:
    report: dict[str, Any] = {"grounding": str(grounding), "knowledge": str(settings.knowledge_dir)}
    for mode in MODES:
        cards = await run_mode(mode, settings, probes, playbook)
        report[mode] = score_run(zip(probes, cards, strict=True))
    if as_json:
        print(json.dumps(report), file=stdout)
        return 0
    print(f"{grounding}: {len(probes)} probes against {settings.knowledge_dir}", file=stdout)
    print(
        f"  {'mode':10} {'retrieval hit':>13} {'term hit':>9} {'card term':>9} {'both':>6} "
        f"{'situation':>9}",
        file=stdout,
    )
    for mode in MODES:
        r = report[mode]
        print(
            f"  {mode:10} {r['retrieval_hit']:>13.3f} {r['term_hit']:>9.3f} "
            f"{r['card_term_hit']:>9.3f} {r['both']:>6.3f} {r['situation_accuracy']:>9.3f}",
            file=stdout,
        )
    print("  by expected file (offline retrieval / term):", file=stdout)
    for name, r in report["offline"]["by_file"].items():
        print(
            f"    {name:32} n={r['n']:<3} {r['retrieval_hit']:.3f} / {r['term_hit']:.3f}",
            file=stdout,
        )
    return 0
