"""JSON schemas for each step's answer, derived from the taxonomy.

Providers that can constrain decoding (OpenAI `json_schema`, Anthropic `output_config.format`,
llama.cpp's grammar from `response_format`) receive these, so a weak model cannot drift off the
labels or slot names, and `engine.contract` still validates whatever comes back.

`strict=True` is OpenAI's strict mode: every property listed in `required` (absent slots are
`null`) and `additionalProperties: false` everywhere. Without it, slots are optional, so a
grammar-constrained model is not made to spell out nine nulls, and strings carry the
contract's length bounds (`maxLength`: llama.cpp's grammar honours them, so a weak model that
rambles inside the reply stops at the bound instead of running into max_tokens and being cut;
OpenAI's strict mode does not take them, and a strong model stays short anyway).

Servers differ in what they honour: llama.cpp ignores `minimum`/`maximum`, and Anthropic's
structured outputs reject numeric bounds (`bounds=False` leaves them out), so the contract
normalises a confidence given as a percentage instead of trusting the bounds.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from ..contract import MAX_REPLY_CHARS_ASKED, MAX_SLOT_CHARS, MAX_TIP_CHARS_ASKED
from ..taxonomy import SITUATIONS, SLOTS

_BOUNDED: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1}
_NUMBER: dict[str, Any] = {"type": "number"}


@cache
def _schema(step: str, strict: bool, bounds: bool) -> dict[str, Any]:
    confidence = _BOUNDED if bounds else _NUMBER

    def text(limit: int, nullable: bool = False) -> dict[str, Any]:
        kind: dict[str, Any] = {"type": ["string", "null"] if nullable else "string"}
        return kind if strict else kind | {"maxLength": limit}

    if step == "capture":
        slots: dict[str, Any] = {
            "type": "object",
            "properties": {name: text(MAX_SLOT_CHARS, nullable=True) for name in SLOTS},
            "additionalProperties": False,
        }
        if strict:
            slots["required"] = list(SLOTS)
        return _object({"slots": slots, "confidence": confidence})
    if step == "detect":
        return _object(
            {
                "situation": {"type": "string", "enum": list(SITUATIONS)},
                "confidence": confidence,
                "secondary": {"type": ["string", "null"], "enum": [*SITUATIONS, None]},
            }
        )
    if step == "generate":
        return _object(
            {
                "reply": text(MAX_REPLY_CHARS_ASKED),
                "coaching_tip": text(MAX_TIP_CHARS_ASKED),
            }
        )
    raise ValueError(f"unknown step {step!r}")


def schema(step: str, *, strict: bool = False, bounds: bool = True) -> dict[str, Any]:
    """The step's answer schema (a fresh copy: SDKs may annotate what they are given)."""
    return copy.deepcopy(_schema(step, strict, bounds))


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
