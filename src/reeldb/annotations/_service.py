"""`Annotations`: the annotation use cases of a `reeldb.Database` (``db.annotations``)."""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from uuid_utils.compat import uuid7

from reeldb import _json
from reeldb._ids import ANNOTATION_ID_ERROR, parse_uuid
from reeldb.annotations import _exchange
from reeldb.annotations._filter import holds
from reeldb.annotations.model import (
    ASSOCIATION_TYPE,
    MAX_BATCH,
    Annotation,
    AnnotationHit,
    Association,
    NewAnnotation,
    TypeRef,
    parse_associations,
    parse_type,
)
from reeldb.auth.model import AuditEntry
from reeldb.errors import (
    DeletedError,
    NotFoundError,
    QueryError,
    ReelError,
    ValidationError,
    VersionConflictError,
    Violation,
)
from reeldb.index._compile import fts_tokens
from reeldb.index.rows import convert, scalar
from reeldb.model.document import Page
from reeldb.model.names import MAX_VERSION
from reeldb.query import parse_query
from reeldb.query.ast import Count, Expr, fields_of
from reeldb.query.check import FieldInfo, check_query
from reeldb.query.fulltext import contains_phrase, stems
from reeldb.schema.builtins import X_INDEXED
from reeldb.schema.model import SchemaKind, SchemaVersion
from reeldb.schema.validator import SchemaValidator
from reeldb.store.base import AnnotationQuery, AnnotationRecord, AnnotationWrite, SearchRows

if TYPE_CHECKING:
    from reeldb.database import Database

__all__ = ["MAX_BATCH", "MAX_TIMELINE", "Annotations", "PreparedAnnotations"]

MAX_TIMELINE: Final = 10_000
"""Annotations one timeline page may hold."""
_MAX_PAGE: Final = 1000
_SORTS: Final = ("time", "-time", "created", "-created", "relevance")
_COMPARABLE: Final = frozenset(
    {"string", "text", "keyword", "int", "float", "bool", "enum", "timestamp"}
)
_CURSOR: Final = "ann1:"
_CURSOR_KEYS: Final = {"time": 2, "-time": 2, "created": 1, "-created": 1, "relevance": 1}
"""How many values a cursor of each sort order holds (start time and row, row, or offset)."""
_WORD: Final = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class _Layout:
    """What search reads of an annotation type version."""

    schema: SchemaVersion
    validator: SchemaValidator
    time: str | None
    box: str | None
    texts: tuple[str, ...]
    kinds: dict[str, str]


def _pick(resolved: Mapping[str, Any], kind: str, preferred: str) -> str | None:
    """The property search uses as the annotation's time (or box).

    ``temporal``/``spatial`` of `TEMPORAL_SPATIAL_BASE` when the type has them, else its
    first property of that type (``boxTimeRange`` of Marken's ``BOUNDING_BOX``).
    """
    if resolved.get(preferred, {}).get("type") == kind:
        return preferred
    return next((name for name, spec in resolved.items() if spec["type"] == kind), None)


@dataclass(frozen=True, slots=True)
class PreparedAnnotations:
    """A validated annotation write, not yet stored (`Annotations.commit` stores it).

    Attributes:
        writes: The new versions.
        annotations: What each will be once stored.
        audit: The audit entry to store with them.
    """

    writes: tuple[AnnotationWrite, ...]
    annotations: tuple[Annotation, ...]
    audit: AuditEntry | None


