"""Shared fixtures: an isolated environment and ready-made databases."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI

import reeldb
from reeldb.api import create_app
from reeldb.client import Client
from reeldb.testing import (
    FACE_DETECTION,
    MID,
    PostgresUnavailable,
    face_document,
    postgres_schema,
    running_service,
)

__all__ = ["FACE_DETECTION", "MID", "face_document"]


_POSTGRES_SERVER = os.environ.get("REELDB_TEST_POSTGRES")  # read before clean_environ


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A reeldb URL of a private, empty schema on the test PostgreSQL server.

    Skips when the server is unreachable, except under ``CI=true``: there it fails, so the
    PostgreSQL tests can never silently stop running in CI.
    """
    try:
        context = postgres_schema(_POSTGRES_SERVER)
        url = context.__enter__()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's REELDB_* settings and working directory out of every test."""
    for key in list(os.environ):
        if key.startswith("REELDB_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


_BACKEND = os.environ.get("REELDB_TEST_BACKEND", "memory")  # read before clean_environ


@pytest.fixture
def db(request: pytest.FixtureRequest) -> Iterator[reeldb.Database]:
    """An empty in-memory database (``REELDB_TEST_BACKEND=postgresql``: a PostgreSQL schema)."""
    url = request.getfixturevalue("postgres_url") if _BACKEND == "postgresql" else "memory:"
    with reeldb.connect(url) as database:
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


@pytest.fixture(scope="session")
def service_app() -> Iterator[tuple[FastAPI, str]]:
    """One real service (uvicorn on a free loopback port) per test process.

    Tests get their own database through `live`, which swaps it into the running app.
    """
    with reeldb.connect("memory:") as placeholder:
        app = create_app(placeholder)
        with running_service(app) as url:
            yield app, url


@dataclass
class Live:
    """A running service over a fresh database, with its system administrator's key."""

    url: str
    db: reeldb.Database
    admin_key: str

    def client(self, api_key: str | None = None) -> Client:
        """A client with the given key (the system administrator's by default)."""
        return Client(self.url, self.admin_key if api_key is None else api_key)

    def key(self, principal: str) -> str:
        """A new API key for a principal."""
        return self.db.create_api_key(principal).secret


@pytest.fixture
def live(service_app: tuple[FastAPI, str], request: pytest.FixtureRequest) -> Iterator[Live]:
    """The running service over a fresh in-memory database (or PostgreSQL, as `db`)."""
    app, url = service_app
    db_url = request.getfixturevalue("postgres_url") if _BACKEND == "postgresql" else "memory:"
    with reeldb.connect(db_url) as database:
        admin = database.bootstrap()
        assert admin is not None
        previous = app.state.db
        app.state.db = database
        try:
            yield Live(url, database, admin.secret)
        finally:
            app.state.db = previous
