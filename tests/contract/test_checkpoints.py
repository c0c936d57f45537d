"""SQLite files: the WAL is copied into the database file by a background checkpointer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from reeldb.store.sqlite import _connection
from reeldb.store.sqlite._connection import SQLiteConnections


def _write(db: SQLiteConnections, rows: int) -> None:
    with db.write() as conn:
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(b"x" * 1000,)] * rows)


def _file_pages(path: Path) -> int:
    return path.stat().st_size // 4096


def test_commits_leave_checkpoints_to_the_background(tmp_path: Path) -> None:
    path = tmp_path / "reel.db"
    db = SQLiteConnections(path)
    try:
        with db.write() as conn:
            conn.execute("CREATE TABLE t (v BLOB)")
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        before = _file_pages(path)
        _write(db, 3000)  # ~3 MB: past SQLite's own 1000-page threshold
        deadline = time.monotonic() + 10
        while _file_pages(path) < before + 700 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _file_pages(path) >= before + 700  # copied without another write or a close
    finally:
        started = time.monotonic()
        db.close()
        assert time.monotonic() - started < 5  # the checkpointer stops promptly
    with sqlite3.connect(path) as conn:  # nothing lost: the rows are in the file
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3000,)


def test_an_oversized_wal_is_checkpointed_by_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_connection, "_WAL_LIMIT", 100_000)
    monkeypatch.setattr(_connection, "_COALESCE", 0.5)  # the background is slower than us
    path = tmp_path / "reel.db"
    db = SQLiteConnections(path)
    try:
        with db.write() as conn:
            conn.execute("CREATE TABLE t (v BLOB)")
        before = _file_pages(path)
        _write(db, 1000)
        assert _file_pages(path) >= before + 200  # done inside the commit
    finally:
        db.close()
