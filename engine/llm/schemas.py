"""JSON schemas for each step's answer, derived from the taxonomy.

Providers that can constrain decoding (OpenAI `json_schema`, Anthropic `output_config.format`,
llama.cpp's grammar from `response_format`) receive these, so a weak model cannot drift off the
labels or slot names, and `engine.contract` still validates whatever comes back.

`strict=True` is OpenAI's strict mode: every property listed in `required` (absent slots are
`null`) and `additionalProperties: false` everywhere. Without it, slots are optional, so a
grammar-constrained model is not made to spell out nine nulls, and strings carry the
contract's bounds in forms a grammar honours (llama.cpp drops `minimum`/`maximum`): slot values
a `maxLength`, the reply and tip a `pattern` of bounded length without `<>{}` (so a weak model
that rambles stops inside max_tokens instead of being cut, and cannot echo a placeholder), the
confidence an enum of steps of 0.05. OpenAI's strict mode gets the plain types.

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
# The lenient schema's confidence: the values a grammar can hold a model to (llama.cpp drops
# `minimum`/`maximum` and a 135M model writes 1000 or 1e12), in steps of 0.05.
_STEPPED: dict[str, Any] = {"type": "number", "enum": [round(i * 0.05, 2) for i in range(21)]}
# Prose for the rep: no angle brackets or braces, so a grammar-held model cannot echo the
# prompt's "<text>" placeholder or a {template} variable (the contract refuses both anyway);
# no quote, backslash or control character either: llama.cpp writes a pattern's characters
# into the JSON string as they are, so a raw newline would break the JSON.
_PROSE = "^[^<>{}\"\\\\\\x00-\\x1f]{1,%d}$"


@cache
def _schema(step: str, strict: bool, bounds: bool) -> dict[str, Any]:
    confidence = (_BOUNDED if bounds else _NUMBER) if strict else _STEPPED

    def text(limit: int, nullable: bool = False) -> dict[str, Any]:
        kind: dict[str, Any] = {"type": ["string", "null"] if nullable else "string"}
        return kind if strict else kind | {"maxLength": limit}

    def prose(limit: int) -> dict[str, Any]:
        return text(limit) if strict else {"type": "string", "pattern": _PROSE % limit}

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
                "reply": prose(MAX_REPLY_CHARS_ASKED),
                "coaching_tip": prose(MAX_TIP_CHARS_ASKED),
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
