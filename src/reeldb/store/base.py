"""Storage ports: metadata, documents, access, search and annotations.

A backend implements both over one database, so that an operation spanning them (storing a
schema version only if no document arrived since the stored-data check) is one transaction.
Every method translates driver errors into reeldb errors; the contract tests in
``tests/contract/`` pin the behaviour every backend must show.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from reeldb.auth.model import ApiKey, AuditEntry, Principal
from reeldb.errors import ReelError
from reeldb.index.model import EventHit, Generation
from reeldb.index.rows import Column, DocumentRows
from reeldb.model.datastore import DataStore, DataStoreRef, Namespace, Role, RoleGrant
from reeldb.model.requests import WriteRequest, WriteState
from reeldb.query.ast import Expr
from reeldb.schema.model import CompatibilityMode, SchemaSubject, SchemaVersion

__all__ = [
    "DeadLetter",
    "JobRecord",
    "JobStore",
    "PartitionRecord",
    "Progress",
    "AccessStore",
    "AnnotationColumns",
    "AnnotationHeadPage",
    "AnnotationQuery",
    "AnnotationRecord",
    "AnnotationStore",
    "AnnotationWrite",
    "BlobPart",
    "BlobRecord",
    "DataStoreMove",
    "DocumentRecord",
    "DocumentBatch",
    "DocumentStore",
    "DeriveSearchRows",
    "IngestStart",
    "IngestState",
    "MetadataStore",
    "NewDocument",
    "QueryRequestRecord",
    "SearchRows",
    "SearchStore",
    "Store",
]


@dataclass(frozen=True, slots=True)
class DataStoreMove:
    """Move a DataStore to a new schema version, if nothing changed since it was checked.

    Attributes:
        datastore_id: The DataStore.
        from_version: The schema version the DataStore must still be on.
        checked_upto_seq: Every document with a higher sequence number was not checked; if
            one exists the move fails with `StaleSchemaError`.
    """

    datastore_id: int
    from_version: int
    checked_upto_seq: int


@dataclass(frozen=True, slots=True)
class NewDocument:
    """A validated document, ready to persist."""

    id: UUID
    mid_key: str
    created_at: datetime
    body: bytes


@dataclass(frozen=True, slots=True)
class DocumentBatch:
    """Documents for one DataStore, persisted all or none (one write request).

    Attributes:
        datastore_id: The DataStore.
        schema_version: The version the documents were validated against; the DataStore
            must still be on it.
        documents: The documents.
        audit: Audit entries to append if, and only if, the documents are persisted.
        columns: The searchable columns the documents were cut with (`reeldb.index.rows`).
        index: Each document's index rows, in order (empty: index nothing).
        replaces: For each document, the ``seq`` its MID's latest document must have for the
            batch to be stored (0: the MID has none yet; None: no condition); empty: none. A
            batch whose condition fails gets `VersionConflictError` (reprocessing writes a
            new version only over the one it read).
    """

    datastore_id: int
    schema_version: int
    documents: Sequence[NewDocument]
    audit: Sequence[AuditEntry] = ()
    columns: Sequence[Column] = ()
    index: Sequence[DocumentRows] = ()
    replaces: Sequence[int | None] = ()


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A stored document (``body`` is empty when listed without bodies).

    Attributes:
        seq: Position in the backend's write order (increasing; the pagination key).
        id: The DocumentID (UUIDv7).
        datastore_id: The DataStore.
        mid_key: The canonical MID (`reeldb.model.mid.mid_key`).
        schema_version: The schema version the document was validated against.
        created_at: When it was written.
        size: Body length in bytes.
        body: The stored JSON bytes (empty when the body is in a blob).
        blob: The blob holding the body, for a document written from a blob (streamed).
    """

    seq: int
    id: UUID
    datastore_id: int
    mid_key: str
    schema_version: int
    created_at: datetime
    size: int
    body: bytes
    blob: UUID | None = None


