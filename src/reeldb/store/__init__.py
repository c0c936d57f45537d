"""Storage ports and the factory that picks a backend from a URL.

``load_store("sqlite:///path/reel.db")``, ``load_store("memory:")``,
``load_store("postgresql://user@host/dbname")``. Adapters are imported lazily, so a driver is
loaded only when its backend is used.
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
    "redact_url",
]

_BACKENDS = ("sqlite", "memory", "postgresql")


def redact_url(url: str) -> str:
    """A database URL without its password, fit for logs, errors and ``repr``.

    Args:
        url: A database URL.

    Returns:
        ``scheme://user@host/...`` for ``scheme://user:password@host/...``; others unchanged.
    """
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


def infer_backend(url: str) -> str:
    """Name the backend a database URL selects.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``memory:`` or
            ``postgresql://user[:password]@host[:port]/dbname``.

    Returns:
        ``sqlite``, ``memory`` or ``postgresql``.

    Raises:
        ConfigError: The URL names no supported backend.
    """
    if url == "memory:" or url == "sqlite://" or url == "sqlite:///:memory:":
        return "memory"
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    raise ConfigError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/reel.db, memory: or "
        "postgresql://user@host/dbname "
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
    if backend == "postgresql":
        from reeldb.store.postgres import PostgresStore

        return PostgresStore(
            url,
            pool_size=settings.pool_size,
            statement_timeout=settings.statement_timeout,
            connect_timeout=settings.busy_timeout,
            read_timeout=settings.read_timeout,
            index_rollover_rows=settings.index_rollover_rows,
        )
    path = None if backend == "memory" else Path(url.removeprefix("sqlite:///"))
    return SQLiteStore(
        path,
        synchronous=settings.sqlite_synchronous,
        busy_timeout=settings.busy_timeout,
        read_timeout=settings.read_timeout,
        index_rollover_rows=settings.index_rollover_rows,
    )
