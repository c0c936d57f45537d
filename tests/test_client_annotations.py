"""``Client.annotations``: the same values and errors as ``Database.annotations``.

Side by side with the service's own Database (``live.db``), over a real service.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import reeldb
from reeldb.annotations import (
    MAX_BATCH,
    Annotation,
    AnnotationHit,
    Association,
    NewAnnotation,
    TypeRef,
)
from reeldb.client import Client
from reeldb.errors import (
    DeletedError,
    NotFoundError,
    ReelError,
    ValidationError,
    VersionConflictError,
)
from reeldb.model.document import Page
from reeldb.query import parse_query
from reeldb.testing import BOUNDING_BOX

MOVIE = Association("MOVIE_ID", "81234567")
VIDEO = {"type": "VIDEO", "id": "video-42"}
BOX = {"boundingBox": {"x": 0, "y": 0, "w": 10, "h": 10}, "boxTimeRange": {"start": 1, "end": 2}}
CHARACTER = {
    "name": "CHARACTER_IN_FRAME",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {
        "label": {"type": "keyword"},
        "characterName": {"type": "text", "mandatory": True},
        "comment": {"type": "text"},
    },
}


@dataclass
class World:
    """Namespace ``vision`` with ``BOUNDING_BOX`` and ``CHARACTER_IN_FRAME``; a client with a
    writer's key (``app:wally``) and one with the system administrator's."""

    live: Any
    writer: Client
    admin: Client

    @property
    def db(self) -> reeldb.Database:
        database: reeldb.Database = self.live.db
        return database


@pytest.fixture
def world(live: Any) -> Iterator[World]:
    db: reeldb.Database = live.db
    db.create_namespace("vision")
    db.add_schema("vision", copy.deepcopy(BOUNDING_BOX))
    db.add_schema("vision", copy.deepcopy(CHARACTER))
    db.grant_role("vision", "app:wally", "writer")
    with live.client(live.key("app:wally")) as writer, live.client() as admin:
        yield World(live, writer, admin)


def character(name: str, start: float, x: float, comment: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "label": "c",
        "characterName": name,
        "temporal": {"start": start, "end": start + 1},
        "spatial": {"x": x, "y": x, "w": 0.2, "h": 0.2},
    }
    if comment is not None:
        data["comment"] = comment
    return {"type": "CHARACTER_IN_FRAME", "associations": [VIDEO], "data": data}


@pytest.fixture
def scene(world: World) -> World:
    items = [character(("Alice", "Bob")[i % 2], i * 1.5, (i % 5) / 6) for i in range(40)]
    items.append(character("Editor", 9, 0.1, "Please change the colour of the gloves to black"))
    world.writer.annotations.create_many("vision", items)
    return world


# -- round trips ------------------------------------------------------------------------------


def test_create_get_update_delete_versions(world: World) -> None:
    remote, local = world.writer.annotations, world.db.annotations
    made = remote.create("vision", "BOUNDING_BOX", [MOVIE], BOX)
    assert isinstance(made, Annotation)
    assert made == local.get("vision", made.id)
    assert (made.version, made.created_by, made.type) == (
        1,
        "app:wally",
        TypeRef("BOUNDING_BOX", 0),
    )
    assert remote.get("vision", str(made.id)) == made

    moved = {**BOX, "boxTimeRange": {"start": 3, "end": 4}}
    second = remote.update("vision", made.id, expected_version=1, data=moved)
    assert (second.version, second.data) == (2, moved)
    assert second == local.get("vision", made.id)
    with pytest.raises(VersionConflictError) as stale:
        remote.update("vision", made.id, expected_version=1, data=BOX)
    assert stale.value.current == 2
    assert remote.get("vision", made.id, 1) == made

    tombstone = remote.delete("vision", made.id, expected_version=2)
    assert (tombstone.version, tombstone.deleted, tombstone.data) == (3, True, moved)
    with pytest.raises(DeletedError):
        remote.get("vision", made.id)
    with pytest.raises(VersionConflictError) as again:
        remote.delete("vision", made.id)
    assert again.value.current == 3
    versions = remote.versions("vision", made.id)
    assert versions == local.versions("vision", made.id) == [made, second, tombstone]
    assert remote.count("vision") == local.count("vision") == 0


def test_create_with_an_id_and_typed_arguments(world: World) -> None:
    ident = uuid.uuid4()
    made = world.writer.annotations.create(
        "vision",
        TypeRef("BOUNDING_BOX", 0),
        [MOVIE, {"type": "SHOT_ID", "id": "s1"}, MOVIE],
        BOX,
        id=str(ident),
    )
    assert made.id == ident
    assert made.associations == (MOVIE, Association("SHOT_ID", "s1"))  # duplicates dropped
    assert made == world.db.annotations.get("vision", ident)


def test_create_many_takes_new_annotations_and_json(world: World) -> None:
    items: list[Any] = [
        NewAnnotation("BOUNDING_BOX", (MOVIE,), BOX, uuid.uuid4()),
        {"type": {"name": "BOUNDING_BOX"}, "associations": [MOVIE], "data": BOX},
        {"type": "BOUNDING_BOX", "associations": [MOVIE], "data": BOX, "id": uuid.uuid4()},
    ]
    made = world.writer.annotations.create_many("vision", iter(items))
    assert made[0].id == items[0].id
    assert made[2].id == items[2]["id"]
    assert made == [world.db.annotations.get("vision", a.id) for a in made]
    assert world.writer.annotations.create_many("vision", []) == []


def test_update_associations_and_type(world: World) -> None:
    made = world.writer.annotations.create("vision", "BOUNDING_BOX", [MOVIE], BOX)
    found = world.writer.annotations.update(
        "vision",
        made.id,
        expected_version=1,
        associations=[VIDEO],
        type={"name": "BOUNDING_BOX", "version": 0},
    )
    assert found.associations == (Association("VIDEO", "video-42"),)
    assert found.data == BOX
    assert found == world.db.annotations.get("vision", made.id)


def test_association_types(world: World) -> None:
    remote = world.admin.annotations
    assert remote.association_types("vision") is None
    remote.restrict_association_types("vision", ["SHOT_ID", "MOVIE_ID"])
    assert remote.association_types("vision") == world.db.annotations.association_types("vision")
    assert remote.association_types("vision") == ("MOVIE_ID", "SHOT_ID")
    with pytest.raises(reeldb.PermissionDeniedError):
        world.writer.annotations.restrict_association_types("vision", None)
    remote.restrict_association_types("vision", None)
    assert world.db.annotations.association_types("vision") is None


# -- search and timeline: the library's answers ------------------------------------------------

SEARCHES = [
    pytest.param({}, id="everything"),
    pytest.param({"type": "TEMPORAL_SPATIAL_BASE", "limit": 5}, id="is-a"),
    pytest.param({"type": TypeRef("CHARACTER_IN_FRAME", 1), "subtypes": False}, id="typeref"),
    pytest.param({"associations": [Association("VIDEO", "video-42")], "time": (10, 20)}, id="time"),
    pytest.param({"time": [10, 20], "time_op": "within", "sort": "-time"}, id="within"),
    pytest.param({"box": (0, 0, 0.3, 0.3), "sort": "created"}, id="box"),
    pytest.param({"box": {"x": 0.5, "y": 0.5, "w": 1, "h": 1}, "box_op": "within"}, id="box-map"),
    pytest.param({"text": "gloves"}, id="text"),
    pytest.param({"text": "colour", "text_fields": ("comment",)}, id="text-fields"),
    pytest.param(
        {"type": "CHARACTER_IN_FRAME", "where": 'data.characterName contains "bob"'}, id="where"
    ),
    pytest.param(
        {
            "type": "CHARACTER_IN_FRAME",
            "where": parse_query("data.temporal overlaps(10, 30)"),
            "sort": "-created",
        },
        id="where-expr",
    ),
    pytest.param(
        {"type": "CHARACTER_IN_FRAME", "where": {"field": "data.label", "op": "=", "value": "c"}},
        id="where-json",
    ),
]


@pytest.mark.parametrize("args", SEARCHES)
def test_search_pages_equal_the_librarys(scene: World, args: dict[str, Any]) -> None:
    remote, local = scene.writer.annotations, scene.db.annotations
    cursor, pages = None, 0
    while True:
        page = remote.search("vision", **args, cursor=cursor)
        assert page == local.search("vision", **args, cursor=cursor)
        assert all(isinstance(hit, AnnotationHit) for hit in page.items)
        cursor, pages = page.next_cursor, pages + 1
        if cursor is None:
            break
    assert page.items or pages > 1, "the search should find something"


def test_search_highlights_cross_the_wire(scene: World) -> None:
    page = scene.writer.annotations.search("vision", text="glove")
    [hit] = page.items
    assert hit.highlights == {"comment": "Please change the colour of the <em>gloves</em> to black"}
    assert isinstance(hit.score, float)


@pytest.mark.parametrize(
    "window",
    [
        pytest.param({}, id="all"),
        pytest.param({"start": 10.5, "end": 30, "limit": 4}, id="window"),
        pytest.param({"start": 10, "type": "CHARACTER_IN_FRAME", "limit": 7}, id="type"),
        pytest.param({"end": 12, "type": {"name": "CHARACTER_IN_FRAME", "version": 1}}, id="map"),
        pytest.param({"type": TypeRef("CHARACTER_IN_FRAME", 1), "limit": 10_000}, id="typeref"),
    ],
)
def test_timeline_pages_equal_the_librarys(scene: World, window: dict[str, Any]) -> None:
    remote, local = scene.writer.annotations, scene.db.annotations
    cursor, seen = None, 0
    while True:
        page = remote.timeline("vision", VIDEO, **window, cursor=cursor)
        assert page == local.timeline("vision", VIDEO, **window, cursor=cursor)
        assert isinstance(page, Page)
        seen += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen > 0


@pytest.mark.parametrize("ident", ["a/b", "..", ".", "x/../y", "%2F", "é ü?#&"])
def test_timeline_of_any_association_id(world: World, ident: str) -> None:
    entity = Association("SHOT_ID", ident)
    made = world.writer.annotations.create(
        "vision", "CHARACTER_IN_FRAME", [entity], character("A", 1, 0)["data"]
    )
    assert world.writer.annotations.timeline("vision", entity).items == (made,)
    other = Association("SHOT_ID", ident + "x")
    assert world.writer.annotations.timeline("vision", other).items == ()


# -- the same errors as embedded ---------------------------------------------------------------

Call = Callable[[Any, Annotation], object]


def outcome(call: Call, api: Any, made: Annotation) -> tuple[Any, ...]:
    try:
        result = call(api, made)
    except Exception as exc:
        current = getattr(exc, "current", None)
        return (type(exc), str(exc), getattr(exc, "violations", None), current)
    return ("returned", type(result).__name__)


def _bad_batch(a: Any, _: Annotation) -> object:
    items = [character("A", 1, 0) for _ in range(3)]
    del items[2]["data"]["characterName"]
    items[0]["associations"] = [{"type": "VIDEO", "id": ""}]
    return a.create_many("vision", items)


SAME_ERRORS = [
    pytest.param(lambda a, m: a.get("vision", uuid.UUID(int=5)), id="get-missing"),
    pytest.param(lambda a, m: a.get("vision", "nope"), id="get-bad-id"),
    pytest.param(lambda a, m: a.get("vision", m.id, 0), id="get-version-0"),
    pytest.param(lambda a, m: a.get("vision", m.id, True), id="get-version-bool"),
    pytest.param(lambda a, m: a.get("vision", m.id, 9), id="get-version-missing"),
    pytest.param(lambda a, m: a.get("nothing", m.id), id="get-other-namespace"),
    pytest.param(lambda a, m: a.versions("vision", uuid.UUID(int=5)), id="versions-missing"),
    pytest.param(lambda a, m: a.count("nothing"), id="count-missing-namespace"),
    pytest.param(
        lambda a, m: a.create("vision", "BOUNDING_BOX", [MOVIE], {**BOX, "boundingBox": 3}),
        id="create-invalid-data",
    ),
    pytest.param(lambda a, m: a.create("vision", "NOPE", [MOVIE], BOX), id="create-unknown-type"),
    pytest.param(lambda a, m: a.create("vision", "BOUNDING_BOX", [], BOX), id="create-no-links"),
    pytest.param(
        lambda a, m: a.create("vision", "BOUNDING_BOX", [{"type": "1", "id": "x"}, "x"], BOX),
        id="create-bad-links",
    ),
    pytest.param(
        lambda a, m: a.create("vision", "BOUNDING_BOX", [MOVIE], BOX, id="x"), id="create-bad-id"
    ),
    pytest.param(
        lambda a, m: a.create("vision", "BOUNDING_BOX", [MOVIE], BOX, id=m.id), id="create-taken"
    ),
    pytest.param(_bad_batch, id="batch-violations"),
    pytest.param(
        lambda a, m: a.create_many("vision", [{"type": "BOUNDING_BOX"}] * (MAX_BATCH + 1)),
        id="batch-too-large",
    ),
    pytest.param(
        lambda a, m: a.update("vision", m.id, expected_version=2, data=BOX), id="update-stale"
    ),
    pytest.param(
        lambda a, m: a.update("vision", m.id, expected_version=1, data={"x": 1}),
        id="update-invalid",
    ),
    pytest.param(
        lambda a, m: a.update("vision", m.id, expected_version=1, associations=[{"type": "?"}]),
        id="update-bad-links",
    ),
    pytest.param(
        lambda a, m: a.update("vision", uuid.UUID(int=5), expected_version=1), id="update-missing"
    ),
    pytest.param(lambda a, m: a.delete("vision", m.id, expected_version=7), id="delete-stale"),
    pytest.param(lambda a, m: a.delete("vision", "x"), id="delete-bad-id"),
    pytest.param(lambda a, m: a.search("vision", where="data.x = 1"), id="search-where-no-type"),
    pytest.param(
        lambda a, m: a.search("vision", type="BOUNDING_BOX", where="data.boundingBox = "),
        id="search-where-syntax",
    ),
    pytest.param(lambda a, m: a.search("vision", type="NOPE"), id="search-unknown-type"),
    pytest.param(lambda a, m: a.search("vision", time=(5, 1)), id="search-window"),
    pytest.param(lambda a, m: a.search("vision", box=(0, 0, -1, 1)), id="search-box"),
    pytest.param(lambda a, m: a.search("vision", time_op="near"), id="search-time-op"),
    pytest.param(lambda a, m: a.search("vision", sort="relevance"), id="search-sort"),
    pytest.param(lambda a, m: a.search("vision", cursor="garbage"), id="search-cursor"),
    pytest.param(lambda a, m: a.search("vision", limit=0), id="search-limit"),
    pytest.param(lambda a, m: a.search("vision", text="?!"), id="search-no-words"),
    pytest.param(
        lambda a, m: a.search("vision", associations=[{"type": "A", "id": ""}]), id="search-links"
    ),
    pytest.param(lambda a, m: a.timeline("vision", MOVIE, 5, 1), id="timeline-window"),
    pytest.param(lambda a, m: a.timeline("vision", MOVIE, -1), id="timeline-negative"),
    pytest.param(lambda a, m: a.timeline("vision", MOVIE, limit=10_001), id="timeline-limit"),
    pytest.param(lambda a, m: a.timeline("vision", {"type": "A"}), id="timeline-bad-link"),
    pytest.param(lambda a, m: a.timeline("vision", MOVIE, cursor="x"), id="timeline-cursor"),
    pytest.param(lambda a, m: a.timeline("vision", MOVIE, type="NOPE"), id="timeline-type"),
    pytest.param(
        lambda a, m: a.restrict_association_types("vision", ["A B"]), id="restrict-bad-type"
    ),
    pytest.param(lambda a, m: a.association_types("nothing"), id="types-missing-namespace"),
]


@pytest.mark.parametrize("call", SAME_ERRORS)
def test_errors_match_embedded(world: World, call: Call) -> None:
    """Each call fails through the Client exactly as on the service's own Database."""
    made = world.db.annotations.create("vision", "BOUNDING_BOX", [MOVIE], BOX)
    remote = outcome(call, world.admin.annotations, made)  # first: no embedded effects
    embedded = outcome(call, world.db.annotations, made)
    assert remote == embedded
    assert isinstance(embedded[0], type) and issubclass(embedded[0], ReelError)
    assert world.db.annotations.versions("vision", made.id) == [made]


