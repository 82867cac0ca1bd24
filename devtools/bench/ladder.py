"""The configurations of the ladder: one engine, one workload, one fake server; each row
switches on one more optimisation. Every row gets a fresh SQLite file and a fresh cache."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Config:
    name: str
    adds: str  # what this row switches on, relative to the one before
    group: Literal["ladder", "beyond"]
    settings: Mapping[str, Any] = field(default_factory=dict)  # Settings fields to replace
    providers: tuple[str, ...] = ("anthropic", "openai")
    pool: bool = True  # False: a new connection (and handshake) for every call


_BASE: dict[str, Any] = {
    "pipeline": "sequential",
    "router": "single",
    "prompt_style": "verbose",
    "cache": False,
    "embedder": "none",
    "tiering": False,
    "speculative": False,
}


def _row(previous: Config, name: str, adds: str, **changes: Any) -> Config:
    group = changes.pop("group", previous.group)
    providers = changes.pop("providers", previous.providers)
    pool = changes.pop("pool", previous.pool)
    return Config(name, adds, group, {**previous.settings, **changes}, providers, pool)


BASELINE = Config(
    "baseline",
    "sequential, one provider, verbose prompts, new connection per call, no cache",
    "ladder",
    _BASE,
    providers=("anthropic",),
    pool=False,
)
P1 = _row(
    BASELINE,
    "P1",
    "+ compact prompts, pooled connections, exact cache",
    prompt_style="compact",
    pool=True,
    cache=True,
)
P2 = _row(P1, "P2", "+ parallel capture ∥ detect with reconcile", pipeline="parallel")
P3 = _row(P2, "P3", "+ racing two providers", router="race", providers=("anthropic", "openai"))
P4 = _row(P3, "P4", "+ semantic cache (local MiniLM)", embedder="minilm")
P5 = _row(P4, "P5", "+ tiered models", tiering=True)
HEDGE = _row(
    P5,
    "B1-hedge",
    "P5 with hedging on time-to-first-token instead of racing",
    group="beyond",
    router="hedge",
)
# Bounded replies: the terse prompts ask for a reply under 40 words and a tip under 15 (compact:
# 90 + 30) within a 130-token budget; the fake model keeps to the asked length, as models do.
TERSE = _row(
    HEDGE,
    "B2-terse",
    "+ fewer output tokens (terse prompts: replies under 40 words)",
    prompt_style="terse",
)
SPECULATIVE = _row(
    TERSE, "B3-speculative", "+ speculative generation on the offline guess", speculative=True
)

LADDER: tuple[Config, ...] = (BASELINE, P1, P2, P3, P4, P5, HEDGE, TERSE, SPECULATIVE)


def select(names: str | None) -> tuple[Config, ...]:
    """Rows by name (comma-separated, case-insensitive; a prefix like "B3" will do)."""
    if not names:
        return LADDER
    chosen = []
    for raw in names.split(","):
        want = raw.strip().lower()
        if not want:
            continue
        found = [c for c in LADDER if c.name.lower() == want] or [
            c for c in LADDER if c.name.lower().startswith(want)
        ]
        if len(found) != 1:
            known = ", ".join(c.name for c in LADDER)
            raise ValueError(f"unknown or ambiguous row {raw.strip()!r}; rows: {known}")
        if found[0] not in chosen:
            chosen.append(found[0])
    return tuple(c for c in LADDER if c in chosen)
