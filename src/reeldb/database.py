"""`Database`: the facade every face (library, CLI, HTTP, client) calls, one method per use case.

Embedded use runs as the local owner: the facade applies no authorisation. The service
issue's policy layer wraps it and checks roles at the boundary.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from uuid_utils.compat import uuid7

from reeldb import _json, _wire
from reeldb._cache import ByteLRU
from reeldb._ids import parse_uuid
from reeldb.annotations import Annotations
from reeldb.auth.keys import KEY_PREFIX, hash_secret, new_api_key, parse_api_key
from reeldb.auth.model import ApiKey, AuditEntry, NewApiKey, Principal
from reeldb.auth.tokens import TokenVerifier
from reeldb.blobs import key_file
from reeldb.config import DEFAULT_DATABASE, Settings, load_settings
from reeldb.errors import (
    ConflictError,
    InvalidSchemaError,
    NotFoundError,
    ReelError,
    StaleSchemaError,
    UnauthenticatedError,
    ValidationError,
    Violation,
)
from reeldb.index.model import EventHit, Generation
from reeldb.index.rows import Column, DocumentRows, columns_for, document_rows
from reeldb.ingest import Blobs, DocumentIngest
from reeldb.model.datastore import DataStore, DataStoreRef, Namespace, Role, RoleGrant
from reeldb.model.document import (
    Document,
    DocumentInfo,
    Page,
    check_timeline,
    decode_cursor,
    encode_cursor,
)
from reeldb.model.mid import check_mid, check_mid_keys, mid_key
from reeldb.model.names import (
    check_namespace,
    check_principal,
    check_schema_name,
    check_version,
)
from reeldb.model.requests import WriteRequest, WriteState
from reeldb.model.search import DocumentMatch, EventMatch, QueryRequest, QueryState
from reeldb.model.timing import FrameRate, TimeRange
from reeldb.query import FieldInfo, check_query, parse_query, searchable_fields
from reeldb.query.ast import Expr
from reeldb.query.json_form import to_json
from reeldb.schema.builtins import BUILTIN_NAMESPACE
from reeldb.schema.model import CompatibilityMode, SchemaKind, SchemaSubject, SchemaVersion
from reeldb.schema.registry import CompatibilityReport, SchemaRegistry
from reeldb.store import NewDocument, Store, load_store, redact_url
from reeldb.store.base import DocumentBatch, DocumentRecord, QueryRequestRecord

if TYPE_CHECKING:
    from reeldb.reprocess import Reprocessing

__all__ = [
    "COUNT_BUDGET",
    "LOCAL_OWNER",
    "Database",
    "PreparedWrite",
    "check_document_id",
    "check_request_id",
    "connect",
    "poll_query",
]

_WRITE_RETRIES = 8
MAX_PAGE_SIZE = 1000
COUNT_BUDGET = 2_000_000
"""How much work a DataStore-level filter may spend counting its matches for ``total``
(`SearchStore.count_matches`; on SQLite, virtual-machine instructions: ~10-20 ms)."""
_AUTHENTICATED_ENTRIES = 10_000
_QUERY_BATCH = 1000  # results an asynchronous query stores per transaction
_QUERY_LEASE = timedelta(seconds=60)  # a runner silent this long is taken over
_log = logging.getLogger(__name__)
LOCAL_OWNER = "local:owner"
"""The principal of embedded use (the library and the CLI on the database file)."""

DocumentInput = Mapping[str, Any] | bytes | str
"""A document as a decoded JSON object or as JSON text."""


T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """Validated documents for one DataStore, ready for `Database.commit_documents`.

    Attributes:
        datastore: The DataStore, at the schema version the documents were validated against.
        pending: Each document ready to persist, with its decoded data.
        audit: The audit entry to record with the documents.
        columns: The DataStore's searchable columns at that schema version.
        index: Each document cut into index rows.
        replaces: For each document, the ``seq`` its MID's latest document must still have
            (see `reeldb.store.base.DocumentBatch`); empty: no condition.
    """

    datastore: DataStore
    pending: list[tuple[NewDocument, Any]]
    audit: AuditEntry | None = None
    columns: tuple[Column, ...] = ()
    index: tuple[DocumentRows, ...] = ()
    replaces: tuple[int | None, ...] = ()

    def stored(self) -> list[Document]:
        """The documents as stored (after a commit).

        Returns:
            The documents, in order.
        """
        ds = self.datastore
        return [
            Document(new.id, ds.ref, _mid(new.mid_key), ds.schema_version, new.created_at, new.body)
            for new, _ in self.pending
        ]


def connect(url: str | None = None, **settings: Any) -> Database:
    """Open a reeldb database, creating it if needed.

    Args:
        url: ``sqlite:///path/to/reel.db`` (created with its directory), ``memory:`` for a
            private in-memory database, or ``postgresql://user[:password]@host/dbname``
            (migrated on open). Defaults to the ``database`` setting
            (``REELDB_DATABASE``, ``reeldb.toml``), itself ``sqlite:///./reeldb-data/reel.db``.
        **settings: Overrides of other settings (see `reeldb.config.SETTINGS`).

    Returns:
        The open database; use it as a context manager or call ``close()``.

    Raises:
        ConfigError: An unknown setting or an unsupported URL.
        BackendUnavailableError: The database cannot be opened.

    Example:
        >>> import reeldb
        >>> with reeldb.connect("memory:") as db:
        ...     db.create_namespace("vision").name
        'vision'
    """
    effective = load_settings({**settings, "database": url})
    return Database(load_store(effective.database, effective), effective)


class Database:
    """The reeldb use cases over one storage backend.

    Args:
        store: An open backend (see `reeldb.store.load_store`).
        settings: Effective settings.
    """

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings(database=store.url)
        self.schemas = SchemaRegistry(store)
        self.annotations = Annotations(self)
        """Annotations: create, version, delete, search (`reeldb.annotations.Annotations`)."""
        self.blobs = Blobs(self, _data_dir(self.settings.database, store.url))
        """Large payloads uploaded before the writes that use them (`reeldb.ingest.Blobs`)."""
        self._ingest = DocumentIngest(self)
        self.schemas.open_body = lambda blob: self.blobs.store.open(blob)
        self._refs: dict[int, DataStoreRef] = {}  # a DataStore's identity never changes
        # DataStores by identity. Only `schema_version` of a cached one can be stale: reads
        # do not use it, and writes are checked against the current version in their own
        # transaction (StaleSchemaError, then this cache is refreshed).
        self._datastores: dict[DataStoreRef, DataStore] = {}
        self._verifier: TokenVerifier | None = None
        # Documents never change under their DocumentID (nor are they deleted), so recently
        # read ones are kept, up to the `document_cache_bytes` setting.
        self._documents: ByteLRU[UUID, DocumentRecord] = ByteLRU(self.settings.document_cache_bytes)
        # Searchable fields and their columns by schema version (a version never changes).
        self._schema_fields: dict[
            tuple[str, str, int], tuple[dict[tuple[str, str], FieldInfo], tuple[Column, ...]]
        ] = {}
        # Authenticated keys (by hash), valid while the store's access generation stays.
        self._authenticated: dict[bytes, tuple[int, Principal]] = {}
        # Asynchronous queries run on threads of this process, each held by a lease.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid7()}"
        self._queries_lock = threading.Lock()
        self._queries: ThreadPoolExecutor | None = None
        self._running_queries: set[UUID] = set()
        self._closing = False
        self._ephemeral_secret = os.urandom(32)

    @functools.cached_property
    def reprocess(self) -> Reprocessing:
        """Reprocessing jobs: reindex, backfill, migrate, export (`reeldb.reprocess`)."""
        from reeldb.reprocess import Reprocessing

        return Reprocessing(self)

    @property
    def url(self) -> str:
        """The database URL."""
        return self.store.url

    def close(self) -> None:
        """Close the database; later calls raise `DatabaseClosedError`.

        Asynchronous queries running here stop at their next batch and are handed back
        (``pending``): the next poll, from any process, runs them again.
        """
        with self._queries_lock:
            self._closing = True
            queries, self._queries = self._queries, None
        if queries is not None:
            queries.shutdown(wait=True, cancel_futures=True)
        self.blobs.close()
        self.store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<reeldb.Database {redact_url(self.url)}>"

    # -- namespaces and roles -------------------------------------------------------------

    def create_namespace(
        self, name: str, *, description: str = "", admins: Sequence[str] = ()
    ) -> Namespace:
        """Create a namespace (a tenant) and make the given principals its admins.

        Args:
            name: An LDAP-style group name, e.g. ``media-video-analytics``.
            description: Free text.
            admins: Principals (``user:alice``) to grant the admin role.

        Returns:
            The namespace.

        Raises:
            ValidationError: A bad name or principal.
            AlreadyExistsError: The namespace exists.
        """
        check_namespace(name)
        if name == BUILTIN_NAMESPACE:
            raise ValidationError(f"namespace {name} is reserved for built-in schemas")
        checked = list(dict.fromkeys(check_principal(principal) for principal in admins))
        return self.store.create_namespace(name, description, _now(), checked)

    def get_namespace(self, name: str) -> Namespace:
        """Read a namespace.

        Args:
            name: The namespace name.

        Returns:
            The namespace.

        Raises:
            NotFoundError: No such namespace.
        """
        return self.store.get_namespace(check_namespace(name))

    def list_namespaces(self) -> list[Namespace]:
        """Every namespace, by name.

        Returns:
            The namespaces.
        """
        return self.store.list_namespaces()

    def grant_role(self, namespace: str, principal: str, role: str | Role) -> RoleGrant:
        """Give a principal a role in a namespace (replacing its previous role there).

        Args:
            namespace: The namespace.
            principal: The principal, e.g. ``app:shot-detector``.
            role: ``admin``, ``writer`` or ``reader``.

        Returns:
            The grant.

        Raises:
            ValidationError: A bad principal or role.
            NotFoundError: No such namespace.
        """
        return self.store.grant_role(
            check_namespace(namespace), check_principal(principal), Role.parse(role), _now()
        )

    def revoke_role(self, namespace: str, principal: str) -> None:
        """Remove a principal's role in a namespace.

        Args:
            namespace: The namespace.
            principal: The principal.

        Raises:
            NotFoundError: The principal has no role there.
        """
        self.store.revoke_role(check_namespace(namespace), check_principal(principal))

    def list_roles(self, namespace: str) -> list[RoleGrant]:
        """Every role grant in a namespace.

        Args:
            namespace: The namespace.

        Returns:
            The grants, by principal.

        Raises:
            NotFoundError: No such namespace.
        """
        self.store.get_namespace(check_namespace(namespace))
        return self.store.list_roles(namespace)

    # -- schemas --------------------------------------------------------------------------

    def add_schema(
        self,
        namespace: str,
        definition: Mapping[str, Any] | str | bytes,
        *,
        name: str | None = None,
        compatibility: str | CompatibilityMode | None = None,
    ) -> SchemaVersion:
        """Add a schema version after checking it (see docs/schemas.md).

        Args:
            namespace: The namespace.
            definition: A DSL definition or a plain JSON Schema 2020-12 document, decoded or
                as JSON text.
            name: The schema name, if the definition carries none (plain JSON Schema).
            compatibility: The compatibility mode of a new schema (default ``BACKWARD``).

        Returns:
            The stored version. DataStores using the schema now validate against it.

        Raises:
            InvalidSchemaError: The definition is malformed; every problem is listed.
            IncompatibleSchemaError: The version breaks a rule; every problem is listed.
            NotFoundError: The namespace or a parent schema does not exist.
            AlreadyExistsError: The requested version exists.
        """
        added = self.schemas.add(
            namespace, self._decode(definition), name=name, compatibility=compatibility
        )
        self._datastores.clear()  # DataStores using the schema moved to the new version
        return added

    def check_schema(
        self,
        namespace: str,
        definition: Mapping[str, Any] | str | bytes,
        *,
        name: str | None = None,
        compatibility: str | CompatibilityMode | None = None,
    ) -> CompatibilityReport:
        """Check a candidate schema version without storing it.

        Args:
            namespace: The namespace.
            definition: A DSL definition or plain JSON Schema.
            name: The schema name, if the definition carries none.
            compatibility: The compatibility mode of a new schema.

        Returns:
            The report: ``compatible``, and every incompatibility with its JSON path.

        Raises:
            InvalidSchemaError: The definition is malformed.
            NotFoundError: The namespace or a parent schema does not exist.
        """
        return self.schemas.check(
            namespace, self._decode(definition), name=name, compatibility=compatibility
        )

    @staticmethod
    def _decode(definition: Mapping[str, Any] | str | bytes) -> Any:
        if isinstance(definition, str | bytes):
            return _json.loads(definition, what="schema definition")
        return definition

    def get_schema(self, namespace: str, name: str, version: int | None = None) -> SchemaVersion:
        """Read a schema version (built-ins such as ``TEMPORAL_SPATIAL_BASE`` from anywhere).

        Args:
            namespace: The namespace.
            name: The schema name.
            version: The version, or None for the latest.

        Returns:
            The schema version; ``json_schema`` is the compiled JSON Schema 2020-12.

        Raises:
            NotFoundError: No such schema or version.
        """
        checked = None if version is None else check_version(version, "schema version")
        return self.schemas.get(check_namespace(namespace), check_schema_name(name), checked)

    def list_schemas(self, namespace: str) -> list[SchemaSubject]:
        """The namespace's schemas, then the built-ins.

        Args:
            namespace: The namespace.

        Returns:
            One subject per schema name, with its versions and compatibility mode.

        Raises:
            NotFoundError: No such namespace.
        """
        if namespace != BUILTIN_NAMESPACE:
            self.store.get_namespace(check_namespace(namespace))
        return self.schemas.subjects(namespace)

    def list_schema_versions(self, namespace: str, name: str) -> list[SchemaVersion]:
        """Every version of a schema, oldest first.

        Args:
            namespace: The namespace.
            name: The schema name.

        Returns:
            The versions.

        Raises:
            NotFoundError: No such schema.
        """
        return self.schemas.versions(check_namespace(namespace), check_schema_name(name))

    def set_compatibility(
        self, namespace: str, name: str, mode: str | CompatibilityMode
    ) -> SchemaSubject:
        """Change the compatibility mode that later versions of a schema are checked under.

        Args:
            namespace: The namespace.
            name: The schema name.
            mode: ``BACKWARD``, ``FORWARD``, ``FULL``, a ``_TRANSITIVE`` variant, or ``NONE``.

        Returns:
            The updated subject.

        Raises:
            NotFoundError: No such schema.
            ValidationError: Unknown mode.
        """
        return self.schemas.set_compatibility(check_namespace(namespace), name, mode)

    def validate(
        self, namespace: str, schema: str, instance: Any, *, version: int | None = None
    ) -> list[Violation]:
        """Validate a value against a schema version without storing anything.

        Args:
            namespace: The namespace.
            schema: The schema name.
            instance: The decoded value.
            version: The version, or None for the latest.

        Returns:
            Every violation; empty when valid.

        Raises:
            NotFoundError: No such schema or version.
        """
        found = self.get_schema(namespace, schema, version)
        validator = self.schemas.validator(found)
        return [] if validator.is_valid(instance) else validator.violations(instance)

    # -- DataStores -----------------------------------------------------------------------

    def create_datastore(
        self,
        datastore: str | DataStoreRef,
        *,
        mid_keys: Sequence[str],
        schema: str,
        description: str = "",
    ) -> DataStore:
        """Create a DataStore for one kind of media analysis.

        Args:
            datastore: ``namespace/analysis_type/version``, e.g. ``vision/object_detection/2``.
            mid_keys: The MID schema, immutable: the keys every MID has, e.g.
                ``["title_id", "video_stream_id"]``.
            schema: The name of a document schema (or plain JSON Schema) in the namespace;
                the DataStore follows its latest version.
            description: Free text.

        Returns:
            The DataStore.

        Raises:
            ValidationError: A bad identity or MID schema, or a schema of the wrong kind.
            NotFoundError: The namespace or schema does not exist.
            AlreadyExistsError: The DataStore exists.
        """
        ref = DataStoreRef.parse(datastore)
        keys = check_mid_keys(mid_keys)
        found = self.schemas.get(ref.namespace, check_schema_name(schema))
        if found.namespace != ref.namespace:
            raise ValidationError(
                f"{schema} is a built-in schema; a DataStore needs a document schema of "
                f"namespace {ref.namespace}"
            )
        if found.kind is SchemaKind.PROPERTIES:
            raise InvalidSchemaError(
                f"schema {found.ref} describes properties (an annotation type), not a media "
                "document; give a DataStore a schema with 'levels' or a plain JSON Schema"
            )
        return self.store.create_datastore(
            ref, keys, found.name, found.version, description, _now()
        )

    def get_datastore(self, datastore: str | DataStoreRef) -> DataStore:
        """Read a DataStore.

        Args:
            datastore: ``namespace/analysis_type/version``.

        Returns:
            The DataStore.

        Raises:
            NotFoundError: No such DataStore.
        """
        return self.store.get_datastore(DataStoreRef.parse(datastore))

    def _datastore(self, datastore: str | DataStoreRef, *, fresh: bool = False) -> DataStore:
        ref = DataStoreRef.parse(datastore)
        found = None if fresh else self._datastores.get(ref)
        if found is None:
            found = self._datastores[ref] = self.store.get_datastore(ref)
        return found

    def list_datastores(self, namespace: str | None = None) -> list[DataStore]:
        """DataStores, ordered by identity.

        Args:
            namespace: Only this namespace's; every DataStore when None.

        Returns:
            The DataStores.
        """
        if namespace is not None:
            self.store.get_namespace(check_namespace(namespace))
        return self.store.list_datastores(namespace)

    def count_documents(self, datastore: str | DataStoreRef) -> int:
        """How many documents a DataStore holds (every version of every MID).

        Args:
            datastore: ``namespace/analysis_type/version``.

        Returns:
            The count.
        """
        return self.store.count_documents(self._datastore(datastore).id)

    # -- documents ------------------------------------------------------------------------

    def put_document(
        self, datastore: str | DataStoreRef, mid: Mapping[str, str], document: DocumentInput
    ) -> Document:
        """Validate and store a new, immutable document for a MID.

        Every call creates a new DocumentID, also when the same content is written again
        (NMDB-16). A read right after the call sees the document.

        Args:
            datastore: ``namespace/analysis_type/version``.
            mid: The media ID; its keys must be exactly the DataStore's MID keys.
            document: The media document (decoded, or JSON text).

        Returns:
            The stored document.

        Raises:
            ValidationError: The MID or document is invalid; every violation is listed
                (JSON pointer + message) and nothing is stored.
            NotFoundError: No such DataStore.
        """
        return self.put_documents(datastore, [(mid, document)])[0]

    def put_documents(
        self,
        datastore: str | DataStoreRef,
        items: Iterable[tuple[Mapping[str, str], DocumentInput]],
        *,
        audit: AuditEntry | None = None,
    ) -> list[Document]:
        """Validate and store many documents in one transaction: all or none.

        Args:
            datastore: ``namespace/analysis_type/version``.
            items: ``(mid, document)`` pairs.
            audit: An audit entry to record in the same transaction, if the write succeeds
                (the service records who wrote).

        Returns:
            The stored documents, in order.

        Raises:
            ValidationError: Any item is invalid; violations are prefixed with the item's
                index (``/3/tracks/0/...``) and nothing is stored.
            NotFoundError: No such DataStore.
        """
        [result] = self.commit_documents([self.prepare_documents(datastore, items, audit=audit)])
        if isinstance(result, ReelError):
            raise result
        return result

    def put_document_from_blob(
        self,
        datastore: str | DataStoreRef,
        mid: Mapping[str, str],
        blob_id: UUID | str,
        *,
        request_id: UUID | None = None,
        audit: AuditEntry | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Document:
        """Write a document of any size from an uploaded blob, in bounded memory.

        The blob is read twice as a stream: once to validate the document level by level
        and event by event, once to index it in batches. Readers see the new DocumentID
        only when it is fully stored and indexed. The body stays in the blob (encrypted at
        rest); reads stream it from there.

        Args:
            datastore: ``namespace/analysis_type/version``.
            mid: The media ID.
            blob_id: A blob uploaded to the DataStore's namespace (`db.blobs`).
            request_id: Resume an interrupted write with this id (default: a new write).
            audit: An audit entry recorded with the document.
            progress: Called with ``(done, total)``: bytes validated, then rows indexed.

        Returns:
            The stored document, without its body (``blob`` holds it: read it with
            `get_document`, or stream it with `open_document_body`).

        Raises:
            ValidationError: The MID or document is invalid (every violation, bounded, with
                the total), or the blob is not UTF-8 JSON; nothing is stored.
            NotFoundError: No such DataStore, or no such blob in its namespace.
        """
        return self._ingest.run(
            datastore, dict(mid), blob_id, request_id=request_id, audit=audit, progress=progress
        )

    def submit_write(
        self,
        datastore: str | DataStoreRef,
        mid: Mapping[str, str],
        *,
        blob: UUID | str | None = None,
        document: DocumentInput | None = None,
        idempotency_key: str | None = None,
        webhook: str | None = None,
        created_by: str = "user:local",
    ) -> tuple[WriteRequest, bool]:
        """Accept a document write to run asynchronously (any size; NMDB-24).

        The request is durable when this returns; a worker (``reeldb worker``, or the one
        ``reeldb serve`` embeds) validates, persists and indexes it. Follow it with
        `get_write_request` or `wait_write_request`.

        Args:
            datastore: ``namespace/analysis_type/version``.
            mid: The media ID (checked now).
            blob: An uploaded blob of the DataStore's namespace holding the document.
            document: Or the document itself (stored as a blob first).
            idempotency_key: A retried submission with the same key (in the namespace)
                returns the first request instead of writing again.
            webhook: An ``http(s)`` URL called with the final state, signed
                (``X-Reeldb-Signature: sha256=<HMAC of the body>``).
            created_by: Who submits it.

        Returns:
            The request, and whether it is new (False: the idempotency key's request).

        Raises:
            ValidationError: Neither or both of ``blob`` and ``document``, a bad MID, a
                malformed webhook URL or idempotency key, a blob not uploaded yet.
            NotFoundError: No such DataStore, or no such blob in its namespace.
        """
        ds = self._datastore(datastore)
        key = check_mid(mid, ds.mid_keys)
        if (blob is None) == (document is None):
            raise ValidationError("give the document either as a blob or inline, not both")
        if webhook is not None and not (
            isinstance(webhook, str) and webhook.startswith(("http://", "https://"))
        ):
            raise ValidationError(f"webhook must be an http:// or https:// URL, got {webhook!r}")
        if idempotency_key is not None and not (
            isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= 200
        ):
            raise ValidationError("idempotency_key must be a string of 1 to 200 characters")
        namespace = ds.ref.namespace
        if document is not None:  # (a retried submission's copy is garbage, collected later)
            if isinstance(document, str):
                body = document.encode()
            elif isinstance(document, bytes | bytearray | memoryview):
                body = bytes(document)
            else:
                body = _json.dumps(document)
            record = self.blobs.put(namespace, [body], created_by=created_by)
        else:
            assert blob is not None
            record = self.blobs.get(blob, namespace=namespace)
            if record.state == "open":
                raise ValidationError(f"blob {record.id} has not been uploaded yet")
        now = _now()
        request = WriteRequest(
            uuid7(),
            ds.ref,
            dict(key),
            record.id,
            WriteState.PENDING,
            None,
            None,
            idempotency_key,
            webhook,
            created_by,
            now,
            now,
        )
        return self.store.add_write_request(request)

    def get_write_request(
        self, request_id: UUID | str, *, namespace: str | None = None
    ) -> WriteRequest:
        """Where an asynchronous write stands.

        Args:
            request_id: The request id.
            namespace: If given, the request must belong to it.

        Returns:
            The request.

        Raises:
            ValidationError: The id is not a UUID.
            NotFoundError: No such request (in that namespace).
        """
        key = parse_uuid(request_id, "write request id")
        try:
            found = self.store.get_write_request(key)
        except NotFoundError:
            found = None
        if found is None or (namespace is not None and found.datastore.namespace != namespace):
            raise NotFoundError(f"write request {request_id} does not exist")
        return found

    def wait_write_request(
        self, request_id: UUID | str, *, timeout: float = 60.0, poll: float = 0.1
    ) -> WriteRequest:
        """Wait until an asynchronous write is ``INDEXED`` or ``FAILED`` (or the timeout).

        Args:
            request_id: The request id.
            timeout: Seconds to wait at most.
            poll: Seconds between looks.

        Returns:
            The request as it stands when it finished or the time ran out.
        """
        return poll_until(
            lambda: self.get_write_request(request_id), lambda r: r.finished, timeout, poll
        )

    def list_write_requests(
        self,
        namespace: str,
        *,
        unfinished: bool = False,
        limit: int = 100,
        before: UUID | None = None,
    ) -> list[WriteRequest]:
        """A namespace's write requests, newest first.

        Args:
            namespace: The namespace.
            unfinished: Only those still running.
            limit: At most this many.
            before: The cursor: requests older than this one.

        Returns:
            The requests.
        """
        check_limit(limit)
        return self.store.list_write_requests(
            namespace=namespace, unfinished=unfinished, limit=limit, before=before
        )

    def write_audit(self, request: WriteRequest) -> AuditEntry:
        """The audit entry recorded with an asynchronous write's document."""
        return AuditEntry(
            0,
            _now(),
            request.created_by,
            "document.put_async",
            request.datastore.namespace,
            str(request.datastore),
            str(request.id),
            201,
        )

    def write_request_json(self, request: WriteRequest) -> dict[str, Any]:
        """A write request as the service shows it (and as webhooks receive it)."""
        return _wire.write_request(request)

    def webhook_secret(self) -> bytes:
        """The key webhooks are signed with (setting ``webhook_secret``, or a key file)."""
        if self.settings.webhook_secret is not None:
            return self.settings.webhook_secret.encode()
        directory = _data_dir(self.settings.database, self.store.url)
        if directory is None:  # an in-memory database: a secret for its lifetime
            return self._ephemeral_secret
        return key_file(directory / "webhook.key")

    def prepare_documents(
        self,
        datastore: str | DataStoreRef,
        items: Iterable[tuple[Mapping[str, str], DocumentInput]],
        *,
        audit: AuditEntry | None = None,
    ) -> PreparedWrite:
        """Validate documents for a write without storing them (`put_documents`, first half).

        The service validates each request as it arrives and commits the writes of
        concurrent requests together (`commit_documents`): one transaction and one
        ``fsync`` for all of them.

        Args:
            datastore: ``namespace/analysis_type/version``.
            items: ``(mid, document)`` pairs.
            audit: An audit entry to record with the documents.

        Returns:
            The validated write, for `commit_documents`.

        Raises:
            ValidationError: Any item is invalid (see `put_documents`).
            NotFoundError: No such DataStore.
        """
        ds = self._datastore(datastore)
        pending = [self._prepare(ds, mid, doc) for mid, doc in self._check_items(items)]
        return self._validated(ds, pending, audit)

    def _validated(
        self, ds: DataStore, pending: list[tuple[NewDocument, Any]], audit: AuditEntry | None
    ) -> PreparedWrite:
        for _attempt in range(_WRITE_RETRIES):
            schema = self.schemas.get(ds.ref.namespace, ds.schema_name, ds.schema_version)
            validators = self.schemas.document_validators(schema)
            violations: list[Violation] = []
            for index, (new, data) in enumerate(pending):
                found = [
                    v
                    for validator in validators
                    if not validator.is_valid(data)
                    for v in validator.violations(data)
                ]
                # The timeline rules assume the structure the schema guarantees.
                # A quoted key can only appear unescaped as a key, never inside a string.
                found = found or check_timeline(data, frames=b'"start_frame"' in new.body)
                prefix = f"/{index}" if len(pending) > 1 else ""
                violations += [Violation(prefix + v.pointer, v.message) for v in found]
            if not violations:
                columns = self._columns(schema)
                chunk = self.settings.index_chunk_bytes
                rows = tuple(document_rows(data, list(columns), chunk) for _, data in pending)
                return PreparedWrite(ds, pending, audit, columns, rows)
            current = self._datastore(ds.ref, fresh=True)
            if current.schema_version == ds.schema_version:
                what = "document" if len(pending) == 1 else "batch of documents"
                raise ValidationError(
                    f"{what} does not match {ds.schema_name} v{ds.schema_version} of "
                    f"DataStore {ds.ref}; nothing was stored",
                    violations,
                )
            ds = current  # validated against a cached, older version: again
        raise self._kept_changing(ds)

    def commit_documents(self, writes: Sequence[PreparedWrite]) -> list[list[Document] | ReelError]:
        """Store validated writes in one transaction (group commit), each all or none.

        A write whose DataStore moved to a new schema version meanwhile is validated
        again and stored in a later transaction; one that fails leaves the others stored.

        Args:
            writes: From `prepare_documents`.

        Returns:
            For each write, in order: its stored documents, or the `ReelError` that kept it
            out (`ValidationError` if it no longer matches the DataStore's schema).

        Raises:
            BackendUnavailableError: The transaction failed; none of the writes was stored.
        """
        results: list[list[Document] | ReelError | None] = [None] * len(writes)
        todo = dict(enumerate(writes))
        for _attempt in range(_WRITE_RETRIES):
            outcomes = self.store.put_document_batches(
                [
                    DocumentBatch(
                        w.datastore.id,
                        w.datastore.schema_version,
                        [new for new, _ in w.pending],
                        () if w.audit is None else (w.audit,),
                        w.columns,
                        w.index,
                        w.replaces,
                    )
                    for w in todo.values()
                ]
            )
            stale: dict[int, PreparedWrite] = {}
            for (index, write), outcome in zip(todo.items(), outcomes, strict=True):
                if not isinstance(outcome, StaleSchemaError):
                    results[index] = outcome if isinstance(outcome, ReelError) else write.stored()
                    continue
                try:  # the schema moved: validate again against the new version
                    fresh = self._datastore(write.datastore.ref, fresh=True)
                    again = self._validated(fresh, write.pending, write.audit)
                    stale[index] = dataclasses.replace(again, replaces=write.replaces)
                except ReelError as exc:
                    results[index] = exc
            if not stale:
                break
            todo = stale
        else:
            for index, write in todo.items():
                results[index] = self._kept_changing(write.datastore)
        return [r for r in results if r is not None]

    @staticmethod
    def _kept_changing(ds: DataStore) -> ConflictError:
        return ConflictError(f"DataStore {ds.ref} kept changing schema during the write; retry")

    @staticmethod
    def _check_items(
        items: Iterable[tuple[Mapping[str, str], DocumentInput]],
    ) -> list[tuple[Mapping[str, str], DocumentInput]]:
        checked = []
        for index, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValidationError(f"item {index} is not a (mid, document) pair")
            checked.append(item)
        if not checked:
            raise ValidationError("no documents to write")
        return checked

    def _prepare(
        self, ds: DataStore, mid: Mapping[str, str], document: DocumentInput
    ) -> tuple[NewDocument, Any]:
        checked = check_mid(mid, ds.mid_keys)
        if isinstance(document, bytes | bytearray | memoryview | str):
            size = len(document)
            if size > self.settings.max_document_bytes:
                raise ValidationError(self._too_large(size))
            data = _json.loads(document, what="document")
        else:
            data = document
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"a media document is a JSON object with 'asset' and 'tracks'; got "
                f"{type(data).__name__}"
            )
        body = _json.dumps(data)
        if len(body) > self.settings.max_document_bytes:
            raise ValidationError(self._too_large(len(body)))
        return NewDocument(uuid7(), mid_key(checked), _now(), body), data

    def _too_large(self, size: int) -> str:
        return (
            f"document is {size} bytes; synchronous writes accept at most "
            f"{self.settings.max_document_bytes} (setting max_document_bytes)"
        )

    def get_document(
        self,
        document_id: UUID | str,
        *,
        datastore: str | DataStoreRef | None = None,
        stream: bool = False,
    ) -> Document:
        """Read a document by DocumentID; the same ID always returns the same bytes.

        Args:
            document_id: The DocumentID.
            datastore: If given, the document must belong to this DataStore.
            stream: Do not read a body kept in a blob (a document written from a blob may
                be gigabytes): ``body`` is then empty and `open_document_body` streams it.

        Returns:
            The document.

        Raises:
            ValidationError: The ID is not a UUID.
            NotFoundError: No such document (in that DataStore).
        """
        wanted = None if datastore is None else DataStoreRef.parse(datastore)
        key = check_document_id(document_id)
        record = self._documents.get(key)
        if record is None:
            try:
                record = self.store.get_document(key)
            except NotFoundError:
                record = None
            else:
                self._documents.put(key, record, len(record.body))
        if record is not None:
            ref = self._ref_of(record.datastore_id)
            if wanted is None or wanted == ref:
                return self._document(ref, record, stream=stream)
        # One message whether the ID is unknown or elsewhere: IDs in other tenants'
        # DataStores must not be told apart from IDs that do not exist.
        where = f" in DataStore {wanted}" if wanted is not None else ""
        raise NotFoundError(f"document {document_id} does not exist{where}")

    def get_document_info(self, document_id: UUID | str) -> DocumentInfo:
        """A document's coordinates and size, without reading its body.

        Args:
            document_id: The DocumentID.

        Returns:
            The document's DataStore, MID, schema version, creation time and size.

        Raises:
            ValidationError: The ID is not a UUID.
            NotFoundError: No such document.
        """
        record = self._locate(document_id)
        return DocumentInfo(
            record.id,
            self._ref_of(record.datastore_id),
            _mid(record.mid_key),
            record.schema_version,
            record.created_at,
            record.size,
        )

    def _locate(self, document_id: UUID | str) -> DocumentRecord:
        try:  # the coordinates only: a document may be gigabytes
            return self.store.locate_document(check_document_id(document_id))
        except NotFoundError:
            raise NotFoundError(f"document {document_id} does not exist") from None

    def latest_document(self, datastore: str | DataStoreRef, mid: Mapping[str, str]) -> Document:
        """Read the most recently written document for a MID.

        Args:
            datastore: ``namespace/analysis_type/version``.
            mid: The media ID.

        Returns:
            The document.

        Raises:
            ValidationError: The MID does not match the MID schema.
            NotFoundError: No such DataStore, or no document for the MID.
        """
        ds = self._datastore(datastore)
        key = mid_key(check_mid(mid, ds.mid_keys))
        try:
            record = self.store.latest_document(ds.id, key)
        except NotFoundError:
            raise NotFoundError(f"DataStore {ds.ref} has no document for MID {key}") from None
        return self._document(ds.ref, record)

    def list_documents(
        self,
        datastore: str | DataStoreRef,
        mid: Mapping[str, str],
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DocumentInfo]:
        """Every document for a MID, newest first, one page at a time (no bodies).

        Args:
            datastore: ``namespace/analysis_type/version``.
            mid: The media ID.
            limit: Page size, 1 to 1000.
            cursor: ``next_cursor`` of the previous page.

        Returns:
            The page.

        Raises:
            ValidationError: A bad MID, limit or cursor.
            NotFoundError: No such DataStore.
        """
        check_limit(limit)
        ds = self._datastore(datastore)
        checked = check_mid(mid, ds.mid_keys)
        before = decode_cursor(cursor) if cursor is not None else None
        records = self.store.list_documents(
            ds.id, mid_key(checked), limit=limit + 1, before_seq=before
        )
        more = len(records) > limit
        records = records[:limit]
        items = tuple(
            DocumentInfo(r.id, ds.ref, checked, r.schema_version, r.created_at, r.size)
            for r in records
        )
        return Page(items, encode_cursor(records[-1].seq) if more else None)

    # -- search -------------------------------------------------------------------------

    def _fields(
        self, schema: SchemaVersion
    ) -> tuple[dict[tuple[str, str], FieldInfo], tuple[Column, ...]]:
        key = (schema.namespace, schema.name, schema.version)
        found = self._schema_fields.get(key)
        if found is None:  # a stored schema version never changes
            fields = searchable_fields(schema.resolved)
            found = self._schema_fields[key] = (fields, tuple(columns_for(fields)))
        return found

    def _columns(self, schema: SchemaVersion) -> tuple[Column, ...]:
        return self._fields(schema)[1]

    def _checked_query(self, ds: DataStore, query: str | Mapping[str, Any] | Expr) -> Expr:
        if isinstance(query, str):
            expr = parse_query(query)
        elif isinstance(query, Mapping):
            expr = parse_query(dict(query))
        else:
            expr = query
        schema = self.schemas.get(ds.ref.namespace, ds.schema_name, ds.schema_version)
        check_query(expr, self._fields(schema)[0], what=f"DataStore {ds.ref}")
        indexed, stored = self.store.index_coverage(ds.id)
        if indexed < stored:
            raise ConflictError(
                f"{stored - indexed} of the {stored} documents of DataStore {ds.ref} are not "
                f"in its search index (written before reeldb indexed them, or a rebuild is "
                f"needed): run `reeldb index rebuild {ds.ref}`"
            )
        return expr

    def query_datastore(
        self,
        datastore: str | DataStoreRef,
        query: str | Mapping[str, Any] | Expr,
        *,
        all_versions: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DocumentMatch]:
        """Documents of a DataStore that match a query: their coordinates, in write order.

        Args:
            datastore: ``namespace/analysis_type/version``.
            query: The text form, the JSON form (decoded) or an AST (see
                docs/query-language.md).
            all_versions: Also superseded versions of each MID; by default only each MID's
                latest document is considered.
            limit: Page size, 1 to 1000.
            cursor: ``next_cursor`` of the previous page.

        Returns:
            A page of ``(id, mid)``, each document once. The first page (no ``cursor``) also
            carries ``total``, the number of documents on all pages, when it is cheap to
            know: always if this page is the only one, else if the backend counts them
            within `COUNT_BUDGET`; otherwise None.

        Raises:
            QueryError: The query is malformed or does not fit the DataStore's schema.
            ValidationError: A bad limit or cursor.
            NotFoundError: No such DataStore.
        """
        check_limit(limit)
        ds = self._datastore(datastore)
        expr = self._checked_query(ds, query)
        after = decode_cursor(cursor) if cursor is not None else 0
        found = self.store.search_documents(
            ds.id, expr, all_versions=all_versions, limit=limit + 1, after_seq=after
        )
        total = None
        if cursor is None:
            total = (
                len(found)
                if len(found) <= limit
                else self.store.count_matches(
                    ds.id, expr, all_versions=all_versions, budget=COUNT_BUDGET
                )
            )
        return _match_page(found, limit, total)

    # -- asynchronous queries (NMDB-19) -----------------------------------------------------

    def submit_query(
        self,
        datastore: str | DataStoreRef,
        query: str | Mapping[str, Any] | Expr,
        *,
        all_versions: bool = False,
    ) -> QueryRequest:
        """Run a DataStore-level filter asynchronously: its results are stored to be paged.

        The request is durable when this returns; it runs on a thread of this process, and
        if that process stops, a later `get_query_request` from any process runs it again.
        Results are kept for the ``query_result_ttl`` setting after the query finishes.

        Args:
            datastore: ``namespace/analysis_type/version``.
            query: As for `query_datastore`; it is checked now.
            all_versions: As for `query_datastore`.

        Returns:
            The request, ``pending`` or already further.

        Raises:
            QueryError: The query is malformed or does not fit the DataStore's schema.
            NotFoundError: No such DataStore.
        """
        ds = self._datastore(datastore)
        expr = self._checked_query(ds, query)
        now = datetime.now(UTC)
        self.store.delete_query_requests(now - timedelta(seconds=self.settings.query_result_ttl))
        record = QueryRequestRecord(
            uuid7(), ds.id, _json.dumps(to_json(expr)).decode(), all_versions, "pending",
            created_at=now,
        )  # fmt: skip
        self.store.add_query_request(record)
        self._start_query(record.id)
        return self._public_query(self.store.get_query_request(record.id))

    def get_query_request(self, request_id: UUID | str) -> QueryRequest:
        """Where an asynchronous query stands (and, if its runner died, run it again).

        Args:
            request_id: From `submit_query`.

        Returns:
            The request.

        Raises:
            ValidationError: A malformed id.
            NotFoundError: No such request, or its results expired.
        """
        record = self.store.get_query_request(check_request_id(request_id))
        lapsed = record.lease_until is not None and record.lease_until < datetime.now(UTC)
        if record.state == "pending" or (record.state == "running" and lapsed):
            self._start_query(record.id)
        return self._public_query(record)

    def wait_query(
        self, request_id: UUID | str, *, timeout: float | None = None, poll: float = 0.05
    ) -> QueryRequest:
        """Poll an asynchronous query until it is ``done`` or ``failed``, or time runs out.

        Args:
            request_id: From `submit_query`.
            timeout: Give up after this many seconds (None: wait as long as it takes).
            poll: Seconds between polls.

        Returns:
            The request as last seen (check its ``state``).
        """
        return poll_query(self.get_query_request, request_id, timeout, poll)

    def query_results(
        self, request_id: UUID | str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[DocumentMatch]:
        """A page of a finished asynchronous query's documents, in write order.

        Args:
            request_id: From `submit_query`.
            limit: Page size, 1 to 1000.
            cursor: ``next_cursor`` of the previous page.

        Returns:
            The page; ``total`` is the number of documents on all pages.

        Raises:
            ConflictError: The query is not done yet, or it failed (the message says why).
            ValidationError: A bad id, limit or cursor.
            NotFoundError: No such request, or its results expired.
        """
        check_limit(limit)
        record = self.store.get_query_request(check_request_id(request_id))
        if record.state == "failed":
            raise ConflictError(f"query request {record.id} failed: {record.error}")
        if record.state != "done":
            raise ConflictError(
                f"query request {record.id} is {record.state}: poll it until it is done"
            )
        after = decode_cursor(cursor) if cursor is not None else 0
        found = self.store.query_results(record.id, after=after, limit=limit + 1)
        return _match_page(found, limit, record.found)

    def _start_query(self, request_id: UUID) -> None:
        with self._queries_lock:
            if self._closing or request_id in self._running_queries:
                return
            if self._queries is None:
                self._queries = ThreadPoolExecutor(2, thread_name_prefix="reeldb-query")
            self._running_queries.add(request_id)
            self._queries.submit(self._run_query, request_id)

    def _run_query(self, request_id: UUID) -> None:
        owner = self._owner
        try:
            now = datetime.now(UTC)
            record = self.store.claim_query_request(request_id, owner, now, now + _QUERY_LEASE)
            if record is None:
                return  # another runner has it, or it finished
            try:
                ds = self.store.get_datastore_by_id(record.datastore_id)
                expr = self._checked_query(ds, _json.loads(record.query, what="stored query"))
                after = 0
                while True:
                    if self._closing:  # hand it back for the next poll to run
                        self.store.finish_query_request(
                            request_id, owner, error=None, finished_at=None
                        )
                        return
                    found = self.store.search_documents(
                        ds.id,
                        expr,
                        all_versions=record.all_versions,
                        limit=_QUERY_BATCH,
                        after_seq=after,
                    )
                    lease = datetime.now(UTC) + _QUERY_LEASE
                    matches = [(doc_id, key) for _, doc_id, key in found]
                    if found and not self.store.add_query_results(
                        request_id, owner, matches, lease
                    ):
                        return  # taken over after our lease ran out
                    if len(found) < _QUERY_BATCH:
                        break
                    after = found[-1][0]
                error = None
            except ReelError as exc:
                error = str(exc)
            self.store.finish_query_request(
                request_id, owner, error=error, finished_at=datetime.now(UTC)
            )
        except Exception:  # a thread has nobody to raise to: log, the lease lets others retry
            _log.exception("asynchronous query %s stopped", request_id)
        finally:
            with self._queries_lock:
                self._running_queries.discard(request_id)

    def _public_query(self, record: QueryRequestRecord) -> QueryRequest:
        assert record.created_at is not None
        state: QueryState = record.state  # type: ignore[assignment]
        return QueryRequest(
            record.id,
            self._ref_of(record.datastore_id),
            _json.loads(record.query, what="stored query"),
            record.all_versions,
            state,
            record.found,
            record.error,
            record.created_at,
            record.finished_at,
        )

    def query_document(
        self,
        document_id: UUID | str,
        query: str | Mapping[str, Any] | Expr,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventMatch]:
        """The events of one document that match a query, in time order, with their context.

        Args:
            document_id: The DocumentID.
            query: As for `query_datastore`.
            limit: Page size, 1 to 1000.
            cursor: ``next_cursor`` of the previous page.

        Returns:
            A page of events, each with its track and component attributes and the regions
            that matched.

        Raises:
            QueryError: The query is malformed or does not fit the DataStore's schema.
            ValidationError: A bad ID, limit or cursor.
            NotFoundError: No such document.
        """
        check_limit(limit)
        record = self._locate(document_id)
        ds = self._datastore(self._ref_of(record.datastore_id))
        expr = self._checked_query(ds, query)
        start = decode_cursor(cursor) if cursor is not None else 0
        hits = self.store.search_events(ds.id, record.seq, expr, limit=limit + 1, offset=start)
        items = tuple(_event_match(hit) for hit in hits[:limit])
        more = len(hits) > limit
        return Page(items, encode_cursor(start + limit) if more else None)

    def rebuild_index(
        self,
        datastore: str | DataStoreRef,
        *,
        batch_size: int = 500,
        progress: Callable[[int, int], None] | None = None,
    ) -> Generation:
        """Rebuild a DataStore's search index from its stored documents, without downtime.

        A new generation is filled while queries keep reading the current ones; then, in one
        transaction, the documents written meanwhile are indexed too and the alias moves to
        the new generation alone, and the old generations are dropped. A rebuild that stops
        half way (a crash, an interrupt) is resumed by the next call.

        Args:
            datastore: ``namespace/analysis_type/version``.
            batch_size: Documents per write transaction.
            progress: Called as ``progress(done, total)`` after each batch.

        Returns:
            The new generation.

        Raises:
            NotFoundError: No such DataStore.
            ConflictError: The DataStore moved to another schema version during the rebuild
                (run it again).
        """
        ds = self._datastore(datastore, fresh=True)
        schema = self.schemas.get(ds.ref.namespace, ds.schema_name, ds.schema_version)
        columns = self._columns(schema)
        generation = self.store.begin_index_rebuild(ds.id, columns)
        done_seq = self.store.index_checkpoint(generation.id)
        total = self.store.count_documents(ds.id)
        done = generation.docs

        def cut(records: Iterable[DocumentRecord]) -> list[tuple[int, DocumentRows]]:
            return [
                (
                    record.seq,
                    self._ingest.rows_of(record, schema, columns)
                    if record.blob is not None
                    else document_rows(
                        _json.loads(record.body), list(columns), self.settings.index_chunk_bytes
                    ),
                )
                for record in records
            ]

        batch: list[DocumentRecord] = []
        for record in self.store.iter_documents(ds.id, after_seq=done_seq):
            batch.append(record)
            if len(batch) >= batch_size:
                self.store.index_documents(ds.id, generation, cut(batch))
                done += len(batch)
                batch = []
                if progress is not None:
                    progress(done, total)
        if batch:
            self.store.index_documents(ds.id, generation, cut(batch))
            done += len(batch)

        def catch_up(records: list[DocumentRecord]) -> list[tuple[int, DocumentRows]]:
            current = self._datastore(ds.ref, fresh=True)
            if current.schema_version != ds.schema_version:
                raise ConflictError(
                    f"DataStore {ds.ref} moved to schema version {current.schema_version} "
                    "during the rebuild; run it again"
                )
            return cut(records)

        self.store.finish_index_rebuild(ds.id, generation, catch_up)
        if progress is not None:
            final = self.store.count_documents(ds.id)
            progress(final, final)
        return next(g for g in self.store.index_generations(ds.id) if g.id == generation.id)

    def index_status(self, datastore: str | DataStoreRef) -> list[Generation]:
        """The generations of a DataStore's search index, oldest first.

        Args:
            datastore: ``namespace/analysis_type/version``.

        Returns:
            Each generation with its columns, size and whether queries read it.

        Raises:
            NotFoundError: No such DataStore.
        """
        return self.store.index_generations(self._datastore(datastore).id)

    # -- access: API keys, system administrators, audit ------------------------------------

    def create_api_key(
        self, principal: str, *, description: str = "", created_by: str = LOCAL_OWNER
    ) -> NewApiKey:
        """Create an API key that authenticates as a principal.

        Args:
            principal: Who the key acts as, e.g. ``app:shot-detector``; its roles are granted
                separately (`grant_role`).
            description: Free text, e.g. what uses the key.
            created_by: The principal creating it (recorded).

        Returns:
            The key record and its secret, which is shown only now: reeldb keeps a hash.

        Raises:
            ValidationError: A bad principal.
        """
        check_principal(principal)
        key_id, whole = new_api_key()
        key = ApiKey(key_id, principal, str(description), _now(), created_by)
        self.store.create_api_key(key, hash_secret(whole))
        return NewApiKey(key, whole)

    def list_api_keys(self, principal: str | None = None) -> list[ApiKey]:
        """API keys, revoked ones included, oldest first (never their secrets).

        Args:
            principal: Only this principal's keys.

        Returns:
            The keys.
        """
        return self.store.list_api_keys(None if principal is None else check_principal(principal))

    def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke an API key at once; requests with it are refused from now on.

        Args:
            key_id: The key id (``reeldb keys list`` shows it).

        Returns:
            The revoked key.

        Raises:
            NotFoundError: No such key.
        """
        return self.store.revoke_api_key(str(key_id), _now())

    def grant_system_admin(self, principal: str) -> None:
        """Make a principal a system administrator: it may do everything.

        Args:
            principal: The principal.

        Raises:
            ValidationError: A bad principal.
        """
        self.store.set_system_admin(check_principal(principal), True, _now())

    def revoke_system_admin(self, principal: str) -> None:
        """Stop a principal being a system administrator.

        Args:
            principal: The principal.
        """
        self.store.set_system_admin(check_principal(principal), False, _now())

    def list_system_admins(self) -> list[str]:
        """The system administrators.

        Returns:
            Their principals, by name.
        """
        return self.store.list_system_admins()

    def bootstrap(self, principal: str = "user:admin") -> NewApiKey | None:
        """Create the first system administrator and its key, once per database.

        Args:
            principal: The administrator's principal.

        Returns:
            The new key (show it now: it cannot be shown again), or None if the database
            already has a system administrator.
        """
        if self.store.list_system_admins():
            return None
        self.grant_system_admin(principal)
        return self.create_api_key(principal, description="bootstrap key (reeldb init)")

    def authenticate(self, api_key: str) -> Principal:
        """Identify the principal an API key stands for, with its current roles.

        With the ``jwt_public_key`` setting, a JWT bearer token of that issuer is accepted too
        (see `reeldb.auth.tokens`).

        Args:
            api_key: The whole key, ``rdb_<key_id>_<secret>``, or a JWT.

        Returns:
            The principal.

        Raises:
            UnauthenticatedError: Not a key, an unknown or revoked key, a wrong secret, or an
                invalid token.
        """
        if not api_key.startswith(KEY_PREFIX) and self.settings.jwt_public_key is not None:
            return self.store.principal_access(self._tokens().principal(api_key))
        key_id = parse_api_key(api_key)
        # Read before the key: a change committed after the read moves the generation on.
        generation = self.store.access_generation()
        digest = hash_secret(api_key)
        if generation is not None:
            cached = self._authenticated.get(digest)
            if cached is not None and cached[0] == generation:
                return cached[1]
        try:
            key, stored, principal = self.store.key_access(key_id)
        except NotFoundError:
            raise UnauthenticatedError("invalid or revoked API key") from None
        if not key.active or not hmac.compare_digest(stored, digest):
            raise UnauthenticatedError("invalid or revoked API key")
        if generation is not None:
            if len(self._authenticated) >= _AUTHENTICATED_ENTRIES:
                self._authenticated.clear()
            self._authenticated[digest] = (generation, principal)
        return principal

    def _tokens(self) -> TokenVerifier:
        if self._verifier is None:
            assert self.settings.jwt_public_key is not None
            self._verifier = TokenVerifier(
                self.settings.jwt_public_key,
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
            )
        return self._verifier

    def principal(self, name: str) -> Principal:
        """A principal's current access: system administrator or not, and its roles.

        Args:
            name: The principal.

        Returns:
            The principal.
        """
        return self.store.principal_access(check_principal(name))

    def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log (the service records every write and admin action).

        Args:
            entries: The entries; their ``seq`` is assigned by the log.
        """
        self.store.append_audit(entries)

    def list_audit(
        self, namespace: str | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page[AuditEntry]:
        """The audit log, newest first, one page at a time.

        Args:
            namespace: Only this namespace's entries; every entry when None.
            limit: Page size, 1 to 1000.
            cursor: ``next_cursor`` of the previous page.

        Returns:
            The page.

        Raises:
            ValidationError: A bad limit or cursor.
        """
        check_limit(limit)
        if namespace is not None:
            check_namespace(namespace)
        before = decode_cursor(cursor) if cursor is not None else None
        entries = self.store.list_audit(namespace, limit=limit + 1, before_seq=before)
        more = len(entries) > limit
        entries = entries[:limit]
        return Page(tuple(entries), encode_cursor(entries[-1].seq) if more else None)

    def _ref_of(self, datastore_id: int) -> DataStoreRef:
        ref = self._refs.get(datastore_id)
        if ref is None:
            ref = self._refs[datastore_id] = self.store.get_datastore_by_id(datastore_id).ref
        return ref

    def open_document_body(self, document: Document) -> Iterator[bytes]:
        """Stream a document's body: from its blob, in chunks, or its ``body`` at once.

        Args:
            document: From `get_document` (with ``stream=True`` for a large one).

        Returns:
            The body's bytes in chunks, authenticated as they are read.
        """
        if document.blob is None:
            return iter((document.body,))
        return self.blobs.store.open(document.blob)

    def _document(
        self, ref: DataStoreRef, record: DocumentRecord, *, stream: bool = False
    ) -> Document:
        body = record.body
        if record.blob is not None and not stream:  # written from a blob: its body is there
            body = b"".join(self.blobs.store.open(record.blob))
        return Document(
            record.id,
            ref,
            _mid(record.mid_key),
            record.schema_version,
            record.created_at,
            body,
            record.blob,
        )


def _data_dir(configured: str, url: str) -> Path | None:
    """Where blobs and key files live by default: the SQLite file's directory.

    On PostgreSQL, ``./reeldb-data`` of the working directory (one machine; several
    machines set ``blobs`` to a shared bucket and ``blob_key`` to a shared secret). None
    for an in-memory database (a temporary directory, gone at exit).
    """
    for candidate in (url, configured):
        if candidate.startswith("sqlite:///") and candidate not in ("sqlite:///:memory:",):
            return Path(candidate.removeprefix("sqlite:///")).parent
    if url.startswith(("postgresql://", "postgres://")):
        return Path(DEFAULT_DATABASE.removeprefix("sqlite:///")).parent
    return None


def check_limit(limit: object) -> None:
    """Check a page size.

    Args:
        limit: The requested page size.

    Raises:
        ValidationError: Not an integer from 1 to `MAX_PAGE_SIZE`.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")


def _match_page(
    found: Sequence[tuple[int, UUID, str]], limit: int, total: int | None
) -> Page[DocumentMatch]:
    """A page of matching documents from ``limit + 1`` ``(position, id, mid key)`` rows."""
    page = found[:limit]
    items = tuple(DocumentMatch(doc_id, _mid(key)) for _, doc_id, key in page)
    return Page(items, encode_cursor(page[-1][0]) if len(found) > limit else None, total)


def _mid(key: str) -> dict[str, str]:
    value: dict[str, str] = _json.loads(key)
    return value


def check_document_id(value: UUID | str) -> UUID:
    """Read a DocumentID.

    Args:
        value: A UUID, or its text.

    Returns:
        The UUID.

    Raises:
        ValidationError: Not a UUID.
    """
    return parse_uuid(value, "DocumentID")


def poll_query(
    get: Callable[[UUID | str], QueryRequest],
    request_id: UUID | str,
    timeout: float | None,
    poll: float,
) -> QueryRequest:
    """Call ``get`` until the query is ``done`` or ``failed``, or ``timeout`` seconds passed.

    Args:
        get: Reads the request (`Database.get_query_request` or the client's).
        request_id: The request.
        timeout: Seconds to wait at most (None: no limit).
        poll: Seconds between reads.

    Returns:
        The request as last read.
    """
    return poll_until(
        lambda: get(request_id), lambda r: r.state in ("done", "failed"), timeout, poll
    )


def poll_until(
    read: Callable[[], T], finished: Callable[[T], bool], timeout: float | None, poll: float
) -> T:
    """Call ``read`` until ``finished`` says so of its answer, or ``timeout`` seconds passed.

    Args:
        read: Reads the state (of a request).
        finished: Whether an answer is final.
        timeout: Seconds to wait at most (None: no limit).
        poll: Seconds between reads.

    Returns:
        The last answer.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = read()
        if finished(found) or (deadline is not None and time.monotonic() >= deadline):
            return found
        time.sleep(poll)


def check_request_id(value: UUID | str) -> UUID:
    """Read an asynchronous query's request id.

    Args:
        value: A UUID, or its text.

    Returns:
        The UUID.

    Raises:
        ValidationError: Not a UUID.
    """
    return parse_uuid(value, "query request id")


def _event_match(hit: EventHit) -> EventMatch:
    t, c, e = hit.path
    event, track = hit.event, hit.track
    rate = FrameRate.parse(track["frame_rate"]) if "frame_rate" in track else None
    regions = event.get("regions") or []
    return EventMatch(
        f"/tracks/{t}/components/{c}/events/{e}",
        TimeRange.from_json(event["time_range"], rate),
        {k: v for k, v in event.items() if k != "regions"},
        track,
        hit.component,
        tuple(regions[r] for r in hit.regions),
        hit.regions,
    )
