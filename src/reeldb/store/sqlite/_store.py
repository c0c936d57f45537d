"""`SQLiteStore`: both storage ports on one SQLite database (the embedded default)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from reeldb import _json
from reeldb.auth.model import ApiKey, AuditEntry, Principal
from reeldb.errors import (
    AlreadyExistsError,
    BackendUnavailableError,
    NotFoundError,
    ReelError,
)
from reeldb.index.model import EventHit, Generation
from reeldb.index.rows import Column, DocumentRows
from reeldb.index.sqlite import SQLiteIndex
from reeldb.model.datastore import DataStore, DataStoreRef, Namespace, Role, RoleGrant
from reeldb.query.ast import Expr
from reeldb.schema.model import (
    CompatibilityMode,
    SchemaSubject,
    SchemaVersion,
)
from reeldb.store._common import (
    AUDIT_COLUMNS,
    DATASTORE_COLUMNS,
    KEY_COLUMNS,
    SCHEMA_VERSION_COLUMNS,
    accept_batches,
    check_move,
    check_moved_datastores,
    check_new_schema_version,
    datastore_record,
    datastore_values,
    missing_datastore,
    missing_schema,
    missing_schema_ref,
    missing_schema_version,
    schema_version_record,
    schema_version_values,
    subject_record,
)
from reeldb.store._jobs import SQLJobStore
from reeldb.store.base import (
    DataStoreMove,
    DocumentBatch,
    DocumentRecord,
    QueryRequestRecord,
    Store,
)
from reeldb.store.sqlite._annotations import SQLiteAnnotations
from reeldb.store.sqlite._connection import SQLiteConnections, utc_text
from reeldb.store.sqlite._ingest import SQLiteIngest
from reeldb.store.sqlite.migrations import migrate

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_DOC_COLUMNS = "seq, id, datastore_id, mid_key, schema_version, created_at, size, blob"
_ITER_BATCH = 256
_BULK_ROWS = 20_000  # index rows from which a write's checkpoint is left to the background
_QUERY_COLUMNS = (
    "id, datastore_id, query, all_versions, state, found, error, owner, lease_until, "
    "created_at, finished_at"
)


def _ts(value: datetime) -> str:
    return value.isoformat()


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _query_request(row: Sequence[Any]) -> QueryRequestRecord:
    return QueryRequestRecord(
        UUID(bytes=row[0]),
        row[1],
        row[2],
        bool(row[3]),
        row[4],
        row[5],
        row[6],
        row[7],
        None if row[8] is None else _dt(row[8]),
        _dt(row[9]),
        None if row[10] is None else _dt(row[10]),
    )


def _datastore(row: Sequence[Any]) -> DataStore:
    return datastore_record(row, _dt(row[8]))


def _schema_version(row: Sequence[Any]) -> SchemaVersion:
    return schema_version_record(row, _dt(row[9]))


def _document(row: Sequence[Any], body: bytes = b"") -> DocumentRecord:
    return DocumentRecord(
        seq=row[0],
        id=UUID(bytes=row[1]),
        datastore_id=row[2],
        mid_key=row[3],
        schema_version=row[4],
        created_at=_dt(row[5]),
        size=row[6],
        body=body,
        blob=None if row[7] is None else UUID(bytes=row[7]),
    )


def _api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], _dt(row[3]), row[4], _dt(row[5]) if row[5] else None)


def _audit(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(row[0], _dt(row[1]), row[2], row[3], row[4], row[5], row[6], row[7])


def _access(principal: str) -> str:
    """SQL columns: whether ``principal`` is a system administrator, and its roles as JSON."""
    return (
        f"EXISTS (SELECT 1 FROM system_admins s WHERE s.principal = {principal}), "
        "(SELECT json_group_object(g.namespace, g.role) FROM role_grants g "
        f"WHERE g.principal = {principal})"
    )


def _principal(name: str, admin: int, roles: str, key_id: str | None) -> Principal:
    grants = {ns: Role(role) for ns, role in _json.loads(roles).items()}
    return Principal(name, bool(admin), grants, key_id)


def _latest_seqs(
    conn: sqlite3.Connection, datastore_id: int, keys: Sequence[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for key in keys:
        row = conn.execute(
            "SELECT max(seq) FROM documents WHERE datastore_id = ? AND mid_key = ?",
            (datastore_id, key),
        ).fetchone()
        if row[0] is not None:
            found[key] = row[0]
    return found


class SQLiteStore(SQLiteAnnotations, SQLiteIngest, SQLJobStore, Store):
    """The embedded backend: metadata and documents in one SQLite file (or in memory).

    Args:
        path: The database file; None for a private in-memory database.
        synchronous: ``full`` (default, durable across power loss) or ``normal``.
        busy_timeout: Seconds a write waits for another process's lock.
        read_timeout: Seconds a read may run (None: no limit).
    """

    def __init__(
        self,
        path: Path | None,
        *,
        synchronous: str = "full",
        busy_timeout: float = 30.0,
        read_timeout: float | None = None,
        index_rollover_rows: int = 1_000_000,
    ) -> None:
        self.url = f"sqlite:///{path}" if path is not None else "memory:"
        self._db = SQLiteConnections(
            path, synchronous=synchronous, busy_timeout=busy_timeout, read_timeout=read_timeout
        )
        self._index = SQLiteIndex(rollover_rows=index_rollover_rows)
        try:
            self._db.with_writer(migrate)
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"cannot migrate {self.url}: {exc}") from exc

    def close(self) -> None:
        """Close every connection."""
        self._db.close()

    # -- namespaces and roles -------------------------------------------------------------

    def create_namespace(
        self, name: str, description: str, created_at: datetime, admins: Sequence[str] = ()
    ) -> Namespace:
        """See `MetadataStore.create_namespace`."""
        with self._db.write() as conn:
            try:
                conn.execute(
                    "INSERT INTO namespaces (name, description, created_at) VALUES (?, ?, ?)",
                    (name, description, _ts(created_at)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExistsError(f"namespace {name} already exists") from None
            conn.executemany(
                "INSERT INTO role_grants (namespace, principal, role, granted_at) "
                "VALUES (?, ?, ?, ?)",
                [(name, principal, Role.ADMIN.value, _ts(created_at)) for principal in admins],
            )
        return Namespace(name, description, created_at)

    def get_namespace(self, name: str) -> Namespace:
        """See `MetadataStore.get_namespace`."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT name, description, created_at FROM namespaces WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"namespace {name} does not exist")
        return Namespace(row[0], row[1], _dt(row[2]))

    def list_namespaces(self) -> list[Namespace]:
        """See `MetadataStore.list_namespaces`."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT name, description, created_at FROM namespaces ORDER BY name"
            ).fetchall()
        return [Namespace(r[0], r[1], _dt(r[2])) for r in rows]

    def _require_namespace(self, conn: sqlite3.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone() is None:
            raise NotFoundError(f"namespace {name} does not exist")

    def grant_role(
        self, namespace: str, principal: str, role: Role, granted_at: datetime
    ) -> RoleGrant:
        """See `MetadataStore.grant_role`."""
        with self._db.write() as conn:
            self._require_namespace(conn, namespace)
            conn.execute(
                "INSERT INTO role_grants (namespace, principal, role, granted_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (namespace, principal) "
                "DO UPDATE SET role = excluded.role, granted_at = excluded.granted_at",
                (namespace, principal, role.value, _ts(granted_at)),
            )
        return RoleGrant(namespace, principal, role, granted_at)

    def revoke_role(self, namespace: str, principal: str) -> None:
        """See `MetadataStore.revoke_role`."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "DELETE FROM role_grants WHERE namespace = ? AND principal = ?",
                (namespace, principal),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"{principal} has no role in namespace {namespace}")

    def list_roles(self, namespace: str) -> list[RoleGrant]:
        """See `MetadataStore.list_roles`."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT namespace, principal, role, granted_at FROM role_grants "
                "WHERE namespace = ? ORDER BY principal",
                (namespace,),
            ).fetchall()
        return [RoleGrant(r[0], r[1], Role(r[2]), _dt(r[3])) for r in rows]

    # -- schemas --------------------------------------------------------------------------

    def _subjects(self, conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[Any]:
        rows = conn.execute(
            "SELECT s.namespace, s.name, s.kind, s.compatibility, "
            "json_group_array(v.version) FROM schema_subjects s "
            "JOIN schema_versions v ON v.namespace = s.namespace AND v.name = s.name "
            f"WHERE {where} GROUP BY s.namespace, s.name ORDER BY s.name",
            args,
        ).fetchall()
        return [subject_record(row, sorted(_json.loads(row[4]))) for row in rows]

    def get_subject(self, namespace: str, name: str) -> SchemaSubject:
        """See `MetadataStore.get_subject`."""
        with self._db.read() as conn:
            found = self._subjects(conn, "s.namespace = ? AND s.name = ?", (namespace, name))
        if not found:
            raise missing_schema(namespace, name)
        subject: SchemaSubject = found[0]
        return subject

    def list_subjects(self, namespace: str) -> list[SchemaSubject]:
        """See `MetadataStore.list_subjects`."""
        with self._db.read() as conn:
            return self._subjects(conn, "s.namespace = ?", (namespace,))

    def get_schema_version(self, namespace: str, name: str, version: int | None) -> SchemaVersion:
        """See `MetadataStore.get_schema_version`."""
        with self._db.read() as conn:
            if version is None:
                row = conn.execute(
                    f"SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions "
                    "WHERE namespace = ? AND name = ? ORDER BY version DESC LIMIT 1",
                    (namespace, name),
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions "
                    "WHERE namespace = ? AND name = ? AND version = ?",
                    (namespace, name, version),
                ).fetchone()
            if row is not None:
                return _schema_version(row)
            latest = conn.execute(
                "SELECT max(version) FROM schema_versions WHERE namespace = ? AND name = ?",
                (namespace, name),
            ).fetchone()[0]
        raise missing_schema_version(namespace, name, version, latest)

    def list_schema_versions(self, namespace: str, name: str) -> list[SchemaVersion]:
        """See `MetadataStore.list_schema_versions`."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions "
                "WHERE namespace = ? AND name = ? ORDER BY version",
                (namespace, name),
            ).fetchall()
        return [_schema_version(row) for row in rows]

    def add_schema_version(
        self,
        schema: SchemaVersion,
        compatibility: CompatibilityMode,
        moves: Sequence[DataStoreMove],
        check_new: Callable[[DocumentRecord], None] | None = None,
    ) -> None:
        """See `MetadataStore.add_schema_version`."""
        ref = schema.ref
        with self._db.write() as conn:
            self._require_namespace(conn, ref.namespace)
            conn.execute(
                "INSERT INTO schema_subjects (namespace, name, kind, compatibility) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (ref.namespace, ref.name, schema.kind.value, compatibility.value),
            )
            latest = conn.execute(
                "SELECT max(version) FROM schema_versions WHERE namespace = ? AND name = ?",
                (ref.namespace, ref.name),
            ).fetchone()[0]
            check_new_schema_version(ref, latest)
            conn.execute(
                f"INSERT INTO schema_versions ({SCHEMA_VERSION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                schema_version_values(schema, _ts(schema.created_at)),
            )
            using = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM datastores WHERE namespace = ? AND schema_name = ?",
                    (ref.namespace, ref.name),
                )
            }
            check_moved_datastores(using, moves)
            for move in moves:
                row = conn.execute(
                    "SELECT d.schema_version, "
                    "(SELECT coalesce(max(seq), 0) FROM documents WHERE datastore_id = d.id) "
                    "FROM datastores d WHERE d.id = ?",
                    (move.datastore_id,),
                ).fetchone()
                version, max_seq = (None, 0) if row is None else row
                if check_move(move, version, max_seq, check_new):
                    assert check_new is not None
                    for doc in conn.execute(
                        f"SELECT {_DOC_COLUMNS}, body FROM documents "
                        "WHERE datastore_id = ? AND seq > ? ORDER BY seq",
                        (move.datastore_id, move.checked_upto_seq),
                    ):
                        check_new(_document(doc, bytes(doc[8])))
                conn.execute(
                    "UPDATE datastores SET schema_version = ? WHERE id = ?",
                    (ref.version, move.datastore_id),
                )

    def set_compatibility(self, namespace: str, name: str, mode: CompatibilityMode) -> None:
        """See `MetadataStore.set_compatibility`."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "UPDATE schema_subjects SET compatibility = ? WHERE namespace = ? AND name = ?",
                (mode.value, namespace, name),
            )
            if cursor.rowcount == 0:
                raise missing_schema(namespace, name)

    # -- DataStores -----------------------------------------------------------------------

    def create_datastore(
        self,
        ref: DataStoreRef,
        mid_keys: Sequence[str],
        schema_name: str,
        schema_version: int,
        description: str,
        created_at: datetime,
    ) -> DataStore:
        """See `MetadataStore.create_datastore`."""
        with self._db.write() as conn:
            self._require_namespace(conn, ref.namespace)
            exists = conn.execute(
                "SELECT 1 FROM schema_versions WHERE namespace = ? AND name = ? AND version = ?",
                (ref.namespace, schema_name, schema_version),
            ).fetchone()
            if exists is None:
                raise missing_schema_ref(ref.namespace, schema_name, schema_version)
            try:
                cursor = conn.execute(
                    f"INSERT INTO datastores ({DATASTORE_COLUMNS}) "
                    "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                    datastore_values(
                        ref, mid_keys, schema_name, schema_version, description, _ts(created_at)
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExistsError(f"DataStore {ref} already exists") from None
            new_id = cursor.lastrowid
        assert new_id is not None
        return DataStore(
            ref, tuple(mid_keys), schema_name, schema_version, description, created_at, new_id
        )

    def get_datastore(self, ref: DataStoreRef) -> DataStore:
        """See `MetadataStore.get_datastore`."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {DATASTORE_COLUMNS} FROM datastores "
                "WHERE namespace = ? AND analysis_type = ? AND version = ?",
                (ref.namespace, ref.analysis_type, ref.version),
            ).fetchone()
        if row is None:
            raise missing_datastore(ref)
        return _datastore(row)

    def get_datastore_by_id(self, datastore_id: int) -> DataStore:
        """See `MetadataStore.get_datastore_by_id`."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {DATASTORE_COLUMNS} FROM datastores WHERE id = ?", (datastore_id,)
            ).fetchone()
        if row is None:
            raise missing_datastore(datastore_id)
        return _datastore(row)

    def list_datastores(self, namespace: str | None = None) -> list[DataStore]:
        """See `MetadataStore.list_datastores`."""
        order = " ORDER BY namespace, analysis_type, version"
        with self._db.read() as conn:
            if namespace is None:
                rows = conn.execute(f"SELECT {DATASTORE_COLUMNS} FROM datastores{order}").fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {DATASTORE_COLUMNS} FROM datastores WHERE namespace = ?{order}",
                    (namespace,),
                ).fetchall()
        return [_datastore(row) for row in rows]

    def datastores_using(self, namespace: str, schema_name: str) -> list[DataStore]:
        """See `MetadataStore.datastores_using`."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {DATASTORE_COLUMNS} FROM datastores "
                "WHERE namespace = ? AND schema_name = ? ORDER BY id",
                (namespace, schema_name),
            ).fetchall()
        return [_datastore(row) for row in rows]

    # -- documents ------------------------------------------------------------------------

    def put_document_batches(self, batches: Sequence[DocumentBatch]) -> list[list[int] | ReelError]:
        """See `DocumentStore.put_document_batches`."""
        # Rows are built before the write lock is taken, and the transaction is five
        # statements whatever the number of batches: the lock is held (and other processes
        # wait) only while SQLite works.
        rows = [
            [
                (
                    doc.id.bytes,
                    batch.datastore_id,
                    doc.mid_key,
                    batch.schema_version,
                    _ts(doc.created_at),
                    len(doc.body),
                    doc.body,
                )
                for doc in batch.documents
            ]
            for batch in batches
        ]
        ids = sorted({batch.datastore_id for batch in batches})
        bulk = sum(len(doc.rows) for batch in batches for doc in batch.index) >= _BULK_ROWS
        with self._db.write(changes_access=False, bulk=bulk) as conn:
            versions = dict(
                conn.execute(
                    "SELECT id, schema_version FROM datastores WHERE id IN "
                    f"({', '.join('?' * len(ids))})",
                    ids,
                ).fetchall()
            )
            results, accepted = accept_batches(
                batches, versions, lambda ds, keys: _latest_seqs(conn, ds, keys)
            )
            if not accepted:
                return results
            conn.executemany(
                "INSERT INTO documents (id, datastore_id, mid_key, schema_version, created_at, "
                "size, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [row for index in accepted for row in rows[index]],
            )
            last = conn.execute("SELECT coalesce(max(seq), 0) FROM documents").fetchone()[0]
            # One writer holds the database during the transaction and AUTOINCREMENT never
            # reuses a number, so the rows got the consecutive numbers ending at `last`.
            seq = last - sum(len(rows[index]) for index in accepted)
            # The documents of every batch of a DataStore (cut with the same columns) are
            # indexed together: a group commit of small writes is a few statements.
            to_index: dict[tuple[int, tuple[Column, ...]], list[tuple[int, DocumentRows]]] = {}
            for index in accepted:
                seqs = list(range(seq + 1, seq + 1 + len(rows[index])))
                results[index] = seqs
                seq += len(rows[index])
                batch = batches[index]
                if batch.index:
                    key = (batch.datastore_id, tuple(batch.columns))
                    to_index.setdefault(key, []).extend(zip(seqs, batch.index, strict=True))
            for (datastore_id, columns), docs in to_index.items():
                self._index.add(conn, datastore_id, columns, docs)
            audit = [entry for index in accepted for entry in batches[index].audit]
            if audit:
                self._append_audit(conn, audit)
        return results

    def get_document(self, document_id: UUID) -> DocumentRecord:
        """See `DocumentStore.get_document`."""
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(
                f"SELECT {_DOC_COLUMNS}, body FROM documents WHERE id = ?", (document_id.bytes,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"document {document_id} does not exist")
        return _document(row, bytes(row[8]))

    def locate_document(self, document_id: UUID) -> DocumentRecord:
        """See `DocumentStore.locate_document`."""
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ?", (document_id.bytes,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"document {document_id} does not exist")
        return _document(row)

    def latest_document(self, datastore_id: int, mid_key: str) -> DocumentRecord:
        """See `DocumentStore.latest_document`."""
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(
                f"SELECT {_DOC_COLUMNS}, body FROM documents WHERE datastore_id = ? "
                "AND mid_key = ? ORDER BY seq DESC LIMIT 1",
                (datastore_id, mid_key),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no document for MID {mid_key}")
        return _document(row, bytes(row[8]))

    def list_documents(
        self, datastore_id: int, mid_key: str, *, limit: int, before_seq: int | None
    ) -> list[DocumentRecord]:
        """See `DocumentStore.list_documents`."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE datastore_id = ? AND mid_key = ? "
                "AND seq < ? ORDER BY seq DESC LIMIT ?",
                (datastore_id, mid_key, before_seq if before_seq is not None else 2**62, limit),
            ).fetchall()
        return [_document(row) for row in rows]

    def iter_documents(
        self, datastore_id: int, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> Iterator[DocumentRecord]:
        """See `DocumentStore.iter_documents`."""
        upto = upto_seq if upto_seq is not None else 2**62
        cursor = after_seq
        while True:
            with self._db.read() as conn:
                rows = conn.execute(
                    f"SELECT {_DOC_COLUMNS}, body FROM documents WHERE datastore_id = ? "
                    "AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (datastore_id, cursor, upto, _ITER_BATCH),
                ).fetchall()
            for row in rows:
                yield _document(row, bytes(row[8]))
            if len(rows) < _ITER_BATCH:
                return
            cursor = rows[-1][0]

    def max_seq(self, datastore_id: int) -> int:
        """See `DocumentStore.max_seq`."""
        with self._db.read() as conn:
            value: int = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM documents WHERE datastore_id = ?",
                (datastore_id,),
            ).fetchone()[0]
        return value

    def import_documents(self, datastore_id: int, records: Sequence[DocumentRecord]) -> int:
        """See `DocumentStore.import_documents`."""
        with self._db.write(changes_access=False) as conn:
            found = conn.execute("SELECT 1 FROM datastores WHERE id = ?", (datastore_id,))
            if found.fetchone() is None:
                raise missing_datastore(datastore_id)
            cursor = conn.executemany(
                "INSERT INTO documents (id, datastore_id, mid_key, schema_version, created_at, "
                "size, body, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                [
                    (
                        r.id.bytes,
                        datastore_id,
                        r.mid_key,
                        r.schema_version,
                        _ts(r.created_at),
                        r.size,
                        r.body,
                        None if r.blob is None else r.blob.bytes,
                    )
                    for r in records
                ],
            )
            return cursor.rowcount

    def count_documents(self, datastore_id: int) -> int:
        """See `DocumentStore.count_documents`."""
        with self._db.read() as conn:
            value: int = conn.execute(
                "SELECT count(*) FROM documents WHERE datastore_id = ?", (datastore_id,)
            ).fetchone()[0]
        return value

    # -- access: API keys, system administrators, audit -----------------------------------

    def create_api_key(self, key: ApiKey, secret_hash: bytes) -> None:
        """See `AccessStore.create_api_key`."""
        with self._db.write() as conn:
            try:
                conn.execute(
                    f"INSERT INTO api_keys ({KEY_COLUMNS}, secret_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.key_id,
                        key.principal,
                        key.description,
                        _ts(key.created_at),
                        key.created_by,
                        None,
                        secret_hash,
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExistsError(f"API key {key.key_id} already exists") from None

    # -- search -------------------------------------------------------------------------

    def search_documents(
        self,
        datastore_id: int,
        expr: Expr,
        *,
        all_versions: bool,
        limit: int,
        after_seq: int,
    ) -> list[tuple[int, UUID, str]]:
        """See `SearchStore.search_documents`."""
        with self._db.read() as conn:
            found = self._index.filter(
                conn,
                datastore_id,
                expr,
                all_versions=all_versions,
                limit=limit,
                after_seq=after_seq,
            )
        return [(seq, UUID(bytes=raw), mid) for seq, raw, mid in found]

    def count_matches(
        self, datastore_id: int, expr: Expr, *, all_versions: bool, budget: int
    ) -> int | None:
        """See `SearchStore.count_matches`."""
        with self._db.read() as conn:
            return self._index.count(
                conn, datastore_id, expr, all_versions=all_versions, steps=budget
            )

    def search_events(
        self, datastore_id: int, doc_seq: int, expr: Expr, *, limit: int, offset: int
    ) -> list[EventHit]:
        """See `SearchStore.search_events`."""
        with self._db.read() as conn:
            return self._index.events(conn, datastore_id, doc_seq, expr, limit=limit, offset=offset)

    def begin_index_rebuild(self, datastore_id: int, columns: Sequence[Column]) -> Generation:
        """See `SearchStore.begin_index_rebuild`."""
        with self._db.write(changes_access=False) as conn:
            return self._index.begin_rebuild(conn, datastore_id, columns)

    def index_checkpoint(self, generation_id: int) -> int:
        """See `SearchStore.index_checkpoint`."""
        with self._db.read() as conn:
            return self._index.checkpoint(conn, generation_id)

    def index_documents(
        self, datastore_id: int, generation: Generation, docs: Sequence[tuple[int, DocumentRows]]
    ) -> None:
        """See `SearchStore.index_documents`."""
        bulk = sum(len(rows.rows) for _, rows in docs) >= _BULK_ROWS
        with self._db.write(changes_access=False, bulk=bulk) as conn:
            self._index.add(conn, datastore_id, generation.columns, docs, generation)

    def finish_index_rebuild(
        self,
        datastore_id: int,
        generation: Generation,
        catch_up: Callable[[list[DocumentRecord]], list[tuple[int, DocumentRows]]],
    ) -> None:
        """See `SearchStore.finish_index_rebuild`."""
        with self._db.write(changes_access=False) as conn:
            done = self._index.checkpoint(conn, generation.id)
            # After the checkpoint, and streamed documents published behind it: their
            # number was reserved before the rebuild read that far, their rows came later.
            rows = conn.execute(
                f"SELECT {_DOC_COLUMNS}, body FROM documents d WHERE datastore_id = ? "
                "AND (seq > ? OR (blob IS NOT NULL AND NOT EXISTS (SELECT 1 FROM index_docs i "
                "WHERE i.generation_id = ? AND i.doc_seq = d.seq))) ORDER BY seq",
                (datastore_id, done, generation.id),
            ).fetchall()
            docs = catch_up([_document(row, bytes(row[8])) for row in rows])
            self._index.add(conn, datastore_id, generation.columns, docs, generation)
            self._index.swap(conn, datastore_id, generation)
        # Readers that began before the swap keep their snapshot of the old tables.
        with self._db.write(changes_access=False) as conn:
            for old in self._index.generations(conn, datastore_id):
                if old.id != generation.id:
                    self._index.drop(conn, old)

    def index_coverage(self, datastore_id: int) -> tuple[int, int]:
        """See `SearchStore.index_coverage`."""
        with self._db.read() as conn:
            indexed, stored = conn.execute(
                "SELECT (SELECT coalesce(sum(g.docs), 0) FROM index_generations g "
                "JOIN index_alias a ON a.generation_id = g.id WHERE a.datastore_id = ?), "
                "(SELECT count(*) FROM documents WHERE datastore_id = ?)",
                (datastore_id, datastore_id),
            ).fetchone()
        return int(indexed), int(stored)

    def add_query_request(self, request: QueryRequestRecord) -> None:
        """See `SearchStore.add_query_request`."""
        assert request.created_at is not None
        with self._db.write(changes_access=False) as conn:
            conn.execute(
                f"INSERT INTO query_requests ({_QUERY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, 'pending', 0, NULL, NULL, NULL, ?, NULL)",
                (
                    request.id.bytes,
                    request.datastore_id,
                    request.query,
                    int(request.all_versions),
                    utc_text(request.created_at),
                ),
            )

    def get_query_request(self, request_id: UUID) -> QueryRequestRecord:
        """See `SearchStore.get_query_request`."""
        with self._db.read() as conn:
            return self._query_request(conn, request_id)

    @staticmethod
    def _query_request(conn: sqlite3.Connection, request_id: UUID) -> QueryRequestRecord:
        row = conn.execute(
            f"SELECT {_QUERY_COLUMNS} FROM query_requests WHERE id = ?", (request_id.bytes,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no query request {request_id}")
        return _query_request(row)

    def claim_query_request(
        self, request_id: UUID, owner: str, now: datetime, lease_until: datetime
    ) -> QueryRequestRecord | None:
        """See `SearchStore.claim_query_request`."""
        with self._db.write(changes_access=False) as conn:
            found = self._query_request(conn, request_id)
            lapsed = found.lease_until is not None and found.lease_until < now
            if not (found.state == "pending" or (found.state == "running" and lapsed)):
                return None
            conn.execute("DELETE FROM query_results WHERE request_id = ?", (request_id.bytes,))
            conn.execute(
                "UPDATE query_requests SET state = 'running', found = 0, owner = ?, "
                "lease_until = ? WHERE id = ?",
                (owner, utc_text(lease_until), request_id.bytes),
            )
            return self._query_request(conn, request_id)

    def add_query_results(
        self,
        request_id: UUID,
        owner: str,
        matches: Sequence[tuple[UUID, str]],
        lease_until: datetime,
    ) -> bool:
        """See `SearchStore.add_query_results`."""
        with self._db.write(changes_access=False) as conn:
            row = conn.execute(
                "SELECT found FROM query_requests WHERE id = ? AND owner = ? AND state = 'running'",
                (request_id.bytes, owner),
            ).fetchone()
            if row is None:
                return False
            conn.executemany(
                "INSERT INTO query_results (request_id, position, document_id, mid_key) "
                "VALUES (?, ?, ?, ?)",
                [
                    (request_id.bytes, row[0] + i, doc_id.bytes, mid)
                    for i, (doc_id, mid) in enumerate(matches, 1)
                ],
            )
            conn.execute(
                "UPDATE query_requests SET found = found + ?, lease_until = ? WHERE id = ?",
                (len(matches), utc_text(lease_until), request_id.bytes),
            )
            return True

    def finish_query_request(
        self,
        request_id: UUID,
        owner: str,
        *,
        error: str | None,
        finished_at: datetime | None,
    ) -> bool:
        """See `SearchStore.finish_query_request`."""
        if finished_at is None and error is None:
            state, found = "pending", "0"  # handed back: the next runner starts over
        else:
            state, found = ("failed" if error is not None else "done"), "found"
        with self._db.write(changes_access=False) as conn:
            if state == "pending":
                conn.execute(
                    "DELETE FROM query_results WHERE request_id = (SELECT id FROM "
                    "query_requests WHERE id = ? AND owner = ? AND state = 'running')",
                    (request_id.bytes, owner),
                )
            cursor = conn.execute(
                f"UPDATE query_requests SET state = ?, found = {found}, error = ?, "
                "owner = NULL, lease_until = NULL, finished_at = ? "
                "WHERE id = ? AND owner = ? AND state = 'running'",
                (
                    state,
                    error,
                    None if finished_at is None else utc_text(finished_at),
                    request_id.bytes,
                    owner,
                ),
            )
            return cursor.rowcount == 1

    def query_results(
        self, request_id: UUID, *, after: int, limit: int
    ) -> list[tuple[int, UUID, str]]:
        """See `SearchStore.query_results`."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT position, document_id, mid_key FROM query_results "
                "WHERE request_id = ? AND position > ? ORDER BY position LIMIT ?",
                (request_id.bytes, after, limit),
            ).fetchall()
        return [(row[0], UUID(bytes=row[1]), row[2]) for row in rows]

    def delete_query_requests(self, finished_before: datetime) -> int:
        """See `SearchStore.delete_query_requests`."""
        with self._db.write(changes_access=False) as conn:
            cutoff = utc_text(finished_before)
            conn.execute(
                "DELETE FROM query_results WHERE request_id IN (SELECT id FROM query_requests "
                "WHERE finished_at < ?)",
                (cutoff,),
            )
            cursor = conn.execute("DELETE FROM query_requests WHERE finished_at < ?", (cutoff,))
            return cursor.rowcount

    def index_generations(self, datastore_id: int) -> list[Generation]:
        """See `SearchStore.index_generations`."""
        with self._db.read() as conn:
            return self._index.generations(conn, datastore_id)

    def _job_write(self, fn: Callable[[Any], T]) -> T:
        with self._db.write(changes_access=False) as conn:
            return fn(conn)

    def _job_read(self, fn: Callable[[Any], T]) -> T:
        with self._db.read() as conn:
            return fn(conn)

    def access_generation(self) -> int | None:
        """See `AccessStore.access_generation`."""
        return self._db.access_generation()

    def key_access(self, key_id: str) -> tuple[ApiKey, bytes, Principal]:
        """See `AccessStore.key_access`."""
        # One statement on every authenticated request: the key, the system flag, the roles.
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS}, secret_hash, {_access('k.principal')} "
                "FROM api_keys k WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"API key {key_id} does not exist")
        return _api_key(row), bytes(row[6]), _principal(row[1], row[7], row[8], key_id)

    def principal_access(self, principal: str) -> Principal:
        """See `AccessStore.principal_access`."""
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(f"SELECT {_access(':name')}", {"name": principal}).fetchone()
        return _principal(principal, row[0], row[1], None)

    def list_api_keys(self, principal: str | None = None) -> list[ApiKey]:
        """See `AccessStore.list_api_keys`."""
        where, args = ("WHERE principal = ?", (principal,)) if principal is not None else ("", ())
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id", args
            ).fetchall()
        return [_api_key(row) for row in rows]

    def revoke_api_key(self, key_id: str, revoked_at: datetime) -> ApiKey:
        """See `AccessStore.revoke_api_key`."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (_ts(revoked_at), key_id),
            )
            row = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"API key {key_id} does not exist")
        return _api_key(row)

    def set_system_admin(self, principal: str, admin: bool, at: datetime) -> None:
        """See `AccessStore.set_system_admin`."""
        with self._db.write() as conn:
            if admin:
                conn.execute(
                    "INSERT OR IGNORE INTO system_admins (principal, granted_at) VALUES (?, ?)",
                    (principal, _ts(at)),
                )
            else:
                conn.execute("DELETE FROM system_admins WHERE principal = ?", (principal,))

    def list_system_admins(self) -> list[str]:
        """See `AccessStore.list_system_admins`."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT principal FROM system_admins ORDER BY principal")
            return [row[0] for row in rows.fetchall()]

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """See `AccessStore.append_audit`."""
        with self._db.write(changes_access=False) as conn:
            self._append_audit(conn, entries)

    @staticmethod
    def _append_audit(conn: sqlite3.Connection, entries: Sequence[AuditEntry]) -> None:
        conn.executemany(
            "INSERT INTO audit_log (at, principal, action, namespace, target, request_id, "
            "status) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    _ts(e.at),
                    e.principal,
                    e.action,
                    e.namespace,
                    e.target,
                    e.request_id,
                    e.status,
                )
                for e in entries
            ],
        )

    def list_audit(
        self, namespace: str | None, *, limit: int, before_seq: int | None
    ) -> list[AuditEntry]:
        """See `AccessStore.list_audit`."""
        before = before_seq if before_seq is not None else 2**62
        where, args = (
            ("WHERE namespace = ? AND seq < ?", (namespace, before))
            if namespace is not None
            else ("WHERE seq < ?", (before,))
        )
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {AUDIT_COLUMNS} FROM audit_log {where} ORDER BY seq DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [_audit(row) for row in rows]
