import json
from typing import Any

import pytest

from engine import contract
from engine.llm import schemas
from engine.model import Capture
from engine.taxonomy import SITUATIONS, SLOTS


def _objects(node: Any) -> list[dict[str, Any]]:
    if not isinstance(node, dict):
        return []
    found = [node] if node.get("type") == "object" else []
    for child in node.get("properties", {}).values():
        found += _objects(child)
    return found


def test_labels_and_slot_names_come_from_the_taxonomy() -> None:
    detect = schemas.schema("detect")["properties"]
    assert detect["situation"]["enum"] == list(SITUATIONS)
    assert detect["secondary"]["enum"] == [*SITUATIONS, None]
    assert list(schemas.schema("capture")["properties"]["slots"]["properties"]) == list(SLOTS)


@pytest.mark.parametrize("step", ["capture", "detect", "generate"])
def test_strict_schemas_meet_openai_strict_mode(step: str) -> None:
    # Strict mode: every object closed, every property required.
    for obj in _objects(schemas.schema(step, strict=True)):
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])


def test_loose_capture_leaves_slots_optional() -> None:
    slots = schemas.schema("capture")["properties"]["slots"]
    assert "required" not in slots and slots["additionalProperties"] is False


def test_copies_are_independent() -> None:
    first = schemas.schema("detect")
    first["properties"].clear()
    assert schemas.schema("detect")["properties"]


def test_a_strict_answer_with_null_slots_meets_the_contract() -> None:
    answer = {"slots": dict.fromkeys(SLOTS), "confidence": 0.7}
    answer["slots"]["competitor"] = "Gong"
    cap = contract.parse("capture", json.dumps(answer))
    assert isinstance(cap, Capture) and dict(cap.slots) == {"competitor": "Gong"}
