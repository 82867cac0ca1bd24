"""Your own playbook: `SALES_AGENT_PLAYBOOK=path.toml`, in the plays' schema of taxonomy.toml.

The file holds `[[situation.<id>.play]]` tables (strategy, talk_track, coaching_tip, reply, and
optionally `when`), nothing else of the taxonomy. Its top-level `mode` says what they do:

- `extend` (the default): a play whose strategy name a built-in play of that situation has
  replaces it in place; any other comes before the situation's built-in plays, so it is tried
  first (the first play whose `when` slots are known wins).
- `replace`: the situations the file names get exactly its plays; the others keep theirs.

Every situation must still end with a play that has no `when`. A mistake is a PlaybookError
naming the file, the play and the field; templates may use the thread's slots and
`{knowledge|...}` (the line the offline tier takes from the company's knowledge).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .deal import DealError, parse_rules
from .model import Strategy
from .playbook import Play, Playbook
from .taxonomy import SITUATIONS, SLOTS

__all__ = ["Change", "PlaybookError", "load_playbook", "merge"]

_FIELDS = ("strategy", "talk_track", "coaching_tip", "reply")
_PLACEHOLDER = re.compile(r"\{(\w+)(?:\|[^}]*)?\}")
# Placeholders a template may use besides the slots.
_EXTRA_PLACEHOLDERS = frozenset({"knowledge"})
MODES = ("extend", "replace")


class PlaybookError(ValueError):
    """A playbook file we cannot use: the message names the file, the play and the field."""


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a playbook file changes, for `sales-agent playbook check`."""

    situation: str
    action: str  # "adds", "replaces", "removes"; "uses" for the deal framework
    strategy: str


def load_playbook(path: Path | None, base: Playbook) -> tuple[Playbook, tuple[Change, ...]]:
    """The playbook in force: `base` alone without a file, else `base` changed by the file."""
    if path is None:
        return base, ()
    mode, plays, deal = read(path)
    playbook, changes = merge(base, mode, plays, source=str(path))
    if deal is None:
        return playbook, changes
    try:
        rules = parse_rules(deal, source=str(path), base=base.deal)
    except DealError as exc:
        raise PlaybookError(str(exc)) from None
    change = Change("deal", "uses", f"{rules.framework.title} framework")
    return Playbook(playbook.plays, rules), (*changes, change)


def read(path: Path) -> tuple[str, dict[str, list[Play]], Any]:
    """The file's mode and its plays by situation, every field checked."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise PlaybookError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"{path}: not valid TOML ({exc})") from None
    mode = document.pop("mode", "extend")
    if mode not in MODES:
        raise PlaybookError(f"{path}: mode must be extend or replace, got {mode!r}")
    situations = document.pop("situation", None)
    deal = document.pop("deal", None)
    if document:
        raise PlaybookError(f"{path}: unknown top-level keys {sorted(document)}")
    if deal is not None and situations is None:
        return mode, {}, deal
    if not isinstance(situations, dict) or not situations:
        raise PlaybookError(f"{path}: no [[situation.<id>.play]] tables (nor a [deal] table)")
    plays: dict[str, list[Play]] = {}
    for situation, spec in situations.items():
        where = f"{path}: situation.{situation}"
        if situation not in SITUATIONS:
            raise PlaybookError(f"{where}: unknown situation (known: {', '.join(SITUATIONS)})")
        if not isinstance(spec, dict) or set(spec) - {"play"} or not spec.get("play"):
            raise PlaybookError(f"{where}: holds only [[situation.{situation}.play]] tables")
        plays[situation] = [
            _play(f"{where}.play[{i}]", situation, raw) for i, raw in enumerate(spec["play"])
        ]
    return mode, plays, deal


def _play(where: str, situation: str, raw: Any) -> Play:
    if not isinstance(raw, dict):
        raise PlaybookError(f"{where}: a play is a table")
    name = raw.get("strategy")
    label = f"{where} ({name})" if isinstance(name, str) and name else where
    if unknown := set(raw) - {*_FIELDS, "when"}:
        raise PlaybookError(f"{label}: unknown fields {sorted(unknown)}")
    for key in _FIELDS:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise PlaybookError(f"{label}: {key} must be a non-empty string")
        placeholders = set(_PLACEHOLDER.findall(value)) - set(SLOTS) - _EXTRA_PLACEHOLDERS
        if placeholders:
            raise PlaybookError(
                f"{label}: {key} fills unknown slots {sorted(placeholders)} "
                f"(known: {', '.join(SLOTS)}, knowledge)"
            )
    when = raw.get("when", [])
    if not isinstance(when, list) or not all(isinstance(s, str) for s in when):
        raise PlaybookError(f"{label}: when must be a list of slot names")
    if unknown := set(when) - set(SLOTS):
        raise PlaybookError(f"{label}: when names unknown slots {sorted(unknown)}")
    return Play(
        situation=situation,
        when=tuple(when),
        strategy=Strategy(
            name=raw["strategy"],
            talk_track=raw["talk_track"],
            coaching_tip=raw["coaching_tip"],
            reply_template=raw["reply"],
        ),
    )


def merge(
    base: Playbook, mode: str, plays: dict[str, list[Play]], *, source: str = "playbook"
) -> tuple[Playbook, tuple[Change, ...]]:
    changes: list[Change] = []
    merged: list[Play] = []
    for situation in SITUATIONS:
        built_in = [p for p in base.plays if p.situation == situation]
        mine = plays.get(situation)
        if not mine:
            merged.extend(built_in)
            continue
        names = {p.strategy.name: p for p in mine}
        old = {p.strategy.name for p in built_in}
        new = [p for p in mine if p.strategy.name not in old]
        for p in built_in:
            if p.strategy.name in names:
                changes.append(Change(situation, "replaces", p.strategy.name))
            elif mode == "replace":
                changes.append(Change(situation, "removes", p.strategy.name))
        changes += [Change(situation, "adds", p.strategy.name) for p in new]
        if mode == "replace":
            merged.extend(mine)
        else:
            merged.extend([*new, *(names.get(p.strategy.name, p) for p in built_in)])
    try:
        playbook = Playbook(tuple(merged), base.deal)
    except ValueError as exc:
        raise PlaybookError(f"{source}: {exc}") from None
    return playbook, tuple(changes)
