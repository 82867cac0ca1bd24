"""The taxonomy is one data file, and every situation is complete wherever it is used."""

from collections import Counter
from pathlib import Path
from typing import get_args

import pytest

from engine.data import DATA
from engine.evaluation import load_golden
from engine.llm.prompts import build
from engine.playbook import default_playbook
from engine.ports import StepRequest
from engine.rules.detect import LEXICON
from engine.taxonomy import (
    SITUATION_SPECS,
    SITUATION_TITLES,
    SITUATIONS,
    SLOT_SPECS,
    SLOTS,
    TAXONOMY_PATH,
    Situation,
    SlotName,
    is_situation,
    load_specs,
)

# Enough examples per situation that its accuracy on the set means something.
MIN_GOLDEN, MIN_HOLDOUT = 10, 5


def test_literals_and_data_file_agree() -> None:
    assert get_args(Situation) == SITUATIONS
    assert get_args(SlotName) == SLOTS
    assert [s.id for s in SITUATION_SPECS] == list(get_args(Situation))
    assert [s.id for s in SLOT_SPECS] == list(get_args(SlotName))


@pytest.mark.parametrize("situation", SITUATIONS)
def test_every_situation_is_complete(situation: Situation) -> None:
    assert SITUATION_TITLES[situation].strip()
    spec = next(s for s in SITUATION_SPECS if s.id == situation)
    assert spec.prompt.strip()
    # A play that applies whatever the thread knows.
    plays = [p for p in default_playbook().plays if p.situation == situation]
    assert any(not p.when for p in plays)
    # Offline cues that can make it win.
    assert any(cue.weight > 0 for cue in LEXICON.cues.get(situation, ()))
    golden = Counter(e.situation for e in load_golden(DATA / "golden.jsonl"))
    holdout = Counter(e.situation for e in load_golden(DATA / "holdout.jsonl"))
    assert golden[situation] >= MIN_GOLDEN
    assert holdout[situation] >= MIN_HOLDOUT


def test_verbose_prompts_describe_every_label_and_slot() -> None:
    detect = build(StepRequest(step="detect", text="hi", context={}, style="verbose")).system
    capture = build(StepRequest(step="capture", text="hi", context={}, style="verbose")).system
    for spec in SITUATION_SPECS:
        assert f"\n- {spec.id}: {spec.prompt}\n" in detect
    for slot in SLOT_SPECS:
        assert f"\n- {slot.id}: {slot.prompt}\n" in capture


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = TAXONOMY_PATH.read_text("utf-8")
    assert old in text
    path = tmp_path / "taxonomy.toml"
    path.write_text(text.replace(old, new, 1), "utf-8")
    return path


def test_a_forgotten_flag_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "allows_next_step = false\n", "")
    with pytest.raises(ValueError, match="allows_next_step must be a bool"):
        load_specs(path)


def test_a_situation_missing_from_the_literal_is_refused(tmp_path: Path) -> None:
    path = _edited(
        tmp_path,
        "[situation.other]",
        '[situation.renewal]\ntitle = "Renewal"\nprompt = "renewing"\nobjection = false\n'
        "describes_current = false\nallows_next_step = true\nimplies_decider = false\n\n"
        "[situation.other]",
    )
    with pytest.raises(ValueError, match="not the Literal's"):
        load_specs(path)


def test_labels_narrow_to_the_literal() -> None:
    assert is_situation("price_objection")
    assert not is_situation("renewal")
    assert not is_situation(None)
