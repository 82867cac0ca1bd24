"""Deal qualification: a thread's slots scored against the playbook's framework (BANT by
default, MEDDICC-style if the playbook says so), with what is known, from which message, what
is missing, the one question worth asking next, and the deal's risks.

The frameworks are data (taxonomy.toml's `[deal]`, overridable by SALES_AGENT_PLAYBOOK's file);
this module only reads them and scores. Pure: no I/O beyond reading the file it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .model import SlotValue
from .taxonomy import SITUATIONS, SLOT_TITLES, SLOTS, TAXONOMY_PATH, load_document

__all__ = ["DealError", "DealRules", "DealView", "Framework", "Item", "deal_view", "parse_rules"]


class DealError(ValueError):
    """A `[deal]` section we cannot use: the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Item:
    """One qualification item (e.g. BANT's Budget): known when any of its slots is."""

    id: str
    title: str
    slots: tuple[str, ...]
    weight: float
    question: str
    question_in: Mapping[str, str]
    weight_in: Mapping[str, float]

    def question_for(self, situation: str | None) -> str:
        return self.question_in.get(situation or "", self.question)

    def urgency(self, situation: str | None) -> float:
        return self.weight_in.get(situation or "", self.weight)


@dataclass(frozen=True, slots=True)
class Framework:
    id: str
    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class DealRules:
    framework: Framework  # the one in force
    frameworks: Mapping[str, Framework]
    decision_maker_turns: int


@dataclass(frozen=True, slots=True)
class Known:
    item: Item
    slot: str
    value: SlotValue


@dataclass(frozen=True, slots=True)
class DealView:
    framework: str  # its title
    score: float  # 0..1, the known items' share of the weight
    known: tuple[Known, ...]
    missing: tuple[Item, ...]
    next_question: str | None
    risks: tuple[str, ...]
    next_steps: tuple[str, ...]


def deal_view(
    rules: DealRules,
    slots: Mapping[str, SlotValue],
    *,
    situation: str | None,
    turns: int,
    battlecards: frozenset[str] | None = None,
) -> DealView:
    """The thread's qualification. `battlecards`: the competitors the team's knowledge has a
    card for, lower-case (None: no knowledge configured, so no risk is claimed about it)."""
    items = rules.framework.items
    known: list[Known] = []
    missing: list[Item] = []
    for item in items:
        slot = next((s for s in item.slots if slots.get(s) and slots[s].value), None)
        if slot is None:
            missing.append(item)
        else:
            known.append(Known(item, slot, slots[slot]))
    total = sum(i.weight for i in items) or 1.0
    score = sum(k.item.weight for k in known) / total
    # Stable: among equally urgent items the framework's order decides.
    ask = max(missing, key=lambda i: i.urgency(situation), default=None)
    return DealView(
        framework=rules.framework.title,
        score=round(score, 2),
        known=tuple(known),
        missing=tuple(missing),
        next_question=ask.question_for(situation) if ask else None,
        risks=_risks(rules, slots, turns, battlecards),
        next_steps=_next_steps(slots, ask, situation),
    )


def next_question(rules: DealRules, slots: Mapping[str, str], situation: str | None) -> str | None:
    """The card's one question: the most urgent missing item in this situation."""
    values = {k: SlotValue(v, "", 0.0) for k, v in slots.items() if v}
    return deal_view(rules, values, situation=situation, turns=0).next_question


def _value(slots: Mapping[str, SlotValue], name: str) -> str:
    slot = slots.get(name)
    return slot.value if slot else ""


def _risks(
    rules: DealRules,
    slots: Mapping[str, SlotValue],
    turns: int,
    battlecards: frozenset[str] | None,
) -> tuple[str, ...]:
    risks = []
    if not _value(slots, "decision_maker") and turns >= rules.decision_maker_turns:
        risks.append(f"No decision maker after {turns} turns.")
    competitor = _value(slots, "competitor")
    if competitor and battlecards is not None and competitor.lower() not in battlecards:
        risks.append(f"{competitor} is in the deal and there is no battlecard for it.")
    if _value(slots, "timeline") and not _value(slots, "next_step"):
        risks.append("A timeline without an agreed next step.")
    if _value(slots, "objection"):
        risks.append(f"Open objection: {_value(slots, 'objection')}.")
    return tuple(risks)


