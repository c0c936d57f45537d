"""Blobs and documents written from them: the use cases behind ``db.blobs`` and streamed writes.

A streamed write runs in four steps, each safe to run again after a crash (the durable
workflow of an asynchronous write calls them one by one):

1. `DocumentIngest.validate`: the first pass over the blob (`reeldb.ingest.plan.scan`);
2. `DocumentIngest.begin`: reserve the document's sequence number and index rows;
3. `DocumentIngest.stage`: the second pass, cutting rows in batches, each committed with
   its checkpoint (a resumed stage skips what was committed);
4. `DocumentIngest.publish`: the document and its index become visible at once.

On SQLite a write is made in one pass: step 1 also begins the ingest and cuts and stages
the rows as it validates (a large blob, `OWN_GENERATION_BYTES`, into an index generation of
its own); steps 2 and 3 then find their work done.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable
from uuid import UUID

from uuid_utils.compat import uuid4, uuid7

from reeldb._ids import parse_uuid
from reeldb.blobs import BlobStore, load_blobs
from reeldb.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    ReelError,
    StaleSchemaError,
    ValidationError,
)
from reeldb.index.rows import Column, DocumentRows, RowCutter
from reeldb.ingest import stream
from reeldb.ingest.plan import Heads, IngestPlan, LevelValidators, Scanner, scan
from reeldb.model.datastore import DataStoreRef
from reeldb.model.mid import check_mid, mid_key
from reeldb.schema.model import SchemaKind, SchemaRef, SchemaVersion
from reeldb.store.base import (
    BlobPart,
    BlobRecord,
    DocumentRecord,
    DocumentStore,
    IngestStart,
    IngestState,
)
from reeldb.store.sqlite._ingest import UNSIZED

if TYPE_CHECKING:
    from reeldb.auth.model import AuditEntry
    from reeldb.database import Database
    from reeldb.model.document import Document

__all__ = [
    "BATCH_ROWS",
    "MAX_PARTS",
    "OWN_GENERATION_BYTES",
    "Blobs",
    "DocumentIngest",
    "ValidatedBlob",
]

BATCH_ROWS: Final = 50_000
"""Index rows staged per transaction: other writers wait at most one batch's commit."""

OWN_GENERATION_BYTES: Final = 64 * 1024 * 1024
"""A blob this large (or larger), written in one pass, is staged into an index generation of
its own, which gets its B-trees once full (`reeldb.index.sqlite.SQLiteIndex.reserve`)."""

MAX_PARTS: Final = 10_000
"""Parts of a blob uploaded piece by piece, at most (as S3's multipart uploads)."""

Progress = Callable[[int, int], None]


@runtime_checkable
class _UnsizedIngests(Protocol):
    """A store that stages a document before its size is known (a one-pass write)."""

    def begin_unsized_ingest(self, start: IngestStart, *, alone: bool) -> IngestState:
        """Begin an ingest, its counts open (``alone``: in a generation of its own)."""
        ...

    def size_ingest(
        self, ingest_id: UUID, rows: int, chunks: int, *, restart: bool = False
    ) -> IngestState:
        """Fix its counts (``restart``: forget its staged rows)."""
        ...


