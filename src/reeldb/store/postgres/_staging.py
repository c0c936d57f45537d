"""Documents streamed from blobs, on PostgreSQL: reserved, staged in batches, published at once.

A streamed document's index rows are written over many transactions, so that writers of
small documents are never held up for long. `begin_ingest` takes the document's sequence
number (`draw_seqs`, under the DataStore's seq lock) and reserves its range of row and chunk
ids in the index generation; each `stage_ingest` writes one batch together with its
checkpoint (``rows_done``), with the ingest's row locked (``FOR UPDATE``), so that two
workers can never stage the same batch and a resumed ingest stages each row exactly once.
Until `publish_ingest` the document has no row in ``documents``, and every query joins that
table (or reads ``index_docs``, written in the same transaction): staged rows are invisible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from reeldb.auth.model import AuditEntry
from reeldb.errors import AlreadyExistsError, NotFoundError
from reeldb.index.model import Generation
from reeldb.index.rows import DocumentRows
from reeldb.store._common import (
    check_publish,
    check_schema_version,
    check_stage,
    dropped_generation,
    find_generation,
    missing_ingest,
)
from reeldb.store.base import DocumentRecord, IngestStart, IngestState
from reeldb.store.postgres._base import PostgresBase, append_audit
from reeldb.store.postgres._documents import draw_seqs, lock_datastores

__all__ = ["DDL", "PostgresStaging"]

Conn = psycopg.Connection[Any]

DDL: Final[tuple[str, ...]] = (
    # A document streamed from a blob, indexed over several transactions: its sequence
    # number and its index rows are reserved first, staged in batches (each with its
    # checkpoint) and published at once.
    """CREATE TABLE ingests (
        id UUID PRIMARY KEY,
        datastore_id BIGINT NOT NULL REFERENCES datastores (id),
        schema_version INTEGER NOT NULL,
        document_id UUID NOT NULL UNIQUE,
        doc_seq BIGINT NOT NULL,
        mid_key TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        blob UUID NOT NULL,
        size BIGINT NOT NULL,
        generation_id BIGINT NOT NULL,
        row_base BIGINT NOT NULL,
        rows BIGINT NOT NULL,
        chunk_base BIGINT NOT NULL,
        chunks BIGINT NOT NULL,
        rows_done BIGINT NOT NULL DEFAULT 0,
        chunks_done BIGINT NOT NULL DEFAULT 0,
        events_done BIGINT NOT NULL DEFAULT 0,
        state TEXT NOT NULL
    )""",
    "CREATE INDEX ingests_by_blob ON ingests (blob)",
)
"""Tables of this part, created by migration 0001_initial (in order)."""

_STATE: Final = "id, document_id, doc_seq, rows, chunks, rows_done, chunks_done, events_done, state"
_INGEST: Final = (
    "SELECT state, generation_id, doc_seq, row_base, rows, chunk_base, chunks, rows_done, "
    "chunks_done, datastore_id, schema_version, document_id, mid_key, created_at, size, blob "
    "FROM ingests WHERE id = %s FOR UPDATE"
)


def _state(row: Sequence[Any]) -> IngestState:
    return IngestState(*row)


def _ingest(conn: Conn, ingest_id: UUID) -> tuple[Any, ...]:
    """An ingest's row, locked until commit."""
    row = conn.execute(_INGEST, (ingest_id,)).fetchone()
    if row is None:
        raise missing_ingest(ingest_id)
    return tuple(row)


