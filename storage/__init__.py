"""SQLite adapters for the engine's ports."""

from .sqlite import SqliteStore

__all__ = ["SqliteStore"]