class Blobs:
    """Large payloads, uploaded first and then referenced by writes (``db.blobs``).

    A blob belongs to the namespace it was announced in: any other namespace is told it
    does not exist.
    """

    def __init__(self, db: Database, data_dir: Path | None) -> None:
        self._db = db
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._store: BlobStore | None = None

    @property
    def store(self) -> BlobStore:
        """The blob store (opened on first use, from the ``blobs`` and ``blob_key`` settings)."""
        with self._lock:
            if self._store is None:
                self._store = load_blobs(self._db.settings, self._data_dir)
            return self._store

    def close(self) -> None:
        """Close the blob store, if it was opened."""
        with self._lock:
            if self._store is not None:
                self._store.close()

    def create(
        self, namespace: str, *, size: int | None = None, created_by: str = "user:local"
    ) -> BlobRecord:
        """Announce a blob: its id, to upload to with `upload`.

        Args:
            namespace: The namespace it belongs to.
            size: The payload's size in bytes, if known: a longer or shorter upload fails.
            created_by: The principal announcing it.

        Returns:
            The record (``open``).

        Raises:
            NotFoundError: No such namespace.
            ValidationError: ``size`` is not a non-negative integer.
        """
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValidationError(f"size must be a number of bytes (0 or more), got {size!r}")
        record = BlobRecord(
            uuid4(), namespace, size, None, None, "open", datetime.now(UTC), created_by
        )
        self._db.store.add_blob(record)
        return record

    def get(self, blob_id: UUID | str, *, namespace: str) -> BlobRecord:
        """An announced blob of a namespace.

        Args:
            blob_id: The blob id.
            namespace: The namespace asking.

        Returns:
            The record.

        Raises:
            ValidationError: The id is not a UUID.
            NotFoundError: No such blob in this namespace.
        """
        key = parse_uuid(blob_id, "blob id")
        try:
            record = self._db.store.get_blob(key)
        except NotFoundError:
            record = None
        if record is None or record.namespace != namespace:
            raise NotFoundError(f"blob {key} does not exist in namespace {namespace}")
        return record

    def upload(self, blob_id: UUID | str, chunks: Iterable[bytes], *, namespace: str) -> BlobRecord:
        """Store an announced blob's payload, streamed; atomically (all or nothing).

        Args:
            blob_id: The blob id, from `create`.
            chunks: The payload in pieces of any size.
            namespace: The namespace it belongs to.

        Returns:
            The record (``stored``), with size and SHA-256.

        Raises:
            NotFoundError: No such blob in this namespace.
            AlreadyExistsError: It was uploaded already (blobs are immutable).
            ValidationError: The payload is longer or shorter than the size announced;
                nothing is stored and the blob can be uploaded again.
        """
        record = self.get(blob_id, namespace=namespace)
        if record.state != "open":
            raise AlreadyExistsError(f"blob {record.id} was uploaded already")
        declared = record.declared_size

        def counted() -> Iterator[bytes]:
            total = 0
            for chunk in chunks:
                total += len(chunk)
                if declared is not None and total > declared:
                    raise ValidationError(
                        f"the upload is longer than the {declared} bytes announced for blob "
                        f"{record.id}; nothing was stored"
                    )
                yield chunk
            if declared is not None and total < declared:
                raise ValidationError(
                    f"the upload has {total} bytes, not the {declared} announced for blob "
                    f"{record.id}; nothing was stored"
                )

        store = self.store
        try:
            info = store.put(record.id, counted())
        except AlreadyExistsError:
            raise AlreadyExistsError(f"blob {record.id} was uploaded already") from None
        return self._db.store.blob_stored(record.id, info.size, info.sha256, info.created_at)

    def upload_part(
        self, blob_id: UUID | str, number: int, chunks: Iterable[bytes], *, namespace: str
    ) -> BlobPart:
        """Store one part of an announced blob (a resumable upload, piece by piece).

        A part uploaded again replaces the earlier one. `complete` joins the parts.

        Args:
            blob_id: The blob id, from `create`.
            number: The part's position, from 1 to `MAX_PARTS`.
            chunks: The part's bytes.
            namespace: The namespace it belongs to.

        Returns:
            The part, with its size and SHA-256 (compare them to resume an upload).

        Raises:
            NotFoundError: No such blob in this namespace.
            ValidationError: A bad part number.
            AlreadyExistsError: The blob's upload is complete.
        """
        record = self.get(blob_id, namespace=namespace)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_PARTS:
            raise ValidationError(f"a part number is from 1 to {MAX_PARTS}, not {number!r}")
        if record.state != "open":
            raise AlreadyExistsError(f"blob {record.id} was uploaded already")
        store = self.store
        payload = uuid4()
        info = store.put(payload, chunks)
        try:
            replaced = self._db.store.put_blob_part(
                record.id, BlobPart(number, info.size, info.sha256, payload)
            )
        except ConflictError:
            store.delete(payload)
            raise AlreadyExistsError(f"blob {record.id} was uploaded already") from None
        if replaced is not None:
            store.delete(replaced)
        return BlobPart(number, info.size, info.sha256, payload)

    def parts(self, blob_id: UUID | str, *, namespace: str) -> list[BlobPart]:
        """The parts of an announced blob uploaded so far, by number.

        Args:
            blob_id: The blob id.
            namespace: The namespace it belongs to.

        Returns:
            The parts.
        """
        record = self.get(blob_id, namespace=namespace)
        return self._db.store.blob_parts(record.id)

    def complete(self, blob_id: UUID | str, *, namespace: str) -> BlobRecord:
        """Join a blob's parts, in order, into the blob (all or nothing), then drop them.

        Args:
            blob_id: The blob id.
            namespace: The namespace it belongs to.

        Returns:
            The stored blob.

        Raises:
            ValidationError: A part is missing (the numbers must be 1, 2, ... N), or the
                parts do not add up to the size announced.
        """
        record = self.get(blob_id, namespace=namespace)
        store = self.store
        if record.state != "open":  # completed before (a retry): drop what is left
            for payload in self._db.store.forget_blob_parts(record.id):
                store.delete(payload)
            return record
        parts = self._db.store.blob_parts(record.id)
        if not parts:
            raise ValidationError(f"blob {record.id} has no parts to complete")
        for expected, part in enumerate(parts, start=1):
            if part.number != expected:
                raise ValidationError(
                    f"part {expected} of blob {record.id} is missing (parts are 1 to N)"
                )

        def joined() -> Iterator[bytes]:
            for part in parts:
                chunks = store.open(part.payload)
                with _closed(chunks):
                    yield from chunks

        stored = self.upload(record.id, joined(), namespace=namespace)
        for payload in self._db.store.forget_blob_parts(record.id):
            store.delete(payload)
        return stored

    def put(
        self, namespace: str, chunks: Iterable[bytes], *, created_by: str = "user:local"
    ) -> BlobRecord:
        """Announce and upload a blob in one call.

        Args:
            namespace: The namespace it belongs to.
            chunks: The payload.
            created_by: The principal.

        Returns:
            The stored record.
        """
        record = self.create(namespace, created_by=created_by)
        return self.upload(record.id, chunks, namespace=namespace)

    def open(self, blob_id: UUID | str, *, namespace: str) -> Iterator[bytes]:
        """Stream an uploaded blob's payload.

        Args:
            blob_id: The blob id.
            namespace: The namespace it belongs to.

        Returns:
            The payload's chunks (authenticated as they are read).

        Raises:
            NotFoundError: No such blob in this namespace, or not uploaded yet.
        """
        record = self.get(blob_id, namespace=namespace)
        if record.state == "open":
            raise NotFoundError(f"blob {record.id} has not been uploaded")
        return self.store.open(record.id)

    def collect_garbage(self, *, now: datetime | None = None, limit: int = 1000) -> int:
        """Delete blobs no document uses, older than the ``blob_grace`` setting.

        Args:
            now: The current time (tests move it).
            limit: At most this many per call.

        Returns:
            How many blobs (and parts of unfinished uploads) were deleted.
        """
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self._db.settings.blob_grace)
        ids = self._db.store.collect_blobs(cutoff, limit)
        store = self.store
        for blob_id in ids:
            store.delete(blob_id)
        return len(ids)


