import pytest

from engine import contract
from engine.errors import InvalidOutput
from engine.model import Capture, Detection, Draft


def test_parses_each_step_and_ignores_unknown_keys() -> None:
    cap = contract.parse("capture", '{"slots": {"competitor": "Gong"}, "confidence": 0.9, "x": 1}')
    assert cap == Capture({"competitor": "Gong"}, 0.9)
    det = contract.parse(
        "detect",
        '```json\n{"situation": "price_objection", "confidence": 0.8, "secondary": null}\n```',
    )
    assert det == Detection("price_objection", 0.8, None)
    gen = contract.parse("generate", '{"reply": "Sure.", "coaching_tip": "Ask why."}')
    assert gen == Draft("Sure.", "Ask why.")


@pytest.mark.parametrize(
    ("step", "text"),
    [
        ("capture", '{"slots": {"favourite_colour": "blue"}, "confidence": 0.9}'),
        ("detect", '{"situation": "angry", "confidence": 0.9}'),
        ("detect", '{"situation": "greeting", "confidence": 7}'),
        ("detect", '{"situation": "greeting", "confidence": 0.5, "secondary": "bogus"}'),
        ("generate", '{"reply": "", "coaching_tip": "x"}'),
        ("generate", "Sure! Here is my answer."),
        ("capture", '{"slots": ["pain"], "confidence": 0.9}'),
        ("detect", '{"situation": "greeting", "confidence": 0.5'),
    ],
)
def test_rejects_what_breaks_the_contract(step: str, text: str) -> None:
    with pytest.raises(InvalidOutput):
        contract.parse(step, text)


def test_bounds_long_values() -> None:
    cap = contract.parse("capture", '{"slots": {"pain": "' + "x " * 400 + '"}, "confidence": 1}')
    assert isinstance(cap, Capture) and len(cap.slots["pain"]) <= contract.MAX_SLOT_CHARS
    gen = contract.parse("generate", '{"reply": "' + "word " * 1000 + '", "coaching_tip": ""}')
    assert isinstance(gen, Draft) and len(gen.reply) <= contract.MAX_REPLY_CHARS
