"""The company's own knowledge: battlecards, pricing, case studies, FAQ, as Markdown files.

`chunk` cuts files by heading and recognises battlecards; `index` keeps a directory in step
with the store, per team; `retrieve` ranks chunks for a turn; `quote` picks the lines the
offline tier can say. Generate receives the chosen chunks as data (`<knowledge>`).
"""

from .chunk import Chunk, Document, FileError, parse_document
from .index import KnowledgeIndex
from .retrieve import Ranked, TeamChunks
from .store import IndexedFile, KnowledgeStore

__all__ = [
    "Chunk",
    "Document",
    "FileError",
    "IndexedFile",
    "KnowledgeIndex",
    "KnowledgeStore",
    "Ranked",
    "TeamChunks",
    "parse_document",
]
