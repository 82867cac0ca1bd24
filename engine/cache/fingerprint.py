"""Cache keys: the context fingerprint, the answer version and the exact-tier key.

A cached answer may be reused only where it would have been written the same way:

- the *context fingerprint* is the thread slots that change the answer, canonicalised. The
  playbook fills replies with the competitor, decision maker, current solution, timeline, team
  size and pain, and the LLM prompts also see the budget signal and the objection, so all of
  those count; `next_step` does not (no template or prompt decision depends on it). Values are
  lower-cased, stripped of punctuation and whitespace-folded, so "Gong" and "gong." match;
  an unknown slot and an empty one are the same.
- the *answer version* names what writes answers: prompt style, the models in use, a digest
  of the files that hold prompts, the playbook and the rules, the content of
  SALES_AGENT_PLAYBOOK and the content digest of the knowledge dir. Any change gives a new
  version, and entries of another version are never served (they are dropped when the cache
  loads, or when the knowledge changes while running).
- the *exact key* is SHA-256 over the normalised message, the fingerprint and the version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from ..rules.text import normalised
from ..settings import Settings
from ..taxonomy import SLOT_SPECS

__all__ = [
    "FINGERPRINT_SLOTS",
    "answer_version",
    "canonical_context",
    "exact_key",
    "fingerprint",
    "message_text",
]

# The slots taxonomy.toml marks `scopes_answer`, sorted so the fingerprint is stable.
FINGERPRINT_SLOTS: tuple[str, ...] = tuple(sorted(s.id for s in SLOT_SPECS if s.scopes_answer))
# Bump when the entry format or the meaning of a key changes.
CACHE_FORMAT = "cache-v1"

_ENGINE = Path(__file__).resolve().parent.parent
# What writes an answer: prompts and providers, the playbook, the offline rules, the contract.
_ANSWER_SOURCES = (
    "llm/*.py",
    "llm/**/*.py",
    "llm/**/*.toml",
    "taxonomy.toml",
    "playbook.py",
    "rules/*.toml",
    "rules/*.txt",
    "rules/*.py",
    "contract.py",
    "pipeline/steps.py",
)
_PUNCT = re.compile(r"[^\w$€£%./+-]+")


def message_text(text: str) -> str:
    """The message as both tiers see it: plain, lower-cased, whitespace-folded."""
    return normalised(text)


def canonical_context(values: Mapping[str, str]) -> str:
    """The slots that change the answer, as one stable string ("" for an empty context)."""
    parts = []
    for name in FINGERPRINT_SLOTS:
        value = _canonical_value(values.get(name, ""))
        if value:
            parts.append(f"{name}={value}")
    return ";".join(parts)


def fingerprint(values: Mapping[str, str]) -> str:
    """A short digest of `canonical_context`: what scopes semantic matches."""
    return hashlib.sha256(canonical_context(values).encode("utf-8")).hexdigest()[:20]


def exact_key(text: str, context_fingerprint: str, version: str) -> str:
    """The exact-tier key; `text` is already `message_text`."""
    payload = "\x1f".join((CACHE_FORMAT, version, context_fingerprint, text))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def answer_version(settings: Settings, providers: Iterable[str] = (), knowledge: str = "") -> str:
    """The version of whatever writes answers under these settings, as a short digest;
    `knowledge` is the knowledge index's content digest ("" without one)."""
    h = hashlib.sha256()
    h.update(CACHE_FORMAT.encode())
    if knowledge:
        h.update(f"|knowledge={knowledge}".encode())
    if settings.playbook_path is not None:
        # The company's own plays write answers too: an edit gives a new version.
        h.update(b"|playbook=" + hashlib.sha256(settings.playbook_path.read_bytes()).digest())
    h.update(f"|style={settings.prompt_style}|pipeline={settings.pipeline}".encode())
    for name in sorted(providers):
        h.update(f"|provider={name}".encode())
    for provider in settings.providers:
        h.update(f"|{provider.name}={provider.fast_model},{provider.powerful_model}".encode())
    h.update(_sources_digest().encode())
    return h.hexdigest()[:16]


@cache
def _sources_digest() -> str:
    h = hashlib.sha256()
    seen: set[Path] = set()
    for pattern in _ANSWER_SOURCES:
        for path in sorted(_ENGINE.glob(pattern)):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            h.update(str(path.relative_to(_ENGINE)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _canonical_value(value: str) -> str:
    return " ".join(_PUNCT.sub(" ", normalised(value)).split()).strip(" .")
