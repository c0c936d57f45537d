"""The demo data `make run` loads: namespace, schemas, DataStore, documents, annotations.

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


REVIEW_NOTE: Final[dict[str, Any]] = {
    "name": "REVIEW_NOTE",
    "description": "A reviewer's note on a frame region (creative review)",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {
        "comment": {"type": "text", "mandatory": True},
        "color": {"type": "keyword"},
    },
}

DEMO_MOVIE: Final = {"type": "MOVIE_ID", "id": "80100172"}
"""The entity the demo annotations are attached to (the demo documents' title)."""


def _annotations() -> list[dict[str, Any]]:
    """Characters in frames for 20 seconds of the demo movie, and two review notes."""
    out: list[dict[str, Any]] = []
    for second in range(20):
        for name, x in (("Alice", 0.1), ("Bob", 0.55)):
            if name == "Bob" and second % 3 == 0:
                continue
            out.append(
                {
                    "type": "CHARACTER_IN_FRAME",
                    "associations": [DEMO_MOVIE, {"type": "SHOT_ID", "id": f"s{second // 5}"}],
                    "data": {
                        "label": "character",
                        "characterName": name,
                        "temporal": {"start": second, "end": second + 1},
                        "spatial": {"x": x, "y": 0.2 + second / 100, "w": 0.15, "h": 0.3},
                    },
                }
            )
    for start, comment, color in (
        (4.0, "Please change the colour of the gloves to rich black", "blue"),
        (12.5, "Logo visible in the background: blur it", "red"),
    ):
        out.append(
            {
                "type": "REVIEW_NOTE",
                "associations": [DEMO_MOVIE],
                "data": {
                    "comment": comment,
                    "color": color,
                    "temporal": {"start": start, "end": start + 2},
                    "spatial": {"x": 0.3, "y": 0.5, "w": 0.2, "h": 0.2},
                },
            }
        )
    return out


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
    for definition in (BOUNDING_BOX, LABELED_BASE, CHARACTER_IN_FRAME, REVIEW_NOTE, FACE_DETECTION):
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
    db.annotations.create_many(DEMO_NAMESPACE, _annotations())
    return True