class MetadataStore(abc.ABC):
    """Namespaces, role grants, schema versions and DataStores."""

    @abc.abstractmethod
    def create_namespace(
        self, name: str, description: str, created_at: datetime, admins: Sequence[str] = ()
    ) -> Namespace:
        """Create a namespace and its first admins, in one transaction.

        Args:
            name: A checked namespace name.
            description: Free text.
            created_at: Creation time (UTC).
            admins: Checked principals to grant the admin role.

        Returns:
            The namespace.

        Raises:
            AlreadyExistsError: The namespace exists.
        """

    @abc.abstractmethod
    def get_namespace(self, name: str) -> Namespace:
        """Read a namespace.

        Args:
            name: The namespace name.

        Returns:
            The namespace.

        Raises:
            NotFoundError: No such namespace.
        """

    @abc.abstractmethod
    def list_namespaces(self) -> list[Namespace]:
        """Every namespace, by name.

        Returns:
            The namespaces.
        """

    @abc.abstractmethod
    def grant_role(
        self, namespace: str, principal: str, role: Role, granted_at: datetime
    ) -> RoleGrant:
        """Give a principal a role in a namespace, replacing any role it had there.

        Args:
            namespace: An existing namespace.
            principal: A checked principal id.
            role: The role.
            granted_at: When.

        Returns:
            The grant.

        Raises:
            NotFoundError: No such namespace.
        """

    @abc.abstractmethod
    def revoke_role(self, namespace: str, principal: str) -> None:
        """Remove a principal's role in a namespace.

        Args:
            namespace: The namespace.
            principal: The principal.

        Raises:
            NotFoundError: The principal has no role there.
        """

    @abc.abstractmethod
    def list_roles(self, namespace: str) -> list[RoleGrant]:
        """Every grant in a namespace, by principal.

        Args:
            namespace: The namespace.

        Returns:
            The grants.
        """

    @abc.abstractmethod
    def get_subject(self, namespace: str, name: str) -> SchemaSubject:
        """Read a schema subject (a name and its versions).

        Args:
            namespace: The namespace.
            name: The schema name.

        Returns:
            The subject.

        Raises:
            NotFoundError: No schema of that name in the namespace.
        """

    @abc.abstractmethod
    def list_subjects(self, namespace: str) -> list[SchemaSubject]:
        """Every schema subject in a namespace, by name.

        Args:
            namespace: The namespace.

        Returns:
            The subjects.
        """

    @abc.abstractmethod
    def get_schema_version(self, namespace: str, name: str, version: int | None) -> SchemaVersion:
        """Read one schema version.

        Args:
            namespace: The namespace.
            name: The schema name.
            version: The version, or None for the latest.

        Returns:
            The schema version.

        Raises:
            NotFoundError: No such schema or version; the message names the latest version.
        """

    @abc.abstractmethod
    def list_schema_versions(self, namespace: str, name: str) -> list[SchemaVersion]:
        """Every version of a schema, oldest first.

        Args:
            namespace: The namespace.
            name: The schema name.

        Returns:
            The versions (empty if the schema does not exist).
        """

    @abc.abstractmethod
    def add_schema_version(
        self,
        schema: SchemaVersion,
        compatibility: CompatibilityMode,
        moves: Sequence[DataStoreMove],
        check_new: Callable[[DocumentRecord], None] | None = None,
    ) -> None:
        """Store a new schema version and move DataStores to it, in one transaction.

        The subject is created (with ``compatibility`` and the schema's kind) if new.
        Documents of a moved DataStore written after its ``checked_upto_seq`` are passed to
        ``check_new`` inside the transaction, while writers wait; it raises to abort. So a
        steady stream of writes cannot starve a schema change.

        Args:
            schema: The version to store; its number must exceed every stored one.
            compatibility: The mode for a new subject (ignored for an existing one).
            moves: DataStores to move to this version: exactly those using the schema.
            check_new: Validates a document written since the check; None means such a
                document makes the call fail with `StaleSchemaError`.

        Raises:
            NotFoundError: The namespace does not exist.
            ConflictError: The version exists, or a higher one was stored concurrently.
            StaleSchemaError: A moved DataStore changed version, got unchecked documents
                (without ``check_new``), or the DataStores using the schema are not exactly
                those moved.
            Exception: Whatever ``check_new`` raises; nothing is stored.
        """

    @abc.abstractmethod
    def set_compatibility(self, namespace: str, name: str, mode: CompatibilityMode) -> None:
        """Change a subject's compatibility mode.

        Args:
            namespace: The namespace.
            name: The schema name.
            mode: The new mode.

        Raises:
            NotFoundError: No such schema.
        """

    @abc.abstractmethod
    def create_datastore(
        self,
        ref: DataStoreRef,
        mid_keys: Sequence[str],
        schema_name: str,
        schema_version: int,
        description: str,
        created_at: datetime,
    ) -> DataStore:
        """Create a DataStore.

        Args:
            ref: Its identity.
            mid_keys: The immutable MID schema.
            schema_name: The document schema, in the same namespace.
            schema_version: The version new documents are validated against.
            description: Free text.
            created_at: When.

        Returns:
            The DataStore.

        Raises:
            NotFoundError: The namespace or schema version does not exist.
            AlreadyExistsError: A DataStore with this identity exists.
        """

    @abc.abstractmethod
    def get_datastore(self, ref: DataStoreRef) -> DataStore:
        """Read a DataStore.

        Args:
            ref: Its identity.

        Returns:
            The DataStore.

        Raises:
            NotFoundError: No such DataStore.
        """

    @abc.abstractmethod
    def get_datastore_by_id(self, datastore_id: int) -> DataStore:
        """Read a DataStore by its internal id.

        Args:
            datastore_id: The id.

        Returns:
            The DataStore.

        Raises:
            NotFoundError: No such DataStore.
        """

    @abc.abstractmethod
    def list_datastores(self, namespace: str | None = None) -> list[DataStore]:
        """DataStores, ordered by identity.

        Args:
            namespace: Only this namespace's, or every DataStore when None.

        Returns:
            The DataStores.
        """

    @abc.abstractmethod
    def datastores_using(self, namespace: str, schema_name: str) -> list[DataStore]:
        """The DataStores whose document schema is this subject.

        Args:
            namespace: The namespace.
            schema_name: The schema name.

        Returns:
            The DataStores.
        """


@dataclass(frozen=True, slots=True)
class QueryRequestRecord:
    """A stored asynchronous DataStore-level filter (`reeldb.model.search.QueryRequest`).

    Attributes:
        id: The request id.
        datastore_id: The DataStore.
        query: The query's JSON form, as text.
        all_versions: Whether superseded versions count.
        state: ``pending``, ``running``, ``done`` or ``failed``.
        found: Results stored so far.
        error: Why it failed.
        owner: The runner holding it (while ``running``).
        lease_until: Until when the owner holds it; after that any runner may take it over.
        created_at: When it was submitted.
        finished_at: When it finished.
    """

    id: UUID
    datastore_id: int
    query: str
    all_versions: bool
    state: str
    found: int = 0
    error: str | None = None
    owner: str | None = None
    lease_until: datetime | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


