"""SQLite connections: one writer at a time with ``BEGIN IMMEDIATE``, readers on their own.

File databases run in WAL mode: each thread reads on its own connection and never blocks the
writer; writes from every thread go through one connection under a lock. Writers in other
processes (service workers) queue on advisory locks of the file ``<database>-lock`` before
they begin (`WriterQueue`). ``memory:`` databases live in one connection shared under a lock.
Driver errors become reeldb errors here.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from reeldb.errors import (
    BackendUnavailableError,
    DatabaseClosedError,
    QueryTimeoutError,
    ReelError,
)
from reeldb.store.sqlite._queue import WriterQueue


def utc_text(value: datetime) -> str:
    """A time as fixed-width UTC text: such texts sort as the times do (SQL compares them)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


__all__ = ["SQLiteConnections"]

T = TypeVar("T")

_SYNCHRONOUS = ("off", "normal", "full", "extra")
_AUTOCHECKPOINT = 1000  # pages: SQLite's default threshold of the automatic checkpoint
_WAL_LIMIT = 1024 * 1024 * 1024
"""A WAL this large after a bulk commit is checkpointed by the writer itself (bulk commits
follow each other faster than the background checkpointer copies them)."""
_COALESCE = 0.5  # seconds the checkpointer lets commits gather (fewer syncs of the file)
_log = logging.getLogger(__name__)


class _Checkpointer:
    """Copies committed pages from the WAL into the database file, on its own thread.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold (1000
    pages), so the writer pays for copying and syncing the database file. That is right for
    small commits: the checkpoint is small, and done while no other write can append, the
    WAL starts over afterwards and stays small. A bulk commit (a large document) leaves
    hundreds of MB: its commit skips the automatic checkpoint and signals this thread, which
    copies them beside the writer's next work (SQLite releases the GIL while it works). A
    passive checkpoint never blocks writers or readers.

    Args:
        path: The database file.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reeldb-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Ask for a checkpoint (after a commit)."""
        self._due.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._due.wait()
            if not self._stopping.is_set():
                time.sleep(_COALESCE)
            self._due.clear()
            if self._stopping.is_set():  # close() sets it before it wakes us
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the next commit asks again
                _log.debug("background checkpoint failed: %s", exc)

    def close(self) -> None:
        """Stop the thread (its pending checkpoint is left to the last connection's close)."""
        self._stopping.set()
        self._due.set()
        self._thread.join()
        self._conn.close()


