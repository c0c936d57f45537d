"""What a job does to its items: the built-in processors and the user's functions.

A processor takes a batch of items and returns, for each item's key, ``"changed"``,
``"skipped"`` or the exception it met. Writes back to reeldb are conditional on the
version the job read (``expected_version`` for annotations, ``replaces`` for documents),
so a live write that came first is never overwritten: the item is read again and retried.
A function must be idempotent (``f(f(x)) == f(x)``, returning None when it has nothing to
change): a job run again, or an item met again in a catch-up round, then changes nothing.

User functions are called as ``function(data, context)``: ``data`` is the annotation's
``data`` or the whole document (a fresh copy the function may change), ``context`` a dict
with the item's identity (``id``/``version``/``type``/``associations`` of an annotation,
``document_id``/``mid`` of a document) and the spec's ``options``. Backfill and migrate
functions return the new ``data`` (or document), or None for no change; custom functions
with a file sink return a row (a dict), a list of rows, or None.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.metadata
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from reeldb import _json
from reeldb.annotations._service import _annotation
from reeldb.annotations.model import Annotation, TypeRef
from reeldb.auth.model import AuditEntry
from reeldb.database import Database, PreparedWrite, _mid
from reeldb.errors import (
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    ReelError,
    ValidationError,
)
from reeldb.model.datastore import DataStore
from reeldb.reprocess._files import FileSink
from reeldb.reprocess._sources import Item, Source
from reeldb.reprocess._spec import JobSpec
from reeldb.store.base import (
    AnnotationRecord,
    AnnotationWrite,
    DeriveSearchRows,
    DocumentRecord,
    JobRecord,
)

__all__ = ["PERMANENT", "Outcome", "Processor", "load_function", "open_processor"]

Outcome = str | BaseException
UserFunction = Callable[[Any, dict[str, Any]], Any]
_T = TypeVar("_T")

PERMANENT: Final = (ValidationError, NotFoundError, PermissionDeniedError, ConfigError)
"""Errors a retry cannot cure: the item goes to the dead-letter list at once."""
PLUGIN_GROUP: Final = "reeldb.processors"
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_function(ref: str, *, plugins_only: bool = False) -> UserFunction:
    """Find a processor function: an installed plug-in's name, or ``module:attribute``.

    Args:
        ref: The name or reference.
        plugins_only: Refuse ``module:attribute`` (jobs submitted over HTTP may only
            name plug-ins the operator installed).

    Returns:
        The function.

    Raises:
        ConfigError: No such plug-in or attribute, or it is not callable.
        PermissionDeniedError: A ``module:attribute`` with ``plugins_only``.
    """
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        if entry.name == ref:
            loaded = entry.load()
            break
    else:
        if not _REF.match(ref):
            raise ConfigError(
                f"no processor plug-in named {ref!r} (entry point group {PLUGIN_GROUP}), "
                "and it is not a module:attribute reference"
            )
        if plugins_only:
            raise PermissionDeniedError(
                f"jobs submitted over HTTP may only name installed plug-ins, not {ref!r}"
            )
        module_name, _, attribute = ref.partition(":")
        try:
            loaded = importlib.import_module(module_name)
            for part in attribute.split("."):
                loaded = getattr(loaded, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load processor function {ref}: {exc}") from None
    if not callable(loaded):
        raise ConfigError(f"processor function {ref} is not callable")
    return loaded  # type: ignore[no-any-return]


class Processor:
    """Processes a batch of items (see the module docstring).

    Args:
        db: The database.
        spec: The job's spec.
        job: The job.
        source: The job's source.
        function: The user's function, if the processor takes one.
        sink: The file sink, if the output goes to files.
    """

    whole: bool = False
    """True for a processor that does the whole job in one call (`run_whole`)."""

    def __init__(
        self,
        db: Database,
        spec: JobSpec,
        job: JobRecord,
        source: Source,
        function: UserFunction | None,
        sink: FileSink | None,
    ) -> None:
        self.db = db
        self.spec = spec
        self.job = job
        self.source = source
        self.function = function
        self.sink = sink
        self.principal = job_principal(job)
        self.dry_run = spec.dry_run

    def process(self, items: Sequence[Item], partition: int) -> dict[str, Outcome]:
        """Process a batch.

        Returns:
            Each item's outcome, by key.
        """
        raise NotImplementedError

    def settles(self) -> DeriveSearchRows | None:
        """What search reads of an annotation version, if that is all this processor writes.

        A reindex: an item whose search rows already hold what its version derives changes
        nothing, so the source may leave it out (`Page.settled`). None: every item comes.
        """
        return None

    def run_whole(self, progress: Callable[[int, int], None]) -> tuple[int, int]:
        """Do the whole job at once (``whole`` processors).

        Returns:
            Items done and items changed.
        """
        raise NotImplementedError

    def _audit(self, target: str, at: datetime | None = None) -> AuditEntry:
        return AuditEntry(
            0,
            at or datetime.now(UTC),
            self.principal,
            f"reprocess.{self.spec.processor.kind}",
            self.job.namespace,
            target,
            str(self.job.id),
            200,
        )

    def _call(self, data: Any, context: dict[str, Any], *, fresh: bool = False) -> Any:
        """The user's function on a copy of ``data`` (``fresh``: ``data`` is one already)."""
        assert self.function is not None
        context["options"] = self.spec.processor.options
        return self.function(data if fresh else copy.deepcopy(data), context)


