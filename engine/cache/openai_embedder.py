"""OpenAI embeddings (`text-embedding-3-small`) behind the Embedder port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from openai import AsyncOpenAI

__all__ = ["OpenAIEmbedder"]

MODEL_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


class OpenAIEmbedder:
    """Unit-length float32 rows from the OpenAI embeddings API (or a compatible endpoint)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = "text-embedding-3-small",
        timeout_s: float = 3.0,
        client: Any = None,
    ) -> None:
        self.name = model
        self.dim = MODEL_DIMS.get(model, 1536)
        self._client = client or AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=1
        )

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        response = await self._client.embeddings.create(model=self.name, input=list(texts))
        rows = sorted(response.data, key=lambda item: item.index)
        vectors = np.asarray([item.embedding for item in rows], dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise ValueError(
                f"{self.name} returned {vectors.shape} for {len(texts)} texts of {self.dim} dims"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    async def aclose(self) -> None:
        await self._client.close()
