"""The router: one Provider over N streaming providers (streaming.py: the SDK providers, or
anything else that streams), with racing, hedging, failover, circuit breakers, Retry-After, a
time budget per step, and the offline tier as the last word.

Modes (Settings.router):

- `single`: ask the best provider; on an error ask the next (fallback order).
- `race`: ask every healthy provider at once; the first *valid* answer wins and the losers are
  cancelled (their streams closed, so the server sees the disconnect).
- `hedge`: ask the best provider; if its first token has not arrived after an adaptive delay
  (its observed p90 time-to-first-token for this step and tier, a prior until it has samples),
  ask the next one too; the first valid answer wins, the other is cancelled. An error before
  the delay moves on at once (failover, not a hedge).

"Best" is the provider with the lowest median time-to-first-token for the step and tier, after
each has been tried `explore` times (so a new provider gets measured); ties keep the configured
order. A provider whose breaker is open is skipped (see breaker.py). A 429 puts its provider in
a cooldown of Retry-After seconds: the router switches to another provider at once, and only
when nothing else is left does it wait for the cooldown, if that ends inside the step budget.
Other retryable errors (5xx, connection, invalid or truncated output) get one more try per
provider after every other provider has had its turn. When the budget ends or every provider
has failed, the offline tier answers and the StepCall says `fallback=True`. `complete` never
raises (except cancellation from the caller).

Every request sent is logged through the CallLog port, by a background batch writer: outcome
"win", "cancelled" (a race loser, or a call abandoned because its caller went away) or
"error:<kind>" with the reason in words (a call cut by the budget, or a hedge loser that never
wrote a token, is "error:timeout" and a failure for its breaker: a provider that keeps hanging
is taken out of rotation); an offline-tier answer is logged as provider "offline" with outcome
"ok" and only its own time: the wait for the providers is in their rows. The fallback's
StepCall says why (`fallback_reason`): "answered_badly" when a provider answered and the
contract refused it, else "unavailable".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ErrorKind, ProviderError
from ..model import StepCall
from ..ports import CallRecord, StepRequest, StepResult
from ..settings import RouterMode
from ..stats import ExtraRequests, RouterStats, quantile
from . import prompts
from .breaker import CircuitBreaker, Failure
from .offline import OfflineProvider
from .prompts import Prompt, count_tokens
from .recorder import CallRecorder
from .reply_stream import ReplyTap
from .streaming import CallFailed, Completion, Progress, StreamingProvider, as_provider_error

log = logging.getLogger(__name__)

RETRYABLE: frozenset[ErrorKind] = frozenset(
    {"server", "connection", "invalid_output", "truncated", "rate_limit"}
)
# The provider answered, but the contract refused it: "answering badly", not "down".
CONTRACT_KINDS: frozenset[ErrorKind] = frozenset({"invalid_output", "truncated"})


@dataclass(frozen=True)
class RouterConfig:
    mode: RouterMode = "hedge"
    budget_s: float = 8.0
    # Hedge delay before a provider has `hedge_samples` TTFT samples for a step and tier:
    # roughly the p90 of published time-to-first-token figures for each tier's models.
    hedge_prior_s: Mapping[str, float] = field(
        default_factory=lambda: {"fast": 0.8, "powerful": 1.1}
    )
    hedge_min_s: float = 0.05
    hedge_samples: int = 5
    ttft_window: int = 200
    explore: int = 3
    retries_per_provider: int = 1
    retry_backoff_s: float = 0.05
    default_retry_after_s: float = 1.0
    # The least time worth starting a call with.
    min_attempt_s: float = 0.05
    breaker: Mapping[str, Any] = field(default_factory=dict)


class _Attempt:
    __slots__ = (
        "at",
        "error",
        "logged",
        "outcome",
        "probe",
        "progress",
        "prompt",
        "provider",
        "started",
    )

    def __init__(
        self, provider: StreamingProvider, probe: bool = False, prompt: Prompt | None = None
    ) -> None:
        self.provider = provider
        self.probe = probe
        # What was sent, when it is not the request's prompt (a re-ask).
        self.prompt = prompt
        self.at = time.time()
        self.started = time.perf_counter()
        self.progress = Progress()
        self.outcome: str | None = None
        self.error: ProviderError | None = None
        self.logged = False


class _Samples:
    """A window of TTFT samples with cached median and p90."""

    __slots__ = ("_cache", "_dirty", "values")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self._dirty = True
        self._cache = (0.0, 0.0)

    def add(self, value: float) -> None:
        self.values.append(value)
        self._dirty = True

    def __len__(self) -> int:
        return len(self.values)

    def quantiles(self) -> tuple[float, float]:
        """(p50, p90) in seconds."""
        if self._dirty:
            data = sorted(self.values)
            self._cache = (quantile(data, 0.5), quantile(data, 0.9))
            self._dirty = False
        return self._cache


class Router:
    name = "router"

    def __init__(
        self,
        routes: Mapping[str, Sequence[StreamingProvider]],
        *,
        config: RouterConfig | None = None,
        recorder: CallRecorder | None = None,
        fallback: OfflineProvider | None = None,
    ) -> None:
        self.config = config or RouterConfig()
        self.routes: dict[str, tuple[StreamingProvider, ...]] = {
            tier: tuple(providers) for tier, providers in routes.items() if providers
        }
        if not self.routes:
            raise ValueError("the router needs at least one provider")
        self.recorder = recorder or CallRecorder(None)
        self.fallback = fallback or OfflineProvider(fallback=True)
        self.providers: dict[str, StreamingProvider] = {
            p.key: p for providers in self.routes.values() for p in providers
        }
        self.breakers = {key: CircuitBreaker(**dict(self.config.breaker)) for key in self.providers}
        self._cooldown: dict[str, float] = {}
        self._ttft: dict[tuple[str, str, str], _Samples] = {}
        self._background: set[asyncio.Task[Completion]] = set()
        self.counts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.tiers: Counter[str] = Counter()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.providers)

    # The Provider port ------------------------------------------------------------------------

    async def complete(self, request: StepRequest) -> StepResult:
        started = time.perf_counter()
        self.counts["requests"] += 1
        self.tiers[request.tier] += 1
        prompt = prompts.build(request)
        route: _Route | None = None
        try:
            route = _Route(self, request, prompt, started)
            result = await route.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the router failed on %s; the offline tier answers", request.step)
            result = None
        if result is not None:
            return result
        bad = route is not None and "bad" in route.failed
        return self._offline(request, prompt, started, "answered_badly" if bad else "unavailable")

    # Routing (one request's transitions are in _Route) ---------------------------------------

    def _chain(
        self, request: StepRequest, now: float
    ) -> tuple[
        list[StreamingProvider], list[tuple[float, StreamingProvider]], list[StreamingProvider]
    ]:
        """Providers to ask, best first; those cooling down after a 429 (with when); and those
        whose breaker is due for its half-open probe."""
        providers = self.routes.get(request.tier)
        if providers is None:
            providers = next(iter(self.routes.values()))
        ready: list[StreamingProvider] = []
        deferred: list[tuple[float, StreamingProvider]] = []
        probes: list[StreamingProvider] = []
        for provider in self._rank(providers, request):
            breaker = self.breakers[provider.key]
            if not breaker.available():
                self.counts["skipped_open_circuit"] += 1
                continue
            until = self._cooldown.get(provider.key, 0.0)
            if until > now:
                deferred.append((until, provider))
            elif breaker.state != "closed":
                probes.append(provider)
            else:
                ready.append(provider)
        return ready, deferred, probes

    def _rank(
        self, providers: Sequence[StreamingProvider], request: StepRequest
    ) -> list[StreamingProvider]:
        if len(providers) < 2:
            return list(providers)
        explore = self.config.explore
        prior = self.config.hedge_prior_s.get(request.tier, 1.0)

        def order(item: tuple[int, StreamingProvider]) -> tuple[int, float, int]:
            i, provider = item
            samples = self._ttft.get((provider.key, request.step, request.tier))
            n = len(samples) if samples is not None else 0
            if n < explore:
                return (0, float(n), i)
            median = samples.quantiles()[0] if samples is not None and n else prior
            return (1, median, i)

        return [p for _, p in sorted(enumerate(providers), key=order)]

    def _hedge_delay(self, attempt: _Attempt, request: StepRequest) -> float:
        cfg = self.config
        samples = self._ttft.get((attempt.provider.key, request.step, request.tier))
        if samples is not None and len(samples) >= cfg.hedge_samples:
            delay = samples.quantiles()[1]
        else:
            delay = cfg.hedge_prior_s.get(request.tier, 1.0)
        return max(cfg.hedge_min_s, delay)

    # Outcomes ------------------------------------------------------------------------------------

    def _finisher(
        self, attempt: _Attempt, request: StepRequest, prompt: Prompt
    ) -> Callable[[asyncio.Task[Completion]], None]:
        def done(task: asyncio.Task[Completion]) -> None:
            self._background.discard(task)
            self._finish(attempt, request, prompt, _result_or_none(task))

        return done

    def _finish(
        self,
        attempt: _Attempt,
        request: StepRequest,
        prompt: Prompt,
        done: Completion | None = None,
    ) -> None:
        """The verdict on one ended attempt, then its call record; once per attempt."""
        if attempt.logged:
            return
        attempt.logged = True
        outcome = attempt.outcome or "cancelled"
        self._verdict(attempt, request, outcome, done)
        self.recorder.add(_record(attempt, request, attempt.prompt or prompt, outcome, done))

    def _verdict(
        self, attempt: _Attempt, request: StepRequest, outcome: str, done: Completion | None
    ) -> None:
        """What the attempt says about its provider: breaker, TTFT sample, outcome counts."""
        breaker = self.breakers[attempt.provider.key]
        kind = outcome.removeprefix("error:")
        if outcome == "win" or (done is not None and outcome == "cancelled"):
            breaker.success()
        elif not outcome.startswith("error:") or kind == "rate_limit":
            breaker.release()
        elif kind in CONTRACT_KINDS:
            breaker.failure("bad")
        elif kind != "timeout" or attempt.progress.first_token_at is None:
            # (A timeout with no token at all: it kept us waiting for nothing.)
            breaker.failure("down")
        else:
            breaker.release()  # it was writing when the budget ran out
        first_token_at = attempt.progress.first_token_at
        if first_token_at is not None:
            key = (attempt.provider.key, request.step, request.tier)
            samples = self._ttft.get(key)
            if samples is None:
                samples = self._ttft[key] = _Samples(self.config.ttft_window)
            samples.add(first_token_at - attempt.started)
        self.outcomes[outcome.split(":", 1)[0]] += 1

    def _offline(
        self, request: StepRequest, prompt: Prompt, started: float, reason: str
    ) -> StepResult:
        """The offline tier answers. Its StepCall and log row carry its own time; the time
        spent waiting for providers before it is `waited_ms`, and in their own rows."""
        self.counts["fallbacks"] += 1
        began = time.perf_counter()
        result = self.fallback.complete_now(request)
        ended = time.perf_counter()
        call = replace(
            result.call,
            ms=(ended - began) * 1000,
            waited_ms=(began - started) * 1000,
            fallback=True,
            fallback_reason=reason,
        )
        self.recorder.add(
            CallRecord(
                at=time.time(),
                step=request.step,
                provider=call.provider,
                model=call.model,
                tier=request.tier,
                outcome="ok",
                ms=call.ms,
                prompt=prompt.text,
                response=_contract_text(result),
            )
        )
        return StepResult(value=result.value, call=call)

    # Stats and shutdown -------------------------------------------------------------------------

    def stats(self) -> RouterStats:
        """Live figures (the persisted per-provider figures come from the call log)."""
        c = self.counts
        primary = c["requests"] - c["all_circuits_open"]
        ttft: dict[str, dict[str, float]] = {}
        for (key, step, tier), samples in sorted(self._ttft.items()):
            if len(samples):
                _, p90 = samples.quantiles()
                ttft.setdefault(key, {})[f"{step}/{tier}"] = round(p90 * 1000, 1)
        now = time.perf_counter()
        return RouterStats(
            mode=self.config.mode,
            budget_s=self.config.budget_s,
            requests=c["requests"],
            attempts=c["attempts"],
            outcomes={k: self.outcomes[k] for k in ("win", "cancelled", "error")},
            extra_requests=ExtraRequests(
                hedges=c["hedges"],
                failovers=c["failovers"],
                retries=c["retries"],
                probes=c["probes"],
                per_request=round((c["attempts"] - primary) / primary, 4) if primary else 0.0,
                hedge_rate=round(c["hedges"] / primary, 4) if primary else 0.0,
            ),
            fallbacks=c["fallbacks"],
            budget_exceeded=c["budget_exceeded"],
            skipped_open_circuit=c["skipped_open_circuit"],
            circuits={key: b.snapshot() for key, b in self.breakers.items()},
            rate_limited_for_s={
                key: round(until - now, 3) for key, until in self._cooldown.items() if until > now
            },
            ttft_p90_ms=ttft,
            tier_requests=dict(self.tiers),
            call_log={"written": self.recorder.written, "dropped": self.recorder.dropped},
        )

    async def aclose(self, timeout_s: float = 2.0) -> None:
        """Let cancelled losers finish closing their streams, then write every call record."""
        pending = list(self._background)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout_s)
            for task in still:
                task.cancel()
        await self.recorder.aclose()


class _Route:
    """One request on its way through the router: what runs, what is queued, what waits for a
    cooldown, and the named transitions between them (launch, hedge, first token, done, fail,
    fail over, out of time). `run` is the loop that drives them."""

    def __init__(
        self, router: Router, request: StepRequest, prompt: Prompt, started: float
    ) -> None:
        self.router = router
        self.cfg = router.config
        self.request = request
        self.prompt = prompt
        self.started = started
        self.deadline = started + self.cfg.budget_s
        if request.deadline is not None:  # the turn's budget, shared by its steps
            self.deadline = min(self.deadline, request.deadline)
        ready, deferred, self.probes = router._chain(request, started)
        # (when, provider, the prompt to send: None for the request's own)
        self.deferred: list[tuple[float, StreamingProvider, Prompt | None]] = [
            (when, provider, None) for when, provider in deferred
        ]
        self.queue = deque(ready)
        self.running: dict[asyncio.Task[Completion], _Attempt] = {}
        self.tries: Counter[str] = Counter()
        # How this request's calls failed: "down" (no answer) and/or "bad" (refused answers).
        self.failed: set[Failure] = set()
        # The latest answer the contract refused, and whether the one re-ask carrying its
        # validation error has been sent.
        self.rejection: ProviderError | None = None
        self.reasked = False
        # The attempt a hedge would back up: the latest one without its first token.
        self.watched: _Attempt | None = None
        # Generate's reply streams out from the first attempt that writes some of it.
        self.tap = ReplyTap(request.on_reply) if request.on_reply is not None else None

    async def run(self) -> StepResult | None:
        if not self.has_candidates():
            return None
        try:
            self.start()
            while True:
                now = time.perf_counter()
                if now >= self.deadline:
                    self.out_of_time()
                    return None
                if not self.running:
                    if not await self.retry_deferred(now):
                        return None
                    continue
                wake = self.hedge(now)
                if wake is None:
                    continue
                done, _ = await asyncio.wait(
                    self.running, timeout=wake - now, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    result = self.ended(task)
                    if result is not None:
                        return result
        except BaseException:
            self.abandon("cancelled")
            raise

    # Transitions ---------------------------------------------------------------------------------

    def has_candidates(self) -> bool:
        """False when every breaker is open; with nothing healthy, the probe is the request."""
        if not (self.queue or self.probes or self.deferred):
            self.router.counts["all_circuits_open"] += 1
            # Why they are open is why nobody answers this request.
            providers = self.router.routes.get(self.request.tier) or ()
            self.failed = {
                b.opened_for
                for b in (self.router.breakers[p.key] for p in providers)
                if b.opened_for is not None
            }
            return False
        if not self.queue:
            self.queue, self.probes = deque(self.probes), []
        return True

    def start(self) -> None:
        """Race: everyone at once; otherwise the best, watched for a hedge. A breaker due for
        its half-open probe gets one request alongside: recovery is seen without betting this
        request on a provider that was failing."""
        if self.cfg.mode == "race":
            while self.queue:
                self.launch_next()
        else:
            self.watched = self.launch_next()
        for provider in self.probes:
            if self.launch(provider, probe=True) is not None:
                self.router.counts["probes"] += 1

    def launch(
        self, provider: StreamingProvider, *, probe: bool = False, prompt: Prompt | None = None
    ) -> _Attempt | None:
        """Start one call, if the provider's breaker lets it."""
        router = self.router
        if not router.breakers[provider.key].acquire():
            return None
        attempt = _Attempt(provider, probe, prompt)
        if self.tap is not None:
            self.tap.attach(attempt.progress, attempt)
        task = asyncio.get_running_loop().create_task(
            provider.run(
                prompt or self.prompt,
                timeout=self.deadline - attempt.started,
                progress=attempt.progress,
            )
        )
        self.running[task] = attempt
        self.tries[provider.key] += 1
        router.counts["attempts"] += 1
        return attempt

    def launch_next(self) -> _Attempt | None:
        """The next provider in line; after a refused answer, it gets the one re-ask."""
        while self.queue:
            attempt = self.launch(self.queue.popleft(), prompt=self.reask())
            if attempt is not None:
                return attempt
        return None

    def reask(self) -> Prompt | None:
        """The re-ask prompt (the request's, with the validation error), once per request;
        None when nothing was refused or the re-ask has gone out."""
        if self.rejection is None or self.reasked:
            return None
        self.reasked = True
        return prompts.reask(self.prompt, str(self.rejection))

    def hedge(self, now: float) -> float | None:
        """In hedge mode, back the watched attempt up once its delay passes without a first
        token. The time to wake up at, or None after launching a hedge."""
        watched = self.watched
        if self.cfg.mode != "hedge" or not self.queue or watched is None:
            return self.deadline
        if watched.outcome:  # it failed while another runs: watch the newest
            watched = self.watched = max(
                self.running.values(), key=lambda a: (not a.probe, a.started)
            )
        if watched.progress.first_token_at is not None or self.reply_shown():
            self.first_token()
            return self.deadline
        fire = watched.started + self.router._hedge_delay(watched, self.request)
        if fire > now:
            return min(self.deadline, fire)
        self.watched = self.launch_next()
        if self.watched is not None:
            self.router.counts["hedges"] += 1
        return None

    def reply_shown(self) -> bool:
        return self.tap is not None and self.tap.shown is not None

    def first_token(self) -> None:
        """The watched attempt is writing, or the rep is reading a reply (a second answer would
        replace it): no hedge for this request."""
        self.watched = None

    def ended(self, task: asyncio.Task[Completion]) -> StepResult | None:
        """One call ended: the answer (done), or a failure to handle."""
        attempt = self.running.pop(task)
        error: BaseException | None = (
            CallFailed("connection", "the call was cancelled")
            if task.cancelled()
            else task.exception()
        )
        if error is None:
            return self.done(attempt, task.result())
        self.fail(attempt, as_provider_error(error))
        return None

    def done(self, attempt: _Attempt, completion: Completion) -> StepResult:
        """The first valid answer wins; everything else still running is cancelled. In hedge
        mode an earlier attempt that has not written a token was hedged for being slow: it
        lost by timing out, and its breaker hears so."""
        attempt.outcome = "win"
        if self.cfg.mode == "hedge":
            for other in self.running.values():
                if other.started < attempt.started and other.progress.first_token_at is None:
                    other.error = CallFailed(
                        "timeout", "no first token before a later hedge answered"
                    )
        self.abandon("cancelled")
        self.router._finish(attempt, self.request, self.prompt, completion)
        provider = attempt.provider
        call = StepCall(
            step=self.request.step,
            provider=provider.name,
            model=provider.model,
            ms=(time.perf_counter() - self.started) * 1000,
            tokens_in=completion.tokens_in,
            tokens_out=completion.tokens_out,
            # A hedged winner started late: count its wait, the rep waited too.
            ttft_ms=None
            if completion.ttft_ms is None
            else (attempt.started - self.started) * 1000 + completion.ttft_ms,
        )
        return StepResult(value=completion.value, call=call)

    def fail(self, attempt: _Attempt, failure: ProviderError) -> None:
        """Record the failure; a 429 cools its provider down; a retryable error earns one more
        try after the others; then, outside race mode, fail over to the next provider.

        A refused answer (invalid or truncated) earns ONE re-ask per request, carrying the
        validation error: on the next provider in line if one is healthy (the fail-over
        below), on the same provider only when it is alone, and only inside the deadline."""
        attempt.error = failure
        attempt.outcome = f"error:{failure.kind}"
        contract = failure.kind in CONTRACT_KINDS
        self.failed.add("bad" if contract else "down")
        self.router._finish(attempt, self.request, self.prompt)
        now = time.perf_counter()
        cfg, key = self.cfg, attempt.provider.key
        retry = self.tries[key] <= cfg.retries_per_provider
        if contract:
            self.rejection = failure
            alone = not self.queue and not any(not a.probe for a in self.running.values())
            if alone and not self.reasked:
                self.deferred.append((now + cfg.retry_backoff_s, attempt.provider, self.reask()))
        elif failure.kind == "rate_limit":
            wait = cfg.default_retry_after_s if failure.retry_after is None else failure.retry_after
            self.router._cooldown[key] = now + wait
            if retry:
                self.deferred.append((now + wait, attempt.provider, None))
        elif failure.kind in RETRYABLE and retry:
            self.deferred.append((now + cfg.retry_backoff_s, attempt.provider, None))
        if cfg.mode != "race" and all(a.probe for a in self.running.values()):
            self.fail_over()

    def fail_over(self) -> None:
        """Nothing but probes runs: ask the next provider in line."""
        nxt = self.launch_next()
        if nxt is not None:
            self.router.counts["failovers"] += 1
            self.watched = nxt

    async def retry_deferred(self, now: float) -> bool:
        """Everything tried has failed: what is left waits for its cooldown or backoff, if
        that ends inside the budget. False when nothing is left."""
        self.deferred = [d for d in self.deferred if d[0] < self.deadline - self.cfg.min_attempt_s]
        if not self.deferred:
            return False
        self.deferred.sort(key=lambda d: d[0])
        when, provider, prompt = self.deferred[0]
        if when > now:
            await asyncio.sleep(when - now)
            return True
        self.deferred.pop(0)
        self.router.counts["retries"] += 1
        self.watched = self.launch(provider, prompt=prompt)
        return True

    def out_of_time(self) -> None:
        """The budget is spent: cancel what runs; the offline tier answers."""
        if self.running:
            self.failed.add("down")
        self.abandon("error:timeout")
        self.router.counts["budget_exceeded"] += 1

    def abandon(self, outcome: str) -> None:
        """Cancel what still runs; each is logged when its cancellation has finished (its
        stream closed), in the background, so the winner does not wait for it."""
        router = self.router
        for task, attempt in list(self.running.items()):
            attempt.outcome = outcome if attempt.error is None else f"error:{attempt.error.kind}"
            if task.done():
                if not task.cancelled() and task.exception() is not None:
                    attempt.error = as_provider_error(task.exception() or Exception())
                    attempt.outcome = f"error:{attempt.error.kind}"
                router._finish(attempt, self.request, self.prompt, _result_or_none(task))
                continue
            task.cancel()
            router._background.add(task)
            task.add_done_callback(router._finisher(attempt, self.request, self.prompt))
        self.running.clear()