def job_principal(job: JobRecord) -> str:
    """The principal a job writes as (``job:<id>``): catch-up rounds skip its own writes."""
    return f"job:{job.id}"


# -- annotations ---------------------------------------------------------------------------


def _annotation_context(
    record: AnnotationRecord, associations: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a function is told of an annotation version: `Annotation.to_json` but its data.

    Made from the record and its parsed body's associations, without an `Annotation`.
    """
    return {
        "id": str(record.id),
        "version": record.version,
        "namespace": record.namespace,
        "type": {"name": record.type_name, "version": record.type_version},
        "associations": associations,
        "deleted": record.deleted,
        "created_at": record.created_at.isoformat(),
        "created_by": record.created_by,
    }


_CHUNK: Final = 64
"""Writes per group when a batch that failed whole is stored again in groups."""


def _store_each(
    put: Callable[[Sequence[Sequence[_T]]], list[ReelError | None]], items: Sequence[_T]
) -> list[ReelError | None]:
    """Store ``items`` so that only the ones that fail are left out, in few calls.

    ``put`` stores groups of items, each group all or none, and says per group why it was
    not stored. The batch is tried whole; if it fails (an annotation moved on since it was
    read: a live write came first), it is stored again in groups of `_CHUNK`, then the
    items of the groups that failed one by one: a conflict costs two more calls of ``put``,
    not a write per item.

    Returns:
        Per item: None if stored, else why not.
    """
    if not items:
        return []
    [error] = put([items])
    if error is None:
        return [None] * len(items)
    if len(items) == 1:
        return [error]
    groups = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    out: list[ReelError | None] = [None] * len(items)
    failed: list[int] = []
    for n, result in enumerate(put(groups)):
        if result is not None:
            failed += range(n * _CHUNK, min(len(items), (n + 1) * _CHUNK))
    if failed:
        for index, result in zip(failed, put([[items[i]] for i in failed]), strict=True):
            out[index] = result
    return out


class AnnotationWriter(Processor):
    """``backfill``, ``migrate`` and ``custom`` of annotations into reeldb: new versions.

    The batch's new versions are built from the current versions the source read (nothing
    is read again per item) and stored in one transaction, each conditional on the version
    read; if one fails, the others are stored in groups (see `_store_each`).
    """

    def process(self, items: Sequence[Item], partition: int) -> dict[str, Outcome]:
        """See `Processor.process`."""
        outcomes: dict[str, Outcome] = {}
        keys: list[str] = []
        revisions: list[tuple[Annotation, dict[str, Any], TypeRef | None]] = []
        target = self.spec.processor.target_version
        for item in items:
            record = item.current
            if item.skip is not None or record is None or record.deleted:
                outcomes[item.key] = "skipped"
                continue
            try:
                current: Annotation | None = None
                new: Any
                if self.function is None:
                    current = _annotation(record)
                    new = current.data
                else:  # the function's own copy; the Annotation only if it changes anything
                    payload = _json.loads(record.body)
                    context = _annotation_context(record, payload["associations"])
                    new = self._call(payload["data"], context, fresh=True)
                type_ref = None if target is None else TypeRef(record.type_name, target)
                moves = type_ref is not None and record.type_version != target
                if new is not None and not isinstance(new, dict):
                    raise ValidationError(
                        f"the function returned {type(new).__name__}, not the new data (a dict)"
                    )
                if current is None and (new is not None or moves):
                    current = _annotation(record)
                unchanged = new is None or (current is not None and new == current.data)
                if unchanged and not moves:
                    # Written by this job already: by a try of this batch whose checkpoint
                    # was lost (a crash between the write and it), so it counts as changed.
                    by_job = record.created_by == self.principal
                    outcomes[item.key] = "changed" if by_job else "skipped"
                    continue
            except Exception as exc:  # the user's function
                outcomes[item.key] = exc
                continue
            assert current is not None
            revisions.append((current, current.data if new is None else new, type_ref))
            keys.append(item.key)
        prepared = self.db.annotations.prepare_revisions(
            self.job.namespace, revisions, by=self.principal
        )
        ready: list[tuple[AnnotationWrite, AuditEntry]] = []
        ready_keys: list[str] = []
        now = datetime.now(UTC)
        for key, write in zip(keys, prepared, strict=True):
            if isinstance(write, ReelError):
                outcomes[key] = write  # invalid: a dead letter
            else:
                ready.append((write, self._audit(str(write.id), now)))
                ready_keys.append(key)
        if self.dry_run:
            outcomes.update(dict.fromkeys(ready_keys, "changed"))
            return outcomes

        def put(
            groups: Sequence[Sequence[tuple[AnnotationWrite, AuditEntry]]],
        ) -> list[ReelError | None]:
            return self.db.store.put_annotation_batches(
                [([w for w, _ in group], [a for _, a in group]) for group in groups]
            )

        for key, error in zip(ready_keys, _store_each(put, ready), strict=True):
            outcomes[key] = "changed" if error is None else error
        return outcomes


class AnnotationReindex(Processor):
    """``reindex`` of annotations: what search reads of each is derived again.

    The source checks a page of annotations against what their versions derive in bulk, on
    a read snapshot (`settles`): only those whose search rows differ come here. The batch
    is reindexed in one transaction; if an annotation moved on meanwhile, the batch is
    reindexed again in groups (see `_store_each`) and only that one is retried.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._derive = self.db.annotations.search_rows(self.job.namespace)

    def settles(self) -> DeriveSearchRows | None:
        """See `Processor.settles`."""
        return self._derive

    def process(self, items: Sequence[Item], partition: int) -> dict[str, Outcome]:
        """See `Processor.process`."""
        live = [i for i in items if i.skip is None and i.current and not i.current.deleted]
        outcomes: dict[str, Outcome] = {i.key: "skipped" for i in items}
        if self.dry_run or not live:
            outcomes.update({i.key: "changed" for i in live})
            return outcomes
        annotations, namespace = self.db.annotations, self.job.namespace

        def put(groups: Sequence[Sequence[AnnotationRecord]]) -> list[ReelError | None]:
            results: list[ReelError | None] = []
            for group in groups:
                try:
                    annotations.reindex(namespace, group)
                except ReelError as exc:
                    results.append(exc)
                else:
                    results.append(None)
            return results

        records = [i.current for i in live if i.current is not None]
        for item, error in zip(live, _store_each(put, records), strict=True):
            outcomes[item.key] = "changed" if error is None else error
        return outcomes


