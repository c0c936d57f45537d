"""`Database.annotations`: every point of the annotations issue, on memory and file databases.

AT-04 to AT-09 of ../shared/REQUIREMENTS.md, their error paths, pagination in every order,
timelines, and persistence across a reopen.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reeldb
from reeldb.annotations import Annotation, AnnotationHit, Annotations, Association, TypeRef
from reeldb.errors import (
    AlreadyExistsError,
    DeletedError,
    IncompatibleSchemaError,
    NotFoundError,
    QueryError,
    ValidationError,
    VersionConflictError,
)
from reeldb.testing import BOUNDING_BOX, FACE_DETECTION

NS = "vision"
VIDEO = {"type": "VIDEO", "id": "video-42"}
MOVIE = {"type": "MOVIE", "id": "1234"}

E1 = BOUNDING_BOX
E2_DATA = {
    "boundingBox": {"x": 120, "y": 80, "w": 200, "h": 150},
    "boxTimeRange": {"start": 10, "end": 12.5},
}
E4_V1 = {
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
E4_V2 = {
    "type": "BOUNDING_BOX",
    "version": 2,
    "description": "illegal type change",
    "keys": {
        "properties": {
            "boundingBox": {"type": "string", "mandatory": True},
            "boxTimeRange": {"type": "time_range", "mandatory": True},
        }
    },
}
LABELED_BASE = {
    "type": "LABELED_BASE",
    "version": 0,
    "description": "Illustrative second parent",
    "keys": {"properties": {"label": {"type": "string", "mandatory": True}}},
}
CHARACTER_IN_FRAME = {
    "type": "CHARACTER_IN_FRAME",
    "version": 0,
    "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED_BASE"],
    "description": "ML character recognition result",
    "keys": {"properties": {"characterName": {"type": "string", "mandatory": True}}},
}
CONTENT_TAG = {
    "type": "CONTENT_TAG",
    "version": 0,
    "description": "A tag on any entity",
    "keys": {"properties": {"label": {"type": "string", "mandatory": True}}},
}
REVIEW_NOTE = {
    "type": "REVIEW_NOTE",
    "version": 0,
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "description": "A creative-review note: a mark on a frame and a comment",
    "keys": {
        "properties": {
            "comment": {"type": "text", "mandatory": True},
            "color": {"type": "text", "mandatory": False},
            "mark": {
                "type": "object",
                "properties": {
                    "shape": {"type": "keyword", "mandatory": True},
                    "center": {
                        "type": "object",
                        "properties": {"x": {"type": "float"}, "y": {"type": "float"}},
                    },
                    "radius": {"type": "float"},
                    "color": {"type": "keyword"},
                },
            },
        }
    },
}
E7_DATA: dict[str, Any] = {
    "temporal": {"start": 61, "end": 61.042},
    "spatial": {"x": 0.57, "y": 0.36, "w": 0.1, "h": 0.1},
    "comment": "Please change the colour of the gloves to rich black",
    "color": "blue",
    "mark": {"shape": "circle", "center": {"x": 0.62, "y": 0.41}, "radius": 0.05, "color": "blue"},
}


@pytest.fixture(params=["memory", "file", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return "memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'reel.db'}"


@pytest.fixture
def db(db_url: str) -> Iterator[reeldb.Database]:
    with reeldb.connect(db_url) as database:
        database.create_namespace(NS)
        yield database


@pytest.fixture
def ann(db: reeldb.Database) -> Annotations:
    return db.annotations


@pytest.fixture
def characters(db: reeldb.Database) -> Annotations:
    """E5 registered: LABELED_BASE and CHARACTER_IN_FRAME (two parents)."""
    db.add_schema(NS, copy.deepcopy(LABELED_BASE))
    db.add_schema(NS, copy.deepcopy(CHARACTER_IN_FRAME))
    return db.annotations


@pytest.fixture
def boxes(db: reeldb.Database) -> Annotations:
    db.add_schema(NS, copy.deepcopy(E1))
    return db.annotations


def ids(items: Any) -> list[uuid.UUID]:
    return [i.annotation.id if isinstance(i, AnnotationHit) else i.id for i in items]


def all_pages(ann: Annotations, limit: int, **search: Any) -> list[AnnotationHit]:
    """Every page of a search; checks page sizes and that pages end."""
    hits: list[AnnotationHit] = []
    cursor = None
    for _ in range(10_000):
        page = ann.search(NS, limit=limit, cursor=cursor, **search)
        assert len(page.items) <= limit
        hits += page.items
        if page.next_cursor is None:
            return hits
        assert len(page.items) == limit, "only the last page is short"
        cursor = page.next_cursor
    raise AssertionError("the pages never end")


def character(name: str, start: float | None, box: tuple[float, ...] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"label": "character", "characterName": name}
    if start is not None:
        data["temporal"] = {"start": start, "end": start + 1 / 24}
    if box is not None:
        data["spatial"] = dict(zip("xywh", box, strict=True))
    return data


# -- AT-04: schema registration and validation ------------------------------------------------


def test_at04_bounding_box_schema_verbatim_and_e2_accepted(
    db: reeldb.Database, ann: Annotations
) -> None:
    stored = db.add_schema(NS, copy.deepcopy(E1))
    fetched = db.get_schema(NS, "BOUNDING_BOX", 0)
    assert (fetched.name, fetched.version, fetched.kind.value) == ("BOUNDING_BOX", 0, "properties")
    assert fetched.definition == E1 == stored.definition
    e2 = ann.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    assert isinstance(e2.id, uuid.UUID) and e2.version == 1 and not e2.deleted
    assert e2.type == TypeRef("BOUNDING_BOX", 0)
    assert e2.associations == (Association("VIDEO", "video-42"),)
    again = ann.get(NS, e2.id)
    assert (again.data, again.type, again.version) == (E2_DATA, TypeRef("BOUNDING_BOX", 0), 1)
    assert again.to_json()["id"] == str(e2.id)
    # Every accepted spelling of the type.
    for spelling in (
        "BOUNDING_BOX@0",
        {"name": "BOUNDING_BOX", "version": 0},
        TypeRef("BOUNDING_BOX", 0),
    ):
        assert ann.create(NS, spelling, [VIDEO], E2_DATA).type == TypeRef("BOUNDING_BOX", 0)


def test_at04_e3_missing_box_time_range_is_rejected_naming_it(boxes: Annotations) -> None:
    with pytest.raises(ValidationError) as caught:
        boxes.create(
            NS, "BOUNDING_BOX", [VIDEO], {"boundingBox": {"x": 0, "y": 0, "w": 10, "h": 10}}
        )
    assert "boxTimeRange" in str(caught.value)
    assert any(
        "boxTimeRange" in v.message or "boxTimeRange" in v.pointer for v in caught.value.violations
    )
    assert boxes.count(NS) == 0


def test_at04_a_type_mismatch_is_rejected(boxes: Annotations) -> None:
    data = {"boundingBox": {"x": 0, "y": 0, "w": 10, "h": 10}, "boxTimeRange": "soon"}
    with pytest.raises(ValidationError) as caught:
        boxes.create(NS, "BOUNDING_BOX", [VIDEO], data)
    assert [v.pointer for v in caught.value.violations] == ["/data/boxTimeRange"]
    with pytest.raises(ValidationError) as caught:
        boxes.create(
            NS,
            "BOUNDING_BOX",
            [VIDEO],
            {**data, "boundingBox": "here", "boxTimeRange": {"start": 0, "end": 1}},
        )
    assert [v.pointer for v in caught.value.violations] == ["/data/boundingBox"]
    assert boxes.count(NS) == 0


# -- AT-05: schema evolution ------------------------------------------------------------------


def test_at05_v1_adds_an_optional_label_and_v2_changing_a_type_is_rejected(
    db: reeldb.Database, boxes: Annotations
) -> None:
    e2 = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    assert db.add_schema(NS, copy.deepcopy(E4_V1)).version == 1
    # E2 still reads, and still validates against v0 (an update keeps its type version).
    assert boxes.get(NS, e2.id).type == TypeRef("BOUNDING_BOX", 0)
    moved = {**E2_DATA, "boxTimeRange": {"start": 11, "end": 12}}
    updated = boxes.update(NS, e2.id, expected_version=1, data=moved)
    assert (updated.version, updated.type) == (2, TypeRef("BOUNDING_BOX", 0))
    with pytest.raises(ValidationError):  # v0 has no label
        boxes.update(NS, e2.id, expected_version=2, data={**moved, "label": "car"})
    # New annotations may use v1 (the latest by default) with a label.
    labelled = boxes.create(NS, "BOUNDING_BOX", [VIDEO], {**E2_DATA, "label": "car"})
    assert labelled.type == TypeRef("BOUNDING_BOX", 1)
    plain = boxes.create(NS, "BOUNDING_BOX@1", [VIDEO], E2_DATA)
    assert plain.type.version == 1
    with pytest.raises(ValidationError):
        boxes.create(NS, "BOUNDING_BOX@0", [VIDEO], {**E2_DATA, "label": "car"})
    # v2 changes boundingBox's type: rejected, naming it; the registry is unchanged.
    with pytest.raises(IncompatibleSchemaError) as caught:
        db.add_schema(NS, copy.deepcopy(E4_V2))
    assert "boundingBox" in str(caught.value)
    assert any("boundingBox" in i.path for i in caught.value.incompatibilities)
    assert db.get_schema(NS, "BOUNDING_BOX").version == 1
    with pytest.raises(ValidationError, match="no version 2"):
        boxes.create(NS, "BOUNDING_BOX@2", [VIDEO], E2_DATA)
    # Searching by version.
    assert ids(boxes.search(NS, type="BOUNDING_BOX@0").items) == [e2.id]
    assert ids(boxes.search(NS, type="BOUNDING_BOX@1").items) == [labelled.id, plain.id]
    assert len(boxes.search(NS, type="BOUNDING_BOX").items) == 3
    # An update may move an annotation to another version of its type.
    to_v1 = boxes.update(
        NS, e2.id, expected_version=2, type="BOUNDING_BOX@1", data={**moved, "label": "x"}
    )
    assert (to_v1.version, to_v1.type) == (3, TypeRef("BOUNDING_BOX", 1))
    assert boxes.get(NS, e2.id, 2).type == TypeRef("BOUNDING_BOX", 0)
    assert boxes.search(NS, type="BOUNDING_BOX@0").items == ()


# -- AT-06: multiple inheritance and the platform base -------------------------------------


def test_at06_two_parents_optional_time_and_space_mandatory_label(
    db: reeldb.Database, characters: Annotations
) -> None:
    schema = db.get_schema(NS, "CHARACTER_IN_FRAME")
    mandatory = {name: spec["mandatory"] for name, spec in schema.resolved.items()}
    assert mandatory == {"temporal": False, "spatial": False, "label": True, "characterName": True}
    bare = characters.create(
        NS, "CHARACTER_IN_FRAME", [VIDEO], {"label": "c", "characterName": "Alice"}
    )
    full = characters.create(NS, "CHARACTER_IN_FRAME", [VIDEO], character("Bob", 3, (0, 0, 1, 1)))
    with pytest.raises(ValidationError) as caught:
        characters.create(NS, "CHARACTER_IN_FRAME", [VIDEO], {"characterName": "Alice"})
    assert "label" in str(caught.value)
    with pytest.raises(ValidationError, match="characterName"):
        characters.create(NS, "CHARACTER_IN_FRAME", [VIDEO], {"label": "c"})
    db.add_schema(NS, copy.deepcopy(CONTENT_TAG))  # not a TEMPORAL_SPATIAL_BASE
    tag = characters.create(NS, "CONTENT_TAG", [VIDEO], {"label": "c"})
    both = {bare.id, full.id}
    assert set(ids(characters.search(NS, type="TEMPORAL_SPATIAL_BASE").items)) == both
    assert set(ids(characters.search(NS, type="TEMPORAL_SPATIAL_BASE@0").items)) == both
    assert set(ids(characters.search(NS, type="LABELED_BASE").items)) == both
    assert characters.search(NS, type="TEMPORAL_SPATIAL_BASE", subtypes=False).items == ()
    assert characters.search(NS, type="LABELED_BASE", subtypes=False).items == ()
    assert set(ids(characters.search(NS, type="CHARACTER_IN_FRAME", subtypes=False).items)) == both
    assert ids(characters.search(NS, type="CONTENT_TAG").items) == [tag.id]
    # is-a combines with the rest: the timed one only.
    assert ids(characters.search(NS, type="TEMPORAL_SPATIAL_BASE", time=(0, 10)).items) == [full.id]
    # A where on a parent's property, through the child type.
    found = characters.search(NS, type="LABELED_BASE", where='data.label = "c"')
    assert ids(found.items) == [bare.id]


# -- AT-07: CRUD, versions, association search ---------------------------------------------


def test_at07_crud_versions_and_association_search(db: reeldb.Database, ann: Annotations) -> None:
    db.add_schema(NS, copy.deepcopy(CONTENT_TAG))
    e6 = ann.create(NS, "CONTENT_TAG", [MOVIE], {"label": "violence"})
    other = ann.create(NS, "CONTENT_TAG", [{"type": "MOVIE", "id": "999"}], {"label": "x"})
    read = ann.get(NS, e6.id)
    assert (read.data, read.version, read.associations) == (
        {"label": "violence"},
        1,
        (Association("MOVIE", "1234"),),
    )
    assert read.created_at == e6.created_at
    assert [h.annotation for h in ann.search(NS, associations=[MOVIE]).items] == [read]
    updated = ann.update(NS, e6.id, expected_version=1, data={"label": "graphic violence"})
    assert updated.version == 2
    assert ann.get(NS, e6.id).version == 2
    assert ann.get(NS, e6.id).data == {"label": "graphic violence"}
    assert ann.get(NS, e6.id, 1).data == {"label": "violence"}
    assert ann.get(NS, e6.id, version=2) == ann.get(NS, e6.id)
    [hit] = ann.search(NS, associations=[MOVIE]).items
    assert (hit.annotation.id, hit.annotation.version) == (e6.id, 2)
    assert hit.annotation.data == {"label": "graphic violence"}
    assert ann.count(NS) == 2
    tomb = ann.delete(NS, e6.id, expected_version=2)
    assert (tomb.version, tomb.deleted, tomb.data) == (3, True, {"label": "graphic violence"})
    assert ann.search(NS, associations=[MOVIE]).items == ()
    assert ids(ann.search(NS).items) == [other.id]
    assert ann.count(NS) == 1
    with pytest.raises(DeletedError):
        ann.get(NS, e6.id)
    assert ann.get(NS, e6.id, version=1).data == {"label": "violence"}
    assert ann.get(NS, e6.id, version=3).deleted
    with pytest.raises(NotFoundError):
        ann.get(NS, e6.id, version=4)
    history = ann.versions(NS, e6.id)
    assert [(v.version, v.deleted, v.data["label"]) for v in history] == [
        (1, False, "violence"),
        (2, False, "graphic violence"),
        (3, True, "graphic violence"),
    ]


def test_at07_search_by_every_association_and_changed_associations(
    db: reeldb.Database, ann: Annotations
) -> None:
    db.add_schema(NS, copy.deepcopy(CONTENT_TAG))
    shot = {"type": "SHOT_ID", "id": "s-1"}
    a = ann.create(NS, "CONTENT_TAG", [MOVIE, shot], {"label": "a"})
    b = ann.create(NS, "CONTENT_TAG", [MOVIE], {"label": "b"})
    c = ann.create(NS, "CONTENT_TAG", [shot], {"label": "c"})
    assert ids(ann.search(NS, associations=[MOVIE]).items) == [a.id, b.id]
    assert ids(ann.search(NS, associations=[shot]).items) == [a.id, c.id]
    assert ids(ann.search(NS, associations=[MOVIE, shot]).items) == [a.id]
    assert ids(ann.search(NS, associations=[shot, MOVIE, shot]).items) == [a.id]
    assert ann.search(NS, associations=[MOVIE, {"type": "SHOT_ID", "id": "nope"}]).items == ()
    assert ann.search(NS, associations=[{"type": "MOVIE", "id": "1234 "}]).items == ()
    # Associations change with an update; the old ones no longer find it.
    ann.update(NS, b.id, expected_version=1, associations=[shot])
    assert ids(ann.search(NS, associations=[MOVIE]).items) == [a.id]
    assert ids(ann.search(NS, associations=[shot]).items) == [a.id, b.id, c.id]
    assert ann.get(NS, b.id).data == {"label": "b"}  # kept when not given
    # Duplicates are dropped on the way in.
    d = ann.create(NS, "CONTENT_TAG", [MOVIE, MOVIE], {"label": "d"})
    assert d.associations == (Association("MOVIE", "1234"),)


# -- AT-08: temporal + spatial search over frame annotations -------------------------------


def test_at08_only_alices_upper_left_frames_overlap_the_window(characters: Annotations) -> None:
    items, alice_upper_left = [], []
    for i in range(1000):
        frame = i % 240  # 240 frames at 24 fps: 10 s
        if i % 10 < 4:  # Alice, 70-80 s, upper left
            data = character("Alice", 70 + frame / 24, (0.05 + (i % 7) / 100, 0.1, 0.2, 0.25))
            alice_upper_left.append(i)
        elif i % 10 < 7:  # Bob, 70-80 s, lower right
            data = character("Bob", 70 + frame / 24, (0.6, 0.55 + (i % 5) / 100, 0.2, 0.3))
        else:  # Alice, 200-210 s, lower right
            data = character("Alice", 200 + frame / 24, (0.6, 0.6, 0.2, 0.2))
        items.append({"type": "CHARACTER_IN_FRAME", "associations": [VIDEO], "data": data})
    created = characters.create_many(NS, items)
    assert len(created) == 1000 and characters.count(NS) == 1000
    want = {
        created[i].id
        for i in alice_upper_left
        if created[i].data["temporal"]["start"] <= 75 and created[i].data["temporal"]["end"] >= 72
    }
    assert 0 < len(want) < 400
    hits = all_pages(characters, 50, associations=[VIDEO], time=(72, 75), box=(0, 0, 0.5, 0.5))
    assert {h.annotation.id for h in hits} == want and len(hits) == len(want)
    for hit in hits:  # each with its frame time, region and characterName
        data = hit.annotation.data
        assert data["characterName"] == "Alice"
        assert 72 - 1 / 24 <= data["temporal"]["start"] <= 75
        assert data["spatial"]["x"] + data["spatial"]["w"] <= 0.5
    starts = [h.annotation.data["temporal"]["start"] for h in hits]
    assert starts == sorted(starts)
    # The same answer without the association, or with the type instead.
    for search in ({}, {"type": "CHARACTER_IN_FRAME"}, {"type": "TEMPORAL_SPATIAL_BASE"}):
        again = all_pages(characters, 1000, time=(72, 75), box=(0, 0, 0.5, 0.5), **search)
        assert {h.annotation.id for h in again} == want
    # Within: the frames that lie inside [72, 75].
    inside = all_pages(characters, 1000, associations=[VIDEO], time=(72, 75), time_op="within")
    assert {h.annotation.id for h in inside} == {
        a.id
        for a in created
        if a.data["temporal"]["start"] >= 72 and a.data["temporal"]["end"] <= 75
    }
    # And through a where on the same fields.
    where = (
        'data.characterName = "Alice" and data.temporal overlaps(72, 75) '
        "and data.spatial intersects(0, 0, 0.5, 0.5)"
    )
    found = all_pages(characters, 1000, type="CHARACTER_IN_FRAME", where=where)
    assert {h.annotation.id for h in found} == want


# -- AT-09: full text and stems ------------------------------------------------------------


@pytest.fixture
def reviews(db: reeldb.Database, ann: Annotations) -> tuple[Annotations, Annotation]:
    db.add_schema(NS, copy.deepcopy(REVIEW_NOTE))
    notes = [
        f"Shot {i}: {word} looks fine, keep the {other} as it is"
        for i, (word, other) in enumerate(
            (w, o)
            for w in ("lighting", "framing", "focus", "grain", "audio")
            for o in ("sky", "crowd", "red car", "logo") * 5
        )
    ]
    assert len(notes) == 100
    cut = {"type": "VIDEO", "id": "cut-v3"}
    ann.create_many(
        NS,
        [
            {"type": "REVIEW_NOTE", "associations": [cut], "data": {"comment": c, "color": "red"}}
            for c in notes
        ],
    )
    e7 = ann.create(NS, "REVIEW_NOTE", [cut, {"type": "REVIEW_SESSION", "id": "rs-7"}], E7_DATA)
    return ann, e7


def test_at09_stemmed_full_text_finds_the_review_note(
    reviews: tuple[Annotations, Annotation],
) -> None:
    ann, e7 = reviews
    comment = E7_DATA["comment"]
    for word, marked in (("glove", "gloves"), ("changing", "change"), ("black", "black")):
        [hit] = ann.search(NS, text=word).items
        assert hit.annotation.id == e7.id
        assert hit.annotation.data == E7_DATA  # the circle (color: blue) comes back intact
        assert hit.highlights == {"comment": comment.replace(marked, f"<em>{marked}</em>")}
        assert hit.score is not None and hit.score > 0
    # "blue" is in another field: search covers every text field.
    [hit] = ann.search(NS, text="blue").items
    assert hit.annotation.id == e7.id and hit.highlights == {"color": "<em>blue</em>"}
    assert ann.search(NS, text="Blue", text_fields=["comment"]).items == ()
    assert ids(ann.search(NS, text="BLUE", text_fields=["color"]).items) == [e7.id]
    assert ids(ann.search(NS, text="gloves", text_fields=["comment", "color"]).items) == [e7.id]
    # Phrases: in order, next to each other.
    assert ids(ann.search(NS, text="rich black").items) == [e7.id]
    assert ids(ann.search(NS, text="riches blacks").items) == [e7.id]
    assert ann.search(NS, text="black rich").items == ()
    assert ann.search(NS, text="change gloves").items == ()
    assert ann.search(NS, text="glove", type="REVIEW_NOTE", time=(0, 60)).items == ()
    # Words of many notes: relevance, with highlights on each.
    crowd = ann.search(NS, text="crowd", limit=1000).items
    assert len(crowd) == 25 and all(
        h.highlights["comment"].count("<em>crowd</em>") == 1 for h in crowd
    )
    assert ids(
        ann.search(NS, text="glove", associations=[{"type": "REVIEW_SESSION", "id": "rs-7"}]).items
    ) == [e7.id]
    # A text search sorted by time has no score.
    [timed] = ann.search(NS, text="glove", sort="time").items
    assert timed.annotation.id == e7.id and timed.score is None


def test_at09_relevance_ranks_the_better_match_first(db: reeldb.Database, ann: Annotations) -> None:
    db.add_schema(NS, copy.deepcopy(REVIEW_NOTE))
    once = ann.create(
        NS, "REVIEW_NOTE", [VIDEO], {"comment": "a glove among many other words here"}
    )
    twice = ann.create(NS, "REVIEW_NOTE", [VIDEO], {"comment": "glove glove"})
    hits = ann.search(NS, text="gloves").items
    assert ids(hits) == [twice.id, once.id]
    assert hits[0].score is not None and hits[1].score is not None
    assert hits[0].score > hits[1].score
    assert hits[0].highlights == {"comment": "<em>glove</em> <em>glove</em>"}


# -- Error paths -------------------------------------------------------------------------------


def test_unknown_types_versions_and_document_schemas_are_rejected(
    db: reeldb.Database, boxes: Annotations
) -> None:
    db.add_schema(NS, copy.deepcopy(FACE_DETECTION))
    for kind, words in (
        ("BOUNDING_BOX@7", "no version 7"),
        ({"name": "BOUNDING_BOX", "version": 7}, "no version 7"),
        ("NOPE", "NOPE"),
        ("BOUNDING_BOX@x", "NAME@VERSION"),
        ("", "NAME@VERSION"),
        ("face_detection", "document schema"),
    ):
        with pytest.raises(ValidationError, match=words) as caught:
            boxes.create(NS, kind, [VIDEO], E2_DATA)
        assert [v.pointer for v in caught.value.violations] == ["/type"], kind
    for kind in ("BOUNDING_BOX@7", "NOPE", "BOUNDING_BOX@x"):
        with pytest.raises(QueryError):
            boxes.search(NS, type=kind)
    assert boxes.count(NS) == 0
    # Types of another namespace are unknown here.
    db.create_namespace("other")
    with pytest.raises(ValidationError, match="BOUNDING_BOX"):
        boxes.create("other", "BOUNDING_BOX", [VIDEO], E2_DATA)
    with pytest.raises(NotFoundError):
        boxes.create("nowhere", "BOUNDING_BOX", [VIDEO], E2_DATA)


def test_stale_expected_version_is_a_conflict_naming_the_current_one(boxes: Annotations) -> None:
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    boxes.update(NS, a.id, expected_version=1, data=E2_DATA)
    for stale in (1, 3, 0):
        with pytest.raises(VersionConflictError) as caught:
            boxes.update(NS, a.id, expected_version=stale, data=E2_DATA)
        assert caught.value.current == 2
    with pytest.raises(VersionConflictError) as caught:
        boxes.delete(NS, a.id, expected_version=1)
    assert caught.value.current == 2
    assert [v.version for v in boxes.versions(NS, a.id)] == [1, 2]
    with pytest.raises(ValidationError):
        boxes.update(NS, a.id, expected_version="2", data=E2_DATA)  # type: ignore[arg-type]


def test_a_deleted_annotation_cannot_be_updated_or_deleted_again(boxes: Annotations) -> None:
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    boxes.delete(NS, a.id)
    with pytest.raises(VersionConflictError) as caught:
        boxes.update(NS, a.id, expected_version=2, data=E2_DATA)
    assert caught.value.current == 2
    with pytest.raises(VersionConflictError) as caught:
        boxes.delete(NS, a.id)
    assert caught.value.current == 2
    with pytest.raises(VersionConflictError):
        boxes.delete(NS, a.id, expected_version=2)
    with pytest.raises(DeletedError):
        boxes.get(NS, a.id)
    assert boxes.get(NS, a.id, version=1).data == E2_DATA
    assert [v.version for v in boxes.versions(NS, a.id)] == [1, 2]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"boundingBox": {"x": 0, "y": 0, "w": -1, "h": 1}}, "/data/boundingBox/w"),
        ({"boundingBox": {"x": 0, "y": 0, "w": 1, "h": -0.5}}, "/data/boundingBox/h"),
        ({"boundingBox": {"x": 0, "y": 0, "w": 1}}, "/data/boundingBox"),
        ({"boundingBox": {"x": 0, "y": 0, "w": 1, "h": 1, "d": 1}}, "/data/boundingBox"),
        ({"boxTimeRange": {"start": 3, "end": 2}}, "/data/boxTimeRange"),
        ({"boxTimeRange": {"start": -1, "end": 2}}, "/data/boxTimeRange/start"),
        ({"boxTimeRange": {"start": 1}}, "/data/boxTimeRange"),
        ({"boxTimeRange": {"start_frame": 3, "end_frame": 20}}, "/data/boxTimeRange"),
        ({"boxTimeRange": {"start_frame": 30, "end_frame": 20, "rate": 24}}, "/data/boxTimeRange"),
        (
            {"boxTimeRange": {"start_frame": 1, "end_frame": 2, "rate": 0}},
            "/data/boxTimeRange/rate",
        ),
        (
            {"boxTimeRange": {"start": 1, "end": 2, "start_frame": 1, "end_frame": 2}},
            "/data/boxTimeRange",
        ),
    ],
)
def test_invalid_boxes_and_time_ranges_are_rejected(
    boxes: Annotations, change: dict[str, Any], pointer: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        boxes.create(NS, "BOUNDING_BOX", [VIDEO], {**E2_DATA, **change})
    assert caught.value.violations and all(
        v.pointer.startswith(pointer) for v in caught.value.violations
    )
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    with pytest.raises(ValidationError):
        boxes.update(NS, a.id, expected_version=1, data={**E2_DATA, **change})
    assert boxes.get(NS, a.id).version == 1
    assert boxes.count(NS) == 1


def test_frame_time_ranges_with_a_rate_are_searchable_in_seconds(boxes: Annotations) -> None:
    frames = {"start_frame": 48, "end_frame": 72, "rate": "24000/1001"}
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], {**E2_DATA, "boxTimeRange": frames})
    assert a.data["boxTimeRange"] == frames
    assert ids(boxes.search(NS, time=(3.003, 3.003)).items) == [a.id]  # 72 * 1001/24000
    assert boxes.search(NS, time=(3.0031, 4)).items == ()
    assert ids(boxes.search(NS, time=(0, 2.002)).items) == [a.id]  # 48 * 1001/24000


def test_restricted_association_types(db: reeldb.Database, boxes: Annotations) -> None:
    assert boxes.association_types(NS) is None
    free = boxes.create(NS, "BOUNDING_BOX", [{"type": "SHOT_ID", "id": "s"}], E2_DATA)
    boxes.restrict_association_types(NS, ["VIDEO", "MOVIE_ID"])
    assert boxes.association_types(NS) == ("MOVIE_ID", "VIDEO")
    with pytest.raises(ValidationError) as caught:
        boxes.create(NS, "BOUNDING_BOX", [VIDEO, {"type": "SHOT_ID", "id": "s"}], E2_DATA)
    [violation] = caught.value.violations
    assert violation.pointer == "/associations/1/type" and "SHOT_ID" in violation.message
    assert boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA).associations == (
        Association("VIDEO", "video-42"),
    )
    # Stored ones are not checked again, but an update must follow the rule...
    assert boxes.get(NS, free.id).version == 1
    with pytest.raises(ValidationError, match="SHOT_ID"):
        boxes.update(NS, free.id, expected_version=1, data=E2_DATA)
    moved = boxes.update(NS, free.id, expected_version=1, associations=[VIDEO])
    assert moved.version == 2
    # ...and a delete need not.
    other = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    boxes.restrict_association_types(NS, ["MOVIE_ID"])
    assert boxes.delete(NS, other.id).deleted
    # Other namespaces are free; None frees this one.
    db.create_namespace("other")
    db.add_schema("other", copy.deepcopy(E1))
    assert boxes.association_types("other") is None
    boxes.create("other", "BOUNDING_BOX", [{"type": "SHOT_ID", "id": "s"}], E2_DATA)
    boxes.restrict_association_types(NS, None)
    assert boxes.association_types(NS) is None
    boxes.create(NS, "BOUNDING_BOX", [{"type": "SHOT_ID", "id": "s"}], E2_DATA)
    with pytest.raises(ValidationError):
        boxes.restrict_association_types(NS, ["9bad"])
    with pytest.raises(NotFoundError):
        boxes.restrict_association_types("nowhere", ["VIDEO"])
    with pytest.raises(NotFoundError):
        boxes.association_types("nowhere")


@pytest.mark.parametrize(
    ("associations", "pointer"),
    [
        ([], "/associations"),
        ([{"type": "VIDEO"}], "/associations/0"),
        ([{"type": "VIDEO", "id": "v", "extra": 1}], "/associations/0"),
        ([VIDEO, {"type": "1bad", "id": "x"}], "/associations/1/type"),
        ([{"type": "VIDEO", "id": ""}], "/associations/0/id"),
        ([{"type": "VIDEO", "id": 42}], "/associations/0/id"),
        ([{"type": "VIDEO", "id": "x" * 513}], "/associations/0/id"),
        ([{"type": "V" * 65, "id": "x"}], "/associations/0/type"),
        ([{"type": "VIDEO", "id": str(i)} for i in range(65)], "/associations"),
    ],
)
def test_empty_and_malformed_associations_are_rejected(
    boxes: Annotations, associations: list[Any], pointer: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        boxes.create(NS, "BOUNDING_BOX", associations, E2_DATA)
    assert [v.pointer for v in caught.value.violations] == [pointer]
    with pytest.raises(ValidationError) as caught:
        boxes.create_many(
            NS, [{"type": "BOUNDING_BOX", "associations": associations, "data": E2_DATA}]
        )
    assert [v.pointer for v in caught.value.violations] == [pointer]
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    with pytest.raises(ValidationError):
        boxes.update(NS, a.id, expected_version=1, associations=associations)
    assert boxes.count(NS) == 1


def test_bulk_create_is_all_or_nothing_with_per_item_errors(boxes: Annotations) -> None:
    boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    batch_key = {"type": "BATCH", "id": "b1"}
    items: list[Any] = [
        {"type": "BOUNDING_BOX", "associations": [batch_key], "data": E2_DATA} for _ in range(1000)
    ]
    items[17] = {**items[17], "data": {**E2_DATA, "boundingBox": {"x": 0, "y": 0, "w": -1, "h": 1}}}
    items[503] = {**items[503], "data": {"boundingBox": E2_DATA["boundingBox"]}}
    with pytest.raises(ValidationError) as caught:
        boxes.create_many(NS, items)
    pointers = [v.pointer for v in caught.value.violations]
    assert pointers and all(p.startswith(("/17/", "/503/")) for p in pointers)
    assert {p.split("/")[1] for p in pointers} == {"17", "503"}
    assert "2 of 1000" in str(caught.value)
    assert boxes.count(NS) == 1
    assert boxes.search(NS, associations=[batch_key]).items == ()
    # Malformed items are reported the same way.
    with pytest.raises(ValidationError) as caught:
        boxes.create_many(NS, [items[0], {"type": "BOUNDING_BOX", "data": E2_DATA, "colour": 1}, 3])  # type: ignore[list-item]
    assert {v.pointer.split("/")[1] for v in caught.value.violations} == {"1", "2"}
    assert boxes.count(NS) == 1
    # Without the bad ones, all are stored, in order.
    good = [item for i, item in enumerate(items) if i not in (17, 503)]
    created = boxes.create_many(NS, good)
    assert len(created) == 998 and boxes.count(NS) == 999
    assert ids(all_pages(boxes, 1000, associations=[batch_key], sort="created")) == ids(created)
    assert boxes.create_many(NS, []) == []


def test_bulk_create_over_the_batch_limit_is_refused(boxes: Annotations) -> None:
    from reeldb.annotations import MAX_BATCH

    bad = {"type": "NOPE", "associations": [VIDEO], "data": {}}
    with pytest.raises(ValidationError, match=str(MAX_BATCH)):
        boxes.create_many(NS, (bad for _ in range(MAX_BATCH + 1)))
    assert boxes.count(NS) == 0


def test_ids_given_by_the_caller(db: reeldb.Database, boxes: Annotations) -> None:
    chosen = uuid.uuid4()
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA, id=str(chosen))
    assert a.id == chosen and boxes.get(NS, chosen).id == chosen
    with pytest.raises(AlreadyExistsError):
        boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA, id=chosen)
    # Also taken when the batch is otherwise new, or in another namespace; nothing stored.
    fresh = {"type": "BOUNDING_BOX", "associations": [VIDEO], "data": E2_DATA}
    with pytest.raises(AlreadyExistsError):
        boxes.create_many(NS, [fresh, {**fresh, "id": str(chosen)}])
    db.create_namespace("other")
    db.add_schema("other", copy.deepcopy(E1))
    with pytest.raises(AlreadyExistsError):
        boxes.create("other", "BOUNDING_BOX", [VIDEO], E2_DATA, id=chosen)
    assert boxes.count(NS) == 1 and boxes.count("other") == 0
    # The same id twice in one batch.
    twice = str(uuid.uuid4())
    with pytest.raises(ValidationError, match="twice"):
        boxes.create_many(NS, [{**fresh, "id": twice}, {**fresh, "id": twice}])
    assert boxes.count(NS) == 1
    with pytest.raises(ValidationError):
        boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA, id="not-a-uuid")
    with pytest.raises(ValidationError) as caught:
        boxes.create_many(NS, [fresh, {**fresh, "id": "not-a-uuid"}])
    assert [v.pointer for v in caught.value.violations] == ["/1/id"]


def test_another_namespace_cannot_see_or_touch_an_annotation(
    db: reeldb.Database, boxes: Annotations
) -> None:
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    db.create_namespace("other")
    db.add_schema("other", copy.deepcopy(E1))
    with pytest.raises(NotFoundError):
        boxes.get("other", a.id)
    with pytest.raises(NotFoundError):
        boxes.get("other", a.id, version=1)
    with pytest.raises(NotFoundError):
        boxes.versions("other", a.id)
    with pytest.raises(NotFoundError):
        boxes.update("other", a.id, expected_version=1, data=E2_DATA)
    with pytest.raises(NotFoundError):
        boxes.delete("other", a.id)
    assert boxes.search("other", associations=[VIDEO]).items == ()
    assert boxes.timeline("other", VIDEO).items == ()
    assert boxes.count("other") == 0 and boxes.get(NS, a.id).version == 1
    for missing in (uuid.uuid4(), str(uuid.uuid4())):
        with pytest.raises(NotFoundError):
            boxes.get(NS, missing)
        with pytest.raises(NotFoundError):
            boxes.update(NS, missing, expected_version=1, data=E2_DATA)
        with pytest.raises(NotFoundError):
            boxes.delete(NS, missing)
        with pytest.raises(NotFoundError):
            boxes.versions(NS, missing)
    with pytest.raises(ValidationError):
        boxes.get(NS, "not-a-uuid")
    for version in (0, -1, True, "1"):
        with pytest.raises(ValidationError):
            boxes.get(NS, a.id, version=version)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        boxes.search("nowhere")
    with pytest.raises(NotFoundError):
        boxes.count("nowhere")


def test_malformed_searches_are_refused(db: reeldb.Database, characters: Annotations) -> None:
    db.add_schema(NS, copy.deepcopy(REVIEW_NOTE))
    ann = characters
    for _ in range(3):
        ann.create(NS, "CHARACTER_IN_FRAME", [VIDEO], character("Alice", 1, (0, 0, 1, 1)))
    cursor = ann.search(NS, limit=1).next_cursor
    assert cursor is not None
    for bad in ("xx", "", cursor[:-2], cursor + "A", "YW5uMTpbInRpbWUiXQ"):
        with pytest.raises(ValidationError, match="cursor"):
            ann.search(NS, limit=1, cursor=bad)
    with pytest.raises(ValidationError, match="cursor"):  # a cursor of another sort
        ann.search(NS, limit=1, cursor=cursor, sort="created")
    for limit in (0, -1, 1001, True, 1.5, "10"):
        with pytest.raises(ValidationError, match="limit"):
            ann.search(NS, limit=limit)  # type: ignore[arg-type]
    assert len(ann.search(NS, limit=1000).items) == 3
    refused: list[dict[str, Any]] = [
        {"where": 'data.label = "c"'},  # a where needs a type
        {"type": "CHARACTER_IN_FRAME", "where": 'data.nope = "c"'},
        {"type": "CHARACTER_IN_FRAME", "where": "data.label = "},
        {"type": "CHARACTER_IN_FRAME", "where": "data.label > 3"},
        {"type": "CHARACTER_IN_FRAME", "where": 'count(event where event.label = "x") > 1'},
        {"sort": "relevance"},  # relevance needs text
        {"sort": "start"},
        {"text": " ,;"},
        {"time": (5, 1)},
        {"time": (-1, 1)},
        {"time": (1,)},
        {"time": "soon"},
        {"time": (0, float("nan"))},
        {"time": (0, 1), "time_op": "contains"},
        {"box": (0, 0, -1, 1)},
        {"box": (0, 0, 1)},
        {"box": {"x": 0, "y": 0}},
        {"box": (0, 0, float("inf"), 1)},
        {"box": (0, 0, 1, 1), "box_op": "overlaps"},
        {"type": "CHARACTER_IN_FRAME", "subtypes": False, "text": "x", "text_fields": ["comment"]},
        {"text": "x", "text_fields": "comment"},
    ]
    for search in refused:
        with pytest.raises(QueryError):
            ann.search(NS, **search)
    with pytest.raises(ValidationError):
        ann.search(NS, associations=[{"type": "VIDEO"}])


def test_a_where_runs_over_any_version_of_its_type(db: reeldb.Database, boxes: Annotations) -> None:
    old = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    db.add_schema(NS, copy.deepcopy(E4_V1))
    car = boxes.create(NS, "BOUNDING_BOX", [VIDEO], {**E2_DATA, "label": "car"})
    boxes.create(NS, "BOUNDING_BOX", [VIDEO], {**E2_DATA, "label": "dog"})
    assert ids(boxes.search(NS, type="BOUNDING_BOX", where='data.label = "car"').items) == [car.id]
    assert ids(boxes.search(NS, type="BOUNDING_BOX", where='not data.label = "dog"').items) == [
        old.id,
        car.id,
    ]
    assert len(boxes.search(NS, type="BOUNDING_BOX", where='data.label != "dog"').items) == 1
    assert ids(
        boxes.search(
            NS, type="BOUNDING_BOX", where={"field": "data.label", "op": "=", "value": "car"}
        ).items
    ) == [car.id]
    with pytest.raises(QueryError):  # v0 has no label
        boxes.search(NS, type="BOUNDING_BOX@0", where='data.label = "car"')


# -- Pagination --------------------------------------------------------------------------------


@pytest.fixture
def scenes(db: reeldb.Database, ann: Annotations) -> tuple[Annotations, list[Annotation]]:
    """63 notes on one video: tied starts, untimed ones, and repeated words for relevance."""
    db.add_schema(NS, copy.deepcopy(REVIEW_NOTE))
    items = []
    for i in range(63):
        data: dict[str, Any] = {"comment": " ".join(["scene"] * (1 + i % 4) + ["take"] * (i % 3))}
        if i % 9 != 4:
            data["temporal"] = {"start": (i * 7) % 11, "end": (i * 7) % 11 + i % 5}
        items.append({"type": "REVIEW_NOTE", "associations": [VIDEO], "data": data})
    created = ann.create_many(NS, items[:40]) + ann.create_many(NS, items[40:])
    # Updates move some in time but not in creation order; deletes leave holes.
    for a in created[5:60:11]:
        data = {**a.data, "temporal": {"start": 3, "end": 3}}
        created[created.index(a)] = ann.update(NS, a.id, expected_version=1, data=data)
    for a in created[2:60:13]:
        ann.delete(NS, a.id)
        created.remove(a)
    return ann, created


def start_of(a: Annotation) -> float:
    return a.data["temporal"]["start"] if "temporal" in a.data else float("inf")


@pytest.mark.parametrize("sort", ["time", "-time", "created", "-created", "relevance"])
@pytest.mark.parametrize("limit", [1, 7, 58, 1000])
@pytest.mark.parametrize("by_association", [False, True])
def test_every_page_of_every_order(
    scenes: tuple[Annotations, list[Annotation]], sort: str, limit: int, by_association: bool
) -> None:
    ann, live = scenes
    assert len(live) == 58
    search: dict[str, Any] = {"sort": sort}
    if by_association:
        search["associations"] = [VIDEO]
    if sort == "relevance":
        search["text"] = "scenes"
    hits = all_pages(ann, limit, **search)
    got = ids(hits)
    assert len(got) == len(set(got)) == 58, "no duplicates, no gaps"
    assert set(got) == {a.id for a in live}
    position = {a.id: n for n, a in enumerate(live)}  # creation order
    by_id = {a.id: a for a in live}
    if sort in ("time", "-time"):
        keys = [(start_of(by_id[i]), position[i]) for i in got]
        assert keys == sorted(keys, reverse=sort == "-time")
    elif sort in ("created", "-created"):
        assert got == [a.id for a in (live if sort == "created" else reversed(live))]
    else:
        scores = [h.score for h in hits]
        assert all(s is not None for s in scores)
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    for hit in hits:
        assert hit.annotation == by_id[hit.annotation.id]


def test_a_cursor_survives_writes_between_pages(
    scenes: tuple[Annotations, list[Annotation]],
) -> None:
    ann, live = scenes
    first = ann.search(NS, sort="created", limit=10)
    newest = ann.create(NS, "REVIEW_NOTE", [VIDEO], {"comment": "late scene"})
    assert first.next_cursor is not None
    rest = ann.search(NS, sort="created", limit=1000, cursor=first.next_cursor)
    assert ids(first.items) + ids(rest.items) == [a.id for a in live] + [newest.id]


def test_timeline_pages_in_start_order(scenes: tuple[Annotations, list[Annotation]]) -> None:
    ann, live = scenes
    for start, end in ((0, None), (None, None), (3, 3), (2.5, 4), (20, 30), (0, 0)):
        by_start = sorted(
            (a for a in live if "temporal" in a.data),
            key=lambda a: (a.data["temporal"]["start"], live.index(a)),
        )
        want = [
            a.id
            for a in by_start
            if (end is None or a.data["temporal"]["start"] <= end)
            and a.data["temporal"]["end"] >= (start or 0)
        ]
        for limit in (1, 5, 10_000):
            got: list[uuid.UUID] = []
            cursor = None
            while True:
                page = ann.timeline(NS, VIDEO, start, end, limit=limit, cursor=cursor)
                assert len(page.items) <= limit
                got += ids(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert got == want, (start, end, limit)
    assert ann.timeline(NS, {"type": "VIDEO", "id": "other"}).items == ()
    timed = sum("temporal" in a.data for a in live)
    assert (
        len(ann.timeline(NS, Association("VIDEO", "video-42"), type="REVIEW_NOTE").items) == timed
    )
    assert ann.timeline(NS, VIDEO, type="TEMPORAL_SPATIAL_BASE", limit=3).next_cursor is not None


def test_timeline_refuses_a_bad_window_limit_or_association(boxes: Annotations) -> None:
    with pytest.raises(ValidationError):
        boxes.timeline(NS, VIDEO, 5, 1)
    for limit in (0, 10_001):
        with pytest.raises(ValidationError):
            boxes.timeline(NS, VIDEO, limit=limit)
    with pytest.raises(ValidationError):
        boxes.timeline(NS, {"type": "VIDEO"})
    with pytest.raises(ValidationError):
        boxes.timeline(NS, VIDEO, cursor="nope")
    with pytest.raises(QueryError):
        boxes.timeline(NS, VIDEO, type="NOPE")


def test_timeline_refuses_a_negative_start_as_a_validation_error(boxes: Annotations) -> None:
    with pytest.raises(ValidationError):
        boxes.timeline(NS, VIDEO, -1, 5)


# -- Group commit --------------------------------------------------------------------------


def test_prepared_writes_commit_together_and_fail_alone(boxes: Annotations) -> None:
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    first = boxes.prepare_update(NS, a.id, expected_version=1, data=E2_DATA)
    second = boxes.prepare_update(NS, a.id, expected_version=1, data=E2_DATA)
    new = boxes.prepare_create(
        NS, [{"type": "BOUNDING_BOX", "associations": [MOVIE], "data": E2_DATA}]
    )
    gone = boxes.prepare_delete(NS, a.id)
    results = boxes.commit([first, second, new, gone])
    assert isinstance(results[0], list) and results[0][0].version == 2
    assert isinstance(results[1], VersionConflictError) and results[1].current == 2
    assert isinstance(results[2], list) and boxes.get(NS, results[2][0].id).version == 1
    assert isinstance(results[3], VersionConflictError)
    assert boxes.get(NS, a.id).version == 2 and boxes.count(NS) == 2
    assert boxes.commit([]) == []


def test_a_single_prepared_write_that_fails_is_reported(boxes: Annotations) -> None:
    a = boxes.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
    stale = boxes.prepare_update(NS, a.id, expected_version=1, data=E2_DATA)
    boxes.update(NS, a.id, expected_version=1, data=E2_DATA)
    [result] = boxes.commit([stale])
    assert isinstance(result, VersionConflictError)


# -- Persistence -------------------------------------------------------------------------------


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    with reeldb.connect(url) as db:
        db.create_namespace(NS)
        db.add_schema(NS, copy.deepcopy(E1))
        db.add_schema(NS, copy.deepcopy(REVIEW_NOTE))
        ann = db.annotations
        ann.restrict_association_types(NS, ["VIDEO", "REVIEW_SESSION", "MOVIE"])
        box = ann.create(NS, "BOUNDING_BOX", [VIDEO], E2_DATA)
        ann.update(
            NS, box.id, expected_version=1, data={**E2_DATA, "boxTimeRange": {"start": 1, "end": 2}}
        )
        e7 = ann.create(
            NS, "REVIEW_NOTE", [VIDEO, {"type": "REVIEW_SESSION", "id": "rs-7"}], E7_DATA
        )
        gone = ann.create(NS, "REVIEW_NOTE", [MOVIE], {"comment": "black gloves"})
        ann.delete(NS, gone.id)
        bulk = ann.create_many(
            NS,
            [
                {
                    "type": "REVIEW_NOTE",
                    "associations": [MOVIE],
                    "data": {"comment": f"note {i}", "temporal": {"start": i, "end": i + 1}},
                }
                for i in range(50)
            ],
        )
        before = {
            "versions": [v.to_json() for v in ann.versions(NS, box.id)],
            "e7": ann.get(NS, e7.id).to_json(),
        }
    with reeldb.connect(url) as db:
        ann = db.annotations
        assert [v.to_json() for v in ann.versions(NS, box.id)] == before["versions"]
        assert ann.get(NS, e7.id).to_json() == before["e7"]
        assert ann.get(NS, box.id, 1).data == E2_DATA
        with pytest.raises(DeletedError):
            ann.get(NS, gone.id)
        assert ann.count(NS) == 52
        assert ann.association_types(NS) == ("MOVIE", "REVIEW_SESSION", "VIDEO")
        assert ids(ann.search(NS, text="gloves").items) == [e7.id]
        assert ids(ann.search(NS, associations=[VIDEO], time=(1.5, 1.5)).items) == [box.id]
        assert ids(ann.search(NS, box=(0.6, 0.4, 0, 0)).items) == [e7.id]
        assert ids(ann.search(NS, type="TEMPORAL_SPATIAL_BASE", time=(10, 10.5)).items) == [
            bulk[9].id,
            bulk[10].id,
        ]
        assert ids(ann.timeline(NS, MOVIE, 48.5).items) == [bulk[48].id, bulk[49].id]
        # And it keeps working: versions continue, the index follows.
        again = ann.update(NS, box.id, expected_version=2, data=E2_DATA)
        assert again.version == 3
        assert ids(ann.search(NS, associations=[VIDEO], time=(1.5, 1.5)).items) == []
        with pytest.raises(ValidationError):
            ann.create(NS, "BOUNDING_BOX", [{"type": "SHOT", "id": "x"}], E2_DATA)


# -- words and a time window: the full-text index narrows by minute --------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (59.0, 60.0),  # ends on a minute's first instant
        (60.0, 60.0),  # an instant on the edge
        (119.999, 120.0),
        (0.0, 3600.0),  # more minutes than a row lists: the window is not narrowed
        (3000.0, 3001.0),
        (900.0, 1900.0),
    ],
)
def test_text_and_time_find_long_short_and_edge_annotations(
    db: reeldb.Database, start: float, end: float
) -> None:
    db.add_schema(
        NS,
        {
            "name": "NOTE",
            "extends": ["TEMPORAL_SPATIAL_BASE"],
            "properties": {"comment": {"type": "text", "mandatory": True}},
        },
    )
    spans = [
        (0.0, 59.999),  # ends just before minute 1
        (60.0, 60.0),  # an instant on minute 1's edge
        (30.0, 3000.0),  # longer than a row's minutes: a `long` row
        (1000.0, 1000.5),
        (3000.0, 3001.0),
        (120.0, 130.0),
    ]
    made = db.annotations.create_many(
        NS,
        [
            {
                "type": "NOTE",
                "associations": [{"type": "VIDEO", "id": "v"}],
                "data": {"comment": "gloves to black", "temporal": {"start": a, "end": b}},
            }
            for a, b in spans
        ]
        + [  # the same words without a time, and other words in the window
            {"type": "NOTE", "associations": [{"type": "VIDEO", "id": "v"}],
             "data": {"comment": "gloves to black"}},
            {"type": "NOTE", "associations": [{"type": "VIDEO", "id": "v"}],
             "data": {"comment": "a logo", "temporal": {"start": start, "end": end}}},
        ],
    )  # fmt: skip
    expected = [a.id for a, (a0, a1) in zip(made, spans, strict=False) if a0 <= end and a1 >= start]
    for sort in ("time", "created", "relevance"):
        found = ids(all_pages(db.annotations, 2, text="glove", time=(start, end), sort=sort))
        assert sorted(found) == sorted(expected), sort
