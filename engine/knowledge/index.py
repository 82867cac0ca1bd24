"""The knowledge index: a directory of Markdown files kept in step with the store, per team.

Layout of `SALES_AGENT_KNOWLEDGE=dir`: the `.md` files directly in `dir` are every workspace's;
`dir/<team id>/*.md` are one workspace's own. Each team has its own index (its own rows in the
store), so a chunk never crosses a workspace boundary even when several share one store.

Files are checked at most once per `refresh_s` when a team has a turn: a changed size or
mtime re-reads the file, a changed hash re-chunks and re-embeds it, without a restart. A file
we cannot use (binary, empty, huge) is skipped with one warning naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..rules.lexicon import VENDORS
from .chunk import Chunk, FileError, VendorLookup, parse_document
from .retrieve import Ranked, TeamChunks, rank
from .store import IndexedFile, KnowledgeStore

if TYPE_CHECKING:  # the ports name our Chunk: a runtime import would be circular
    from ..ports import Embedder

__all__ = ["KnowledgeIndex"]

log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown")
MAX_FILE_BYTES = 256_000  # a battlecard is a few KB; a bigger file is a mistake, not knowledge
EMBED_TIMEOUT_S = 30.0  # a first index of a big dir on a slow CPU


def rules_vendor(name: str) -> str | None:
    """The rules' own name for a vendor, when `name` is one (vendors.txt): `gong.md` is then
    a battlecard even without a battlecard heading."""
    found = VENDORS.first(name.lower(), name)
    return found.name if found is not None and found.at == 0 else None


@dataclass(frozen=True, slots=True)
class _Seen:
    signature: tuple[int, int]  # (mtime_ns, size)
    indexed: IndexedFile | None  # None: skipped (a bad file)


class KnowledgeIndex:
    def __init__(
        self,
        root: Path,
        *,
        store: KnowledgeStore | None = None,
        embedder: Embedder | None = None,
        refresh_s: float = 1.0,
        max_file_bytes: int = MAX_FILE_BYTES,
        known_vendor: VendorLookup | None = rules_vendor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.store = store
        self.embedder = embedder
        self.refresh_s = refresh_s
        self.max_file_bytes = max_file_bytes
        self.known_vendor = known_vendor
        self.clock = clock
        # Called with the new content digest when any file changed (the cache re-versions).
        self.on_change: Callable[[str], None] | None = None
        self._seen: dict[str, dict[str, _Seen]] = {}
        self._views: dict[str, TeamChunks] = {}
        self._checked: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._warned: set[tuple[str, tuple[int, int]]] = set()
        # Files every team shares are chunked and embedded once, whichever team asks first.
        self._memo: dict[tuple[str, str], IndexedFile] = {}
        self._digest = self.content_digest()
        self.reindexed = 0  # files chunked and embedded since start

    # What the cache's answer version includes ------------------------------------------------

    def content_digest(self) -> str:
        """A hash of every knowledge file's name and bytes (all teams')."""
        h = hashlib.sha256()
        for path in sorted(self._all_files()):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            h.update(str(path.relative_to(self.root)).encode())
            h.update(hashlib.sha256(data).digest())
        return h.hexdigest()[:16]

    @property
    def digest(self) -> str:
        return self._digest

    # Per turn ------------------------------------------------------------------------------

    async def refresh(self, team: str) -> TeamChunks:
        """The team's chunks, re-reading what changed since the last check."""
        now = self.clock()
        view = self._views.get(team)
        if view is not None and now - self._checked.get(team, -1e9) < self.refresh_s:
            return view
        lock = self._locks.setdefault(team, asyncio.Lock())
        async with lock:
            view = self._views.get(team)
            if view is not None and self.clock() - self._checked.get(team, -1e9) < self.refresh_s:
                return view
            view = await self._sync(team)
            self._checked[team] = self.clock()
            return view

    async def prepare(self) -> int:
        """Chunk and embed the files every team shares, before any turn needs them (the
        first turn would otherwise pay for it); returns how many files are ready."""
        ready = 0
        for rel, path in self._team_files("").items():
            try:
                st = path.stat()
            except OSError:
                continue
            signature = (st.st_mtime_ns, st.st_size)
            ready += await self._index_file(rel, path, signature, None, None) is not None
        return ready

    async def competitors(self, team: str) -> frozenset[str]:
        """Names of the competitors the team has a battlecard for."""
        return frozenset((await self.refresh(team)).competitors.values())

    async def retrieve(
        self,
        team: str,
        text: str,
        slots: Mapping[str, str],
        situation: str | None = None,
        k: int = 3,
    ) -> tuple[Ranked, ...]:
        view = await self.refresh(team)
        if not view.chunks:
            return ()
        query = await self._embed_query(text)
        return rank(view, text, query, slots, situation, k)

    def stats(self) -> Mapping[str, object]:
        return {
            "dir": str(self.root),
            "teams": len(self._views),
            "chunks": {team: len(v.chunks) for team, v in self._views.items()},
            "reindexed_files": self.reindexed,
            "embedder": self.embedder.name if self.embedder else "off (word overlap only)",
            "digest": self._digest,
        }

    # Keeping in step -----------------------------------------------------------------------

    async def _sync(self, team: str) -> TeamChunks:
        seen = self._seen.get(team)
        first = seen is None
        stored: dict[str, IndexedFile] = {}
        if seen is None:
            seen = {}
            if self.store is not None:
                stored = {f.file: f for f in await self.store.indexed_files(team)}
        fresh: dict[str, _Seen] = {}
        new: list[IndexedFile] = []  # chunked and embedded now: the store lacks them
        for rel, path in self._team_files(team).items():
            try:
                st = path.stat()
            except OSError:
                continue
            signature = (st.st_mtime_ns, st.st_size)
            old = seen.get(rel)
            if old is not None and old.signature == signature:
                fresh[rel] = old
                continue
            previous = old.indexed if old else None
            indexed = await self._index_file(rel, path, signature, previous, stored.get(rel))
            fresh[rel] = _Seen(signature, indexed)
            if indexed is not None and indexed is not previous and indexed is not stored.get(rel):
                new.append(indexed)
        moved = set(seen) != set(fresh) or any(
            fresh[rel].indexed is not seen[rel].indexed for rel in fresh if rel in seen
        )
        keep = [rel for rel, entry in fresh.items() if entry.indexed is not None]
        if self.store is not None and (new or moved or set(stored) - set(keep)):
            await self.store.save_files(team, new, keep)
        if first or moved or new:
            self._seen[team] = fresh
            self._views[team] = _view(fresh)
        if moved or new:
            self._changed()
        return self._views[team]

    async def _index_file(
        self,
        rel: str,
        path: Path,
        signature: tuple[int, int],
        previous: IndexedFile | None,
        stored: IndexedFile | None,
    ) -> IndexedFile | None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self._warn(rel, signature, f"cannot be read ({exc.strerror or exc})")
            return None
        digest = self._file_digest(raw)
        for candidate in (previous, stored, self._memo.get((rel, digest))):
            if candidate is not None and candidate.digest == digest:
                return candidate
        if len(raw) > self.max_file_bytes:
            # Checked before decoding: a huge file is never read into chunks.
            self._warn(rel, signature, f"is {len(raw):,} bytes, over {self.max_file_bytes:,}")
            return None
        try:
            document = parse_document(
                rel, raw, max_bytes=self.max_file_bytes, known_vendor=self.known_vendor
            )
        except FileError as exc:
            self._warn(rel, signature, f"is {exc}")
            return None
        for warning in document.warnings:
            self._warn(rel, signature, warning)
        vectors = await self._embed_chunks(rel, document.chunks)
        self.reindexed += 1
        indexed = IndexedFile(rel, digest, document.chunks, vectors)
        if "/" not in rel and vectors is not None:
            self._memo[(rel, digest)] = indexed
        return indexed

    async def _embed_chunks(
        self, rel: str, chunks: tuple[Chunk, ...]
    ) -> npt.NDArray[np.float32] | None:
        if self.embedder is None or not chunks:
            return None
        try:
            vectors = await asyncio.wait_for(
                self.embedder.embed([c.embedding_text() for c in chunks]), EMBED_TIMEOUT_S
            )
        except Exception as exc:  # an embedder outage leaves word overlap, not no knowledge
            log.warning("knowledge: cannot embed %s (%s): word overlap only", rel, exc)
            return None
        return np.asarray(vectors, dtype=np.float32)

    async def _embed_query(self, text: str) -> npt.NDArray[np.float32] | None:
        if self.embedder is None:
            return None
        try:
            vectors = await asyncio.wait_for(self.embedder.embed([text]), 2.0)
        except Exception as exc:
            log.warning("knowledge: cannot embed the message (%s): word overlap only", exc)
            return None
        return np.asarray(vectors[0], dtype=np.float32)

    def _file_digest(self, raw: bytes) -> str:
        embedder = self.embedder.name if self.embedder else "none"
        return f"{hashlib.sha256(raw).hexdigest()[:32]}:{embedder}"

    def _changed(self) -> None:
        digest = self.content_digest()
        if digest != self._digest:
            self._digest = digest
            log.info("knowledge changed (digest %s)", digest)
            if self.on_change is not None:
                self.on_change(digest)

    def _warn(self, rel: str, signature: tuple[int, int], why: str) -> None:
        if (rel, signature) in self._warned:
            return
        self._warned.add((rel, signature))
        log.warning("knowledge file %s skipped: %s", self.root / rel, why)

    def _team_files(self, team: str) -> dict[str, Path]:
        files = {p.name: p for p in self._files_in(self.root)}
        own = self.root / team
        if team and own.is_dir() and own.resolve().parent == self.root.resolve():
            files |= {f"{team}/{p.name}": p for p in self._files_in(own)}
        return files

    def _all_files(self) -> list[Path]:
        found = list(self._files_in(self.root))
        if self.root.is_dir():
            for sub in self.root.iterdir():
                if sub.is_dir():
                    found.extend(self._files_in(sub))
        return found

    @staticmethod
    def _files_in(folder: Path) -> list[Path]:
        try:
            return sorted(
                p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()
            )
        except OSError:
            return []


def _view(seen: Mapping[str, _Seen]) -> TeamChunks:
    files = [s.indexed for _, s in sorted(seen.items()) if s.indexed is not None]
    chunks = [c for f in files for c in f.chunks]
    blocks = [f.vectors for f in files if f.vectors is not None]
    vectors = None
    if blocks:
        dim = blocks[0].shape[1]
        vectors = np.concatenate(
            [
                f.vectors
                if f.vectors is not None and f.vectors.shape[1] == dim
                else np.zeros((len(f.chunks), dim), np.float32)
                for f in files
            ]
        )
    return TeamChunks.build(chunks, vectors)