# -- documents -----------------------------------------------------------------------------


class DocumentWriter(Processor):
    """``backfill``, ``migrate`` and ``custom`` of documents into reeldb: new versions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.spec.source.datastore is not None
        self.from_ds: DataStore = self.db.get_datastore(self.spec.source.datastore)
        target = self.spec.processor.target_datastore
        self.to_ds: DataStore = self.from_ds if target is None else self.db.get_datastore(target)

    def process(self, items: Sequence[Item], partition: int) -> dict[str, Outcome]:
        """See `Processor.process`."""
        store = self.db.store
        outcomes: dict[str, Outcome] = {}
        writes: list[PreparedWrite] = []
        keys: list[str] = []
        migrating = self.to_ds.id != self.from_ds.id
        for item in items:
            if item.skip is not None:
                outcomes[item.key] = "skipped"
                continue
            assert isinstance(item.record, DocumentRecord)
            try:
                # The MID's latest document now (a live write may have come after the
                # snapshot): the new version builds on it.
                base = store.latest_document(self.from_ds.id, item.record.mid_key)
                data = _document_data(self.db, base)
                new = data if self.function is None else self._call(data, _document_context(base))
                if new is None:
                    outcomes[item.key] = "skipped"
                    continue
                if not isinstance(new, dict):
                    raise ValidationError(
                        f"the function returned {type(new).__name__}, not a document (a dict)"
                    )
                over = base if not migrating else _latest_or_none(self.db, self.to_ds, base)
                if over is not None and _json.loads(_body(self.db, over)) == new:
                    outcomes[item.key] = "skipped"  # already so (a run before, or a copy)
                    continue
                mid = _mid(base.mid_key)
                write = self.db.prepare_documents(
                    self.to_ds.ref, [(mid, new)], audit=self._audit(base.mid_key)
                )
                replaces = 0 if over is None else over.seq
                writes.append(_conditional(write, replaces))
                keys.append(item.key)
            except Exception as exc:
                outcomes[item.key] = exc
        if self.dry_run:
            outcomes.update(dict.fromkeys(keys, "changed"))
            return outcomes
        if writes:
            for key, result in zip(keys, self.db.commit_documents(writes), strict=True):
                outcomes[key] = result if isinstance(result, ReelError) else "changed"
        return outcomes


def _conditional(write: PreparedWrite, replaces: int) -> PreparedWrite:
    return dataclasses.replace(write, replaces=(replaces,))


def _latest_or_none(db: Database, ds: DataStore, record: DocumentRecord) -> DocumentRecord | None:
    try:
        return db.store.latest_document(ds.id, record.mid_key)
    except NotFoundError:
        return None


def _body(db: Database, record: DocumentRecord) -> bytes:
    if record.blob is None:
        return record.body
    limit = db.settings.max_document_bytes
    if record.size > limit:
        raise ValidationError(
            f"document {record.id} is {record.size} bytes, more than a job reads whole "
            f"({limit}, setting max_document_bytes)"
        )
    return b"".join(db.open_document_body(db.get_document(record.id)))


def _document_data(db: Database, record: DocumentRecord) -> Any:
    return _json.loads(_body(db, record), what="document")


def _document_context(record: DocumentRecord) -> dict[str, Any]:
    return {"document_id": str(record.id), "mid": _mid(record.mid_key), "seq": record.seq}


class DocumentReindex(Processor):
    """``reindex`` of a DataStore: a new index generation, filled and swapped in."""

    whole = True

    def run_whole(self, progress: Callable[[int, int], None]) -> tuple[int, int]:
        """See `Processor.run_whole`."""
        assert self.spec.source.datastore is not None
        total = self.db.count_documents(self.spec.source.datastore)
        if self.dry_run:
            progress(total, total)
            return total, total
        self.db.rebuild_index(
            self.spec.source.datastore, batch_size=self.spec.limits.batch, progress=progress
        )
        return total, total


# -- exports -------------------------------------------------------------------------------


class IcebergExport(Processor):
    """``export-iceberg``: the analytics tables, appended from their watermarks."""

    whole = True

    def run_whole(self, progress: Callable[[int, int], None]) -> tuple[int, int]:
        """See `Processor.run_whole`."""
        from reeldb.analytics import export_iceberg

        if self.dry_run:
            return 0, 0
        source = self.spec.source
        tables = (
            ("annotations",)
            if source.kind == "annotations"
            else (
                "documents",
                "events",
                "regions",
            )
        )
        done = 0

        def report(step: str, count: int, total: int | None) -> None:
            nonlocal done
            done = count
            progress(count, total or count)

        result = export_iceberg(
            self.db,
            warehouse=self.spec.sink.warehouse,
            catalog=self.spec.sink.catalog,
            tables=tables,
            datastores=None if source.datastore is None else [source.datastore],
            namespaces=[source.namespace],
            progress=report,
        )
        items = sum(result.documents.values()) + sum(result.annotations.values())
        return max(items, done), sum(result.rows.values())


class FileWriter(Processor):
    """Items (or what the function makes of them) to JSON Lines or Parquet files."""

    def process(self, items: Sequence[Item], partition: int) -> dict[str, Outcome]:
        """See `Processor.process`."""
        assert self.sink is not None
        outcomes: dict[str, Outcome] = {}
        rows: list[dict[str, Any]] = []
        for item in items:
            if item.skip is not None:
                outcomes[item.key] = "skipped"
                continue
            try:
                view = _view(self.db, item)
                made = view if self.function is None else self._call(view, {"key": item.key})
            except Exception as exc:
                outcomes[item.key] = exc
                continue
            made_rows = [] if made is None else made if isinstance(made, list) else [made]
            if not all(isinstance(row, dict) for row in made_rows):
                outcomes[item.key] = ValidationError(
                    "the function returned rows that are not dicts"
                )
                continue
            rows.extend(made_rows)
            outcomes[item.key] = "changed" if made_rows else "skipped"
        if rows and not self.dry_run and items:
            self.sink.write(partition, items[0].key, rows)
        return outcomes


def _view(db: Database, item: Item) -> dict[str, Any]:
    record = item.record
    if isinstance(record, AnnotationRecord):
        return _annotation(record).to_json()
    return {**_document_context(record), "document": _document_data(db, record)}


def open_processor(
    db: Database,
    spec: JobSpec,
    job: JobRecord,
    source: Source,
    *,
    plugins_only: bool = False,
) -> Processor:
    """The processor of a job spec.

    Raises:
        ConfigError: Its function cannot be loaded.
        PermissionDeniedError: A function reference where only plug-ins are allowed.
    """
    kind, sink = spec.processor.kind, spec.sink_kind
    function = (
        None
        if spec.processor.function is None
        else load_function(spec.processor.function, plugins_only=plugins_only)
    )
    files = None
    if sink in ("jsonl", "parquet"):
        assert spec.sink.path is not None
        files = FileSink(spec.sink.path, sink, job.id)
        return FileWriter(db, spec, job, source, function, files)
    if kind == "export-iceberg":
        return IcebergExport(db, spec, job, source, None, None)
    if kind == "reindex":
        cls: type[Processor] = DocumentReindex if source.kind == "documents" else AnnotationReindex
        return cls(db, spec, job, source, None, None)
    cls = DocumentWriter if source.kind == "documents" else AnnotationWriter
    return cls(db, spec, job, source, function, None)