class SearchStore(abc.ABC):
    """The search index of each DataStore, written with its documents (see `DocumentBatch`)."""

    @abc.abstractmethod
    def search_documents(
        self,
        datastore_id: int,
        expr: Expr,
        *,
        all_versions: bool,
        limit: int,
        after_seq: int,
    ) -> list[tuple[int, UUID, str]]:
        """Documents of a DataStore that match a query, in write order.

        Args:
            datastore_id: The DataStore.
            expr: The query, checked against the DataStore's fields.
            all_versions: Also superseded versions of a MID (default: each MID's latest).
            limit: At most this many.
            after_seq: Only documents after this sequence number (the cursor).

        Returns:
            ``(seq, document id, mid key)`` per document.
        """

    @abc.abstractmethod
    def count_matches(
        self, datastore_id: int, expr: Expr, *, all_versions: bool, budget: int
    ) -> int | None:
        """How many documents `search_documents` would return in all, if that is cheap.

        Args:
            datastore_id: The DataStore.
            expr: The query, checked.
            all_versions: As for `search_documents`.
            budget: How much work the count may take, in the backend's own unit (SQLite:
                virtual-machine instructions, about a millisecond per 100 000).

        Returns:
            The count, or None if counting would take more than the budget.
        """

    @abc.abstractmethod
    def search_events(
        self, datastore_id: int, doc_seq: int, expr: Expr, *, limit: int, offset: int
    ) -> list[EventHit]:
        """The events of one document that match a query, in time order, one page.

        Args:
            datastore_id: The document's DataStore.
            doc_seq: The document's sequence number.
            expr: The query, checked.
            limit: At most this many events.
            offset: Skip this many first.

        Returns:
            Each matching event once, by start, end, then position in the document, with
            the event and its track and component attributes.
        """

    @abc.abstractmethod
    def begin_index_rebuild(self, datastore_id: int, columns: Sequence[Column]) -> Generation:
        """The generation a rebuild fills (an unfinished one with these columns is resumed).

        Args:
            datastore_id: The DataStore.
            columns: The DataStore's current columns.

        Returns:
            A ``building`` generation that queries do not read.
        """

    @abc.abstractmethod
    def index_checkpoint(self, generation_id: int) -> int:
        """The last document sequence number a generation holds (0 if none).

        Args:
            generation_id: The generation.

        Returns:
            The sequence number.
        """

    @abc.abstractmethod
    def index_documents(
        self, datastore_id: int, generation: Generation, docs: Sequence[tuple[int, DocumentRows]]
    ) -> None:
        """Index stored documents into a generation (one transaction).

        Args:
            datastore_id: The DataStore.
            generation: The generation (a rebuild's).
            docs: ``(document seq, rows)`` per document, in sequence order.
        """

    @abc.abstractmethod
    def finish_index_rebuild(
        self,
        datastore_id: int,
        generation: Generation,
        catch_up: Callable[[list[DocumentRecord]], list[tuple[int, DocumentRows]]],
    ) -> None:
        """Index what was written meanwhile and swap the alias to the generation, atomically.

        In one transaction: the documents after the generation's checkpoint are passed to
        ``catch_up`` (which cuts them into rows, or raises to abandon the swap), indexed,
        and the generation becomes the only one queries read. The other generations are
        dropped afterwards.

        Args:
            datastore_id: The DataStore.
            generation: The rebuilt generation.
            catch_up: Cuts the last documents into rows.
        """

    @abc.abstractmethod
    def index_coverage(self, datastore_id: int) -> tuple[int, int]:
        """How many of a DataStore's documents queries can find, in one consistent read.

        Args:
            datastore_id: The DataStore.

        Returns:
            ``(documents indexed in the alias's generations, documents stored)``.
        """

    @abc.abstractmethod
    def add_query_request(self, request: QueryRequestRecord) -> None:
        """Store a new asynchronous query (``pending``), durably.

        Args:
            request: The request.
        """

    @abc.abstractmethod
    def get_query_request(self, request_id: UUID) -> QueryRequestRecord:
        """An asynchronous query.

        Args:
            request_id: Its id.

        Returns:
            The request.

        Raises:
            NotFoundError: No such request (or it expired).
        """

    @abc.abstractmethod
    def claim_query_request(
        self, request_id: UUID, owner: str, now: datetime, lease_until: datetime
    ) -> QueryRequestRecord | None:
        """Take a request to run it, atomically.

        Claimable is a request that is ``pending``, or ``running`` under a lease that ended
        before ``now`` (its runner died). Results a previous runner stored are dropped; the
        request is ``running``, held by ``owner`` until ``lease_until``.

        Args:
            request_id: The request.
            owner: Who runs it.
            now: The time the lease is judged by.
            lease_until: The new lease's end.

        Returns:
            The claimed request, or None if it is not claimable (someone holds it, or it
            finished).
        """

    @abc.abstractmethod
    def add_query_results(
        self,
        request_id: UUID,
        owner: str,
        matches: Sequence[tuple[UUID, str]],
        lease_until: datetime,
    ) -> bool:
        """Append results and renew the lease, if ``owner`` still holds the request.

        Args:
            request_id: The request.
            owner: The runner.
            matches: ``(document id, mid key)`` per document, in order.
            lease_until: The renewed lease's end.

        Returns:
            False if the runner lost the request (nothing was stored).
        """

    @abc.abstractmethod
    def finish_query_request(
        self,
        request_id: UUID,
        owner: str,
        *,
        error: str | None,
        finished_at: datetime | None,
    ) -> bool:
        """End a run.

        The request becomes ``done`` (no error), ``failed`` (an error), or, with neither an
        error nor a finish time, ``pending`` again for another runner (a clean shutdown).

        Args:
            request_id: The request.
            owner: The runner.
            error: Why it failed, or None.
            finished_at: When it finished; None to hand the request back.

        Returns:
            False if the runner had lost the request (nothing changed).
        """

    @abc.abstractmethod
    def query_results(
        self, request_id: UUID, *, after: int, limit: int
    ) -> list[tuple[int, UUID, str]]:
        """Stored results of a request, in order.

        Args:
            request_id: The request.
            after: Only results after this position (0: from the first).
            limit: At most this many.

        Returns:
            ``(position, document id, mid key)`` per result; positions start at 1.
        """

    @abc.abstractmethod
    def delete_query_requests(self, finished_before: datetime) -> int:
        """Forget requests, and their results, that finished before a time.

        Args:
            finished_before: The cut-off.

        Returns:
            How many requests were deleted.
        """

    @abc.abstractmethod
    def index_generations(self, datastore_id: int) -> list[Generation]:
        """The generations of a DataStore's index, oldest first.

        Args:
            datastore_id: The DataStore.

        Returns:
            The generations.
        """


@dataclass(frozen=True, slots=True)
class IngestStart:
    """A document to be written from a blob, validated by a first pass (`reeldb.ingest`).

    Attributes:
        id: The ingest's id (the write request's): beginning it again returns the same.
        datastore_id: The DataStore.
        schema_version: The version the document was validated against.
        document_id: Its DocumentID.
        mid_key: Its canonical MID.
        created_at: When it was written.
        blob: The blob holding its body.
        size: Body length in bytes.
        columns: The columns its rows are cut with.
        rows: How many rows it cuts into.
        chunks: How many chunks of events it has.
    """

    id: UUID
    datastore_id: int
    schema_version: int
    document_id: UUID
    mid_key: str
    created_at: datetime
    blob: UUID
    size: int
    columns: Sequence[Column]
    rows: int
    chunks: int


@dataclass(frozen=True, slots=True)
class IngestState:
    """Where an ingest stands.

    Attributes:
        id: The ingest's id.
        document_id: The DocumentID it will publish.
        doc_seq: The sequence number reserved for the document.
        rows: Rows to stage in all.
        chunks: Chunks to stage in all.
        rows_done: Rows staged (the checkpoint a resumed ingest starts from).
        chunks_done: Chunks staged.
        events_done: Events staged.
        state: ``staging``, ``published`` or ``discarded``.
    """

    id: UUID
    document_id: UUID
    doc_seq: int
    rows: int
    chunks: int
    rows_done: int
    chunks_done: int
    events_done: int
    state: str


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """A blob announced for upload (`POST /v1/blobs`).

    Attributes:
        id: The blob id.
        namespace: The namespace it belongs to (no other may use it).
        declared_size: The size the uploader announced (None: not announced).
        size: The stored size (None until uploaded).
        sha256: The stored payload's SHA-256 (None until uploaded).
        state: ``open`` (announced), ``stored`` (uploaded) or ``claimed`` (a write uses it).
        created_at: When it was announced.
        created_by: The principal that announced it.
    """

    id: UUID
    namespace: str
    declared_size: int | None
    size: int | None
    sha256: str | None
    state: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class BlobPart:
    """A part of a blob uploaded piece by piece.

    Attributes:
        number: Its position (1, 2, ...).
        size: Its size in bytes.
        sha256: Hex SHA-256 of its bytes.
        payload: The blob its bytes are kept in until the upload is completed.
    """

    number: int
    size: int
    sha256: str
    payload: UUID


