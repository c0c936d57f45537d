"""Reprocessing jobs: submit, watch, pause, resume, cancel, retry, and run them.

A job's work is cut into partitions (`reeldb.reprocess._sources`). Any number of runners
(threads of one process, processes, machines sharing a PostgreSQL database) take
partitions under a lease, process them batch by batch and checkpoint after each batch, in
one transaction with the batch's dead letters. A runner killed mid-batch loses only that
batch's checkpoint: the next runner redoes the batch, whose writes are conditional on the
version read (or, for file sinks, replace the same file), so nothing is written twice.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from uuid_utils.compat import uuid7

from reeldb import _json
from reeldb._ids import parse_uuid
from reeldb.database import _data_dir
from reeldb.errors import ConflictError, PermissionDeniedError, ReelError, ValidationError
from reeldb.model.names import check_namespace
from reeldb.reprocess._limits import AdaptiveLimit, RateLimit, published_latency, quick_handoff
from reeldb.reprocess._processors import PERMANENT, Processor, job_principal, open_processor
from reeldb.reprocess._sources import Item, Source, open_source
from reeldb.reprocess._spec import JobSpec, load_spec
from reeldb.store.base import DeadLetter, JobRecord, PartitionRecord, Progress

if TYPE_CHECKING:
    from reeldb.database import Database

__all__ = ["Job", "JobProgress", "Reprocessing", "dead_letter_json", "job_from_json"]

log = logging.getLogger(__name__)

LEASE: Final = timedelta(seconds=30)
_JITTER: Final = random.Random()  # its own: runner threads leave the global `random` alone


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Counts over a job's partitions.

    Attributes:
        total: Items of the snapshot (catch-up rounds add theirs as they go).
        done: Items processed.
        changed: Items that produced output (or would, in a dry run).
        skipped: Items left alone (unchanged, filtered out, superseded, deleted).
        failed: Items sent to the dead-letter list.
        partitions: Partitions in all.
        partitions_done: Partitions finished.
        running: Partitions being processed now.
    """

    total: int
    done: int
    changed: int
    skipped: int
    failed: int
    partitions: int
    partitions_done: int
    running: int


