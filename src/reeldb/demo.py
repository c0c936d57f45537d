"""The demo data `make run` loads: a namespace, schemas, a DataStore and a few documents.

Loading is idempotent: a database that already has the ``demo`` namespace is left as it is.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from reeldb.database import Database
from reeldb.errors import NotFoundError
from reeldb.testing import BOUNDING_BOX

__all__ = ["DEMO_DATASTORE", "DEMO_NAMESPACE", "load_demo"]

DEMO_NAMESPACE: Final = "demo"
DEMO_DATASTORE: Final = "demo/face_detection/1"

FACE_DETECTION: Final[dict[str, Any]] = {
    "name": "face_detection",
    "description": "Faces detected in video frames, with the person recognised in each box.",
    "levels": {
        "asset": {"properties": {"title": {"type": "text", "mandatory": True}}},
        "track": {
            "properties": {
                "kind": {"type": "enum", "values": ["video", "audio", "subtitle"],
                         "mandatory": True},
            }
        },
        "component": {
            "properties": {
                "algorithm": {"type": "keyword", "mandatory": True},
                "algorithm_version": {"type": "keyword"},
            }
        },
        "event": {
            "properties": {
                "label": {"type": "keyword", "mandatory": True},
                "confidence": {"type": "float", "minimum": 0, "maximum": 1},
            }
        },
        "region": {"properties": {"person": {"type": "keyword"}}},
    },
}  # fmt: skip


LABELED_BASE: Final[dict[str, Any]] = {
    "name": "LABELED_BASE",
    "description": "Anything with a mandatory label",
    "properties": {"label": {"type": "string", "mandatory": True}},
}

CHARACTER_IN_FRAME: Final[dict[str, Any]] = {
    "name": "CHARACTER_IN_FRAME",
    "description": "ML character recognition result",
    "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED_BASE"],
    "properties": {"characterName": {"type": "string", "mandatory": True}},
}


def _region(person: str, x: float, y: float) -> dict[str, Any]:
    return {"bounding_box": {"x": x, "y": y, "w": 0.15, "h": 0.3}, "person": person}


def _document(title: str, shift: int) -> dict[str, Any]:
    events = [
        {
            # frames of the track's 24000/1001 rate: exact, whatever the number
            "time_range": {"start_frame": 24 * i + shift, "end_frame": 24 * i + shift + 12},
            "label": "face",
            "confidence": round(0.9 + i / 100, 2),
            "regions": [_region("Alice", 0.1, 0.2)]
            + ([_region("Bob", 0.55, 0.18)] if i % 2 else []),
        }
        for i in range(4)
    ]
    return {
        "asset": {"title": title},
        "tracks": [
            {
                "kind": "video",
                "frame_rate": "24000/1001",
                "components": [
                    {"algorithm": "face_detector", "algorithm_version": "2.3", "events": events}
                ],
            },
            {
                "kind": "subtitle",
                "components": [
                    {
                        "algorithm": "subtitle_import",
                        "events": [
                            {"time_range": {"start": 1.0, "end": 2.5}, "label": "line"},
                            {"time_range": {"start": 3.0, "end": 4.25}, "label": "line"},
                        ],
                    }
                ],
            },
        ],
    }  # fmt: skip


def load_demo(db: Database) -> bool:
    """Load the demo namespace unless it exists.

    Args:
        db: The database.

    Returns:
        True if the demo data was loaded now, False if it was already there.
    """
    try:
        db.get_namespace(DEMO_NAMESPACE)
        return False
    except NotFoundError:
        pass
    db.create_namespace(DEMO_NAMESPACE, description="reeldb demo data", admins=["user:demo"])
    db.grant_role(DEMO_NAMESPACE, "app:face-detector", "writer")
    db.grant_role(DEMO_NAMESPACE, "app:promo-tools", "reader")
    for definition in (BOUNDING_BOX, LABELED_BASE, CHARACTER_IN_FRAME, FACE_DETECTION):
        db.add_schema(DEMO_NAMESPACE, copy.deepcopy(definition))
    db.create_datastore(
        DEMO_DATASTORE,
        mid_keys=["title_id", "video_stream_id"],
        schema="face_detection",
        description="Demo face detections",
    )
    first = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}
    db.put_document(DEMO_DATASTORE, first, _document("The Demo Movie", 0))
    db.put_document(DEMO_DATASTORE, first, _document("The Demo Movie", 6))
    db.put_document(
        DEMO_DATASTORE,
        {"title_id": "80100173", "video_stream_id": "vs-720p-02"},
        _document("The Demo Sequel", 3),
    )
    return True