class DocumentStore(abc.ABC):
    """Immutable documents keyed by DocumentID, grouped by DataStore and MID."""

    # -- documents streamed from blobs: reserve, stage in batches, publish -------------------

    @abc.abstractmethod
    def begin_ingest(self, start: IngestStart) -> IngestState:
        """Reserve a document's sequence number and index rows (idempotent by ``start.id``).

        Args:
            start: The validated document.

        Returns:
            The ingest's state (an existing ingest's, unchanged, if it was begun before).

        Raises:
            NotFoundError: No such DataStore.
            StaleSchemaError: The DataStore moved to another schema version; revalidate.
        """

    @abc.abstractmethod
    def stage_ingest(
        self, ingest_id: UUID, batch: DocumentRows, *, rows_at: int, chunks_at: int, events: int
    ) -> IngestState:
        """Write a batch of an ingest's index rows with its checkpoint, in one transaction.

        Args:
            ingest_id: The ingest.
            batch: From `reeldb.index.rows.RowCutter.take`.
            rows_at: The batch's first row offset in the document; must equal the
                checkpoint, so no batch is ever staged twice.
            chunks_at: Its first chunk offset.
            events: Events staged once this batch is.

        Returns:
            The new state.

        Raises:
            NotFoundError: No such ingest.
            ConflictError: The checkpoint is elsewhere (another worker staged this batch) or
                the ingest is no longer staging.
        """

    @abc.abstractmethod
    def publish_ingest(self, ingest_id: UUID, audit: Sequence[AuditEntry] = ()) -> DocumentRecord:
        """Make a fully staged document visible, with its index, in one transaction.

        Idempotent: publishing a published ingest returns its document.

        Args:
            ingest_id: The ingest.
            audit: Audit entries recorded with it.

        Returns:
            The document (without its body, which is in its blob).

        Raises:
            NotFoundError: No such ingest.
            ConflictError: Rows are missing, or the ingest was discarded.
        """

    @abc.abstractmethod
    def discard_ingest(self, ingest_id: UUID) -> None:
        """Delete an unpublished ingest's staged rows (idempotent; a published one stays).

        Args:
            ingest_id: The ingest.
        """

    @abc.abstractmethod
    def get_ingest(self, ingest_id: UUID) -> IngestState:
        """An ingest's state.

        Args:
            ingest_id: The ingest.

        Returns:
            Its state.

        Raises:
            NotFoundError: No such ingest.
        """

    # -- blobs announced for upload ------------------------------------------------------

    @abc.abstractmethod
    def add_blob(self, record: BlobRecord) -> None:
        """Record an announced blob.

        Args:
            record: The blob, ``open``.

        Raises:
            NotFoundError: No such namespace.
        """

    @abc.abstractmethod
    def get_blob(self, blob_id: UUID) -> BlobRecord:
        """An announced blob.

        Args:
            blob_id: The blob id.

        Returns:
            The record.

        Raises:
            NotFoundError: No such blob.
        """

    @abc.abstractmethod
    def blob_stored(self, blob_id: UUID, size: int, sha256: str, at: datetime) -> BlobRecord:
        """Mark an announced blob uploaded.

        Args:
            blob_id: The blob id.
            size: Its size.
            sha256: Its SHA-256.
            at: When it was stored.

        Returns:
            The updated record.

        Raises:
            NotFoundError: No such blob.
        """

    # -- asynchronous write requests --------------------------------------------------------

    @abc.abstractmethod
    def add_write_request(self, request: WriteRequest) -> tuple[WriteRequest, bool]:
        """Record a write request durably (or find the one its idempotency key names).

        With an idempotency key seen before in the namespace, the earlier request is
        returned instead and nothing is recorded.

        Args:
            request: The new request (``PENDING``).

        Returns:
            The stored request and whether it is new.

        Raises:
            NotFoundError: No such namespace.
        """

    @abc.abstractmethod
    def get_write_request(self, request_id: UUID) -> WriteRequest:
        """A write request.

        Args:
            request_id: The request id.

        Returns:
            The request.

        Raises:
            NotFoundError: No such request.
        """

    @abc.abstractmethod
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
        """Move a request to a state (a final state is never left).

        Args:
            request_id: The request.
            state: The new state.
            at: When.
            document_id: Its DocumentID, once known.
            error: Why it failed.
            step: ``(step name, seconds)`` of the step that just finished.

        Returns:
            The request as it now stands (unchanged if it was final already).

        Raises:
            NotFoundError: No such request.
        """

    @abc.abstractmethod
    def list_write_requests(
        self,
        *,
        namespace: str | None = None,
        unfinished: bool = False,
        limit: int = 100,
        before: UUID | None = None,
    ) -> list[WriteRequest]:
        """Write requests, newest first.

        Args:
            namespace: Only this namespace's.
            unfinished: Only those not in a final state.
            limit: At most this many.
            before: Only requests older than this one (the cursor).

        Returns:
            The requests.
        """

    @abc.abstractmethod
    def count_write_requests(self) -> dict[str, int]:
        """How many write requests are in each unfinished state (the queue's depth).

        Returns:
            ``{state: count}``.
        """

    @abc.abstractmethod
    def put_blob_part(self, blob_id: UUID, part: BlobPart) -> UUID | None:
        """Record an uploaded part of an open blob (replacing one of the same number).

        Args:
            blob_id: The blob.
            part: The part.

        Returns:
            The payload of the part it replaced (to delete), or None.

        Raises:
            NotFoundError: No such blob.
            ConflictError: The blob is not open (its upload was completed).
        """

    @abc.abstractmethod
    def blob_parts(self, blob_id: UUID) -> list[BlobPart]:
        """A blob's uploaded parts, by number.

        Args:
            blob_id: The blob.

        Returns:
            The parts.
        """

    @abc.abstractmethod
    def forget_blob_parts(self, blob_id: UUID) -> list[UUID]:
        """Delete a blob's part records (its upload is complete).

        Args:
            blob_id: The blob.

        Returns:
            Their payloads, to delete from the blob store.
        """

    @abc.abstractmethod
    def worker_seen(self, name: str, at: datetime) -> None:
        """Record that a worker of asynchronous writes is alive (its heartbeat).

        Args:
            name: The worker's name.
            at: Now.
        """

    @abc.abstractmethod
    def worker_gone(self, name: str) -> None:
        """Forget a worker that stopped cleanly (nothing of it is left to take over).

        Args:
            name: The worker's name.
        """

    @abc.abstractmethod
    def claim_silent_workers(self, me: str, silent_since: datetime, at: datetime) -> list[str]:
        """Take over the workers not seen since a time, atomically (one taker each).

        A worker taken over counts as seen ``at``: it is not taken over again before it has
        been silent as long once more.

        Args:
            me: The worker taking over.
            silent_since: Workers last seen before this are taken.
            at: Now.

        Returns:
            The names taken over by ``me``.
        """

    @abc.abstractmethod
    def claim_blob(self, blob_id: UUID, at: datetime) -> BlobRecord:
        """Mark a stored blob as used by a write, so that garbage collection spares it.

        Args:
            blob_id: The blob id.
            at: When (a claim older than the grace period with no document is garbage).

        Returns:
            The record.

        Raises:
            NotFoundError: No such blob.
        """

    @abc.abstractmethod
    def collect_blobs(self, before: datetime, limit: int) -> list[UUID]:
        """Forget old blobs that no document or unfinished ingest uses (garbage).

        A blob is garbage when it was announced, and claimed if it was, before ``before``;
        the caller then deletes the payloads.

        Args:
            before: The grace period's start.
            limit: At most this many.

        Returns:
            The ids of the blobs forgotten and of the payloads of their parts.
        """

    def put_documents(
        self,
        datastore_id: int,
        schema_version: int,
        documents: Sequence[NewDocument],
        audit: Sequence[AuditEntry] = (),
    ) -> list[int]:
        """Persist documents in one transaction: all or none.

        Args:
            datastore_id: The DataStore.
            schema_version: The version the documents were validated against; the DataStore
                must still be on it.
            documents: The documents.
            audit: Audit entries to append in the same transaction.

        Returns:
            The sequence number given to each document, in order.

        Raises:
            NotFoundError: No such DataStore.
            StaleSchemaError: The DataStore moved to another schema version; revalidate.
        """
        [result] = self.put_document_batches(
            [DocumentBatch(datastore_id, schema_version, documents, audit)]
        )
        if isinstance(result, ReelError):
            raise result
        return result

    @abc.abstractmethod
    def put_document_batches(self, batches: Sequence[DocumentBatch]) -> list[list[int] | ReelError]:
        """Persist several independent batches in one transaction (group commit).

        Each batch is all or none on its own: a batch that cannot be persisted leaves the
        others unaffected, and its error is returned in its place. One commit (one
        ``fsync``) then covers every batch.

        Args:
            batches: The batches, typically from concurrent write requests.

        Returns:
            For each batch, in order: the sequence numbers given to its documents, or the
            error that kept it out (`NotFoundError`: no such DataStore;
            `StaleSchemaError`: the DataStore moved to another schema version).

        Raises:
            BackendUnavailableError: The transaction as a whole failed; nothing was persisted.
        """

    @abc.abstractmethod
    def get_document(self, document_id: UUID) -> DocumentRecord:
        """Read a document by DocumentID.

        Args:
            document_id: The DocumentID.

        Returns:
            The document with its body.

        Raises:
            NotFoundError: No such document.
        """

    @abc.abstractmethod
    def locate_document(self, document_id: UUID) -> DocumentRecord:
        """A document's coordinates without its body (``body`` is empty).

        Args:
            document_id: The DocumentID.

        Returns:
            The record, body left out.

        Raises:
            NotFoundError: No such document.
        """

    @abc.abstractmethod
    def latest_document(self, datastore_id: int, mid_key: str) -> DocumentRecord:
        """Read the most recently written document for a MID.

        Args:
            datastore_id: The DataStore.
            mid_key: The canonical MID.

        Returns:
            The document with its body.

        Raises:
            NotFoundError: No document for this MID.
        """

    @abc.abstractmethod
    def list_documents(
        self, datastore_id: int, mid_key: str, *, limit: int, before_seq: int | None
    ) -> list[DocumentRecord]:
        """Documents for a MID, newest first, without bodies.

        Args:
            datastore_id: The DataStore.
            mid_key: The canonical MID.
            limit: At most this many.
            before_seq: Only documents older than this sequence number (the cursor).

        Returns:
            The records, ``body`` empty.
        """

    @abc.abstractmethod
    def iter_documents(
        self, datastore_id: int, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> Iterator[DocumentRecord]:
        """Stream a DataStore's documents in write order, with bodies, in bounded memory.

        Args:
            datastore_id: The DataStore.
            after_seq: Only documents after this sequence number.
            upto_seq: Only documents up to this sequence number (inclusive).

        Yields:
            The records.
        """

    @abc.abstractmethod
    def max_seq(self, datastore_id: int) -> int:
        """The highest sequence number in a DataStore (0 if empty).

        Args:
            datastore_id: The DataStore.

        Returns:
            The sequence number.
        """

    @abc.abstractmethod
    def import_documents(self, datastore_id: int, records: Sequence[DocumentRecord]) -> int:
        """Store documents copied from another installation, as they are, unindexed.

        For ``reeldb migrate-backend``, in one transaction.

        Each keeps its DocumentID, MID, schema version, creation time, body and blob; it gets
        the next sequence number here, in the given order. A document whose DocumentID is
        already stored is skipped, so an interrupted copy can simply be run again. The
        index is rebuilt afterwards (`Database.rebuild_index`).

        Args:
            datastore_id: The DataStore (here).
            records: The documents, in their source write order, with bodies.

        Returns:
            How many were stored (the others existed).

        Raises:
            NotFoundError: No such DataStore.
        """

    @abc.abstractmethod
    def count_documents(self, datastore_id: int) -> int:
        """How many documents a DataStore holds.

        Args:
            datastore_id: The DataStore.

        Returns:
            The count.
        """


class AccessStore(abc.ABC):
    """API keys, system administrators and the audit log."""

    @abc.abstractmethod
    def create_api_key(self, key: ApiKey, secret_hash: bytes) -> None:
        """Store a new key.

        Args:
            key: The public record.
            secret_hash: The hash of the whole key.
        """

    def access_generation(self) -> int | None:
        """A number that changes whenever keys, roles or system administrators may have.

        The facade caches authentications while it stays the same; it must therefore
        change, in every process using the database, after any such change is committed.

        Returns:
            The number, or None if the backend cannot tell (then nothing is cached).
        """
        return None

    @abc.abstractmethod
    def key_access(self, key_id: str) -> tuple[ApiKey, bytes, Principal]:
        """Everything needed to authenticate one request, in one read.

        Args:
            key_id: The key id.

        Returns:
            The key, its stored hash, and its principal with the principal's current roles.

        Raises:
            NotFoundError: No such key.
        """

    @abc.abstractmethod
    def principal_access(self, principal: str) -> Principal:
        """A principal's current system flag and namespace roles.

        Args:
            principal: The principal.

        Returns:
            The principal (with no roles if it has none).
        """

    @abc.abstractmethod
    def list_api_keys(self, principal: str | None = None) -> list[ApiKey]:
        """Keys, oldest first.

        Args:
            principal: Only this principal's keys; every key when None.

        Returns:
            The keys, revoked ones included.
        """

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str, revoked_at: datetime) -> ApiKey:
        """Revoke a key (revoking a revoked key changes nothing).

        Args:
            key_id: The key id.
            revoked_at: When.

        Returns:
            The key record.

        Raises:
            NotFoundError: No such key.
        """

    @abc.abstractmethod
    def set_system_admin(self, principal: str, admin: bool, at: datetime) -> None:
        """Make a principal a system administrator, or stop it being one.

        Args:
            principal: The principal.
            admin: True to grant, False to revoke.
            at: When.
        """

    @abc.abstractmethod
    def list_system_admins(self) -> list[str]:
        """The system administrators, by name.

        Returns:
            Their principals.
        """

    @abc.abstractmethod
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log durably (their ``seq`` is ignored and assigned).

        Args:
            entries: The entries.
        """

    @abc.abstractmethod
    def list_audit(
        self, namespace: str | None, *, limit: int, before_seq: int | None
    ) -> list[AuditEntry]:
        """Audit entries, newest first.

        Args:
            namespace: Only this namespace's entries; every entry when None.
            limit: At most this many.
            before_seq: Only entries older than this (the cursor).

        Returns:
            The entries.
        """


@dataclass(frozen=True, slots=True)
class AnnotationWrite:
    """One new version of an annotation, with what search reads of it.

    Attributes:
        id: The annotation id.
        namespace: Its namespace.
        expected_version: The version the annotation must be at (0: it must not exist).
        type_name: The annotation type's name.
        type_version: The type's version.
        lineage: The type's lineage (`SchemaVersion.lineage`): search by a parent finds it.
        deleted: True for a tombstone: the annotation leaves the index.
        created_at: When the version is stored.
        created_by: The principal storing it, if known.
        body: ``{"associations": [...], "data": {...}}`` as JSON bytes.
        associations: ``(type, id)`` pairs, as in ``body``.
        time: ``(start, end)`` in seconds, if the type has a time.
        box: ``(x0, y0, x1, y1)``, if the type has a box.
        texts: ``(field, stems)`` per text field: the stems as one space-separated string of
            `reeldb.index.sqlite.fts_token` tokens.
        facets: ``{property: value}`` of comparable properties, as the index compares them
            (JSON bytes; time ranges ``[start, end]``, boxes ``[x0, y0, x1, y1]``).
    """

    id: UUID
    namespace: str
    expected_version: int
    type_name: str
    type_version: int
    lineage: tuple[str, ...]
    deleted: bool
    created_at: datetime
    created_by: str | None
    body: bytes
    associations: tuple[tuple[str, str], ...]
    time: tuple[float, float] | None = None
    box: tuple[float, float, float, float] | None = None
    texts: tuple[tuple[str, str], ...] = ()
    facets: bytes = b"{}"


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """One stored version of an annotation."""

    id: UUID
    namespace: str
    version: int
    type_name: str
    type_version: int
    deleted: bool
    created_at: datetime
    created_by: str | None
    body: bytes
    latest: int
    """The annotation's current version."""
    score: float | None = None
    """bm25 relevance when a search sorted by relevance (lower is better)."""


