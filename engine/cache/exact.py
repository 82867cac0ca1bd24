"""The exact tier: entries by key, least recently used first, each with an expiry.

A dict lookup and a move to the end of an OrderedDict: well under a microsecond of work, so the
exact tier's cost is hashing the key (a few microseconds for a short message).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from ..model import Suggestion

__all__ = ["Entry", "ExactTier"]


@dataclass(slots=True)
class Entry:
    """One cached answer: the message it answered, where, and the suggestion."""

    key: str
    fingerprint: str
    text: str  # the message as plain text (case kept: the guard reads names and acronyms)
    suggestion: Suggestion
    answer: str  # digest of the answer's content (see response_cache.answer_id)
    created_at: float
    used_at: float
    hits: int = 0
    row: int = -1  # row in the semantic index; -1 when the entry has no vector

    def expired(self, now: float, ttl_s: float) -> bool:
        return now - self.created_at >= ttl_s


class ExactTier:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the cache needs room for at least one entry")
        self.capacity = capacity
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        """Least recently used first."""
        return iter(list(self._entries.values()))

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def touch(self, key: str) -> None:
        self._entries.move_to_end(key)

    def add(self, entry: Entry) -> list[Entry]:
        """Add (or replace) an entry as the most recent; returns the entries it pushed out."""
        self._entries[entry.key] = entry
        self._entries.move_to_end(entry.key)
        evicted = []
        while len(self._entries) > self.capacity:
            _, oldest = self._entries.popitem(last=False)
            evicted.append(oldest)
        return evicted

    def remove(self, key: str) -> Entry | None:
        return self._entries.pop(key, None)
