"""SALES_AGENT_PLAYBOOK: your own plays on top of the built-in ones, checked at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cache.fingerprint import answer_version
from engine.knowledge.chunk import Chunk
from engine.llm.offline import draft
from engine.playbook import default_playbook
from engine.playbook_file import PlaybookError, load_playbook
from engine.settings import Settings

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "playbook.toml"

PLAY = """
[[situation.{situation}.play]]
{when}strategy = "{strategy}"
talk_track = "t"
coaching_tip = "tip {{competitor}}"
reply = "{reply}"
"""


def play(situation: str, strategy: str, reply: str = "Hello.", when: str = "") -> str:
    when_line = f"when = {when}\n" if when else ""
    return PLAY.format(situation=situation, strategy=strategy, reply=reply, when=when_line)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plays.toml"
    path.write_text(text)
    return path


def test_extend_replaces_by_name_and_tries_new_plays_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        play("price_objection", "roi_reframe", "Mine.")
        + play("price_objection", "new_first", "Newer.", '["competitor"]'),
    )
    book, changes = load_playbook(path, default_playbook())
    assert {(c.action, c.strategy) for c in changes} == {
        ("replaces", "roi_reframe"),
        ("adds", "new_first"),
    }
    assert book.select("price_objection", {"competitor": "Gong"}).name == "new_first"
    assert book.select("price_objection", {}).reply_template == "Mine."
    # Other situations keep the built-in plays.
    builtin = default_playbook().select("greeting", {})
    assert book.select("greeting", {}).reply_template == builtin.reply_template


def test_replace_mode_keeps_only_the_files_plays(tmp_path: Path) -> None:
    path = write(tmp_path, 'mode = "replace"\n' + play("greeting", "wave", "Hi!"))
    book, changes = load_playbook(path, default_playbook())
    assert [p.strategy.name for p in book.plays if p.situation == "greeting"] == ["wave"]
    assert ("removes", "build_rapport") in {(c.action, c.strategy) for c in changes}
    only_conditional = write(
        tmp_path, 'mode = "replace"\n' + play("greeting", "wave", when='["pain"]')
    )
    with pytest.raises(PlaybookError, match=r"plays.toml.*no unconditional play.*greeting"):
        load_playbook(only_conditional, default_playbook())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (play("pricing", "x"), r"situation\.pricing: unknown situation"),
        (play("greeting", "x", "Hi {budget}"), r"play\[0\] \(x\): reply fills unknown slots"),
        (play("greeting", "x", when='["budget"]'), r"play\[0\] \(x\): when names unknown"),
        (play("greeting", "x").replace('talk_track = "t"\n', ""), r"talk_track must be"),
        (play("greeting", "x") + 'tone = "warm"\n', r"\(x\): unknown fields \['tone'\]"),
        ('mode = "merge"\n' + play("greeting", "x"), r"mode must be extend or replace"),
        ("[[situation.greeting.play]\n", r"not valid TOML"),
        ('title = "x"\n', r"unknown top-level keys"),
    ],
)
def test_a_mistake_names_the_file_the_play_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(PlaybookError, match=message) as caught:
        load_playbook(write(tmp_path, text), default_playbook())
    assert "plays.toml" in str(caught.value)


def test_the_example_is_valid_and_its_knowledge_placeholder_is_filled() -> None:
    book, changes = load_playbook(EXAMPLE, default_playbook())
    assert changes
    strategy = book.select("competitor_mention", {"competitor": "Orbitra"})
    counter = Chunk(
        "orbitra.md",
        "One-line counter",
        "Battlecard",
        "You can keep them for payroll, but every rule change is a paid ticket.",
        competitor="Orbitra",
    )
    with_fact = draft(strategy, {"competitor": "Orbitra"}, (counter,), "we use Orbitra")
    assert "keep them for payroll" in with_fact.reply
    assert "{" not in with_fact.reply
    without = draft(strategy, {"competitor": "Orbitra"})
    assert "outgrow it" in without.reply  # the template's own fallback


def test_the_answer_version_follows_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, play("greeting", "wave", "Hi!"))
    base = Settings()
    one = answer_version(Settings(playbook_path=path))
    assert one != answer_version(base)
    path.write_text(play("greeting", "wave", "Hello there!"))
    assert answer_version(Settings(playbook_path=path)) not in (one, answer_version(base))


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_"))
    }
    environ |= {"SALES_AGENT_DB": str(tmp_path / "cli.db"), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        input="Honestly it's too expensive compared to Gong\n",
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        cwd=tmp_path,
    )


def test_playbook_check_prints_the_changes(tmp_path: Path) -> None:
    out = run(tmp_path, "playbook", "check", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert "replaces battlecard_differentiate" in out.stdout
    assert "adds     total_cost_not_seat_price" in out.stdout


def test_a_bad_playbook_stops_the_start_with_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, play("greeting", "wave", "Hi {budget}"))
    out = run(tmp_path, "chat", env={"SALES_AGENT_PLAYBOOK": str(bad)})
    assert out.returncode == 2
    assert "plays.toml" in out.stderr and "(wave)" in out.stderr and "reply" in out.stderr
    checked = run(tmp_path, "playbook", "check", str(bad))
    assert checked.returncode == 2 and "(wave)" in checked.stderr


def test_the_chat_coaches_with_the_files_plays(tmp_path: Path) -> None:
    out = run(tmp_path, "chat", env={"SALES_AGENT_PLAYBOOK": str(EXAMPLE)})
    assert out.returncode == 0, out.stderr
    # The file's play of that name replaced the built-in one.
    assert "play: battlecard differentiate" in out.stdout
    assert "does a good job for plenty of teams" in out.stdout
