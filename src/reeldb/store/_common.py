"""What the SQLite and PostgreSQL stores decide alike: checks, their errors and row values.

Pure Python: each backend reads what a check needs with its own SQL and passes it here, so
both raise the same errors with the same messages.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from reeldb import _json
from reeldb.errors import (
    ConflictError,
    NotFoundError,
    ReelError,
    StaleSchemaError,
    VersionConflictError,
)
from reeldb.index.model import Generation
from reeldb.index.rows import DocumentRows
from reeldb.model.datastore import DataStore, DataStoreRef
from reeldb.schema.model import (
    CompatibilityMode,
    SchemaKind,
    SchemaRef,
    SchemaSubject,
    SchemaVersion,
)
from reeldb.store.base import DataStoreMove, DocumentBatch, DocumentRecord

__all__ = [
    "AUDIT_COLUMNS",
    "DATASTORE_COLUMNS",
    "KEY_COLUMNS",
    "SCHEMA_VERSION_COLUMNS",
    "accept_batches",
    "check_move",
    "check_moved_datastores",
    "check_new_schema_version",
    "check_publish",
    "check_schema_version",
    "check_stage",
    "datastore_record",
    "datastore_values",
    "dropped_generation",
    "find_generation",
    "missing_datastore",
    "missing_ingest",
    "missing_schema",
    "missing_schema_ref",
    "missing_schema_version",
    "schema_version_error",
    "schema_version_record",
    "schema_version_values",
    "subject_record",
]

DATASTORE_COLUMNS: Final = (
    "id, namespace, analysis_type, version, mid_keys, schema_name, schema_version, "
    "description, created_at"
)
"""The columns of ``datastores`` that `datastore_record` reads, in its order."""
SCHEMA_VERSION_COLUMNS: Final = (
    "namespace, name, version, kind, description, definition, json_schema, resolved, lineage, "
    "created_at"
)
"""The columns of ``schema_versions``, in the order of `schema_version_values`."""
KEY_COLUMNS: Final = "key_id, principal, description, created_at, created_by, revoked_at"
"""The columns of ``api_keys`` read into an `ApiKey`, in its order."""
AUDIT_COLUMNS: Final = "seq, at, principal, action, namespace, target, request_id, status"
"""The columns of ``audit_log`` read into an `AuditEntry`, in its order."""


def datastore_record(row: Sequence[Any], created_at: datetime) -> DataStore:
    """A `DataStore` from a row of `DATASTORE_COLUMNS` (its time as the backend reads it)."""
    return DataStore(
        ref=DataStoreRef(row[1], row[2], row[3]),
        mid_keys=tuple(_json.loads(row[4])),
        schema_name=row[5],
        schema_version=row[6],
        description=row[7],
        created_at=created_at,
        id=row[0],
    )


def schema_version_record(row: Sequence[Any], created_at: datetime) -> SchemaVersion:
    """A `SchemaVersion` from a row of `SCHEMA_VERSION_COLUMNS` (its time as read)."""
    return SchemaVersion(
        ref=SchemaRef(row[0], row[1], row[2]),
        kind=SchemaKind(row[3]),
        description=row[4],
        definition=_json.loads(row[5]),
        json_schema=_json.loads(row[6]),
        resolved=_json.loads(row[7]),
        lineage=tuple(_json.loads(row[8])),
        created_at=created_at,
    )


def subject_record(row: Sequence[Any], versions: Sequence[int]) -> SchemaSubject:
    """A `SchemaSubject` from ``namespace, name, kind, compatibility`` and its versions (sorted)."""
    return SchemaSubject(
        namespace=row[0],
        name=row[1],
        kind=SchemaKind(row[2]),
        compatibility=CompatibilityMode(row[3]),
        latest_version=versions[-1],
        versions=tuple(versions),
    )


def missing_datastore(ref: DataStoreRef | int) -> NotFoundError:
    """The error of a DataStore (by reference, or by id) that does not exist."""
    what = f"#{ref}" if isinstance(ref, int) else str(ref)
    return NotFoundError(f"DataStore {what} does not exist")


def missing_schema(namespace: str, name: str) -> NotFoundError:
    """The error of a schema (subject) that does not exist."""
    return NotFoundError(f"schema {name} does not exist in namespace {namespace}")


def missing_schema_version(
    namespace: str, name: str, version: int | None, latest: int | None
) -> NotFoundError:
    """The error of a schema version not found, given the schema's latest version (if any)."""
    if latest is None:
        return missing_schema(namespace, name)
    return NotFoundError(f"schema {namespace}/{name} has no version {version} (latest is {latest})")


