"""Shared by the ingest tests: a DSL schema with fields on every level, and documents for it."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

import reeldb

NS = "media"
DS = "media/scenes/1"
DS2 = "media/scenes/2"
SCHEMA: dict[str, Any] = {
    "name": "scenes",
    "levels": {
        "asset": {"properties": {"title": {"type": "text"}, "year": {"type": "int"}}},
        "track": {"properties": {"kind": {"type": "keyword"}, "lang": {"type": "keyword"}}},
        "component": {
            "properties": {"algorithm": {"type": "keyword"}, "version": {"type": "float"}}
        },
        "event": {
            "properties": {
                "label": {"type": "keyword", "mandatory": True},
                "confidence": {"type": "float", "minimum": 0, "maximum": 1},
                "text": {"type": "text"},
            }
        },
        "region": {"properties": {"person": {"type": "keyword"}, "score": {"type": "float"}}},
    },
}

WORDS = ["storm", "Storms", "heavy", "rain", "running", "café", "naïve"]
LABELS = ["face", "car", "dog"]
TIMES = [0, 0.5, 1, 1.5, 2, 10]
COORDS = [0, 0.1, 0.25, 0.5, 1]


def setup(db: reeldb.Database, *datastores: str) -> None:
    """Namespace, schema and DataStores (`DS` by default) for `SCHEMA`."""
    db.create_namespace(NS)
    db.add_schema(NS, copy.deepcopy(SCHEMA))
    for ds in datastores or (DS,):
        db.create_datastore(ds, mid_keys=["id"], schema="scenes")


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


def attrs(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    parts = [maybe(key, values) for key, values in fields.items()]
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


texts = st.lists(st.sampled_from(WORDS), max_size=3).map(" ".join)


@st.composite
def time_range(draw: st.DrawFn, frames: bool) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["seconds", "frames", "own_rate"] if frames else ["seconds", "own_rate"])
    )
    if kind == "seconds":
        a, b = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2)))
        return {"start": a, "end": b}
    start = draw(st.integers(0, 60))
    span = {"start_frame": start, "end_frame": start + draw(st.integers(0, 30))}
    if kind == "own_rate":
        span["rate"] = draw(st.sampled_from(["25", "30000/1001"]))
    return span


boxes = st.builds(
    lambda x, y, w, h: {"x": x, "y": y, "w": w, "h": h},
    *(st.sampled_from(COORDS) for _ in range(4)),
)


@st.composite
def region(draw: st.DrawFn, frames: bool) -> dict[str, Any]:
    found = {"bounding_box": draw(boxes)}
    found.update(
        draw(attrs(person=st.sampled_from(["Alice", "Bob"]), score=st.sampled_from([0.5, 1.0])))
    )
    if draw(st.booleans()):
        found["time_range"] = draw(time_range(frames))
    return found


def shuffled(draw: st.DrawFn, items: dict[str, Any]) -> dict[str, Any]:
    """The same members in a drawn order (the walker must not depend on key order)."""
    keys = draw(st.permutations(list(items)))
    return {k: items[k] for k in keys}


@st.composite
def documents(draw: st.DrawFn, max_tracks: int = 2, max_events: int = 4) -> dict[str, Any]:
    """Valid documents: tracks without components, components without events, events
    without regions, no tracks at all; frames at a track's rate; members in any order.

    Fractions appear only inside events (objects): a bare fraction as a track or component
    member cannot be split across chunks yet (see test_every_split_inside_a_bare_fraction).
    """
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["asset"] = draw(attrs(title=texts, year=st.sampled_from([1999, 2026])))
    tracks = []
    for _ in range(draw(st.integers(0, max_tracks))):
        track = draw(
            attrs(kind=st.sampled_from(["video", "audio"]), lang=st.sampled_from(["en", "fr"]))
        )
        frames = draw(st.booleans())
        if frames:
            track["frame_rate"] = draw(st.sampled_from(["24", "30000/1001", 25]))
        components = []
        for _ in range(draw(st.integers(0, 2))):
            component = draw(
                attrs(algorithm=st.sampled_from(["a", "b"]), version=st.sampled_from([1, 2]))
            )
            events = []
            for _ in range(draw(st.integers(0, max_events))):
                event = draw(
                    attrs(
                        confidence=st.sampled_from([0.1, 0.5, 1]),
                        text=texts,
                    )
                )
                event["label"] = draw(st.sampled_from(LABELS))
                event["time_range"] = draw(time_range(frames))
                found = draw(st.lists(region(frames), max_size=3))
                if found:
                    event["regions"] = found
                events.append(shuffled(draw, event))
            if events or draw(st.booleans()):
                component["events"] = events
            components.append(shuffled(draw, component))
        if components or draw(st.booleans()):
            track["components"] = components
        tracks.append(shuffled(draw, track))
    if tracks or draw(st.booleans()):
        doc["tracks"] = tracks
    return shuffled(draw, doc)


def events_of(doc: dict[str, Any]) -> list[tuple[int, int, int, dict[str, Any]]]:
    return [
        (t, c, e, event)
        for t, track in enumerate(doc.get("tracks") or [])
        for c, component in enumerate(track.get("components") or [])
        for e, event in enumerate(component.get("events") or [])
    ]