@dataclass(frozen=True, slots=True)
class Job:
    """A reprocessing job and where it stands.

    Attributes:
        id: The job id.
        namespace: The namespace it works in.
        name: Its name.
        spec: Its definition.
        state: ``running``, ``paused``, ``cancelled``, ``done`` or ``failed``.
        round: 0 for the snapshot, then one per catch-up round.
        progress: Its counts.
        error: Why it failed.
        created_by: Who submitted it.
        created_at: When.
        updated_at: When its state last changed.
        partitions: Each partition (`reeldb.store.base.PartitionRecord`).
    """

    id: UUID
    namespace: str
    name: str
    spec: JobSpec
    state: str
    round: int
    progress: JobProgress
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    partitions: tuple[PartitionRecord, ...] = field(default=(), repr=False)

    @property
    def finished(self) -> bool:
        """Whether it stopped for good (done, failed or cancelled)."""
        return self.state in ("done", "failed", "cancelled")

    def to_json(self, *, partitions: bool = False) -> dict[str, Any]:
        """The job as JSON (what the HTTP API and the CLI show)."""
        p = self.progress
        out: dict[str, Any] = {
            "id": str(self.id),
            "namespace": self.namespace,
            "name": self.name,
            "state": self.state,
            "round": self.round,
            "dry_run": self.spec.dry_run,
            "processor": self.spec.processor.kind,
            "sink": self.spec.sink_kind,
            "progress": {
                "total": p.total,
                "done": p.done,
                "changed": p.changed,
                "skipped": p.skipped,
                "failed": p.failed,
                "partitions": p.partitions,
                "partitions_done": p.partitions_done,
                "running": p.running,
            },
            "error": self.error,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "spec": self.spec.to_json(),
        }
        if partitions:
            out["partitions"] = [
                {
                    "number": q.number,
                    "round": q.round,
                    "kind": q.kind,
                    "lo": q.lo,
                    "hi": q.hi,
                    "state": q.state,
                    "cursor": q.cursor,
                    "done": q.done,
                    "changed": q.changed,
                    "skipped": q.skipped,
                    "failed": q.failed,
                    "owner": q.owner,
                    "attempts": q.attempts,
                }
                for q in self.partitions
            ]
        return out


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON (what the HTTP API and the CLI show)."""
    return {
        "item": letter.item,
        "partition": letter.partition,
        "attempts": letter.attempts,
        "state": letter.state,
        "at": letter.at.isoformat(),
        "error": letter.error,
    }


def job_from_json(value: Mapping[str, Any]) -> Job:
    """A job from its JSON form (`Job.to_json`), as the HTTP API returns it.

    Args:
        value: The JSON object.

    Returns:
        The job (with its partitions when the JSON has them).
    """
    parts = tuple(
        PartitionRecord(
            UUID(value["id"]),
            p["number"],
            p["round"],
            p["kind"],
            p["lo"],
            p["hi"],
            p["state"],
            p["cursor"],
            p["done"],
            p["changed"],
            p["skipped"],
            p["failed"],
            p["owner"],
            None,
            p["attempts"],
        )
        for p in value.get("partitions") or ()
    )
    return Job(
        UUID(value["id"]),
        value["namespace"],
        value["name"],
        JobSpec.model_validate(value["spec"]),
        value["state"],
        value["round"],
        JobProgress(**value["progress"]),
        value["error"],
        value["created_by"],
        datetime.fromisoformat(value["created_at"]),
        datetime.fromisoformat(value["updated_at"]),
        parts,
    )


class _Lost(Exception):
    """The runner no longer holds its partition (taken over, paused, cancelled)."""


class Reprocessing:
    """The reprocessing jobs of a database (``db.reprocess``).

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- the jobs ---------------------------------------------------------------------------

    def submit(
        self,
        spec: JobSpec | Mapping[str, Any] | str | Path,
        *,
        by: str = "local",
        plugins_only: bool = False,
        **overrides: Any,
    ) -> Job:
        """Check a job, take its snapshot, cut it into partitions and store it, ``running``.

        Workers (``reeldb worker``, the service's embedded worker) pick it up; or run it
        here with `run`.

        Args:
            spec: The job (a `JobSpec`, a mapping, TOML/JSON text or a ``.toml`` path).
            by: Who submits it (the service passes the principal).
            plugins_only: The job comes from the HTTP API: only installed plug-ins may be
                named as functions, and files go only under ``<data dir>/exports``.
            **overrides: Top-level spec fields to set, such as ``dry_run=True``.

        Returns:
            The job.

        Raises:
            ValidationError: The spec is malformed.
            NotFoundError: Its DataStore or annotation type does not exist.
            QueryError: Its filter is malformed or does not fit the DataStore.
            ConfigError: Its function cannot be loaded.
            PermissionDeniedError: A ``module:attribute`` function with ``plugins_only``.
        """
        checked = load_spec(spec, **overrides)
        if plugins_only:
            checked = self._confined(checked)
        now = datetime.now(UTC)
        draft = JobRecord(
            uuid7(),
            checked.source.namespace,
            checked.name,
            _json.dumps(checked.to_json()).decode(),
            "running",
            0,
            "{}",
            0,
            None,
            by,
            now,
            now,
        )
        source = open_source(self._db, checked, job_principal(draft))
        processor = open_processor(self._db, checked, draft, source, plugins_only=plugins_only)
        if processor.whole:
            snapshot: dict[str, Any] = {}
            total = self._whole_total(checked)
            parts = [("whole", "", "")]
        else:
            snapshot, total, parts = source.plan()
        job = JobRecord(
            draft.id,
            draft.namespace,
            draft.name,
            draft.spec,
            "running",
            0,
            _json.dumps(snapshot).decode(),
            total,
            None,
            by,
            now,
            now,
        )
        self._db.store.add_job(
            job,
            [PartitionRecord(job.id, n, 0, kind, lo, hi) for n, (kind, lo, hi) in enumerate(parts)],
        )
        return self.get(job.id)

    def _confined(self, spec: JobSpec) -> JobSpec:
        """A job from the HTTP API may write files only under ``<data dir>/exports``.

        Its ``sink.path`` is relative to that directory and may not climb out of it; it may
        not name an Iceberg warehouse or catalog (the service's settings apply).

        Raises:
            PermissionDeniedError: It names a place the service does not let it write.
        """
        sink = spec.sink
        if sink.warehouse is not None or sink.catalog is not None:
            raise PermissionDeniedError(
                "jobs submitted over HTTP use the service's Iceberg warehouse and catalog; "
                "leave sink.warehouse and sink.catalog out"
            )
        if sink.path is None:
            return spec
        root = (_data_dir(self._db.settings.database, self._db.url) or Path()) / "exports"
        relative = Path(sink.path)
        if relative.is_absolute() or ".." in relative.parts:
            raise PermissionDeniedError(
                f"sink.path {sink.path!r}: over HTTP it is a relative path inside the "
                "service's exports directory"
            )
        confined = sink.model_copy(update={"path": str(root.resolve() / relative)})
        return spec.model_copy(update={"sink": confined})

    def _whole_total(self, spec: JobSpec) -> int:
        if spec.source.datastore is not None:
            return self._db.count_documents(spec.source.datastore)
        return self._db.annotations.count(spec.source.namespace)

    def get(self, job_id: UUID | str) -> Job:
        """A job with its progress.

        Raises:
            NotFoundError: No such job.
            ValidationError: Not a job id.
        """
        key = parse_uuid(job_id, "job id")
        return self._job(self._db.store.get_job(key))

    def _job(self, record: JobRecord) -> Job:
        parts = self._db.store.job_partitions(record.id)
        later = sum(p.done for p in parts if p.round > 0 and p.kind != "retry")
        now = datetime.now(UTC)
        progress = JobProgress(
            total=record.total + later,
            done=sum(p.done for p in parts),
            changed=sum(p.changed for p in parts),
            skipped=sum(p.skipped for p in parts),
            failed=sum(p.failed for p in parts),
            partitions=len(parts),
            partitions_done=sum(p.state == "done" for p in parts),
            running=sum(
                p.state == "running" and p.lease_until is not None and p.lease_until >= now
                for p in parts
            ),
        )
        return Job(
            record.id,
            record.namespace,
            record.name,
            JobSpec.model_validate(_json.loads(record.spec)),
            record.state,
            record.round,
            progress,
            record.error,
            record.created_by,
            record.created_at,
            record.updated_at,
            tuple(parts),
        )

    def list_jobs(
        self, namespace: str | None = None, *, before: UUID | str | None = None, limit: int = 100
    ) -> list[Job]:
        """Jobs, newest first.

        Args:
            namespace: Only this namespace's (None: all).
            before: The paging cursor: the last job id of the previous page.
            limit: At most this many (1 to 1000).

        Returns:
            The jobs.
        """
        if namespace is not None:
            check_namespace(namespace)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError("limit is a number from 1 to 1000")
        cursor = None if before is None else parse_uuid(before, "cursor")
        records = self._db.store.list_jobs(namespace, before=cursor, limit=limit)
        return [self._job(record) for record in records]

    def pause(self, job_id: UUID | str) -> Job:
        """Pause a running job: its runners stop at their next checkpoint.

        Raises:
            ConflictError: It is not running.
        """
        return self._move(job_id, "paused", ("running",))

    def resume(self, job_id: UUID | str) -> Job:
        """Resume a paused job where its partitions stopped.

        Raises:
            ConflictError: It is not paused.
        """
        return self._move(job_id, "running", ("paused",))

    def cancel(self, job_id: UUID | str) -> Job:
        """Cancel a job for good (what it wrote stays written).

        Raises:
            ConflictError: It already finished.
        """
        return self._move(job_id, "cancelled", ("running", "paused"))

    def _move(self, job_id: UUID | str, state: str, expect: Sequence[str]) -> Job:
        key = parse_uuid(job_id, "job id")
        moved = self._db.store.set_job_state(key, state, datetime.now(UTC), expect=expect)
        if moved is None:
            current = self._db.store.get_job(key)
            raise ConflictError(
                f"job {key} is {current.state}; only a job that is {' or '.join(expect)} "
                f"can be {state}"
            )
        return self._job(moved)

    def dead_letters(
        self, job_id: UUID | str, *, after: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """The items a job gave up on, by key (``after``: the paging cursor)."""
        key = parse_uuid(job_id, "job id")
        self._db.store.get_job(key)
        return self._db.store.dead_letters(key, after=after, limit=limit)

    def retry(self, job_id: UUID | str) -> int:
        """Send a job's dead letters back to be processed again (in a partition of their own).

        A finished job runs again for them; a paused one when resumed.

        Returns:
            How many were sent back.

        Raises:
            ConflictError: The job was cancelled.
        """
        key = parse_uuid(job_id, "job id")
        job = self._db.store.get_job(key)
        if job.state == "cancelled":
            raise ConflictError(f"job {key} was cancelled")
        parts = self._db.store.job_partitions(key)
        number = 1 + max((p.number for p in parts), default=-1)
        partition = PartitionRecord(key, number, job.round, "retry", "", "")
        return self._db.store.retry_dead_letters(key, partition, datetime.now(UTC))

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        job_id: UUID | str,
        *,
        worker: str | None = None,
        threads: int | None = None,
        progress: Callable[[Job], None] | None = None,
        stop: threading.Event | None = None,
        wait: bool = True,
        poll: float = 0.2,
    ) -> Job:
        """Process a job's partitions in this process until it finishes (or stops here).

        Several processes may run the same job: each takes the partitions no one holds.

        Args:
            job_id: The job.
            worker: This runner's name (default: host and process id).
            threads: Partitions processed at once here (default: the job's concurrency).
            progress: Called with the job after each batch.
            stop: Set it to stop at the next checkpoint (the job stays as it is).
            wait: Keep going while other runners hold the last partitions, to close the
                job's round (False: return when there is nothing left to take).
            poll: Seconds between looks while waiting.

        Returns:
            The job as it stands when this runner stops.
        """
        key = parse_uuid(job_id, "job id")
        record = self._db.store.get_job(key)
        spec = JobSpec.model_validate(_json.loads(record.spec))
        name = worker or f"{os.uname().nodename}-{os.getpid()}"
        count = max(1, threads or spec.limits.concurrency)
        runner = _Runner(
            self, record, spec, stop or threading.Event(), progress, wait, poll, threads=count
        )
        with quick_handoff():  # live requests in this process wait less for the GIL
            if count == 1:
                runner.loop(f"{name}:0")
            else:
                pool = [
                    threading.Thread(target=runner.loop, args=(f"{name}:{n}",), daemon=True)
                    for n in range(count)
                ]
                for thread in pool:
                    thread.start()
                for thread in pool:
                    thread.join()
        if runner.error is not None:
            raise runner.error
        return self.get(key)