class PostgresStaging(PostgresBase):
    """The streamed-document half of `reeldb.store.base.DocumentStore` on PostgreSQL."""

    def begin_ingest(self, start: IngestStart) -> IngestState:
        """See `DocumentStore.begin_ingest`."""

        def existing(conn: Conn) -> IngestState | None:
            row = conn.execute(f"SELECT {_STATE} FROM ingests WHERE id = %s", (start.id,))
            found = row.fetchone()
            return None if found is None else _state(found)

        def begin(conn: Conn) -> IngestState:
            # As writers do: the DataStore's seq lock before its version (a schema move holds
            # it while it checks new documents), under which a worker that began the same
            # ingest meanwhile is seen.
            lock_datastores(conn, [start.datastore_id])
            found = conn.execute(
                "SELECT schema_version FROM datastores WHERE id = %s", (start.datastore_id,)
            ).fetchone()
            check_schema_version(
                start.datastore_id, None if found is None else found[0], start.schema_version
            )
            before = existing(conn)
            if before is not None:
                return before
            [seq] = draw_seqs(conn, 1)
            gen, base, chunk_base = self._index.reserve(
                conn, start.datastore_id, start.columns, start.rows, start.chunks
            )
            conn.execute(
                "INSERT INTO ingests (id, datastore_id, schema_version, document_id, doc_seq, "
                "mid_key, created_at, blob, size, generation_id, row_base, rows, chunk_base, "
                "chunks, state) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, 'staging')",
                (
                    start.id,
                    start.datastore_id,
                    start.schema_version,
                    start.document_id,
                    seq,
                    start.mid_key,
                    start.created_at,
                    start.blob,
                    start.size,
                    gen.id,
                    base,
                    start.rows,
                    chunk_base,
                    start.chunks,
                ),
            )
            return IngestState(
                start.id, start.document_id, seq, start.rows, start.chunks, 0, 0, 0, "staging"
            )

        before = self._pg.read(existing)
        return before if before is not None else self._pg.write(begin)

    def _generation(self, conn: Conn, datastore_id: int, gid: int) -> Generation:
        return find_generation(self._index.generations(conn, datastore_id), gid)

    def stage_ingest(
        self, ingest_id: UUID, batch: DocumentRows, *, rows_at: int, chunks_at: int, events: int
    ) -> IngestState:
        """See `DocumentStore.stage_ingest`."""

        def stage(conn: Conn) -> IngestState:
            found = _ingest(conn, ingest_id)
            check_stage(ingest_id, found, batch, rows_at, chunks_at)
            _, gid, seq, base, _, chunk_base, _, _, _, ds = found[:10]
            gen = self._generation(conn, ds, gid)
            try:
                self._index.stage(conn, gen, seq, batch, (base, rows_at), (chunk_base, chunks_at))
            except pg_errors.UndefinedTable:  # a rebuild dropped it since
                raise dropped_generation(gid) from None
            row = conn.execute(
                "UPDATE ingests SET rows_done = %s, chunks_done = %s, events_done = %s "
                f"WHERE id = %s RETURNING {_STATE}",
                (rows_at + len(batch.rows), chunks_at + len(batch.chunks), events, ingest_id),
            ).fetchone()
            assert row is not None
            return _state(row)

        return self._pg.write(stage)

    def publish_ingest(self, ingest_id: UUID, audit: Sequence[AuditEntry] = ()) -> DocumentRecord:
        """See `DocumentStore.publish_ingest`."""

        def publish(conn: Conn) -> DocumentRecord:
            found = _ingest(conn, ingest_id)
            gid, seq, base, rows = found[1:5]
            ds, version, doc_id, mid_key, created_at, size, blob = found[9:]
            record = DocumentRecord(seq, doc_id, ds, mid_key, version, created_at, size, b"", blob)
            if not check_publish(ingest_id, found):
                return record
            # Under the seq lock no rebuild swaps generations: the document is published
            # into one that queries read, or not at all (a rebuild swapped the one its rows
            # were reserved in away: the ingest is begun again, in the new one).
            lock_datastores(conn, [ds])
            gen = self._generation(conn, ds, gid)
            if not gen.in_alias:
                raise dropped_generation(gid)
            try:
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO documents (datastore_id, seq, id, mid_key, schema_version, "
                        "created_at, size, body, blob) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                        "'', %s)",
                        (ds, seq, doc_id, mid_key, version, created_at, size, blob),
                    )
            except pg_errors.UniqueViolation:
                raise AlreadyExistsError(f"document {doc_id} already exists") from None
            self._index.publish(conn, gen, seq, base, rows)
            conn.execute("UPDATE ingests SET state = 'published' WHERE id = %s", (ingest_id,))
            append_audit(conn, audit)
            return record

        return self._pg.write(publish)

    def discard_ingest(self, ingest_id: UUID) -> None:
        """See `DocumentStore.discard_ingest`."""

        def discard(conn: Conn) -> None:
            try:
                found = _ingest(conn, ingest_id)
            except NotFoundError:
                return
            state, gid, _seq, base, rows, chunk_base, chunks = found[:7]
            if state != "staging":
                return
            self._index.discard(conn, gid, (base, rows), (chunk_base, chunks))
            conn.execute("UPDATE ingests SET state = 'discarded' WHERE id = %s", (ingest_id,))

        self._pg.write(discard)

    def get_ingest(self, ingest_id: UUID) -> IngestState:
        """See `DocumentStore.get_ingest`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {_STATE} FROM ingests WHERE id = %s", (ingest_id,)
            ).fetchone()
        )
        if row is None:
            raise NotFoundError(f"ingest {ingest_id} does not exist")
        return _state(row)
