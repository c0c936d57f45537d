"""The queue that writers of several processes wait in before SQLite's write lock.

SQLite's own busy handler sleeps in growing steps of up to 100 ms, which turns a contended
write lock into long tail latencies. Writers therefore queue on advisory locks of the file
``<database>-lock`` first, re-trying within a fraction of a millisecond. SQLite's lock still
guarantees mutual exclusion; the queue only makes waiting short and fair.

Fair matters: a service worker that commits groups of writes back to back would take a plain
lock again microseconds after releasing it, and a worker that polls would seldom get in (tail
latencies of half a second were measured). On Linux the queue is a turnstile of two
open-file-description byte locks: a process takes the *entry* byte, then the *writer* byte,
then lets go of the entry. While one process writes, at most one other holds the entry and
waits for the writer byte; the process that just wrote must take the entry again and so
queues behind it. Elsewhere on POSIX it is one ``flock`` (fast, not fair).

The same file holds, in its first 8 bytes (mapped into memory by every process), the
*access generation*: a counter that writers bump after any commit that may change keys,
roles or system administrators. Processes cache authentications for as long as it stays the
same, which costs a memory read instead of a SQL statement per request.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

from reeldb.errors import BackendUnavailableError

if sys.platform != "win32":
    import fcntl

__all__ = ["WriterQueue"]

_ENTRY, _WRITER = 0, 1
_SHARED_BYTES = 8
_COUNTER = struct.Struct("<Q")
_FIRST_DELAY, _MAX_DELAY = 0.00005, 0.001


class WriterQueue:
    """Advisory locks shared by the processes writing one SQLite file.

    Args:
        path: The database file; the locks live on ``<path>-lock``.
        timeout: Seconds to wait for a turn before giving up.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self._timeout = timeout
        self._fd: int | None = None
        self._shared: mmap.mmap | None = None
        self._ofd = sys.platform == "linux" and hasattr(fcntl, "F_OFD_SETLK")
        if sys.platform != "win32":
            self._fd = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(self._fd).st_size < _SHARED_BYTES:
                os.ftruncate(self._fd, _SHARED_BYTES)  # zeros; harmless if two processes do it
            self._shared = mmap.mmap(self._fd, _SHARED_BYTES)

    def generation(self) -> int | None:
        """The access generation (see the module docstring), or None where there is none.

        Returns:
            The counter.
        """
        if self._shared is None:
            return None
        value: int = _COUNTER.unpack_from(self._shared, 0)[0]
        return value

    def bump(self) -> None:
        """Advance the access generation; call while this process holds its writing turn."""
        if self._shared is not None:
            _COUNTER.pack_into(self._shared, 0, (_COUNTER.unpack_from(self._shared, 0)[0] + 1))

    def enter(self) -> None:
        """Wait for this process's turn to write.

        Raises:
            BackendUnavailableError: Another process kept writing past the timeout.
        """
        if self._fd is None:
            return
        deadline = time.monotonic() + self._timeout
        if not self._ofd:
            self._wait(deadline, lambda: self._flock(fcntl.LOCK_EX | fcntl.LOCK_NB))
            return
        self._wait(deadline, lambda: self._byte(fcntl.F_WRLCK, _ENTRY))
        try:
            self._wait(deadline, lambda: self._byte(fcntl.F_WRLCK, _WRITER))
        finally:
            self._byte(fcntl.F_UNLCK, _ENTRY)

    def leave(self) -> None:
        """End this process's turn."""
        if self._fd is None:
            return
        if self._ofd:
            self._byte(fcntl.F_UNLCK, _WRITER)
        else:
            self._flock(fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (which releases every lock this queue holds)."""
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _wait(self, deadline: float, attempt: Callable[[], bool]) -> None:
        delay = _FIRST_DELAY
        while not attempt():
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    "database is busy: another process kept writing for longer than "
                    f"busy_timeout ({self._timeout:g} s)"
                )
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    def _flock(self, operation: int) -> bool:
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, operation)
        except BlockingIOError:
            return False
        return True

    def _byte(self, kind: int, offset: int) -> bool:
        # struct flock {short l_type, l_whence; off_t l_start, l_len; pid_t l_pid;}, with
        # l_pid 0 as open-file-description locks require.
        assert self._fd is not None
        request = struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)
        try:
            fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, request)
        except (BlockingIOError, PermissionError):
            return False
        return True