def check_new_schema_version(ref: SchemaRef, latest: int | None) -> None:
    """Check that ``ref`` comes after the schema's latest version.

    Raises:
        ConflictError: The schema already has that version or a later one.
    """
    if latest is not None and ref.version <= latest:
        raise ConflictError(
            f"schema {ref.namespace}/{ref.name} already has version {latest}; "
            f"version {ref.version} cannot be added"
        )


def schema_version_values(schema: SchemaVersion, created_at: Any) -> tuple[Any, ...]:
    """The values of a ``schema_versions`` row, in column order (``created_at`` as stored)."""
    ref = schema.ref
    return (
        ref.namespace,
        ref.name,
        ref.version,
        schema.kind.value,
        schema.description,
        _json.dumps(schema.definition).decode(),
        _json.dumps(schema.json_schema).decode(),
        _json.dumps(schema.resolved).decode(),
        _json.dumps(list(schema.lineage)).decode(),
        created_at,
    )


def check_moved_datastores(using: Collection[int], moves: Sequence[DataStoreMove]) -> None:
    """Check that the DataStores using a schema are still those the moves were checked for.

    Raises:
        StaleSchemaError: A DataStore started or stopped using the schema meanwhile.
    """
    if set(using) != {move.datastore_id for move in moves}:
        raise StaleSchemaError("DataStores using the schema changed during the check")


def check_move(
    move: DataStoreMove,
    version: int | None,
    max_seq: int,
    check_new: Callable[[DocumentRecord], None] | None,
) -> bool:
    """Check one DataStore move against the DataStore as it is now.

    Args:
        move: The move, as checked.
        version: The DataStore's schema version now (None: it is gone).
        max_seq: The highest seq of its documents now (0: none).
        check_new: Checks a document written after the move was checked (None: any such
            document fails the move).

    Returns:
        Whether documents after ``move.checked_upto_seq`` must be passed to ``check_new``.

    Raises:
        StaleSchemaError: The DataStore changed, or documents arrived and cannot be checked.
    """
    if version is None or version != move.from_version:
        raise StaleSchemaError("a DataStore changed while the schema was checked")
    if max_seq <= move.checked_upto_seq:
        return False
    if check_new is None:
        raise StaleSchemaError("documents arrived while the schema was checked")
    return True


def missing_schema_ref(namespace: str, schema_name: str, schema_version: int) -> NotFoundError:
    """The error of a DataStore naming a schema version that does not exist."""
    return NotFoundError(f"schema {namespace}/{schema_name} v{schema_version} does not exist")


def datastore_values(
    ref: DataStoreRef,
    mid_keys: Sequence[str],
    schema_name: str,
    schema_version: int,
    description: str,
    created_at: Any,
) -> tuple[Any, ...]:
    """The values of a new ``datastores`` row after its id (``created_at`` as stored)."""
    return (
        ref.namespace,
        ref.analysis_type,
        ref.version,
        _json.dumps(list(mid_keys)).decode(),
        schema_name,
        schema_version,
        description,
        created_at,
    )


def accept_batches(
    batches: Sequence[DocumentBatch],
    versions: Mapping[int, int],
    latest: Callable[[int, Sequence[str]], Mapping[str, int]] | None = None,
) -> tuple[list[list[int] | ReelError], list[int]]:
    """Check each document batch against its DataStore's current schema version.

    Args:
        batches: The batches of `DocumentStore.put_document_batches`.
        versions: The current schema version of each DataStore that exists.
        latest: ``latest(datastore_id, mid_keys)``: the seq of each MID's latest document
            (in the write transaction), to check the batches' ``replaces``.

    Returns:
        The results (an error for a rejected batch, an empty list for now for an accepted
        one) and the indexes of the accepted batches.
    """
    results: list[list[int] | ReelError] = []
    accepted: list[int] = []
    for index, batch in enumerate(batches):
        error: ReelError | None = schema_version_error(
            batch.datastore_id, versions.get(batch.datastore_id), batch.schema_version
        )
        if error is None and batch.replaces and latest is not None:
            error = _replaced_elsewhere(batch, latest)
        if error is None:
            accepted.append(index)
        results.append([] if error is None else error)
    return results, accepted


