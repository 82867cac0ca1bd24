"""Adapters for the engine's ports: SQLite (the embedded default) and Postgres (shared)."""

from .backend import Store, open_store
from .sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "open_store"]
