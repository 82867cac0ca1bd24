"""Markdown knowledge files cut into chunks, one per heading, with what each file is about.

A file may open with a front-matter block tagging it:

    ---
    competitor: Gong
    situations: [competitor_mention, price_objection]
    ---

Without one, a battlecard is still recognised, because people write plain Markdown: a heading
`# Gong battlecard` or `# Us vs Gong` names the competitor; a file named `gong.md` or
`vs-gong.md` does too when the file reads like a battlecard (a "battlecard" or "vs" heading, or
sections such as "Where we win"), or when the rules already know the name as a vendor.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..model import Citation
from ..taxonomy import SITUATIONS

__all__ = ["Chunk", "Document", "FileError", "parse_document"]

# A section longer than this is cut: embedders read the first few hundred tokens anyway, and a
# chunk is quoted to a model as data, where a short one costs less.
MAX_CHUNK_CHARS = 1800

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_NAMED_CARD = re.compile(r"^(.+?)\s+battle\s?card\b", re.IGNORECASE)
_VERSUS = re.compile(r"\bvs\.?\s+(.+)$", re.IGNORECASE)
# Sections only a battlecard has.
_CARD_WORDS = re.compile(
    r"\bbattle\s?card\b|\bwhere (?:we|they) win\b|\blandmines?\b|\bone[- ]line counter\b",
    re.IGNORECASE,
)
_STEM_NOISE = {"battlecard", "battlecards", "card", "vs", "versus", "competitor"}


class FileError(ValueError):
    """A knowledge file we cannot use (binary, empty, too big); the message says why."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One section of one knowledge file: what retrieval ranks and a card cites."""

    file: str  # path relative to the knowledge dir, "/"-separated
    heading: str  # the section's heading; the file's title for the text before any subheading
    title: str  # the file's first heading (or its name)
    text: str  # the section's Markdown body
    competitor: str | None = None  # set on every chunk of a battlecard
    situations: tuple[str, ...] = ()  # front-matter tags of the file

    @property
    def citation(self) -> Citation:
        return Citation(self.file, self.heading)

    @property
    def cite(self) -> str:
        return str(self.citation)

    def embedding_text(self) -> str:
        """What the embedder reads: where the section sits, then what it says."""
        where = self.title if self.heading == self.title else f"{self.title} - {self.heading}"
        return f"{where}\n{self.text}"


@dataclass(frozen=True, slots=True)
class Document:
    file: str
    digest: str  # sha256 of the file's bytes
    chunks: tuple[Chunk, ...]
    competitor: str | None
    warnings: tuple[str, ...] = ()  # front-matter values we ignored


VendorLookup = Callable[[str], "str | None"]


def parse_document(
    file: str, raw: bytes, *, max_bytes: int, known_vendor: VendorLookup | None = None
) -> Document:
    """Chunks of one file, or FileError. `known_vendor(name) -> str | None` names a vendor the
    rules know, so that `gong.md` alone is a battlecard."""
    if not raw.strip():
        raise FileError("empty")
    if len(raw) > max_bytes:
        raise FileError(f"{len(raw):,} bytes, over the {max_bytes:,}-byte limit")
    if b"\x00" in raw:
        raise FileError("binary (NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileError("not UTF-8 text") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    meta, body, warnings = _front_matter(text)
    sections = _sections(body)
    if not any(section_body.strip() for _, _, section_body in sections):
        raise FileError("no text under its headings")
    stem = PurePosixPath(file).stem
    title = next((h for level, h, _ in sections if level == 1), None) or next(
        (h for level, h, _ in sections if level), stem
    )
    competitor = meta.get("competitor") or _competitor(stem, sections, known_vendor)
    situations = _situations(meta.get("situations", ""), warnings)
    chunks = []
    for _, heading, section_body in sections:
        content = section_body.strip()
        if not content:
            continue
        if len(content) > MAX_CHUNK_CHARS:
            content = content[:MAX_CHUNK_CHARS].rsplit(" ", 1)[0] + " …"
        chunks.append(
            Chunk(
                file=file,
                heading=heading or title,
                title=title,
                text=content,
                competitor=competitor,
                situations=situations,
            )
        )
    digest = hashlib.sha256(raw).hexdigest()
    return Document(file, digest, tuple(chunks), competitor, tuple(warnings))


def _front_matter(text: str) -> tuple[dict[str, str], str, list[str]]:
    """`key: value` lines between two `---` lines at the very top (a small YAML subset)."""
    match = _FRONT.match(text)
    if not match:
        return {}, text, []
    meta: dict[str, str] = {}
    warnings: list[str] = []
    for line in match.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            warnings.append(f"front matter line ignored: {line.strip()[:40]!r}")
            continue
        meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[match.end() :], warnings


def _situations(raw: str, warnings: list[str]) -> tuple[str, ...]:
    names = [n.strip().strip("\"'") for n in raw.strip("[] ").split(",") if n.strip()]
    unknown = [n for n in names if n not in SITUATIONS]
    if unknown:
        warnings.append(f"unknown situations ignored: {', '.join(unknown)}")
    return tuple(n for n in names if n in SITUATIONS)


def _sections(body: str) -> list[tuple[int, str, str]]:
    """(level, heading, body) per heading; level 0 and heading "" for text before the first."""
    sections: list[tuple[int, str, list[str]]] = [(0, "", [])]
    fenced = False
    for line in body.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            sections.append((len(match.group(1)), _plain_heading(match.group(2)), []))
        else:
            sections[-1][2].append(line)
    return [(level, heading, "\n".join(lines)) for level, heading, lines in sections]


def _plain_heading(text: str) -> str:
    return re.sub(r"[*_`]", "", text).strip()


def _competitor(
    stem: str, sections: list[tuple[int, str, str]], known_vendor: VendorLookup | None
) -> str | None:
    headings = [h for level, h, _ in sections if level]
    # Only the title names the competitor: "Annual vs monthly" deeper down is no battlecard.
    title = next((h for level, h, _ in sections if level == 1), "")
    named = _NAMED_CARD.match(title)
    if named and not named.group(1).lower().startswith(("our ", "the ", "a ")):
        return named.group(1).strip(" :-")
    versus = _VERSUS.search(title)
    if versus:
        return versus.group(1).strip(" :-.")
    words = [w for w in re.split(r"[-_ .]+", stem) if w and w.lower() not in _STEM_NOISE]
    if not words:
        return None
    name = " ".join(w if w[:1].isupper() else w.capitalize() for w in words)
    shaped = any(_CARD_WORDS.search(h) for h in headings) or "battlecard" in stem.lower()
    if stem.lower().startswith(("vs-", "vs_", "versus-")) or shaped:
        return name
    return known_vendor(name) if known_vendor is not None else None
