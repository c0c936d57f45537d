"""Documents on PostgreSQL: immutable versions, numbered in write order, sharded by DataStore.

``documents`` is partitioned by ``HASH (datastore_id)``: every query of the port that names a
DataStore reads one partition, and a DataStore's documents never span partitions (the unit
a later split across servers would move). Its primary key is ``(datastore_id, seq)``. A
lookup by DocumentID alone goes through ``document_ids`` (one row per document, filled by a
statement-level trigger on ``documents``, so every writer of documents keeps it; partitioned
by ``HASH (id)``), which also makes DocumentIDs unique across partitions.

Sequence numbers come from the one sequence ``document_seq``, always drawn (`draw_seqs`,
`next_seq`) under a per-DataStore advisory lock held until commit, so within a
DataStore a higher seq is never committed before a lower one (readers paging by seq never
skip a document), as with SQLite's single writer. Across DataStores transactions run in
parallel, so the numbers of one transaction are increasing but need not be consecutive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Final, LiteralString
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors

from reeldb.errors import AlreadyExistsError, NotFoundError, ReelError
from reeldb.index.rows import Column, DocumentRows
from reeldb.store._common import accept_batches, missing_datastore
from reeldb.store.base import DocumentBatch, DocumentRecord
from reeldb.store.postgres._base import PostgresBase, append_audit

__all__ = [
    "DDL",
    "DOCUMENT_COLUMNS",
    "PostgresDocuments",
    "document_record",
    "lock_datastores",
    "draw_seqs",
    "next_seq",
]

PARTITIONS: Final = 8
"""Hash partitions of ``documents`` (by DataStore) and of ``document_ids`` (by id)."""

DDL: Final[tuple[str, ...]] = (
    "CREATE SEQUENCE document_seq AS BIGINT",
    """CREATE TABLE documents (
        datastore_id BIGINT NOT NULL REFERENCES datastores (id),
        seq BIGINT NOT NULL,
        id UUID NOT NULL,
        mid_key TEXT NOT NULL,
        schema_version BIGINT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        size BIGINT NOT NULL,
        body BYTEA NOT NULL,
        blob UUID,
        PRIMARY KEY (datastore_id, seq)
    ) PARTITION BY HASH (datastore_id)""",
    *(
        f"CREATE TABLE documents_p{r} PARTITION OF documents "
        f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {r})"
        for r in range(PARTITIONS)
    ),
    "CREATE INDEX documents_by_mid ON documents (datastore_id, mid_key, seq)",
    # A document written from a blob keeps its body there (body is empty).
    "CREATE INDEX documents_by_blob ON documents (blob) WHERE blob IS NOT NULL",
    # Where each document lives, by DocumentID (the one key the partitions cannot carry);
    # as large as `documents`, so partitioned too, by its own key.
    """CREATE TABLE document_ids (
        id UUID PRIMARY KEY,
        datastore_id BIGINT NOT NULL,
        seq BIGINT NOT NULL
    ) PARTITION BY HASH (id)""",
    *(
        f"CREATE TABLE document_ids_p{r} PARTITION OF document_ids "
        f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {r})"
        for r in range(PARTITIONS)
    ),
    """CREATE FUNCTION documents_record_ids() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO document_ids (id, datastore_id, seq)
            SELECT id, datastore_id, seq FROM inserted;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER documents_record_ids AFTER INSERT ON documents "
    "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
    "EXECUTE FUNCTION documents_record_ids()",
)
"""Tables of this part, created by migration 0001_initial (in order)."""

"""First key of the per-DataStore advisory lock taken before a seq is allocated."""
DOCUMENT_COLUMNS: Final = "seq, id, datastore_id, mid_key, schema_version, created_at, size, blob"
_ITER_BATCH: Final = 256
"""Documents read per transaction by `PostgresDocuments.iter_documents`."""
_COPY: Final = (
    "COPY documents (datastore_id, seq, id, mid_key, schema_version, created_at, size, body) "
    "FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES: Final = (
    "bigint",
    "bigint",
    "uuid",
    "text",
    "bigint",
    "timestamptz",
    "bigint",
    "bytea",
)


def _copy_documents(
    conn: psycopg.Connection[Any], batch: DocumentBatch, seqs: Sequence[int]
) -> None:
    """Insert a batch's documents with binary COPY (many times faster than INSERT)."""
    with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
        copy.set_types(list(_COPY_TYPES))
        for seq, doc in zip(seqs, batch.documents, strict=True):
            copy.write_row(
                (
                    batch.datastore_id,
                    seq,
                    doc.id,
                    doc.mid_key,
                    batch.schema_version,
                    doc.created_at,
                    len(doc.body),
                    doc.body,
                )
            )


def _latest_seqs(
    conn: psycopg.Connection[Any], datastore_id: int, keys: Sequence[str]
) -> dict[str, int]:
    rows = conn.execute(
        "SELECT mid_key, max(seq) FROM documents WHERE datastore_id = %s AND mid_key = ANY(%s) "
        "GROUP BY mid_key",
        (datastore_id, list(keys)),
    ).fetchall()
    return {key: int(seq) for key, seq in rows}


