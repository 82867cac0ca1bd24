"""Helpers the cache tests share: a deterministic toy embedder and a settable clock. A kit
module, not a test module: tests never import each other."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


class WordsEmbedder:
    """A deterministic toy embedder: a sum of one random vector per word, normalised. Two
    instances share vectors only when their names (the embedder's identity) agree."""

    dim = 64

    def __init__(self, name: str = "words") -> None:
        self.name = name

    async def embed(self, texts: Sequence[str]) -> F32:
        rows = []
        for text in texts:
            v = np.zeros(self.dim, dtype=np.float64)
            for word in text.lower().split():
                v += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self.dim)
            rows.append(v / (np.linalg.norm(v) or 1.0))
        return np.asarray(rows, dtype=np.float32)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
