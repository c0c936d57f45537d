"""Databases for the reprocessing tests, set up by `reprocess_support.setup`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reprocess_support import setup

import reeldb

BACKENDS = [
    pytest.param("memory:", id="sqlite-memory"),
    pytest.param("sqlite:///{tmp}/reel.db", id="sqlite-file"),
    pytest.param("postgresql", id="postgresql"),
]
SHARED_BACKENDS = BACKENDS[1:]
"""Backends several processes can share."""


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url: str = request.param
    if url == "postgresql":
        pg: str = request.getfixturevalue("postgres_url")
        return pg
    return url.format(tmp=tmp_path)


@pytest.fixture(params=BACKENDS)
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on every backend."""
    return _url(request, tmp_path)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL that several processes can open (SQLite file, PostgreSQL)."""
    return _url(request, tmp_path)


@pytest.fixture
def rdb(any_url: str) -> Iterator[reeldb.Database]:
    """A set-up database on every backend."""
    with reeldb.connect(any_url) as db:
        setup(db)
        yield db


@pytest.fixture
def mdb() -> Iterator[reeldb.Database]:
    """A set-up in-memory database (for what does not depend on the backend)."""
    with reeldb.connect("memory:") as db:
        setup(db)
        yield db


@pytest.fixture
def fdb(tmp_path: Path) -> Iterator[reeldb.Database]:
    """A set-up database in a SQLite file."""
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}") as db:
        setup(db)
        yield db
