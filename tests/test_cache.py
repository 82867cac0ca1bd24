"""The response cache: tiers, guard, persistence, invalidation and stats, through the real
Engine and SqliteStore where it matters."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engine.cache import build_cache
from engine.cache.calibration import load_pairs
from engine.cache.embedders import (
    DEFAULT_THRESHOLDS,
    EmbedderUnavailable,
    LazyEmbedder,
    build_embedder,
    threshold_for,
)
from engine.cache.fingerprint import answer_version, canonical_context, fingerprint, message_text
from engine.cache.minilm import MiniLMEmbedder
from engine.cache.openai_embedder import OpenAIEmbedder
from engine.cache.response_cache import TwoTierCache
from engine.data import DATA
from engine.llm.offline import OfflineProvider
from engine.model import SlotValue, Suggestion, ThreadContext, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.settings import ProviderSettings, Settings
from storage import SqliteStore
from storage.cache_store import SqliteCacheStore
from tests.cache_kit import Clock, WordsEmbedder

F32 = npt.NDArray[np.float32]
MINILM_THRESHOLD = DEFAULT_THRESHOLDS[MiniLMEmbedder.name]

PRICE = "Honestly it's just too expensive for a team our size"
PRICE_REWORDED = "It's honestly too pricey for a team of our size"
GONG = "We already use Gong and it's too expensive"


# Helpers ----------------------------------------------------------------------------------


class TableEmbedder:
    """MiniLM vectors computed once in a batch, served per message as the cache asks."""

    name = MiniLMEmbedder.name
    dim = MiniLMEmbedder.dim

    def __init__(self, model: MiniLMEmbedder, texts: Sequence[str]) -> None:
        keys = sorted({message_text(t) for t in texts})
        self.table = dict(zip(keys, model.encode(keys), strict=True))

    async def embed(self, texts: Sequence[str]) -> F32:
        return np.stack([self.table[t] for t in texts])


class Failing:
    name = "failing"
    dim = 8

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> F32:
        self.calls += 1
        raise self.error


def context(name: str = "t", **slots: str) -> ThreadContext:
    return ThreadContext(
        key=ThreadKey("T", "C", name),
        slots={k: SlotValue(v, "m0", 0.0) for k, v in slots.items()},
    )


def suggestion(n: int, reply: str | None = None) -> Suggestion:
    return Suggestion(
        id=f"s{n}",
        key=ThreadKey("T", "C", str(n)),
        message_id=f"m{n}",
        reply=reply or f"reply {n}",
        coaching_tip="tip",
        situation="price_objection",
        confidence=0.9,
        secondary=None,
        strategy="value",
        talk_track="",
        slots_delta={"objection": "too expensive"},
        slots={"objection": "too expensive"},
        cache="miss",
        calls=(),
        step_ms={},
        latency_ms=3.0,
        reconciled=False,
    )


def turn(thread: str, text: str, n: int = 1) -> TurnInput:
    return TurnInput(key=ThreadKey("T", "C", thread), text=text, message_id=f"{thread}-{n}")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    # The Makefile installs the weights; without them this fails rather than skips.
    return MiniLMEmbedder()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """OpenBLAS with one thread while the block runs, when numpy's bundled OpenBLAS is found.

    On a busy machine (more runnable threads than cores) OpenBLAS's spinning worker threads
    make small matrix products 10-50x slower; one thread keeps a batch encode in seconds.
    """
    libs = sorted(Path(np.__file__).parent.parent.glob("numpy.libs/libscipy_openblas*.so"))
    try:
        lib = ctypes.CDLL(str(libs[0]))
        get, put = lib.scipy_openblas_get_num_threads64_, lib.scipy_openblas_set_num_threads64_
    except (IndexError, OSError, AttributeError):
        yield
        return
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)


@pytest.fixture(scope="module")
def dataset_vectors(minilm: MiniLMEmbedder) -> TableEmbedder:
    """MiniLM vectors of both labelled sets, computed in one batch for the module."""
    pairs = load_pairs(DATA / "hard_negatives.jsonl") + load_pairs(DATA / "paraphrases.jsonl")
    with one_blas_thread():
        return TableEmbedder(minilm, [t for p in pairs for t in (p.a, p.b)])


class Stack:
    """Engine + SqliteStore + cache persisted in the same file, reopenable for restarts."""

    def __init__(self, path: Path, embedder: object, version: str = "v1") -> None:
        self.path, self.embedder, self.version = path, embedder, version

    async def open(self) -> Stack:
        self.store = await SqliteStore.open(self.path)
        self.cache = TwoTierCache(
            version=self.version,
            embedder=self.embedder,  # type: ignore[arg-type]
            threshold=MINILM_THRESHOLD if self.embedder is not None else None,
            persistence=SqliteCacheStore(self.store),
            suggestion_of=self.store.suggestion,
        )
        await self.cache.load()
        self.engine = Engine(
            llm=OfflineProvider(),
            store=self.store,
            settings=Settings(db_path=self.path),
            playbook=default_playbook(),
            cache=self.cache,
            calls=self.store,
        )
        return self

    async def close(self) -> None:
        await self.cache.aclose()
        await self.store.close()

    async def ask(self, thread: str, text: str, n: int = 1) -> Suggestion:
        return await self.engine.handle(turn(thread, text, n))


@pytest.fixture
async def stack(tmp_path: Path, minilm: MiniLMEmbedder) -> AsyncIterator[Stack]:
    s = await Stack(tmp_path / "agent.db", minilm).open()
    yield s
    await s.close()


# Through the engine -----------------------------------------------------------------------


async def test_exact_repeat_is_served_from_the_exact_tier(stack: Stack) -> None:
    first = await stack.ask("a", GONG)
    again = await stack.ask("b", GONG)
    assert first.cache == "miss" and again.cache == "exact"
    assert again.reply == first.reply and again.situation == first.situation
    assert again.id != first.id and again.calls == ()
    assert "cache" in again.step_ms
    # The cached slot delta is applied to the new thread.
    assert again.slots_delta == first.slots_delta
    assert (await stack.store.load(ThreadKey("T", "C", "b"))).values()["competitor"] == "Gong"


async def test_paraphrase_in_the_same_context_is_semantic(stack: Stack) -> None:
    first = await stack.ask("a", PRICE)
    reworded = await stack.ask("b", PRICE_REWORDED)
    assert first.cache == "miss"
    assert reworded.cache == "semantic"
    assert reworded.reply == first.reply


async def test_same_words_in_another_context_miss(stack: Stack) -> None:
    await stack.ask("a", "We use Gong today")
    in_gong_thread = await stack.ask("a", PRICE, 2)  # context now knows the competitor
    fresh_thread = await stack.ask("b", PRICE)  # empty context: another fingerprint
    assert in_gong_thread.cache == "miss"
    assert fresh_thread.cache == "miss"
    # The same context again does hit: first message, then the price message.
    await stack.ask("c", "We use Gong today")
    assert (await stack.ask("c", PRICE, 2)).cache == "exact"


async def test_a_disliked_answer_is_never_served_again(tmp_path: Path, stack: Stack) -> None:
    original = await stack.ask("a", GONG)
    served = await stack.ask("b", GONG)
    assert served.cache == "exact"
    # The rep dislikes the copy served from the cache: its entry goes, and stays gone.
    assert await stack.engine.feedback(served.id, positive=False)
    after = await stack.ask("c", GONG)
    assert after.cache == "miss"
    assert (await stack.ask("d", GONG)).cache == "miss"  # the same answer is not cached again
    assert stack.cache.stats().blocked == 1
    assert original.reply == after.reply  # the offline tier writes it again; it is not cached
    await stack.close()
    reopened = await Stack(stack.path, stack.embedder).open()
    try:
        assert (await reopened.ask("e", GONG)).cache == "miss"
        assert reopened.cache.stats().blocked == 1
    finally:
        await reopened.close()
        stack.cache, stack.store = reopened.cache, reopened.store


async def test_dislike_on_the_original_evicts_its_entry(stack: Stack) -> None:
    original = await stack.ask("a", PRICE)
    await stack.engine.feedback(original.id, positive=False)
    assert (await stack.ask("b", PRICE)).cache == "miss"
    assert (await stack.ask("c", PRICE_REWORDED)).cache == "miss"
    assert stack.cache.stats().evicted == {"disliked": 1}


async def test_a_like_changes_nothing(stack: Stack) -> None:
    original = await stack.ask("a", PRICE)
    await stack.engine.feedback(original.id, positive=True)
    assert (await stack.ask("b", PRICE)).cache == "exact"


async def test_regenerate_bypasses_the_cache(stack: Stack) -> None:
    first = await stack.ask("a", PRICE)
    assert (await stack.ask("b", PRICE)).cache == "exact"
    lookups = stack.cache.stats().since_start.lookups
    again = await stack.engine.regenerate(first.id)
    assert again is not None and again.cache == "bypass"
    assert stack.cache.stats().since_start.lookups == lookups
    # The fresh answer is kept, under the context the thread has now.
    assert stack.cache.stats().size == 2


async def test_storing_the_same_message_and_context_replaces_the_entry() -> None:
    cache = TwoTierCache(version="v1")
    await cache.store(PRICE, context(), suggestion(1, "first answer"))
    await cache.store(PRICE, context(), suggestion(2, "second answer"))
    hit = await cache.lookup(PRICE, context())
    assert hit is not None and hit.suggestion.reply == "second answer"
    assert cache.stats().evicted == {"replaced": 1} and cache.stats().size == 1


async def test_a_restart_keeps_entries_and_vectors(stack: Stack) -> None:
    await stack.ask("a", PRICE)
    await stack.ask("a2", "Does it integrate with HubSpot?")
    await stack.close()
    reopened = await Stack(stack.path, stack.embedder).open()
    stack.cache, stack.store = reopened.cache, reopened.store
    stats = reopened.cache.stats()
    assert stats.size == 2 and stats.vectors == 2
    assert (await reopened.ask("b", PRICE)).cache == "exact"
    assert (await reopened.ask("c", PRICE_REWORDED)).cache == "semantic"
    assert (await reopened.ask("d", "Is there a HubSpot integration?")).cache == "semantic"


async def test_a_new_answer_version_drops_old_entries(stack: Stack) -> None:
    await stack.ask("a", PRICE)
    await stack.close()
    reopened = await Stack(stack.path, stack.embedder, version="v2").open()
    stack.cache, stack.store = reopened.cache, reopened.store
    assert reopened.cache.stats().size == 0
    assert reopened.cache.stats().evicted == {"stale": 1}
    assert (await reopened.ask("b", PRICE)).cache == "miss"
    await reopened.cache.flush()
    rows = await reopened.store.run(
        lambda: reopened.store.db.execute("SELECT version FROM cache_entries").fetchall()
    )
    assert rows == [("v2",)]


async def test_stats_reach_the_engine_report(stack: Stack) -> None:
    await stack.ask("a", PRICE)
    await stack.ask("b", PRICE)
    await stack.ask("c", PRICE_REWORDED)
    await stack.ask("d", "We don't have budget for this until Q3")
    cache = (await stack.engine.stats()).cache.to_json()
    assert cache["exact_hits"] == 1 and cache["semantic_hits"] == 1  # from the stored turns
    assert cache["size"] == 2 and cache["embedder"] == MiniLMEmbedder.name
    assert cache["semantic"] == "on" and cache["threshold"] == MINILM_THRESHOLD
    assert cache["since_start"]["lookups"] == 4
    for key in ("lookup_ms", "lookup_ms_exact_hits", "lookup_ms_embedded"):
        assert set(cache[key]) == {"p50", "p95", "p99"}
    assert {"evictions", "guard_rejections", "guard_reasons", "blocked"} <= set(cache)


# The cache alone --------------------------------------------------------------------------


async def test_without_an_embedder_the_exact_tier_still_works() -> None:
    cache = TwoTierCache(version="v1", embedder=None)
    await cache.store(PRICE, context(), suggestion(1))
    hit = await cache.lookup("  honestly it's JUST too expensive for a team our size ", context())
    assert hit is not None and hit.tier == "exact"
    assert await cache.lookup(PRICE_REWORDED, context()) is None
    stats = cache.stats()
    assert stats.embedder == "off" and stats.semantic == "off: no embedder"
    assert stats.threshold is None and stats.vectors == 0


async def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = TwoTierCache(
        version="v1", embedder=WordsEmbedder(), threshold=0.8, ttl_s=60, clock=clock
    )
    await cache.store("we need twelve seats for the sales team", context(), suggestion(1))
    clock.now += 59
    assert await cache.lookup("we need twelve seats for the sales team", context())
    semantic = await cache.lookup("we need twelve seats for the sales team please", context())
    assert semantic is not None and semantic.tier == "semantic"
    clock.now += 2
    assert await cache.lookup("we need twelve seats for the sales team please", context()) is None
    assert await cache.lookup("we need twelve seats for the sales team", context()) is None
    assert cache.stats().evicted == {"expired": 1} and cache.stats().size == 0


async def test_the_least_recently_used_entry_is_evicted(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "lru.db")
    clock = Clock()

    def tick() -> float:
        clock.now += 1
        return clock.now

    try:
        cache = TwoTierCache(
            version="v1",
            embedder=WordsEmbedder(),
            threshold=0.99,
            max_entries=3,
            persistence=SqliteCacheStore(store),
            clock=tick,
        )
        for n, text in enumerate(("alpha one", "bravo two", "charlie three"), start=1):
            await cache.store(text, context(), suggestion(n))
        assert await cache.lookup("alpha one", context())  # alpha is now the most recent
        await cache.store("delta four", context(), suggestion(4))
        assert await cache.lookup("bravo two", context()) is None
        for text in ("charlie three", "alpha one", "delta four"):
            assert await cache.lookup(text, context()), text
        stats = cache.stats()
        assert stats.evicted == {"lru": 1} and stats.size == 3 and stats.vectors == 3
        await cache.flush()
        texts = await store.run(
            lambda: [r[0] for r in store.db.execute("SELECT text FROM cache_entries")]
        )
        assert sorted(texts) == ["alpha one", "charlie three", "delta four"]
        # A restart rebuilds the same order: charlie is the oldest now.
        again = TwoTierCache(
            version="v1", max_entries=3, persistence=SqliteCacheStore(store), clock=tick
        )
        assert await again.load() == 3
        await again.store("echo five", context(), suggestion(5))
        assert await again.lookup("charlie three", context()) is None
        await again.flush()
    finally:
        await store.close()


async def test_an_embedder_that_fails_leaves_the_exact_tier_working() -> None:
    flaky = Failing(TimeoutError("slow network"))
    cache = TwoTierCache(version="v1", embedder=flaky, threshold=0.9)  # type: ignore[arg-type]
    await cache.store(PRICE, context(), suggestion(1))
    assert await cache.lookup(PRICE_REWORDED, context()) is None
    hit = await cache.lookup(PRICE, context())
    assert hit is not None and hit.tier == "exact"
    stats = cache.stats()
    assert stats.since_start.embed_errors == 2 and stats.semantic == "on"

    broken = Failing(EmbedderUnavailable("weights missing"))
    cache = TwoTierCache(version="v1", embedder=broken, threshold=0.9)  # type: ignore[arg-type]
    assert await cache.lookup(PRICE, context()) is None
    assert await cache.lookup(PRICE, context()) is None
    assert broken.calls == 1
    assert str(cache.stats().semantic).startswith("off: embedder unavailable")


async def test_an_unreachable_embedder_does_not_stop_start_up() -> None:
    down = Failing(ConnectionError("embeddings endpoint down"))
    cache = TwoTierCache(version="v1", embedder=down, threshold=0.9)  # type: ignore[arg-type]
    await cache.warm_up()  # logs, does not raise
    assert down.calls == 1
    assert await cache.lookup(PRICE, context()) is None  # and lookups still answer


async def test_every_hard_negative_pair_misses(dataset_vectors: TableEmbedder) -> None:
    pairs = load_pairs(DATA / "hard_negatives.jsonl")
    embedder = dataset_vectors
    cache = TwoTierCache(version="v1", embedder=embedder, threshold=MINILM_THRESHOLD)
    over_threshold = 0
    for i, pair in enumerate(pairs):
        for j, (cached, new) in enumerate(((pair.a, pair.b), (pair.b, pair.a))):
            scope = context(team_size=f"{i}-{j}")  # each pair in its own context
            await cache.store(cached, scope, suggestion(2 * i + j))
            assert await cache.lookup(new, scope) is None, (pair.kind, cached, new)
        va, vb = embedder.table[message_text(pair.a)], embedder.table[message_text(pair.b)]
        over_threshold += float(va @ vb) >= MINILM_THRESHOLD
    # The similarity alone would have served most of them: the guard turned them away.
    assert over_threshold >= 60
    assert cache.stats().guard_rejections >= 2 * over_threshold


async def test_most_paraphrases_hit_the_semantic_tier(dataset_vectors: TableEmbedder) -> None:
    pairs = load_pairs(DATA / "paraphrases.jsonl")
    embedder = dataset_vectors
    cache = TwoTierCache(version="v1", embedder=embedder, threshold=MINILM_THRESHOLD)
    hits = 0
    for i, pair in enumerate(pairs):
        scope = context(team_size=str(i))
        await cache.store(pair.a, scope, suggestion(i))
        hit = await cache.lookup(pair.b, scope)
        hits += hit is not None and hit.tier == "semantic"
    # About two thirds at 0.70 (`sales-agent guard`); a floor, so a regression shows.
    assert hits / len(pairs) >= 0.55


# Keys, versions and embedders -------------------------------------------------------------


def test_the_fingerprint_keeps_the_slots_that_change_the_answer() -> None:
    a = {"competitor": "Gong", "team_size": "40", "next_step": "send a deck"}
    b = {"team_size": "40 ", "competitor": "gong."}
    assert fingerprint(a) == fingerprint(b)
    assert canonical_context(a) == "competitor=gong;team_size=40"
    assert fingerprint({}) == fingerprint({"next_step": "demo"})
    assert fingerprint(a) != fingerprint(a | {"budget_signal": "$50k"})
    assert fingerprint({"competitor": "Gong"}) != fingerprint({"competitor": "Clari"})


def test_the_answer_version_follows_prompts_and_models() -> None:
    base = Settings()
    assert answer_version(base, ["offline"]) == answer_version(Settings(), ["offline"])
    assert answer_version(base, ["offline"]) != answer_version(
        replace(base, prompt_style="verbose"), ["offline"]
    )
    keyed = replace(base, providers=(ProviderSettings.native("openai", "k"),))
    gpt5 = (ProviderSettings.native("openai", "k", powerful_model="gpt-5"),)
    assert answer_version(keyed) != answer_version(replace(keyed, providers=gpt5))
    assert answer_version(base, ["offline"]) != answer_version(base, ["anthropic", "openai"])


def test_settings_choose_the_embedder_and_threshold() -> None:
    assert build_embedder(Settings(embedder="none")) is None
    assert build_embedder(Settings(embedder="openai")) is None  # no key
    local = build_embedder(Settings(embedder="auto"))
    assert isinstance(local, LazyEmbedder) and not local.loaded
    assert threshold_for(local, Settings()) == MINILM_THRESHOLD
    assert threshold_for(local, Settings(semantic_threshold=0.8)) == 0.8
    remote = build_embedder(
        Settings(embedder="auto", providers=(ProviderSettings.native("openai", "k"),))
    )
    assert isinstance(remote, OpenAIEmbedder) and remote.name == "text-embedding-3-small"
    assert threshold_for(remote) == 0.92
    assert build_cache(Settings(cache=False)) is None
    off = build_cache(Settings(embedder="none"))
    assert off is not None and off.stats().embedder == "off"


async def test_the_openai_embedder_against_a_fake_server() -> None:
    from devtools.fake_llm.server import FakeLLMServer

    async with FakeLLMServer(answerer=lambda req: "{}", time_scale=0, seed=1) as server:
        embedder = OpenAIEmbedder(api_key="test", base_url=server.openai_base_url)
        try:
            vectors = await embedder.embed(["the price is too high", "does it do SSO?"])
            assert vectors.shape == (2, 1536) and vectors.dtype == np.float32
            assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
            cache = TwoTierCache(version="v1", embedder=embedder, threshold=0.92)
            await cache.store("Our budget is $50k for this year", context(), suggestion(1))
            assert await cache.lookup("our budget is $50k for this year!", context())
            assert await cache.lookup("Our budget is $90k for this year", context()) is None
        finally:
            await embedder.aclose()
