"""One turn, end to end: cache, capture ∥ detect, reconcile, select, generate, persist.

`Engine.stream(turn)` runs it as a stream of events (engine.events): a status when a step
starts, generate's reply as the model writes it, then the suggestion. `Engine.handle(turn)`
is that stream's last event. A cache hit has no deltas: its card is whole at once. The offline
tier, and any provider that does not stream, gives the reply as one delta at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..deal import DealView, deal_view, next_question
from ..errors import EmptyMessage, StoreUnavailable, TurnNotSaved
from ..events import Done, ReplyDelta, Status, TurnEvent
from ..knowledge.chunk import Chunk
from ..knowledge.index import KnowledgeIndex
from ..locks import LocalThreadLocks
from ..model import (
    CacheTier,
    Capture,
    Citation,
    Detection,
    Draft,
    StepCall,
    Strategy,
    Suggestion,
    ThreadContext,
    ThreadKey,
    Tier,
    TurnInput,
    merge_slots,
)
from ..playbook import Playbook
from ..ports import (
    CallLog,
    ContextStore,
    LlmStatsSource,
    Provider,
    ResponseCache,
    StepResult,
    ThreadLocks,
)
from ..rules.capture import capture as rules_capture
from ..rules.detect import detect as rules_detect
from ..settings import Settings
from ..stats import StatsReport, build_report
from ..taxonomy import is_situation
from . import reconcile, steps

# Where a company fact has no place in the reply.
_NO_KNOWLEDGE = frozenset({"greeting", "not_interested"})

TierPolicy = Callable[[str, str, Mapping[str, str]], Tier]
Emit = Callable[[TurnEvent], None]


def always_powerful(step: str, text: str, context: Mapping[str, str]) -> Tier:
    return "powerful"


@dataclass(frozen=True, slots=True)
class Analysis:
    """What capture and detect found in one message, after reconcile."""

    capture: Capture
    detection: Detection
    merged: Mapping[str, str]
    reconcile_triggers: tuple[str, ...]
    results: tuple[StepResult, ...]
    step_ms: Mapping[str, float] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        *,
        llm: Provider,
        store: ContextStore,
        settings: Settings,
        playbook: Playbook,
        cache: ResponseCache | None = None,
        tiering: TierPolicy = always_powerful,
        calls: CallLog | None = None,
        llm_stats: LlmStatsSource | None = None,
        locks: ThreadLocks | None = None,
        knowledge: KnowledgeIndex | None = None,
    ) -> None:
        self.llm = llm
        self.store = store
        self.settings = settings
        self.playbook = playbook
        self.cache = cache
        self.tiering = tiering
        self.calls = calls
        self.llm_stats = llm_stats
        # Turns of a thread one at a time: in this process, or across instances (Postgres).
        self.locks: ThreadLocks = locks if locks is not None else LocalThreadLocks()
        self.knowledge = knowledge
        # Speculative generation (settings.speculative): drafts started, kept and thrown away.
        self.speculation = {"started": 0, "kept": 0, "wasted": 0}

    async def handle(self, turn: TurnInput) -> Suggestion:
        """Coach one prospect message: the suggestion, already stored with the thread."""
        async for event in self.stream(turn):
            if isinstance(event, Done):
                return event.suggestion
        raise AssertionError("a turn's stream ends with its suggestion")

    async def stream(self, turn: TurnInput) -> AsyncGenerator[TurnEvent, None]:
        """Coach one prospect message as events; the last is `Done` with the suggestion,
        already stored. Closing the stream early cancels the turn."""
        events: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
        task = asyncio.ensure_future(self._turn(turn, events.put_nowait))
        task.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (event := await events.get()) is not None:
                yield event
            yield Done(task.result())  # or the turn's error
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _turn(self, turn: TurnInput, emit: Emit) -> Suggestion:
        text, notes = self._bounded(turn.text)
        async with self.locks.hold(turn.key):
            started = time.perf_counter()
            if self.knowledge is not None:
                # Before the cache: a changed file re-versions it, so no answer outlives it.
                await self.knowledge.refresh(turn.key.team)
            context = await self.store.load(turn.key)
            suggestion = await self._cached(turn, text, context, started, notes)
            if suggestion is None:
                suggestion = await self._fresh(turn, text, context, started, notes, emit)
            try:
                await self.store.commit_turn(turn, suggestion)
            except StoreUnavailable as exc:
                raise TurnNotSaved(str(exc), suggestion) from exc
            # A fallback answer is a stopgap: serving it from the cache would outlive the outage.
            fresh = suggestion.cache in ("miss", "bypass") and not suggestion.offline
            if self.cache is not None and fresh:
                await self.cache.store(text, context, suggestion)
            return suggestion

    async def analyse(
        self,
        text: str,
        context: ThreadContext,
        deadline: float | None = None,
        emit: Emit | None = None,
    ) -> Analysis:
        emit = emit or _ignore
        emit(Status("analyse"))
        before = context.values()
        tier = self.tiering
        style = self.settings.prompt_style
        history = context.history
        vendors = await self._vendors(context.key.team)
        step_ms: dict[str, float] = {}
        t0 = time.perf_counter()
        if self.settings.pipeline == "sequential":
            captured, cap_result = await steps.capture(
                self.llm,
                text,
                before,
                history,
                tier("capture", text, before),
                style,
                deadline,
                vendors,
            )
            step_ms["capture"] = _ms(t0)
            merged = merge_slots(before, captured.slots)
            t1 = time.perf_counter()
            detection, det_result = await steps.detect(
                self.llm,
                text,
                merged,
                history,
                tier("detect", text, merged),
                style,
                deadline,
                vendors,
            )
            step_ms["detect"] = _ms(t1)
            return Analysis(captured, detection, merged, (), (cap_result, det_result), step_ms)

        (captured, cap_result), (detection, det_result) = await asyncio.gather(
            steps.capture(
                self.llm,
                text,
                before,
                history,
                tier("capture", text, before),
                style,
                deadline,
                vendors,
            ),
            steps.detect(
                self.llm,
                text,
                before,
                history,
                tier("detect", text, before),
                style,
                deadline,
                vendors,
            ),
        )
        step_ms["capture"] = cap_result.call.elapsed_ms
        step_ms["detect"] = det_result.call.elapsed_ms
        merged = merge_slots(before, captured.slots)
        fired = reconcile.triggers(
            detection,
            captured,
            before,
            min_confidence=self.settings.reconcile_confidence,
            max_new_slots=self.settings.reconcile_max_new_slots,
        )
        results: tuple[StepResult, ...] = (cap_result, det_result)
        if fired:
            emit(Status("reconcile"))
            t1 = time.perf_counter()
            detection, again = await steps.detect(
                self.llm,
                text,
                merged,
                history,
                tier("detect", text, merged),
                style,
                deadline,
                vendors,
            )
            step_ms["reconcile"] = _ms(t1)
            results += (again,)
        return Analysis(captured, detection, merged, fired, results, step_ms)

    async def reset(self, key: ThreadKey) -> None:
        async with self.locks.hold(key):
            await self.store.reset(key)

    async def feedback(self, suggestion_id: str, positive: bool) -> bool:
        stored = await self.store.record_feedback(suggestion_id, 1 if positive else -1)
        if stored and not positive and self.cache is not None:
            await self.cache.forget(suggestion_id)
        return stored

    async def answered(self, message_id: str) -> Suggestion | None:
        """The suggestion already made for a message: a turn resumed after a crash between
        the engine's commit and the caller's bookkeeping is not coached twice."""
        return await self.store.answer_to(message_id)

    async def regenerate(self, suggestion_id: str) -> Suggestion | None:
        """Answer the message behind a suggestion again, bypassing the cache."""
        turn = await self.store.turn_of(suggestion_id)
        if turn is None:
            return None
        return await self.handle(replace(turn, regenerate=True))

    async def deal(self, key: ThreadKey) -> DealView:
        """The thread's qualification so far: slots with provenance, score, risks, next steps."""
        context = await self.store.load(key)
        cards = None
        if self.knowledge is not None:
            cards = frozenset(c.lower() for c in await self.knowledge.competitors(key.team))
        return deal_view(
            self.playbook.deal,
            context.slots,
            situation=context.last_situation,
            turns=context.turns,
            battlecards=cards,
        )

    async def latest_thread(self, team: str, channel: str, user: str) -> ThreadKey | None:
        """The thread last coached for this user in this channel (a slash command has no
        thread of its own)."""
        return await self.store.latest_thread(team, channel, user)

    async def stats(self, window: int = 10_000) -> StatsReport:
        turns = await self.store.recent_turns(window)
        calls = await self.calls.recent_calls(window) if self.calls else ()
        return build_report(
            turns,
            calls,
            cache=self.cache.stats() if self.cache is not None else None,
            llm=self.llm_stats.stats() if self.llm_stats is not None else None,
        )

    async def _fresh(
        self,
        turn: TurnInput,
        text: str,
        context: ThreadContext,
        started: float,
        notes: tuple[str, ...],
        emit: Emit,
    ) -> Suggestion:
        # One budget for the whole turn, shared by its steps; past it the offline tier answers.
        deadline = started + self.settings.turn_budget_s
        reply = _ReplyFeed(emit)
        if self.settings.speculative:
            analysis, strategy, draft, gen_result, gen_ms, chunks = await self._speculate(
                text, context, deadline, emit, reply
            )
        else:
            analysis = await self.analyse(text, context, deadline, emit)
            strategy = steps.select(self.playbook, analysis.detection, analysis.merged)
            chunks = await self._retrieve(turn.key, text, analysis.merged, analysis.detection)
            emit(Status("generate", analysis.detection.situation))
            draft, gen_result, gen_ms = await self._generate(
                text,
                analysis.merged,
                context,
                analysis.detection,
                strategy,
                deadline,
                reply.write,
                chunks,
            )
        reply.finish(draft.reply)
        step_ms = dict(analysis.step_ms) | {"generate": gen_ms}
        calls = (*(r.call for r in analysis.results), gen_result.call)
        notes += fallback_notes(calls)
        return self._suggestion(
            turn,
            analysis.detection,
            strategy,
            draft,
            delta=analysis.capture.slots,
            slots=analysis.merged,
            cache="bypass" if turn.regenerate and self.cache is not None else "miss",
            calls=calls,
            step_ms=step_ms,
            started=started,
            triggers=analysis.reconcile_triggers,
            notes=notes,
            # What the draft says it used, else everything it was given.
            sources=draft.sources or tuple(c.citation for c in chunks),
        )

    async def _vendors(self, team: str) -> frozenset[str]:
        """The competitors the team has battlecards for: vendors the rules must know."""
        return await self.knowledge.competitors(team) if self.knowledge else frozenset()

    async def _retrieve(
        self, key: ThreadKey, text: str, slots: Mapping[str, str], detection: Detection
    ) -> tuple[Chunk, ...]:
        if self.knowledge is None or detection.situation in _NO_KNOWLEDGE:
            return ()
        found = await self.knowledge.retrieve(key.team, text, slots, detection.situation)
        return tuple(r.chunk for r in found)

    async def _generate(
        self,
        text: str,
        slots: Mapping[str, str],
        context: ThreadContext,
        detection: Detection,
        strategy: Strategy,
        deadline: float,
        on_reply: Callable[[str], None],
        knowledge: tuple[Chunk, ...] = (),
    ) -> tuple[Draft, StepResult, float]:
        t0 = time.perf_counter()
        draft, result = await steps.generate(
            self.llm,
            text,
            slots,
            context.history,
            detection,
            strategy,
            self.tiering("generate", text, slots),
            self.settings.prompt_style,
            deadline,
            on_reply,
            knowledge,
            replies=context.replies,
        )
        return draft, result, _ms(t0)

    async def _speculate(
        self,
        text: str,
        context: ThreadContext,
        deadline: float,
        emit: Emit,
        reply: _ReplyFeed,
    ) -> tuple[Analysis, Strategy, Draft, StepResult, float, tuple[Chunk, ...]]:
        """Generate on the offline tier's guess while capture and detect run; keep that draft
        when the LLM's analysis selects the same strategy, else cancel it and generate again.
        The draft's text is held back until its strategy is confirmed: a rep never reads a
        reply that is then taken back. Knowledge is retrieved once, on the guess, for both."""
        before = context.values()
        vendors = await self._vendors(context.key.team)
        slots = merge_slots(before, rules_capture(text, before, vendors).slots)
        guess = rules_detect(text, slots, vendors)
        guessed = steps.select(self.playbook, guess, slots)
        chunks = await self._retrieve(context.key, text, slots, guess)
        held = _Held(reply)
        spec = asyncio.ensure_future(
            self._generate(text, slots, context, guess, guessed, deadline, held.write, chunks)
        )
        self.speculation["started"] += 1
        try:
            analysis = await self.analyse(text, context, deadline, emit)
            strategy = steps.select(self.playbook, analysis.detection, analysis.merged)
        except BaseException:
            _abandon(spec)
            raise
        emit(Status("generate", analysis.detection.situation))
        if strategy.name == guessed.name:
            self.speculation["kept"] += 1
            held.release()
            draft, result, ms = await spec
            return analysis, strategy, draft, result, ms, chunks
        self.speculation["wasted"] += 1
        _abandon(spec)
        draft, result, ms = await self._generate(
            text,
            analysis.merged,
            context,
            analysis.detection,
            strategy,
            deadline,
            reply.write,
            chunks,
        )
        return analysis, strategy, draft, result, ms, chunks

    async def _cached(
        self,
        turn: TurnInput,
        text: str,
        context: ThreadContext,
        started: float,
        notes: tuple[str, ...],
    ) -> Suggestion | None:
        if self.cache is None or turn.regenerate:
            return None
        hit = await self.cache.lookup(text, context)
        if hit is None:
            return None
        old = hit.suggestion
        situation, secondary = old.situation, old.secondary
        # An entry is written from a Detection, so its labels are the taxonomy's; one that is
        # not (a hand-edited database) is a miss rather than a card with an unknown label.
        if not is_situation(situation) or not (secondary is None or is_situation(secondary)):
            return None
        # The cached answer was made in the same deal context, so its slot delta applies here too.
        slots = merge_slots(context.values(), old.slots_delta)
        return self._suggestion(
            turn,
            Detection(situation, old.confidence, secondary),
            Strategy(old.strategy, old.talk_track, old.coaching_tip, ""),
            Draft(old.reply, old.coaching_tip),
            delta=old.slots_delta,
            slots=slots,
            cache="exact" if hit.tier == "exact" else "semantic",
            calls=(),
            step_ms={"cache": hit.lookup_ms},
            started=started,
            triggers=(),
            notes=notes,
            sources=old.sources,
        )

    def _suggestion(
        self,
        turn: TurnInput,
        detection: Detection,
        strategy: Strategy,
        draft: Draft,
        *,
        delta: Mapping[str, str],
        slots: Mapping[str, str],
        cache: CacheTier,
        calls: tuple[StepCall, ...],
        step_ms: Mapping[str, float],
        started: float,
        triggers: tuple[str, ...],
        notes: tuple[str, ...],
        sources: tuple[Citation, ...] = (),
    ) -> Suggestion:
        return Suggestion(
            id=uuid.uuid4().hex,
            key=turn.key,
            message_id=turn.message_id,
            reply=draft.reply,
            coaching_tip=draft.coaching_tip,
            situation=detection.situation,
            confidence=detection.confidence,
            secondary=detection.secondary,
            strategy=strategy.name,
            talk_track=strategy.talk_track,
            slots_delta=dict(delta),
            slots=dict(slots),
            cache=cache,
            calls=calls,
            step_ms=step_ms,
            latency_ms=_ms(started),
            reconciled=bool(triggers),
            reconcile_triggers=triggers,
            notes=notes,
            sources=sources,
            next_question=next_question(self.playbook.deal, slots, detection.situation),
        )

    def _bounded(self, raw: str) -> tuple[str, tuple[str, ...]]:
        text = raw.strip()
        if not text:
            raise EmptyMessage("Paste what the prospect said and I'll suggest a reply.")
        limit = self.settings.max_message_chars
        if len(text) <= limit:
            return text, ()
        cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
        note = f"The message was {len(text):,} characters; I read the first {len(cut):,}."
        return cut, (note,)


