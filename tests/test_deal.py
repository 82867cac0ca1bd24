"""Deal qualification from a thread's slots, under the playbook's framework."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.card import deal_summary, deal_text
from engine.deal import deal_view, default_rules
from engine.model import SlotValue
from engine.playbook import default_playbook
from engine.playbook_file import PlaybookError, load_playbook


def slots(**values: str) -> dict[str, SlotValue]:
    return {k: SlotValue(v, f"m-{k}", 1.0) for k, v in values.items()}


def test_bant_scores_known_items_and_asks_the_most_urgent_missing_one() -> None:
    rules = default_rules()
    view = deal_view(
        rules,
        slots(pain="reps waste 5 hours", timeline="by June"),
        situation="pricing_question",
        turns=4,
        battlecards=frozenset({"gong"}),
    )
    assert view.framework == "BANT"
    assert view.score == 0.5  # need 3 + timeline 2 of 10
    assert [(k.item.id, k.value.message_id) for k in view.known] == [
        ("need", "m-pain"),
        ("timeline", "m-timeline"),
    ]
    assert [i.id for i in view.missing] == ["authority", "budget"]
    # In a pricing question the budget is the urgent one, in the playbook's own words.
    assert view.next_question == "What range did you have in mind for this?"
    assert "No decision maker after 4 turns." in view.risks
    assert "A timeline without an agreed next step." in view.risks
    other = deal_view(rules, slots(pain="x"), situation="discovery", turns=1)
    assert other.next_question and other.next_question.startswith("Besides you, who else")
    assert not any("decision maker" in r for r in other.risks)  # 1 turn < N


def test_a_competitor_without_a_battlecard_is_a_risk_only_when_knowledge_is_known() -> None:
    rules = default_rules()
    s = slots(competitor="Chorus")
    assert any(
        "no battlecard" in r
        for r in deal_view(rules, s, situation=None, turns=1, battlecards=frozenset({"gong"})).risks
    )
    assert not any(
        "battlecard" in r
        for r in deal_view(rules, s, situation=None, turns=1, battlecards=None).risks
    )
    assert not any(
        "battlecard" in r
        for r in deal_view(
            rules, s, situation=None, turns=1, battlecards=frozenset({"chorus"})
        ).risks
    )


def test_the_playbook_file_chooses_meddicc_and_its_questions(tmp_path: Path) -> None:
    path = tmp_path / "playbook.toml"
    path.write_text(
        '[deal]\nframework = "meddicc"\ndecision_maker_turns = 2\n'
        '[[deal.frameworks.meddicc.item]]\nid = "champion"\ntitle = "Champion"\n'
        'slots = ["decision_maker"]\nweight = 5\nquestion = "Who is pushing for this inside?"\n',
        "utf-8",
    )
    playbook, changes = load_playbook(path, default_playbook())
    assert playbook.deal.framework.title == "meddicc"
    assert playbook.deal.decision_maker_turns == 2
    assert [c.action for c in changes] == ["uses"]
    view = deal_view(playbook.deal, slots(), situation="discovery", turns=2)
    assert view.next_question == "Who is pushing for this inside?"
    text = deal_text(deal_summary(view))
    assert "0% complete" in text and "No decision maker after 2 turns." in text


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ('[deal]\nframework = "spiced"\n', "deal.framework"),
        (
            '[[deal.frameworks.x.item]]\nid="a"\ntitle="A"\nslots=["budget"]\nquestion="q"\n',
            "deal.frameworks.x.item[0] (a).slots",
        ),
        (
            '[[deal.frameworks.x.item]]\nid="a"\ntitle="A"\nslots=["pain"]\nquestion="q"\n'
            "weight_in.lunch = 2\n",
            "weight_in.lunch",
        ),
    ],
)
def test_a_bad_deal_table_names_the_file_and_field(tmp_path: Path, body: str, names: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body, "utf-8")
    with pytest.raises(PlaybookError) as err:
        load_playbook(path, default_playbook())
    assert str(path) in str(err.value) and names in str(err.value)
