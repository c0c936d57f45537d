"""`PostgresStore`: every storage port on one PostgreSQL database (the scale-out backend)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from reeldb.index.postgres import PostgresIndex
from reeldb.store._jobs import SQLJobStore
from reeldb.store.base import Store
from reeldb.store.postgres._annotations import PostgresAnnotations
from reeldb.store.postgres._connection import PostgresConnections
from reeldb.store.postgres._documents import PostgresDocuments
from reeldb.store.postgres._ingest import PostgresIngest
from reeldb.store.postgres._metadata import PostgresMetadata
from reeldb.store.postgres._queries import PostgresQueries
from reeldb.store.postgres._search import PostgresSearch
from reeldb.store.postgres._staging import PostgresStaging
from reeldb.store.postgres.migrations import migrate

__all__ = ["PostgresStore"]

T = TypeVar("T")


class PostgresStore(
    PostgresMetadata,
    PostgresDocuments,
    PostgresIngest,
    PostgresStaging,
    PostgresAnnotations,
    PostgresSearch,
    PostgresQueries,
    SQLJobStore,
    Store,
):
    """Every storage port on one PostgreSQL database, shared by any number of processes.

    Opening it applies the migrations not yet applied (`reeldb.store.postgres.migrations`).

    Args:
        url: ``postgresql://user[:password]@host[:port]/dbname[?options]``.
        pool_size: Connections this process keeps at most.
        statement_timeout: Seconds a statement may run on the server.
        read_timeout: Seconds a read may run before it is cancelled (None: no limit).
        connect_timeout: Seconds to wait for a connection.
        index_rollover_rows: Rows after which the index opens a new generation.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        statement_timeout: float = 60.0,
        read_timeout: float | None = None,
        connect_timeout: float = 10.0,
        index_rollover_rows: int = 1_000_000,
    ) -> None:
        self.url = url
        self._pg = PostgresConnections(
            url,
            max_size=pool_size,
            statement_timeout=statement_timeout,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
        )
        try:
            migrate(self._pg)
        except BaseException:
            self._pg.close()
            raise
        self._index = PostgresIndex(rollover_rows=index_rollover_rows)

    _job_placeholder = "%s"

    def _job_write(self, fn: Callable[[Any], T]) -> T:
        return self._pg.write(fn)

    def _job_read(self, fn: Callable[[Any], T]) -> T:
        return self._pg.read(fn)

    def access_generation(self) -> int | None:
        """See `AccessStore.access_generation` (one row every process reads)."""

        def read(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute("SELECT generation FROM reeldb_access").fetchone()
            assert row is not None  # migration 0001 inserts the one row
            return int(row[0])

        return self._pg.read(read)

    def close(self) -> None:
        """Close the pool; later use raises `DatabaseClosedError`."""
        self._pg.close()
