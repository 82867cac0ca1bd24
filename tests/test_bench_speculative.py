"""Speculative generation (settings.speculative): generate on the offline tier's guess while
capture and detect run; keep the draft when the LLM's analysis picks the same strategy."""

from __future__ import annotations

import asyncio

from engine.llm.offline import OfflineProvider
from engine.model import Capture, Detection, StepCall, ThreadKey, TurnInput
from engine.pipeline.orchestrator import Engine
from engine.playbook import default_playbook
from engine.ports import StepRequest, StepResult
from engine.settings import Settings
from storage import SqliteStore

KEY = ThreadKey("T1", "C1", "spec")
PRICE = "We already use Gong and honestly it's too expensive for us"


def turn(text: str, n: int = 1, key: ThreadKey = KEY) -> TurnInput:
    return TurnInput(key=key, text=text, message_id=f"m{n}-{key.thread}")


class Disagrees(OfflineProvider):
    """Detect says `situation` (unlike the rules); generate takes `gen_delay` seconds."""

    def __init__(self, situation: str, gen_delay: float = 0.0) -> None:
        super().__init__()
        self.situation, self.gen_delay = situation, gen_delay
        self.requests: list[StepRequest] = []
        self.cancelled = 0

    async def complete(self, request: StepRequest) -> StepResult:
        self.requests.append(request)
        if request.step == "detect":
            return StepResult(
                Detection(self.situation, 0.95), StepCall("detect", "x", "m", 1.0)
            )
        if request.step == "capture":
            await asyncio.sleep(0.01)
            return StepResult(Capture({}, 0.9), StepCall("capture", "x", "m", 1.0))
        try:
            await asyncio.sleep(self.gen_delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.complete_now(request)


async def test_agreeing_guess_keeps_the_draft_and_matches_the_plain_pipeline(
    store: SqliteStore,
) -> None:
    plain = Engine(
        llm=OfflineProvider(), store=store, settings=Settings(), playbook=default_playbook()
    )
    spec = Engine(
        llm=OfflineProvider(),
        store=store,
        settings=Settings(speculative=True),
        playbook=default_playbook(),
    )
    a = await plain.handle(turn(PRICE, 1, ThreadKey("T", "C", "plain")))
    b = await spec.handle(turn(PRICE, 1, ThreadKey("T", "C", "spec")))
    for field in ("situation", "strategy", "reply", "coaching_tip", "slots", "slots_delta"):
        assert getattr(a, field) == getattr(b, field), field
    assert spec.speculation == {"started": 1, "kept": 1, "wasted": 0}
    assert plain.speculation["started"] == 0


async def test_disagreeing_detection_regenerates_and_cancels_the_guess(
    store: SqliteStore,
) -> None:
    llm = Disagrees("scheduling", gen_delay=0.5)
    eng = Engine(
        llm=llm, store=store, settings=Settings(speculative=True), playbook=default_playbook()
    )
    s = await asyncio.wait_for(eng.handle(turn(PRICE)), 0.4 + 0.5 + 0.3)
    assert s.situation == "scheduling"
    assert s.strategy == default_playbook().select("scheduling", s.slots).name
    generates = [r for r in llm.requests if r.step == "generate"]
    assert len(generates) == 2
    assert generates[0].detection is not None and generates[0].detection.situation != "scheduling"
    assert generates[1].detection == Detection("scheduling", 0.95)
    assert eng.speculation == {"started": 1, "kept": 0, "wasted": 1}
    await asyncio.sleep(0)
    assert llm.cancelled == 1  # the thrown-away draft's request was cancelled, not awaited


async def test_speculation_overlaps_generate_with_analysis(store: SqliteStore) -> None:
    class Slow(OfflineProvider):
        async def complete(self, request: StepRequest) -> StepResult:
            await asyncio.sleep(0.2)
            return self.complete_now(request)

    eng = Engine(
        llm=Slow(), store=store, settings=Settings(speculative=True), playbook=default_playbook()
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    s = await eng.handle(turn("Does it integrate with HubSpot?"))
    # capture ∥ detect ∥ generate: one round trip (plus reconcile if it fires), not two.
    rounds = 2 if s.reconciled else 1
    assert loop.time() - t0 < 0.2 * rounds + 0.15
    assert eng.speculation["kept"] == 1
