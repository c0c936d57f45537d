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
    "face_document",
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