class _ReplyFeed:
    """The reply deltas of one turn. When the draft is final, what it adds to the text shown
    so far goes out as a last delta (all of it, for a provider that did not stream); a draft
    that does not continue what was shown (another attempt won) adds nothing."""

    __slots__ = ("emit", "shown")

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.shown = ""

    def write(self, text: str) -> None:
        self.shown += text
        self.emit(ReplyDelta(text))

    def finish(self, reply: str) -> None:
        if len(reply) > len(self.shown) and reply.startswith(self.shown):
            self.write(reply[len(self.shown) :])


class _Held:
    """A speculative draft's deltas, kept until its strategy is confirmed."""

    __slots__ = ("parts", "released", "reply")

    def __init__(self, reply: _ReplyFeed) -> None:
        self.reply = reply
        self.parts: list[str] = []
        self.released = False

    def write(self, text: str) -> None:
        if self.released:
            self.reply.write(text)
        else:
            self.parts.append(text)

    def release(self) -> None:
        self.released = True
        if self.parts:
            self.reply.write("".join(self.parts))
            self.parts.clear()


def _ignore(event: TurnEvent) -> None:
    return None


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a speculative draft nobody will use, without leaving its error unread."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def fallback_notes(calls: Iterable[StepCall]) -> tuple[str, ...]:
    """The card's word on an offline-tier answer: whether the providers could not answer, or
    answered with something the contract refused (a weak model is not an outage)."""
    reasons = {call.fallback_reason for call in calls if call.fallback}
    if not reasons:
        return ()
    if reasons == {"answered_badly"}:
        return ("LLM providers answered badly: the offline playbook answered.",)
    if "answered_badly" in reasons:
        return ("LLM providers were unavailable or answered badly: the offline playbook answered.",)
    return ("LLM providers were unavailable: the offline playbook answered.",)
