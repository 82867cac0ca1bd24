"""Latency model of the fake LLM server: per-model TTFT, output speed, connection cost.

The numbers live in ``latency.toml`` next to this file (documented with sources there).
Sampling is pure (no sleeping) so tests can check the distribution directly::

    model = LatencyModel("realistic", seed=1)
    s = model.sample("claude-3-5-sonnet-latest", input_tokens=800)
    s.ttft_s, s.output_tps, s.output_time(120)
"""

from __future__ import annotations

import fnmatch
import math
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LATENCY_FILE = Path(__file__).with_name("latency.toml")


def count_tokens(text: str) -> int:
    """Tokens as the fake server counts them: ceil(len(text) / 4) (no tokenizer offline)."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class ModelClass:
    name: str
    patterns: tuple[str, ...]
    ttft_median_s: float
    ttft_sigma: float
    output_tps: tuple[float, float]

    def matches(self, model: str) -> bool:
        m = model.lower()
        return any(fnmatch.fnmatchcase(m, p.lower()) for p in self.patterns)


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    models: tuple[ModelClass, ...]
    heavy_tail_probability: float = 0.0
    heavy_tail_min_s: float = 0.0
    heavy_tail_max_s: float = 0.0
    per_input_token_s: float = 0.0
    input_token_reference: int = 0
    new_connection_s: float = 0.0
    chunk_tokens: int = 4
    models_endpoint_s: float = 0.0

    def model_class(self, model: str) -> ModelClass:
        for cls in self.models:
            if cls.matches(model or ""):
                return cls
        return self.models[-1]

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> LatencyProfile:
        models = tuple(
            ModelClass(
                name=str(m.get("name", m["patterns"][0])),
                patterns=tuple(m["patterns"]),
                ttft_median_s=float(m["ttft_median_s"]),
                ttft_sigma=float(m["ttft_sigma"]),
                output_tps=(float(m["output_tps"][0]), float(m["output_tps"][1])),
            )
            for m in data.get("models", [])
        )
        if not models:
            raise ValueError(f"latency profile {name!r} has no models")
        fields = {k: v for k, v in data.items() if k != "models"}
        return cls(name=name, models=models, **fields)


def load_profiles(path: str | Path | None = None) -> dict[str, LatencyProfile]:
    with open(path or DEFAULT_LATENCY_FILE, "rb") as f:
        data = tomllib.load(f)
    return {name: LatencyProfile.from_dict(name, p) for name, p in data.get("profiles", {}).items()}


@dataclass(frozen=True)
class LatencySample:
    """One request's latency draw, in unscaled seconds."""

    model_class: str
    ttft_s: float  # time to first token, from the model (lognormal or heavy tail)
    heavy_tail: bool
    prefill_s: float  # extra for input tokens beyond the profile's reference size
    output_tps: float  # output tokens per second; 0 = instantaneous
    chunk_tokens: int

    @property
    def first_token_s(self) -> float:
        return self.ttft_s + self.prefill_s

    def output_time(self, output_tokens: int) -> float:
        return output_tokens / self.output_tps if self.output_tps > 0 else 0.0

    def chunk_interval(self) -> float:
        return self.chunk_tokens / self.output_tps if self.output_tps > 0 else 0.0

    def total(self, output_tokens: int) -> float:
        """Non-streaming response time (without any connection penalty)."""
        return self.first_token_s + self.output_time(output_tokens)


class LatencyModel:
    """Samples per-request latency from a profile with its own seeded RNG."""

    def __init__(
        self,
        profile: str | LatencyProfile = "realistic",
        *,
        seed: int | None = 0,
        path: str | Path | None = None,
    ) -> None:
        self.profiles = load_profiles(path)
        self.rng = random.Random(seed)
        self.profile = self._resolve(profile)

    def _resolve(self, profile: str | LatencyProfile) -> LatencyProfile:
        if isinstance(profile, LatencyProfile):
            return profile
        try:
            return self.profiles[profile]
        except KeyError:
            raise ValueError(
                f"unknown latency profile {profile!r}; have {sorted(self.profiles)}"
            ) from None

    def set_profile(self, profile: str | LatencyProfile) -> None:
        self.profile = self._resolve(profile)

    def reseed(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    @property
    def new_connection_s(self) -> float:
        return self.profile.new_connection_s

    def sample_ttft(self, model: str) -> tuple[float, bool]:
        p = self.profile
        cls = p.model_class(model)
        if p.heavy_tail_probability > 0 and self.rng.random() < p.heavy_tail_probability:
            return self.rng.uniform(p.heavy_tail_min_s, p.heavy_tail_max_s), True
        if cls.ttft_median_s <= 0:
            return 0.0, False
        return self.rng.lognormvariate(math.log(cls.ttft_median_s), cls.ttft_sigma), False

    def sample(self, model: str, *, input_tokens: int = 0) -> LatencySample:
        p = self.profile
        cls = p.model_class(model)
        ttft, heavy = self.sample_ttft(model)
        lo, hi = cls.output_tps
        tps = self.rng.uniform(lo, hi) if hi > 0 else 0.0
        prefill = max(0, input_tokens - p.input_token_reference) * p.per_input_token_s
        return LatencySample(
            model_class=cls.name,
            ttft_s=ttft,
            heavy_tail=heavy,
            prefill_s=prefill,
            output_tps=tps,
            chunk_tokens=max(1, p.chunk_tokens),
        )
