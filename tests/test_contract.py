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
        ("detect", '{"situation": "angry", "confidence": 0.9}'),
        ("detect", '{"situation": "greeting", "confidence": 700}'),
        ("detect", '{"situation": "greeting", "confidence": 0.5, "secondary": "bogus"}'),
        ("generate", '{"reply": "", "coaching_tip": "x"}'),
        ("generate", "Sure! Here is my answer."),
        ("capture", '{"slots": ["pain"], "confidence": 0.9}'),
        ("capture", '{"id": 415331, "confidence": 0.9}'),
        ("generate", '{"reply": "<text>", "coaching_tip": "<text>"}'),
        ("generate", '{"reply": "Hi {name}, happy to help.", "coaching_tip": ""}'),
        ("generate", '{"reply": "None", "coaching_tip": ""}'),
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


def test_normalises_what_is_harmless() -> None:
    det = contract.parse(
        "detect", '{"situation": "Price Objection", "confidence": "85%", "secondary": "None"}'
    )
    assert det == Detection(situation="price_objection", confidence=0.85, secondary=None)
    det = contract.parse("detect", '{"situation": "status quo objection", "confidence": 90}')
    assert isinstance(det, Detection) and det.situation == "status_quo_objection"
    assert det.confidence == 0.9


def test_drops_an_unknown_slot_and_keeps_the_rest() -> None:
    cap = contract.parse(
        "capture",
        '{"slots": {"favourite_colour": "blue", "Competitor": "Gong", "pain": "None",'
        ' "timeline": "<value>", "budget_signal": null}, "confidence": 0.9}',
    )
    assert isinstance(cap, Capture) and dict(cap.slots) == {"competitor": "Gong"}


def test_takes_the_object_out_of_fences_and_prose() -> None:
    text = (
        'Sure!\n```json\n{"reply": "Happy to walk you through it.", "coaching_tip": ""}\n```\n'
        "Hope that helps {ok}"
    )
    gen = contract.parse("generate", text)
    assert isinstance(gen, Draft) and gen.reply == "Happy to walk you through it."


def test_a_cut_off_answer_is_repaired_when_what_was_complete_suffices() -> None:
    det = contract.parse("detect", '{"situation": "greeting", "confidence": 0.5, "second')
    assert det == Detection(situation="greeting", confidence=0.5, secondary=None)
    cap = contract.parse("capture", '{"slots": {"competitor": "Gong", "pain": "too exp')
    assert isinstance(cap, Capture) and dict(cap.slots) == {"competitor": "Gong"}


def test_a_cut_off_answer_that_misses_a_field_is_truncated_not_invalid() -> None:
    with pytest.raises(InvalidOutput) as info:
        contract.parse("generate", '{"reply": "Thanks for the context, the main thing')
    assert info.value.kind == "truncated"
    with pytest.raises(InvalidOutput) as info:
        contract.parse("detect", '{"situation": "gree')
    assert info.value.kind == "truncated"
    with pytest.raises(InvalidOutput) as info:
        contract.parse("detect", '{"situation": "greeting" "confidence": 1}')
    assert info.value.kind == "invalid_output"
