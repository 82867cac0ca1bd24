"""The fixed labels every step, prompt, playbook and data set speaks."""

from __future__ import annotations

from typing import Final, Literal, get_args

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

SITUATIONS: Final[tuple[str, ...]] = get_args(Situation)
SLOTS: Final[tuple[str, ...]] = get_args(SlotName)
CRITICAL_SLOTS: Final[frozenset[str]] = frozenset(
    {"pain", "objection", "budget_signal", "competitor", "timeline", "decision_maker"}
)
STEPS: Final[tuple[str, ...]] = get_args(Step)

SITUATION_TITLES: Final[dict[str, str]] = {
    "greeting": "Greeting",
    "discovery": "Discovery",
    "feature_question": "Feature question",
    "pricing_question": "Pricing question",
    "price_objection": "Price objection",
    "competitor_mention": "Competitor mention",
    "timing_objection": "Timing objection",
    "authority_objection": "Authority objection",
    "status_quo_objection": "Status-quo objection",
    "risk_concern": "Risk concern",
    "buying_signal": "Buying signal",
    "scheduling": "Scheduling",
    "not_interested": "Not interested",
    "other": "Other",
}

SLOT_TITLES: Final[dict[str, str]] = {
    "pain": "Pain",
    "objection": "Objection",
    "budget_signal": "Budget",
    "competitor": "Competitor",
    "timeline": "Timeline",
    "decision_maker": "Decision maker",
    "team_size": "Team size",
    "current_solution": "Current solution",
    "next_step": "Next step",
}