def _replaced_elsewhere(
    batch: DocumentBatch, latest: Callable[[int, Sequence[str]], Mapping[str, int]]
) -> VersionConflictError | None:
    wanted = {
        doc.mid_key: seq
        for doc, seq in zip(batch.documents, batch.replaces, strict=True)
        if seq is not None
    }
    found = latest(batch.datastore_id, sorted(wanted))
    for mid_key, seq in wanted.items():
        if found.get(mid_key, 0) != seq:
            return VersionConflictError(
                f"MID {mid_key} has a newer document than the one this write replaces; "
                "read it again"
            )
    return None


def schema_version_error(
    datastore_id: int, current: int | None, expected: int
) -> NotFoundError | StaleSchemaError | None:
    """Why a write to a DataStore at schema version ``current`` fails, if it does.

    Args:
        datastore_id: The DataStore written.
        current: Its schema version now (None: it does not exist).
        expected: The schema version the write was validated against.
    """
    if current is None:
        return missing_datastore(datastore_id)
    if current != expected:
        return StaleSchemaError(f"the DataStore moved to schema version {current} during the write")
    return None


def check_schema_version(datastore_id: int, current: int | None, expected: int) -> None:
    """Raise `schema_version_error`'s error, if there is one."""
    error = schema_version_error(datastore_id, current, expected)
    if error is not None:
        raise error


# -- streamed ingests ----------------------------------------------------------------------


def missing_ingest(ingest_id: UUID) -> NotFoundError:
    """The error of an ingest that does not exist."""
    return NotFoundError(f"ingest {ingest_id} does not exist")


def dropped_generation(generation_id: int) -> ConflictError:
    """The error of a write whose index generation a rebuild dropped (or swapped away)."""
    return ConflictError(f"index generation #{generation_id} was dropped during the write; retry")


def find_generation(generations: Iterable[Generation], generation_id: int) -> Generation:
    """The generation of this id among a DataStore's generations.

    Raises:
        ConflictError: It was dropped.
    """
    for gen in generations:
        if gen.id == generation_id:
            return gen
    raise dropped_generation(generation_id)


def check_stage(
    ingest_id: UUID,
    ingest: Sequence[Any],
    batch: DocumentRows,
    rows_at: int,
    chunks_at: int,
) -> None:
    """Check that a batch of rows may be staged into an ingest.

    Args:
        ingest_id: The ingest.
        ingest: Its ``state, generation_id, doc_seq, row_base, rows, chunk_base, chunks,
            rows_done, chunks_done`` (and more, ignored).
        batch: The rows.
        rows_at: The rows the caller has staged before this batch.
        chunks_at: The chunks the caller has staged before this batch.

    Raises:
        ConflictError: The ingest is not staging, another worker staged this batch, or the
            batch goes beyond what the ingest reserved.
    """
    state, _, _, _, rows, _, chunks, done, chunks_done = ingest[:9]
    if state != "staging":
        raise ConflictError(f"ingest {ingest_id} is {state}, not staging")
    if done != rows_at or chunks_done != chunks_at:
        raise ConflictError(
            f"ingest {ingest_id} has {done} rows staged, not {rows_at}: another worker "
            "staged this batch"
        )
    if rows_at + len(batch.rows) > rows or chunks_at + len(batch.chunks) > chunks:
        raise ConflictError(f"ingest {ingest_id} got more rows than it reserved")


def check_publish(ingest_id: UUID, ingest: Sequence[Any]) -> bool:
    """Check that an ingest may be published (``ingest`` as in `check_stage`).

    Returns:
        False when it is published already (nothing to do), True when it is to be published.

    Raises:
        ConflictError: It is neither staging nor published, or not all its rows are staged.
    """
    state, _, _, _, rows, _, chunks, done, chunks_done = ingest[:9]
    if state == "published":
        return False
    if state != "staging":
        raise ConflictError(f"ingest {ingest_id} is {state}; it cannot be published")
    if done != rows or chunks_done != chunks:
        raise ConflictError(
            f"ingest {ingest_id} has {done} of {rows} rows staged; it cannot be published"
        )
    return True
