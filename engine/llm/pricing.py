"""Estimated cost of a call, from the price table kept as data in `prices.toml`."""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PRICES_FILE = Path(__file__).with_name("prices.toml")


@dataclass(frozen=True, slots=True)
class Price:
    pattern: str
    input_per_m: float
    output_per_m: float


class PriceTable:
    def __init__(self, prices: tuple[Price, ...]) -> None:
        self.prices = prices
        self._by_model: dict[str, Price | None] = {}

    @classmethod
    def load(cls, path: Path = PRICES_FILE) -> PriceTable:
        with path.open("rb") as f:
            data = tomllib.load(f)
        prices = []
        for i, row in enumerate(data.get("price", [])):
            try:
                prices.append(Price(str(row["model"]), float(row["input"]), float(row["output"])))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}: price {i} needs model, input and output") from None
        return cls(tuple(prices))

    def price(self, model: str) -> Price | None:
        if model not in self._by_model:
            name = model.lower()
            self._by_model[model] = next(
                (p for p in self.prices if fnmatch.fnmatchcase(name, p.pattern.lower())), None
            )
        return self._by_model[model]

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float:
        p = self.price(model)
        if p is None:
            return 0.0
        return (tokens_in * p.input_per_m + tokens_out * p.output_per_m) / 1_000_000


@cache
def default_prices() -> PriceTable:
    return PriceTable.load()
