"""Searches and index rebuilds on PostgreSQL (`SearchStore`'s index half).

The index itself is `reeldb.index.postgres`: this part owns the tables that say which
generations a DataStore's index has (``index_generations``, with the row-id counters of
each), which of them queries read (``index_alias``) and which documents each holds
(``index_docs``). Reads run in one snapshot; a generation dropped by a rebuild between the
moment a reader saw it and the moment it reads its tables is read again from the start.
A rebuild begins, catches up and swaps under the DataStore's seq lock (`lock_datastores`),
which every writer of its documents holds: no document commits between its catch-up and
its swap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from reeldb.index.model import EventHit, Generation
from reeldb.index.rows import Column, DocumentRows
from reeldb.query.ast import Expr
from reeldb.store.base import DocumentRecord
from reeldb.store.postgres._base import PostgresBase
from reeldb.store.postgres._documents import (
    DOCUMENT_COLUMNS,
    document_record,
    lock_datastores,
)

__all__ = ["DDL", "PostgresSearch"]

T = TypeVar("T")
Conn = psycopg.Connection[Any]

DDL: Final[tuple[str, ...]] = (
    # Generations of a DataStore's search index; each has its own tables ix<id>_*.
    # next_row and next_chunk hand out the ids of its rows and chunks (`PostgresIndex`).
    """CREATE TABLE index_generations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        datastore_id BIGINT NOT NULL REFERENCES datastores (id),
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        columns TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        docs BIGINT NOT NULL DEFAULT 0,
        rows BIGINT NOT NULL DEFAULT 0,
        next_row BIGINT NOT NULL DEFAULT 1,
        next_chunk BIGINT NOT NULL DEFAULT 1,
        UNIQUE (datastore_id, name)
    )""",
    # The generations queries read (and the newest of them takes new documents).
    """CREATE TABLE index_alias (
        datastore_id BIGINT NOT NULL REFERENCES datastores (id),
        generation_id BIGINT NOT NULL REFERENCES index_generations (id),
        PRIMARY KEY (datastore_id, generation_id)
    )""",
    # Each indexed document's rows: ids first_row..last_row of its generation.
    """CREATE TABLE index_docs (
        generation_id BIGINT NOT NULL REFERENCES index_generations (id),
        doc_seq BIGINT NOT NULL,
        first_row BIGINT NOT NULL,
        last_row BIGINT NOT NULL,
        PRIMARY KEY (generation_id, doc_seq)
    )""",
    "CREATE INDEX index_docs_by_seq ON index_docs (doc_seq)",
)
"""Tables of this part, created by migration 0001_initial (in order)."""

_ATTEMPTS: Final = 3
"""Reads of the index tried when a generation they saw was dropped meanwhile."""


class PostgresSearch(PostgresBase):
    """Searches, index rebuilds and index status of `PostgresStore`."""

    def _read_index(self, fn: Callable[[Conn], T]) -> T:
        """Run a read of the index, again if a rebuild dropped a generation it saw."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return self._pg.read(fn)
            except pg_errors.UndefinedTable:
                if attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def search_documents(
        self, datastore_id: int, expr: Expr, *, all_versions: bool, limit: int, after_seq: int
    ) -> list[tuple[int, UUID, str]]:
        """See `SearchStore.search_documents`."""
        return self._read_index(
            lambda conn: self._index.filter(
                conn,
                datastore_id,
                expr,
                all_versions=all_versions,
                limit=limit,
                after_seq=after_seq,
            )
        )

    def count_matches(
        self, datastore_id: int, expr: Expr, *, all_versions: bool, budget: int
    ) -> int | None:
        """See `SearchStore.count_matches` (here 100 000 units of budget are a millisecond)."""
        return self._read_index(
            lambda conn: self._index.count(
                conn, datastore_id, expr, all_versions=all_versions, budget=budget
            )
        )

    def search_events(
        self, datastore_id: int, doc_seq: int, expr: Expr, *, limit: int, offset: int
    ) -> list[EventHit]:
        """See `SearchStore.search_events`."""
        return self._read_index(
            lambda conn: self._index.events(
                conn, datastore_id, doc_seq, expr, limit=limit, offset=offset
            )
        )

    def begin_index_rebuild(self, datastore_id: int, columns: Sequence[Column]) -> Generation:
        """See `SearchStore.begin_index_rebuild`."""

        def begin(conn: Conn) -> Generation:
            lock_datastores(conn, [datastore_id])
            return self._index.begin_rebuild(conn, datastore_id, columns)

        return self._pg.write(begin)

    def index_checkpoint(self, generation_id: int) -> int:
        """See `SearchStore.index_checkpoint`."""
        return self._pg.read(lambda conn: self._index.checkpoint(conn, generation_id))

    def index_documents(
        self, datastore_id: int, generation: Generation, docs: Sequence[tuple[int, DocumentRows]]
    ) -> None:
        """See `SearchStore.index_documents`."""
        self._pg.write(
            lambda conn: self._index.add(conn, datastore_id, generation.columns, docs, generation)
        )

    def finish_index_rebuild(
        self,
        datastore_id: int,
        generation: Generation,
        catch_up: Callable[[list[DocumentRecord]], list[tuple[int, DocumentRows]]],
    ) -> None:
        """See `SearchStore.finish_index_rebuild`."""

        def finish(conn: Conn) -> None:
            # The seq lock first: no document of the DataStore commits until the swap does,
            # and every one committed before is read here.
            lock_datastores(conn, [datastore_id])
            done = self._index.checkpoint(conn, generation.id)
            # Also a streamed document published behind the checkpoint (its number was
            # reserved before the rebuild passed it, its rows went to the old generation).
            rows = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS}, body FROM documents d WHERE datastore_id = %s "
                "AND (seq > %s OR (blob IS NOT NULL AND NOT EXISTS (SELECT 1 FROM index_docs "
                "i WHERE i.generation_id = %s AND i.doc_seq = d.seq))) ORDER BY seq",
                (datastore_id, done, generation.id),
            ).fetchall()
            docs = catch_up([document_record(row, row[8]) for row in rows])
            self._index.add(conn, datastore_id, generation.columns, docs, generation)
            self._index.swap(conn, datastore_id, generation)

        def drop(conn: Conn) -> None:
            for old in self._index.generations(conn, datastore_id):
                if old.id != generation.id:
                    self._index.drop(conn, old)

        self._pg.write(finish)
        # Readers that saw the old generations finish first (DROP TABLE waits for them);
        # those that see them dropped read again (`_read_index`).
        self._pg.write(drop)

    def index_coverage(self, datastore_id: int) -> tuple[int, int]:
        """See `SearchStore.index_coverage`."""

        def coverage(conn: Conn) -> tuple[int, int]:
            row = conn.execute(
                "SELECT (SELECT coalesce(sum(g.docs), 0) FROM index_generations g "
                "JOIN index_alias a ON a.generation_id = g.id WHERE a.datastore_id = %s), "
                "(SELECT count(*) FROM documents WHERE datastore_id = %s)",
                (datastore_id, datastore_id),
            ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        return self._pg.read(coverage)

    def index_generations(self, datastore_id: int) -> list[Generation]:
        """See `SearchStore.index_generations`."""
        return self._pg.read(lambda conn: self._index.generations(conn, datastore_id))