@dataclass(frozen=True, slots=True)
class SearchRows:
    """What search reads of one annotation version, derived from its body.

    `AnnotationWrite`'s fields of the same names: what a reindex checks the stored search
    rows against.
    """

    associations: tuple[tuple[str, str], ...]
    time: tuple[float, float] | None
    box: tuple[float, float, float, float] | None
    texts: tuple[tuple[str, str], ...]
    facets: bytes

    def refresh(self, record: AnnotationRecord, lineage: tuple[str, ...] = ()) -> AnnotationWrite:
        """A reindex's write of a live version: these rows, the same version again."""
        return AnnotationWrite(
            id=record.id,
            namespace=record.namespace,
            expected_version=record.version,
            type_name=record.type_name,
            type_version=record.type_version,
            lineage=lineage,
            deleted=False,
            created_at=record.created_at,
            created_by=record.created_by,
            body=record.body,
            associations=self.associations,
            time=self.time,
            box=self.box,
            texts=self.texts,
            facets=self.facets,
        )


DeriveSearchRows = Callable[[str, int, bytes], "SearchRows | None"]
"""``(type name, type version, body) -> SearchRows``, or None for a version a job leaves to
its ordinary path (`AnnotationStore.unindexed_annotations`)."""


@dataclass(frozen=True, slots=True)
class AnnotationHeadPage:
    """A page of `AnnotationStore.unindexed_annotations`.

    Attributes:
        pairs: What `AnnotationStore.annotation_heads` returns of the page's annotations,
            less those counted in ``indexed``.
        indexed: Live annotations of the page, at their version of the instant, whose
            search rows are already what their version derives.
        last: The last annotation of the page (the next page's cursor), None if empty.
    """

    pairs: list[tuple[AnnotationRecord, AnnotationRecord | None]]
    indexed: int
    last: UUID | None


