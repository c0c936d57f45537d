"""PostgreSQL connections: a psycopg 3 pool, transactions retried on transient failures.

Every process opens its own pool; any number of processes share one database. Writes run
as functions (``write(fn)``) so that a transaction the server aborted for a serialization
failure, a deadlock or a lost connection can be run again from the start: the function must
do nothing but database work on the connection it is given. A failure *during* ``COMMIT``
is not retried (the commit may have happened): it is raised as `BackendUnavailableError`,
which the service answers with 503 and clients retry with their idempotency key.

Driver errors become reeldb errors here.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from reeldb.errors import (
    BackendUnavailableError,
    DatabaseClosedError,
    QueryTimeoutError,
    ValidationError,
)
from reeldb.store import redact_url

__all__ = ["PostgresConnections", "is_postgres_url"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

_RETRIES = 8
"""Attempts of a transaction aborted by a transient failure, with jittered back-off."""
_TRANSIENT = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
)


def is_postgres_url(url: str) -> bool:
    """Whether a database URL names PostgreSQL."""
    return url.startswith(("postgresql://", "postgres://"))


class _CommitFailed(Exception):
    """The connection failed while committing: the outcome is unknown."""


class PostgresConnections:
    """A pool of connections to one PostgreSQL database.

    Args:
        url: A libpq URL (``postgresql://user@host:port/dbname?options=...``).
        min_size: Connections kept open.
        max_size: Connections at most (per process).
        statement_timeout: Seconds a write statement may run (server-side limit).
        read_timeout: Seconds a read may run before the server cancels it (None: no limit).
        connect_timeout: Seconds to wait for a connection (from the pool or the server).
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        statement_timeout: float = 60.0,
        read_timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.read_timeout = read_timeout
        self._statement_ms = int(statement_timeout * 1000)
        self._connect_timeout = connect_timeout
        self._closed = False
        self._close_lock = threading.Lock()
        try:
            # One direct connection first: a wrong URL or a server that is down fails at
            # once with the server's reason (the pool would keep retrying until its timeout).
            psycopg.connect(url, connect_timeout=max(1, int(connect_timeout))).close()
            self._pool = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
                configure=self._configure,
                check=ConnectionPool.check_connection,
                timeout=connect_timeout,
                open=False,
                name="reeldb",
            )
            self._pool.open(wait=True, timeout=connect_timeout)
        except (psycopg.Error, PoolTimeout) as exc:
            raise BackendUnavailableError(
                f"cannot connect to PostgreSQL at {redact_url(url)}: {_reason(exc)}"
            ) from exc

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET statement_timeout = {self._statement_ms}")
        # psycopg prepares a statement run 5 times; after 5 more PostgreSQL may switch it to
        # a generic plan, blind to the parameters. Index queries are range scans whose best
        # plan depends on them: a document-level time window went from 9 ms to 275 ms (p50)
        # when the generic plan scanned a whole document's rows. Plan with the values, always.
        conn.execute("SET plan_cache_mode = force_custom_plan")

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError("the reeldb database is closed")

    # -- transactions ----------------------------------------------------------------------

    def write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` in a read-write transaction, again from the start on transient failures.

        Args:
            fn: Database work only (it may run more than once); its return value is
                returned after the commit.

        Returns:
            What ``fn`` returned in the attempt that committed.

        Raises:
            DatabaseClosedError: The database was closed.
            BackendUnavailableError: The server stayed unreachable, or the commit's outcome
                is unknown.
            QueryTimeoutError: A statement ran past ``statement_timeout``.
        """
        return self._run(fn, read_only=False, timeout=None)

    def read(self, fn: Callable[[psycopg.Connection[Any]], T], timeout: float | None = None) -> T:
        """Run ``fn`` in a read-only snapshot (``REPEATABLE READ``), retried like `write`.

        Args:
            fn: Reads only.
            timeout: Seconds before the server cancels it; defaults to ``read_timeout``.

        Returns:
            What ``fn`` returned.
        """
        limit = timeout if timeout is not None else self.read_timeout
        return self._run(fn, read_only=True, timeout=limit)

    def _run(
        self,
        fn: Callable[[psycopg.Connection[Any]], T],
        *,
        read_only: bool,
        timeout: float | None,
    ) -> T:
        delay = 0.01
        for attempt in range(1, _RETRIES + 1):
            self._check_open()
            try:
                return self._attempt(fn, read_only=read_only, timeout=timeout)
            except _CommitFailed as exc:
                raise BackendUnavailableError(
                    f"the connection to PostgreSQL failed during COMMIT; the write may or may "
                    f"not have been applied: {_reason(exc.__cause__)}"
                ) from exc.__cause__
            except psycopg.DataError as exc:
                # A value PostgreSQL cannot hold (a NUL character in text, a number out of
                # its column's range): the caller's input, not the server's fault.
                raise ValidationError(f"PostgreSQL cannot store a value: {_reason(exc)}") from exc
            except pg_errors.QueryCanceled as exc:
                raise QueryTimeoutError(
                    f"PostgreSQL cancelled the statement after its time limit: {_reason(exc)}"
                ) from exc
            except (*_TRANSIENT, psycopg.OperationalError, PoolTimeout) as exc:
                if self._closed:
                    raise DatabaseClosedError("the reeldb database is closed") from exc
                if attempt == _RETRIES:
                    raise BackendUnavailableError(
                        f"PostgreSQL is unavailable: {_reason(exc)}"
                    ) from exc
                _log.info("retrying a transaction (attempt %d): %s", attempt, _reason(exc))
                time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not secrets
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        fn: Callable[[psycopg.Connection[Any]], T],
        *,
        read_only: bool,
        timeout: float | None,
    ) -> T:
        with self._pool.connection() as conn:
            if read_only:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if timeout is not None:
                    conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
            else:
                conn.execute("BEGIN")
            try:
                result = fn(conn)
            except BaseException:
                if not conn.closed and not conn.broken:
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
                raise  # rolled back by the server: safe to run again
            except psycopg.OperationalError as exc:
                if read_only:
                    raise
                raise _CommitFailed from exc
            return result

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement outside any transaction (``CREATE DATABASE``, advisory locks)."""
        self._check_open()
        with self._pool.connection() as conn:
            conn.execute(sql, params)

    def connection(self) -> Any:
        """A pooled connection in autocommit mode (``with connections.connection() as c``).

        For work that manages its own transactions: the migration runner.
        """
        self._check_open()
        return self._pool.connection()

    def close(self) -> None:
        """Close the pool; later use raises `DatabaseClosedError`."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()


def _reason(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    return text or type(exc).__name__
