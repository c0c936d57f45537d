"""Shared fixtures: an isolated environment and ready-made databases."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import reeldb
from reeldb.testing import FACE_DETECTION, MID, face_document

__all__ = ["FACE_DETECTION", "MID", "face_document"]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's REELDB_* settings and working directory out of every test."""
    for key in list(os.environ):
        if key.startswith("REELDB_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def db() -> Iterator[reeldb.Database]:
    """An empty in-memory database."""
    with reeldb.connect("memory:") as database:
        yield database


@pytest.fixture
def file_db(tmp_path: Path) -> Iterator[reeldb.Database]:
    """An empty database in a SQLite file (WAL, separate reader connections)."""
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}") as database:
        yield database


@pytest.fixture
def vision(db: reeldb.Database) -> reeldb.Database:
    """The in-memory database with namespace ``vision``, schema ``face_detection`` and the
    DataStore ``vision/face_detection/1`` keyed by ``title_id, video_stream_id``."""
    db.create_namespace("vision", admins=["user:alice"])
    db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
    db.create_datastore(
        "vision/face_detection/1", mid_keys=["title_id", "video_stream_id"], schema="face_detection"
    )
    return db
