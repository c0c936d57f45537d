"""Storage ports and the factory that picks a backend from a URL.

``load_store("sqlite:///path/reel.db")``, ``load_store("memory:")``; ``postgresql://`` comes
with the PostgreSQL backend. Adapters are imported lazily, so an optional driver is needed
only when its backend is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reeldb.errors import ConfigError
from reeldb.store.base import (
    AccessStore,
    DataStoreMove,
    DocumentRecord,
    DocumentStore,
    MetadataStore,
    NewDocument,
    Store,
)

if TYPE_CHECKING:
    from reeldb.config import Settings

__all__ = [
    "AccessStore",
    "DataStoreMove",
    "DocumentRecord",
    "DocumentStore",
    "MetadataStore",
    "NewDocument",
    "Store",
    "infer_backend",
    "load_store",
]

_BACKENDS = ("sqlite", "memory")


def infer_backend(url: str) -> str:
    """Name the backend a database URL selects.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``memory:``.

    Returns:
        ``sqlite`` or ``memory``.

    Raises:
        ConfigError: The URL names no supported backend.
    """
    if url == "memory:" or url == "sqlite://" or url == "sqlite:///:memory:":
        return "memory"
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "the PostgreSQL backend is not available in this version of reeldb; "
            "use sqlite:///path/to/reel.db or memory:"
        )
    raise ConfigError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/reel.db or memory: "
        "(set it with --database, REELDB_DATABASE or 'database' in reeldb.toml)"
    )


def load_store(url: str, settings: Settings | None = None) -> Store:
    """Open the backend a URL names, creating and migrating it if needed.

    Args:
        url: The database URL (see `infer_backend`).
        settings: Tuning (SQLite synchronous mode, timeouts); defaults when None.

    Returns:
        The open store.

    Raises:
        ConfigError: The URL names no supported backend.
        BackendUnavailableError: The database cannot be opened.
    """
    from reeldb.config import Settings
    from reeldb.store.sqlite import SQLiteStore

    settings = settings or Settings()
    backend = infer_backend(url)
    path = None if backend == "memory" else Path(url.removeprefix("sqlite:///"))
    return SQLiteStore(
        path,
        synchronous=settings.sqlite_synchronous,
        busy_timeout=settings.busy_timeout,
        read_timeout=settings.read_timeout,
        index_rollover_rows=settings.index_rollover_rows,
    )
