"""Asynchronous query requests on PostgreSQL: leased to one runner at a time.

A runner claims a request under a lease, appends results while it holds it and finishes it
(done, failed, or handed back). Every step locks the request's row (``FOR UPDATE``, or an
``UPDATE`` guarded by owner and state), so two runners never both hold a request, and results
of a runner whose lease was taken over are refused. Results go away with their request
(``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg

from reeldb.errors import NotFoundError
from reeldb.store.base import QueryRequestRecord
from reeldb.store.postgres._base import PostgresBase

__all__ = ["DDL", "PostgresQueries"]

DDL: Final[tuple[str, ...]] = (
    # DataStore-level filters run asynchronously; a runner holds a request by a lease.
    """CREATE TABLE query_requests (
        id UUID PRIMARY KEY,
        datastore_id BIGINT NOT NULL REFERENCES datastores (id),
        query TEXT NOT NULL,
        all_versions BOOLEAN NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
        found BIGINT NOT NULL DEFAULT 0,
        error TEXT,
        owner TEXT,
        lease_until TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ
    )""",
    "CREATE INDEX query_requests_by_finish ON query_requests (finished_at) "
    "WHERE finished_at IS NOT NULL",
    """CREATE TABLE query_results (
        request_id UUID NOT NULL REFERENCES query_requests (id) ON DELETE CASCADE,
        position BIGINT NOT NULL,
        document_id UUID NOT NULL,
        mid_key TEXT NOT NULL,
        PRIMARY KEY (request_id, position)
    )""",
)
"""Tables of this part, created by migration 0001_initial (in order)."""

_COLUMNS: Final = (
    "id, datastore_id, query, all_versions, state, found, error, owner, lease_until, "
    "created_at, finished_at"
)


def _record(row: Sequence[Any]) -> QueryRequestRecord:
    return QueryRequestRecord(*row)


def _get(
    conn: psycopg.Connection[Any], request_id: UUID, *, lock: bool = False
) -> QueryRequestRecord:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM query_requests WHERE id = %s{' FOR UPDATE' if lock else ''}",
        (request_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no query request {request_id}")
    return _record(row)


class PostgresQueries(PostgresBase):
    """The query-request half of `reeldb.store.base.SearchStore` on PostgreSQL."""

    def add_query_request(self, request: QueryRequestRecord) -> None:
        """See `SearchStore.add_query_request`."""
        assert request.created_at is not None
        created_at = request.created_at
        self._pg.write(
            lambda conn: conn.execute(
                f"INSERT INTO query_requests ({_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, 'pending', 0, NULL, NULL, NULL, %s, NULL)",
                (
                    request.id,
                    request.datastore_id,
                    request.query,
                    request.all_versions,
                    created_at,
                ),
            )
        )

    def get_query_request(self, request_id: UUID) -> QueryRequestRecord:
        """See `SearchStore.get_query_request`."""
        return self._pg.read(lambda conn: _get(conn, request_id))

    def claim_query_request(
        self, request_id: UUID, owner: str, now: datetime, lease_until: datetime
    ) -> QueryRequestRecord | None:
        """See `SearchStore.claim_query_request`."""

        def claim(conn: psycopg.Connection[Any]) -> QueryRequestRecord | None:
            found = _get(conn, request_id, lock=True)
            lapsed = found.lease_until is not None and found.lease_until < now
            if not (found.state == "pending" or (found.state == "running" and lapsed)):
                return None
            conn.execute("DELETE FROM query_results WHERE request_id = %s", (request_id,))
            row = conn.execute(
                "UPDATE query_requests SET state = 'running', found = 0, owner = %s, "
                f"lease_until = %s WHERE id = %s RETURNING {_COLUMNS}",
                (owner, lease_until, request_id),
            ).fetchone()
            assert row is not None  # locked above
            return _record(row)

        return self._pg.write(claim)

    def add_query_results(
        self,
        request_id: UUID,
        owner: str,
        matches: Sequence[tuple[UUID, str]],
        lease_until: datetime,
    ) -> bool:
        """See `SearchStore.add_query_results`."""
        documents = [doc_id for doc_id, _ in matches]
        mids = [mid for _, mid in matches]

        def add(conn: psycopg.Connection[Any]) -> bool:
            # The guarded UPDATE locks the row: results of one request are appended in turn.
            row = conn.execute(
                "UPDATE query_requests SET found = found + %s, lease_until = %s "
                "WHERE id = %s AND owner = %s AND state = 'running' RETURNING found",
                (len(matches), lease_until, request_id, owner),
            ).fetchone()
            if row is None:
                return False
            first = int(row[0]) - len(matches)
            if matches:
                conn.execute(
                    "INSERT INTO query_results (request_id, position, document_id, mid_key) "
                    "SELECT %s, %s + n, d, m FROM unnest(%s::uuid[], %s::text[]) "
                    "WITH ORDINALITY AS r (d, m, n)",
                    (request_id, first, documents, mids),
                )
            return True

        return self._pg.write(add)

    def finish_query_request(
        self,
        request_id: UUID,
        owner: str,
        *,
        error: str | None,
        finished_at: datetime | None,
    ) -> bool:
        """See `SearchStore.finish_query_request`."""
        handed_back = finished_at is None and error is None  # the next runner starts over
        state = "pending" if handed_back else ("failed" if error is not None else "done")

        def finish(conn: psycopg.Connection[Any]) -> bool:
            cursor = conn.execute(
                "UPDATE query_requests SET state = %s, "
                "found = CASE WHEN %s THEN 0 ELSE found END, error = %s, owner = NULL, "
                "lease_until = NULL, finished_at = %s "
                "WHERE id = %s AND owner = %s AND state = 'running'",
                (state, handed_back, error, finished_at, request_id, owner),
            )
            if cursor.rowcount != 1:
                return False
            if handed_back:
                conn.execute("DELETE FROM query_results WHERE request_id = %s", (request_id,))
            return True

        return self._pg.write(finish)

    def query_results(
        self, request_id: UUID, *, after: int, limit: int
    ) -> list[tuple[int, UUID, str]]:
        """See `SearchStore.query_results`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                "SELECT position, document_id, mid_key FROM query_results "
                "WHERE request_id = %s AND position > %s ORDER BY position LIMIT %s",
                (request_id, after, limit),
            ).fetchall()
        )
        return [(int(row[0]), row[1], row[2]) for row in rows]

    def delete_query_requests(self, finished_before: datetime) -> int:
        """See `SearchStore.delete_query_requests`."""
        # Their results go with them (ON DELETE CASCADE).
        return self._pg.write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM query_requests WHERE finished_at < %s", (finished_before,)
                ).rowcount
            )
        )