class SQLiteConnections:
    """Connection management for one SQLite database.

    Args:
        path: The database file, or None for a private in-memory database.
        synchronous: SQLite ``synchronous`` pragma: ``full`` (default) fsyncs every commit
            so an acknowledged write survives power loss; ``normal`` survives process crashes.
        busy_timeout: Seconds a write waits for another process's lock.
        read_timeout: Seconds a read may run before it is interrupted (None: no limit).
    """

    def __init__(
        self,
        path: Path | None,
        *,
        synchronous: str = "full",
        busy_timeout: float = 30.0,
        read_timeout: float | None = None,
    ) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        self.path = path
        self._synchronous = synchronous
        self._busy_ms = int(busy_timeout * 1000)
        self.read_timeout = read_timeout
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._queue: WriterQueue | None = None
        self._checkpointer: _Checkpointer | None = None
        self._generation = 0
        if path is not None:
            self._writer.execute("PRAGMA journal_mode=WAL")
            # Bulk commits leave their checkpoint to a thread of its own (`_Checkpointer`);
            # the WAL is cut back to 64 MiB when it restarts after one.
            self._writer.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
            self._queue = WriterQueue(path, busy_timeout)
            self._checkpointer = _Checkpointer(path)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path) if self.path is not None else ":memory:",
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_ms / 1000,
            )
        except sqlite3.Error as exc:
            raise BackendUnavailableError(
                f"cannot open SQLite database {self.path}: {exc}"
            ) from exc
        conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        # 64 MiB of page cache per connection (SQLite's default is 2 MiB): the index's
        # B-trees outgrow 2 MiB quickly, and every insert then reads pages back.
        conn.execute("PRAGMA cache_size=-65536")
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError("the reeldb database is closed")

    def access_generation(self) -> int | None:
        """A number that changes after every commit that may change access (keys, roles).

        Returns:
            The number, shared by every process using the file (see `WriterQueue`).
        """
        if self._queue is not None:
            return self._queue.generation()
        return self._generation if self.path is None else None

    @contextmanager
    def write(
        self, *, changes_access: bool = True, bulk: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed on success, else rolled back.

        Args:
            changes_access: Whether the transaction may change keys, roles or system
                administrators: if so, the access generation moves on after the commit (so
                by default; only writes known to touch none of them say False).
            bulk: A large transaction: its checkpoint runs on a background thread instead of
                inside its commit (`_Checkpointer`).

        Yields:
            The writer connection.

        Raises:
            DatabaseClosedError: The database was closed.
            BackendUnavailableError: Another process held the lock past ``busy_timeout``.
        """
        with self._write_lock:
            self._check_open()
            conn = self._writer
            if self._queue is not None:
                self._queue.enter()
            try:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise BackendUnavailableError(f"database is busy: {exc}") from exc
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                background = bulk and self._checkpointer is not None
                if background:
                    conn.execute("PRAGMA wal_autocheckpoint=0")
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise BackendUnavailableError(f"commit failed: {exc}") from exc
                else:
                    if background:
                        self._after_bulk_commit(conn)
                finally:
                    if background:
                        conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")
                    # After the commit: a reader that saw the old generation re-reads.
                    if changes_access:
                        self._generation += 1
                        if self._queue is not None:
                            self._queue.bump()
            finally:
                if self._queue is not None:
                    self._queue.leave()

    def _after_bulk_commit(self, conn: sqlite3.Connection) -> None:
        assert self._checkpointer is not None
        self._checkpointer.poke()
        assert self.path is not None
        try:
            oversized = self.path.with_name(f"{self.path.name}-wal").stat().st_size > _WAL_LIMIT
        except OSError:
            return
        if oversized:  # back-pressure: the writer catches up itself
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def with_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection under the write lock, managing no transaction.

        Args:
            fn: Manages its own transactions (the migration runner).

        Returns:
            What ``fn`` returns.
        """
        with self._write_lock:
            self._check_open()
            return fn(self._writer)

    @contextmanager
    def read(
        self, timeout: float | None = None, *, snapshot: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot, interrupted after ``timeout`` seconds.

        Args:
            timeout: Seconds before the read is interrupted; defaults to ``read_timeout``.
            snapshot: Wrap the reads in one transaction. A single statement is consistent
                on its own, and saves the two statements of ``BEGIN`` and ``COMMIT``.

        Yields:
            A connection for this thread.

        Raises:
            DatabaseClosedError: The database was closed.
            QueryTimeoutError: The read ran past its time limit.
        """
        self._check_open()
        limit = timeout if timeout is not None else self.read_timeout
        if self.path is None:
            with self._write_lock:
                self._check_open()
                with self._guard(self._writer, limit, begin=False):
                    yield self._writer
            return
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        with self._guard(conn, limit, begin=snapshot):
            yield conn

    @contextmanager
    def _guard(
        self, conn: sqlite3.Connection, limit: float | None, *, begin: bool
    ) -> Iterator[None]:
        if limit is not None:
            deadline = time.monotonic() + limit
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        if begin:
            conn.execute("BEGIN")
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeoutError(f"read interrupted after {limit} s") from exc
            raise BackendUnavailableError(f"SQLite error: {exc}") from exc
        except sqlite3.ProgrammingError as exc:
            if self._closed:
                raise DatabaseClosedError("the reeldb database is closed") from exc
            raise ReelError(f"SQLite error: {exc}") from exc
        finally:
            if begin and conn.in_transaction:
                conn.execute("COMMIT")
            if limit is not None:
                conn.set_progress_handler(None, 0)

    def close(self) -> None:
        """Close every connection; later use raises `DatabaseClosedError`."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._writer.close()
            if self._queue is not None:
                self._queue.close()
                self._queue = None