def _record(
    attempt: _Attempt,
    request: StepRequest,
    prompt: Prompt,
    outcome: str,
    done: Completion | None,
) -> CallRecord:
    """The call-log row of one ended attempt, with what it produced and cost."""
    provider, progress = attempt.provider, attempt.progress
    if done is not None:
        tokens_in, tokens_out, cost, text = (
            done.tokens_in,
            done.tokens_out,
            done.cost_usd,
            done.text,
        )
    else:
        text = progress.text
        if attempt.error is not None:
            text = text or f"[{attempt.error.kind}] {attempt.error}"
            if isinstance(attempt.error, CallFailed) and attempt.error.text:
                text = attempt.error.text
            tokens_in, tokens_out = progress.tokens_in, progress.tokens_out
        else:
            # Cancelled: the provider read the prompt and wrote what streamed so far.
            tokens_in = progress.tokens_in or prompt.tokens
            tokens_out = progress.tokens_out or (count_tokens(text) if text else 0)
        cost = provider.cost(tokens_in, tokens_out)
    if attempt.error is not None:
        error = str(attempt.error)
    elif outcome == "error:timeout":
        error = "cut by the deadline" + (" before its first token" if not progress.parts else "")
    else:
        error = ""
    return CallRecord(
        at=attempt.at,
        step=request.step,
        provider=provider.name,
        model=provider.model,
        tier=request.tier,
        outcome=outcome,
        ms=(time.perf_counter() - attempt.started) * 1000,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost,
        prompt=prompt.text,
        response=text,
        error=error,
    )


def _result_or_none(task: asyncio.Task[Completion]) -> Completion | None:
    if task.cancelled():
        return None
    with contextlib.suppress(BaseException):
        if task.exception() is None:
            return task.result()
    return None


def _contract_text(result: StepResult) -> str:
    import json

    from .. import contract

    return json.dumps(contract.to_json(result.value), ensure_ascii=False)