class _Runner:
    """The partition loop of one job in one process (threads share it)."""

    def __init__(
        self,
        service: Reprocessing,
        record: JobRecord,
        spec: JobSpec,
        stop: threading.Event,
        progress: Callable[[Job], None] | None,
        wait: bool,
        poll: float,
        *,
        threads: int = 1,
    ) -> None:
        self.service = service
        self.db = service._db
        self.store = self.db.store
        self.record = record
        self.spec = spec
        self.stop = stop
        self.progress = progress
        self.wait = wait
        self.poll = poll
        self.error: ReelError | None = None
        self.source: Source = open_source(self.db, spec, job_principal(record))
        self.processor: Processor = open_processor(self.db, spec, record, self.source)
        limits = spec.limits
        # The job's rate is shared by its partitions running at once: this runner's threads
        # (one bucket) hold at most `threads` of the job's `concurrency` partitions.
        share = min(threads, limits.concurrency) / limits.concurrency
        self.rate = RateLimit(limits.rate * share if limits.rate else 0.0, sleep=self.stop.wait)
        budget = None if limits.latency_budget_ms is None else limits.latency_budget_ms / 1000
        self.adaptive = AdaptiveLimit(
            budget,
            published=published_latency(self.store),
            probe=self._probe,
            sleep=self.stop.wait,
        )
        self._report_lock = threading.Lock()

    def _probe(self) -> float:
        started = time.perf_counter()
        self.store.get_job(self.record.id)
        return time.perf_counter() - started

    def loop(self, owner: str) -> None:
        try:
            while not self.stop.is_set():
                job = self.store.get_job(self.record.id)
                if job.state != "running":
                    return
                now = datetime.now(UTC)
                partition = self.store.claim_partition(
                    job.id, owner, now, now + LEASE, self.spec.limits.concurrency
                )
                if partition is None:
                    if self._close_round(job):
                        continue
                    if not self.wait:
                        return
                    self.stop.wait(self.poll)
                    continue
                self._partition(job, partition, owner)
        except ReelError as exc:
            log.warning("reprocessing job %s stopped: %s", self.record.id, exc)
            self.error = exc

    def _close_round(self, job: JobRecord) -> bool:
        """Start the next round (or finish the job) if every partition is done."""
        parts = self.store.job_partitions(job.id)
        if any(p.state != "done" for p in parts):
            return False
        seen = sum(p.done for p in parts if p.round == job.round and p.kind != "retry")
        snapshot = _json.loads(job.snapshot)
        new: list[tuple[str, str, str]] = []
        if (
            self.spec.source.catch_up
            and not self.processor.whole
            and job.round < self.spec.source.catch_up_rounds
        ):
            snapshot, new = self.source.next_round(snapshot, seen)
        number = 1 + max((p.number for p in parts), default=-1)
        records = [
            PartitionRecord(job.id, number + n, job.round + 1, kind, lo, hi)
            for n, (kind, lo, hi) in enumerate(new)
        ]
        self.store.next_round(
            job.id, job.round, records, _json.dumps(snapshot).decode(), datetime.now(UTC)
        )
        return True

    def _partition(self, job: JobRecord, partition: PartitionRecord, owner: str) -> None:
        try:
            if self.processor.whole:
                self._whole(job, partition, owner)
            else:
                self._batches(job, partition, owner)
        except _Lost:
            return
        except Exception as exc:
            self._failed(job, partition, owner, exc)

    def _failed(
        self, job: JobRecord, partition: PartitionRecord, owner: str, exc: Exception
    ) -> None:
        """A partition's work broke (not one item): retry it later, or fail the job."""
        if isinstance(exc, PERMANENT) or partition.attempts >= self.spec.limits.max_attempts:
            log.error("reprocessing job %s failed: %s", job.id, exc)
            self.store.set_job_state(
                job.id,
                "failed",
                datetime.now(UTC),
                expect=("running",),
                error=f"partition {partition.number}: {type(exc).__name__}: {exc}",
            )
            return
        log.warning("reprocessing job %s, partition %d: %s", job.id, partition.number, exc)
        # Hand the partition back at once (its lease ends now); another try comes later.
        self.store.checkpoint_partition(
            job.id,
            partition.number,
            owner,
            cursor=self._cursor(partition),
            progress=Progress(),
            lease_until=datetime.now(UTC) - timedelta(seconds=1),
        )
        self.stop.wait(self._backoff(partition.attempts))

    def _cursor(self, partition: PartitionRecord) -> str | None:
        for current in self.store.job_partitions(partition.job_id):
            if current.number == partition.number:
                return current.cursor
        return partition.cursor

    def _backoff(self, attempt: int) -> float:
        jitter = _JITTER.uniform(0.5, 1.5)
        return float(self.spec.limits.backoff * 2 ** max(0, attempt - 1) * jitter)

    def _whole(self, job: JobRecord, partition: PartitionRecord, owner: str) -> None:
        def renew(done: int, total: int) -> None:
            if self.stop.is_set() or not self._checkpoint(
                job, partition, owner, partition.cursor, Progress(), ()
            ):
                raise _Lost
            self._report(job)

        done, changed = self.processor.run_whole(renew)
        progress = Progress(done=done, changed=changed, skipped=max(0, done - changed))
        self._checkpoint(job, partition, owner, "whole", progress, (), finished=True)
        self._report(job)

    def _batches(self, job: JobRecord, partition: PartitionRecord, owner: str) -> None:
        limits = self.spec.limits
        cursor = partition.cursor
        settles = self.processor.settles()
        while True:
            if self.stop.is_set():
                # Hand the partition back: the next runner starts at the checkpoint.
                self._checkpoint(
                    job, partition, owner, cursor, Progress(), (), lease=timedelta(seconds=-1)
                )
                return
            page = self.source.page(job, partition, cursor, limits.batch, settles)
            items, after = page.items, page.after
            self.rate.acquire(len(items) + page.settled)
            started = time.perf_counter()
            progress, dead, resolved = self._process(job, partition, items)
            self.adaptive.after_batch(time.perf_counter() - started)
            if page.settled:
                progress = dataclasses.replace(
                    progress,
                    done=progress.done + page.settled,
                    skipped=progress.skipped + page.settled,
                )
            finished = after is None
            cursor = after if after is not None else (items[-1].key if items else cursor)
            if not self._checkpoint(
                job,
                partition,
                owner,
                cursor,
                progress,
                dead,
                resolved=resolved,
                finished=finished,
            ):
                raise _Lost
            self._report(job)
            if finished:
                return

    def _process(
        self, job: JobRecord, partition: PartitionRecord, items: list[Item]
    ) -> tuple[Progress, list[DeadLetter], list[str]]:
        """Process a batch, retrying failed items with back-off; the rest are dead letters."""
        limits = self.spec.limits
        changed = skipped = 0
        dead: list[DeadLetter] = []
        resolved: list[str] = []
        pending, attempt = items, 1
        while pending:
            outcomes = self.processor.process(pending, partition.number)
            retry: list[Item] = []
            for item in pending:
                outcome = outcomes.get(item.key, "skipped")
                if isinstance(outcome, BaseException):
                    if isinstance(outcome, PERMANENT) or attempt >= limits.max_attempts:
                        dead.append(
                            DeadLetter(
                                job.id,
                                item.key,
                                partition.number,
                                f"{type(outcome).__name__}: {outcome}",
                                attempt,
                                datetime.now(UTC),
                            )
                        )
                    else:
                        retry.append(item)
                    continue
                if outcome == "changed":
                    changed += 1
                else:
                    skipped += 1
                if partition.kind == "retry":
                    resolved.append(item.key)
            if not retry:
                break
            self.stop.wait(self._backoff(attempt))
            attempt += 1
            fresh = {i.key: i for i in self.source.refresh(job, retry)}
            gone = [i for i in retry if i.key not in fresh]
            skipped += len(gone)
            resolved += [i.key for i in gone if partition.kind == "retry"]
            pending = [fresh[i.key] for i in retry if i.key in fresh]
        if partition.kind == "retry":
            # A letter that failed again is replaced; the rest of the batch is resolved.
            resolved = [key for key in resolved if key not in {d.item for d in dead}]
        progress = Progress(len(items), changed, skipped, len(dead))
        return progress, dead, resolved

    def _checkpoint(
        self,
        job: JobRecord,
        partition: PartitionRecord,
        owner: str,
        cursor: str | None,
        progress: Progress,
        dead: Sequence[DeadLetter],
        *,
        resolved: Sequence[str] = (),
        finished: bool = False,
        lease: timedelta | None = None,
    ) -> bool:
        return self.store.checkpoint_partition(
            job.id,
            partition.number,
            owner,
            cursor=cursor,
            progress=progress,
            lease_until=datetime.now(UTC) + (LEASE if lease is None else lease),
            dead=dead,
            resolved=resolved,
            finished=finished,
        )

    def _report(self, job: JobRecord) -> None:
        if self.progress is None:
            return
        with self._report_lock:
            self.progress(self.service.get(job.id))
