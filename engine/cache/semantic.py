"""The semantic tier's index: unit vectors in one preallocated float32 matrix.

A search scores only the rows of the same context fingerprint that have not expired (a mask
over the matrix, then one matrix-vector product), so an answer written for a thread that knew
other facts is never a candidate. With 1,000 rows of 384 floats a search takes tens of
microseconds; the embedding of the new message dominates the semantic tier's cost.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["SemanticIndex"]

F32 = npt.NDArray[np.float32]


class SemanticIndex:
    def __init__(self, dim: int, capacity: int) -> None:
        self.dim = dim
        self.capacity = capacity
        self._vectors: F32 = np.zeros((capacity, dim), dtype=np.float32)
        self._scope = np.full(capacity, -1, dtype=np.int64)  # fingerprint id; -1: free row
        self._expires = np.zeros(capacity, dtype=np.float64)
        self._keys: list[str | None] = [None] * capacity
        self._free = list(range(capacity - 1, -1, -1))
        self._scope_ids: dict[str, int] = {}
        self._scope_names: dict[int, str] = {}
        self._scope_rows: dict[int, int] = {}
        self._next_scope = 0

    def __len__(self) -> int:
        return self.capacity - len(self._free)

    def add(self, key: str, fingerprint: str, vector: F32, expires: float) -> int:
        if not self._free:
            raise RuntimeError("the semantic index is full: evict before adding")
        if vector.shape != (self.dim,):
            raise ValueError(f"expected a vector of {self.dim} floats, got {vector.shape}")
        row = self._free.pop()
        scope = self._scope_ids.get(fingerprint)
        if scope is None:
            scope = self._scope_ids[fingerprint] = self._next_scope
            self._scope_names[scope] = fingerprint
            self._next_scope += 1
        self._scope_rows[scope] = self._scope_rows.get(scope, 0) + 1
        self._vectors[row] = vector
        self._scope[row] = scope
        self._expires[row] = expires
        self._keys[row] = key
        return row

    def remove(self, row: int) -> None:
        scope = int(self._scope[row])
        if scope < 0:
            return
        self._scope[row] = -1
        self._keys[row] = None
        self._free.append(row)
        left = self._scope_rows[scope] - 1
        if left:
            self._scope_rows[scope] = left
        else:  # forget fingerprints nobody uses, so the id table stays as small as the index
            del self._scope_rows[scope]
            del self._scope_ids[self._scope_names.pop(scope)]

    def search(
        self, vector: F32, fingerprint: str, now: float, threshold: float, limit: int = 4
    ) -> list[tuple[str, float]]:
        """Keys of live rows in the same scope with cosine >= threshold, best first."""
        scope = self._scope_ids.get(fingerprint)
        if scope is None:
            return []
        rows = np.flatnonzero((self._scope == scope) & (self._expires > now))
        if rows.size == 0:
            return []
        sims = self._vectors[rows] @ vector
        good = np.flatnonzero(sims >= threshold)
        if good.size == 0:
            return []
        best = good[np.argsort(-sims[good], kind="stable")[:limit]]
        found = []
        for i in best:
            key = self._keys[int(rows[i])]
            if key is not None:
                found.append((key, float(sims[i])))
        return found