def lock_datastores(conn: psycopg.Connection[Any], datastore_ids: Iterable[int]) -> None:
    """Take the seq locks of DataStores until the caller's transaction ends.

    The lock of a DataStore is ``pg_advisory_xact_lock(<oid of document_seq>, id)``: advisory
    locks belong to the whole database, and the sequence's oid tells apart reeldbs in
    different schemas of one database. They are taken in increasing id order (one statement),
    so two transactions locking the same DataStores cannot deadlock. Whoever numbers a
    DataStore's documents, or must keep new ones out while it works (a schema move, an index
    swap), takes it.

    Args:
        conn: A connection inside the caller's write transaction.
        datastore_ids: The DataStores (repeats are fine).
    """
    conn.execute(
        "SELECT pg_advisory_xact_lock('document_seq'::regclass::oid::integer, id) "
        "FROM unnest(%s::integer[]) AS id",
        (sorted(set(datastore_ids)),),
    )


def draw_seqs(conn: psycopg.Connection[Any], count: int) -> list[int]:
    """``count`` document sequence numbers, increasing; the caller holds the seq locks.

    The numbers come from the global sequence ``document_seq``: they increase but need not be
    consecutive (other DataStores draw from it concurrently; a rolled-back transaction leaves
    a gap). Taken under the DataStore's lock (`lock_datastores`) and held until commit, they
    commit in their order within the DataStore.

    Args:
        conn: A connection inside the caller's write transaction.
        count: How many numbers.

    Returns:
        The numbers, in increasing order.
    """
    if count <= 0:
        return []
    rows = conn.execute(
        "SELECT nextval('document_seq') FROM generate_series(1, %s)", (count,)
    ).fetchall()
    return sorted(int(row[0]) for row in rows)


def next_seq(conn: psycopg.Connection[Any], datastore_id: int) -> int:
    """Lock a DataStore (`lock_datastores`) and draw one document sequence number for it.

    Args:
        conn: A connection inside the caller's write transaction.
        datastore_id: The DataStore the document belongs to.

    Returns:
        A number greater than every seq of the DataStore committed so far.
    """
    lock_datastores(conn, [datastore_id])
    return draw_seqs(conn, 1)[0]


def document_record(row: Sequence[Any], body: bytes = b"") -> DocumentRecord:
    """A `DocumentRecord` from a row of `DOCUMENT_COLUMNS` (and the body, if read)."""
    return DocumentRecord(
        seq=row[0],
        id=row[1],
        datastore_id=row[2],
        mid_key=row[3],
        schema_version=row[4],
        created_at=row[5],
        size=row[6],
        body=body,
        blob=row[7],
    )


