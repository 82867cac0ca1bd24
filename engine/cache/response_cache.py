"""The two-tier response cache: exact, then semantic behind the false-hit guard; persistent.

lookup(text, context):
  1. exact tier: SHA-256 of (normalised text, context fingerprint, answer version) -> entry;
  2. semantic tier (when there is an embedder): embed the message, score it against entries of
     the same fingerprint, and serve the best candidate over the threshold that the guard
     agrees with (negation, numbers, dates, competitors, roles, comparisons, situation).
store() keeps a fresh answer in both tiers and in storage; forget() evicts an answer that got
negative feedback and blocks its content for good, wherever it is cached and whichever copy of
it (the original or a copy served from the cache) the rep disliked.

Several instances on one database (`persistence.shared`, Postgres): entries and blocks are
shared. Every `follow_s` each instance polls `changes_since` once (`follow()`): the blocks any
instance recorded, applied first, and the entries of this version others stored that this one
lacks, taken into both tiers (within TTL, LRU capacity as for its own) unless their answer is
blocked. A dislike anywhere stops every instance serving that answer within a poll, and no
instance takes in a copy of it afterwards. The window starts `_CLOCK_SKEW_S` before the previous
poll, for instances whose clocks lag; the keys this cache already has in it are sent along and
left out of the answer, so a quiet poll returns next to nothing. The semantic tier needs no
vector extension: the followed vectors are scored in memory, within one context fingerprint.

An exact miss does not also ask the database by key. It would close the gap between another
instance's store and the next poll (at most `follow_s`, and the row is in the database only
after that instance's `flush_after_s` anyway) for a near-zero gain (the same message in the
same context on two instances within a second), and it costs every miss a database read:
0.105 ms p50 / 0.164 ms p95 on a loopback Postgres with 20k rows, against 0.018 ms for the
whole local miss (`python -m devtools.pg_cache_follow`), more across a network, and a stall
when the database is down. A steady poll costs 0.4-0.5 ms p50, once a second per instance.

All state lives on the event loop's thread; storage writes run in the background (SQLite's on
the adapter's own thread), so a lookup never waits for the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import numpy as np
import numpy.typing as npt

from ..codec import suggestion_from_dict, suggestion_to_dict
from ..model import HitTier, Suggestion, ThreadContext
from ..ports import CachedAnswer, Embedder
from ..rules.text import plain
from ..stats import CacheCounts, CacheStats, Percentiles
from .embedders import EmbedderUnavailable
from .exact import Entry, ExactTier
from .fingerprint import exact_key, fingerprint, message_text
from .guard import REASONS, disagreement, facts
from .persistence import CachePersistence, StoredEntry
from .semantic import SemanticIndex

__all__ = ["TwoTierCache", "answer_id"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
SuggestionLookup = Callable[[str], Awaitable[Suggestion | None]]

_LATENCY_WINDOW = 10_000
_VECTOR_MEMO = 256  # vectors of recent lookups, reused when a miss is stored
_CLOCK_SKEW_S = 60.0  # how far behind another instance's clock may be, for its rows
_CANDIDATES = 4  # semantic candidates over the threshold the guard may examine


def answer_id(s: Suggestion) -> str:
    """A digest of what the rep was shown; copies served from the cache have the same one."""
    content = "\x1f".join((s.situation, s.strategy, s.reply, s.coaching_tip))
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:32]


class TwoTierCache:
    """The engine's ResponseCache; its `stats()` is the live part of the report's cache section."""

    def __init__(
        self,
        *,
        version: str,
        embedder: Embedder | None = None,
        threshold: float | None = None,
        ttl_s: float = 3600.0,
        max_entries: int = 1000,
        persistence: CachePersistence | None = None,
        suggestion_of: SuggestionLookup | None = None,
        clock: Callable[[], float] = time.time,
        embed_timeout_s: float = 2.0,
        follow_s: float = 1.0,
    ) -> None:
        self.version = version
        self.embedder = embedder
        self.threshold = threshold if embedder is not None else None
        if embedder is not None and threshold is None:
            raise ValueError("a semantic tier needs a threshold")
        self.ttl_s = ttl_s
        self.persistence = persistence
        self.clock = clock
        self.embed_timeout_s = embed_timeout_s
        self._suggestion_of = suggestion_of
        self._exact = ExactTier(max_entries)
        self._index = SemanticIndex(embedder.dim, max_entries) if embedder else None
        self._semantic_off: str | None = None if embedder else "no embedder"
        self._by_suggestion: dict[str, str] = {}
        self._by_answer: dict[str, set[str]] = {}
        self._blocked: set[str] = set()
        self._memo: OrderedDict[str, F32] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()
        self._counts: Counter[str] = Counter()
        self._evicted: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._ms_all: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._ms_exact: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._ms_semantic: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._stores_since_sweep = 0
        self.follow_s = follow_s
        self._follower: asyncio.Task[None] | None = None
        # A shared database: where the next poll starts, and the keys of entries created since
        # then that this cache has already (stored, loaded, followed or refused).
        self._follow_from = 0.0
        self._seen: dict[str, float] = {}

    # Loading ---------------------------------------------------------------------------

    async def warm_up(self) -> None:
        """Load the embedder and run it once, so the first rep's turn doesn't pay for it."""
        if self.embedder is None:
            return
        try:
            await asyncio.wait_for(self.embedder.embed(["warm up"]), self.embed_timeout_s)
        except Exception as exc:  # an unreachable embedder must not stop the bot starting
            log.warning("embedder warm-up failed (%s): lookups will retry", type(exc).__name__)

    async def load(self) -> int:
        """Reload entries, vectors and the blocklist from storage; returns how many entries."""
        if self.persistence is None:
            return 0
        now = self.clock()
        loaded = await self.persistence.load(self.version, now - self.ttl_s)
        self._blocked.update(loaded.blocked)
        if self.persistence.shared and self._follower is None:
            self._follow_from = now - _CLOCK_SKEW_S
            self._follower = asyncio.get_running_loop().create_task(self._follow())
        if loaded.dropped:
            self._evicted["stale"] += loaded.dropped
        for row in loaded.entries:
            self._adopt(row)
            self._saw(row.key, row.created_at)
        return len(self._exact)

    def _adopt(self, row: StoredEntry) -> int:
        """Take in an entry storage gave (loaded, or another instance's): 1 if it went in, 0
        if it was unreadable or its answer is blocked (then its row goes too). Its vector is
        reused when the same embedder made it; else the entry serves exact repeats only, for
        embedding another instance's messages again would cost an embedder call (a paid one,
        for OpenAI) per entry and per instance, most of them never asked again."""
        assert self.persistence is not None
        try:
            suggestion = suggestion_from_dict(json.loads(row.body))
        except (ValueError, KeyError, TypeError):
            log.warning("dropping an unreadable cache entry %s", row.key[:12])
            self._background(self.persistence.delete([row.key]))
            return 0
        entry = Entry(
            key=row.key,
            fingerprint=row.fingerprint,
            text=row.text,
            suggestion=suggestion,
            answer=answer_id(suggestion),
            created_at=row.created_at,
            used_at=row.used_at,
            hits=row.hits,
        )
        if entry.answer in self._blocked:
            self._background(self.persistence.delete([row.key]))
            return 0
        vector = None
        name = self.embedder.name if self.embedder else None
        if self._index is not None and row.embedder == name and row.vector is not None:
            vector = np.frombuffer(row.vector, dtype="<f4").astype(np.float32)
            if vector.shape != (self._index.dim,):
                vector = None
        self._insert(entry, vector, persist=False)
        return 1

    def _saw(self, key: str, created_at: float) -> None:
        """Following a shared database: the next poll need not send this entry back."""
        if self._follower is not None:
            self._seen[key] = created_at

    def rekey(self, version: str) -> None:
        """What writes answers changed while running (a knowledge file was edited): entries
        of the old version are dropped, here and in storage, and never served again."""
        if version == self.version:
            return
        self.version = version
        for entry in list(self._exact):
            self._drop(entry, "stale")

    # ResponseCache ---------------------------------------------------------------------

    async def lookup(self, text: str, context: ThreadContext) -> CachedAnswer | None:
        started = time.perf_counter()
        self._counts["lookups"] += 1
        norm = message_text(text)
        if not norm:
            self._miss(started, embedded=False)
            return None
        now = self.clock()
        scope = fingerprint(context.values())
        key = exact_key(norm, scope, self.version)
        entry = self._exact.get(key)
        if entry is not None and self._live(entry, now):
            return self._hit(entry, "exact", 1.0, now, started)
        vector = await self._vector(norm)
        if vector is None or self._index is None or self.threshold is None:
            self._miss(started, embedded=vector is not None)
            return None
        candidates = self._index.search(vector, scope, now, self.threshold, _CANDIDATES)
        if candidates:
            mine = facts(plain(text))
            for other_key, similarity in candidates:
                other = self._exact.get(other_key)
                if other is None or not self._live(other, now):
                    continue
                reason = disagreement(mine, facts(other.text))
                if reason is None:
                    return self._hit(other, "semantic", similarity, now, started)
                self._rejected[reason] += 1
        self._miss(started, embedded=True)
        return None

    async def store(self, text: str, context: ThreadContext, suggestion: Suggestion) -> None:
        norm = message_text(text)
        if not norm:
            return
        answer = answer_id(suggestion)
        if answer in self._blocked:
            self._counts["refused"] += 1
            return
        now = self.clock()
        scope = fingerprint(context.values())
        key = exact_key(norm, scope, self.version)
        vector = self._memo.pop(norm, None)
        if vector is None and self._index is not None and self._semantic_off is None:
            vector = await self._embed(norm)
        if answer in self._blocked:  # forgotten while we were embedding
            return
        entry = Entry(
            key=key,
            fingerprint=scope,
            text=plain(text),
            suggestion=suggestion,
            answer=answer,
            created_at=now,
            used_at=now,
        )
        self._insert(entry, vector, persist=True)
        self._saw(key, now)
        if vector is not None:  # work out the guard's view now, not in a later lookup
            _ = facts(entry.text).situation
        self._counts["stored"] += 1
        self._stores_since_sweep += 1
        if self._stores_since_sweep >= 50:
            self.sweep()

    async def forget(self, suggestion_id: str) -> None:
        key = self._by_suggestion.get(suggestion_id)
        entry = self._exact.get(key) if key else None
        answer = entry.answer if entry else None
        if answer is None and self._suggestion_of is not None:
            # A copy served from the cache has its own id; its content leads to the entry.
            disliked = await self._suggestion_of(suggestion_id)
            if disliked is not None:
                answer = answer_id(disliked)
        if answer is None:
            return
        if answer not in self._blocked and self.persistence is not None:
            self._background(self.persistence.block(answer, suggestion_id, self.clock()))
        self._block(answer)

    def _block(self, answer: str) -> None:
        self._blocked.add(answer)
        for other in list(self._by_answer.get(answer, ())):
            found = self._exact.get(other)
            if found is not None:
                self._drop(found, "disliked")

    async def follow(self) -> int:
        """One poll of a shared database: apply the blocks other instances recorded, then take
        in the entries of this version they stored that this cache does not have; returns how
        many entries it took in. The window starts `_CLOCK_SKEW_S` before the previous poll, for
        instances whose clocks lag this one's (or at the TTL, if that is later); a poll that
        failed moves nothing, so the next one reads what it missed."""
        assert self.persistence is not None
        now, version = self.clock(), self.version
        since = max(self._follow_from, now - self.ttl_s)
        self._seen = {k: at for k, at in self._seen.items() if at >= since}
        changes = await self.persistence.changes_since(version, since, list(self._seen))
        self._follow_from = now - _CLOCK_SKEW_S
        for answer, _ in changes.blocked:
            if answer not in self._blocked:
                self._counts["followed_blocks"] += 1
            self._block(answer)
        followed = 0
        for row in changes.entries if version == self.version else ():  # else: rekeyed meanwhile
            if self._exact.get(row.key) is None and now - row.created_at < self.ttl_s:
                followed += self._adopt(row)
            self._saw(row.key, row.created_at)
        self._counts["followed_entries"] += followed
        return followed

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.follow_s)
            try:
                await self.follow()
            except Exception as exc:  # the database is down: the next round tries again
                log.warning("cannot read other instances' cache rows: %s", exc)

    def stats(self) -> CacheStats:
        counts = self._counts
        lookups = counts["lookups"]
        hits = counts["exact_hits"] + counts["semantic_hits"]
        return CacheStats(
            size=len(self._exact),
            capacity=self._exact.capacity,
            vectors=len(self._index) if self._index is not None else 0,
            ttl_s=self.ttl_s,
            version=self.version,
            embedder=self.embedder.name if self.embedder else "off",
            semantic="on" if self._semantic_off is None else f"off: {self._semantic_off}",
            threshold=self.threshold,
            blocked=len(self._blocked),
            evictions=sum(self._evicted.values()),
            evicted={k: v for k, v in sorted(self._evicted.items()) if v},
            guard_rejections=sum(self._rejected.values()),
            guard_reasons={r: self._rejected[r] for r in REASONS if self._rejected[r]},
            lookup_ms=Percentiles.of(self._ms_all),
            lookup_ms_exact_hits=Percentiles.of(self._ms_exact),
            lookup_ms_embedded=Percentiles.of(self._ms_semantic),
            since_start=CacheCounts(
                lookups=lookups,
                exact_hits=counts["exact_hits"],
                semantic_hits=counts["semantic_hits"],
                misses=counts["misses"],
                hit_rate=round(hits / lookups, 4) if lookups else 0.0,
                stored=counts["stored"],
                refused_blocked=counts["refused"],
                embed_errors=counts["embed_errors"],
            ),
        )

    # Housekeeping ----------------------------------------------------------------------

    def sweep(self) -> int:
        """Drop expired entries; lookups skip them anyway, this frees their room."""
        self._stores_since_sweep = 0
        now = self.clock()
        expired = [e for e in self._exact if e.expired(now, self.ttl_s)]
        for entry in expired:
            self._drop(entry, "expired")
        return len(expired)

    async def flush(self) -> None:
        """Wait for the SQLite writes started so far."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self.persistence is not None:
            await self.persistence.flush()

    async def aclose(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None
        try:
            await self.flush()
        except Exception as exc:  # the database is down: stopping must not fail for a cache
            log.warning("cache rows not written at shutdown: %s", exc)
        closer = getattr(self.embedder, "aclose", None)
        if closer is not None:
            await closer()

    # Internals -------------------------------------------------------------------------

    def _live(self, entry: Entry, now: float) -> bool:
        if entry.answer in self._blocked:
            self._drop(entry, "disliked")
            return False
        if entry.expired(now, self.ttl_s):
            self._drop(entry, "expired")
            return False
        return True

    def _hit(
        self, entry: Entry, tier: HitTier, similarity: float, now: float, started: float
    ) -> CachedAnswer:
        entry.hits += 1
        entry.used_at = now
        self._exact.touch(entry.key)
        if self.persistence is not None:
            self._background(self.persistence.touch(entry.key, now, entry.hits))
        ms = (time.perf_counter() - started) * 1000
        self._counts[f"{tier}_hits"] += 1
        self._ms_all.append(ms)
        (self._ms_exact if tier == "exact" else self._ms_semantic).append(ms)
        return CachedAnswer(entry.suggestion, tier, ms, round(similarity, 4))

    def _miss(self, started: float, *, embedded: bool) -> None:
        ms = (time.perf_counter() - started) * 1000
        self._counts["misses"] += 1
        self._ms_all.append(ms)
        if embedded:
            self._ms_semantic.append(ms)

    async def _vector(self, norm: str) -> F32 | None:
        if self._index is None or self._semantic_off is not None:
            return None
        vector = self._memo.get(norm)
        if vector is None:
            vector = await self._embed(norm)
            if vector is None:
                return None
            self._memo[norm] = vector
            while len(self._memo) > _VECTOR_MEMO:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(norm)
        return vector

    async def _embed(self, norm: str) -> F32 | None:
        assert self.embedder is not None
        try:
            rows = await asyncio.wait_for(self.embedder.embed([norm]), self.embed_timeout_s)
        except EmbedderUnavailable as exc:
            self._semantic_off = f"embedder unavailable ({exc})"
            log.warning("semantic cache off: %s", exc)
            return None
        except Exception as exc:  # a network embedder may fail; the exact tier goes on
            self._counts["embed_errors"] += 1
            log.warning("embedding failed (%s): semantic lookup skipped", type(exc).__name__)
            return None
        vector: F32 = np.ascontiguousarray(rows[0], dtype=np.float32)
        return vector

    def _insert(self, entry: Entry, vector: F32 | None, *, persist: bool) -> None:
        old = self._exact.get(entry.key)
        if old is not None:
            self._drop(old, "replaced", persist=False)
        for evicted in self._exact.add(entry):
            self._drop(evicted, "lru")
        if vector is not None and self._index is not None:
            entry.row = self._index.add(
                entry.key, entry.fingerprint, vector, entry.created_at + self.ttl_s
            )
        self._by_suggestion[entry.suggestion.id] = entry.key
        self._by_answer.setdefault(entry.answer, set()).add(entry.key)
        if persist and self.persistence is not None:
            self._background(self.persistence.save(self._stored(entry, vector)))

    def _drop(self, entry: Entry, reason: str, *, persist: bool = True) -> None:
        if self._exact.get(entry.key) is entry:
            self._exact.remove(entry.key)
        if entry.row >= 0 and self._index is not None:
            self._index.remove(entry.row)
            entry.row = -1
        if self._by_suggestion.get(entry.suggestion.id) == entry.key:
            del self._by_suggestion[entry.suggestion.id]
        keys = self._by_answer.get(entry.answer)
        if keys is not None:
            keys.discard(entry.key)
            if not keys:
                del self._by_answer[entry.answer]
        self._evicted[reason] += 1
        if persist and self.persistence is not None:
            self._background(self.persistence.delete([entry.key]))

    def _stored(self, entry: Entry, vector: F32 | None) -> StoredEntry:
        return StoredEntry(
            key=entry.key,
            fingerprint=entry.fingerprint,
            version=self.version,
            text=entry.text,
            embedder=self.embedder.name if self.embedder and vector is not None else None,
            vector=vector.astype("<f4").tobytes() if vector is not None else None,
            suggestion_id=entry.suggestion.id,
            body=json.dumps(suggestion_to_dict(entry.suggestion)),
            created_at=entry.created_at,
            used_at=entry.used_at,
            hits=entry.hits,
        )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("cache write failed: %r", task.exception())
