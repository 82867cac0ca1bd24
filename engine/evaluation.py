"""Scoring capture and detect against a labelled golden set."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .taxonomy import SITUATIONS, SLOTS


class GoldenError(ValueError):
    """A golden-set file that cannot be read; the message names the line."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    situation: str
    also_ok: tuple[str, ...] = ()
    slots: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prediction:
    situation: str
    slots: Mapping[str, str]


def load_golden(path: Path) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise GoldenError(f"{path} is not UTF-8 text") from None
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            example = Example(
                text=str(row["text"]),
                situation=str(row["situation"]),
                also_ok=tuple(row.get("also_ok", ())),
                slots=dict(row.get("slots", {})),
                context=dict(row.get("context", {})),
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise GoldenError(f"{path}:{number}: not a golden row ({exc})") from None
        bad = {example.situation, *example.also_ok} - set(SITUATIONS)
        bad |= (set(example.slots) | set(example.context)) - set(SLOTS)
        if bad:
            raise GoldenError(f"{path}:{number}: unknown labels {sorted(bad)}")
        examples.append(example)
    return examples


def score(pairs: Iterable[tuple[Example, Prediction]]) -> dict[str, Any]:
    n = correct = 0
    tp_slots = fp_slots = fn_slots = 0
    label_tp: Counter[str] = Counter()
    label_fp: Counter[str] = Counter()
    label_fn: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    per_label: dict[str, Counter[str]] = defaultdict(Counter)
    value_hits: Counter[str] = Counter()
    value_total: Counter[str] = Counter()
    for example, predicted in pairs:
        n += 1
        ok = predicted.situation == example.situation or predicted.situation in example.also_ok
        correct += ok
        per_label[example.situation]["n"] += 1
        per_label[example.situation]["correct"] += ok
        # Macro F1 counts an accepted alternate as the gold label.
        effective = example.situation if ok else predicted.situation
        if effective == example.situation:
            label_tp[example.situation] += 1
        else:
            label_fp[effective] += 1
            label_fn[example.situation] += 1
            confusions[(example.situation, predicted.situation)] += 1
        gold, got = set(example.slots), set(predicted.slots)
        tp_slots += len(gold & got)
        fp_slots += len(got - gold)
        fn_slots += len(gold - got)
        for name in ("competitor", "team_size"):
            if name in example.slots:
                value_total[name] += 1
                value_hits[name] += _same(example.slots[name], predicted.slots.get(name, ""))
    f1s = []
    for label in SITUATIONS:
        tp, fp, fn = label_tp[label], label_fp[label], label_fn[label]
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    precision = tp_slots / (tp_slots + fp_slots) if tp_slots + fp_slots else 0.0
    recall = tp_slots / (tp_slots + fn_slots) if tp_slots + fn_slots else 0.0
    return {
        "n": n,
        "situation_accuracy": _r(correct / n if n else 0.0),
        "situation_macro_f1": _r(sum(f1s) / len(f1s) if f1s else 0.0),
        "slot_precision": _r(precision),
        "slot_recall": _r(recall),
        "slot_f1": _r(2 * precision * recall / (precision + recall) if precision + recall else 0.0),
        "value_accuracy": {
            name: _r(value_hits[name] / value_total[name]) if value_total[name] else None
            for name in ("competitor", "team_size")
        },
        "per_label": {
            label: {"n": c["n"], "correct": c["correct"]} for label, c in sorted(per_label.items())
        },
        "confusions": {f"{gold}->{got}": count for (gold, got), count in confusions.most_common()},
    }


def _same(expected: str, got: str) -> bool:
    return expected.strip().casefold() == got.strip().casefold()


def _r(value: float) -> float:
    return round(value, 4)