class Annotations:
    """Create, read, version, delete and search annotations (MRK-1 to MRK-17).

    Annotation types are ``properties`` schemas of the registry (`Database.add_schema`);
    built-in ``TEMPORAL_SPATIAL_BASE`` gives optional ``temporal`` and ``spatial``.

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._layouts: dict[tuple[str, str, int], _Layout] = {}

    # Import and export (W3C Web Annotation, COCO, CVAT), written in `_exchange`.
    export_w3c = _exchange.export_w3c
    to_w3c = _exchange.to_w3c
    import_w3c = _exchange.import_w3c
    import_coco = _exchange.import_coco
    import_cvat = _exchange.import_cvat

    # -- types ----------------------------------------------------------------------------

    def _schema(self, namespace: str, value: Any, at: str = "/type") -> SchemaVersion:
        try:
            name, version = parse_type(value)
        except ValidationError as exc:
            raise ValidationError(exc.summary, [Violation(at, exc.summary)]) from None
        try:
            schema = self._db.schemas.get(namespace, name, version)
        except NotFoundError as exc:
            raise ValidationError(
                f"unknown annotation type: {exc}", [Violation(at, str(exc))]
            ) from None
        if schema.kind is not SchemaKind.PROPERTIES:
            message = f"{schema.ref} is a {schema.kind.value} schema, not an annotation type"
            raise ValidationError(message, [Violation(at, message)])
        return schema

    def _layout(self, schema: SchemaVersion) -> _Layout:
        key = (schema.namespace, schema.name, schema.version)
        found = self._layouts.get(key)
        if found is not None:
            return found
        resolved = schema.resolved
        texts = tuple(
            name
            for name, spec in resolved.items()
            if spec["type"] == "text" and spec.get("schema", {}).get(X_INDEXED, True)
        )
        kinds = {
            name: spec["type"]
            for name, spec in resolved.items()
            if spec["type"] in _COMPARABLE or spec["type"] in ("time_range", "bounding_box")
        }
        layout = _Layout(
            schema,
            self._db.schemas.validator(schema),
            _pick(resolved, "time_range", "temporal"),
            _pick(resolved, "bounding_box", "spatial"),
            texts,
            kinds,
        )
        with self._lock:
            self._layouts[key] = layout
        return layout

    # -- namespace settings ---------------------------------------------------------------

    def association_types(self, namespace: str) -> tuple[str, ...] | None:
        """The association types annotations of a namespace may use (None: any).

        Args:
            namespace: The namespace.

        Returns:
            The allowed types, sorted, or None.
        """
        self._db.get_namespace(namespace)
        return self._db.store.association_types(namespace)

    def restrict_association_types(self, namespace: str, types: Sequence[str] | None) -> None:
        """Allow only these association types in a namespace (None: any type).

        Annotations already stored are not checked again.

        Args:
            namespace: The namespace.
            types: The allowed association types (``MOVIE_ID``, ``SHOT_ID``...), or None.

        Raises:
            ValidationError: A type is malformed.
            NotFoundError: No such namespace.
        """
        if types is not None:
            bad = [
                Violation(
                    f"/types/{i}",
                    f"{t!r} is not an association type (a letter, then "
                    "letters, digits, _ . -; 64 at most)",
                )
                for i, t in enumerate(types)
                if not isinstance(t, str) or not ASSOCIATION_TYPE.match(t)
            ]
            if bad:
                raise ValidationError("an association type is malformed", bad)
        self._db.store.set_association_types(namespace, types)

    # -- writes ---------------------------------------------------------------------------

    def create(
        self,
        namespace: str,
        type: str | TypeRef | Mapping[str, Any],
        associations: Iterable[Association | Mapping[str, str]],
        data: Mapping[str, Any],
        *,
        id: UUID | str | None = None,
        audit: AuditEntry | None = None,
    ) -> Annotation:
        """Validate and store a new annotation (version 1).

        Args:
            namespace: The namespace that will own it.
            type: Its type: ``"NAME"`` (latest version), ``"NAME@2"`` or ``{name, version}``.
            associations: The entities it annotates (at least one ``{type, id}``).
            data: Its properties, validated against the type.
            id: Keep this id (imports); by default a new UUIDv7.
            audit: An audit entry recorded with it (the service records who wrote).

        Returns:
            The stored annotation.

        Raises:
            ValidationError: The type is unknown or not an annotation type, an association is
                malformed or of a type the namespace does not allow, or ``data`` breaks the
                type; every violation is listed and nothing is stored.
            AlreadyExistsError: ``id`` is taken.
        """
        ident = None if id is None else _uuid(id)
        item = NewAnnotation(type, parse_associations(list(associations)), dict(data), ident)
        return self.create_many(namespace, [item], audit=audit)[0]

    def create_many(
        self,
        namespace: str,
        items: Iterable[NewAnnotation | Mapping[str, Any]],
        *,
        audit: AuditEntry | None = None,
    ) -> list[Annotation]:
        """Validate and store many annotations in one transaction: all or none.

        Args:
            namespace: The namespace that will own them.
            items: `NewAnnotation` objects or JSON objects ``{type, associations, data[, id]}``.
            audit: An audit entry recorded with them.

        Returns:
            The stored annotations, in order.

        Raises:
            ValidationError: Any item is invalid: violations are prefixed with the item's
                index (``/3/data/boundingBox``) and nothing is stored.
            AlreadyExistsError: A given id is taken.
        """
        return self._commit_one(self.prepare_create(namespace, items, audit=audit))

    def prepare_create(
        self,
        namespace: str,
        items: Iterable[NewAnnotation | Mapping[str, Any]],
        *,
        audit: AuditEntry | None = None,
    ) -> PreparedAnnotations:
        """Validate a `create_many` without storing it (its first half; see `commit`).

        Returns:
            The validated write.

        Raises:
            ValidationError: As `create_many`.
        """
        self._db.get_namespace(namespace)
        allowed = self._db.store.association_types(namespace)
        now = datetime.now(UTC)
        by = None if audit is None else audit.principal
        writes: list[AnnotationWrite] = []
        out: list[Annotation] = []
        problems: list[Violation] = []
        schemas: dict[Any, SchemaVersion] = {}  # each type is resolved once per batch
        count = 0
        for index, raw in enumerate(items):
            count += 1
            if count > MAX_BATCH:
                raise ValidationError(f"a batch holds at most {MAX_BATCH} annotations")
            at = f"/{index}"
            try:
                item = (
                    raw if isinstance(raw, NewAnnotation) else NewAnnotation.from_json(raw, at=at)
                )
                key = _type_key(item.type)
                schema = schemas.get(key) if key is not None else None
                if schema is None:
                    schema = self._schema(namespace, item.type, f"{at}/type")
                    if key is not None:
                        schemas[key] = schema
                associations = parse_associations(list(item.associations), at=f"{at}/associations")
                ident = item.id or uuid7()
                write, annotation = self._write(
                    namespace, schema, ident, 0, associations, item.data, now, by, allowed, at
                )
            except ValidationError as exc:
                problems += exc.violations or [Violation(at, exc.summary)]
                continue
            writes.append(write)
            out.append(annotation)
        if problems:
            bad = len({v.pointer.split("/")[1] for v in problems if v.pointer.count("/")})
            head = (
                "the annotation is invalid"
                if count == 1
                else f"{bad} of {count} annotations are invalid; none was stored"
            )
            if count == 1:
                problems = [Violation(v.pointer.removeprefix("/0"), v.message) for v in problems]
            raise ValidationError(head, problems)
        if len({w.id for w in writes}) < len(writes):
            raise ValidationError("an annotation id appears twice in one batch")
        return PreparedAnnotations(tuple(writes), tuple(out), audit)

    def _write(
        self,
        namespace: str,
        schema: SchemaVersion,
        ident: UUID,
        expected: int,
        associations: tuple[Association, ...],
        data: Mapping[str, Any],
        now: datetime,
        by: str | None,
        allowed: tuple[str, ...] | None,
        at: str = "",
        *,
        deleted: bool = False,
    ) -> tuple[AnnotationWrite, Annotation]:
        problems: list[Violation] = []
        if allowed is not None:
            for i, a in enumerate(associations):
                if a.type not in allowed:
                    problems.append(
                        Violation(
                            f"{at}/associations/{i}/type",
                            f"association type {a.type} is not allowed in namespace "
                            f"{namespace} (allowed: {', '.join(allowed) or 'none'})",
                        )
                    )
        layout = self._layout(schema)
        if not layout.validator.is_valid(data):
            problems += [
                Violation(f"{at}/data{v.pointer}", v.message)
                for v in layout.validator.violations(data)
            ]
        if problems:
            raise ValidationError(f"the annotation breaks {schema.ref}", problems)
        data = dict(data)
        body = _json.dumps({"associations": [a.to_json() for a in associations], "data": data})
        rows = _search_fields(layout, data, tuple((a.type, a.id) for a in associations))
        write = AnnotationWrite(
            id=ident,
            namespace=namespace,
            expected_version=expected,
            type_name=schema.name,
            type_version=schema.version,
            lineage=schema.lineage,
            deleted=deleted,
            created_at=now,
            created_by=by,
            body=body,
            associations=rows.associations,
            time=rows.time,
            box=rows.box,
            texts=rows.texts,
            facets=rows.facets,
        )
        annotation = Annotation(
            ident,
            expected + 1,
            namespace,
            TypeRef(schema.name, schema.version),
            associations,
            data,
            deleted,
            now,
            by,
        )
        return write, annotation

    def update(
        self,
        namespace: str,
        annotation_id: UUID | str,
        *,
        expected_version: int,
        data: Mapping[str, Any] | None = None,
        associations: Iterable[Association | Mapping[str, str]] | None = None,
        type: str | TypeRef | Mapping[str, Any] | None = None,
        audit: AuditEntry | None = None,
    ) -> Annotation:
        """Store a new version of an annotation; the old one stays readable.

        What is not given is kept from the current version (``data`` is replaced whole).

        Args:
            namespace: The namespace that owns it.
            annotation_id: The annotation id.
            expected_version: The version the caller read: the update fails if another
                write came first.
            data: New properties.
            associations: New associations.
            type: Another type (or version) to validate against; by default the current one.
            audit: An audit entry recorded with it.

        Returns:
            The new version.

        Raises:
            NotFoundError: No such annotation in the namespace.
            VersionConflictError: The annotation is not at ``expected_version`` (or is
                deleted); read it again.
            ValidationError: The new version is invalid; nothing is stored.
        """
        [found] = self._commit_one(
            self.prepare_update(
                namespace,
                annotation_id,
                expected_version=expected_version,
                data=data,
                associations=associations,
                type=type,
                audit=audit,
            )
        )
        return found

    def prepare_update(
        self,
        namespace: str,
        annotation_id: UUID | str,
        *,
        expected_version: int,
        data: Mapping[str, Any] | None = None,
        associations: Iterable[Association | Mapping[str, str]] | None = None,
        type: str | TypeRef | Mapping[str, Any] | None = None,
        audit: AuditEntry | None = None,
    ) -> PreparedAnnotations:
        """Validate an `update` without storing it (its first half; see `commit`).

        Returns:
            The validated write; `commit` checks the version again.

        Raises:
            NotFoundError, VersionConflictError, ValidationError: As `update`.
        """
        if isinstance(expected_version, bool) or not isinstance(expected_version, int):
            raise ValidationError("expected_version is the version number the caller read")
        current = self._current(namespace, annotation_id, expected_version)
        schema = self._schema(namespace, current.type if type is None else type)
        links = (
            current.associations if associations is None else parse_associations(list(associations))
        )
        write, annotation = self._write(
            namespace,
            schema,
            current.id,
            expected_version,
            links,
            current.data if data is None else data,
            datetime.now(UTC),
            None if audit is None else audit.principal,
            self._db.store.association_types(namespace),
        )
        return PreparedAnnotations((write,), (annotation,), audit)

    def prepare_revisions(
        self,
        namespace: str,
        revisions: Sequence[tuple[Annotation, Mapping[str, Any], TypeRef | None]],
        *,
        by: str | None = None,
    ) -> list[AnnotationWrite | ReelError]:
        """Validate new versions of annotations the caller has already read, in bulk.

        `prepare_update` for batch jobs (`reeldb.reprocess`): each revision is
        ``(current, data, type)``, where ``current`` is the version the caller read (with
        its body, e.g. from `AnnotationStore.annotation_history`), ``data`` the new data
        and ``type`` another type version (None: keep the current one). Nothing is read
        again per annotation; the namespace's association types and each type's schema are
        read once per call. Each write expects ``current.version``, so storing it
        (`AnnotationStore.put_annotation_batches`) fails with `VersionConflictError` if
        another write came first; associations are kept.

        Args:
            namespace: The namespace that owns the annotations.
            revisions: The annotations as read, and what each becomes.
            by: The principal the new versions are stored by.

        Returns:
            Per revision, in order: the write, or why it cannot be made
            (`VersionConflictError` for a deleted one, `ValidationError`).
        """
        allowed = self._db.store.association_types(namespace)
        schemas: dict[Any, SchemaVersion | ReelError] = {}
        now = datetime.now(UTC)
        out: list[AnnotationWrite | ReelError] = []
        for current, data, type_ref in revisions:
            wanted = current.type if type_ref is None else type_ref
            key = (wanted.name, wanted.version)
            if key not in schemas:
                try:
                    schemas[key] = self._schema(namespace, wanted)
                except ReelError as exc:
                    schemas[key] = exc
            schema = schemas[key]
            if isinstance(schema, ReelError):
                out.append(schema)
                continue
            if current.deleted:
                out.append(
                    VersionConflictError(
                        f"annotation {current.id} is deleted (version {current.version})",
                        current.version,
                    )
                )
                continue
            try:
                write, _ = self._write(
                    namespace,
                    schema,
                    current.id,
                    current.version,
                    current.associations,
                    data,
                    now,
                    by,
                    allowed,
                )
            except ReelError as exc:
                out.append(exc)
                continue
            out.append(write)
        return out

    def delete(
        self,
        namespace: str,
        annotation_id: UUID | str,
        *,
        expected_version: int | None = None,
        audit: AuditEntry | None = None,
    ) -> Annotation:
        """Delete an annotation: store a tombstone version; history stays readable.

        Args:
            namespace: The namespace that owns it.
            annotation_id: The annotation id.
            expected_version: Fail unless the annotation is at this version (None: whatever
                version is current).
            audit: An audit entry recorded with it.

        Returns:
            The tombstone (``deleted`` is True; it keeps the deleted version's content).

        Raises:
            NotFoundError: No such annotation in the namespace.
            VersionConflictError: It is already deleted, or not at ``expected_version``.
        """
        [found] = self._commit_one(
            self.prepare_delete(
                namespace, annotation_id, expected_version=expected_version, audit=audit
            )
        )
        return found

    def prepare_delete(
        self,
        namespace: str,
        annotation_id: UUID | str,
        *,
        expected_version: int | None = None,
        audit: AuditEntry | None = None,
    ) -> PreparedAnnotations:
        """Prepare a `delete` without storing it (its first half; see `commit`).

        Returns:
            The tombstone write; `commit` checks the version again.

        Raises:
            NotFoundError, VersionConflictError: As `delete`.
        """
        current = self._current(namespace, annotation_id, expected_version)
        schema = self._db.schemas.get(namespace, current.type.name, current.type.version)
        write, annotation = self._write(
            namespace,
            schema,
            current.id,
            current.version,
            current.associations,
            current.data,
            datetime.now(UTC),
            None if audit is None else audit.principal,
            None,
            deleted=True,
        )
        return PreparedAnnotations((write,), (annotation,), audit)

    def replay(self, namespace: str, records: Sequence[AnnotationRecord]) -> list[AnnotationWrite]:
        """The writes that store versions copied from another installation, as they were.

        For ``reeldb migrate-backend``: same id, version, type, time and author.

        Each is validated against its type version here (a copy cannot smuggle in an invalid
        version) and expects the version before it, so a version already copied fails with
        `VersionConflictError` instead of being stored twice.

        Args:
            namespace: The namespace (here).
            records: Versions from `AnnotationStore.annotation_history`, with bodies.

        Returns:
            One write per version, in order.

        Raises:
            NotFoundError: A type version is not registered here.
            ValidationError: A version does not validate against its type.
        """
        writes = []
        for record in records:
            payload = _json.loads(record.body)
            write, _ = self._write(
                namespace,
                self._db.schemas.get(namespace, record.type_name, record.type_version),
                record.id,
                record.version - 1,
                parse_associations(list(payload["associations"])),
                payload["data"],
                record.created_at,
                record.created_by,
                None,
                deleted=record.deleted,
            )
            writes.append(write)
        return writes

    def reindex(self, namespace: str, records: Sequence[AnnotationRecord]) -> int:
        """Derive again what search reads of annotations, from their current versions.

        For a reindex job: after a change of how annotations are indexed (stemming, the
        comparable properties of a type), rewrite the search rows of live annotations in
        one transaction, keeping their versions. An annotation that moved on meanwhile
        fails the whole call with `VersionConflictError` (read again and retry).

        Args:
            namespace: The namespace.
            records: Current, live versions with bodies (`AnnotationStore.get_annotation`).

        Returns:
            How many were reindexed.

        Raises:
            VersionConflictError: An annotation is no longer at the version read.
        """
        derive = self.search_rows(namespace)
        lineages: dict[tuple[str, int], tuple[str, ...]] = {}
        writes = []
        for record in records:
            if record.deleted:
                continue
            kind = (record.type_name, record.type_version)
            if kind not in lineages:
                lineages[kind] = self._db.schemas.get(namespace, *kind).lineage
            rows = derive(record.type_name, record.type_version, record.body)
            writes.append(rows.refresh(record, lineages[kind]))
        self._db.store.reindex_annotations(writes)
        return len(writes)

    def search_rows(self, namespace: str) -> Callable[[str, int, bytes], SearchRows]:
        """What search reads of stored versions of a namespace's annotations.

        Derived as a write derives it, without validating again: a version was valid
        against its type version (immutable) when it was stored. The function keeps the
        type versions it meets (a job's few), so make one per job or batch.

        Args:
            namespace: The namespace.

        Returns:
            ``(type name, type version, body) -> SearchRows``.
        """
        layouts: dict[tuple[str, int], _Layout] = {}
        schemas = self._db.schemas

        def derive(type_name: str, type_version: int, body: bytes) -> SearchRows:
            layout = layouts.get((type_name, type_version))
            if layout is None:
                layout = self._layout(schemas.get(namespace, type_name, type_version))
                layouts[type_name, type_version] = layout
            payload = _json.loads(body)
            links = tuple([(a["type"], a["id"]) for a in payload["associations"]])
            return _search_fields(layout, payload["data"], links)

        return derive

    def matcher(
        self,
        namespace: str,
        type: str | TypeRef | Mapping[str, Any],
        where: str | Mapping[str, Any],
    ) -> Callable[[AnnotationRecord], bool]:
        """A test of stored versions against a ``where`` condition, as `search` applies it.

        For a job that reads annotations in batches (`reeldb.reprocess`): the condition is
        checked against the type now (a clear error), then each version's data is tested in
        Python, with the rules of the stores' SQL (`reeldb.annotations._filter`).

        Args:
            namespace: The namespace.
            type: ``NAME`` or ``NAME@2``: whose properties the condition names.
            where: A condition in the query language on ``data.*`` fields.

        Returns:
            ``matches(record)``: whether a version (with its body) meets the condition.

        Raises:
            QueryError: The condition is malformed or names no property of the type.
        """
        query = self._query(namespace, type=type, where=where)
        expr, kinds = query.where, query.kinds or {}
        assert expr is not None

        def matches(record: AnnotationRecord) -> bool:
            schema = self._db.schemas.get(namespace, record.type_name, record.type_version)
            facets, texts = _derived(self._layout(schema), _json.loads(record.body)["data"])
            return holds(expr, kinds, facets, dict(texts))

        return matches

    def commit(self, prepared: Sequence[PreparedAnnotations]) -> list[list[Annotation] | ReelError]:
        """Store prepared writes in one transaction, each all or none (group commit).

        The service prepares concurrent requests as they arrive and commits them together:
        one ``fsync`` for all. A write whose annotation moved on since it was prepared
        fails alone (`VersionConflictError`).

        Args:
            prepared: From `prepare_create`, `prepare_update` or `prepare_delete`.

        Returns:
            Per write: the stored annotations, or why they were not stored.
        """
        batches = [(p.writes, (p.audit,) if p.audit else ()) for p in prepared if p.writes]
        errors = iter(self._db.store.put_annotation_batches(batches) if batches else [])
        out: list[list[Annotation] | ReelError] = []
        for p in prepared:
            error = next(errors) if p.writes else None
            out.append(list(p.annotations) if error is None else error)
        return out

    def _commit_one(self, prepared: PreparedAnnotations) -> list[Annotation]:
        [result] = self.commit([prepared])
        if isinstance(result, ReelError):
            raise result
        return result

    def _current(
        self, namespace: str, annotation_id: UUID | str, expected: int | None
    ) -> Annotation:
        record = self._db.store.get_annotation(namespace, _uuid(annotation_id))
        current = _annotation(record)
        if current.deleted:
            raise VersionConflictError(
                f"annotation {current.id} is deleted (version {current.version})", current.version
            )
        if expected is not None and expected != current.version:
            raise VersionConflictError(
                f"annotation {current.id} is at version {current.version}, not {expected}: "
                "read it again and retry",
                current.version,
            )
        return current

    # -- reads ----------------------------------------------------------------------------

    def get(
        self, namespace: str, annotation_id: UUID | str, version: int | None = None
    ) -> Annotation:
        """Read an annotation: its current version, or a given one.

        Args:
            namespace: The namespace that owns it.
            annotation_id: The annotation id.
            version: A version number; None for the current one.

        Returns:
            The version.

        Raises:
            NotFoundError: No such annotation in the namespace, or no such version.
            DeletedError: The annotation is deleted (and no version was asked for); its
                versions stay readable by number.
        """
        if version is not None and (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not 1 <= version <= MAX_VERSION
        ):
            raise ValidationError("an annotation version is a whole number from 1")
        found = _annotation(self._db.store.get_annotation(namespace, _uuid(annotation_id), version))
        if version is None and found.deleted:
            raise DeletedError(
                f"annotation {found.id} was deleted (version {found.version}); earlier versions "
                "stay readable"
            )
        return found

    def versions(self, namespace: str, annotation_id: UUID | str) -> list[Annotation]:
        """Every version of an annotation, oldest first (a tombstone last if deleted).

        Args:
            namespace: The namespace that owns it.
            annotation_id: The annotation id.

        Returns:
            The versions.

        Raises:
            NotFoundError: No such annotation in the namespace.
        """
        return [
            _annotation(r)
            for r in self._db.store.annotation_versions(namespace, _uuid(annotation_id))
        ]

    def count(self, namespace: str) -> int:
        """The live (not deleted) annotations of a namespace.

        Args:
            namespace: The namespace.

        Returns:
            The count.
        """
        self._db.get_namespace(namespace)
        return self._db.store.count_annotations(namespace)

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        namespace: str,
        *,
        type: str | TypeRef | Mapping[str, Any] | None = None,
        subtypes: bool = True,
        associations: Iterable[Association | Mapping[str, str]] = (),
        time: tuple[float, float] | Sequence[float] | None = None,
        time_op: str = "overlaps",
        box: Sequence[float] | Mapping[str, float] | None = None,
        box_op: str = "intersects",
        text: str | None = None,
        text_fields: Sequence[str] | None = None,
        where: str | Mapping[str, Any] | Expr | None = None,
        sort: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AnnotationHit]:
        """Find current, live annotations; every condition given must hold.

        Args:
            namespace: The namespace.
            type: ``"NAME"`` (any version), ``"NAME@2"`` or ``{name, version}``: annotations
                of that type and, with ``subtypes``, of every type that extends it (MRK-8).
            subtypes: Include types that inherit from ``type`` (default).
            associations: Entities the annotation must all be attached to.
            time: ``(start, end)`` seconds; tested against the type's time (``temporal``, or
                its first ``time_range`` property).
            time_op: ``overlaps`` (closed ranges: touching counts) or ``within``.
            box: ``(x, y, w, h)`` or ``{x, y, w, h}``; tested against the type's box
                (``spatial``, or its first ``bounding_box`` property).
            box_op: ``intersects`` (closed: touching counts) or ``within``.
            text: Words (stemmed: ``glove`` finds "gloves"); several must appear in order
                within one text field.
            text_fields: Search only these text fields (default: all); with ``type`` and
                ``subtypes=False``, each must be one of its ``text`` properties.
            where: A condition in the query language on ``data.*`` fields of ``type``
                (needs ``type``), e.g. ``data.label = "car" and data.score > 0.8``.
            sort: ``time`` (start time; untimed annotations last), ``-time`` (its exact
                reverse), ``created``, ``-created`` or ``relevance`` (needs ``text``; the
                default when ``text`` is given).
            limit: Page size, 1 to 1000.
            cursor: ``next_cursor`` of the previous page.

        Returns:
            A page of hits, with highlights when ``text`` is given.

        Raises:
            QueryError: A condition is malformed or does not fit the type.
            ValidationError: ``limit``, ``cursor`` or an association is invalid.
        """
        _check_limit(limit, _MAX_PAGE)
        self._db.get_namespace(namespace)
        query = self._query(
            namespace,
            type=type,
            subtypes=subtypes,
            associations=associations,
            time=time,
            time_op=time_op,
            box=box,
            box_op=box_op,
            text=text,
            text_fields=text_fields,
            where=where,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
        records, after = self._db.store.search_annotations(query)
        wanted = set(stems(text)) if text else set()
        hits = []
        for record in records:
            annotation = _annotation(record)
            highlights: dict[str, str] = {}
            if wanted:
                layout = self._layout(
                    self._db.schemas.get(namespace, record.type_name, record.type_version)
                )
                for name in layout.texts:
                    value = annotation.data.get(name)
                    if (
                        isinstance(value, str)
                        and (text_fields is None or name in text_fields)
                        and contains_phrase(value, str(text))
                    ):
                        marked = _highlight(value, wanted)
                        if marked != value:
                            highlights[name] = marked
            score = None
            if query.sort == "relevance" and record.score is not None:
                score = -record.score
            hits.append(AnnotationHit(annotation, score, highlights))
        next_cursor = None if after is None else _encode_cursor(query.sort, after)
        return Page(tuple(hits), next_cursor)

    def timeline(
        self,
        namespace: str,
        association: Association | Mapping[str, str],
        start: float | None = None,
        end: float | None = None,
        *,
        type: str | TypeRef | Mapping[str, Any] | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[Annotation]:
        """The annotations of an entity (a video) that overlap a time window, by start time.

        Args:
            namespace: The namespace.
            association: The entity (``{"type": "MOVIE_ID", "id": "81234567"}``).
            start: Window start in seconds (default 0).
            end: Window end in seconds (default: no end).
            type: Only this type (and its subtypes).
            limit: Page size, 1 to 10,000.
            cursor: ``next_cursor`` of the previous page.

        Returns:
            Timed annotations overlapping ``[start, end]``, ordered by start time.

        Raises:
            ValidationError: Malformed association, window or limit (a negative start, an
                end before the start).
        """
        _check_limit(limit, MAX_TIMELINE)
        [link] = parse_associations([association], at="/association")
        try:
            low = 0.0 if start is None else _seconds(start, "start")
            high = 1e299 if end is None else _seconds(end, "end")
        except QueryError as exc:
            raise ValidationError(str(exc)) from None
        if high < low:
            raise ValidationError("the window's end is before its start")
        self._db.get_namespace(namespace)
        query = self._query(
            namespace,
            type=type,
            subtypes=True,
            associations=[link],
            time=(low, high),
            time_op="overlaps",
            sort="time",
            limit=limit,
            cursor=cursor,
        )
        records, after = self._db.store.search_annotations(query)
        return Page(
            tuple(_annotation(r) for r in records),
            None if after is None else _encode_cursor("time", after),
        )

    def _query(
        self,
        namespace: str,
        *,
        type: Any = None,
        subtypes: bool = True,
        associations: Iterable[Association | Mapping[str, str]] = (),
        time: Any = None,
        time_op: str = "overlaps",
        box: Any = None,
        box_op: str = "intersects",
        text: str | None = None,
        text_fields: Sequence[str] | None = None,
        where: Any = None,
        sort: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AnnotationQuery:
        types: tuple[str, ...] | None = None
        kinds: dict[str, str] | None = None
        schemas: list[SchemaVersion] = []
        if type is not None:
            try:
                name, version = parse_type(type)
            except ValidationError as exc:
                raise QueryError(exc.summary) from None
            try:
                schemas = (
                    self._db.schemas.versions(namespace, name)
                    if version is None
                    else [self._db.schemas.get(namespace, name, version)]
                )
            except NotFoundError as exc:
                raise QueryError(f"unknown annotation type: {exc}") from None
            if subtypes:  # a lineage entry (or, any version, its prefix)
                owner = schemas[0].namespace
                types = (f"{owner}/{name} v" + ("" if version is None else str(version)),)
            else:
                types = tuple(f"{s.namespace}/{s.name} v{s.version}" for s in schemas)
        links = (
            tuple(
                (a.type, a.id) for a in parse_associations(list(associations), at="/associations")
            )
            if associations
            else ()
        )
        if time_op not in ("overlaps", "within"):
            raise QueryError(f"time_op is overlaps or within, not {time_op!r}")
        if box_op not in ("intersects", "within"):
            raise QueryError(f"box_op is intersects or within, not {box_op!r}")
        window = None
        if time is not None:
            if not isinstance(time, Sequence) or isinstance(time, str) or len(time) != 2:
                raise QueryError("time is (start, end) in seconds")
            window = (_seconds(time[0], "time start"), _seconds(time[1], "time end"))
            if window[1] < window[0]:
                raise QueryError("time (start, end) needs start <= end")
        area = None
        if box is not None:
            x, y, w, h = _box(box)
            area = (x, y, x + w, y + h)
        tokens: tuple[str, ...] = ()
        if text is not None:
            tokens = tuple(fts_tokens(str(text)))
            if not tokens:
                raise QueryError(f"text {text!r} has no word to search for")
        if text_fields is not None:
            if isinstance(text_fields, str) or not all(isinstance(f, str) for f in text_fields):
                raise QueryError("text_fields is a list of property names")
            texts = {n for s in schemas for n, p in s.resolved.items() if p["type"] == "text"}
            # With subtypes, a field may be a subtype's own: only an exact type is checked.
            unknown = sorted(set(text_fields) - texts) if schemas and not subtypes else []
            if unknown:
                raise QueryError(
                    f"{', '.join(unknown)}: not a text property of {schemas[-1].name} "
                    f"(text properties: {', '.join(sorted(texts)) or 'none'})"
                )
        if sort is None:
            sort = "relevance" if tokens else "time"
        if sort not in _SORTS:
            raise QueryError(f"sort is one of {', '.join(_SORTS)}, not {sort!r}")
        if sort == "relevance" and not tokens:
            raise QueryError("sort by relevance needs text to search for")
        expr = None
        if where is not None:
            if not schemas:
                raise QueryError(
                    "a where condition needs a type: its fields are the type's properties"
                )
            expr = (
                where
                if not isinstance(where, str | Mapping)
                else parse_query(where if isinstance(where, str) else dict(where))
            )
            fields = _fields(schemas)
            if any(isinstance(e, Count) for e in _walk(expr)):
                raise QueryError("count(...) applies to documents, not to annotations")
            check_query(expr, fields, what=f"annotation type {schemas[-1].name}")
            kinds = {f.name: fields["data", f.name].type for f in fields_of(expr)}
        return AnnotationQuery(
            namespace=namespace,
            types=types,
            subtypes=subtypes,
            associations=links,
            time=window,
            time_op=time_op,
            box=area,
            box_op=box_op,
            text=tokens,
            text_fields=None if text_fields is None else tuple(text_fields),
            where=expr,
            kinds=kinds,
            sort=sort,
            after=None if cursor is None else _decode_cursor(cursor, sort),
            limit=limit,
        )


def _derived(
    layout: _Layout, data: Mapping[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """What search reads of an annotation's data: facets, and indexed text fields' tokens."""
    facets: dict[str, Any] = {}
    for name, kind in layout.kinds.items():
        value = data.get(name)
        if value is None:
            continue
        if kind == "time_range":
            start, end = value.get("start"), value.get("end")
            if type(start) in (int, float) and type(end) in (int, float):
                facets[name] = [float(start), float(end)]  # seconds: the common case
            else:
                facets[name] = convert(kind, value)
        elif kind == "bounding_box":
            x, y = float(value["x"]), float(value["y"])
            facets[name] = [x, y, x + value["w"], y + value["h"]]
        else:
            found = scalar(kind, value)
            if found is not None:
                facets[name] = found
    texts = []
    for name in layout.texts:
        value = data.get(name)
        if isinstance(value, str):
            tokens = " ".join(fts_tokens(value))
            if tokens:
                texts.append((name, tokens))
    return facets, texts


def _search_fields(
    layout: _Layout, data: Mapping[str, Any], associations: tuple[tuple[str, str], ...]
) -> SearchRows:
    """What search reads of an annotation: its links, time, box, texts and facets."""
    facets, texts = _derived(layout, data)
    time = facets.get(layout.time) if layout.time is not None else None
    box = facets.get(layout.box) if layout.box is not None else None
    return SearchRows(
        associations,
        None if time is None else (time[0], time[1]),
        None if box is None else (box[0], box[1], box[2], box[3]),
        tuple(texts),
        _json.dumps(facets),
    )


def _type_key(value: Any) -> Any:
    """A hashable key of a type reference, to resolve it once per batch (None: don't)."""
    if isinstance(value, str | TypeRef):
        return value
    if isinstance(value, Mapping):
        name, version = value.get("name"), value.get("version")
        if isinstance(name, str) and (version is None or isinstance(version, int)):
            return (name, version)
    return None


def _walk(expr: Expr) -> Iterable[Expr]:
    yield expr
    for child in getattr(expr, "items", ()):
        yield from _walk(child)
    item = getattr(expr, "item", None)
    if item is not None:
        yield from _walk(item)


def _fields(schemas: Sequence[SchemaVersion]) -> dict[tuple[str, str], FieldInfo]:
    """``data.*`` fields of every version of a type (a property never changes type)."""
    out: dict[tuple[str, str], FieldInfo] = {}
    for schema in schemas:
        for name, spec in schema.resolved.items():
            out["data", name] = FieldInfo.of(spec)
    return out


def _highlight(text: str, wanted: set[str]) -> str:
    def mark(match: re.Match[str]) -> str:
        word = match.group(0)
        return f"<em>{word}</em>" if any(s in wanted for s in stems(word)) else word

    return _WORD.sub(mark, text)


def _annotation(record: AnnotationRecord) -> Annotation:
    body = _json.loads(record.body)
    return Annotation(
        record.id,
        record.version,
        record.namespace,
        TypeRef(record.type_name, record.type_version),
        tuple(_association(a["type"], a["id"]) for a in body["associations"]),
        body["data"],
        record.deleted,
        record.created_at,
        record.created_by,
    )


@functools.lru_cache(maxsize=65536)
def _association(kind: str, ident: str) -> Association:
    """A stored association (one object per entity: a video's annotations share it)."""
    return Association(kind, ident)


def _uuid(value: UUID | str) -> UUID:
    return parse_uuid(value, "annotation id", message=ANNOTATION_ID_ERROR)


def _check_limit(limit: object, most: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise ValidationError(f"limit must be an integer from 1 to {most}")


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryError(f"{what} is a number of seconds, not {value!r}")
    if not 0 <= value < 1e300:  # NaN fails too
        raise QueryError(f"{what} must be a non-negative number of seconds")
    return float(value)


def _box(value: Any) -> tuple[float, float, float, float]:
    if isinstance(value, Mapping):
        try:
            value = [value["x"], value["y"], value["w"], value["h"]]
        except KeyError:
            raise QueryError("box is {x, y, w, h}") from None
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 4
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
    ):
        raise QueryError("box is (x, y, w, h): four numbers")
    x, y, w, h = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise QueryError("box (x, y, w, h) needs finite numbers")
    if w < 0 or h < 0:
        raise QueryError("box (x, y, w, h) needs w >= 0 and h >= 0")
    return x, y, w, h


def _encode_cursor(sort: str, after: tuple[float | int, ...]) -> str:
    raw = _CURSOR + _json.dumps([sort, *after]).decode()
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _row_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _decode_cursor(cursor: str, sort: str) -> tuple[float | int, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith(_CURSOR):
            found = _json.loads(raw[len(_CURSOR) :])
            keys = _CURSOR_KEYS[sort]
            if (
                isinstance(found, list)
                and len(found) == 1 + keys
                and found[0] == sort
                and _row_number(found[-1])
                and (keys == 1 or _finite(found[1]))
                and (sort != "relevance" or found[1] >= 0)
            ):
                return tuple(found[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationError(
        f"invalid cursor {cursor!r}: pass the next_cursor of a previous page of the same search"
    )
