"""Data and helpers shared by the reprocessing tests (and their subprocesses)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from reprocess_functions import TAG

import reeldb
from reeldb.testing import BOUNDING_BOX, FACE_DETECTION, face_document

NS = "vision"
DS = "vision/face_detection/1"
COPY = "vision/faces/1"
VIDEO = {"type": "VIDEO", "id": "v1"}
BOX_V1: dict[str, Any] = {
    "type": "BOUNDING_BOX",
    "version": 1,
    "description": "adds a label",
    "keys": {
        "properties": {
            "boundingBox": {"type": "bounding_box", "mandatory": True},
            "boxTimeRange": {"type": "time_range", "mandatory": True},
            "label": {"type": "string", "mandatory": False},
        }
    },
}


NOTE: dict[str, Any] = {
    "type": "NOTE",
    "version": 0,
    "description": "A note (full-text searched)",
    "keys": {"properties": {"comment": {"type": "text", "mandatory": True}}},
}


def setup(db: reeldb.Database) -> None:
    """Namespace ``vision``: TAG, NOTE, BOUNDING_BOX v0 and v1, and two face DataStores."""
    db.create_namespace(NS)
    db.add_schema(NS, copy.deepcopy(TAG))
    db.add_schema(NS, copy.deepcopy(NOTE))
    db.add_schema(NS, copy.deepcopy(BOUNDING_BOX))
    db.add_schema(NS, copy.deepcopy(BOX_V1))
    db.add_schema(NS, copy.deepcopy(FACE_DETECTION))
    db.create_datastore(DS, mid_keys=["title_id"], schema="face_detection")
    db.create_datastore(COPY, mid_keys=["title_id"], schema="face_detection")


def add_tags(db: reeldb.Database, labels: list[str]) -> list[str]:
    """TAG annotations with these labels; their ids."""
    made = db.annotations.create_many(
        NS,
        [{"type": "TAG", "associations": [VIDEO], "data": {"label": label}} for label in labels],
    )
    return [str(a.id) for a in made]


def add_notes(db: reeldb.Database, comments: list[str]) -> list[str]:
    """NOTE annotations with these comments; their ids."""
    made = db.annotations.create_many(
        NS,
        [{"type": "NOTE", "associations": [VIDEO], "data": {"comment": c}} for c in comments],
    )
    return [str(a.id) for a in made]


def add_boxes(db: reeldb.Database, count: int) -> list[str]:
    """BOUNDING_BOX v0 annotations, x = 0 .. count - 1; their ids."""
    made = db.annotations.create_many(
        NS,
        [
            {
                "type": {"name": "BOUNDING_BOX", "version": 0},
                "associations": [VIDEO],
                "data": {
                    "boundingBox": {"x": i, "y": 1, "w": 2, "h": 3},
                    "boxTimeRange": {"start": i, "end": i + 1},
                },
            }
            for i in range(count)
        ],
    )
    return [str(a.id) for a in made]


def add_documents(db: reeldb.Database, count: int, mids: int, *, first: int = 0) -> None:
    """``count`` documents over ``mids`` MIDs (``t0``...), titled ``cat N`` / ``dog N``."""
    for i in range(first, first + count):
        title = f"{'cat' if i % 2 else 'dog'} {i}"
        db.put_document(DS, {"title_id": f"t{i % mids}"}, face_document(2, title=title))


def history(db: reeldb.Database) -> dict[str, list[tuple[int, str | None, dict[str, Any]]]]:
    """Every annotation of the namespace: its versions as (type version, author, data)."""
    out = {}
    for ident in db.store.annotation_ids(NS, after=None, limit=100_000):
        versions = db.annotations.versions(NS, ident)
        out[str(ident)] = [(v.type.version, v.created_by, v.data) for v in versions]
    return out


def latest_documents(db: reeldb.Database, datastore: str = DS) -> dict[str, dict[str, Any]]:
    """Each MID's latest document body, by ``title_id``."""
    ds = db.get_datastore(datastore)
    found: dict[str, dict[str, Any]] = {}
    for record in db.store.iter_documents(ds.id):
        found[orjson.loads(record.mid_key)["title_id"]] = orjson.loads(record.body)
    return found
