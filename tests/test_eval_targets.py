"""The offline tier's targets, scored in-process the way `sales-agent eval` scores them.

Each message is read with its thread context; as in the engine's parallel pipeline, detect runs
again on the merged context when reconcile's triggers fire. The golden set carries the targets;
the held-out set, written by someone else and never tuned on, carries a floor a little under
what the rules reach, so that a rule which only fits the golden set fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.data import DATA
from engine.evaluation import Example, Prediction, load_golden, score
from engine.pipeline.reconcile import triggers
from engine.rules.capture import capture
from engine.rules.detect import detect


def predict(example: Example) -> Prediction:
    context = dict(example.context)
    captured = capture(example.text, context)
    detection = detect(example.text, context)
    if triggers(detection, captured, context):
        detection = detect(example.text, context | dict(captured.slots))
    return Prediction(detection.situation, dict(captured.slots))


def report(name: str) -> dict[str, Any]:
    examples = load_golden(DATA / name)
    return score((example, predict(example)) for example in examples)


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return report("golden.jsonl")


@pytest.fixture(scope="module")
def holdout() -> dict[str, Any]:
    return report("holdout.jsonl")


def test_golden_situation_accuracy(golden: dict[str, Any]) -> None:
    assert golden["situation_accuracy"] >= 0.85, golden["confusions"]


def test_golden_slot_f1(golden: dict[str, Any]) -> None:
    assert golden["slot_f1"] >= 0.80


@pytest.mark.parametrize("slot", ["competitor", "team_size"])
def test_golden_value_accuracy(golden: dict[str, Any], slot: str) -> None:
    assert golden["value_accuracy"][slot] >= 0.9


def test_holdout_floor(holdout: dict[str, Any]) -> None:
    # Reached 0.89 and 0.726 when these floors were set.
    assert holdout["situation_accuracy"] >= 0.84, holdout["confusions"]
    assert holdout["slot_f1"] >= 0.67
