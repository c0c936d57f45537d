"""Documents streamed from blobs, on SQLite: reserved, staged in batches, published at once.

A streamed document's rows are written over many transactions, so that writers of small
documents are never held up for long. Until `publish_ingest` the document has no row in
``documents``, and every query joins that table (or reads ``index_docs``, written in the
same transaction): staged rows are invisible. Each batch commits with its checkpoint
(``rows_done``), so a resumed ingest stages each row exactly once.

A one-pass write (`reeldb.ingest`) begins its ingest before its size is known
(`begin_unsized_ingest`) and fixes the counts at the end (`size_ingest`): a large document
in an index generation of its own (no ids to reserve), any other in the shared generation,
which reserves as many ids as the blob's size allows rows (`unsized_bound`). Staging
commits are not synced to disk (`_unsynced`); the commits a reader or client may see are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar
from uuid import UUID

from reeldb import _json
from reeldb.auth.model import AuditEntry
from reeldb.errors import ConflictError, NotFoundError
from reeldb.index.model import Generation
from reeldb.index.rows import DocumentRows
from reeldb.index.sqlite import SQLiteIndex, build_b_tree
from reeldb.model.datastore import DataStoreRef
from reeldb.model.requests import FINAL_STATES, WriteRequest, WriteState
from reeldb.store._common import (
    check_publish,
    check_schema_version,
    check_stage,
    dropped_generation,
    find_generation,
    missing_ingest,
)
from reeldb.store.base import BlobPart, BlobRecord, DocumentRecord, IngestStart, IngestState
from reeldb.store.sqlite._connection import SQLiteConnections, utc_text

__all__ = ["UNSIZED", "SQLiteIngest"]

_T = TypeVar("_T")

UNSIZED: Final = 1 << 62
"""The row and chunk counts of an ingest begun before its size is known (`size_ingest`)."""

_STATE: Final = "id, document_id, doc_seq, rows, chunks, rows_done, chunks_done, events_done, state"
_BLOB: Final = "id, namespace, declared_size, size, sha256, state, created_at, created_by"


def unsized_bound(size: int) -> int:
    """The most rows, and chunks, that a document of ``size`` bytes of JSON can cut into.

    A row stands for a node of the document (the asset, a track, a component, an event, a
    region); each node but the asset is an object in a list (at least ``{}`` and a comma),
    and a chunk holds at least one event. An ingest begun unsized in a shared generation
    reserves this many ids: ids are 64-bit, so those it leaves unused cost nothing.
    """
    return size // 2 + 2


def _state(row: Sequence[Any]) -> IngestState:
    seq, rows, chunks, rows_done, chunks_done, events_done, state = row[2:9]
    return IngestState(
        UUID(bytes=row[0]),
        UUID(bytes=row[1]),
        seq,
        rows,
        chunks,
        rows_done,
        chunks_done,
        events_done,
        state,
    )


def _blob(row: Sequence[Any]) -> BlobRecord:
    return BlobRecord(
        UUID(bytes=row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        datetime.fromisoformat(row[6]),
        row[7],
    )


_REQUEST: Final = (
    "id, datastore, mid, blob, state, document_id, error, idempotency_key, webhook, "
    "created_by, created_at, updated_at, steps"
)


def _request(row: Sequence[Any]) -> WriteRequest:
    return WriteRequest(
        UUID(bytes=row[0]),
        DataStoreRef.parse(row[1]),
        _json.loads(row[2]),
        UUID(bytes=row[3]),
        WriteState(row[4]),
        None if row[5] is None else UUID(bytes=row[5]),
        None if row[6] is None else _json.loads(row[6]),
        row[7],
        row[8],
        row[9],
        datetime.fromisoformat(row[10]),
        datetime.fromisoformat(row[11]),
        _json.loads(row[12]),
    )


class SQLiteIngest:
    """The streamed-document and blob-record half of `reeldb.store.base.DocumentStore`."""

    _db: SQLiteConnections
    _index: SQLiteIndex

    _append_audit: Callable[[sqlite3.Connection, Sequence[AuditEntry]], None]  # SQLiteStore's

    # -- ingests ---------------------------------------------------------------------------

    def begin_ingest(self, start: IngestStart) -> IngestState:
        """See `DocumentStore.begin_ingest`."""
        return self._begin_ingest(start)

    def begin_unsized_ingest(self, start: IngestStart, *, alone: bool) -> IngestState:
        """Begin an ingest whose size is not known yet (a one-pass write; idempotent).

        ``start.rows`` and ``start.chunks`` are ignored: the ingest takes rows until
        `size_ingest` fixes its counts. ``alone``, its rows go to an index generation of
        their own (`SQLiteIndex.reserve`), which needs no ids reserved; else to the shared
        generation, where `unsized_bound` ids of ``start.size`` are reserved (a sentinel
        row at the end of the range), and a batch beyond them is refused.

        Args:
            start: The document (its counts unused).
            alone: In a generation of its own (a large document).

        Returns:
            The ingest's state (an existing ingest's, unchanged, if it was begun before).

        Raises:
            NotFoundError: No such DataStore.
            StaleSchemaError: The DataStore moved to another schema version.
        """
        return self._begin_ingest(start, unsized=True, alone=alone)

    def _begin_ingest(
        self, start: IngestStart, *, unsized: bool = False, alone: bool | None = None
    ) -> IngestState:
        rows, chunks = (UNSIZED, UNSIZED) if unsized else (start.rows, start.chunks)
        reserve = (rows, chunks) if alone or not unsized else (unsized_bound(start.size),) * 2
        with self._db.write(changes_access=False) as conn:
            row = conn.execute(
                f"SELECT {_STATE} FROM ingests WHERE id = ?", (start.id.bytes,)
            ).fetchone()
            if row is not None:
                return _state(row)
            found = conn.execute(
                "SELECT schema_version FROM datastores WHERE id = ?", (start.datastore_id,)
            ).fetchone()
            check_schema_version(
                start.datastore_id, None if found is None else found[0], start.schema_version
            )
            seq = self._reserve_seq(conn)
            gen, base, chunk_base = self._index.reserve(
                conn, start.datastore_id, start.columns, seq, *reserve, alone=alone
            )
            conn.execute(
                "INSERT INTO ingests (id, datastore_id, schema_version, document_id, doc_seq, "
                "mid_key, created_at, blob, size, generation_id, row_base, rows, chunk_base, "
                "chunks, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'staging')",
                (
                    start.id.bytes,
                    start.datastore_id,
                    start.schema_version,
                    start.document_id.bytes,
                    seq,
                    start.mid_key,
                    utc_text(start.created_at),
                    start.blob.bytes,
                    start.size,
                    gen.id,
                    base,
                    rows,
                    chunk_base,
                    chunks,
                ),
            )
            return IngestState(start.id, start.document_id, seq, rows, chunks, 0, 0, 0, "staging")

    def size_ingest(
        self, ingest_id: UUID, rows: int, chunks: int, *, restart: bool = False
    ) -> IngestState:
        """Fix the counts of an ingest begun unsized (`begin_unsized_ingest`; idempotent).

        Args:
            ingest_id: The ingest.
            rows: Its rows in all.
            chunks: Its chunks in all.
            restart: Forget what was staged, for a second pass to stage it all: the
                staged rows are discarded and new ones reserved (a new generation of its
                own, or a new range of the shared generation's ids).

        Returns:
            The ingest's state.

        Raises:
            NotFoundError: No such ingest.
            ConflictError: It is not staging, or has more rows staged than ``rows``.
        """
        with self._db.write(changes_access=False) as conn:
            found = self._ingest(conn, ingest_id)
            state, gid, seq, base, _, chunk_base, _, done, chunks_done, ds = found[:10]
            if state != "staging":
                raise ConflictError(f"ingest {ingest_id} is {state}, not staging")
            gen = self._generation(conn, ds, gid)
            reserved = self._reserved(found, gen)
            if restart:
                self._index.discard(conn, gid, (base, reserved[0]), (chunk_base, reserved[1]))
                gen, base, chunk_base = self._index.reserve(
                    conn, ds, gen.columns, seq, rows, chunks, alone=gen.state == "staging" or None
                )
                conn.execute(
                    "UPDATE ingests SET generation_id = ?, row_base = ?, chunk_base = ?, "
                    "rows_done = 0, chunks_done = 0, events_done = 0 WHERE id = ?",
                    (gen.id, base, chunk_base, ingest_id.bytes),
                )
            elif done > rows or chunks_done > chunks:
                raise ConflictError(
                    f"ingest {ingest_id} has {done} rows staged, more than its {rows}"
                )
            elif reserved[0] != UNSIZED and found[4] == UNSIZED:
                self._index.resize(
                    conn, gen, seq, (base, reserved[0], rows), (chunk_base, reserved[1], chunks)
                )
            conn.execute(
                "UPDATE ingests SET rows = ?, chunks = ? WHERE id = ?",
                (rows, chunks, ingest_id.bytes),
            )
            row = conn.execute(
                f"SELECT {_STATE} FROM ingests WHERE id = ?", (ingest_id.bytes,)
            ).fetchone()
        return _state(row)

    @staticmethod
    def _reserved(found: Sequence[Any], gen: Generation) -> tuple[int, int]:
        """The rows and chunks an ingest has ids for (`_ingest`'s row, its generation).

        An ingest begun unsized in the shared generation has `unsized_bound` of its size.
        """
        rows, chunks = found[4], found[6]
        if rows == UNSIZED and gen.state != "staging":
            return (unsized_bound(found[14]),) * 2
        return rows, chunks

    @staticmethod
    def _reserve_seq(conn: sqlite3.Connection) -> int:
        """The next document sequence number, taken now (AUTOINCREMENT never reuses it)."""
        row = conn.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(seq), 0) "
            "FROM documents)) + 1 WHERE name = 'documents' RETURNING seq"
        ).fetchone()
        if row is not None:
            return int(row[0])
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM documents").fetchone()[0]
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('documents', ?)", (last + 1,))
        return int(last) + 1

    def _ingest(self, conn: sqlite3.Connection, ingest_id: UUID) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT state, generation_id, doc_seq, row_base, rows, chunk_base, chunks, "
            "rows_done, chunks_done, datastore_id, schema_version, document_id, mid_key, "
            "created_at, size, blob FROM ingests WHERE id = ?",
            (ingest_id.bytes,),
        ).fetchone()
        if row is None:
            raise missing_ingest(ingest_id)
        return tuple(row)

    def _generation(self, conn: sqlite3.Connection, datastore_id: int, gid: int) -> Generation:
        return find_generation(self._index.generations(conn, datastore_id), gid)

    def stage_ingest(
        self, ingest_id: UUID, batch: DocumentRows, *, rows_at: int, chunks_at: int, events: int
    ) -> IngestState:
        """See `DocumentStore.stage_ingest`.

        The batch's commit is not synced to disk (`_unsynced`): staged rows are invisible.
        """

        def stage(conn: sqlite3.Connection) -> IngestState:
            found = self._ingest(conn, ingest_id)
            _, gid, seq, base, _, chunk_base, _, _, _, ds = found[:10]
            gen = self._generation(conn, ds, gid)
            rows, chunks = self._reserved(found, gen)  # the counts a batch must stay within
            checked = (*found[:4], rows, found[5], chunks, *found[7:])
            check_stage(ingest_id, checked, batch, rows_at, chunks_at)
            self._index.stage(conn, gen, seq, batch, (base, rows_at), (chunk_base, chunks_at))
            conn.execute(
                "UPDATE ingests SET rows_done = ?, chunks_done = ?, events_done = ? WHERE id = ?",
                (
                    rows_at + len(batch.rows),
                    chunks_at + len(batch.chunks),
                    events,
                    ingest_id.bytes,
                ),
            )
            row = conn.execute(
                f"SELECT {_STATE} FROM ingests WHERE id = ?", (ingest_id.bytes,)
            ).fetchone()
            return _state(row)

        return self._unsynced(stage, bulk=len(batch.rows) >= 20_000)

    def publish_ingest(self, ingest_id: UUID, audit: Sequence[AuditEntry] = ()) -> DocumentRecord:
        """See `DocumentStore.publish_ingest`.

        A document staged into a generation of its own gets that generation's B-trees
        first, each in a transaction of its own (other writers wait for one at a time; the
        generation is still invisible), then joins the alias as it becomes visible.
        """
        alone = self._build_staged_b_trees(ingest_id)
        with self._db.write(changes_access=False, bulk=alone) as conn:
            found = self._ingest(conn, ingest_id)
            gid, seq, base, rows = found[1:5]
            ds, version, doc_id, mid_key, created_at, size, blob = found[9:]
            record = DocumentRecord(
                seq,
                UUID(bytes=doc_id),
                ds,
                mid_key,
                version,
                datetime.fromisoformat(created_at),
                size,
                b"",
                UUID(bytes=blob),
            )
            if not check_publish(ingest_id, found):
                return record
            gen = self._generation(conn, ds, gid)
            if not gen.in_alias and gen.state != "staging":
                raise dropped_generation(gid)  # swapped away by a rebuild, not yet dropped
            conn.execute(
                "INSERT INTO documents (seq, id, datastore_id, mid_key, schema_version, "
                "created_at, size, body, blob) VALUES (?, ?, ?, ?, ?, ?, ?, x'', ?)",
                (seq, doc_id, ds, mid_key, version, created_at, size, blob),
            )
            self._index.publish(conn, gen, seq, base, rows)
            conn.execute("UPDATE ingests SET state = 'published' WHERE id = ?", (ingest_id.bytes,))
            if audit:
                self._append_audit(conn, audit)
        return record

    def _build_staged_b_trees(self, ingest_id: UUID) -> bool:
        """Build the B-trees of an ingest's generation of its own; whether it has one."""
        with self._db.read(snapshot=False) as conn:
            found = conn.execute(
                "SELECT g.id, g.datastore_id FROM ingests i "
                "JOIN index_generations g ON g.id = i.generation_id "
                "WHERE i.id = ? AND i.state = 'staging' AND g.state = 'staging' "
                "AND i.rows_done = i.rows AND i.chunks_done = i.chunks",
                (ingest_id.bytes,),
            ).fetchone()
            if found is None:
                return False
            gen = self._generation(conn, found[1], found[0])

        def build(statement: str) -> Callable[[sqlite3.Connection], bool]:
            def run(conn: sqlite3.Connection) -> bool:
                still = conn.execute(
                    "SELECT 1 FROM index_generations WHERE id = ? AND state = 'staging'",
                    (gen.id,),
                ).fetchone()
                if still is None:  # dropped by a rebuild: publishing will say so
                    return False
                build_b_tree(conn, statement)
                return True

            return run

        return all(
            self._unsynced(build(statement), bulk=True)
            for statement in self._index.staged_b_trees(gen)
        )

    def _unsynced(self, fn: Callable[[sqlite3.Connection], _T], *, bulk: bool) -> _T:
        """``fn`` in a write transaction committed without syncing to disk (a staging step).

        Staged rows and their checkpoint commit together and stay invisible, so a power
        loss that takes some back only makes the write resume from an earlier checkpoint.
        What a reader or a client may see (an ingest's final counts, its publication)
        commits with the configured ``synchronous``, whose sync covers everything
        committed before it. A killed process loses no commit either way (WAL).

        The write lock is held from before the setting changes to after it is restored:
        no other write of this connection commits unsynced.
        """

        def run(writer: sqlite3.Connection) -> _T:
            level = int(writer.execute("PRAGMA synchronous").fetchone()[0])
            if level > 1:
                writer.execute("PRAGMA synchronous = NORMAL")
            try:
                with self._db.write(changes_access=False, bulk=bulk) as conn:
                    return fn(conn)
            finally:
                if level > 1:
                    writer.execute(f"PRAGMA synchronous = {level}")

        return self._db.with_writer(run)

    def discard_ingest(self, ingest_id: UUID) -> None:
        """See `DocumentStore.discard_ingest`."""
        with self._db.write(changes_access=False) as conn:
            try:
                found = self._ingest(conn, ingest_id)
            except NotFoundError:
                return
            state, gid, _seq, base, _, chunk_base, _, _, _, ds = found[:10]
            if state != "staging":
                return
            generations = {g.id: g for g in self._index.generations(conn, ds)}
            if gid in generations:  # else dropped (by a rebuild): nothing is left
                rows, chunks = self._reserved(found, generations[gid])
                self._index.discard(conn, gid, (base, rows), (chunk_base, chunks))
            conn.execute("UPDATE ingests SET state = 'discarded' WHERE id = ?", (ingest_id.bytes,))

    def get_ingest(self, ingest_id: UUID) -> IngestState:
        """See `DocumentStore.get_ingest`."""
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(
                f"SELECT {_STATE} FROM ingests WHERE id = ?", (ingest_id.bytes,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"ingest {ingest_id} does not exist")
        return _state(row)

    # -- blob records ---------------------------------------------------------------------

    def add_blob(self, record: BlobRecord) -> None:
        """See `DocumentStore.add_blob`."""
        with self._db.write(changes_access=False) as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM namespaces WHERE name = ?", (record.namespace,)
                ).fetchone()
                is None
            ):
                raise NotFoundError(f"namespace {record.namespace!r} does not exist")
            conn.execute(
                f"INSERT INTO blobs ({_BLOB}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id.bytes,
                    record.namespace,
                    record.declared_size,
                    record.size,
                    record.sha256,
                    record.state,
                    utc_text(record.created_at),
                    record.created_by,
                ),
            )

    def get_blob(self, blob_id: UUID) -> BlobRecord:
        """See `DocumentStore.get_blob`."""
        with self._db.read(snapshot=False) as conn:
            return self._blob(conn, blob_id)

    @staticmethod
    def _blob(conn: sqlite3.Connection, blob_id: UUID) -> BlobRecord:
        row = conn.execute(f"SELECT {_BLOB} FROM blobs WHERE id = ?", (blob_id.bytes,)).fetchone()
        if row is None:
            raise NotFoundError(f"blob {blob_id} does not exist")
        return _blob(row)

    def blob_stored(self, blob_id: UUID, size: int, sha256: str, at: datetime) -> BlobRecord:
        """See `DocumentStore.blob_stored`."""
        with self._db.write(changes_access=False) as conn:
            conn.execute(
                "UPDATE blobs SET size = ?, sha256 = ?, state = 'stored', stored_at = ? "
                "WHERE id = ? AND state = 'open'",
                (size, sha256, utc_text(at), blob_id.bytes),
            )
            return self._blob(conn, blob_id)

    def claim_blob(self, blob_id: UUID, at: datetime) -> BlobRecord:
        """See `DocumentStore.claim_blob`."""
        with self._db.write(changes_access=False) as conn:
            conn.execute(
                "UPDATE blobs SET state = 'claimed', claimed_at = ? WHERE id = ? "
                "AND state IN ('stored', 'claimed')",
                (utc_text(at), blob_id.bytes),
            )
            return self._blob(conn, blob_id)

    def put_blob_part(self, blob_id: UUID, part: BlobPart) -> UUID | None:
        """See `DocumentStore.put_blob_part`."""
        with self._db.write(changes_access=False) as conn:
            if self._blob(conn, blob_id).state != "open":
                raise ConflictError(f"the upload of blob {blob_id} is complete")
            old = conn.execute(
                "SELECT payload FROM blob_parts WHERE blob = ? AND number = ?",
                (blob_id.bytes, part.number),
            ).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO blob_parts (blob, number, payload, size, sha256) "
                "VALUES (?, ?, ?, ?, ?)",
                (blob_id.bytes, part.number, part.payload.bytes, part.size, part.sha256),
            )
        return None if old is None else UUID(bytes=old[0])

    def blob_parts(self, blob_id: UUID) -> list[BlobPart]:
        """See `DocumentStore.blob_parts`."""
        with self._db.read(snapshot=False) as conn:
            rows = conn.execute(
                "SELECT number, size, sha256, payload FROM blob_parts WHERE blob = ? "
                "ORDER BY number",
                (blob_id.bytes,),
            ).fetchall()
        return [BlobPart(n, size, sha, UUID(bytes=payload)) for n, size, sha, payload in rows]

    def forget_blob_parts(self, blob_id: UUID) -> list[UUID]:
        """See `DocumentStore.forget_blob_parts`."""
        with self._db.write(changes_access=False) as conn:
            rows = conn.execute(
                "DELETE FROM blob_parts WHERE blob = ? RETURNING payload", (blob_id.bytes,)
            ).fetchall()
        return [UUID(bytes=row[0]) for row in rows]

    def collect_blobs(self, before: datetime, limit: int) -> list[UUID]:
        """See `DocumentStore.collect_blobs`."""
        cutoff = utc_text(before)
        with self._db.write(changes_access=False) as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS collected (id BLOB PRIMARY KEY)")
            conn.execute("DELETE FROM collected")
            conn.execute(
                "INSERT INTO collected (id) SELECT b.id FROM blobs b "
                "WHERE b.created_at < ? AND coalesce(b.claimed_at, '') < ? "
                "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.blob = b.id) "
                "AND NOT EXISTS (SELECT 1 FROM ingests i WHERE i.blob = b.id "
                "AND i.state <> 'discarded') LIMIT ?",
                (cutoff, cutoff, limit),
            )
            rows = conn.execute(
                "DELETE FROM blob_parts WHERE blob IN (SELECT id FROM collected) RETURNING payload"
            ).fetchall()
            rows += conn.execute(
                "DELETE FROM blobs WHERE id IN (SELECT id FROM collected) RETURNING id"
            ).fetchall()
        return [UUID(bytes=row[0]) for row in rows]

    # -- write requests -------------------------------------------------------------------

    def add_write_request(self, request: WriteRequest) -> tuple[WriteRequest, bool]:
        """See `DocumentStore.add_write_request`."""
        namespace = request.datastore.namespace
        with self._db.write(changes_access=False) as conn:
            if request.idempotency_key is not None:
                row = conn.execute(
                    f"SELECT {_REQUEST} FROM write_requests WHERE namespace = ? "
                    "AND idempotency_key = ?",
                    (namespace, request.idempotency_key),
                ).fetchone()
                if row is not None:
                    return _request(row), False
            if (
                conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (namespace,)).fetchone()
                is None
            ):
                raise NotFoundError(f"namespace {namespace!r} does not exist")
            conn.execute(
                f"INSERT INTO write_requests (namespace, {_REQUEST}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    namespace,
                    request.id.bytes,
                    str(request.datastore),
                    _json.dumps(request.mid).decode(),
                    request.blob.bytes,
                    request.state.value,
                    None if request.document_id is None else request.document_id.bytes,
                    None if request.error is None else _json.dumps(request.error).decode(),
                    request.idempotency_key,
                    request.webhook,
                    request.created_by,
                    utc_text(request.created_at),
                    utc_text(request.updated_at),
                    _json.dumps(request.steps).decode(),
                ),
            )
        return request, True

    def get_write_request(self, request_id: UUID) -> WriteRequest:
        """See `DocumentStore.get_write_request`."""
        with self._db.read(snapshot=False) as conn:
            return self._write_request(conn, request_id)

    @staticmethod
    def _write_request(conn: sqlite3.Connection, request_id: UUID) -> WriteRequest:
        row = conn.execute(
            f"SELECT {_REQUEST} FROM write_requests WHERE id = ?", (request_id.bytes,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"write request {request_id} does not exist")
        return _request(row)

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
        with self._db.write(changes_access=False) as conn:
            found = self._write_request(conn, request_id)
            if found.state in FINAL_STATES:
                return found
            steps = dict(found.steps)
            if step is not None:
                steps[step[0]] = step[1]
            doc = document_id or found.document_id
            conn.execute(
                "UPDATE write_requests SET state = ?, updated_at = ?, document_id = ?, "
                "error = ?, steps = ? WHERE id = ?",
                (
                    state.value,
                    utc_text(at),
                    None if doc is None else doc.bytes,
                    None if error is None else _json.dumps(error).decode(),
                    _json.dumps(steps).decode(),
                    request_id.bytes,
                ),
            )
            return self._write_request(conn, request_id)

    def list_write_requests(
        self,
        *,
        namespace: str | None = None,
        unfinished: bool = False,
        limit: int = 100,
        before: UUID | None = None,
    ) -> list[WriteRequest]:
        """See `DocumentStore.list_write_requests`."""
        where: list[str] = ["1"]
        args: list[Any] = []
        if namespace is not None:
            where.append("namespace = ?")
            args.append(namespace)
        if unfinished:
            where.append("state NOT IN ('INDEXED', 'FAILED')")
        if before is not None:
            where.append("id < ?")
            args.append(before.bytes)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_REQUEST} FROM write_requests WHERE {' AND '.join(where)} "
                "ORDER BY id DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [_request(row) for row in rows]

    def count_write_requests(self) -> dict[str, int]:
        """See `DocumentStore.count_write_requests`."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM write_requests "
                "WHERE state NOT IN ('INDEXED', 'FAILED') GROUP BY state"
            ).fetchall()
        return {state.value: 0 for state in WriteState if state not in FINAL_STATES} | dict(rows)

    # -- workers ----------------------------------------------------------------------------

    def worker_seen(self, name: str, at: datetime) -> None:
        """See `DocumentStore.worker_seen`."""
        with self._db.write(changes_access=False) as conn:
            conn.execute(
                "INSERT INTO workers (name, seen_at) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET seen_at = excluded.seen_at, taken_over_by = NULL",
                (name, utc_text(at)),
            )

    def worker_gone(self, name: str) -> None:
        """See `DocumentStore.worker_gone`."""
        with self._db.write(changes_access=False) as conn:
            conn.execute("DELETE FROM workers WHERE name = ?", (name,))

    def claim_silent_workers(self, me: str, silent_since: datetime, at: datetime) -> list[str]:
        """See `DocumentStore.claim_silent_workers`."""
        with self._db.write(changes_access=False) as conn:
            rows = conn.execute(
                "UPDATE workers SET seen_at = ?, taken_over_by = ? WHERE seen_at < ? "
                "AND name <> ? RETURNING name",
                (utc_text(at), me, utc_text(silent_since), me),
            ).fetchall()
        return sorted(row[0] for row in rows)
