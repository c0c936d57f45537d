"""Metadata and access on PostgreSQL: namespaces, roles, schemas, DataStores, keys, audit.

These tables are small and read on every request, so they are plain (unpartitioned)
tables; every shard of a sharded deployment would hold a copy. Names that listings sort
by are ``COLLATE "C"``: they sort by code point, as on SQLite, whatever the database's
collation.

Check-then-act is atomic by constraint or by lock. Creations insert and turn a unique
violation into `AlreadyExistsError`. A schema change locks its subject's row (``SELECT ...
FOR UPDATE``), so versions of one schema are stored one after the other, then takes the
seq locks of the DataStores it moves (`reeldb.store.postgres._documents.lock_datastores`;
writers are to hold them from before they read a DataStore's schema version until they
commit): the writes in flight commit first and are seen by the check of new documents,
later ones wait, then find the DataStore on the new version.

Every transaction that changes API keys, roles or system administrators moves the access
generation on (`bump_access`), so every process's authentication cache reads again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, TypeAlias

import psycopg
from psycopg import errors as pg_errors

from reeldb.auth.model import ApiKey, AuditEntry, Principal
from reeldb.errors import AlreadyExistsError, NotFoundError
from reeldb.model.datastore import DataStore, DataStoreRef, Namespace, Role, RoleGrant
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
from reeldb.store.base import DataStoreMove, DocumentRecord
from reeldb.store.postgres._base import PostgresBase, append_audit, bump_access
from reeldb.store.postgres._documents import (
    DOCUMENT_COLUMNS,
    document_record,
    lock_datastores,
)

__all__ = ["DDL", "PostgresMetadata"]

DDL: Final[tuple[str, ...]] = (
    """CREATE TABLE namespaces (
        name TEXT COLLATE "C" PRIMARY KEY,
        description TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE role_grants (
        namespace TEXT COLLATE "C" NOT NULL REFERENCES namespaces (name),
        principal TEXT COLLATE "C" NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'writer', 'reader')),
        granted_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (namespace, principal)
    )""",
    "CREATE INDEX role_grants_by_principal ON role_grants (principal)",
    """CREATE TABLE schema_subjects (
        namespace TEXT COLLATE "C" NOT NULL REFERENCES namespaces (name),
        name TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL,
        compatibility TEXT NOT NULL,
        PRIMARY KEY (namespace, name)
    )""",
    """CREATE TABLE schema_versions (
        namespace TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        kind TEXT NOT NULL,
        description TEXT NOT NULL,
        definition TEXT NOT NULL,
        json_schema TEXT NOT NULL,
        resolved TEXT NOT NULL,
        lineage TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (namespace, name, version),
        FOREIGN KEY (namespace, name) REFERENCES schema_subjects (namespace, name)
    )""",
    """CREATE TABLE datastores (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        namespace TEXT COLLATE "C" NOT NULL REFERENCES namespaces (name),
        analysis_type TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        mid_keys TEXT NOT NULL,
        schema_name TEXT COLLATE "C" NOT NULL,
        schema_version BIGINT NOT NULL,
        description TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        UNIQUE (namespace, analysis_type, version),
        FOREIGN KEY (namespace, schema_name, schema_version)
            REFERENCES schema_versions (namespace, name, version)
    )""",
    "CREATE INDEX datastores_by_schema ON datastores (namespace, schema_name)",
    """CREATE TABLE api_keys (
        key_id TEXT COLLATE "C" PRIMARY KEY,
        principal TEXT COLLATE "C" NOT NULL,
        secret_hash BYTEA NOT NULL,
        description TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TIMESTAMPTZ
    )""",
    "CREATE INDEX api_keys_by_principal ON api_keys (principal)",
    """CREATE TABLE system_admins (
        principal TEXT COLLATE "C" PRIMARY KEY,
        granted_at TIMESTAMPTZ NOT NULL
    )""",
)
"""Tables of this part, created by migration 0001_initial (in order)."""

_ACCESS: Final = (
    "EXISTS (SELECT 1 FROM system_admins s WHERE s.principal = {p}), "
    "(SELECT json_object_agg(g.namespace, g.role) FROM role_grants g WHERE g.principal = {p})"
)
"""Columns: whether principal ``{p}`` is a system administrator, and its roles (JSON)."""

Conn: TypeAlias = psycopg.Connection[Any]


def _datastore(row: Sequence[Any]) -> DataStore:
    return datastore_record(row, row[8])


def _schema_version(row: Sequence[Any]) -> SchemaVersion:
    return schema_version_record(row, row[9])


def _api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], row[4], row[5])


def _audit(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])


def _principal(
    name: str, admin: bool, roles: dict[str, str] | None, key_id: str | None
) -> Principal:
    grants = {ns: Role(role) for ns, role in (roles or {}).items()}
    return Principal(name, admin, grants, key_id)


def _require_namespace(conn: Conn, name: str) -> None:
    if conn.execute("SELECT 1 FROM namespaces WHERE name = %s", (name,)).fetchone() is None:
        raise NotFoundError(f"namespace {name} does not exist")


def _subjects(conn: Conn, where: str, args: tuple[Any, ...]) -> list[SchemaSubject]:
    """Subjects with their versions (``where`` is a constant condition on ``s``)."""
    rows = conn.execute(
        "SELECT s.namespace, s.name, s.kind, s.compatibility, "
        "array_agg(v.version ORDER BY v.version) FROM schema_subjects s "
        "JOIN schema_versions v ON v.namespace = s.namespace AND v.name = s.name "
        f"WHERE {where} GROUP BY s.namespace, s.name ORDER BY s.name",
        args,
    ).fetchall()
    return [subject_record(row, row[4]) for row in rows]


class PostgresMetadata(PostgresBase):
    """The `MetadataStore` and `AccessStore` ports of `PostgresStore`."""

    # -- namespaces and roles -------------------------------------------------------------

    def create_namespace(
        self, name: str, description: str, created_at: datetime, admins: Sequence[str] = ()
    ) -> Namespace:
        """See `MetadataStore.create_namespace`."""
        grants = [(name, principal, Role.ADMIN.value, created_at) for principal in admins]

        def create(conn: Conn) -> None:
            try:
                conn.execute(
                    "INSERT INTO namespaces (name, description, created_at) VALUES (%s, %s, %s)",
                    (name, description, created_at),
                )
            except pg_errors.UniqueViolation:
                raise AlreadyExistsError(f"namespace {name} already exists") from None
            if grants:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO role_grants (namespace, principal, role, granted_at) "
                        "VALUES (%s, %s, %s, %s)",
                        grants,
                    )
                bump_access(conn)

        self._pg.write(create)
        return Namespace(name, description, created_at)

    def get_namespace(self, name: str) -> Namespace:
        """See `MetadataStore.get_namespace`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                "SELECT name, description, created_at FROM namespaces WHERE name = %s", (name,)
            ).fetchone()
        )
        if row is None:
            raise NotFoundError(f"namespace {name} does not exist")
        return Namespace(row[0], row[1], row[2])

    def list_namespaces(self) -> list[Namespace]:
        """See `MetadataStore.list_namespaces`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                "SELECT name, description, created_at FROM namespaces ORDER BY name"
            ).fetchall()
        )
        return [Namespace(r[0], r[1], r[2]) for r in rows]

    def grant_role(
        self, namespace: str, principal: str, role: Role, granted_at: datetime
    ) -> RoleGrant:
        """See `MetadataStore.grant_role`."""

        def grant(conn: Conn) -> None:
            _require_namespace(conn, namespace)
            conn.execute(
                "INSERT INTO role_grants (namespace, principal, role, granted_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (namespace, principal) "
                "DO UPDATE SET role = excluded.role, granted_at = excluded.granted_at",
                (namespace, principal, role.value, granted_at),
            )
            bump_access(conn)

        self._pg.write(grant)
        return RoleGrant(namespace, principal, role, granted_at)

    def revoke_role(self, namespace: str, principal: str) -> None:
        """See `MetadataStore.revoke_role`."""

        def revoke(conn: Conn) -> None:
            cursor = conn.execute(
                "DELETE FROM role_grants WHERE namespace = %s AND principal = %s",
                (namespace, principal),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"{principal} has no role in namespace {namespace}")
            bump_access(conn)

        self._pg.write(revoke)

    def list_roles(self, namespace: str) -> list[RoleGrant]:
        """See `MetadataStore.list_roles`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                "SELECT namespace, principal, role, granted_at FROM role_grants "
                "WHERE namespace = %s ORDER BY principal",
                (namespace,),
            ).fetchall()
        )
        return [RoleGrant(r[0], r[1], Role(r[2]), r[3]) for r in rows]

    # -- schemas --------------------------------------------------------------------------

    def get_subject(self, namespace: str, name: str) -> SchemaSubject:
        """See `MetadataStore.get_subject`."""
        found = self._pg.read(
            lambda conn: _subjects(conn, "s.namespace = %s AND s.name = %s", (namespace, name))
        )
        if not found:
            raise missing_schema(namespace, name)
        return found[0]

    def list_subjects(self, namespace: str) -> list[SchemaSubject]:
        """See `MetadataStore.list_subjects`."""
        return self._pg.read(lambda conn: _subjects(conn, "s.namespace = %s", (namespace,)))

    def get_schema_version(self, namespace: str, name: str, version: int | None) -> SchemaVersion:
        """See `MetadataStore.get_schema_version`."""

        def read(conn: Conn) -> tuple[Any, int | None]:
            if version is None:
                row = conn.execute(
                    f"SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions "
                    "WHERE namespace = %s AND name = %s ORDER BY version DESC LIMIT 1",
                    (namespace, name),
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions "
                    "WHERE namespace = %s AND name = %s AND version = %s",
                    (namespace, name, version),
                ).fetchone()
            if row is not None:
                return row, None
            latest = conn.execute(
                "SELECT max(version) FROM schema_versions WHERE namespace = %s AND name = %s",
                (namespace, name),
            ).fetchone()
            return None, None if latest is None else latest[0]

        row, latest = self._pg.read(read)
        if row is not None:
            return _schema_version(row)
        raise missing_schema_version(namespace, name, version, latest)

    def list_schema_versions(self, namespace: str, name: str) -> list[SchemaVersion]:
        """See `MetadataStore.list_schema_versions`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {SCHEMA_VERSION_COLUMNS} FROM schema_versions "
                "WHERE namespace = %s AND name = %s ORDER BY version",
                (namespace, name),
            ).fetchall()
        )
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
        version_row = schema_version_values(schema, schema.created_at)
        moved = {move.datastore_id for move in moves}

        def add(conn: Conn) -> None:
            _require_namespace(conn, ref.namespace)
            conn.execute(
                "INSERT INTO schema_subjects (namespace, name, kind, compatibility) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (ref.namespace, ref.name, schema.kind.value, compatibility.value),
            )
            # Versions of one schema are added one at a time.
            conn.execute(
                "SELECT 1 FROM schema_subjects WHERE namespace = %s AND name = %s FOR UPDATE",
                (ref.namespace, ref.name),
            )
            latest = conn.execute(
                "SELECT max(version) FROM schema_versions WHERE namespace = %s AND name = %s",
                (ref.namespace, ref.name),
            ).fetchone()
            assert latest is not None
            check_new_schema_version(ref, latest[0])
            conn.execute(
                f"INSERT INTO schema_versions ({SCHEMA_VERSION_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                version_row,
            )
            # Writers take their DataStores' seq locks before they read the schema version:
            # once the move holds them (in id order, as writers take them), the writes in
            # flight have committed and new ones wait until the move commits.
            lock_datastores(conn, moved)
            current = dict(
                conn.execute(
                    "SELECT id, schema_version FROM datastores WHERE namespace = %s "
                    "AND schema_name = %s ORDER BY id FOR NO KEY UPDATE",
                    (ref.namespace, ref.name),
                ).fetchall()
            )
            check_moved_datastores(current, moves)
            for move in moves:
                version = current[move.datastore_id]
                if check_move(move, version, _max_seq(conn, move.datastore_id), check_new):
                    assert check_new is not None
                    _check_documents(conn, move, check_new)
            if moved:
                conn.execute(
                    "UPDATE datastores SET schema_version = %s WHERE id = ANY(%s)",
                    (ref.version, sorted(moved)),
                )

        self._pg.write(add)

    def set_compatibility(self, namespace: str, name: str, mode: CompatibilityMode) -> None:
        """See `MetadataStore.set_compatibility`."""

        def update(conn: Conn) -> None:
            cursor = conn.execute(
                "UPDATE schema_subjects SET compatibility = %s WHERE namespace = %s AND name = %s",
                (mode.value, namespace, name),
            )
            if cursor.rowcount == 0:
                raise missing_schema(namespace, name)

        self._pg.write(update)

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
        values = datastore_values(
            ref, mid_keys, schema_name, schema_version, description, created_at
        )

        def create(conn: Conn) -> int:
            _require_namespace(conn, ref.namespace)
            exists = conn.execute(
                "SELECT 1 FROM schema_versions WHERE namespace = %s AND name = %s AND version = %s",
                (ref.namespace, schema_name, schema_version),
            ).fetchone()
            if exists is None:
                raise missing_schema_ref(ref.namespace, schema_name, schema_version)
            try:
                row = conn.execute(
                    "INSERT INTO datastores (namespace, analysis_type, version, mid_keys, "
                    "schema_name, schema_version, description, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    values,
                ).fetchone()
            except pg_errors.UniqueViolation:
                raise AlreadyExistsError(f"DataStore {ref} already exists") from None
            assert row is not None
            new_id: int = row[0]
            return new_id

        new_id = self._pg.write(create)
        return DataStore(
            ref, tuple(mid_keys), schema_name, schema_version, description, created_at, new_id
        )

    def get_datastore(self, ref: DataStoreRef) -> DataStore:
        """See `MetadataStore.get_datastore`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {DATASTORE_COLUMNS} FROM datastores "
                "WHERE namespace = %s AND analysis_type = %s AND version = %s",
                (ref.namespace, ref.analysis_type, ref.version),
            ).fetchone()
        )
        if row is None:
            raise missing_datastore(ref)
        return _datastore(row)

    def get_datastore_by_id(self, datastore_id: int) -> DataStore:
        """See `MetadataStore.get_datastore_by_id`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {DATASTORE_COLUMNS} FROM datastores WHERE id = %s",
                (datastore_id,),
            ).fetchone()
        )
        if row is None:
            raise missing_datastore(datastore_id)
        return _datastore(row)

    def list_datastores(self, namespace: str | None = None) -> list[DataStore]:
        """See `MetadataStore.list_datastores`."""
        where, args = ("WHERE namespace = %s", (namespace,)) if namespace is not None else ("", ())
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {DATASTORE_COLUMNS} FROM datastores {where} "
                "ORDER BY namespace, analysis_type, version",
                args,
            ).fetchall()
        )
        return [_datastore(row) for row in rows]

    def datastores_using(self, namespace: str, schema_name: str) -> list[DataStore]:
        """See `MetadataStore.datastores_using`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {DATASTORE_COLUMNS} FROM datastores "
                "WHERE namespace = %s AND schema_name = %s ORDER BY id",
                (namespace, schema_name),
            ).fetchall()
        )
        return [_datastore(row) for row in rows]

    # -- access: API keys, system administrators, audit -----------------------------------

    def create_api_key(self, key: ApiKey, secret_hash: bytes) -> None:
        """See `AccessStore.create_api_key`."""

        def create(conn: Conn) -> None:
            try:
                conn.execute(
                    f"INSERT INTO api_keys ({KEY_COLUMNS}, secret_hash) "
                    "VALUES (%s, %s, %s, %s, %s, NULL, %s)",
                    (
                        key.key_id,
                        key.principal,
                        key.description,
                        key.created_at,
                        key.created_by,
                        secret_hash,
                    ),
                )
            except pg_errors.UniqueViolation:
                raise AlreadyExistsError(f"API key {key.key_id} already exists") from None
            bump_access(conn)

        self._pg.write(create)

    def key_access(self, key_id: str) -> tuple[ApiKey, bytes, Principal]:
        """See `AccessStore.key_access`."""
        # One statement on every authenticated request: the key, the system flag, the roles.
        row = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {KEY_COLUMNS}, secret_hash, "
                f"{_ACCESS.format(p='k.principal')} FROM api_keys k WHERE key_id = %s",
                (key_id,),
            ).fetchone()
        )
        if row is None:
            raise NotFoundError(f"API key {key_id} does not exist")
        return _api_key(row), bytes(row[6]), _principal(row[1], row[7], row[8], key_id)

    def principal_access(self, principal: str) -> Principal:
        """See `AccessStore.principal_access`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {_ACCESS.format(p='%(name)s')}", {"name": principal}
            ).fetchone()
        )
        assert row is not None
        return _principal(principal, row[0], row[1], None)

    def list_api_keys(self, principal: str | None = None) -> list[ApiKey]:
        """See `AccessStore.list_api_keys`."""
        where, args = ("WHERE principal = %s", (principal,)) if principal is not None else ("", ())
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id",
                args,
            ).fetchall()
        )
        return [_api_key(row) for row in rows]

    def revoke_api_key(self, key_id: str, revoked_at: datetime) -> ApiKey:
        """See `AccessStore.revoke_api_key`."""

        def revoke(conn: Conn) -> Any:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
                (revoked_at, key_id),
            )
            if cursor.rowcount:
                bump_access(conn)
            return conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = %s",
                (key_id,),
            ).fetchone()

        row = self._pg.write(revoke)
        if row is None:
            raise NotFoundError(f"API key {key_id} does not exist")
        return _api_key(row)

    def set_system_admin(self, principal: str, admin: bool, at: datetime) -> None:
        """See `AccessStore.set_system_admin`."""

        def update(conn: Conn) -> None:
            if admin:
                cursor = conn.execute(
                    "INSERT INTO system_admins (principal, granted_at) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (principal, at),
                )
            else:
                cursor = conn.execute(
                    "DELETE FROM system_admins WHERE principal = %s", (principal,)
                )
            if cursor.rowcount:
                bump_access(conn)

        self._pg.write(update)

    def list_system_admins(self) -> list[str]:
        """See `AccessStore.list_system_admins`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                "SELECT principal FROM system_admins ORDER BY principal"
            ).fetchall()
        )
        return [row[0] for row in rows]

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """See `AccessStore.append_audit`."""
        self._pg.write(lambda conn: append_audit(conn, entries))

    def list_audit(
        self, namespace: str | None, *, limit: int, before_seq: int | None
    ) -> list[AuditEntry]:
        """See `AccessStore.list_audit`."""
        before = before_seq if before_seq is not None else 2**62
        where, args = (
            ("WHERE namespace = %s AND seq < %s", (namespace, before))
            if namespace is not None
            else ("WHERE seq < %s", (before,))
        )
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {AUDIT_COLUMNS} FROM audit_log {where} ORDER BY seq DESC LIMIT %s",
                (*args, limit),
            ).fetchall()
        )
        return [_audit(row) for row in rows]


def _max_seq(conn: Conn, datastore_id: int) -> int:
    row = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM documents WHERE datastore_id = %s", (datastore_id,)
    ).fetchone()
    assert row is not None
    value: int = row[0]
    return value


def _check_documents(
    conn: Conn, move: DataStoreMove, check_new: Callable[[DocumentRecord], None]
) -> None:
    """Pass the documents of a moved DataStore written after its check to ``check_new``.

    They are streamed through a server-side cursor: a long check may have let many in.
    """
    with conn.cursor("reeldb_check_new") as cursor:
        cursor.execute(
            f"SELECT {DOCUMENT_COLUMNS}, body FROM documents "
            "WHERE datastore_id = %s AND seq > %s ORDER BY seq",
            (move.datastore_id, move.checked_upto_seq),
        )
        for row in cursor:
            check_new(document_record(row, bytes(row[8])))
