"""The turn as a stream of events: statuses, generate's reply as the model writes it (read out
of the streamed JSON), then the suggestion. Real SDK providers and the router against the fake
LLM server, so the deltas come from real streamed chunks."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_llm import ParsedRequest, default_answerer
from engine.errors import EmptyMessage
from engine.events import Done, ReplyDelta, Status, TurnEvent
from engine.llm.offline import OfflineProvider
from engine.llm.reply_stream import ReplyExtractor
from engine.model import Draft, Suggestion, ThreadContext, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import CachedAnswer, Provider
from engine.settings import Settings
from storage import SqliteStore
from tests.llm_kit import GPT4O, MINI, SONNET, Kit, request

pytestmark = pytest.mark.timeout(20)

PRICE = "We already use Gong and honestly it's too expensive for us"


def turn(text: str = PRICE, n: int = 1) -> TurnInput:
    return TurnInput(ThreadKey("T", "C", f"t{n}"), text, f"m{n}")


async def events_of(engine: Engine, t: TurnInput) -> list[tuple[float, TurnEvent]]:
    out: list[tuple[float, TurnEvent]] = []
    async for event in engine.stream(t):
        out.append((time.perf_counter(), event))
    return out


def deltas(events: list[tuple[float, TurnEvent]]) -> list[str]:
    return [e.text for _, e in events if isinstance(e, ReplyDelta)]


def final(events: list[tuple[float, TurnEvent]]) -> Suggestion:
    last = events[-1][1]
    assert isinstance(last, Done)
    return last.suggestion


def engine_over(llm: Provider, store: SqliteStore, **settings: Any) -> Engine:
    return Engine(llm=llm, store=store, settings=Settings(**settings), playbook=default_playbook())


# Reading the reply out of partial JSON -------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 17])
def test_the_reply_is_read_out_of_the_json_as_it_streams(size: int) -> None:
    reply = 'Fair point: "Gong" costs more. \u00e9t\u00e9 \\ next\nWhat would  change it?'
    answer = "```json\n" + json.dumps({"reply": "  " + reply + "  ", "coaching_tip": "x"})
    extractor = ReplyExtractor()
    pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
    out = [extractor.feed(p) for p in pieces]
    assert "".join(out) == reply  # stripped like the contract strips it, escapes decoded
    # It streamed: text came out while the answer was still arriving.
    first = next(i for i, d in enumerate(out) if d)
    assert first < len(pieces) // 2


def test_text_before_the_reply_or_outside_json_shows_nothing() -> None:
    extractor = ReplyExtractor()
    assert extractor.feed("Sure! Here is ") == ""
    assert extractor.feed('{"coaching_tip": "ask", "rep') == ""
    assert extractor.feed('ly": "Hi') == "Hi"
    assert extractor.feed(" ") == ""  # trailing space waits for what follows
    assert extractor.feed('there"}') == " there"


async def test_a_provider_asked_directly_streams_the_reply_too(kit: Kit) -> None:
    pieces: list[str] = []
    result = await kit.openai().complete(request("generate", on_reply=pieces.append))
    assert isinstance(result.value, Draft)
    assert len(pieces) > 1 and "".join(pieces) == result.value.reply


# The engine's stream --------------------------------------------------------------------------


async def test_reply_deltas_stream_before_the_card_and_add_up_to_its_reply(
    kit: Kit, store: SqliteStore
) -> None:
    kit.server.faults.add("slow", step="generate", delay=0, per_chunk=0.03, times=None)
    router = kit.router([kit.openai()], mode="single")
    started = time.perf_counter()
    events = await events_of(engine_over(router, store), turn())
    s = final(events)
    pieces = deltas(events)
    assert len(pieces) > 5 and "".join(pieces) == s.reply
    statuses = [e for _, e in events if isinstance(e, Status)]
    assert statuses[0] == Status("analyse")
    assert statuses[-1] == Status("generate", s.situation)
    first_delta = next(at for at, e in events if isinstance(e, ReplyDelta))
    done_at = events[-1][0]
    # The first words were out well before the card: most of generate's stream was still to come.
    chunks = kit.server.find(step="generate")[0].chunks_sent
    assert done_at - first_delta > 0.6 * chunks * 0.03
    print(
        f"\nfirst reply text {1000 * (first_delta - started):.0f} ms, "
        f"card {1000 * (done_at - started):.0f} ms, {len(pieces)} deltas"
    )
    await router.aclose()


async def test_offline_reply_arrives_as_one_delta_just_before_the_card(
    store: SqliteStore,
) -> None:
    events = await events_of(engine_over(OfflineProvider(), store), turn())
    assert deltas(events) == [final(events).reply]
    assert isinstance(events[-2][1], ReplyDelta)


async def test_handle_is_the_streams_last_event(store: SqliteStore) -> None:
    engine = engine_over(OfflineProvider(), store)
    s = await engine.handle(turn())
    stored = await engine.answered("m1")
    assert stored is not None and stored.id == s.id  # stored before the stream ended
    with pytest.raises(EmptyMessage):  # the turn's error comes out of the stream
        await engine.handle(turn("   ", 2))


class OneEntryCache:
    def __init__(self) -> None:
        self.saved: Suggestion | None = None

    async def lookup(self, text: str, context: ThreadContext) -> CachedAnswer | None:
        return CachedAnswer(self.saved, "exact", 0.1) if self.saved else None

    async def store(self, text: str, context: ThreadContext, suggestion: Suggestion) -> None:
        self.saved = suggestion

    async def forget(self, suggestion_id: str) -> None:
        self.saved = None

    def stats(self) -> Mapping[str, object]:
        return {}


async def test_a_cache_hit_is_the_whole_card_at_once(store: SqliteStore) -> None:
    cache = OneEntryCache()
    engine = Engine(
        llm=OfflineProvider(),
        store=store,
        settings=Settings(),
        playbook=default_playbook(),
        cache=cache,
    )
    await engine.handle(turn(n=1))
    events = await events_of(engine, turn(n=2))
    assert [type(e) for _, e in events] == [Done]
    assert final(events).cache == "exact"


async def test_no_hedge_fires_once_the_rep_is_reading_a_reply(kit: Kit, store: SqliteStore) -> None:
    # The first provider is slow to start, then writes; the hedge it triggered hangs. A third
    # provider would be hedged next, but by then the first one's reply is on screen.
    first, hedge, third = kit.anthropic(SONNET), kit.openai(GPT4O), kit.openai(MINI)
    # Hedges are due at 0.5 s and 1.0 s; the first text comes at about 0.75 s.
    kit.server.faults.add("slow", model=SONNET, step="generate", delay=0.75, per_chunk=0.02)
    kit.server.faults.add("hang", model=GPT4O, step="generate")
    router = kit.router(
        {"powerful": [first, hedge, third]}, mode="hedge", hedge_prior_s={"powerful": 0.5}
    )
    events = await events_of(engine_over(router, store), turn())
    s = final(events)
    gen = next(c for c in s.calls if c.step == "generate")
    assert gen.model == SONNET
    assert "".join(deltas(events)) == s.reply
    assert kit.server.count(model=MINI, step="generate") == 0
    assert kit.server.count(model=GPT4O, step="generate") == 1  # the hedge before any text
    await router.aclose()


def disagreeing(req: ParsedRequest) -> str:
    """Detect says scheduling (the rules say price objection); the rest as the offline tier."""
    if req.step == "detect":
        return json.dumps({"situation": "scheduling", "confidence": 0.95, "secondary": None})
    return default_answerer(req)


@pytest.mark.parametrize("agree", [True, False])
async def test_a_speculative_draft_is_shown_only_once_its_strategy_is_confirmed(
    kit: Kit, store: SqliteStore, tmp_path: Path, agree: bool
) -> None:
    if not agree:
        kit.server.answerer = disagreeing
    # Detect is slow; the speculative draft streams meanwhile, its text held back.
    kit.server.faults.add("slow", step="detect", delay=0.4, times=None)
    kit.server.faults.add("slow", step="generate", delay=0, per_chunk=0.01, times=None)
    router = kit.router([kit.openai()], mode="single")
    engine = engine_over(router, store, speculative=True)
    events = await events_of(engine, turn())
    s = final(events)
    kinds = [e for _, e in events]
    generate_at = kinds.index(Status("generate", s.situation))
    assert all(not isinstance(e, ReplyDelta) for e in kinds[:generate_at])
    assert "".join(deltas(events)) == s.reply
    outcome = "kept" if agree else "wasted"
    assert engine.speculation[outcome] == 1
    if agree:  # the held text went out in one piece the moment detect confirmed it
        assert isinstance(kinds[generate_at + 1], ReplyDelta)
    await router.aclose()
