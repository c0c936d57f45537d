"""Reprocessing jobs in SQL, the same on SQLite and PostgreSQL (`reeldb.store.base.JobStore`).

Both backends keep the three tables in the same portable form: ids and times as text (times
in one fixed-width UTC format, so that they compare as text), counts as integers. Each
backend runs the statements below in its own transactions (`JobsSQL` is given a function
that does so) and with its own placeholders.

A partition is held by one worker at a time under a lease, as asynchronous queries are: the
checkpoint is an ``UPDATE`` guarded by owner and state, so the work of a worker whose lease
was taken over (or whose job was paused) is refused, never counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar
from uuid import UUID

from reeldb.errors import NotFoundError
from reeldb.store.base import DeadLetter, JobRecord, JobStore, PartitionRecord, Progress

__all__ = ["DDL", "LIVE_DDL", "SQLJobStore", "parse_time", "time_text"]

T = TypeVar("T")

DDL: Final[tuple[str, ...]] = (
    """CREATE TABLE reprocess_jobs (
        id TEXT PRIMARY KEY,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        round INTEGER NOT NULL,
        snapshot TEXT NOT NULL,
        total BIGINT NOT NULL,
        error TEXT,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX reprocess_jobs_by_namespace ON reprocess_jobs (namespace, id)",
    "CREATE INDEX reprocess_jobs_by_state ON reprocess_jobs (state)",
    """CREATE TABLE reprocess_partitions (
        job_id TEXT NOT NULL REFERENCES reprocess_jobs (id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        round INTEGER NOT NULL,
        kind TEXT NOT NULL,
        lo TEXT NOT NULL,
        hi TEXT NOT NULL,
        state TEXT NOT NULL,
        cursor TEXT,
        done BIGINT NOT NULL DEFAULT 0,
        changed BIGINT NOT NULL DEFAULT 0,
        skipped BIGINT NOT NULL DEFAULT 0,
        failed BIGINT NOT NULL DEFAULT 0,
        owner TEXT,
        lease_until TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, number)
    )""",
    """CREATE TABLE reprocess_dead_letters (
        job_id TEXT NOT NULL REFERENCES reprocess_jobs (id) ON DELETE CASCADE,
        item TEXT NOT NULL,
        partition INTEGER NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        at TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (job_id, item)
    )""",
)
"""The tables, in the order to create them."""

_JOB: Final = (
    "id, namespace, name, spec, state, round, snapshot, total, error, created_by, created_at, "
    "updated_at"
)
_PARTITION: Final = (
    "job_id, number, round, kind, lo, hi, state, cursor, done, changed, skipped, failed, owner, "
    "lease_until, attempts"
)
_LETTER: Final = "job_id, item, partition, error, attempts, at, state"


LIVE_DDL: Final[tuple[str, ...]] = (
    # The live request latency each serving process publishes (`reeldb.reprocess.LIVE`), for
    # the adaptive limit of jobs running in other processes.
    """CREATE TABLE live_latency (
        source TEXT PRIMARY KEY,
        p99_us BIGINT NOT NULL,
        samples INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    )""",
)

_LIVE_KEPT: Final = timedelta(hours=1)
"""A source silent this long is forgotten (a service that stopped)."""


