"""The output contract every provider meets, and its parser.

capture  -> {"slots": {name: value}, "confidence": 0..1}
detect   -> {"situation": label, "confidence": 0..1, "secondary": label | null}
generate -> {"reply": str, "coaching_tip": str}

Unknown keys are ignored; unknown labels or slot names are rejected, so a model that drifts
off the taxonomy loses the race instead of reaching a rep.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidOutput
from .model import Capture, Detection, Draft, StepValue
from .taxonomy import SITUATIONS, SLOTS

MAX_SLOT_CHARS = 160
MAX_REPLY_CHARS = 1500
MAX_TIP_CHARS = 500


def parse(step: str, text: str) -> StepValue:
    obj = _json_object(text)
    if step == "capture":
        return capture_from(obj)
    if step == "detect":
        return detection_from(obj)
    if step == "generate":
        return draft_from(obj)
    raise ValueError(f"unknown step {step!r}")


def capture_from(obj: dict[str, Any]) -> Capture:
    raw = obj.get("slots")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidOutput("capture: 'slots' must be an object")
    slots: dict[str, str] = {}
    for name, value in raw.items():
        if name not in SLOTS:
            raise InvalidOutput(f"capture: unknown slot {name!r}")
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, str | int | float):
            raise InvalidOutput(f"capture: slot {name!r} must be text")
        text = " ".join(str(value).split())
        if text:
            slots[name] = text[:MAX_SLOT_CHARS]
    return Capture(slots=slots, confidence=_confidence(obj, "capture", default=0.8))


def detection_from(obj: dict[str, Any]) -> Detection:
    situation = obj.get("situation")
    if situation not in SITUATIONS:
        raise InvalidOutput(f"detect: unknown situation {situation!r}")
    secondary = obj.get("secondary")
    if secondary in ("", "none", "null"):
        secondary = None
    if secondary is not None and secondary not in SITUATIONS:
        raise InvalidOutput(f"detect: unknown secondary situation {secondary!r}")
    if secondary == situation:
        secondary = None
    return Detection(
        situation=str(situation),
        confidence=_confidence(obj, "detect"),
        secondary=secondary,
    )


def draft_from(obj: dict[str, Any]) -> Draft:
    reply = obj.get("reply")
    tip = obj.get("coaching_tip", "")
    if not isinstance(reply, str) or not reply.strip():
        raise InvalidOutput("generate: 'reply' must be non-empty text")
    if not isinstance(tip, str):
        raise InvalidOutput("generate: 'coaching_tip' must be text")
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


def _json_object(text: str) -> dict[str, Any]:
    stripped = text.strip()
    # Models wrap JSON in code fences or a sentence despite instructions; take the outer object.
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end <= start:
        raise InvalidOutput("answer holds no JSON object")
    try:
        obj = json.loads(stripped[start : end + 1])
    except json.JSONDecodeError as exc:
        raise InvalidOutput(f"answer is not valid JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise InvalidOutput("answer is not a JSON object")
    return obj


def _confidence(obj: dict[str, Any], step: str, default: float | None = None) -> float:
    value = obj.get("confidence", default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOutput(f"{step}: 'confidence' must be a number from 0 to 1")
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidOutput(f"{step}: 'confidence' {value} is outside 0..1")
    return float(value)


def _bounded(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
