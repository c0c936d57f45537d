"""Copy a whole installation to another backend, and prove the copy (``reeldb migrate-backend``).

The usual move is from the embedded default (SQLite and local files) to PostgreSQL when a
team outgrows one machine; any backend can be the source or the target. What is copied:

- namespaces, role grants, association-type settings, system administrators, API keys (their
  hashes: every key keeps working) and revocations;
- every schema version (document schemas and annotation types) and compatibility mode;
- DataStores, and every document with its DocumentID, MID, schema version, creation time and
  body, in write order; a document streamed from a blob brings its blob (record and payload,
  re-encrypted with the target's key when the blob stores differ);
- every annotation with its whole history (deleted ones too): each version keeps its
  number, type version, author and time, and is validated again on the way in;
- finished asynchronous write requests (so an idempotency key still finds its request), and
  the audit log.

The search index is not copied but rebuilt on the target from the copied documents
(`Database.rebuild_index`); the annotation search structures are written with each version.

**Resumable**: every step skips what the target already holds (documents by DocumentID,
annotation versions by number, the audit log from its newest copied entry), so a copy that
was interrupted (a crash, ``kill -9``, a lost connection) is finished by running it again.
**Verified**: afterwards each kind of record is counted and hashed (SHA-256 over a canonical
form, bodies included) on both sides; any difference is reported.

The source must be quiet: a copy refuses to start while asynchronous writes are unfinished,
and writes made to the source during a copy are only picked up by running it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson

from reeldb import _json
from reeldb.errors import ConflictError, NotFoundError, ValidationError, VersionConflictError
from reeldb.model.datastore import DataStore
from reeldb.model.requests import WriteState
from reeldb.store.base import AnnotationRecord, DocumentRecord

if TYPE_CHECKING:
    from reeldb.database import Database

__all__ = ["Check", "Progress", "TransferReport", "migrate_backend", "verify_backend"]

Progress = Callable[[str, int, int | None], None]
"""Called as ``progress(step, done, total)`` while a step runs (total None: unknown)."""

_PAGE = 500
_FINISHED = (WriteState.INDEXED, WriteState.FAILED)


@dataclass(frozen=True, slots=True)
class Check:
    """One kind of record counted and hashed on both sides.

    Attributes:
        what: What was compared, e.g. ``documents media/shots/1``.
        source_count: Records in the source.
        target_count: Records in the target.
        source_sha256: Hash of the source's records in canonical form.
        target_sha256: Hash of the target's.
    """

    what: str
    source_count: int
    target_count: int
    source_sha256: str
    target_sha256: str

    @property
    def ok(self) -> bool:
        """Whether both sides hold the same records."""
        return (self.source_count, self.source_sha256) == (self.target_count, self.target_sha256)


@dataclass(slots=True)
class TransferReport:
    """What a copy did, and what the verification found.

    Attributes:
        copied: Per kind of record, how many this run stored (what the target already held
            is not counted: a resumed copy shows only what was left).
        rebuilt: The DataStores whose index was rebuilt on the target.
        checks: The verification, one line per kind of record.
    """

    copied: dict[str, int] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks)

    def count(self, what: str, n: int) -> None:
        """Add ``n`` to what was copied of a kind."""
        self.copied[what] = self.copied.get(what, 0) + n


def migrate_backend(
    source: Database,
    target: Database,
    *,
    batch_size: int = _PAGE,
    progress: Progress | None = None,
) -> TransferReport:
    """Copy everything ``source`` holds into ``target``, rebuild its indexes, and verify.

    Args:
        source: The installation to copy (left unchanged).
        target: Where to copy it: a new installation, or one a previous run started.
        batch_size: Documents or annotations per target transaction.
        progress: Told how each step advances.

    Returns:
        What was copied and the verification (`TransferReport.ok`).

    Raises:
        ConflictError: The source has unfinished asynchronous writes, or the target holds
            something that differs from the source (a namespace, a schema version, a
            DataStore...): it is not a copy of this source.
        ValidationError: A batch size below 1.
    """
    if batch_size < 1:
        raise ValidationError("the batch size must be at least 1")
    step = progress or (lambda _step, _done, _total: None)
    pending = source.store.count_write_requests()
    if any(pending.values()):
        waiting = ", ".join(f"{n} {state}" for state, n in sorted(pending.items()) if n)
        raise ConflictError(
            f"the source has unfinished asynchronous writes ({waiting}); stop its service, "
            "let its workers finish them, then copy"
        )
    report = TransferReport()
    _copy_access(source, target, report)
    _copy_schemas(source, target, report)
    pairs = _copy_datastores(source, target, report)
    for ds, here in pairs:
        _copy_documents(source, target, ds, here, batch_size, report, step)
    for ds, here in pairs:
        covered, stored = target.store.index_coverage(here.id)
        if covered < stored or not target.store.index_generations(here.id):
            target.rebuild_index(
                ds.ref, batch_size=batch_size, progress=partial(step, f"index {ds.ref}")
            )
            report.rebuilt.append(str(ds.ref))
    for namespace in source.store.list_namespaces():
        _copy_annotations(source, target, namespace.name, batch_size, report, step)
    _copy_write_requests(source, target, report)
    _copy_audit(source, target, report, step)
    report.checks = verify_backend(source, target)
    return report


# -- access and metadata ------------------------------------------------------------------


def _same(what: str, mine: Any, theirs: Any) -> None:
    if mine != theirs:
        raise ConflictError(
            f"the target already has {what}, and it differs from the source's: the target is "
            "not a copy of this source (copy into a new database)"
        )


def _copy_access(source: Database, target: Database, report: TransferReport) -> None:
    there = {n.name: n for n in target.store.list_namespaces()}
    for ns in source.store.list_namespaces():
        if ns.name in there:
            _same(f"namespace {ns.name}", _ns(there[ns.name]), _ns(ns))
        else:
            target.store.create_namespace(ns.name, ns.description, ns.created_at)
            report.count("namespaces", 1)
        have = {g.principal: g for g in target.store.list_roles(ns.name)}
        for grant in source.store.list_roles(ns.name):
            if grant.principal in have:
                _same(f"a role of {grant.principal} in {ns.name}", have[grant.principal], grant)
                continue
            target.store.grant_role(ns.name, grant.principal, grant.role, grant.granted_at)
            report.count("roles", 1)
        types = source.store.association_types(ns.name)
        if target.store.association_types(ns.name) != types:
            target.store.set_association_types(ns.name, types)
    admins = set(target.store.list_system_admins())
    for principal in source.store.list_system_admins():
        if principal not in admins:
            target.store.set_system_admin(principal, True, datetime.now(UTC))
            report.count("system admins", 1)
    keys = {k.key_id: k for k in target.store.list_api_keys()}
    for key in source.store.list_api_keys():
        found = keys.get(key.key_id)
        if found is None:
            record, secret_hash, _ = source.store.key_access(key.key_id)
            target.store.create_api_key(replace(record, revoked_at=None), secret_hash)
            report.count("api keys", 1)
        elif not (found.revoked_at is None and key.revoked_at is not None):
            _same(f"API key {key.key_id}", _key(found), _key(key))
        if key.revoked_at is not None and (found is None or found.revoked_at is None):
            target.store.revoke_api_key(key.key_id, key.revoked_at)


def _copy_schemas(source: Database, target: Database, report: TransferReport) -> None:
    for ns in source.store.list_namespaces():
        for subject in source.store.list_subjects(ns.name):
            stored = {
                v.version: v for v in target.store.list_schema_versions(ns.name, subject.name)
            }
            for version in source.store.list_schema_versions(ns.name, subject.name):
                if version.version in stored:
                    _same(
                        f"schema {version.ref}", _schema(stored[version.version]), _schema(version)
                    )
                    continue
                target.store.add_schema_version(version, subject.compatibility, ())
                report.count("schema versions", 1)
            here = target.store.get_subject(ns.name, subject.name)
            if here.compatibility != subject.compatibility:
                target.store.set_compatibility(ns.name, subject.name, subject.compatibility)


def _copy_datastores(
    source: Database, target: Database, report: TransferReport
) -> list[tuple[DataStore, DataStore]]:
    pairs = []
    there = {d.ref: d for d in target.store.list_datastores()}
    for ds in source.store.list_datastores():
        here = there.get(ds.ref)
        if here is None:
            here = target.store.create_datastore(
                ds.ref,
                ds.mid_keys,
                ds.schema_name,
                ds.schema_version,
                ds.description,
                ds.created_at,
            )
            report.count("datastores", 1)
        else:
            _same(f"DataStore {ds.ref}", _datastore(here), _datastore(ds))
        pairs.append((ds, here))
    return pairs


# -- documents and blobs --------------------------------------------------------------------


def _copy_documents(
    source: Database,
    target: Database,
    ds: DataStore,
    here: DataStore,
    batch_size: int,
    report: TransferReport,
    step: Progress,
) -> None:
    name = f"documents {ds.ref}"
    total = source.store.count_documents(ds.id)
    done = target.store.count_documents(here.id)
    after = 0
    if done:
        # Documents are copied in write order, so the target's newest is the last one copied.
        newest = target.store.max_seq(here.id)
        last = next(target.store.iter_documents(here.id, after_seq=newest - 1))
        after = source.store.locate_document(last.id).seq
    step(name, done, total)
    batch: list[DocumentRecord] = []
    size = 0
    for record in source.store.iter_documents(ds.id, after_seq=after):
        if record.blob is not None:
            _copy_blob(source, target, record.blob, report)
        batch.append(record)
        size += record.size
        if len(batch) >= batch_size or size >= 64 << 20:
            report.count("documents", target.store.import_documents(here.id, batch))
            done += len(batch)
            step(name, done, total)
            batch, size = [], 0
    if batch:
        report.count("documents", target.store.import_documents(here.id, batch))
        step(name, done + len(batch), total)


def _copy_blob(source: Database, target: Database, blob_id: UUID, report: TransferReport) -> None:
    try:
        target.blobs.store.info(blob_id)
    except NotFoundError:
        target.blobs.store.put(blob_id, source.blobs.store.open(blob_id))
        report.count("blob payloads", 1)
    try:
        target.store.get_blob(blob_id)
        return
    except NotFoundError:
        pass
    record = source.store.get_blob(blob_id)
    target.store.add_blob(replace(record, size=None, sha256=None, state="open"))
    if record.size is not None and record.sha256 is not None:
        target.store.blob_stored(blob_id, record.size, record.sha256, record.created_at)
    if record.state == "claimed":
        target.store.claim_blob(blob_id, record.created_at)
    report.count("blobs", 1)


# -- annotations ------------------------------------------------------------------------------


def _copy_annotations(
    source: Database,
    target: Database,
    namespace: str,
    batch_size: int,
    report: TransferReport,
    step: Progress,
) -> None:
    name = f"annotations {namespace}"
    done = 0
    after: UUID | None = None
    while True:
        versions = source.store.annotation_history(namespace, after=after, limit=batch_size)
        if not versions:
            break
        ids = _ids(versions)
        # What the target holds of these annotations: their latest version (a copy of the
        # same source holds no other ids in this range).
        heads = {
            r.id: r.latest
            for r in target.store.annotation_history(
                namespace, after=after, limit=len(ids), bodies=False
            )
        }
        missing = [r for r in versions if r.version > heads.get(r.id, 0)]
        # The n-th missing version of every annotation goes in the n-th transaction: each
        # expects the version before it.
        layers: list[list[AnnotationRecord]] = []
        depth: dict[UUID, int] = {}
        for record in missing:
            n = depth.get(record.id, 0)
            depth[record.id] = n + 1
            if n == len(layers):
                layers.append([])
            layers[n].append(record)
        for layer in layers:
            try:
                target.store.put_annotations(target.annotations.replay(namespace, layer))
            except VersionConflictError:  # pragma: no cover - a concurrent copy
                raise ConflictError(
                    f"annotations of {namespace} changed in the target during the copy"
                ) from None
            report.count("annotation versions", len(layer))
        done += len(ids)
        step(name, done, None)
        after = ids[-1]


def _ids(versions: Iterable[AnnotationRecord]) -> list[UUID]:
    out: list[UUID] = []
    for record in versions:
        if not out or out[-1] != record.id:
            out.append(record.id)
    return out


# -- operations history -------------------------------------------------------------------------


def _copy_write_requests(source: Database, target: Database, report: TransferReport) -> None:
    for request in _write_requests(source):
        try:
            target.store.get_write_request(request.id)
        except NotFoundError:
            target.store.add_write_request(request)
            report.count("write requests", 1)


def _write_requests(db: Database) -> Iterator[Any]:
    before: UUID | None = None
    while True:
        page = db.store.list_write_requests(limit=_PAGE, before=before)
        yield from (r for r in page if r.state in _FINISHED)
        if len(page) < _PAGE:
            return
        before = page[-1].id


def _copy_audit(source: Database, target: Database, report: TransferReport, step: Progress) -> None:
    """Append the source's audit entries the target lacks, oldest first, in bounded memory.

    The target's newest entry is the last one copied: the source's entries after it are
    missing. A first pass, newest first, finds it and keeps where each page of missing
    entries starts (one number per page); the pages are then read again, oldest first.
    """
    newest = target.store.list_audit(None, limit=1, before_seq=None)
    mark = _entry(newest[0]) if newest else None
    cursors: list[int | None] = []  # the ``before_seq`` of each page with missing entries
    after = 0  # the source seq of the entry copied last
    total = 0
    before: int | None = None
    while True:
        page = source.store.list_audit(None, limit=_PAGE, before_seq=before)
        hit = next((e for e in page if mark is not None and _entry(e) == mark), None)
        if page and (hit is None or hit is not page[0]):
            cursors.append(before)
        if hit is not None:
            after = hit.seq
            total += sum(1 for e in page if e.seq > after)
            break
        total += len(page)
        if len(page) < _PAGE:
            if mark is not None:
                raise ConflictError(
                    "the target's audit log has entries the source does not: the target is "
                    "not a copy of this source (copy into a new database)"
                )
            break
        before = page[-1].seq
    done = 0
    for cursor in reversed(cursors):
        page = source.store.list_audit(None, limit=_PAGE, before_seq=cursor)
        entries = [e for e in reversed(page) if e.seq > after]
        target.store.append_audit(entries)
        done += len(entries)
        step("audit log", done, total)
    report.count("audit entries", done)


def _audit(db: Database) -> Iterator[Any]:
    before: int | None = None
    while True:
        page = db.store.list_audit(None, limit=_PAGE, before_seq=before)
        yield from page
        if len(page) < _PAGE:
            return
        before = page[-1].seq


# -- verification ---------------------------------------------------------------------------------


def verify_backend(source: Database, target: Database) -> list[Check]:
    """Count and hash every kind of record on both sides.

    Args:
        source: The installation copied.
        target: The copy.

    Returns:
        One `Check` per kind of record (per DataStore for documents, per namespace for
        annotations).
    """
    checks = [
        _check("namespaces", source, target, lambda db: map(_ns, db.store.list_namespaces())),
        _check("roles", source, target, _roles),
        _check("schema versions", source, target, _schemas),
        _check(
            "datastores", source, target, lambda db: map(_datastore, db.store.list_datastores())
        ),
        _check("api keys", source, target, _keys),
        _check("system admins", source, target, lambda db: sorted(db.store.list_system_admins())),
    ]
    for ds in source.store.list_datastores():
        checks.append(
            _check(f"documents {ds.ref}", source, target, partial(_documents, ref=ds.ref))
        )
        checks.append(
            _check(
                f"index {ds.ref}",
                source,
                target,
                partial(_searchable, ref=ds.ref, source=source),
            )
        )
    for ns in source.store.list_namespaces():
        checks.append(
            _check(
                f"annotations {ns.name}", source, target, partial(_annotations, namespace=ns.name)
            )
        )
    checks.append(
        _check(
            "write requests", source, target, lambda db: sorted(map(_request, _write_requests(db)))
        )
    )
    checks.append(_check("audit log", source, target, lambda db: map(_entry, _audit(db))))
    return checks


def _check(
    what: str, source: Database, target: Database, rows: Callable[[Database], Iterable[Any]]
) -> Check:
    def digest(db: Database) -> tuple[int, str]:
        sha = hashlib.sha256()
        count = 0
        for row in rows(db):
            sha.update(orjson.dumps(row, default=_plain, option=orjson.OPT_SORT_KEYS))
            sha.update(b"\n")
            count += 1
        return count, sha.hexdigest()

    mine, theirs = digest(source), digest(target)
    return Check(what, mine[0], theirs[0], mine[1], theirs[1])


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return str(value)


def _ns(ns: Any) -> tuple[Any, ...]:
    return (ns.name, ns.description, _plain(ns.created_at))


def _roles(db: Database) -> Iterator[tuple[Any, ...]]:
    for ns in db.store.list_namespaces():
        for g in db.store.list_roles(ns.name):
            yield (ns.name, g.principal, g.role.value, _plain(g.granted_at))
        yield (ns.name, "association types", db.store.association_types(ns.name))


def _schema(v: Any) -> tuple[Any, ...]:
    return (
        str(v.ref),
        v.kind.value,
        v.description,
        _json.dumps(v.definition).decode(),
        _plain(v.created_at),
    )


def _schemas(db: Database) -> Iterator[tuple[Any, ...]]:
    for ns in db.store.list_namespaces():
        for subject in db.store.list_subjects(ns.name):
            yield (ns.name, subject.name, subject.compatibility.value)
            for version in db.store.list_schema_versions(ns.name, subject.name):
                yield _schema(version)


def _datastore(ds: DataStore) -> tuple[Any, ...]:
    return (
        str(ds.ref),
        list(ds.mid_keys),
        ds.schema_name,
        ds.schema_version,
        ds.description,
        _plain(ds.created_at),
    )


def _key(k: Any) -> tuple[Any, ...]:
    return (
        k.key_id,
        k.principal,
        k.description,
        _plain(k.created_at),
        k.created_by,
        None if k.revoked_at is None else _plain(k.revoked_at),
    )


def _keys(db: Database) -> Iterator[tuple[Any, ...]]:
    for key in sorted(db.store.list_api_keys(), key=lambda k: k.key_id):
        _, secret_hash, _ = db.store.key_access(key.key_id)
        yield (*_key(key), hashlib.sha256(secret_hash).hexdigest())


def _documents(db: Database, *, ref: Any) -> Iterator[tuple[Any, ...]]:
    ds = db.store.get_datastore(ref)
    for r in db.store.iter_documents(ds.id):
        if r.blob is None:
            content = hashlib.sha256(r.body).hexdigest()
        else:  # the payload is checked too: it is read back (authenticated) and hashed
            sha = hashlib.sha256()
            for chunk in db.blobs.store.open(r.blob):
                sha.update(chunk)
            content = f"{r.blob}:{sha.hexdigest()}"
        yield (str(r.id), r.mid_key, r.schema_version, _plain(r.created_at), r.size, content)


def _searchable(db: Database, *, ref: Any, source: Database) -> Iterator[tuple[Any, ...]]:
    """The source's side is every document it stores; the target's, those its index finds."""
    ds = db.store.get_datastore(ref)
    covered, stored = db.store.index_coverage(ds.id)
    yield ("searchable documents", stored if db is source else covered)


def _annotations(db: Database, *, namespace: str) -> Iterator[tuple[Any, ...]]:
    after: UUID | None = None
    while True:
        versions = db.store.annotation_history(namespace, after=after, limit=_PAGE)
        if not versions:
            break
        for r in versions:
            yield (
                str(r.id),
                r.version,
                r.latest,
                r.type_name,
                r.type_version,
                r.deleted,
                _plain(r.created_at),
                r.created_by,
                hashlib.sha256(r.body).hexdigest(),
            )
        after = versions[-1].id
    yield ("live", db.store.count_annotations(namespace))


def _request(r: Any) -> tuple[Any, ...]:
    return (
        str(r.id),
        str(r.datastore),
        r.mid,
        str(r.blob),
        r.state.value,
        None if r.document_id is None else str(r.document_id),
        r.idempotency_key,
        _plain(r.created_at),
    )


def _entry(e: Any) -> tuple[Any, ...]:
    return (
        _plain(e.at),
        e.principal,
        e.action,
        e.namespace,
        e.target,
        e.request_id,
        e.status,
    )
