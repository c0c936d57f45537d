"""Helpers for testing reeldb and code built on it: contract-suite builders and sample data.

Backends reuse these in their contract tests (``tests/contract/``), so a new backend is
tested exactly like the existing ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from reeldb.schema.model import SchemaKind, SchemaRef, SchemaVersion

if TYPE_CHECKING:
    from fastapi import FastAPI

    from reeldb.database import Database

__all__ = [
    "BOUNDING_BOX",
    "FACE_DETECTION",
    "MID",
    "NOW",
    "POSTGRES_SERVER_URL",
    "PostgresUnavailable",
    "face_document",
    "postgres_schema",
    "running_service",
    "stored_schema_version",
]

BOUNDING_BOX: Final[dict[str, Any]] = {
    "type": "BOUNDING_BOX",
    "version": 0,
    "description": "Schema describing a bounding box",
    "keys": {
        "properties": {
            "boundingBox": {"type": "bounding_box", "mandatory": True},
            "boxTimeRange": {"type": "time_range", "mandatory": True},
        }
    },
}
"""Marken's own example schema (REQUIREMENTS E1), verbatim."""

NOW: Final = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""A fixed timestamp for records written in tests."""


def stored_schema_version(
    namespace: str, name: str, version: int, *, kind: SchemaKind = SchemaKind.DOCUMENT, **extra: Any
) -> SchemaVersion:
    """A minimal schema version for port-level tests (ports store what they are given).

    Args:
        namespace: The namespace.
        name: The schema name.
        version: The version.
        kind: The schema kind.
        **extra: ``description`` overrides the default description.

    Returns:
        The schema version.
    """
    return SchemaVersion(
        ref=SchemaRef(namespace, name, version),
        kind=kind,
        description=str(extra.get("description", f"{name} v{version}")),
        definition={"name": name, "levels": {}},
        json_schema={"type": "object", "title": name},
        resolved={},
        lineage=(f"{namespace}/{name} v{version}",),
        created_at=NOW,
    )


MID: Final = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}

FACE_DETECTION: Final[dict[str, Any]] = {
    "name": "face_detection",
    "levels": {
        "asset": {"properties": {"title": {"type": "text", "mandatory": True}}},
        "track": {
            "properties": {
                "kind": {
                    "type": "enum",
                    "values": ["video", "audio", "subtitle"],
                    "mandatory": True,
                }
            }
        },
        "component": {"properties": {"algorithm": {"type": "keyword", "mandatory": True}}},
        "event": {
            "properties": {
                "label": {"type": "keyword", "mandatory": True},
                "confidence": {"type": "float", "minimum": 0, "maximum": 1},
            }
        },
        "region": {"properties": {"person": {"type": "keyword"}}},
    },
}


def face_document(
    n_events: int = 2, *, person: str = "Alice", title: str = "A title", **event_extra: Any
) -> dict[str, Any]:
    """A valid document for `FACE_DETECTION`: one video track of ``n_events`` face events.

    Args:
        n_events: How many events (one region each).
        person: The person in every region.
        title: The asset title (tests use it to tell documents apart).
        **event_extra: More attributes for every event.

    Returns:
        A fresh document.
    """
    return {
        "asset": {"title": title},
        "tracks": [
            {
                "kind": "video",
                "frame_rate": "24000/1001",
                "components": [
                    {
                        "algorithm": "face_detector",
                        "events": [
                            {
                                "time_range": {"start": i, "end": i + 0.5},
                                "label": "face",
                                "confidence": 0.9,
                                "regions": [
                                    {
                                        "bounding_box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4},
                                        "person": person,
                                    }
                                ],
                                **event_extra,
                            }
                            for i in range(n_events)
                        ],
                    }
                ],
            }
        ],
    }


@contextmanager
def running_service(target: Database | FastAPI, *, startup_timeout: float = 20.0) -> Iterator[str]:
    """Serve a database over real HTTP (uvicorn, a free loopback port) in a thread.

    Args:
        target: The open database to serve (it stays open afterwards), or an app made by
            `reeldb.api.create_app` (tests may then swap ``app.state.db`` between tests).
        startup_timeout: Seconds to wait for the server to listen.

    Yields:
        The base URL, e.g. ``http://127.0.0.1:53121``.

    Raises:
        RuntimeError: The server did not start.
    """
    import uvicorn

    from reeldb.api import create_app
    from reeldb.database import Database

    app = create_app(target) if isinstance(target, Database) else target
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="reeldb-test-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the reeldb test service did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


POSTGRES_SERVER_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The PostgreSQL server tests use unless ``REELDB_TEST_POSTGRES`` names another."""


class PostgresUnavailable(RuntimeError):
    """The test PostgreSQL server cannot be reached (tests skip, or fail when ``CI=true``)."""


@contextmanager
def postgres_schema(server_url: str | None = None) -> Iterator[str]:
    """A private, migrated PostgreSQL database for one test: yields its reeldb URL.

    Migrating an empty database takes seconds (hundreds of statements of DDL, partitions);
    so the first caller creates a migrated *template* database (named after a hash of the
    migrations, made once per server under an advisory lock) and each test gets a copy of
    it (``CREATE DATABASE ... TEMPLATE``: some tens of milliseconds), dropped afterwards.
    Tests therefore run in parallel against one server without seeing each other's data.

    Args:
        server_url: A URL of the server (default: ``REELDB_TEST_POSTGRES`` or
            `POSTGRES_SERVER_URL`).

    Yields:
        ``postgresql://.../reeldb_t_<random>``.

    Raises:
        PostgresUnavailable: The server cannot be reached.
    """
    import hashlib
    import os
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from reeldb.store import load_store
    from reeldb.store.postgres.migrations import MIGRATIONS

    server = server_url or os.environ.get("REELDB_TEST_POSTGRES") or POSTGRES_SERVER_URL
    parts = urlsplit(server)

    def url_of(database: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))

    digest = hashlib.sha256(repr(MIGRATIONS).encode()).hexdigest()[:12]
    template = f"reeldb_tpl_{digest}"
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise PostgresUnavailable(f"PostgreSQL at {server} is unreachable: {exc}") from exc
    database = f"reeldb_t_{uuid.uuid4().hex[:16]}"
    with admin:
        admin.execute("SELECT pg_advisory_lock(hashtext('reeldb test template'))")
        try:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
            if found.fetchone() is None:
                stale = admin.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (r"reeldb\_tpl\_%",)
                ).fetchall()
                for (name,) in stale:  # older migrations' templates, a half-made one
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{template}_new"')
                load_store(url_of(f"{template}_new")).close()  # migrates it
                admin.execute(f'ALTER DATABASE "{template}_new" RENAME TO "{template}"')
        finally:
            admin.execute("SELECT pg_advisory_unlock(hashtext('reeldb test template'))")
        admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    try:
        yield url_of(database)
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
