"""Blob records, asynchronous write requests and worker heartbeats on PostgreSQL.

Each check-then-act is made atomic by the server instead of by a single writer: a blob's
parts are written under its row's lock (``FOR UPDATE``), an idempotency key is taken with
``INSERT ... ON CONFLICT DO NOTHING`` (two concurrent submissions with one key record one
request), state changes lock the request's row, and a silent worker is taken over by one
``UPDATE ... RETURNING`` (row locks make each taken by one claimant). Garbage collection
skips blobs another transaction holds (``FOR UPDATE SKIP LOCKED``).

The streamed-ingest half of the port (``ingests``) is `reeldb.store.postgres._staging`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, LiteralString
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from reeldb import _json
from reeldb.errors import AlreadyExistsError, ConflictError, NotFoundError
from reeldb.model.datastore import DataStoreRef
from reeldb.model.requests import FINAL_STATES, WriteRequest, WriteState
from reeldb.store.base import BlobPart, BlobRecord
from reeldb.store.postgres._base import PostgresBase

__all__ = ["DDL", "PostgresIngest"]

DDL: Final[tuple[str, ...]] = (
    # Blobs announced by `POST /v1/blobs`: whose they are and whether they arrived.
    """CREATE TABLE blobs (
        id UUID PRIMARY KEY,
        namespace TEXT NOT NULL REFERENCES namespaces (name),
        declared_size BIGINT,
        size BIGINT,
        sha256 TEXT,
        state TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        created_by TEXT NOT NULL,
        stored_at TIMESTAMPTZ,
        claimed_at TIMESTAMPTZ
    )""",
    "CREATE INDEX blobs_by_age ON blobs (created_at)",
    # Parts of a blob uploaded piece by piece (resumable); each is a blob of its own
    # (`payload`) until the upload is completed.
    """CREATE TABLE blob_parts (
        blob UUID NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        payload UUID NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (blob, number)
    )""",
    # Asynchronous writes: accepted durably, run by workers (reeldb.workflows).
    """CREATE TABLE write_requests (
        id UUID PRIMARY KEY,
        namespace TEXT NOT NULL REFERENCES namespaces (name),
        datastore TEXT NOT NULL,
        mid TEXT NOT NULL,
        blob UUID NOT NULL,
        state TEXT NOT NULL,
        document_id UUID,
        error TEXT,
        idempotency_key TEXT,
        webhook TEXT,
        created_by TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        steps TEXT NOT NULL DEFAULT '{}',
        UNIQUE (namespace, idempotency_key)
    )""",
    "CREATE INDEX write_requests_by_state ON write_requests (state) "
    "WHERE state NOT IN ('INDEXED', 'FAILED')",
    "CREATE INDEX write_requests_by_namespace ON write_requests (namespace, id)",
    # Workers of asynchronous writes and when each was last seen: a worker silent for too
    # long is taken over (its interrupted writes resumed by a live one).
    """CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        seen_at TIMESTAMPTZ NOT NULL,
        taken_over_by TEXT
    )""",
)
"""Tables of this part, created by migration 0001_initial (in order)."""

_BLOB: Final = "id, namespace, declared_size, size, sha256, state, created_at, created_by"
_REQUEST: Final = (
    "id, datastore, mid, blob, state, document_id, error, idempotency_key, webhook, "
    "created_by, created_at, updated_at, steps"
)


def _blob(conn: psycopg.Connection[Any], blob_id: UUID, *, lock: bool = False) -> BlobRecord:
    row = conn.execute(
        f"SELECT {_BLOB} FROM blobs WHERE id = %s{' FOR UPDATE' if lock else ''}", (blob_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"blob {blob_id} does not exist")
    return BlobRecord(*row)


def _request(row: Sequence[Any]) -> WriteRequest:
    return WriteRequest(
        row[0],
        DataStoreRef.parse(row[1]),
        _json.loads(row[2]),
        row[3],
        WriteState(row[4]),
        row[5],
        None if row[6] is None else _json.loads(row[6]),
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        _json.loads(row[12]),
    )


def _write_request(
    conn: psycopg.Connection[Any], request_id: UUID, *, lock: bool = False
) -> WriteRequest:
    row = conn.execute(
        f"SELECT {_REQUEST} FROM write_requests WHERE id = %s{' FOR UPDATE' if lock else ''}",
        (request_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"write request {request_id} does not exist")
    return _request(row)


class PostgresIngest(PostgresBase):
    """Blob records, write requests and workers of `reeldb.store.base.DocumentStore`."""

    # -- blob records ---------------------------------------------------------------------

    def add_blob(self, record: BlobRecord) -> None:
        """See `DocumentStore.add_blob`."""

        def add(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                f"INSERT INTO blobs ({_BLOB}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    record.id,
                    record.namespace,
                    record.declared_size,
                    record.size,
                    record.sha256,
                    record.state,
                    record.created_at,
                    record.created_by,
                ),
            )

        try:
            self._pg.write(add)
        except pg_errors.ForeignKeyViolation:
            raise NotFoundError(f"namespace {record.namespace!r} does not exist") from None
        except pg_errors.UniqueViolation:
            raise AlreadyExistsError(f"blob {record.id} already exists") from None

    def get_blob(self, blob_id: UUID) -> BlobRecord:
        """See `DocumentStore.get_blob`."""
        return self._pg.read(lambda conn: _blob(conn, blob_id))

    def blob_stored(self, blob_id: UUID, size: int, sha256: str, at: datetime) -> BlobRecord:
        """See `DocumentStore.blob_stored`."""

        def stored(conn: psycopg.Connection[Any]) -> BlobRecord:
            conn.execute(
                "UPDATE blobs SET size = %s, sha256 = %s, state = 'stored', stored_at = %s "
                "WHERE id = %s AND state = 'open'",
                (size, sha256, at, blob_id),
            )
            return _blob(conn, blob_id)

        return self._pg.write(stored)

    def claim_blob(self, blob_id: UUID, at: datetime) -> BlobRecord:
        """See `DocumentStore.claim_blob`."""

        def claim(conn: psycopg.Connection[Any]) -> BlobRecord:
            conn.execute(
                "UPDATE blobs SET state = 'claimed', claimed_at = %s WHERE id = %s "
                "AND state IN ('stored', 'claimed')",
                (at, blob_id),
            )
            return _blob(conn, blob_id)

        return self._pg.write(claim)

    def put_blob_part(self, blob_id: UUID, part: BlobPart) -> UUID | None:
        """See `DocumentStore.put_blob_part`."""

        def put(conn: psycopg.Connection[Any]) -> UUID | None:
            # The blob's row lock orders this against completing the upload and against
            # another upload of the same part.
            if _blob(conn, blob_id, lock=True).state != "open":
                raise ConflictError(f"the upload of blob {blob_id} is complete")
            old = conn.execute(
                "SELECT payload FROM blob_parts WHERE blob = %s AND number = %s",
                (blob_id, part.number),
            ).fetchone()
            conn.execute(
                "INSERT INTO blob_parts (blob, number, payload, size, sha256) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (blob, number) DO UPDATE SET "
                "payload = excluded.payload, size = excluded.size, sha256 = excluded.sha256",
                (blob_id, part.number, part.payload, part.size, part.sha256),
            )
            return None if old is None else old[0]

        return self._pg.write(put)

    def blob_parts(self, blob_id: UUID) -> list[BlobPart]:
        """See `DocumentStore.blob_parts`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                "SELECT number, size, sha256, payload FROM blob_parts WHERE blob = %s "
                "ORDER BY number",
                (blob_id,),
            ).fetchall()
        )
        return [BlobPart(*row) for row in rows]

    def forget_blob_parts(self, blob_id: UUID) -> list[UUID]:
        """See `DocumentStore.forget_blob_parts`."""
        rows = self._pg.write(
            lambda conn: conn.execute(
                "DELETE FROM blob_parts WHERE blob = %s RETURNING payload", (blob_id,)
            ).fetchall()
        )
        return [row[0] for row in rows]

    def collect_blobs(self, before: datetime, limit: int) -> list[UUID]:
        """See `DocumentStore.collect_blobs`."""
        # One statement: the garbage is chosen and locked (blobs another transaction is
        # claiming are skipped, and judged again next time), then its parts and records
        # are deleted. The ids returned are the parts' payloads, then the blobs'.
        rows = self._pg.write(
            lambda conn: conn.execute(
                "WITH garbage AS (SELECT b.id FROM blobs b WHERE b.created_at < %s "
                "AND (b.claimed_at IS NULL OR b.claimed_at < %s) "
                "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.blob = b.id) "
                "AND NOT EXISTS (SELECT 1 FROM ingests i WHERE i.blob = b.id "
                "AND i.state <> 'discarded') LIMIT %s FOR UPDATE OF b SKIP LOCKED), "
                "parts AS (DELETE FROM blob_parts WHERE blob IN (SELECT id FROM garbage) "
                "RETURNING payload), "
                "gone AS (DELETE FROM blobs WHERE id IN (SELECT id FROM garbage) RETURNING id) "
                "SELECT 1, payload FROM parts UNION ALL SELECT 2, id FROM gone ORDER BY 1",
                (before, before, limit),
            ).fetchall()
        )
        return [row[1] for row in rows]

    # -- write requests -------------------------------------------------------------------

    def add_write_request(self, request: WriteRequest) -> tuple[WriteRequest, bool]:
        """See `DocumentStore.add_write_request`."""
        namespace = request.datastore.namespace
        values = (
            namespace,
            request.id,
            str(request.datastore),
            _json.dumps(request.mid).decode(),
            request.blob,
            request.state.value,
            request.document_id,
            None if request.error is None else _json.dumps(request.error).decode(),
            request.idempotency_key,
            request.webhook,
            request.created_by,
            request.created_at,
            request.updated_at,
            _json.dumps(request.steps).decode(),
        )

        def add(conn: psycopg.Connection[Any]) -> WriteRequest | None:
            # A concurrent submission with the same key waits here for the other to commit,
            # then finds its request (no second one is recorded).
            inserted = conn.execute(
                f"INSERT INTO write_requests (namespace, {_REQUEST}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (namespace, idempotency_key) DO NOTHING RETURNING id",
                values,
            ).fetchone()
            if inserted is not None:
                return None
            row = conn.execute(
                f"SELECT {_REQUEST} FROM write_requests WHERE namespace = %s "
                "AND idempotency_key = %s",
                (namespace, request.idempotency_key),
            ).fetchone()
            assert row is not None  # the conflicting row is committed (and never deleted)
            return _request(row)

        try:
            earlier = self._pg.write(add)
        except pg_errors.ForeignKeyViolation:
            raise NotFoundError(f"namespace {namespace!r} does not exist") from None
        except pg_errors.UniqueViolation:
            raise AlreadyExistsError(f"write request {request.id} already exists") from None
        return (request, True) if earlier is None else (earlier, False)

    def get_write_request(self, request_id: UUID) -> WriteRequest:
        """See `DocumentStore.get_write_request`."""
        return self._pg.read(lambda conn: _write_request(conn, request_id))

    def update_write_request(
        self,
        request_id: UUID,
        state: WriteState,
        at: datetime,
        *,
        document_id: UUID | None = None,
        error: dict[str, Any] | None = None,
        step: tuple[str, float] | None = None,
    ) -> WriteRequest:
        """See `DocumentStore.update_write_request`."""
        problem = None if error is None else _json.dumps(error).decode()

        def update(conn: psycopg.Connection[Any]) -> WriteRequest:
            found = _write_request(conn, request_id, lock=True)
            if found.state in FINAL_STATES:
                return found
            steps = dict(found.steps)
            if step is not None:
                steps[step[0]] = step[1]
            row = conn.execute(
                "UPDATE write_requests SET state = %s, updated_at = %s, document_id = %s, "
                f"error = %s, steps = %s WHERE id = %s RETURNING {_REQUEST}",
                (
                    state.value,
                    at,
                    document_id or found.document_id,
                    problem,
                    _json.dumps(steps).decode(),
                    request_id,
                ),
            ).fetchone()
            assert row is not None  # locked above
            return _request(row)

        return self._pg.write(update)

    def list_write_requests(
        self,
        *,
        namespace: str | None = None,
        unfinished: bool = False,
        limit: int = 100,
        before: UUID | None = None,
    ) -> list[WriteRequest]:
        """See `DocumentStore.list_write_requests`."""
        # Only the filters asked for are in the statement: each shape gets a plan of its own
        # (by ``id`` backwards, or by ``(namespace, id)``).
        where: list[LiteralString] = ["TRUE"]
        args: list[Any] = []
        if namespace is not None:
            where.append("namespace = %s")
            args.append(namespace)
        if unfinished:
            where.append("state NOT IN ('INDEXED', 'FAILED')")
        if before is not None:
            where.append("id < %s")
            args.append(before)
        sql: LiteralString = (
            f"SELECT {_REQUEST} FROM write_requests WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT %s"
        )
        rows = self._pg.read(lambda conn: conn.execute(sql, [*args, limit]).fetchall())
        return [_request(row) for row in rows]

    def count_write_requests(self) -> dict[str, int]:
        """See `DocumentStore.count_write_requests`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                "SELECT state, count(*) FROM write_requests "
                "WHERE state NOT IN ('INDEXED', 'FAILED') GROUP BY state"
            ).fetchall()
        )
        counts = {state.value: 0 for state in WriteState if state not in FINAL_STATES}
        return counts | {state: int(count) for state, count in rows}

    # -- workers ----------------------------------------------------------------------------

    def worker_seen(self, name: str, at: datetime) -> None:
        """See `DocumentStore.worker_seen`."""
        self._pg.write(
            lambda conn: conn.execute(
                "INSERT INTO workers (name, seen_at) VALUES (%s, %s) ON CONFLICT (name) "
                "DO UPDATE SET seen_at = excluded.seen_at, taken_over_by = NULL",
                (name, at),
            )
        )

    def worker_gone(self, name: str) -> None:
        """See `DocumentStore.worker_gone`."""
        self._pg.write(lambda conn: conn.execute("DELETE FROM workers WHERE name = %s", (name,)))

    def claim_silent_workers(self, me: str, silent_since: datetime, at: datetime) -> list[str]:
        """See `DocumentStore.claim_silent_workers`."""
        # A row another claimant updated first no longer matches ``seen_at < silent_since``
        # when it is re-checked after the lock: each silent worker goes to one claimant.
        rows = self._pg.write(
            lambda conn: conn.execute(
                "UPDATE workers SET seen_at = %s, taken_over_by = %s WHERE seen_at < %s "
                "AND name <> %s RETURNING name",
                (at, me, silent_since, me),
            ).fetchall()
        )
        return sorted(row[0] for row in rows)
