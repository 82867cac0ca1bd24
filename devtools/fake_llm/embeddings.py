"""Deterministic, somewhat meaningful fake embeddings.

A text becomes a hashed bag of lowercase word unigrams and bigrams (sublinear term
frequency); each hashed feature selects a row of a fixed random Gaussian matrix that is
generated from a seed on demand (rows are cached), the rows are summed with the feature
weights and the result is L2-normalised. So identical texts give identical vectors,
and rewordings that share most of their words have a high cosine similarity, while
unrelated texts are near-orthogonal (random projection preserves inner products).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
from collections import Counter
from functools import lru_cache

import numpy as np

MODEL_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_DIMS = 1536
MATRIX_SEED = 20240501
HASH_BUCKETS = 1 << 20
BIGRAM_WEIGHT = 0.7

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


def model_dims(model: str) -> int:
    return MODEL_DIMS.get(model, DEFAULT_DIMS)


def features(text: str) -> Counter[str]:
    words = _WORD.findall(text.lower())
    feats: Counter[str] = Counter(f"u:{w}" for w in words)
    feats.update(f"b:{a} {b}" for a, b in itertools.pairwise(words))
    if not feats:
        # No words (punctuation, emoji...): fall back to the raw text so it is still stable.
        feats[f"raw:{text}"] = 1
    return feats


def _bucket(feature: str) -> int:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % HASH_BUCKETS


@lru_cache(maxsize=4096)
def _row(bucket: int, dims: int) -> np.ndarray:
    rng = np.random.default_rng([MATRIX_SEED, dims, bucket])
    row = rng.standard_normal(dims, dtype=np.float32)
    row.setflags(write=False)
    return row


def embed(text: str | list[int], dims: int = DEFAULT_DIMS) -> np.ndarray:
    """Unit-norm float32 vector of `dims` dimensions for a text (or a list of token ids)."""
    if isinstance(text, list):
        feats: Counter[str] = Counter(f"t:{t}" for t in text) or Counter({"t:": 1})
    else:
        feats = features(text)
    vec = np.zeros(dims, dtype=np.float64)
    for feat, tf in feats.items():
        weight = (1.0 + math.log(tf)) * (BIGRAM_WEIGHT if feat.startswith("b:") else 1.0)
        vec += weight * _row(_bucket(feat), dims)
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0] = 1.0
        norm = 1.0
    return (vec / norm).astype(np.float32)


def truncate(vec: np.ndarray, dims: int) -> np.ndarray:
    """Shorten to `dims` and renormalise, like text-embedding-3's `dimensions` parameter."""
    out = vec[:dims].astype(np.float64)
    norm = float(np.linalg.norm(out)) or 1.0
    return (out / norm).astype(np.float32)


def to_base64(vec: np.ndarray) -> str:
    """OpenAI's base64 encoding: little-endian float32 bytes."""
    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")


def cosine(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    return float(x @ y / ((np.linalg.norm(x) * np.linalg.norm(y)) or 1.0))
