"""The schema registry: add, check and read schema versions (MDVS's schema half, NMDB-5).

Which rules a new version must pass depends on what uses the schema; the three seed rules
stay distinct (REQUIREMENTS NMDB-6, MRK-7, NMDB-13):

* **STORED_DATA** (NMDB-6), for a schema that DataStores use: every stored document of those
  DataStores must validate against the candidate. Checked in every mode.
* **TYPE** (MRK-7): no property may change type. Checked in every mode, except that a
  DataStore's schema in mode NONE answers only to STORED_DATA (NMDB-6 allows any change the
  stored data satisfies).
* A MID schema never changes: DataStores offer no way to change one (NMDB-13).

On top, the subject's `CompatibilityMode` runs the structural checks of `reeldb.schema.compat`.
A rejected version leaves the registry unchanged; the error lists every incompatibility.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from reeldb import _json
from reeldb.errors import (
    AlreadyExistsError,
    ConflictError,
    Incompatibility,
    IncompatibleSchemaError,
    InvalidSchemaError,
    NotFoundError,
    StaleSchemaError,
    ValidationError,
    Violation,
)
from reeldb.model.datastore import DataStore
from reeldb.model.names import check_namespace
from reeldb.schema.builtins import BUILTIN_NAMESPACE, BUILTIN_SCHEMAS
from reeldb.schema.compat import mode_incompatibilities, type_changes
from reeldb.schema.dsl import LEVELS, ParentInfo, ParentRef, compile_schema, parse_definition
from reeldb.schema.model import (
    CompatibilityMode,
    SchemaKind,
    SchemaRef,
    SchemaSubject,
    SchemaVersion,
)
from reeldb.schema.validator import SchemaValidator
from reeldb.store.base import DataStoreMove, DocumentRecord, Store

__all__ = ["CompatibilityReport", "SchemaRegistry"]

MAX_REPORTED_DOCUMENTS: Final = 20
_CACHE_SIZE: Final = 256
_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CompatibilityReport:
    """The outcome of checking a candidate schema version.

    Attributes:
        candidate: The version the candidate would become.
        mode: The compatibility mode applied.
        incompatibilities: Every problem found; empty when compatible.
        checked_documents: Stored documents validated against the candidate.
        datastores: DataStores that use the schema and would move to the candidate.
    """

    candidate: SchemaRef
    mode: CompatibilityMode
    incompatibilities: tuple[Incompatibility, ...]
    checked_documents: int
    datastores: tuple[str, ...] = ()

    @property
    def compatible(self) -> bool:
        """Whether the candidate may be stored."""
        return not self.incompatibilities


@dataclass
class _Candidate:
    schema: SchemaVersion
    mode: CompatibilityMode
    previous: list[SchemaVersion]
    datastores: list[DataStore]
    validators: list[SchemaValidator]
    watermarks: dict[int, int] = field(default_factory=dict)


def _envelope() -> SchemaVersion:
    parsed = parse_definition(
        {
            "name": "media_document",
            "description": "The 5-level media document structure every DataStore enforces.",
            "levels": {level: {"additionalProperties": True} for level in LEVELS},
        }
    )
    label = f"{BUILTIN_NAMESPACE}/media_document v0"
    compiled = compile_schema(parsed, label=label, parents={}, metadata={})
    return SchemaVersion(
        SchemaRef(BUILTIN_NAMESPACE, "media_document", 0),
        SchemaKind.DOCUMENT,
        parsed.description,
        parsed.definition,
        compiled.json_schema,
        compiled.resolved,
        compiled.lineage,
        _EPOCH,
    )


class SchemaRegistry:
    """Schema use cases over a `Store`.

    Args:
        store: The backend.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._validators: OrderedDict[tuple[SchemaRef, bool], SchemaValidator] = OrderedDict()
        self._versions: OrderedDict[SchemaRef, SchemaVersion] = OrderedDict()
        self._builtins: dict[str, SchemaVersion] = {}
        for name, definition in BUILTIN_SCHEMAS.items():
            self._builtins[name] = self._compile(
                BUILTIN_NAMESPACE, definition, name=None, version=0, now=_EPOCH
            )
        self.envelope = _envelope()
        self.open_body: Callable[[UUID], Iterator[bytes]] | None = None
        """Streams a blob (set by the database): documents kept in blobs are checked too."""

    # -- reading --------------------------------------------------------------------------

    def get(self, namespace: str, name: str, version: int | None = None) -> SchemaVersion:
        """Read a schema version; built-in schemas are visible from every namespace.

        Args:
            namespace: The namespace.
            name: The schema name.
            version: The version, or None for the latest.

        Returns:
            The schema version.

        Raises:
            NotFoundError: No such schema or version.
        """
        if namespace != BUILTIN_NAMESPACE:
            try:
                if version is None:  # a small query; the version itself is then cached
                    version = self._store.get_subject(namespace, name).latest_version
                with self._lock:
                    cached = self._versions.get(SchemaRef(namespace, name, version))
                if cached is not None:
                    return cached
                found = self._store.get_schema_version(namespace, name, version)
            except NotFoundError:
                if name not in self._builtins:
                    raise
            else:
                with self._lock:  # stored versions are immutable: safe to keep
                    self._versions[found.ref] = found
                    while len(self._versions) > _CACHE_SIZE:
                        self._versions.popitem(last=False)
                return found
        builtin = self._builtins.get(name)
        if builtin is None:
            raise NotFoundError(
                f"no built-in schema {name}; built-ins: {', '.join(self._builtins)}"
            )
        if version not in (None, builtin.version):
            raise NotFoundError(
                f"built-in schema {name} has no version {version} (latest is {builtin.version})"
            )
        return builtin

    def subjects(self, namespace: str) -> list[SchemaSubject]:
        """The namespace's schemas followed by the built-ins.

        Args:
            namespace: The namespace.

        Returns:
            The subjects.
        """
        own = [] if namespace == BUILTIN_NAMESPACE else self._store.list_subjects(namespace)
        builtins = [
            SchemaSubject(
                BUILTIN_NAMESPACE,
                s.name,
                s.kind,
                CompatibilityMode.NONE,
                s.version,
                (s.version,),
                builtin=True,
            )
            for s in self._builtins.values()
        ]
        return own + builtins

    def versions(self, namespace: str, name: str) -> list[SchemaVersion]:
        """Every version of a schema, oldest first.

        Args:
            namespace: The namespace.
            name: The schema name.

        Returns:
            The versions.

        Raises:
            NotFoundError: No such schema.
        """
        found = self._store.list_schema_versions(namespace, name)
        if not found and name in self._builtins:
            return [self._builtins[name]]
        if not found:
            raise NotFoundError(f"schema {name} does not exist in namespace {namespace}")
        return found

    def validator(self, schema: SchemaVersion) -> SchemaValidator:
        """The compiled validator of a schema version (cached; versions are immutable).

        Args:
            schema: The schema version.

        Returns:
            The validator.
        """
        key = (schema.ref, schema.kind is not SchemaKind.JSON_SCHEMA)
        with self._lock:
            found = self._validators.get(key)
            if found is not None:
                self._validators.move_to_end(key)
                return found
        validator = SchemaValidator(schema.json_schema, reeldb_keywords=key[1])
        if schema.ref.namespace != BUILTIN_NAMESPACE and not self._is_stored(schema):
            return validator  # a candidate: its ref is not yet immutable, so never cache it
        with self._lock:
            self._validators[key] = validator
            while len(self._validators) > _CACHE_SIZE:
                self._validators.popitem(last=False)
        return validator

    def _is_stored(self, schema: SchemaVersion) -> bool:
        try:
            stored = self._store.get_schema_version(schema.namespace, schema.name, schema.version)
        except NotFoundError:
            return False
        return stored.created_at == schema.created_at

    def document_validators(self, schema: SchemaVersion) -> list[SchemaValidator]:
        """The validators a DataStore document must pass.

        A DSL document schema already encodes the 5-level structure; a plain JSON Schema is
        checked together with the built-in media document envelope.

        Args:
            schema: The DataStore's schema version.

        Returns:
            One or two validators.
        """
        own = self.validator(schema)
        if schema.kind is SchemaKind.JSON_SCHEMA:
            return [self.validator(self.envelope), own]
        return [own]

    # -- writing --------------------------------------------------------------------------

    def check(
        self,
        namespace: str,
        definition: Any,
        *,
        name: str | None = None,
        compatibility: str | CompatibilityMode | None = None,
    ) -> CompatibilityReport:
        """Check a candidate version without storing it.

        Args:
            namespace: The namespace it would be added to.
            definition: The DSL definition or plain JSON Schema.
            name: The schema name, if the definition has none.
            compatibility: The mode for a new schema (default BACKWARD).

        Returns:
            The report; ``compatible`` tells whether `add` would store it.

        Raises:
            InvalidSchemaError: The definition is malformed.
            NotFoundError: The namespace or a parent does not exist.
        """
        candidate = self._prepare(namespace, definition, name, compatibility)
        found, checked = self._incompatibilities(candidate)
        return CompatibilityReport(
            candidate.schema.ref,
            candidate.mode,
            tuple(found),
            checked,
            tuple(str(ds.ref) for ds in candidate.datastores),
        )

    def add(
        self,
        namespace: str,
        definition: Any,
        *,
        name: str | None = None,
        compatibility: str | CompatibilityMode | None = None,
    ) -> SchemaVersion:
        """Check a candidate version and store it, moving the DataStores that use the schema.

        Args:
            namespace: The namespace.
            definition: The DSL definition or plain JSON Schema.
            name: The schema name, if the definition has none.
            compatibility: The mode for a new schema (default BACKWARD).

        Returns:
            The stored version.

        Raises:
            InvalidSchemaError: The definition is malformed.
            IncompatibleSchemaError: The candidate breaks a rule; nothing was stored.
            AlreadyExistsError: The requested version exists.
            ConflictError: Concurrent changes kept invalidating the check.
        """
        candidate = self._prepare(namespace, definition, name, compatibility)
        found, _ = self._incompatibilities(candidate)
        headline = f"schema {candidate.schema.ref} is incompatible ({candidate.mode.value})"
        by_id = {ds.id: ds for ds in candidate.datastores}

        def check_new(record: DocumentRecord) -> None:
            # Runs inside the store's write transaction for documents written during the
            # check above, so the version is stored only if they fit it too (NMDB-6).
            problem = self._document_problem(candidate, by_id[record.datastore_id], record)
            if problem is not None:
                raise IncompatibleSchemaError(headline, [problem])

        for _attempt in range(8):
            if found:
                raise IncompatibleSchemaError(headline, found)
            moves = [
                DataStoreMove(ds.id, ds.schema_version, candidate.watermarks[ds.id])
                for ds in candidate.datastores
            ]
            try:
                self._store.add_schema_version(
                    candidate.schema, candidate.mode, moves, check_new=check_new
                )
            except StaleSchemaError:
                # A DataStore was created on, or moved off, this schema meanwhile: recheck.
                candidate.datastores = self._store.datastores_using(
                    namespace, candidate.schema.name
                )
                by_id = {ds.id: ds for ds in candidate.datastores}
                candidate.validators = (
                    self.document_validators(candidate.schema) if candidate.datastores else []
                )
                found, _ = self._stored_data(candidate)
                continue
            self._remember(candidate.schema)
            return candidate.schema
        raise ConflictError(
            f"schema {candidate.schema.ref} was not stored: the DataStores using it kept "
            "changing during the check; retry"
        )

    def _prepare(
        self,
        namespace: str,
        definition: Any,
        name: str | None,
        compatibility: str | CompatibilityMode | None,
    ) -> _Candidate:
        check_namespace(namespace)
        if namespace == BUILTIN_NAMESPACE:
            raise ValidationError(f"namespace {BUILTIN_NAMESPACE} holds built-in schemas only")
        self._store.get_namespace(namespace)
        parsed = parse_definition(definition, name=name)
        assert parsed.name is not None
        if parsed.name in self._builtins:
            raise AlreadyExistsError(f"{parsed.name} is a built-in schema; choose another name")
        previous = self._store.list_schema_versions(namespace, parsed.name)
        requested = CompatibilityMode.parse(compatibility) if compatibility else None
        requested = requested or parsed.compatibility
        if previous:
            subject = self._store.get_subject(namespace, parsed.name)
            mode = subject.compatibility
            if requested is not None and requested is not mode:
                raise ValidationError(
                    f"schema {namespace}/{parsed.name} uses compatibility {mode.value}; change "
                    f"it with set_compatibility (reeldb schema set-compatibility) first"
                )
            if parsed.kind is not subject.kind:
                raise InvalidSchemaError(
                    f"schema {namespace}/{parsed.name} is a {subject.kind.value} schema; a new "
                    f"version cannot be a {parsed.kind.value} schema"
                )
        else:
            mode = requested or CompatibilityMode.BACKWARD
        latest = previous[-1].version if previous else None
        version = parsed.version
        if version is None:
            version = 1 if latest is None else latest + 1
        elif any(v.version == version for v in previous):
            raise AlreadyExistsError(
                f"schema {namespace}/{parsed.name} v{version} already exists (latest is "
                f"{latest}); omit 'version' to add v{(latest or 0) + 1}"
            )
        elif latest is not None and version < latest:
            raise ValidationError(
                f"schema {namespace}/{parsed.name} version {version} must be greater than the "
                f"latest, {latest}"
            )
        schema = self._compile(
            namespace, definition, name=name, version=version, now=datetime.now(UTC)
        )
        datastores = self._store.datastores_using(namespace, parsed.name)
        validators = self.document_validators(schema) if datastores else []
        return _Candidate(schema, mode, previous, datastores, validators)

    def _compile(
        self,
        namespace: str,
        definition: Any,
        *,
        name: str | None,
        version: int,
        now: datetime,
    ) -> SchemaVersion:
        parsed = parse_definition(definition, name=name)
        assert parsed.name is not None
        parents: dict[ParentRef, ParentInfo] = {}
        for ref in parsed.parents:
            if ref.name == parsed.name:
                raise InvalidSchemaError(f"schema {parsed.name} cannot extend itself")
            try:
                parent = self.get(namespace, ref.name, ref.version)
            except NotFoundError as exc:
                raise InvalidSchemaError(f"schema {parsed.name} extends {ref}: {exc}") from None
            parents[ref] = ParentInfo(
                label=str(parent.ref),
                kind=parent.kind,
                resolved=parent.resolved,
                lineage=parent.lineage,
            )
        own = SchemaRef(namespace, parsed.name, version)
        metadata = {"namespace": namespace, "name": parsed.name, "version": version}
        compiled = compile_schema(parsed, label=str(own), parents=parents, metadata=metadata)
        schema = SchemaVersion(
            own,
            parsed.kind,
            parsed.description,
            parsed.definition,
            compiled.json_schema,
            compiled.resolved,
            compiled.lineage,
            now,
        )
        self.validator(schema)  # compiles now: a schema that cannot validate is never stored
        return schema

    def _incompatibilities(self, candidate: _Candidate) -> tuple[list[Incompatibility], int]:
        found: list[Incompatibility] = []
        if candidate.previous:
            bound = bool(candidate.datastores)
            label = f"v{candidate.schema.version}"
            new = candidate.schema.json_schema
            older = candidate.previous if candidate.mode.transitive else candidate.previous[-1:]
            typed: dict[str, Incompatibility] = {}
            if not (bound and candidate.mode is CompatibilityMode.NONE):
                for old in older:
                    for item in type_changes(old.json_schema, new):
                        typed.setdefault(item.path, item)
            found += typed.values()
            found += mode_incompatibilities(
                candidate.mode,
                new,
                label,
                [(f"v{old.version}", old.json_schema) for old in candidate.previous],
                skip_paths=frozenset(typed),
            )
        data_problems, checked = self._stored_data(candidate)
        return found + data_problems, checked

    def _stored_data(self, candidate: _Candidate) -> tuple[list[Incompatibility], int]:
        """Validate stored documents newer than each DataStore's watermark (NMDB-6)."""
        problems: list[Incompatibility] = []
        failing = checked = 0
        for ds in candidate.datastores:
            upto = self._store.max_seq(ds.id)
            after = candidate.watermarks.get(ds.id, 0)
            for record in self._store.iter_documents(ds.id, after_seq=after, upto_seq=upto):
                checked += 1
                problem = self._document_problem(candidate, ds, record)
                if problem is not None:
                    failing += 1
                    if failing <= MAX_REPORTED_DOCUMENTS:
                        problems.append(problem)
            candidate.watermarks[ds.id] = upto
        if failing > MAX_REPORTED_DOCUMENTS:
            problems.append(
                Incompatibility(
                    "documents",
                    f"{failing - MAX_REPORTED_DOCUMENTS} more stored documents would become "
                    "invalid",
                    "STORED_DATA",
                )
            )
        return problems, checked

    def _document_problem(
        self, candidate: _Candidate, ds: DataStore, record: DocumentRecord
    ) -> Incompatibility | None:
        """The first reason a stored document fails the candidate, or None if it passes."""
        if record.blob is not None:
            return self._streamed_problem(candidate, ds, record, record.blob)
        data = _json.loads(record.body, what=f"stored document {record.id}")
        for validator in candidate.validators:
            if not validator.is_valid(data):
                first = validator.violations(data, limit=1)[0]
                return Incompatibility(
                    f"document {record.id}{first.pointer}",
                    f"stored document of DataStore {ds.ref} would become invalid: {first.message}",
                    "STORED_DATA",
                )
        return None

    def _streamed_problem(
        self, candidate: _Candidate, ds: DataStore, record: DocumentRecord, blob: UUID
    ) -> Incompatibility | None:
        """`_document_problem` for a document kept in a blob: validated streamed."""
        from reeldb.ingest import stream
        from reeldb.ingest.plan import LevelValidators, scan

        if self.open_body is None:  # pragma: no cover - a Database always sets it
            raise ConflictError("stored documents in blobs cannot be read here")
        chunks = self.open_body(blob)
        try:
            scan(
                stream.walk(chunks),
                LevelValidators.of(candidate.schema.json_schema),
                chunk_bytes=1 << 30,
                what=f"stored document {record.id}",
                max_violations=1,
            )
        except ValidationError as exc:
            first = exc.violations[0] if exc.violations else Violation("", exc.summary)
            return Incompatibility(
                f"document {record.id}{first.pointer}",
                f"stored document of DataStore {ds.ref} would become invalid: {first.message}",
                "STORED_DATA",
            )
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return None

    def _remember(self, schema: SchemaVersion) -> None:
        with self._lock:
            self._versions[schema.ref] = schema

    def set_compatibility(
        self, namespace: str, name: str, mode: str | CompatibilityMode
    ) -> SchemaSubject:
        """Change a schema's compatibility mode (checks of later versions use it).

        Args:
            namespace: The namespace.
            name: The schema name.
            mode: The new mode.

        Returns:
            The updated subject.

        Raises:
            NotFoundError: No such schema.
            ValidationError: Unknown mode, or a built-in schema.
        """
        parsed_mode = CompatibilityMode.parse(mode)
        if name in self._builtins and namespace == BUILTIN_NAMESPACE:
            raise ValidationError("built-in schemas have no compatibility mode to change")
        self._store.set_compatibility(namespace, name, parsed_mode)
        return self._store.get_subject(namespace, name)
