"""Annotation search answers exactly what the brute-force oracle (`oracle.py`) answers.

Hypothesis generates annotation sets over a few types (Marken's ``BOUNDING_BOX`` in two
versions, types extending ``TEMPORAL_SPATIAL_BASE`` alone or with a second parent, and an
untimed one), updates and deletes some of them, then runs generated searches that combine
type, associations, time, box, text and ``where``, walking every page; and timelines.

Values come from small domains so that boundaries coincide: touching and zero-length time
ranges, zero-area boxes, boxes on the query's edge, words in several inflections, and
several annotations sharing associations.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oracle import (
    Cmp,
    In,
    Item,
    Not,
    Search,
    Timeline,
    TypeInfo,
    Where,
    expected,
    expected_timeline,
)

import reeldb
from reeldb.annotations import AnnotationHit, Annotations
from reeldb.errors import VersionConflictError
from reeldb.testing import BOUNDING_BOX

NS = "lab"
SCHEMAS: list[dict[str, Any]] = [
    copy.deepcopy(BOUNDING_BOX),
    {
        "type": "BOUNDING_BOX",
        "version": 1,
        "description": "adds a label and a caption",
        "keys": {
            "properties": {
                "boundingBox": {"type": "bounding_box", "mandatory": True},
                "boxTimeRange": {"type": "time_range", "mandatory": True},
                "label": {"type": "keyword", "mandatory": False},
                "caption": {"type": "text", "mandatory": False},
            }
        },
    },
    {"name": "LABELED_BASE", "properties": {"label": {"type": "keyword", "mandatory": True}}},
    {
        "name": "CHARACTER_IN_FRAME",
        "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED_BASE"],
        "properties": {
            "characterName": {"type": "text", "mandatory": True},
            "score": {"type": "int"},
        },
    },
    {
        "name": "NOTE",
        "extends": ["TEMPORAL_SPATIAL_BASE"],
        "properties": {
            "comment": {"type": "text"},
            "label": {"type": "keyword"},
            "score": {"type": "int"},
        },
    },
    {
        "name": "NOTE",
        "extends": ["TEMPORAL_SPATIAL_BASE"],
        "properties": {
            "comment": {"type": "text"},
            "label": {"type": "keyword"},
            "score": {"type": "int"},
            "color": {"type": "text"},
        },
    },
    {"name": "TAG", "properties": {"label": {"type": "keyword"}, "comment": {"type": "text"}}},
]
# What search reads of each type version: its time, its box, its text fields (the spec).
TS = {"time": "temporal", "box": "spatial"}
BB = {"time": "boxTimeRange", "box": "boundingBox"}
LAYOUTS: dict[tuple[str, int], dict[str, Any]] = {
    ("BOUNDING_BOX", 0): {**BB, "texts": ()},
    ("BOUNDING_BOX", 1): {**BB, "texts": ("caption",)},
    ("CHARACTER_IN_FRAME", 1): {**TS, "texts": ("characterName",)},
    ("NOTE", 1): {**TS, "texts": ("comment",)},
    ("NOTE", 2): {**TS, "texts": ("comment", "color")},
    ("TAG", 1): {"time": None, "box": None, "texts": ("comment",)},
}
VERSIONS = {"BOUNDING_BOX": (0, 1), "CHARACTER_IN_FRAME": (1,), "NOTE": (1, 2), "TAG": (1,)}
SEARCH_TYPES: list[tuple[str, int | None]] = [
    ("TEMPORAL_SPATIAL_BASE", None),
    ("TEMPORAL_SPATIAL_BASE", 0),
    ("LABELED_BASE", None),
    ("BOUNDING_BOX", None),
    ("BOUNDING_BOX", 0),
    ("BOUNDING_BOX", 1),
    ("CHARACTER_IN_FRAME", None),
    ("NOTE", None),
    ("NOTE", 1),
    ("NOTE", 2),
    ("TAG", None),
]
# The data fields a `where` may name for a searched type (keyword label, int score).
WHERE_FIELDS: dict[tuple[str, int | None], tuple[str, ...]] = {
    ("LABELED_BASE", None): ("label",),
    ("BOUNDING_BOX", None): ("label",),
    ("BOUNDING_BOX", 1): ("label",),
    ("CHARACTER_IN_FRAME", None): ("label", "score"),
    ("NOTE", None): ("label", "score"),
    ("NOTE", 1): ("label", "score"),
    ("NOTE", 2): ("label", "score"),
    ("TAG", None): ("label",),
}
TEXT_FIELDS = [("comment",), ("color",), ("characterName",), ("caption",), ("comment", "color")]
# With a type, text_fields must be text properties of it (of any of its versions).
TYPE_TEXTS: dict[tuple[str, int | None], tuple[str, ...]] = {
    ("BOUNDING_BOX", None): ("caption",),
    ("BOUNDING_BOX", 1): ("caption",),
    ("CHARACTER_IN_FRAME", None): ("characterName",),
    ("NOTE", None): ("comment", "color"),
    ("NOTE", 1): ("comment",),
    ("NOTE", 2): ("comment", "color"),
    ("TAG", None): ("comment",),
}
ASSOCIATIONS = [("VIDEO", "v1"), ("VIDEO", "v2"), ("SHOT", "s1")]
# Six stems in several spellings: "glove" finds "Gloves", "café" finds "CAFE".
WORDS = ["glove", "Gloves", "change", "changing", "changed", "black", "run", "running", "runs"]
WORDS += ["blue", "café", "CAFE"]
LABELS = ["car", "face", "Face", "tree"]
SORTS = ("time", "-time", "created", "-created", "relevance")


@dataclass(frozen=True)
class Domain:
    """The values coordinates are drawn from."""

    times: tuple[float, ...]
    rates: tuple[int, ...]
    coords: tuple[float, ...]
    sizes: tuple[float, ...]
    query_sizes: tuple[float, ...]


# Exactly representable in binary (even in 32 bits): only the semantics are under test.
DYADIC = Domain(
    (1, 0, 0.5, 1.5, 2, 3, 4, 10), (2, 4), (0.25, 0, 0.5, 0.75, 1), (0.25, 0.5, 0), (1, 0.5, 0)
)
# Decimal fractions: x + w and frame / rate are rounded; boundaries still coincide.
DECIMAL = Domain(
    (0.1, 0, 0.2, 0.3, 0.7, 1, 1.1, 2.2),
    (10,),
    (0.1, 0, 0.2, 0.3, 0.7, 1),
    (0.2, 0.1, 0.4, 0),
    (0.7, 0.3, 1.1, 0),
)


@dataclass
class Spec:
    """An annotation to create or the new content of one."""

    type: str
    version: int
    associations: tuple[tuple[str, str], ...]
    data: dict[str, Any]


@dataclass
class Scenario:
    """Annotations to create (in two batches), then updates and deletes, in order."""

    creates: list[Spec]
    split: int
    changes: list[tuple[int, Spec | None]] = field(default_factory=list)


def time_range(domain: Domain) -> st.SearchStrategy[dict[str, Any]]:
    seconds = st.lists(st.sampled_from(domain.times), min_size=2, max_size=2).map(sorted)
    frames = st.tuples(
        st.lists(st.integers(0, 24), min_size=2, max_size=2).map(sorted),
        st.sampled_from(domain.rates),
    )
    return st.one_of(
        seconds.map(lambda p: {"start": p[0], "end": p[1]}),
        frames.map(lambda f: {"start_frame": f[0][0], "end_frame": f[0][1], "rate": f[1]}),
    )


def box(domain: Domain) -> st.SearchStrategy[dict[str, float]]:
    return st.fixed_dictionaries(
        {
            "x": st.sampled_from(domain.coords),
            "y": st.sampled_from(domain.coords),
            "w": st.sampled_from(domain.sizes),
            "h": st.sampled_from(domain.sizes),
        }
    )


def sentence() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)


@st.composite
def content(draw: st.DrawFn, domain: Domain, name: str) -> Spec:
    """Valid data for a version of type ``name``, with one or two associations."""
    version = draw(st.sampled_from(VERSIONS[name]))
    optional: dict[str, st.SearchStrategy[Any]] = {}
    mandatory: dict[str, st.SearchStrategy[Any]] = {}
    if name == "BOUNDING_BOX":
        mandatory = {"boundingBox": box(domain), "boxTimeRange": time_range(domain)}
        if version == 1:
            optional = {"label": st.sampled_from(LABELS), "caption": sentence()}
    elif name == "TAG":
        optional = {"label": st.sampled_from(LABELS), "comment": sentence()}
    else:
        optional = {"temporal": time_range(domain), "spatial": box(domain)}
        optional["score"] = st.integers(0, 5)
        if name == "CHARACTER_IN_FRAME":
            mandatory = {"label": st.sampled_from(LABELS), "characterName": sentence()}
        else:
            optional |= {"label": st.sampled_from(LABELS), "comment": sentence()}
            if version == 2:
                optional["color"] = sentence()
    data = draw(st.fixed_dictionaries(mandatory, optional=optional))
    links = draw(st.lists(st.sampled_from(ASSOCIATIONS), min_size=1, max_size=2, unique=True))
    return Spec(name, version, tuple(links), data)


@st.composite
def scenarios(draw: st.DrawFn, domain: Domain) -> Scenario:
    names = st.sampled_from(sorted(VERSIONS))
    size = draw(st.integers(10, 40))
    creates = [draw(content(domain, draw(names))) for _ in range(size)]
    changes: list[tuple[int, Spec | None]] = []
    for _ in range(draw(st.integers(0, 8))):
        index = draw(st.integers(0, len(creates) - 1))
        deleted = draw(st.booleans())
        changes.append((index, None if deleted else draw(content(domain, creates[index].type))))
    return Scenario(creates, draw(st.integers(0, len(creates))), changes)


@st.composite
def wheres(draw: st.DrawFn, fields: tuple[str, ...]) -> Where:
    name = draw(st.sampled_from(fields))
    if name == "score":
        values: st.SearchStrategy[Any] = st.one_of(st.integers(0, 5), st.just(2.5))
    else:
        values = st.sampled_from(LABELS)
    ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
    plain = st.one_of(
        st.builds(Cmp, st.just(name), ops, values),
        st.builds(
            In,
            st.just(name),
            st.lists(st.sampled_from(LABELS) if name == "label" else st.integers(0, 5), min_size=1)
            .map(tuple)
            .filter(lambda v: len(v) <= 3),
        ),
    )
    return draw(st.one_of(plain, plain.map(Not)))


def text_fields(kind: tuple[str, int | None] | None) -> st.SearchStrategy[tuple[str, ...]]:
    if kind is None:
        return st.sampled_from(TEXT_FIELDS)
    names = TYPE_TEXTS.get(kind, ())
    if not names:
        return st.nothing()
    return st.lists(st.sampled_from(names), min_size=1, unique=True).map(tuple)


CONDITIONS = ("type", "associations", "time", "box", "text", "where")


@st.composite
def searches(draw: st.DrawFn, domain: Domain) -> Search:
    """A search with one to three kinds of condition (so that many answers are not empty)."""
    wanted = draw(st.sets(st.sampled_from(CONDITIONS), min_size=1, max_size=3))
    kind = None
    if "type" in wanted or "where" in wanted:
        choices = SEARCH_TYPES if "where" not in wanted else sorted(WHERE_FIELDS, key=str)
        kind = draw(st.sampled_from(choices))
    text = None
    if "text" in wanted:
        words = st.sampled_from(WORDS)
        text = draw(st.one_of(words, words, words, st.tuples(words, words).map(" ".join)))
    window = st.lists(st.sampled_from(domain.times), min_size=2, max_size=2).map(
        lambda p: (min(p), max(p))
    )
    area = st.tuples(
        *(st.sampled_from(domain.coords),) * 2, *(st.sampled_from(domain.query_sizes),) * 2
    )
    ops = ["overlaps", "within"]
    fields = WHERE_FIELDS.get(kind) if kind is not None and "where" in wanted else None
    return Search(
        type=kind,
        subtypes=draw(st.booleans()),
        associations=tuple(
            draw(st.lists(st.sampled_from(ASSOCIATIONS), min_size=1, max_size=2, unique=True))
        )
        if "associations" in wanted
        else (),
        time=draw(window) if "time" in wanted else None,
        time_op=draw(st.sampled_from(ops)),
        box=draw(area) if "box" in wanted else None,
        box_op=draw(st.sampled_from(ops)).replace("overlaps", "intersects"),
        text=text,
        text_fields=draw(st.none() | text_fields(kind)) if text else None,
        where=draw(wheres(fields)) if fields else None,
        sort=draw(st.sampled_from(SORTS if text else SORTS[:-1])),
        limit=draw(st.integers(1, 6)),
    )


@st.composite
def timelines(draw: st.DrawFn, domain: Domain) -> Timeline:
    start, end = sorted(draw(st.lists(st.sampled_from(domain.times), min_size=2, max_size=2)))
    return Timeline(
        association=draw(st.sampled_from(ASSOCIATIONS)),
        start=draw(st.none() | st.just(start)),
        end=draw(st.none() | st.just(end)),
        type=draw(st.none() | st.sampled_from(["TEMPORAL_SPATIAL_BASE", "NOTE", "BOUNDING_BOX"])),
        limit=draw(st.integers(1, 6)),
    )


# -- running a scenario --------------------------------------------------------------------


def type_infos(db: reeldb.Database) -> dict[tuple[str, int], TypeInfo]:
    out = {}
    for (name, version), layout in LAYOUTS.items():
        schema = db.get_schema(NS, name, version)
        lineage = []
        for entry in schema.lineage:  # "namespace/NAME vN", the type first
            ref, _, number = entry.partition(" v")
            lineage.append((ref.split("/", 1)[1], int(number)))
        out[name, version] = TypeInfo(name, version, tuple(lineage), **layout)
    return out


def open_database() -> reeldb.Database:
    db = reeldb.connect("memory:")
    db.create_namespace(NS)
    for definition in SCHEMAS:
        db.add_schema(NS, copy.deepcopy(definition))
    return db


def as_json(spec: Spec) -> dict[str, Any]:
    return {
        "type": f"{spec.type}@{spec.version}",
        "associations": [{"type": t, "id": i} for t, i in spec.associations],
        "data": spec.data,
    }


def play(db: reeldb.Database, scenario: Scenario) -> list[Item]:
    """Store the scenario and return the live annotations as the oracle sees them."""
    types = type_infos(db)
    ann = db.annotations
    first, second = scenario.creates[: scenario.split], scenario.creates[scenario.split :]
    created = [
        a for batch in (first, second) if batch for a in ann.create_many(NS, map(as_json, batch))
    ]
    items: list[Item | None] = [
        Item(a.id, seq, types[s.type, s.version], frozenset(s.associations), s.data)
        for seq, (a, s) in enumerate(zip(created, scenario.creates, strict=True))
    ]
    for index, change in scenario.changes:
        item = items[index]
        ident = created[index].id
        if item is None:  # deleted: neither update nor delete may touch it
            with pytest.raises(VersionConflictError):
                if change is None:
                    ann.delete(NS, ident)
                else:
                    ann.update(NS, ident, expected_version=99, data=change.data)
            continue
        if change is None:
            ann.delete(NS, ident, expected_version=item.version)
            items[index] = None
            continue
        new = ann.update(
            NS,
            ident,
            expected_version=item.version,
            type=f"{change.type}@{change.version}",
            data=change.data,
            associations=[{"type": t, "id": i} for t, i in change.associations],
        )
        assert new.version == item.version + 1
        item.version = new.version
        item.type = types[change.type, change.version]
        item.associations = frozenset(change.associations)
        item.data = change.data
    live = [i for i in items if i is not None]
    assert ann.count(NS) == len(live)
    return live


def walk(ann: Annotations, search: Search) -> list[AnnotationHit]:
    """Every page of a search, checking each page's size."""
    hits: list[AnnotationHit] = []
    cursor = None
    for _ in range(1000):
        page = ann.search(NS, cursor=cursor, **search.kwargs())
        assert len(page.items) <= search.limit
        hits += page.items
        if page.next_cursor is None:
            return hits
        assert page.items, "a page with a next cursor holds something"
        cursor = page.next_cursor
    raise AssertionError("the pages never end")


