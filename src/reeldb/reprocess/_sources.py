"""What a job reads: its snapshot, partitions and items, for documents and for annotations.

* **Documents** of a DataStore are cut by sequence number. The snapshot is the highest
  ``seq`` when the job starts; a partition ``(lo, hi]`` yields, for each MID, the document
  that was its latest at the end of the partition's round (older versions are skipped). A
  catch-up round is one more range, from the previous snapshot to the new one.
* **Annotations** of a namespace (optionally of one type) are cut by id. The snapshot is a
  time: an item is the annotation's last version created at or before it (annotations
  created later are left to catch-up). A catch-up partition (kind ``changes``) walks every
  id and takes annotations with a version created in ``(lo, hi]`` by someone other than
  the job itself.
* A ``retry`` partition yields the job's dead letters that were sent back.

Item keys are the checkpoint cursors: a zero-padded ``seq`` or a UUID's text form, which
both sort as their values do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, Final
from uuid import UUID

from reeldb import _json
from reeldb.annotations.model import parse_type
from reeldb.database import Database
from reeldb.errors import NotFoundError
from reeldb.model.datastore import DataStore
from reeldb.query import parse_query
from reeldb.query.ast import Expr
from reeldb.query.oracle import document_matches
from reeldb.reprocess._spec import JobSpec
from reeldb.store._jobs import parse_time, time_text
from reeldb.store.base import (
    AnnotationRecord,
    DeriveSearchRows,
    DocumentRecord,
    JobRecord,
    PartitionRecord,
    SearchRows,
)

__all__ = ["Item", "Page", "Source", "open_source"]

_ID_PAGE: Final = 10_000
_SEQ_WIDTH: Final = 20


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to process.

    Attributes:
        key: Its cursor key.
        record: The version the job processes (as of its round's snapshot).
        current: Annotations: the current version (what a new version must follow).
        skip: Why it is left alone (already covered, filtered out), or None.
    """

    key: str
    record: AnnotationRecord | DocumentRecord
    current: AnnotationRecord | None = None
    skip: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """The next items of a partition (`Source.page`).

    Attributes:
        items: Items to process.
        after: Where the next page starts (None: the partition is exhausted).
        settled: Items left out as already what the job would make them: processed, and
            changing nothing.
    """

    items: list[Item]
    after: str | None
    settled: int = 0


def _instant(text: str) -> datetime:
    """A time stored as `time_text` (fixed-width UTC text), to compare versions' times with."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def seq_key(seq: int) -> str:
    """A document's cursor key."""
    return str(seq).zfill(_SEQ_WIDTH)


