"""SQLite files: bulk commits leave their checkpoint to a background thread."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from reeldb.store.sqlite import _connection
from reeldb.store.sqlite._connection import SQLiteConnections


def _write(db: SQLiteConnections, rows: int, *, bulk: bool) -> None:
    with db.write(bulk=bulk) as conn:
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(b"x" * 1000,)] * rows)


def _file_pages(path: Path) -> int:
    return path.stat().st_size // 4096


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SQLiteConnections:
    monkeypatch.setattr(_connection, "_COALESCE", 0.5)  # slower than the checks right after
    opened = SQLiteConnections(tmp_path / "reel.db")
    with opened.write() as conn:
        conn.execute("CREATE TABLE t (v BLOB)")
    return opened


def test_a_bulk_commit_is_checkpointed_in_the_background(db: SQLiteConnections) -> None:
    assert db.path is not None
    try:
        before = _file_pages(db.path)
        _write(db, 6000, bulk=True)  # ~6 MB: past SQLite's own 1000-page threshold
        assert _file_pages(db.path) < before + 100  # not inside the commit
        deadline = time.monotonic() + 10
        while _file_pages(db.path) < before + 1200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _file_pages(db.path) >= before + 1200  # copied without another write or a close
        with db.write() as conn:  # the automatic checkpoint is back for ordinary commits
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    finally:
        started = time.monotonic()
        db.close()
        assert time.monotonic() - started < 5  # the checkpointer stops promptly
    with sqlite3.connect(db.path) as conn:  # nothing lost: the rows are in the file
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (6000,)


def test_an_ordinary_commit_checkpoints_inside_the_commit(db: SQLiteConnections) -> None:
    assert db.path is not None
    try:
        before = _file_pages(db.path)
        _write(db, 6000, bulk=False)
        assert _file_pages(db.path) >= before + 1200  # SQLite's automatic checkpoint, at once
    finally:
        db.close()


def test_an_oversized_wal_is_checkpointed_by_the_bulk_writer(
    db: SQLiteConnections, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert db.path is not None
    monkeypatch.setattr(_connection, "_WAL_LIMIT", 100_000)
    try:
        before = _file_pages(db.path)
        _write(db, 1000, bulk=True)
        assert _file_pages(db.path) >= before + 200  # done right after the commit
    finally:
        db.close()