@dataclass(frozen=True, slots=True)
class ValidatedBlob:
    """The first step's result: what the later steps need (JSON-able via `to_json`).

    Attributes:
        datastore: The DataStore.
        schema_version: The version the document was validated against.
        mid_key: The canonical MID.
        blob: The blob.
        size: Its size.
        plan: What the first pass learned.
    """

    datastore: DataStoreRef
    schema_version: int
    mid_key: str
    blob: UUID
    size: int
    plan: IngestPlan

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "datastore": str(self.datastore),
            "schema_version": self.schema_version,
            "mid_key": self.mid_key,
            "blob": str(self.blob),
            "size": self.size,
            "plan": self.plan.to_json(),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ValidatedBlob:
        """From `to_json`'s output."""
        return cls(
            DataStoreRef.parse(value["datastore"]),
            value["schema_version"],
            value["mid_key"],
            UUID(value["blob"]),
            value["size"],
            IngestPlan.from_json(value["plan"]),
        )


class DocumentIngest:
    """Writes documents from blobs in bounded memory (the steps of a streamed write)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._validators: dict[SchemaRef, LevelValidators] = {}
        self._lock = threading.Lock()
        self.one_pass_bytes = 0
        """Blobs of this size or more are written in one pass (`validate`): all of them.

        Measured on documents of 100k regions (8.5 MB), three each, interleaved twice: 1.27-1.42
        s against 1.31-1.52 s in two passes, the second one decoding the blob again."""
        self.own_generation_bytes = OWN_GENERATION_BYTES
        """Blobs of this size or more, written in one pass, get an index generation of
        their own."""

    def _level_validators(self, namespace: str, name: str, version: int) -> LevelValidators:
        schema = self._db.schemas.get(namespace, name, version)
        with self._lock:
            found = self._validators.get(schema.ref)
        if found is None:
            found = LevelValidators.of(schema.json_schema)
            with self._lock:
                self._validators[schema.ref] = found
        return found

    def validate(
        self,
        datastore: str | DataStoreRef,
        mid: dict[str, str],
        blob_id: UUID | str,
        *,
        progress: Progress | None = None,
        request_id: UUID | None = None,
    ) -> ValidatedBlob:
        """Step 1: validate a blob's document against the DataStore's schema, streamed.

        Given the write's ``request_id``, a blob of `one_pass_bytes` or more (any) on a
        store that can stage a document before its size is known (SQLite) is also cut
        into rows and staged as it is validated, in one pass (`begin` and `stage` then
        find the work done): its bytes are read and decoded once instead of twice. A
        document that turns out invalid has its staged rows discarded (in the shared
        generation its full-text entries stay, matching nothing, as those of any
        abandoned ingest); one whose rows cannot be cut as it streams (an attribute of a
        track or component after its list) is staged by `stage`, as any other.

        Args:
            datastore: The DataStore.
            mid: The media ID.
            blob_id: An uploaded blob of the DataStore's namespace.
            progress: Called with ``(bytes read, blob size)`` as the pass goes.
            request_id: The write request (for a one-pass write).

        Returns:
            What the next steps need.

        Raises:
            NotFoundError: No such DataStore, or no such blob in its namespace.
            ValidationError: The MID or the document is invalid (every violation, bounded,
                with the total); the blob is not UTF-8 JSON.
            StaleSchemaError: (One pass) the DataStore moved to another schema version
                meanwhile: validate again.
        """
        db = self._db
        ds = db._datastore(datastore, fresh=True)
        record = db.blobs.get(blob_id, namespace=ds.ref.namespace)
        if record.state == "open":
            raise ValidationError(f"blob {record.id} has not been uploaded yet")
        key = mid_key(check_mid(mid, ds.mid_keys))
        schema = db.schemas.get(ds.ref.namespace, ds.schema_name, ds.schema_version)
        if schema.kind is SchemaKind.JSON_SCHEMA:
            raise ValidationError(
                f"DataStore {ds.ref} validates documents with a plain JSON Schema, which can "
                "only check a whole document: write it synchronously (at most "
                f"{db.settings.max_document_bytes} bytes), or give the DataStore a schema "
                "in the reeldb DSL to stream documents of any size"
            )
        validators = self._level_validators(ds.ref.namespace, ds.schema_name, ds.schema_version)
        size = record.size or 0
        what = f"document for MID {key} in blob {record.id}"
        store = db.store
        if (
            request_id is not None
            and size >= self.one_pass_bytes
            and isinstance(store, _UnsizedIngests)
        ):
            start = IngestStart(
                request_id,
                ds.id,
                ds.schema_version,
                uuid7(),
                key,
                datetime.now(UTC),
                record.id,
                size,
                db._columns(schema),
                UNSIZED,
                UNSIZED,
            )
            alone = size >= self.own_generation_bytes
            plan = self._one_pass(store, start, validators, what, progress, alone=alone)
        else:
            chunks = _reporting(db.blobs.store.open(record.id), size, progress)
            with _closed(chunks):
                plan = scan(
                    stream.walk(chunks),
                    validators,
                    chunk_bytes=db.settings.index_chunk_bytes,
                    what=what,
                )
        return ValidatedBlob(ds.ref, ds.schema_version, key, record.id, size, plan)

    def _one_pass(
        self,
        store: _UnsizedIngests,
        start: IngestStart,
        validators: LevelValidators,
        what: str,
        progress: Progress | None,
        *,
        alone: bool,
    ) -> IngestPlan:
        """Validate a blob's document and stage its rows as it streams (see `validate`)."""
        db = self._db
        db.store.claim_blob(start.blob, datetime.now(UTC))
        state = store.begin_unsized_ingest(start, alone=alone)
        chunk_bytes = db.settings.index_chunk_bytes
        scanner = Scanner(validators, chunk_bytes=chunk_bytes)
        # Only an ingest still unsized is staged here (begun by an earlier try of this
        # step, it resumes after its last batch); a sized one is left to `stage`.
        stager = None
        if state.state == "staging" and state.rows == UNSIZED:
            cutter = RowCutter(start.columns, chunk_bytes)
            stager = _Stager(db.store, start.id, state, cutter, BATCH_ROWS, None)
        cutting = _OnePass(scanner, stager)
        chunks = _reporting(db.blobs.store.open(start.blob), start.size, progress)
        try:
            with _closed(chunks), stager or contextlib.nullcontext():
                plan = scanner.run(cutting.nodes(stream.walk(chunks)), what)
                cut = cutting.finish(plan)
        except ValidationError:
            self.discard(start.id)  # nothing staged stays
            raise
        if stager is not None:
            store.size_ingest(start.id, plan.rows, plan.chunks, restart=not cut)
        return plan

    def begin(self, request_id: UUID, validated: ValidatedBlob) -> IngestState:
        """Step 2: give the document its DocumentID and reserve its rows (idempotent).

        Args:
            request_id: The write request (the ingest's id).
            validated: From `validate`.

        Returns:
            The ingest's state.

        Raises:
            StaleSchemaError: The DataStore moved to another schema version: validate again.
        """
        db = self._db
        ds = db._datastore(validated.datastore)
        schema = db.schemas.get(ds.ref.namespace, ds.schema_name, validated.schema_version)
        db.store.claim_blob(validated.blob, datetime.now(UTC))
        plan = validated.plan
        return db.store.begin_ingest(
            IngestStart(
                request_id,
                ds.id,
                validated.schema_version,
                uuid7(),
                validated.mid_key,
                datetime.now(UTC),
                validated.blob,
                validated.size,
                db._columns(schema),
                plan.rows,
                plan.chunks,
            )
        )

    def stage(
        self,
        request_id: UUID,
        validated: ValidatedBlob,
        *,
        progress: Progress | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> IngestState:
        """Step 3: cut the document into index rows and stage them, batch by batch.

        Resumable: batches committed before a crash are cut again (cutting is
        deterministic) but not written again.

        Args:
            request_id: The write request.
            validated: From `validate`.
            progress: Called with ``(rows staged, rows in all)``.
            batch_rows: Rows per transaction.

        Returns:
            The ingest's state, every row staged.
        """
        db = self._db
        store = db.store
        state = store.get_ingest(request_id)
        if state.state != "staging" or (
            state.rows_done == state.rows and state.chunks_done == state.chunks
        ):
            return state
        ds = db._datastore(validated.datastore)
        schema = db.schemas.get(ds.ref.namespace, ds.schema_name, validated.schema_version)
        heads = validated.plan.heads
        cutter = RowCutter(db._columns(schema), db.settings.index_chunk_bytes)
        chunks = db.blobs.store.open(validated.blob)
        with (
            _closed(chunks),
            _Stager(store, request_id, state, cutter, batch_rows, progress) as stager,
        ):
            _cut(stream.walk(chunks), cutter, heads, stager.after_event)
        return stager.state

    def rows_of(
        self, record: DocumentRecord, schema: SchemaVersion, columns: Sequence[Column]
    ) -> DocumentRows:
        """A stored document's rows, cut from its blob (an index rebuild).

        The rows are returned whole: a rebuild holds one such document's rows in memory.

        Args:
            record: A document written from a blob.
            schema: The schema version it is indexed under.
            columns: The columns.

        Returns:
            Its rows.
        """
        assert record.blob is not None
        store = self._db.blobs.store
        chunks = store.open(record.blob)
        with _closed(chunks):
            plan = scan(
                stream.walk(chunks),
                LevelValidators.of(schema.json_schema),
                chunk_bytes=self._db.settings.index_chunk_bytes,
                what=f"stored document {record.id}",
            )
        cutter = RowCutter(columns, self._db.settings.index_chunk_bytes)
        chunks = store.open(record.blob)
        with _closed(chunks):
            _cut(stream.walk(chunks), cutter, plan.heads, None)
        return cutter.take()

    def publish(self, request_id: UUID, audit: AuditEntry | None = None) -> Document:
        """Step 4: make the document and its index visible at once (idempotent).

        Args:
            request_id: The write request.
            audit: Recorded in the same transaction.

        Returns:
            The document, without its body (``body`` is empty; ``blob`` holds it).
        """
        db = self._db
        record = db.store.publish_ingest(request_id, () if audit is None else (audit,))
        # Not read back: the body may be gigabytes (`open_document_body` streams it).
        return db._document(db._ref_of(record.datastore_id), record, stream=True)

    def discard(self, request_id: UUID) -> None:
        """Forget a failed write's staged rows (idempotent)."""
        self._db.store.discard_ingest(request_id)

    def run(
        self,
        datastore: str | DataStoreRef,
        mid: dict[str, str],
        blob_id: UUID | str,
        *,
        request_id: UUID | None = None,
        audit: AuditEntry | None = None,
        progress: Progress | None = None,
    ) -> Document:
        """All four steps in this process (``db.put_document_from_blob``).

        Args:
            datastore: The DataStore.
            mid: The media ID.
            blob_id: An uploaded blob of the DataStore's namespace.
            request_id: Resume this write (default: a new one).
            audit: Recorded with the document.
            progress: Called with ``(done, total)`` bytes read, then rows staged.

        Returns:
            The document.
        """
        request_id = request_id or uuid7()
        try:  # a one-pass write stages as it validates
            for _attempt in range(3):
                try:
                    validated = self.validate(
                        datastore, mid, blob_id, progress=progress, request_id=request_id
                    )
                    self.begin(request_id, validated)
                except StaleSchemaError:
                    continue
                break
            else:
                raise ConflictError(f"DataStore {datastore} kept changing schema during the write")
            self.stage(request_id, validated, progress=progress)
        except BaseException:
            self.discard(request_id)
            raise
        return self.publish(request_id, audit)


class _Stager:
    """Stages a cutter's rows batch by batch, each with its checkpoint.

    A resumed ingest cuts again from the start (cutting is deterministic): the batches
    its checkpoint covers are skipped, not written again. Leaving the ``with`` block
    without an error stages the last rows.

    (Staging on a thread of its own, beside the cutting, was measured: on the shared
    2-core machine it was 10-25% slower, the GIL going back and forth at every statement.)
    """

    __slots__ = ("_batch_rows", "_cutter", "_id", "_progress", "_store", "events", "state")

    def __init__(
        self,
        store: DocumentStore,
        request_id: UUID,
        state: IngestState,
        cutter: RowCutter,
        batch_rows: int,
        progress: Progress | None,
    ) -> None:
        self._store = store
        self._id = request_id
        self.state = state
        self._cutter = cutter
        self._batch_rows = batch_rows
        self._progress = progress
        self.events = 0

    def __enter__(self) -> _Stager:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.flush()

    @property
    def cutter(self) -> RowCutter:
        """The cutter whose rows are staged."""
        return self._cutter

    def after_event(self) -> None:
        """An event was cut: stage a batch if there are enough rows for one."""
        self.events += 1
        if len(self._cutter.rows) >= self._batch_rows:
            self.flush()

    def flush(self) -> None:
        """Stage the rows cut since the last batch (unless staged before a crash)."""
        cutter, state = self._cutter, self.state
        rows_at, chunks_at = cutter.row_start, cutter.chunk_start
        batch = cutter.take()
        rows_to, chunks_to = rows_at + len(batch.rows), chunks_at + len(batch.chunks)
        if rows_to <= state.rows_done and chunks_to <= state.chunks_done:
            return  # staged before a crash (or empty)
        if rows_at != state.rows_done or chunks_at != state.chunks_done:
            raise ConflictError(
                f"ingest {self._id} stopped at row {state.rows_done}, inside a batch"
            )
        self.state = self._store.stage_ingest(
            self._id, batch, rows_at=rows_at, chunks_at=chunks_at, events=self.events
        )
        if self._progress is not None:
            self._progress(self.state.rows_done, self.state.rows)


_CUT_ERRORS: Final = (
    ReelError,
    ArithmeticError,
    AttributeError,
    LookupError,
    TypeError,
    ValueError,
)
"""What cutting a node the schema has not accepted yet may raise (a one-pass write)."""


class _OnePass:
    """Cuts a document's rows as the first pass validates it (`DocumentIngest.validate`).

    A node is cut once the scanner has read it, with the members of its track and
    component read so far: right when they come before their lists, as serializers
    write them. Cutting stops for good at the first schema violation (the document will
    not be stored), at a member of the asset, a track or a component that comes after
    rows were cut with what came before (`finish` then says so, and the rows are staged
    again by a second pass), or at an error while cutting (an invalid value: the same).
    """

    def __init__(self, scanner: Scanner, stager: _Stager | None) -> None:
        self._scanner = scanner
        self._stager = stager
        self.cutting = stager is not None
        self._asset: Any = None
        self._started = False

    def nodes(self, walked: Iterable[tuple[int, Any, Any]]) -> Iterator[tuple[int, Any, Any]]:
        """The walked nodes, passed on to the scanner; each is cut once it is read."""
        if self._stager is None:
            yield from walked
            return
        scanner, stager = self._scanner, self._stager
        cutter = stager.cutter
        event_kind = stream.EVENT
        for node in walked:
            yield node
            if not self.cutting:
                continue
            if scanner.invalid:
                self.cutting = False
                continue
            kind, a, b = node
            try:
                if kind == event_kind and self._component_open:
                    cutter.event(a, b, scanner.event_json)
                else:
                    self._cut(kind, a, b)
            except _CUT_ERRORS:
                self.cutting = False
                continue
            if kind == event_kind:
                stager.after_event()

    _track: dict[str, Any]
    _component: dict[str, Any]
    _track_open = False
    _component_open = False
    _t = 0
    _c = 0

    def _cut(self, kind: int, a: Any, b: Any) -> None:  # noqa: C901 - one state machine
        cutter = self._cutter
        if kind == stream.EVENT:
            cutter.component(self._c, self._component)
            self._component_open = True
            cutter.event(a, b, self._scanner.event_json)
        elif kind == stream.COMPONENT:
            if not self._track_open:
                cutter.track(self._t, self._track)
                self._track_open = True
            self._c, self._component, self._component_open = a, {}, False
        elif kind == stream.COMPONENT_ATTR:
            if self._component_open:
                self.cutting = False  # its events were cut without it
            self._component[a] = b
        elif kind == stream.COMPONENT_END:
            if not self._component_open:
                cutter.component(self._c, self._component)
            self._component_open = False
            cutter.end_component()
        elif kind == stream.TRACK:
            self._start()
            self._t, self._track, self._track_open = a, {}, False
        elif kind == stream.TRACK_ATTR:
            if self._track_open:
                self.cutting = False  # its components were cut without it
            self._track[a] = b
        elif kind == stream.TRACK_END:
            if not self._track_open:
                cutter.track(self._t, self._track)
            self._track_open = False
            cutter.end_track()
        elif kind == stream.TOP:
            if a == "asset":
                if self._started:
                    self.cutting = False  # rows were cut without it
                self._asset = b
        else:  # TRACKS_VALUE, TRACK_VALUE, COMPONENT_VALUE: schema violations
            self.cutting = False

    @property
    def _cutter(self) -> RowCutter:
        assert self._stager is not None
        return self._stager.cutter

    def _start(self) -> None:
        if not self._started:
            self._cutter.document(self._asset)
            self._started = True

    def finish(self, plan: IngestPlan) -> bool:
        """After a valid document: end it; whether every row was cut here.

        The stager's ``with`` block stages its last rows.

        Args:
            plan: The first pass's.

        Returns:
            False if cutting stopped (the rows are to be staged again by a second pass).
        """
        if not self.cutting or self._stager is None:
            return False
        cutter = self._cutter
        try:
            self._start()
            cutter.end_document()
        except _CUT_ERRORS:
            return False
        # pragma: no cover - the plan counts what cutting makes
        return cutter.cut == plan.rows and cutter.chunks_cut == plan.chunks


def _cut(
    nodes: Iterator[tuple[int, Any, Any]],
    cutter: RowCutter,
    heads: Heads,
    after_event: Callable[[], None] | None,
) -> int:
    """Feed a walked document to a cutter (its heads from the first pass); the events cut."""
    events = t = 0
    cutter.document(heads.top.get("asset"))
    for kind, a, b in nodes:
        if kind == stream.EVENT:
            cutter.event(a, b)
            events += 1
            if after_event is not None:
                after_event()
        elif kind == stream.COMPONENT:
            cutter.component(a, heads.components[t][a])
        elif kind == stream.COMPONENT_END:
            cutter.end_component()
        elif kind == stream.TRACK:
            t = a
            cutter.track(a, heads.tracks[a])
        elif kind == stream.TRACK_END:
            cutter.end_track()
    cutter.end_document()
    return events


def _reporting(chunks: Iterator[bytes], total: int, progress: Progress | None) -> Iterator[bytes]:
    try:
        done = 0
        for chunk in chunks:
            done += len(chunk)
            if progress is not None:
                progress(done, total)
            yield chunk
    finally:
        _close(chunks)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


@contextlib.contextmanager
def _closed(chunks: Iterator[bytes]) -> Iterator[None]:
    """Close a blob's stream (its file) even when the reader stops early."""
    try:
        yield
    finally:
        _close(chunks)