def time_text(at: datetime) -> str:
    """A time as fixed-width UTC text (``2026-12-07T14:03:05.000123Z``): sorts as it compares."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """The inverse of `time_text`."""
    return _time(text)


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _job(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        UUID(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        int(row[5]),
        row[6],
        int(row[7]),
        row[8],
        row[9],
        _time(row[10]),
        _time(row[11]),
    )


def _partition(row: Sequence[Any]) -> PartitionRecord:
    return PartitionRecord(
        UUID(row[0]),
        int(row[1]),
        int(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        int(row[8]),
        int(row[9]),
        int(row[10]),
        int(row[11]),
        row[12],
        None if row[13] is None else _time(row[13]),
        int(row[14]),
    )


def _letter(row: Sequence[Any]) -> DeadLetter:
    return DeadLetter(UUID(row[0]), row[1], int(row[2]), row[3], int(row[4]), _time(row[5]), row[6])


def _partition_values(p: PartitionRecord) -> tuple[Any, ...]:
    return (
        str(p.job_id),
        p.number,
        p.round,
        p.kind,
        p.lo,
        p.hi,
        p.state,
        p.cursor,
        p.done,
        p.changed,
        p.skipped,
        p.failed,
        p.owner,
        None if p.lease_until is None else time_text(p.lease_until),
        p.attempts,
    )


class SQLJobStore(JobStore):
    """`JobStore` in portable SQL: a backend provides its transactions and placeholder.

    Subclasses implement `_job_write` and `_job_read` (run a function in a write or read
    transaction and return what it returned) and set `_job_placeholder`.
    """

    _job_placeholder: str = "?"

    def _job_write(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _job_read(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        ph = self._job_placeholder
        return statement if ph == "?" else statement.replace("?", ph)

    def _run(self, conn: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(statement), tuple(params))

    def _many(self, conn: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:  # few rows: partitions and dead letters of one checkpoint
            self._run(conn, statement, row)

    def _get_job(self, conn: Any, job_id: UUID, *, lock: bool = False) -> JobRecord:
        # ``lock``: changes of one job take turns (SQLite: one writer; PostgreSQL: the row
        # lock), so two workers never both act on the state they read.
        suffix = " FOR UPDATE" if lock and self._job_placeholder != "?" else ""
        row = self._run(
            conn, f"SELECT {_JOB} FROM reprocess_jobs WHERE id = ?{suffix}", (str(job_id),)
        )
        found = row.fetchone()
        if found is None:
            raise NotFoundError(f"no reprocessing job {job_id}")
        return _job(found)

    def _insert_partitions(self, conn: Any, partitions: Sequence[PartitionRecord]) -> None:
        marks = ", ".join("?" * 15)
        self._many(
            conn,
            f"INSERT INTO reprocess_partitions ({_PARTITION}) VALUES ({marks})",
            [_partition_values(p) for p in partitions],
        )

    def add_job(self, job: JobRecord, partitions: Sequence[PartitionRecord]) -> None:
        """See `JobStore.add_job`."""

        def add(conn: Any) -> None:
            self._run(
                conn,
                f"INSERT INTO reprocess_jobs ({_JOB}) VALUES ({', '.join('?' * 12)})",
                (
                    str(job.id),
                    job.namespace,
                    job.name,
                    job.spec,
                    job.state,
                    job.round,
                    job.snapshot,
                    job.total,
                    job.error,
                    job.created_by,
                    time_text(job.created_at),
                    time_text(job.updated_at),
                ),
            )
            self._insert_partitions(conn, partitions)

        self._job_write(add)

    def get_job(self, job_id: UUID) -> JobRecord:
        """See `JobStore.get_job`."""
        found: JobRecord = self._job_read(lambda conn: self._get_job(conn, job_id))
        return found

    def list_jobs(
        self, namespace: str | None, *, before: UUID | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """See `JobStore.list_jobs`."""
        where, params = [], []
        if namespace is not None:
            where.append("namespace = ?")
            params.append(namespace)
        if before is not None:
            where.append("id < ?")
            params.append(str(before))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._job_read(
            lambda conn: self._run(
                conn,
                f"SELECT {_JOB} FROM reprocess_jobs {clause}ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        )
        return [_job(row) for row in rows]

    def set_job_state(
        self,
        job_id: UUID,
        state: str,
        at: datetime,
        *,
        expect: Sequence[str],
        error: str | None = None,
    ) -> JobRecord | None:
        """See `JobStore.set_job_state`."""

        def change(conn: Any) -> JobRecord | None:
            job = self._get_job(conn, job_id, lock=True)
            if job.state not in expect:
                return None
            self._run(
                conn,
                "UPDATE reprocess_jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                (state, error, time_text(at), str(job_id)),
            )
            if state != "running":  # running partitions are handed back
                self._run(
                    conn,
                    "UPDATE reprocess_partitions SET state = 'pending', owner = NULL, "
                    "lease_until = NULL WHERE job_id = ? AND state = 'running'",
                    (str(job_id),),
                )
            return self._get_job(conn, job_id)

        result: JobRecord | None = self._job_write(change)
        return result

    def job_partitions(self, job_id: UUID) -> list[PartitionRecord]:
        """See `JobStore.job_partitions`."""
        rows = self._job_read(
            lambda conn: self._run(
                conn,
                f"SELECT {_PARTITION} FROM reprocess_partitions WHERE job_id = ? ORDER BY number",
                (str(job_id),),
            ).fetchall()
        )
        return [_partition(row) for row in rows]

    def claim_partition(
        self, job_id: UUID, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> PartitionRecord | None:
        """See `JobStore.claim_partition`."""
        key, at = str(job_id), time_text(now)

        def claim(conn: Any) -> PartitionRecord | None:
            # Claims of one job take turns (SQLite: one writer; PostgreSQL: the row lock), so
            # the concurrency limit holds across workers.
            lock = "" if self._job_placeholder == "?" else " FOR UPDATE"
            row = self._run(
                conn, f"SELECT state FROM reprocess_jobs WHERE id = ?{lock}", (key,)
            ).fetchone()
            if row is None or row[0] != "running":
                return None
            held = self._run(
                conn,
                "SELECT count(*) FROM reprocess_partitions WHERE job_id = ? AND state = 'running' "
                "AND lease_until >= ?",
                (key, at),
            ).fetchone()[0]
            if held >= limit:
                return None
            found = self._run(
                conn,
                "SELECT number FROM reprocess_partitions WHERE job_id = ? AND (state = 'pending' "
                "OR (state = 'running' AND lease_until < ?)) ORDER BY number LIMIT 1",
                (key, at),
            ).fetchone()
            if found is None:
                return None
            self._run(
                conn,
                "UPDATE reprocess_partitions SET state = 'running', owner = ?, lease_until = ?, "
                "attempts = attempts + 1 WHERE job_id = ? AND number = ?",
                (owner, time_text(lease_until), key, found[0]),
            )
            return _partition(
                self._run(
                    conn,
                    f"SELECT {_PARTITION} FROM reprocess_partitions WHERE job_id = ? "
                    "AND number = ?",
                    (key, found[0]),
                ).fetchone()
            )

        result: PartitionRecord | None = self._job_write(claim)
        return result

    def checkpoint_partition(
        self,
        job_id: UUID,
        number: int,
        owner: str,
        *,
        cursor: str | None,
        progress: Progress,
        lease_until: datetime,
        dead: Sequence[DeadLetter] = (),
        resolved: Sequence[str] = (),
        finished: bool = False,
    ) -> bool:
        """See `JobStore.checkpoint_partition`."""

        def checkpoint(conn: Any) -> bool:
            held = self._run(
                conn,
                "UPDATE reprocess_partitions SET cursor = ?, done = done + ?, "
                "changed = changed + ?, skipped = skipped + ?, failed = failed + ?, "
                "lease_until = ?, state = ?, owner = ? WHERE job_id = ? AND number = ? "
                "AND owner = ? AND state = 'running'",
                (
                    cursor,
                    progress.done,
                    progress.changed,
                    progress.skipped,
                    progress.failed,
                    time_text(lease_until),
                    "done" if finished else "running",
                    None if finished else owner,
                    str(job_id),
                    number,
                    owner,
                ),
            )
            if held.rowcount != 1:
                return False
            # An item that failed again replaces its old letter; one that succeeded loses it.
            self._many(
                conn,
                "DELETE FROM reprocess_dead_letters WHERE job_id = ? AND item = ?",
                [(str(job_id), item) for item in (*resolved, *(d.item for d in dead))],
            )
            self._many(
                conn,
                f"INSERT INTO reprocess_dead_letters ({_LETTER}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        str(d.job_id),
                        d.item,
                        d.partition,
                        d.error,
                        d.attempts,
                        time_text(d.at),
                        d.state,
                    )
                    for d in dead
                ],
            )
            return True

        result: bool = self._job_write(checkpoint)
        return result

    def next_round(
        self,
        job_id: UUID,
        round: int,
        partitions: Sequence[PartitionRecord],
        snapshot: str,
        at: datetime,
    ) -> bool:
        """See `JobStore.next_round`."""
        key = str(job_id)

        def advance(conn: Any) -> bool:
            job = self._get_job(conn, job_id, lock=True)
            if job.state != "running" or job.round != round:
                return False
            open_ = self._run(
                conn,
                "SELECT count(*) FROM reprocess_partitions WHERE job_id = ? AND state <> 'done'",
                (key,),
            ).fetchone()[0]
            if open_:
                return False
            self._insert_partitions(conn, partitions)
            self._run(
                conn,
                "UPDATE reprocess_jobs SET round = ?, snapshot = ?, state = ?, updated_at = ? "
                "WHERE id = ?",
                (
                    round + 1 if partitions else round,
                    snapshot,
                    "running" if partitions else "done",
                    time_text(at),
                    key,
                ),
            )
            return True

        result: bool = self._job_write(advance)
        return result

    def dead_letters(
        self, job_id: UUID, *, after: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """See `JobStore.dead_letters`."""
        return self._letters(job_id, None, after, limit)

    def _letters(
        self, job_id: UUID, state: str | None, after: str | None, limit: int
    ) -> list[DeadLetter]:
        where = " AND state = ?" if state is not None else ""
        params: list[Any] = [str(job_id), *(() if state is None else (state,)), after or "", limit]
        rows = self._job_read(
            lambda conn: self._run(
                conn,
                f"SELECT {_LETTER} FROM reprocess_dead_letters WHERE job_id = ?{where} "
                "AND item > ? ORDER BY item LIMIT ?",
                params,
            ).fetchall()
        )
        return [_letter(row) for row in rows]

    def retry_dead_letters(self, job_id: UUID, partition: PartitionRecord, at: datetime) -> int:
        """See `JobStore.retry_dead_letters`."""
        key = str(job_id)

        def send_back(conn: Any) -> int:
            self._get_job(conn, job_id, lock=True)
            count = int(
                self._run(
                    conn,
                    "UPDATE reprocess_dead_letters SET state = 'retrying' WHERE job_id = ? "
                    "AND state = 'dead'",
                    (key,),
                ).rowcount
            )
            if count == 0:
                return 0
            self._insert_partitions(conn, [partition])
            self._run(
                conn,
                "UPDATE reprocess_jobs SET state = 'running', updated_at = ? WHERE id = ? "
                "AND state IN ('done', 'failed', 'running')",
                (time_text(at), key),
            )
            return count

        result: int = self._job_write(send_back)
        return result

    def retrying_letters(self, job_id: UUID, *, after: str | None, limit: int) -> list[DeadLetter]:
        """See `JobStore.retrying_letters`."""
        return self._letters(job_id, "retrying", after, limit)

    def publish_live_latency(self, source: str, p99: float, samples: int, at: datetime) -> None:
        """See `JobStore.publish_live_latency`."""

        def publish(conn: Any) -> None:
            self._run(
                conn,
                "INSERT INTO live_latency (source, p99_us, samples, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET p99_us = "
                "excluded.p99_us, samples = excluded.samples, updated_at = excluded.updated_at",
                (source, round(p99 * 1e6), samples, time_text(at)),
            )
            self._run(
                conn,
                "DELETE FROM live_latency WHERE updated_at < ?",
                (time_text(at - _LIVE_KEPT),),
            )

        self._job_write(publish)

    def live_latency(self, since: datetime) -> float | None:
        """See `JobStore.live_latency`."""
        row = self._job_read(
            lambda conn: self._run(
                conn,
                "SELECT max(p99_us) FROM live_latency WHERE updated_at >= ?",
                (time_text(since),),
            ).fetchone()
        )
        return None if row is None or row[0] is None else int(row[0]) / 1e6

    def runnable_jobs(self, now: datetime) -> list[UUID]:
        """See `JobStore.runnable_jobs`."""
        rows = self._job_read(
            lambda conn: self._run(
                conn,
                "SELECT j.id FROM reprocess_jobs j WHERE j.state = 'running' AND (EXISTS ("
                "SELECT 1 FROM reprocess_partitions p WHERE p.job_id = j.id AND (p.state = "
                "'pending' OR (p.state = 'running' AND p.lease_until < ?))) OR NOT EXISTS ("
                "SELECT 1 FROM reprocess_partitions p WHERE p.job_id = j.id AND p.state <> "
                "'done')) ORDER BY j.id",
                (time_text(now),),
            ).fetchall()
        )
        return [UUID(row[0]) for row in rows]