def test_deleted_and_not_found_are_told_apart(world: World) -> None:
    made = world.writer.annotations.create("vision", "BOUNDING_BOX", [MOVIE], BOX)
    world.writer.annotations.delete("vision", made.id)
    with pytest.raises(DeletedError) as deleted:
        world.writer.annotations.get("vision", made.id)
    assert isinstance(deleted.value, NotFoundError)
    with pytest.raises(ValidationError):
        world.writer.annotations.get("vision", made.id, -1)


def test_a_malformed_type_name_is_refused_by_the_published_pattern(world: World) -> None:
    """The one known difference: the service refuses a type name that is not ``NAME`` or
    ``NAME@VERSION`` (1 to 18 digits) by its request model, before the library reads it
    (which raises OverflowError or ValueError on some: see tests/api/test_annotations_api.py).
    Both raise ValidationError; the remote one's violations point into the body."""
    with pytest.raises(ValidationError) as embedded:
        world.db.annotations.create("vision", "BOUNDING_BOX@x", [MOVIE], BOX)
    with pytest.raises(ValidationError) as remote:
        world.writer.annotations.create("vision", "BOUNDING_BOX@x", [MOVIE], BOX)
    assert [v.pointer for v in embedded.value.violations] == ["/type"]
    assert [v.pointer for v in remote.value.violations] == [
        "/body/type/constrained-str",
        "/body/type/TypeRefIn",
    ]
