"""The index answers every query exactly as the reference evaluator (the oracle) does.

Hypothesis generates documents and queries over a schema with a field of every searchable
type at every level, with values from small domains, so that matches, near misses, missing
fields and boundary-touching time ranges and boxes are common. Both query types must agree
with `reeldb.query.oracle`: the same documents, the same events, the same regions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reeldb
from reeldb.query import ast as q
from reeldb.query.oracle import document_matches, matching_events

DS = "v/everything/1"
SCHEMA: dict[str, Any] = {
    "name": "everything",
    "levels": {
        "asset": {"properties": {"title": {"type": "text"}, "year": {"type": "int"}}},
        "track": {
            "properties": {
                "kind": {"type": "enum", "values": ["video", "audio"]},
                "lang": {"type": "keyword"},
            }
        },
        "component": {"properties": {"algorithm": {"type": "keyword"}}},
        "event": {
            "properties": {
                "label": {"type": "keyword"},
                "confidence": {"type": "float"},
                "text": {"type": "text"},
                "flag": {"type": "bool"},
                "at": {"type": "timestamp"},
            }
        },
        "region": {"properties": {"person": {"type": "keyword"}, "score": {"type": "float"}}},
    },
}
TIMESTAMPS = {("event", "at")}

WORDS = ["storm", "Storms", "heavy", "rain", "running", "run", "café", "CAFE", "naïve"]
TIMES = [0, 0.5, 1, 1.5, 2, 2.5, 10, 20]
COORDS = [0, 0.1, 0.2, 0.25, 0.5, 0.75, 1]
LABELS = ["face", "car", "Face"]
PEOPLE = ["Alice", "Bob"]
INSTANTS = ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "2026-06-01T12:30:00Z"]


def maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


def attrs(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    parts = [maybe(key, values) for key, values in fields.items()]
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=4).map(" ".join)


@st.composite
def time_range(draw: st.DrawFn, frames: bool) -> dict[str, Any]:
    if frames and draw(st.booleans()):
        start = draw(st.integers(0, 60))
        return {"start_frame": start, "end_frame": start + draw(st.integers(0, 30))}
    a, b = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2)))
    return {"start": a, "end": b}


boxes = st.builds(
    lambda x, y, w, h: {"x": x, "y": y, "w": w, "h": h},
    *(st.sampled_from(COORDS) for _ in range(4)),
)
regions = st.builds(
    lambda box, extra: {"bounding_box": box, **extra},
    boxes,
    attrs(person=st.sampled_from(PEOPLE), score=st.sampled_from([0.5, 1.0, 0.25])),
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["asset"] = draw(attrs(title=texts, year=st.sampled_from([1999, 2026])))
    tracks = []
    for _ in range(draw(st.integers(0, 2))):
        track = draw(
            attrs(kind=st.sampled_from(["video", "audio"]), lang=st.sampled_from(["en", "fr"]))
        )
        frames = draw(st.booleans())
        if frames:
            track["frame_rate"] = draw(st.sampled_from(["24", "30000/1001"]))
        components = []
        for _ in range(draw(st.integers(0, 2))):
            component = draw(attrs(algorithm=st.sampled_from(["a", "b"])))
            events = []
            for _ in range(draw(st.integers(0, 3))):
                event = draw(
                    attrs(
                        label=st.sampled_from(LABELS),
                        confidence=st.sampled_from([0.1, 0.5, 0.9, 1]),
                        text=texts,
                        flag=st.booleans(),
                        at=st.sampled_from(INSTANTS),
                    )
                )
                event["time_range"] = draw(time_range(frames))
                found = draw(st.lists(regions, max_size=3))
                if found:
                    event["regions"] = found
                events.append(event)
            if events or draw(st.booleans()):
                component["events"] = events
            components.append(component)
        if components or draw(st.booleans()):
            track["components"] = components
        tracks.append(track)
    if tracks or draw(st.booleans()):
        doc["tracks"] = tracks
    return doc


def decimal(values: list[float]) -> st.SearchStrategy[Decimal]:
    return st.sampled_from(values).map(lambda v: Decimal(str(v)))


def field(level: str, name: str) -> q.Field:
    return q.Field(level, name)  # type: ignore[arg-type]


ops = st.sampled_from(q.COMPARISONS)
eq_ops = st.sampled_from(["=", "!="])
overlap_ranges = st.lists(st.sampled_from([0, 0.5, 1, 1.5, 2, 2.5, 10, 30]), min_size=2, max_size=2)
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join)
# Predicates on the fields of events and regions (what count(...) may use), then the rest.
event_predicates = st.one_of(
    st.builds(q.Compare, st.just(field("event", "label")), ops, st.sampled_from(LABELS)),
    st.builds(
        q.In,
        st.just(field("event", "label")),
        st.lists(st.sampled_from(LABELS), min_size=1, max_size=2).map(tuple),
    ),
    st.builds(q.Compare, st.just(field("event", "confidence")), ops, decimal([0.1, 0.5, 1])),
    st.builds(q.Compare, st.just(field("event", "flag")), eq_ops, st.booleans()),
    st.builds(q.Compare, st.just(field("event", "at")), ops, st.sampled_from(INSTANTS)),
    st.builds(q.Compare, st.just(field("region", "person")), eq_ops, st.sampled_from(PEOPLE)),
    st.builds(q.Compare, st.just(field("region", "score")), ops, decimal([0.25, 0.5, 1])),
    st.builds(q.Contains, st.just(field("event", "text")), words),
    st.builds(
        lambda f, pair: q.Overlaps(f, *(Decimal(str(v)) for v in sorted(pair))),
        st.sampled_from([field("event", "time_range"), field("region", "time_range")]),
        overlap_ranges,
    ),
    st.builds(
        q.BoxTest,
        st.just(field("region", "bounding_box")),
        st.sampled_from(["intersects", "within"]),
        st.builds(q.Box, *(decimal(COORDS) for _ in range(4))),
    ),
)
other_predicates = st.one_of(
    st.builds(q.Compare, st.just(field("asset", "year")), ops, st.sampled_from([1999, 2026, 2000])),
    st.builds(
        q.Compare, st.just(field("track", "kind")), eq_ops, st.sampled_from(["video", "audio"])
    ),
    st.builds(q.Compare, st.just(field("track", "lang")), ops, st.sampled_from(["en", "fr", "de"])),
    st.builds(
        q.Compare, st.just(field("component", "algorithm")), eq_ops, st.sampled_from(["a", "b"])
    ),
    st.builds(q.Compare, st.just(field("asset", "title")), eq_ops, texts),
    st.builds(q.Contains, st.just(field("asset", "title")), words),
)
counts = st.builds(
    q.Count,
    st.sampled_from(["track", "component"]),
    st.one_of(st.none(), event_predicates),
    ops,
    st.integers(0, 3),
)


queries = st.recursive(
    st.one_of(event_predicates, other_predicates, counts),
    lambda inner: st.one_of(
        st.builds(q.Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: q.And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: q.Or(tuple(items))),
    ),
    max_leaves=5,
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    docs=st.lists(documents(), min_size=1, max_size=4),
    queries=st.lists(queries, min_size=1, max_size=4),
)
def test_the_index_agrees_with_the_oracle(
    docs: list[dict[str, Any]], queries: list[q.Expr]
) -> None:
    check_against_oracle(docs, queries)


def check_against_oracle(docs: list[dict[str, Any]], queries: list[q.Expr]) -> None:
    # Tiny chunks: the events of a component spread over several of them.
    with reeldb.connect("memory:", index_chunk_bytes=200) as db:
        db.create_namespace("v")
        db.add_schema("v", SCHEMA)
        db.create_datastore(DS, mid_keys=["id"], schema="everything")
        check_datastore(db, DS, docs, queries)


def check_datastore(
    db: reeldb.Database, ds: str, docs: list[dict[str, Any]], queries: list[q.Expr]
) -> None:
    """Store ``docs`` in the empty DataStore ``ds``; each query answers as the oracle does."""
    stored = [db.put_document(ds, {"id": str(i)}, doc) for i, doc in enumerate(docs)]
    for expr in queries:
        expected = {
            d.id
            for d, doc in zip(stored, docs, strict=True)
            if document_matches(expr, doc, TIMESTAMPS)
        }
        found = db.query_datastore(ds, expr, limit=1000)
        assert {m.id for m in found.items} == expected, expr
        for d, doc in zip(stored, docs, strict=True):
            want = [(m.path, m.regions) for m in matching_events(expr, doc, TIMESTAMPS)]
            page = db.query_document(d.id, expr, limit=1000)
            got = [
                (tuple(int(p) for p in m.path.split("/")[2::2]), m.region_indexes)
                for m in page.items
            ]
            assert got == want, (expr, doc)
            for m in page.items:  # the context comes from the index's chunks
                t, c, e = (int(p) for p in m.path.split("/")[2::2])
                track = doc["tracks"][t]
                event = track["components"][c]["events"][e]
                assert m.event == {k: v for k, v in event.items() if k != "regions"}
                assert m.track == {k: v for k, v in track.items() if k != "components"}
                assert m.regions == tuple(event["regions"][r] for r in m.region_indexes)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    docs=st.lists(documents(), min_size=1, max_size=3),
    predicates=st.lists(
        st.one_of(event_predicates, other_predicates, counts), min_size=4, max_size=8
    ),
)
def test_single_predicates_agree_with_the_oracle(
    docs: list[dict[str, Any]], predicates: list[q.Expr]
) -> None:
    """Bare predicates (and their negations): every boundary case is hit often."""
    check_against_oracle(docs, [*predicates, *(q.Not(p) for p in predicates)])
