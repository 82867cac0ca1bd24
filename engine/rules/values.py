"""Structured values read out of a slot's phrase: an amount of money, a head count, a date.

A slot keeps a short phrase a rep can read ("around $35k a year"); these say what it means
("35000 USD per year"), so two phrases can be compared, a template can speak of an amount,
and the thread evaluation can check a value rather than its wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import lexicon

_SYMBOL_CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP"}
_WORD_CURRENCY = {
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
}
_UNIT = lexicon.alternatives(lexicon.UNITS)
_FIGURE = r"\d[\d,]*(?:\.\d+)?"
# "$35k", "35k", "45,000 dollars", "$1,200/mo": a figure a currency or a thousands unit marks.
_AMOUNT = re.compile(
    rf"(?P<sym>[$€£])\s?(?P<num>{_FIGURE})\s?(?P<unit>{_UNIT})?\b"
    rf"|\b(?P<num2>{_FIGURE})\s?(?P<unit2>{_UNIT})\b(?:\s?(?P<cur>{'|'.join(_WORD_CURRENCY)})\b)?"
    rf"|\b(?P<num3>{_FIGURE})\s?(?P<cur3>{'|'.join(_WORD_CURRENCY)})\b",
    re.I,
)
_PER = re.compile(
    r"\s?(?:/|per|a|an|each)\s?(?P<per>month|mo|year|yr|annum|seat|user|head|person|rep|"
    r"license|licence|employee)\b",
    re.I,
)
_PERIOD_WORDS = {
    "month": "month",
    "mo": "month",
    "year": "year",
    "yr": "year",
    "annum": "year",
    "seat": "seat",
    "user": "seat",
    "head": "seat",
    "person": "seat",
    "rep": "seat",
    "license": "seat",
    "licence": "seat",
    "employee": "seat",
}
_MONTH = re.compile(r"\b(" + lexicon.alternatives(lexicon.MONTHS) + r")\b\.?", re.I)
_QUARTER = re.compile(r"\b([qh][1-4])\b", re.I)
_YEAR = re.compile(r"\b(20\d\d)\b")
_WEEKDAY = re.compile(r"\b(mon|tue|wed|thu|fri|sat|sun)(?:s|n|nes|rs|ur)?(?:day)?\b", re.I)
_RELATIVE = re.compile(
    r"\b(this|next) (week|month|quarter|year|fiscal year|spring|summer|fall|autumn|winter)\b", re.I
)
_EVENTS = re.compile(
    r"\b(memorial day|labou?r day|thanksgiving|christmas|new year|holiday season|peak season|"
    r"renewal|fiscal year|school year|tomorrow|asap)\b",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount of money: its value in units of the currency, and what it is per, if said."""

    value: float
    currency: str
    per: str | None = None

    def __str__(self) -> str:
        symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(self.currency, "")
        if self.value >= 1_000_000 and self.value % 10_000 == 0:
            figure = f"{self.value / 1_000_000:g}M"
        elif self.value >= 1000 and self.value % 100 == 0:
            figure = f"{self.value / 1000:g}k"
        else:
            figure = f"{self.value:,.2f}".removesuffix(".00")
        per = f"/{self.per}" if self.per else ""
        return f"{symbol}{figure}{per}" if symbol else f"{figure} {self.currency}{per}"


def amount(text: str) -> Amount | None:
    """The first amount of money in `text`: "$35k" 35000 USD, "$1,200/mo" 1200 USD a month.
    A bare figure is money only with a currency or a thousands unit ("40k")."""
    for match in _AMOUNT.finditer(text):
        number = match.group("num") or match.group("num2") or match.group("num3")
        unit = (match.group("unit") or match.group("unit2") or "").lower()
        try:
            value = float(number.replace(",", "")) * lexicon.UNITS.get(unit, 1)
        except ValueError:
            continue
        if match.group("num2") and unit not in {"k", "thousand", "grand", "m", "mm", "million"}:
            continue
        symbol = match.group("sym")
        word = (match.group("cur") or match.group("cur3") or "").lower()
        currency = _SYMBOL_CURRENCY.get(symbol or "", _WORD_CURRENCY.get(word, "USD"))
        per = _PER.match(text, match.end())
        return Amount(value, currency, _PERIOD_WORDS[per.group("per").lower()] if per else None)
    return None


def head_count(text: str) -> int | None:
    """The first whole number in `text`, in figures or words: "~1,100" 1100, "forty" 40."""
    found = re.search(r"\d[\d,]*(?:\.\d+)?\s?k?\b", text)
    if found:
        raw = found.group(0).replace(",", "").replace(" ", "").lower()
        scale = 1000 if raw.endswith("k") else 1
        try:
            return int(float(raw.rstrip("k")) * scale)
        except ValueError:
            return None
    words = re.search(lexicon.WORD_NUMBER_PATTERN, text.lower())
    if words:
        value = lexicon.word_value(words.group(0))
        return int(value) if value is not None and value >= 1 else None
    return None


def when(text: str) -> frozenset[str]:
    """What a timeline phrase points at, as keys: "month:6", "q3", "2026", "day:thu",
    "next year", "memorial day". Two phrases agree when they share a key."""
    keys: set[str] = set()
    for match in _MONTH.finditer(text):
        word = match.group(1).lower()
        # "may" and "march" are verbs too: counted only next to a date word or capitalised.
        if word in lexicon.VERB_MONTHS and not match.group(1)[0].isupper():
            continue
        keys.add(f"month:{int(lexicon.MONTHS[word])}")
    keys |= {m.group(1).lower() for m in _QUARTER.finditer(text)}
    keys |= set(_YEAR.findall(text))
    keys |= {f"day:{m.group(1).lower()}" for m in _WEEKDAY.finditer(text)}
    keys |= {f"{m.group(1)} {m.group(2)}".lower() for m in _RELATIVE.finditer(text)}
    keys |= {m.group(1).lower() for m in _EVENTS.finditer(text)}
    return frozenset(keys)
