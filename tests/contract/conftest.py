"""The contract suites run once per backend: add a backend by adding a parameter here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reeldb.schema.model import SchemaVersion
from reeldb.store import Store, load_store
from reeldb.testing import stored_schema_version

BACKENDS = [
    pytest.param("memory:", id="sqlite-memory"),
    pytest.param("sqlite:///{tmp}/reel.db", id="sqlite-file"),
    pytest.param("postgresql", id="postgresql"),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url: str = request.param
    if url == "postgresql":
        # A private schema on the test server (tests/conftest.py; fails in CI if down).
        pg: str = request.getfixturevalue("postgres_url")
        return pg
    return url.format(tmp=tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = load_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def make_schema() -> Callable[..., SchemaVersion]:
    return stored_schema_version