@dataclass(frozen=True, slots=True)
class AnnotationQuery:
    """A search over the live annotations of a namespace; every given condition must hold.

    Attributes:
        namespace: The namespace.
        types: Lineage entries (``ns/NAME v3``), or prefixes ending in ``v`` (``ns/NAME v``,
            any version): an annotation matches when its type's lineage has one.
        subtypes: Whether a type's lineage counts (is-a), or only the type itself.
        associations: ``(type, id)`` pairs that must all be among the annotation's.
        time: ``(start, end)`` in seconds.
        time_op: ``overlaps`` (closed ranges share an instant) or ``within``.
        box: ``(x0, y0, x1, y1)``.
        box_op: ``intersects`` (closed boxes touch or overlap) or ``within``.
        text: FTS tokens that must appear in this order in one text field.
        text_fields: Only these text fields (None: any).
        where: A condition on ``data.*`` fields.
        kinds: The reeldb type of each ``data`` field ``where`` names.
        sort: ``time``, ``-time``, ``created``, ``-created`` or ``relevance``.
        after: Where the previous page ended (from `AnnotationStore.search_annotations`).
        limit: Page size.
    """

    namespace: str
    types: tuple[str, ...] | None = None
    subtypes: bool = True
    associations: tuple[tuple[str, str], ...] = ()
    time: tuple[float, float] | None = None
    time_op: str = "overlaps"
    box: tuple[float, float, float, float] | None = None
    box_op: str = "intersects"
    text: tuple[str, ...] = ()
    text_fields: tuple[str, ...] | None = None
    where: Expr | None = None
    kinds: dict[str, str] | None = None
    sort: str = "time"
    after: tuple[float | int, ...] | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AnnotationColumns:
    """Stored annotation versions as columns: item ``i`` of every field is one version.

    A bulk read for exports (`AnnotationStore.annotation_columns`): no object per version.

    Attributes:
        ids: Annotation ids, as the 16 bytes of the UUID.
        versions: Version numbers.
        type_names: Annotation type names.
        type_versions: Annotation type versions.
        deleted: True for a tombstone.
        created_at: When each version was stored: ISO 8601 in UTC with microseconds
            (``2026-12-07T13:43:53.123456+00:00``).
        created_by: The principal that stored it, if known.
        bodies: ``{"associations": [...], "data": {...}}`` as JSON bytes (none at all when
            not asked for).
        cursor: Where the page ends: the ``after`` of the next page (None when empty).
    """

    ids: tuple[bytes, ...] = ()
    versions: tuple[int, ...] = ()
    type_names: tuple[str, ...] = ()
    type_versions: tuple[int, ...] = ()
    deleted: tuple[bool, ...] = ()
    created_at: tuple[str, ...] = ()
    created_by: tuple[str | None, ...] = ()
    bodies: tuple[bytes, ...] = ()
    cursor: tuple[int, int] | None = None