class Source:
    """The items of one job's source (see the module docstring)."""

    kind: str = ""

    def __init__(self, db: Database, spec: JobSpec, job_principal: str) -> None:
        self.db = db
        self.spec = spec
        self.principal = job_principal

    def plan(self) -> tuple[dict[str, Any], int, list[tuple[str, str, str]]]:
        """The snapshot, the item count and the first round's partitions ``(kind, lo, hi)``."""
        raise NotImplementedError

    def next_round(
        self, snapshot: dict[str, Any], seen: int
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """The catch-up round after a round that processed ``seen`` items (none: done)."""
        raise NotImplementedError

    def items(
        self, job: JobRecord, partition: PartitionRecord, cursor: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """The next items of a partition after ``cursor``, and the cursor after them.

        Returns:
            Up to ``limit`` items, and where the next call starts (None: the partition is
            exhausted). Items left out of the job (created after the snapshot) move the
            cursor without being returned.
        """
        raise NotImplementedError

    def page(
        self,
        job: JobRecord,
        partition: PartitionRecord,
        cursor: str | None,
        limit: int,
        derive: DeriveSearchRows | None,
    ) -> Page:
        """`items`, less those whose search rows ``derive`` finds already right (a reindex).

        A source that can check many items at once does (annotations, through
        `AnnotationStore.unindexed_annotations`); by default every item is returned.
        """
        items, after = self.items(job, partition, cursor, limit)
        return Page(items, after)

    def _retry(
        self, job: JobRecord, cursor: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """The dead letters sent back, as items (kept as they are while retried)."""
        letters = self.db.store.retrying_letters(job.id, after=cursor, limit=limit)
        keys = [letter.item for letter in letters]
        items = self.fetch(job, keys)
        return items, (keys[-1] if len(keys) >= limit else None)

    def refresh(self, job: JobRecord, items: Sequence[Item]) -> list[Item]:
        """The same items read again (after a conflict with a live write)."""
        raise NotImplementedError

    def fetch(self, job: JobRecord, keys: Sequence[str]) -> list[Item]:
        """Items by key (dead letters retried); missing ones are left out."""
        raise NotImplementedError


class DocumentSource(Source):
    """The documents of one DataStore."""

    kind = "documents"

    def __init__(self, db: Database, spec: JobSpec, job_principal: str) -> None:
        super().__init__(db, spec, job_principal)
        assert spec.source.datastore is not None
        self.datastore: DataStore = db.get_datastore(spec.source.datastore)
        self._filter: Expr | None = (
            None if spec.source.filter is None else parse_query(spec.source.filter)
        )
        if self._filter is not None:  # checked against the schema now: a clear error
            db.query_datastore(self.datastore.ref, spec.source.filter or "", limit=1)

    def plan(self) -> tuple[dict[str, Any], int, list[tuple[str, str, str]]]:
        """See `Source.plan`."""
        store = self.db.store
        top = store.max_seq(self.datastore.id)
        total = store.count_documents(self.datastore.id)
        count = max(1, min(self.spec.limits.partitions, top))
        cuts = [top * i // count for i in range(count + 1)]
        parts = [("range", str(lo), str(hi)) for lo, hi in zip(cuts, cuts[1:], strict=False)]
        return {"seq": top}, total, [p for p in parts if p[1] != p[2]] or [("range", "0", "0")]

    def next_round(
        self, snapshot: dict[str, Any], seen: int
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """See `Source.next_round`."""
        top = self.db.store.max_seq(self.datastore.id)
        if top <= snapshot["seq"]:
            return snapshot, []
        return {"seq": top}, [("range", str(snapshot["seq"]), str(top))]

    def items(
        self, job: JobRecord, partition: PartitionRecord, cursor: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """See `Source.items`."""
        if partition.kind == "retry":
            return self._retry(job, cursor, limit)
        after = int(cursor) if cursor is not None else int(partition.lo)
        upto = int(partition.hi)
        records = []
        for record in self.db.store.iter_documents(
            self.datastore.id, after_seq=after, upto_seq=upto
        ):
            records.append(record)
            if len(records) >= limit:
                break
        # A MID is processed once per round: at its latest document of the round.
        newest = int(_json.loads(job.snapshot)["seq"])
        items = [self._item(record, max(newest, upto)) for record in records]
        return items, (items[-1].key if len(items) >= limit else None)

    def _item(self, record: DocumentRecord, upto: int) -> Item:
        newest = self.db.store.list_documents(
            self.datastore.id, record.mid_key, limit=1, before_seq=upto + 1
        )
        key = seq_key(record.seq)
        if newest and newest[0].seq != record.seq:
            return Item(key, record, skip="superseded")
        if self._filter is not None and not self._matches(record):
            return Item(key, record, skip="filtered")
        return Item(key, record)

    def _matches(self, record: DocumentRecord) -> bool:
        if record.blob is not None:  # streamed: read whole only if it is processed
            return True
        assert self._filter is not None
        return document_matches(self._filter, _json.loads(record.body))

    def refresh(self, job: JobRecord, items: Sequence[Item]) -> list[Item]:
        """See `Source.refresh` (a document's version never changes: the same items)."""
        return list(items)

    def fetch(self, job: JobRecord, keys: Sequence[str]) -> list[Item]:
        """See `Source.fetch`."""
        snapshot = _json.loads(job.snapshot)["seq"]
        found = []
        for key in keys:
            seq = int(key)
            for record in self.db.store.iter_documents(
                self.datastore.id, after_seq=seq - 1, upto_seq=seq
            ):
                found.append(self._item(record, max(snapshot, seq)))
        return found


class AnnotationSource(Source):
    """The annotations of a namespace, or of one type."""

    kind = "annotations"

    def __init__(self, db: Database, spec: JobSpec, job_principal: str) -> None:
        super().__init__(db, spec, job_principal)
        self.namespace = spec.source.namespace
        self._type: tuple[str, int | None] | None = None
        self._matches: Callable[[AnnotationRecord], bool] | None = None
        if spec.source.annotation_type is not None:
            self._type = parse_type(spec.source.annotation_type)
            db.schemas.get(self.namespace, self._type[0], self._type[1])  # exists?
            if spec.source.filter is not None:  # checked against the type now: a clear error
                self._matches = db.annotations.matcher(
                    self.namespace, spec.source.annotation_type, spec.source.filter
                )

    def plan(self) -> tuple[dict[str, Any], int, list[tuple[str, str, str]]]:
        """See `Source.plan`."""
        at = datetime.now().astimezone()
        ids = list(self._all_ids())
        count = max(1, min(self.spec.limits.partitions, len(ids)))
        bounds = [""] + [str(ids[len(ids) * i // count]) for i in range(1, count)] + [""]
        parts = [("range", lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]
        return {"at": time_text(at)}, len(ids), parts

    def _all_ids(self) -> Iterator[UUID]:
        after: UUID | None = None
        while True:
            page = self.db.store.annotation_ids(self.namespace, after=after, limit=_ID_PAGE)
            yield from page
            if len(page) < _ID_PAGE:
                return
            after = page[-1]

    def next_round(
        self, snapshot: dict[str, Any], seen: int
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """See `Source.next_round`.

        Versions are stamped when a write is prepared, not when it commits: each window
        reaches ``catch_up_grace`` back into the one before (an item met twice is left
        unchanged by an idempotent job). A round that finds nothing is followed by one
        *settling* round, started once the writes stamped before its end have had the
        grace to commit; when that one finds nothing too, the job is caught up.
        """
        grace = timedelta(seconds=self.spec.source.catch_up_grace)
        end = parse_time(snapshot["at"])
        settling = snapshot.get("round_kind") == "changes" and seen == 0
        if settling:
            if snapshot.get("settled"):
                return snapshot, []  # nothing new, even late commits: caught up
            wait = (end + grace - datetime.now(UTC)).total_seconds()
            if wait > 0:
                time.sleep(wait)
        at = time_text(datetime.now(UTC))
        window = ("changes", time_text(end - grace), at)
        return {"at": at, "round_kind": "changes", "settled": settling}, [window]

    def items(
        self, job: JobRecord, partition: PartitionRecord, cursor: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """See `Source.items`."""
        if partition.kind == "retry":
            return self._retry(job, cursor, limit)
        changes = partition.kind == "changes"
        after, hi, upto = self._bounds(job, partition, cursor)
        found: list[Item] = []
        while len(found) < limit:
            if changes:  # who wrote each version since the last round: the whole history
                versions = self.db.store.annotation_history(
                    self.namespace, after=after, limit=limit
                )
                since = _instant(partition.lo)
                pairs = [
                    (group[-1], self._since(group, upto, since))
                    for group in (list(g) for _, g in groupby(versions, key=lambda v: v.id))
                ]
            else:  # the current version, and the one of the snapshot
                pairs = self.db.store.annotation_heads(
                    self.namespace, after=after, limit=limit, at=upto
                )
            if not pairs:
                return found, None
            for current, record in pairs:
                if hi is not None and current.id >= hi:
                    return found, None
                if record is not None:  # else not in this round
                    found.append(self._item(record, current))
                after = current.id
        return found, None if after is None else str(after)

    def _bounds(
        self, job: JobRecord, partition: PartitionRecord, cursor: str | None
    ) -> tuple[UUID | None, UUID | None, datetime]:
        """A partition's cursor (ids after it), its end (ids before it) and its instant."""
        changes = partition.kind == "changes"
        lo = None if changes or not partition.lo else UUID(partition.lo)
        hi = None if changes or not partition.hi else UUID(partition.hi)
        if cursor is not None:
            after: UUID | None = UUID(cursor)
        elif lo is not None and lo.int:
            after = UUID(int=lo.int - 1)
        else:
            after = None
        return after, hi, _instant(partition.hi if changes else _json.loads(job.snapshot)["at"])

    def page(
        self,
        job: JobRecord,
        partition: PartitionRecord,
        cursor: str | None,
        limit: int,
        derive: DeriveSearchRows | None,
    ) -> Page:
        """See `Source.page`.

        A snapshot round's annotations are checked in bulk by the store
        (`AnnotationStore.unindexed_annotations`); those of another type are returned, to
        be counted as filtered out.
        """
        if derive is None or partition.kind != "range" or self._matches is not None:
            return super().page(job, partition, cursor, limit, derive)
        after, hi, upto = self._bounds(job, partition, cursor)
        wanted = derive
        if self._type is not None:
            name, version = self._type

            def wanted(type_name: str, type_version: int, body: bytes) -> SearchRows | None:
                if type_name != name or (version is not None and type_version != version):
                    return None  # returned, to be counted as filtered out
                return derive(type_name, type_version, body)

        found: list[Item] = []
        settled = 0
        while len(found) + settled < limit:
            page = self.db.store.unindexed_annotations(
                self.namespace, after=after, before=hi, limit=limit, at=upto, derive=wanted
            )
            if page.last is None:
                return Page(found, None, settled)
            settled += page.indexed
            found += [self._item(then, now) for now, then in page.pairs if then is not None]
            after = page.last
        return Page(found, None if after is None else str(after), settled)

    def _since(
        self, versions: list[AnnotationRecord], upto: datetime, since: datetime
    ) -> AnnotationRecord | None:
        """A catch-up round's version of an annotation, or None if it is not in the round.

        Of its versions (oldest first), the last one up to ``upto``, if a version in
        ``(since, upto]`` was written by someone other than the job.
        """
        seen = [v for v in versions if v.created_at <= upto]
        if not any(v.created_at > since and v.created_by != self.principal for v in seen):
            return None
        return seen[-1]

    def _item(self, record: AnnotationRecord, current: AnnotationRecord) -> Item:
        """The item of an annotation: its version in the round, and its current one."""
        key = str(record.id)
        if record.deleted:
            return Item(key, record, current, skip="deleted")
        if self._type is not None and (
            record.type_name != self._type[0]
            or (self._type[1] is not None and record.type_version != self._type[1])
        ):
            return Item(key, record, current, skip="filtered")
        if self._matches is not None and not self._matches(record):
            return Item(key, record, current, skip="filtered")
        return Item(key, record, current)

    def refresh(self, job: JobRecord, items: Sequence[Item]) -> list[Item]:
        """See `Source.refresh`."""
        return self.fetch(job, [item.key for item in items])

    def fetch(self, job: JobRecord, keys: Sequence[str]) -> list[Item]:
        """See `Source.fetch` (the current version: what a retry must build on)."""
        found = []
        for key in keys:
            try:
                versions = self.db.store.annotation_versions(self.namespace, UUID(key))
            except NotFoundError:
                continue
            if versions:
                found.append(self._item(versions[-1], versions[-1]))
        return found


def open_source(db: Database, spec: JobSpec, job_principal: str) -> Source:
    """The source of a job spec.

    Raises:
        NotFoundError: Its DataStore or annotation type does not exist.
        QueryError: Its filter is malformed or does not fit the DataStore.
    """
    if spec.source.kind == "documents":
        return DocumentSource(db, spec, job_principal)
    return AnnotationSource(db, spec, job_principal)