class PostgresDocuments(PostgresBase):
    """The document half of `reeldb.store.base.DocumentStore` on PostgreSQL."""

    def put_document_batches(self, batches: Sequence[DocumentBatch]) -> list[list[int] | ReelError]:
        """See `DocumentStore.put_document_batches`."""
        ids = sorted({batch.datastore_id for batch in batches})

        def write(conn: psycopg.Connection[Any]) -> list[list[int] | ReelError]:
            # The seq locks before the versions: a schema move takes them (a fair queue)
            # before it checks new documents, so these commit before its check, or wait for
            # its commit and then read the new version (READ COMMITTED: a new snapshot).
            lock_datastores(conn, ids)
            versions = dict(
                conn.execute(
                    "SELECT id, schema_version FROM datastores WHERE id = ANY(%s)", (ids,)
                ).fetchall()
            )
            results, accepted = accept_batches(
                batches, versions, lambda ds, keys: _latest_seqs(conn, ds, keys)
            )
            if not accepted:
                return results
            # The seq locks are held since the start of the transaction.
            seqs = iter(draw_seqs(conn, sum(len(batches[i].documents) for i in accepted)))
            to_index: dict[tuple[int, tuple[Column, ...]], list[tuple[int, DocumentRows]]] = {}
            persisted: list[int] = []
            for index in accepted:
                batch = batches[index]
                numbers = [next(seqs) for _ in batch.documents]
                if numbers:
                    try:
                        with conn.transaction():  # a SAVEPOINT: this batch all or none
                            _copy_documents(conn, batch, numbers)
                    except pg_errors.UniqueViolation as exc:
                        results[index] = AlreadyExistsError(
                            f"a document of the write already exists: {_detail(exc)}"
                        )
                        continue
                results[index] = numbers
                persisted.append(index)
                if batch.index:
                    key = (batch.datastore_id, tuple(batch.columns))
                    to_index.setdefault(key, []).extend(zip(numbers, batch.index, strict=True))
            # The documents of every batch of a DataStore (cut with the same columns) are
            # indexed together: a group commit of small writes is a few statements.
            for (datastore_id, columns), docs in to_index.items():
                self._index.add(conn, datastore_id, columns, docs)
            append_audit(conn, [entry for index in persisted for entry in batches[index].audit])
            return results

        if not batches:
            return []
        return self._pg.write(write)

    def get_document(self, document_id: UUID) -> DocumentRecord:
        """See `DocumentStore.get_document`."""
        return self._document_by_id(document_id, body=True)

    def locate_document(self, document_id: UUID) -> DocumentRecord:
        """See `DocumentStore.locate_document`."""
        return self._document_by_id(document_id, body=False)

    def _document_by_id(self, document_id: UUID, *, body: bool) -> DocumentRecord:
        """A document by its id (with its body, or without: ``b""``)."""
        columns = f"{DOCUMENT_COLUMNS}, body" if body else DOCUMENT_COLUMNS
        row = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {columns} FROM documents WHERE (datastore_id, seq) = "
                "(SELECT datastore_id, seq FROM document_ids WHERE id = %s)",
                (document_id,),
            ).fetchone()
        )
        if row is None:
            raise NotFoundError(f"document {document_id} does not exist")
        return document_record(row, row[8]) if body else document_record(row)

    def latest_document(self, datastore_id: int, mid_key: str) -> DocumentRecord:
        """See `DocumentStore.latest_document`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {DOCUMENT_COLUMNS}, body FROM documents WHERE datastore_id = %s "
                "AND mid_key = %s ORDER BY seq DESC LIMIT 1",
                (datastore_id, mid_key),
            ).fetchone()
        )
        if row is None:
            raise NotFoundError(f"no document for MID {mid_key}")
        return document_record(row, row[8])

    def list_documents(
        self, datastore_id: int, mid_key: str, *, limit: int, before_seq: int | None
    ) -> list[DocumentRecord]:
        """See `DocumentStore.list_documents`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE datastore_id = %s "
                "AND mid_key = %s AND seq < %s ORDER BY seq DESC LIMIT %s",
                (datastore_id, mid_key, before_seq if before_seq is not None else 2**62, limit),
            ).fetchall()
        )
        return [document_record(row) for row in rows]

    def iter_documents(
        self, datastore_id: int, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> Iterator[DocumentRecord]:
        """See `DocumentStore.iter_documents`."""
        # Pages by seq, each read in its own short transaction: a slow consumer holds no
        # snapshot (nor a connection) open between pages.
        upto = upto_seq if upto_seq is not None else 2**62
        cursor = after_seq
        while True:
            rows = self._pg.read(partial(_page, datastore_id=datastore_id, after=cursor, upto=upto))
            for row in rows:
                yield document_record(row, row[8])
            if len(rows) < _ITER_BATCH:
                return
            cursor = rows[-1][0]

    def max_seq(self, datastore_id: int) -> int:
        """See `DocumentStore.max_seq`."""
        return self._pg.read(
            partial(
                _count,
                sql="SELECT coalesce(max(seq), 0) FROM documents WHERE datastore_id = %s",
                datastore_id=datastore_id,
            )
        )

    def import_documents(self, datastore_id: int, records: Sequence[DocumentRecord]) -> int:
        """See `DocumentStore.import_documents`."""

        def write(conn: psycopg.Connection[Any]) -> int:
            lock_datastores(conn, [datastore_id])
            found = conn.execute("SELECT 1 FROM datastores WHERE id = %s", (datastore_id,))
            if found.fetchone() is None:
                raise missing_datastore(datastore_id)
            stored = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM document_ids WHERE id = ANY(%s)", ([r.id for r in records],)
                )
            }
            new = [r for r in records if r.id not in stored]
            if not new:
                return 0
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO documents (datastore_id, seq, id, mid_key, schema_version, "
                    "created_at, size, body, blob) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            datastore_id,
                            seq,
                            r.id,
                            r.mid_key,
                            r.schema_version,
                            r.created_at,
                            r.size,
                            r.body,
                            r.blob,
                        )
                        for seq, r in zip(draw_seqs(conn, len(new)), new, strict=True)
                    ],
                )
            return len(new)

        if not records:
            return 0
        return self._pg.write(write)

    def count_documents(self, datastore_id: int) -> int:
        """See `DocumentStore.count_documents`."""
        return self._pg.read(
            partial(
                _count,
                sql="SELECT count(*) FROM documents WHERE datastore_id = %s",
                datastore_id=datastore_id,
            )
        )


def _page(
    conn: psycopg.Connection[Any], *, datastore_id: int, after: int, upto: int
) -> list[tuple[Any, ...]]:
    """One page of `PostgresDocuments.iter_documents`: documents after a seq, with bodies."""
    return conn.execute(
        f"SELECT {DOCUMENT_COLUMNS}, body FROM documents WHERE datastore_id = %s "
        "AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
        (datastore_id, after, upto, _ITER_BATCH),
    ).fetchall()


def _count(conn: psycopg.Connection[Any], *, sql: LiteralString, datastore_id: int) -> int:
    """A number about one DataStore's documents (``sql`` selects one integer)."""
    row = conn.execute(sql, (datastore_id,)).fetchone()
    assert row is not None  # an aggregate always has a row
    return int(row[0])


def _detail(exc: psycopg.Error) -> str:
    """The server's detail of a constraint violation (``Key (id)=(...) already exists.``)."""
    return exc.diag.message_detail or exc.diag.message_primary or type(exc).__name__
