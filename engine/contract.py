"""The output contract every provider meets, and its parser.

capture  -> {"slots": {name: value}, "confidence": 0..1}
detect   -> {"situation": label, "confidence": 0..1, "secondary": label | null}
generate -> {"reply": str, "coaching_tip": str}

The same shapes are sent as JSON schemas (`engine.llm.schemas`) to providers that constrain
decoding; this parser still checks every answer, because weak models and lenient servers get
through a schema in ways that look valid and are not.

What is harmless is normalised: code fences and prose around the object, label case and spacing,
"None"-like values, a confidence given as a string or a percentage, an unknown slot (dropped, the
rest kept). What would mislead a rep is rejected: a capture without its `slots` object, the
schema's own placeholders echoed back (`<text>`, `<value>`), an empty reply. An answer cut off
mid-object is repaired when what was complete still meets the contract, and otherwise rejected
as truncated (its own error kind), not as "no JSON".
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import jiter

from .errors import InvalidOutput
from .model import Capture, Detection, Draft, StepValue
from .taxonomy import SLOTS, is_situation

log = logging.getLogger(__name__)

MAX_SLOT_CHARS = 160
MAX_REPLY_CHARS = 1500
MAX_TIP_CHARS = 500
# What the prompts ask for (a reply under 90 words, a tip under 30), with room: the bounds a
# lenient schema gives a grammar-constrained model (engine/llm/schemas.py). The parser keeps
# the looser limits above for models that are not held to the schema.
MAX_REPLY_CHARS_ASKED = 600
MAX_TIP_CHARS_ASKED = 200

# Values a model writes for "nothing here".
_EMPTY = frozenset({"", "none", "null", "n/a", "na", "unknown", "not mentioned", "not stated", "-"})
# A schema placeholder or template variable echoed back: "<text>", "<value>", "{name}".
_PLACEHOLDER = re.compile(r"<\s*[a-z_ ]{1,24}\s*>|\{\{?\s*[a-z_]{1,24}\s*\}?\}", re.IGNORECASE)


def parse(step: str, text: str) -> StepValue:
    obj, truncated = _json_object(text)
    try:
        if step == "capture":
            return capture_from(obj)
        if step == "detect":
            return detection_from(obj)
        if step == "generate":
            return draft_from(obj)
    except InvalidOutput as exc:
        if truncated:
            raise InvalidOutput(f"answer was cut off ({exc})", truncated=True) from None
        raise
    raise ValueError(f"unknown step {step!r}")


def capture_from(obj: dict[str, Any]) -> Capture:
    raw = obj.get("slots")
    if not isinstance(raw, dict):
        # A capture with no slots object is not "no slots": it is an answer to something else.
        raise InvalidOutput("capture: the answer has no 'slots' object")
    slots: dict[str, str] = {}
    for key, value in raw.items():
        name = label(key)
        if name not in SLOTS:
            log.debug("capture: dropped unknown slot %r", key)
            continue
        text = _slot_text(value)
        if text:
            slots[name] = text[:MAX_SLOT_CHARS]
    return Capture(slots=slots, confidence=_confidence(obj, "capture", default=0.8))


def detection_from(obj: dict[str, Any]) -> Detection:
    situation = label(obj.get("situation"))
    if not is_situation(situation):
        raise InvalidOutput(f"detect: unknown situation {obj.get('situation')!r}")
    secondary: str | None = label(obj.get("secondary"))
    if secondary in _EMPTY or secondary == situation:
        secondary = None
    if secondary is not None and not is_situation(secondary):
        raise InvalidOutput(f"detect: unknown secondary situation {obj.get('secondary')!r}")
    return Detection(
        situation=situation,
        confidence=_confidence(obj, "detect"),
        secondary=secondary,
    )


def draft_from(obj: dict[str, Any]) -> Draft:
    reply = obj.get("reply")
    tip = obj.get("coaching_tip", "")
    if not isinstance(reply, str) or " ".join(reply.split()).casefold() in _EMPTY:
        raise InvalidOutput("generate: 'reply' must be non-empty text")
    if _PLACEHOLDER.search(reply):
        raise InvalidOutput("generate: 'reply' holds a placeholder")
    if not isinstance(tip, str):
        raise InvalidOutput("generate: 'coaching_tip' must be text")
    if _PLACEHOLDER.search(tip):
        tip = ""  # a tip is advice to the rep, never sent: an echoed placeholder is just dropped
    return Draft(reply=_bounded(reply, MAX_REPLY_CHARS), coaching_tip=_bounded(tip, MAX_TIP_CHARS))


def to_json(value: StepValue) -> dict[str, Any]:
    """The contract form of a typed value: what a provider would have answered."""
    if isinstance(value, Capture):
        return {"slots": dict(value.slots), "confidence": value.confidence}
    if isinstance(value, Detection):
        return {
            "situation": value.situation,
            "confidence": value.confidence,
            "secondary": value.secondary,
        }
    return {"reply": value.reply, "coaching_tip": value.coaching_tip}


def label(value: object) -> str:
    """A label or slot name as the taxonomy spells it: "Price Objection" -> price_objection."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    return re.sub(r"[\s\-]+", "_", value.strip().casefold())


def _json_object(text: str) -> tuple[dict[str, Any], bool]:
    """The first JSON object in the answer, and whether it had to be closed (truncated)."""
    start = text.find("{")
    if start < 0:
        raise InvalidOutput("answer holds no JSON object")
    try:
        # raw_decode stops at the object's end: fences and prose after it are ignored.
        obj, _ = json.JSONDecoder().raw_decode(text, start)
        truncated = False
    except json.JSONDecodeError as exc:
        if not _ends_early(text, exc):
            raise InvalidOutput(f"answer is not valid JSON: {exc.msg}") from None
        # Cut off mid-object: keep what was complete (an unfinished string is dropped).
        try:
            obj = jiter.from_json(text[start:].rstrip().encode(), partial_mode=True)
        except ValueError:
            raise InvalidOutput("answer was cut off before any field", truncated=True) from None
        truncated = True
    if not isinstance(obj, dict):
        raise InvalidOutput("answer is not a JSON object")
    return obj, truncated


def _ends_early(text: str, exc: json.JSONDecodeError) -> bool:
    """Did the JSON stop because the text ran out (rather than hold a wrong character)?"""
    rest = text[exc.pos :].strip()
    return not rest or exc.msg.startswith("Unterminated string")


def _slot_text(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value if isinstance(v, str | int | float))
    if not isinstance(value, str | int | float):
        return ""
    text = " ".join(str(value).split())
    if text.casefold().strip(".") in _EMPTY or _PLACEHOLDER.fullmatch(text):
        return ""
    return text


def _confidence(obj: dict[str, Any], step: str, default: float | None = None) -> float:
    value = obj.get("confidence", default)
    if isinstance(value, str):
        value = _number(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOutput(f"{step}: 'confidence' must be a number from 0 to 1")
    number = float(value)
    # A percentage (servers that ignore the schema's bounds write 85 for 0.85).
    if 1.0 < number <= 100.0:
        number /= 100.0
    if not 0.0 <= number <= 1.0:
        raise InvalidOutput(f"{step}: 'confidence' {value} is outside 0..1")
    return number


def _number(text: str) -> float | None:
    raw = text.strip().rstrip("%").strip()
    try:
        number = float(raw)
    except ValueError:
        return None
    return number / 100.0 if text.strip().endswith("%") else number


def _bounded(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