def _next_steps(
    slots: Mapping[str, SlotValue], ask: Item | None, situation: str | None
) -> tuple[str, ...]:
    steps = []
    if next_step := _value(slots, "next_step"):
        steps.append(f"Agreed: {next_step}.")
    if ask is not None:
        steps.append(f"Ask: {ask.question_for(situation)}")
    if not next_step:
        steps.append("Propose a concrete next step with a date.")
    return tuple(steps)


def parse_rules(raw: Any, *, source: str, base: DealRules | None = None) -> DealRules:
    """A `[deal]` table, every field checked; a file's table extends `base` (its frameworks
    replace same-named ones, its `framework` and `decision_maker_turns` win when given)."""
    where = f"{source}: deal"
    if not isinstance(raw, dict):
        raise DealError(f"{where}: must be a table")
    if unknown := set(raw) - {"framework", "frameworks", "decision_maker_turns"}:
        raise DealError(f"{where}: unknown fields {sorted(unknown)}")
    frameworks = dict(base.frameworks) if base else {}
    tables = raw.get("frameworks", {})
    if not isinstance(tables, dict):
        raise DealError(f"{where}.frameworks: must be a table of frameworks")
    for fid, spec in tables.items():
        frameworks[fid] = _framework(f"{where}.frameworks.{fid}", fid, spec)
    chosen = raw.get("framework", base.framework.id if base else None)
    if not isinstance(chosen, str) or chosen not in frameworks:
        raise DealError(
            f"{where}.framework: {chosen!r} is not a framework (known: {', '.join(frameworks)})"
        )
    turns = raw.get("decision_maker_turns", base.decision_maker_turns if base else 3)
    if not isinstance(turns, int) or isinstance(turns, bool) or turns < 1:
        raise DealError(f"{where}.decision_maker_turns: must be a whole number of at least 1")
    return DealRules(frameworks[chosen], frameworks, turns)


def _framework(where: str, fid: str, spec: Any) -> Framework:
    if not isinstance(spec, dict) or set(spec) - {"title", "item"}:
        raise DealError(f"{where}: holds a title and [[...item]] tables only")
    title = spec.get("title", fid)
    if not isinstance(title, str) or not title.strip():
        raise DealError(f"{where}.title: must be a non-empty string")
    raw_items = spec.get("item")
    if not isinstance(raw_items, list) or not raw_items:
        raise DealError(f"{where}.item: a framework needs at least one item")
    items = tuple(_item(f"{where}.item[{i}]", raw) for i, raw in enumerate(raw_items))
    if len({i.id for i in items}) != len(items):
        raise DealError(f"{where}.item: two items share an id")
    return Framework(fid, title, items)


def _item(where: str, raw: Any) -> Item:
    if not isinstance(raw, dict):
        raise DealError(f"{where}: an item is a table")
    fields = {"id", "title", "slots", "weight", "question", "question_in", "weight_in"}
    if unknown := set(raw) - fields:
        raise DealError(f"{where}: unknown fields {sorted(unknown)}")
    for key in ("id", "title", "question"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise DealError(f"{where}.{key}: must be a non-empty string")
    where = f"{where} ({raw['id']})"
    slots = raw.get("slots")
    if not isinstance(slots, list) or not slots or not all(isinstance(s, str) for s in slots):
        raise DealError(f"{where}.slots: must be a non-empty list of slot names")
    if unknown := set(slots) - set(SLOTS):
        raise DealError(
            f"{where}.slots: unknown slots {sorted(unknown)} (known: {', '.join(SLOT_TITLES)})"
        )
    weight = raw.get("weight", 1)
    if not _positive(weight):
        raise DealError(f"{where}.weight: must be a positive number")
    question_in = raw.get("question_in", {})
    weight_in = raw.get("weight_in", {})
    for key, table, ok in (
        ("question_in", question_in, lambda v: isinstance(v, str) and bool(v.strip())),
        ("weight_in", weight_in, _positive),
    ):
        if not isinstance(table, dict):
            raise DealError(f"{where}.{key}: must be a table keyed by situation")
        for situation, value in table.items():
            if situation not in SITUATIONS:
                raise DealError(f"{where}.{key}.{situation}: unknown situation")
            if not ok(value):
                raise DealError(f"{where}.{key}.{situation}: invalid value {value!r}")
    return Item(
        id=raw["id"],
        title=raw["title"],
        slots=tuple(slots),
        weight=float(weight),
        question=raw["question"],
        question_in=dict(question_in),
        weight_in={k: float(v) for k, v in weight_in.items()},
    )


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@cache
def default_rules(path: Path = TAXONOMY_PATH) -> DealRules:
    return parse_rules(load_document(path)["deal"], source=path.name)
