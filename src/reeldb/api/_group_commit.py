"""Group commit: the writes of concurrent requests share one transaction.

Document writes and annotation writes are grouped apart (each kind with its own commit).

Each request validates its documents on the event loop (`Database.prepare_documents`) and
queues the validated write. One writer thread per process takes everything queued, commits
it in one transaction (`Database.commit_documents`: one ``fsync`` for all), and answers each
request with its own outcome. While the thread waits for the disk, the event loop goes on
parsing and validating the next requests, which then form the next group.

An answer is sent only after its write is committed: nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from dataclasses import dataclass
from typing import Any

from reeldb.annotations import Annotation
from reeldb.annotations._service import PreparedAnnotations
from reeldb.database import Database, PreparedWrite
from reeldb.errors import DatabaseClosedError
from reeldb.model.document import Document

__all__ = ["GroupCommitter"]

log = logging.getLogger(__name__)

MAX_GROUP_DOCUMENTS = 1024
MAX_GROUP_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class _Job:
    db: Database
    write: PreparedWrite | PreparedAnnotations
    count: int
    size: int
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupCommitter:
    """Commits queued writes in groups, from one thread.

    Args:
        max_documents: At most this many documents per transaction (a single write larger
            than that is committed alone).
        max_bytes: At most this many bytes of documents per transaction (likewise).
    """

    def __init__(
        self,
        *,
        max_documents: int = MAX_GROUP_DOCUMENTS,
        max_bytes: int = MAX_GROUP_BYTES,
    ) -> None:
        self._max_documents = max_documents
        self._max_bytes = max_bytes
        self._queue: list[_Job] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.groups = 0
        """How many transactions committed (a group counts once)."""

    async def commit(self, db: Database, write: PreparedWrite) -> list[Document]:
        """Commit a validated write with whatever else is queued for the same database.

        Args:
            db: The database the write was prepared by.
            write: From `Database.prepare_documents`.

        Returns:
            The stored documents.

        Raises:
            ReelError: The write was refused (its DataStore is gone, or its schema moved and
                the documents no longer match) or the transaction failed.
            DatabaseClosedError: The service is shutting down.
        """
        size = sum(len(new.body) for new, _ in write.pending)
        found: list[Document] = await self._submit(db, write, len(write.pending), size)
        return found

    async def commit_annotations(
        self, db: Database, write: PreparedAnnotations
    ) -> list[Annotation]:
        """Commit a prepared annotation write with others queued for the same database.

        Args:
            db: The database the write was prepared by.
            write: From ``db.annotations.prepare_create`` (or ``_update``, ``_delete``).

        Returns:
            The stored annotations.

        Raises:
            ReelError: The write was refused (a version moved on, an id is taken) or the
                transaction failed.
            DatabaseClosedError: The service is shutting down.
        """
        size = sum(len(w.body) for w in write.writes)
        found: list[Annotation] = await self._submit(db, write, len(write.writes), size)
        return found

    async def _submit(
        self, db: Database, write: PreparedWrite | PreparedAnnotations, count: int, size: int
    ) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._ready:
            if self._closed:
                raise DatabaseClosedError("the service is shutting down; retry elsewhere")
            self._queue.append(_Job(db, write, count, size, future, loop))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="reeldb-group-commit", daemon=True
                )
                self._thread.start()
            self._ready.notify()
        # If the client hangs up, the request is cancelled but the write stays in its
        # group: it is committed (and audited) like any other, and nobody is answered.
        return await future

    def close(self) -> None:
        """Commit what is queued, then stop the thread; later commits are refused."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _take(self) -> list[_Job] | None:
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            first = self._queue[0]
            jobs, rest = [first], []
            documents, size = first.count, first.size
            for job in self._queue[1:]:
                fits = (
                    job.db is first.db
                    and type(job.write) is type(first.write)
                    and documents + job.count <= self._max_documents
                    and size + job.size <= self._max_bytes
                )
                if fits:
                    jobs.append(job)
                    documents += job.count
                    size += job.size
                else:
                    rest.append(job)
            self._queue = rest
            return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            try:
                outcomes: list[Any] = _commit(jobs)
                self.groups += 1
            except Exception as exc:  # the whole transaction failed: every write in it did
                outcomes = [copy.copy(exc) for _ in jobs]
            for job, outcome in zip(jobs, outcomes, strict=True):
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, outcome)
                except RuntimeError:  # the loop is closed: nobody is waiting
                    log.warning("a committed write's request was gone before its answer")


def _commit(jobs: list[_Job]) -> list[Any]:
    """Commit one group (all of one kind): per job, what it stored or why not."""
    db = jobs[0].db
    if isinstance(jobs[0].write, PreparedAnnotations):
        return list(
            db.annotations.commit(
                [j.write for j in jobs if isinstance(j.write, PreparedAnnotations)]
            )
        )
    return list(db.commit_documents([j.write for j in jobs if isinstance(j.write, PreparedWrite)]))


def _settle(
    future: asyncio.Future[list[Document]], outcome: list[Document] | BaseException
) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
