"""The fixed labels every step, prompt, playbook and data set speaks.

The ids are Literals, for typing; everything else about them (titles, prompt descriptions,
flags, plays) is data in taxonomy.toml, loaded once here. The loader refuses a file whose ids
differ from the Literals' or whose entry lacks a field, so nothing is forgotten silently.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeGuard, get_args

Situation = Literal[
    "greeting",
    "discovery",
    "feature_question",
    "pricing_question",
    "price_objection",
    "competitor_mention",
    "timing_objection",
    "authority_objection",
    "status_quo_objection",
    "risk_concern",
    "buying_signal",
    "scheduling",
    "not_interested",
    "other",
]

SlotName = Literal[
    "pain",
    "objection",
    "budget_signal",
    "competitor",
    "timeline",
    "decision_maker",
    "team_size",
    "current_solution",
    "next_step",
]

Step = Literal["capture", "detect", "generate"]

TAXONOMY_PATH: Final = Path(__file__).parent / "taxonomy.toml"


@dataclass(frozen=True, slots=True)
class SituationSpec:
    """One situation as taxonomy.toml describes it (the flags are explained there)."""

    id: Situation
    title: str
    prompt: str
    objection: bool
    describes_current: bool
    allows_next_step: bool
    implies_decider: bool


@dataclass(frozen=True, slots=True)
class SlotSpec:
    id: SlotName
    title: str
    prompt: str
    critical: bool
    scopes_answer: bool


def load_document(path: Path = TAXONOMY_PATH) -> dict[str, Any]:
    """taxonomy.toml as parsed (the playbook reads its plays from here too)."""
    return tomllib.loads(path.read_text("utf-8"))


def _fields(
    kind: str, id_: str, raw: Mapping[str, Any], wanted: Mapping[str, type]
) -> dict[str, Any]:
    """An entry's fields, each present and of its type; `play` belongs to the playbook."""
    values = {key: value for key, value in raw.items() if key != "play"}
    if unknown := set(values) - set(wanted):
        raise ValueError(f"taxonomy.toml: {kind} {id_}: unknown fields {sorted(unknown)}")
    for key, type_ in wanted.items():
        if not isinstance(values.get(key), type_):
            raise ValueError(f"taxonomy.toml: {kind} {id_}: {key} must be a {type_.__name__}")
    return values


def _same_ids(kind: str, found: Mapping[str, Any], literal: tuple[str, ...]) -> None:
    if tuple(found) != literal:
        raise ValueError(
            f"taxonomy.toml: the {kind} ids {list(found)} are not the Literal's {list(literal)}"
        )


def load_specs(
    path: Path = TAXONOMY_PATH,
) -> tuple[tuple[SituationSpec, ...], tuple[SlotSpec, ...]]:
    """A taxonomy file's situations and slots, checked against the Literals."""
    document = load_document(path)
    situations, slots = document["situation"], document["slot"]
    _same_ids("situation", situations, get_args(Situation))
    _same_ids("slot", slots, get_args(SlotName))
    situation_fields = {
        "title": str,
        "prompt": str,
        "objection": bool,
        "describes_current": bool,
        "allows_next_step": bool,
        "implies_decider": bool,
    }
    slot_fields = {"title": str, "prompt": str, "critical": bool, "scopes_answer": bool}
    return (
        tuple(
            SituationSpec(id=id_, **_fields("situation", id_, raw, situation_fields))
            for id_, raw in situations.items()
        ),
        tuple(
            SlotSpec(id=id_, **_fields("slot", id_, raw, slot_fields)) for id_, raw in slots.items()
        ),
    )


SITUATION_SPECS, SLOT_SPECS = load_specs()

SITUATIONS: Final[tuple[Situation, ...]] = tuple(s.id for s in SITUATION_SPECS)
SLOTS: Final[tuple[SlotName, ...]] = tuple(s.id for s in SLOT_SPECS)
STEPS: Final[tuple[str, ...]] = get_args(Step)

SITUATION_TITLES: Final[Mapping[str, str]] = {s.id: s.title for s in SITUATION_SPECS}
SLOT_TITLES: Final[Mapping[str, str]] = {s.id: s.title for s in SLOT_SPECS}
CRITICAL_SLOTS: Final[frozenset[str]] = frozenset(s.id for s in SLOT_SPECS if s.critical)
# Situations in which the prospect pushes back.
OBJECTIONS: Final[frozenset[Situation]] = frozenset(s.id for s in SITUATION_SPECS if s.objection)


def is_situation(value: object) -> TypeGuard[Situation]:
    """Narrows a label read from a model, a file or the database to a `Situation`."""
    return value in SITUATIONS