class AnnotationStore(abc.ABC):
    """Annotations: every version (the source of truth) and the index of current ones."""

    def put_annotations(
        self, writes: Sequence[AnnotationWrite], audit: Sequence[AuditEntry] = ()
    ) -> None:
        """Store new versions, all or none, each only if its annotation is where expected.

        Raises:
            AlreadyExistsError: A new annotation's id is taken.
            VersionConflictError: An annotation is not at its expected version (or is
                deleted).
            NotFoundError: An annotation to update does not exist in its namespace.
        """
        [error] = self.put_annotation_batches([(writes, audit)])
        if error is not None:
            raise error

    @abc.abstractmethod
    def put_annotation_batches(
        self, batches: Sequence[tuple[Sequence[AnnotationWrite], Sequence[AuditEntry]]]
    ) -> list[ReelError | None]:
        """Store several independent batches in one transaction (group commit).

        Each batch is all or none (see `put_annotations`), with its audit entries; a batch
        that fails leaves the others stored.

        Returns:
            Per batch: None if stored, else why not.
        """

    @abc.abstractmethod
    def annotation_ids(self, namespace: str, *, after: UUID | None, limit: int) -> list[UUID]:
        """The ids of a namespace's annotations (deleted ones too), in order.

        Args:
            namespace: The namespace.
            after: Only ids greater than this (the cursor), or None.
            limit: At most this many.

        Returns:
            The ids, ascending.
        """

    @abc.abstractmethod
    def reindex_annotations(self, writes: Sequence[AnnotationWrite]) -> None:
        """Rewrite what search reads of annotations at their current versions (a reindex).

        One transaction; no version is added.

        Args:
            writes: Each annotation's current version, derived again (``expected_version``
                is that version).

        Raises:
            VersionConflictError: An annotation moved on meanwhile (or was deleted).
            NotFoundError: An annotation does not exist.
        """

    @abc.abstractmethod
    def get_annotation(
        self, namespace: str, annotation_id: UUID, version: int | None = None
    ) -> AnnotationRecord:
        """One version (None: the current one) of an annotation of a namespace.

        Raises:
            NotFoundError: No such annotation in the namespace, or no such version.
        """

    @abc.abstractmethod
    def annotation_versions(self, namespace: str, annotation_id: UUID) -> list[AnnotationRecord]:
        """Every version of an annotation, oldest first.

        Raises:
            NotFoundError: No such annotation in the namespace.
        """

    @abc.abstractmethod
    def annotation_history(
        self, namespace: str, *, after: UUID | None, limit: int, bodies: bool = True
    ) -> list[AnnotationRecord]:
        """Every version of the first ``limit`` annotations of a namespace, in id order.

        Deleted annotations are included: this is what ``reeldb migrate-backend`` copies and
        checks.

        Args:
            namespace: The namespace.
            after: Only annotations whose id is greater (the cursor), or None.
            limit: At most this many annotations (not versions).
            bodies: False leaves ``body`` empty.

        Returns:
            The versions, ordered by annotation id, then version.
        """

    @abc.abstractmethod
    def annotation_heads(
        self, namespace: str, *, after: UUID | None, limit: int, at: datetime | None
    ) -> list[tuple[AnnotationRecord, AnnotationRecord | None]]:
        """The current versions of a page of annotations, each with its version of an instant.

        The first ``limit`` annotations of a namespace, in id order: what a reprocessing
        job reads of each (`reeldb.reprocess`). Unlike `annotation_history`, its cost does
        not grow with the annotations' histories.
        Deleted annotations are included.

        Args:
            namespace: The namespace.
            after: Only annotations whose id is greater (the cursor), or None.
            limit: At most this many annotations.
            at: The instant (a job's snapshot), or None for now.

        Returns:
            Per annotation: its current version, and the last version stored at or before
            ``at`` (the current one itself if nothing was stored since; None if the
            annotation was created after ``at``).
        """

    def unindexed_annotations(
        self,
        namespace: str,
        *,
        after: UUID | None,
        before: UUID | None,
        limit: int,
        at: datetime | None,
        derive: DeriveSearchRows,
    ) -> AnnotationHeadPage:
        """`annotation_heads`, less the annotations whose search rows are already right.

        For a reindex (`reeldb.reprocess`): a live annotation, at the same version now as at
        ``at``, whose stored search rows (head row, time and box, full text, links) equal
        what ``derive`` makes of its version is counted in ``indexed`` instead of returned:
        checked in bulk, on a read snapshot, it costs the job no write. The rest (deleted,
        changed since ``at``, left to the ordinary path by ``derive``, or not indexed as
        derived) are returned as `annotation_heads` returns them; annotations created after
        ``at`` only move the cursor.

        This default checks nothing (``indexed`` is 0): a store may check in bulk.

        Args:
            namespace: The namespace.
            after: Only annotations whose id is greater (the cursor), or None.
            before: Only annotations whose id is smaller (a partition's end), or None.
            limit: At most this many annotations read.
            at: The instant (a job's snapshot), or None for now.
            derive: What search reads of a version.

        Returns:
            The page.
        """
        pairs = self.annotation_heads(namespace, after=after, limit=limit, at=at)
        pairs = [pair for pair in pairs if before is None or pair[0].id < before]
        return AnnotationHeadPage(pairs, 0, pairs[-1][0].id if pairs else None)

    @abc.abstractmethod
    def annotation_columns(
        self,
        namespace: str,
        *,
        after: tuple[int, int] | None,
        limit: int,
        bodies: bool = True,
    ) -> AnnotationColumns:
        """The next ``limit`` stored versions of a namespace's annotations, as columns.

        What `annotation_history` reads (every version, deletions included), in bulk, for
        exports that read millions of versions (issue 9's Iceberg export). Pages follow the
        order the store keeps annotations in (each annotation's versions together, oldest
        first), not id order: an annotation created meanwhile may land before the cursor,
        and is then read by the next pass.

        Args:
            namespace: The namespace.
            after: The ``cursor`` of the previous page, or None for the first page.
            limit: At most this many versions (a page may end inside an annotation's
                versions: the next one resumes there).
            bodies: False leaves ``bodies`` empty (no item per version).

        Returns:
            The page (no versions: no more).
        """

    @abc.abstractmethod
    def search_annotations(
        self, query: AnnotationQuery
    ) -> tuple[list[AnnotationRecord], tuple[float | int, ...] | None]:
        """One page of current, live annotations matching a query.

        Returns:
            The page, and the ``after`` of the next page (None on the last one).
        """

    @abc.abstractmethod
    def count_annotations(self, namespace: str) -> int:
        """The live annotations of a namespace."""

    @abc.abstractmethod
    def association_types(self, namespace: str) -> tuple[str, ...] | None:
        """The association types a namespace allows (None: any)."""

    @abc.abstractmethod
    def set_association_types(self, namespace: str, types: Sequence[str] | None) -> None:
        """Restrict (or, with None, free) the association types of a namespace.

        Raises:
            NotFoundError: No such namespace.
        """


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A stored reprocessing job (`reeldb.reprocess`).

    Attributes:
        id: The job id.
        namespace: The namespace it reads (and writes).
        name: Its name, from the spec.
        spec: The job's spec as JSON text.
        state: ``running``, ``paused``, ``cancelled``, ``done`` or ``failed``.
        round: The catch-up round its partitions belong to (0: the snapshot).
        snapshot: Where the source stood when the job started (JSON text, source-defined).
        total: Items of the snapshot, as counted when the job started.
        error: Why it failed.
        created_by: Who submitted it.
        created_at: When.
        updated_at: When its state last changed.
    """

    id: UUID
    namespace: str
    name: str
    spec: str
    state: str
    round: int
    snapshot: str
    total: int
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PartitionRecord:
    """One slice of a job's work, processed by one worker at a time and checkpointed.

    Attributes:
        job_id: The job.
        number: Its number within the job (unique across rounds).
        round: The round it belongs to.
        kind: ``range`` (keys ``lo`` <= key < ``hi``), ``changes`` (what changed between the
            positions ``lo`` and ``hi``) or ``retry`` (the job's dead letters sent back).
        lo: Where it starts (source-defined text).
        hi: Where it ends.
        state: ``pending``, ``running`` or ``done``.
        cursor: The key of the last item done (None: none yet).
        done: Items processed.
        changed: Items that produced output.
        skipped: Items left alone (filtered out, unchanged, superseded).
        failed: Items sent to the dead-letter list.
        owner: The worker that holds it while ``running``.
        lease_until: Until when; after that another worker may take it over.
        attempts: How many times it was claimed.
    """

    job_id: UUID
    number: int
    round: int
    kind: str
    lo: str
    hi: str
    state: str = "pending"
    cursor: str | None = None
    done: int = 0
    changed: int = 0
    skipped: int = 0
    failed: int = 0
    owner: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An item a job gave up on after its retries.

    Attributes:
        job_id: The job.
        item: The item's key.
        partition: The partition that met it.
        error: The last error.
        attempts: Attempts made.
        at: When it was given up.
        state: ``dead``, or ``retrying`` once sent back to be tried again.
    """

    job_id: UUID
    item: str
    partition: int
    error: str
    attempts: int
    at: datetime
    state: str = "dead"


@dataclass(frozen=True, slots=True)
class Progress:
    """What one checkpoint adds to a partition's counts.

    Attributes:
        done: Items processed.
        changed: Items that produced output.
        skipped: Items left alone.
        failed: Items sent to the dead-letter list.
    """

    done: int = 0
    changed: int = 0
    skipped: int = 0
    failed: int = 0


class JobStore(abc.ABC):
    """Reprocessing jobs: their partitions, leased to workers and checkpointed, and dead letters."""

    @abc.abstractmethod
    def add_job(self, job: JobRecord, partitions: Sequence[PartitionRecord]) -> None:
        """Store a new job with its first partitions, in one transaction."""

    @abc.abstractmethod
    def get_job(self, job_id: UUID) -> JobRecord:
        """A job.

        Raises:
            NotFoundError: No such job.
        """

    @abc.abstractmethod
    def list_jobs(
        self, namespace: str | None, *, before: UUID | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs, newest first (of a namespace, or all); ``before`` is the paging cursor."""

    @abc.abstractmethod
    def set_job_state(
        self,
        job_id: UUID,
        state: str,
        at: datetime,
        *,
        expect: Sequence[str],
        error: str | None = None,
    ) -> JobRecord | None:
        """Move a job to ``state`` if it is in one of ``expect``.

        Pausing or cancelling hands the job's running partitions back (their work stops at
        the next checkpoint, which is refused).

        Returns:
            The job after the change, or None if it was not in an expected state.

        Raises:
            NotFoundError: No such job.
        """

    @abc.abstractmethod
    def job_partitions(self, job_id: UUID) -> list[PartitionRecord]:
        """Every partition of a job, by number."""

    @abc.abstractmethod
    def claim_partition(
        self, job_id: UUID, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> PartitionRecord | None:
        """Take a pending partition, or one whose lease lapsed, of a ``running`` job.

        Args:
            job_id: The job.
            owner: The worker.
            now: The time, to tell lapsed leases.
            lease_until: Until when the worker holds it.
            limit: At most this many partitions of the job run at once (its concurrency).

        Returns:
            The partition, or None if there is none to take (or the limit is reached).
        """

    @abc.abstractmethod
    def checkpoint_partition(
        self,
        job_id: UUID,
        number: int,
        owner: str,
        *,
        cursor: str | None,
        progress: Progress,
        lease_until: datetime,
        dead: Sequence[DeadLetter] = (),
        resolved: Sequence[str] = (),
        finished: bool = False,
    ) -> bool:
        """Record a partition's progress if ``owner`` still holds it, in one transaction.

        With it: the batch's new dead letters (``dead``), and the dead letters whose retry
        succeeded (``resolved``, item keys), which are removed.

        Returns:
            False if the worker lost the partition (lease taken over, job paused or
            cancelled): it must stop, and what it did since its last checkpoint is redone.
        """

    @abc.abstractmethod
    def next_round(
        self,
        job_id: UUID,
        round: int,
        partitions: Sequence[PartitionRecord],
        snapshot: str,
        at: datetime,
    ) -> bool:
        """Start the job's next round, if it is still at ``round`` with every partition done.

        With no partitions the job is ``done``.

        Returns:
            Whether this call made the change (one worker does it).
        """

    @abc.abstractmethod
    def dead_letters(
        self, job_id: UUID, *, after: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """A job's dead letters, by item key."""

    @abc.abstractmethod
    def retry_dead_letters(self, job_id: UUID, partition: PartitionRecord, at: datetime) -> int:
        """Send a job's dead letters back to be processed again.

        Marks them ``retrying``, adds ``partition`` (kind ``retry``) to process them, and
        sets a finished job ``running`` again.

        Returns:
            How many were sent back (0: nothing is added).
        """

    @abc.abstractmethod
    def retrying_letters(self, job_id: UUID, *, after: str | None, limit: int) -> list[DeadLetter]:
        """The dead letters being retried, by item key."""

    @abc.abstractmethod
    def publish_live_latency(self, source: str, p99: float, samples: int, at: datetime) -> None:
        """Record the p99 latency (seconds) of a serving process's recent requests.

        Args:
            source: The process (host and pid): its earlier record is replaced.
            p99: The p99 of its recent requests' durations, in seconds.
            samples: How many requests it is the p99 of.
            at: When it was measured (sources silent for an hour are forgotten).
        """

    @abc.abstractmethod
    def live_latency(self, since: datetime) -> float | None:
        """The highest p99 (seconds) published since ``since`` by any source; None if none."""

    @abc.abstractmethod
    def runnable_jobs(self, now: datetime) -> list[UUID]:
        """Running jobs with a partition to take, or with every partition done.

        A partition to take is pending or has a lapsed lease; a job with every partition
        done has a round to close (`next_round`).
        """


class Store(MetadataStore, DocumentStore, AccessStore, SearchStore, AnnotationStore, JobStore):
    """A backend: every port over one database, plus its lifecycle."""

    url: str

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; later calls raise `DatabaseClosedError`."""