def check_search(ann: Annotations, live: list[Item], search: Search) -> None:
    hits = walk(ann, search)
    got = [h.annotation.id for h in hits]
    want = expected(live, search)
    assert len(set(got)) == len(got), f"a page repeats an annotation: {search}"
    if search.sort == "relevance":
        assert sorted(got) == sorted(want), search
        scores = [h.score for h in hits]
        assert all(s is not None for s in scores)
        assert scores == sorted(scores, reverse=True), search  # type: ignore[type-var]
    else:
        assert got == want, search
    by_id = {i.id: i for i in live}
    for hit in hits:  # every hit is the current version
        item = by_id[hit.annotation.id]
        assert (hit.annotation.version, hit.annotation.data) == (item.version, item.data)
        assert hit.annotation.type.name == item.type.name
        assert not hit.annotation.deleted


def check_timeline(ann: Annotations, live: list[Item], timeline: Timeline) -> None:
    got = []
    cursor = None
    for _ in range(1000):
        page = ann.timeline(
            NS,
            {"type": timeline.association[0], "id": timeline.association[1]},
            timeline.start,
            timeline.end,
            type=timeline.type,
            limit=timeline.limit,
            cursor=cursor,
        )
        assert len(page.items) <= timeline.limit
        got += [a.id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert got == expected_timeline(live, timeline), timeline


def run(scenario: Scenario, queries: list[Search], windows: list[Timeline]) -> None:
    with open_database() as db:
        live = play(db, scenario)
        for search in queries:
            check_search(db.annotations, live, search)
        for timeline in windows:
            check_timeline(db.annotations, live, timeline)


PROPERTY = settings(
    max_examples=int(os.environ.get("REELDB_ORACLE_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


UNTIMED = Spec("NOTE", 1, (("VIDEO", "v1"),), {})
TIMED = Spec("NOTE", 1, (("VIDEO", "v1"),), {"temporal": {"start": 1, "end": 2}})
NOTE_01 = Spec(
    "NOTE",
    1,
    (("VIDEO", "v1"),),
    {"temporal": {"start": 0.1, "end": 0.2}, "spatial": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.1}},
)


@PROPERTY
@example(  # a cursor after an untimed annotation (its start sorts as 1e300)
    scenario=Scenario([UNTIMED, UNTIMED, TIMED], 3),
    queries=[Search(sort="-time", limit=1), Search(sort="time", limit=2)],
    windows=[],
)
@given(
    scenarios(DYADIC),
    st.lists(searches(DYADIC), min_size=1, max_size=8),
    st.lists(timelines(DYADIC), max_size=3),
)
def test_search_and_timeline_agree_with_the_oracle(
    scenario: Scenario, queries: list[Search], windows: list[Timeline]
) -> None:
    run(scenario, queries, windows)


@PROPERTY
@example(  # bounds that 32 bits cannot hold: within from the R*Tree
    scenario=Scenario([NOTE_01], 1),
    queries=[
        Search(time=(0.1, 0.2), time_op="within"),
        Search(box=(0.1, 0.1, 0.2, 0.1), box_op="within"),
    ],
    windows=[],
)
@given(
    scenarios(DECIMAL),
    st.lists(searches(DECIMAL), min_size=1, max_size=8),
    st.lists(timelines(DECIMAL), max_size=3),
)
def test_search_and_timeline_agree_with_the_oracle_on_decimal_coordinates(
    scenario: Scenario, queries: list[Search], windows: list[Timeline]
) -> None:
    run(scenario, queries, windows)
