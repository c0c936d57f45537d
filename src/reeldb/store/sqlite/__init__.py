"""The embedded SQLite backend."""

from reeldb.store.sqlite._store import SQLiteStore

__all__ = ["SQLiteStore"]
