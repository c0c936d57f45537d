"""Annotations over real HTTP: every route's answers, its errors, its audit entries.

Each read is compared with what the service's own Database (``live.db``) answers for the
same arguments; each write with what it stored.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

import reeldb
from reeldb.annotations import Annotation
from reeldb.errors import ValidationError
from reeldb.testing import BOUNDING_BOX

PROBLEM = "application/problem+json"
NS = "/v1/namespaces/vision"
ANN = NS + "/annotations"
MOVIE = {"type": "MOVIE_ID", "id": "81234567"}
VIDEO = {"type": "VIDEO", "id": "video-42"}
BOX = {"boundingBox": {"x": 0, "y": 0, "w": 10, "h": 10}, "boxTimeRange": {"start": 1, "end": 2}}
LABELED_BASE = {"name": "LABELED_BASE", "properties": {"label": {"type": "keyword"}}}
CHARACTER = {
    "name": "CHARACTER_IN_FRAME",
    "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED_BASE"],
    "properties": {
        "characterName": {"type": "text", "mandatory": True},
        "comment": {"type": "text"},
    },
}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:reeldb:problem:{slug}"
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def pointers(body: dict[str, Any]) -> list[str]:
    return [v["pointer"] for v in body.get("violations") or ()]


@dataclass
class World:
    """Namespace ``vision`` (writer ``app:wally``, reader ``user:rita``) and ``other``
    (admin ``user:olga``), both with annotation type ``BOUNDING_BOX``."""

    live: Any
    writer: httpx.Client
    reader: httpx.Client
    olga: httpx.Client
    admin: httpx.Client

    @property
    def db(self) -> reeldb.Database:
        database: reeldb.Database = self.live.db
        return database

    def create(self, namespace: str = "vision", **fields: Any) -> Annotation:
        args: dict[str, Any] = {"type": "BOUNDING_BOX", "associations": [MOVIE], "data": BOX}
        return self.db.annotations.create(namespace, **{**args, **fields})

    def audit(self, response: httpx.Response) -> list[reeldb.AuditEntry]:
        request_id = response.headers["x-request-id"]
        return [e for e in self.db.list_audit(limit=1000).items if e.request_id == request_id]


@pytest.fixture
def world(live: Any) -> Iterator[World]:
    db: reeldb.Database = live.db
    db.create_namespace("vision", admins=["user:alice"])
    db.create_namespace("other", admins=["user:olga"])
    for namespace in ("vision", "other"):
        db.add_schema(namespace, copy.deepcopy(BOUNDING_BOX))
    db.add_schema("vision", copy.deepcopy(LABELED_BASE))
    db.add_schema("vision", copy.deepcopy(CHARACTER))
    db.grant_role("vision", "app:wally", "writer")
    db.grant_role("vision", "user:rita", "reader")

    def client(principal: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {live.key(principal)}"}
        return httpx.Client(base_url=live.url, headers=headers, timeout=30)

    clients = [client(p) for p in ("app:wally", "user:rita", "user:olga", "user:alice")]
    try:
        yield World(live, *clients)
    finally:
        for c in clients:
            c.close()


def character(name: str, start: float, x: float, comment: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "label": "character",
        "characterName": name,
        "temporal": {"start": start, "end": start + 1},
        "spatial": {"x": x, "y": x, "w": 0.2, "h": 0.2},
    }
    if comment is not None:
        data["comment"] = comment
    return {"type": "CHARACTER_IN_FRAME", "associations": [VIDEO], "data": data}


@pytest.fixture
def scene(world: World) -> World:
    """Sixty characters on ``VIDEO:video-42`` and one editor's note."""
    items = [character(("Alice", "Bob", "Carol")[i % 3], i * 2.5, (i % 4) / 5) for i in range(60)]
    items.append(character("Editor", 12, 0.1, "Please change the colour of the gloves to black"))
    world.db.annotations.create_many("vision", items)
    return world


# -- create --------------------------------------------------------------------------------


def test_create_answers_the_stored_annotation_and_audits_it(world: World) -> None:
    body = {"type": "BOUNDING_BOX", "associations": [MOVIE], "data": BOX}
    response = world.writer.post(ANN, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{ANN}/{created['id']}"
    assert response.headers["etag"] == '"1"'
    stored = world.db.annotations.get("vision", created["id"])
    assert created == stored.to_json()
    assert (stored.version, stored.created_by, stored.data) == (1, "app:wally", BOX)
    [entry] = world.audit(response)
    assert (entry.principal, entry.action, entry.namespace, entry.status) == (
        "app:wally",
        "annotation.create",
        "vision",
        201,
    )
    assert entry.target == f"{ANN}/{created['id']}"


def test_create_keeps_a_given_id_once(world: World) -> None:
    ident = "01932c07-2f4d-7b6e-9a3c-5d1e8f0a4b21"
    body = {"type": {"name": "BOUNDING_BOX", "version": 0}, "associations": [MOVIE], "data": BOX}
    first = world.writer.post(ANN, json={**body, "id": ident.upper()})
    assert first.status_code == 201, first.text
    assert first.json()["id"] == ident
    assert world.audit(first)[0].target == f"{ANN}/{ident}"
    again = world.writer.post(ANN, json={**body, "id": ident})
    assert_problem(again, 409, "already-exists")
    body = assert_problem(world.writer.post(ANN, json={**body, "id": "nope"}), 422, "validation")
    assert "'nope' is not an annotation id" in str(body["violations"])
    assert world.db.annotations.count("vision") == 1


@pytest.mark.parametrize(
    ("body", "slug", "expected"),
    [
        pytest.param(
            {"type": "BOUNDING_BOX", "associations": [MOVIE], "data": {**BOX, "boundingBox": 3}},
            "validation",
            ["/data/boundingBox"],
            id="data-breaks-the-type",
        ),
        pytest.param(
            {"type": "NOPE", "associations": [MOVIE], "data": BOX},
            "validation",
            ["/type"],
            id="unknown-type",
        ),
        pytest.param(
            {"type": "TEMPORAL_SPATIAL_BASE@9", "associations": [MOVIE], "data": {}},
            "validation",
            ["/type"],
            id="unknown-type-version",
        ),
        pytest.param(
            {"type": "BOUNDING_BOX", "associations": [], "data": BOX},
            "validation",
            ["/associations"],
            id="no-association",
        ),
        pytest.param(
            {"type": "BOUNDING_BOX", "associations": [{"type": "9x", "id": ""}], "data": BOX},
            "validation",
            ["/associations/0/type"],
            id="bad-association",
        ),
        pytest.param(
            {"type": "BOUNDING_BOX", "associations": MOVIE, "data": BOX},
            "validation",
            ["/body/associations"],
            id="associations-not-a-list",
        ),
        pytest.param(
            {"type": "BOUNDING_BOX", "associations": [MOVIE], "data": [1]},
            "validation",
            ["/body/data"],
            id="data-not-an-object",
        ),
        pytest.param(
            {"type": "BOUNDING_BOX", "associations": [MOVIE], "data": BOX, "colour": "red"},
            "validation",
            ["/body/colour"],
            id="unknown-field",
        ),
        pytest.param(
            {"associations": [MOVIE], "data": BOX}, "validation", ["/body/type"], id="no-type"
        ),
        # Versions that would overflow SQLite, or digits int() cannot read, are refused
        # before any lookup (the library raises OverflowError/ValueError: see the xfails).
        pytest.param(
            {"type": "BOUNDING_BOX@99999999999999999999", "associations": [MOVIE], "data": BOX},
            "validation",
            ["/body/type/constrained-str", "/body/type/TypeRefIn"],
            id="type-version-overflows",
        ),
        pytest.param(
            {"type": "BOUNDING_BOX@²", "associations": [MOVIE], "data": BOX},
            "validation",
            ["/body/type/constrained-str", "/body/type/TypeRefIn"],
            id="type-version-superscript",
        ),
        pytest.param(
            {
                "type": {"name": "BOUNDING_BOX", "version": 2**64},
                "associations": [MOVIE],
                "data": BOX,
            },
            "validation",
            ["/body/type/constrained-str", "/body/type/TypeRefIn/version"],
            id="type-object-version-overflows",
        ),
    ],
)
def test_invalid_annotations_are_422_and_store_nothing(
    world: World, body: dict[str, Any], slug: str, expected: list[str]
) -> None:
    response = world.writer.post(ANN, json=body)
    problem = assert_problem(response, 422, slug)
    assert pointers(problem) == expected
    assert world.db.annotations.count("vision") == 0
    [entry] = world.audit(response)
    assert (entry.action, entry.status, entry.target) == ("annotation.create", 422, ANN)


def test_malformed_requests_are_4xx(world: World) -> None:
    broken = world.writer.post(
        ANN, content=b'{"type": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(broken, 400, "malformed-request")
    text = world.writer.post(ANN, content=b"{}", headers={"Content-Type": "text/plain"})
    assert_problem(text, 415, "unsupported-media-type")
    assert_problem(world.reader.post(ANN, json={}), 403, "forbidden")


# -- bulk create ---------------------------------------------------------------------------


def test_batch_stores_all_in_order(world: World) -> None:
    items = [character(name, t, 0.1) for name, t in (("Alice", 3), ("Bob", 1))]
    response = world.writer.post(ANN + "/batch", json={"items": items})
    assert response.status_code == 201, response.text
    found = response.json()
    assert found["next_cursor"] is None
    assert [a["data"]["characterName"] for a in found["items"]] == ["Alice", "Bob"]
    for item in found["items"]:
        assert item == world.db.annotations.get("vision", item["id"]).to_json()
        assert item["created_by"] == "app:wally"
    [entry] = world.audit(response)
    assert (entry.action, entry.status, entry.principal) == (
        "annotation.create_batch",
        201,
        "app:wally",
    )


def test_batch_with_an_invalid_item_stores_nothing(world: World) -> None:
    items = [character("Alice", 1, 0.1) for _ in range(4)]
    del items[3]["data"]["characterName"]
    items[1]["associations"] = [{"type": "VIDEO", "id": ""}]
    response = world.writer.post(ANN + "/batch", json={"items": items})
    body = assert_problem(response, 422, "validation")
    # The library's pointers, relative to the list of items.
    assert pointers(body) == ["/1/associations/0/id", "/3/data"]
    assert body["detail"] == "2 of 4 annotations are invalid; none was stored"
    shape = world.writer.post(ANN + "/batch", json={"items": [{"type": "X", "data": {}}]})
    assert pointers(assert_problem(shape, 422, "validation")) == ["/body/items/0/associations"]
    assert world.db.annotations.count("vision") == 0
    assert world.audit(response)[0].status == 422


# -- reads ---------------------------------------------------------------------------------


def test_get_the_current_version_with_its_etag(world: World) -> None:
    made = world.create()
    path = f"{ANN}/{made.id}"
    first = world.reader.get(path)
    assert first.status_code == 200
    assert first.json() == made.to_json()
    assert first.headers["etag"] == '"1"'
    assert first.headers["cache-control"] == "private, no-cache"
    same = world.reader.get(path, headers={"If-None-Match": '"1"'})
    assert (same.status_code, same.content) == (304, b"")
    world.db.annotations.update("vision", made.id, expected_version=1, data=BOX)
    changed = world.reader.get(path, headers={"If-None-Match": '"1"'})
    assert changed.status_code == 200
    assert (changed.json()["version"], changed.headers["etag"]) == (2, '"2"')


def test_get_a_version_is_immutable(world: World) -> None:
    made = world.create()
    world.db.annotations.update("vision", made.id, expected_version=1, data=BOX)
    path = f"{ANN}/{made.id}"
    first = world.reader.get(path, params={"version": 1})
    assert first.json() == made.to_json()
    assert first.headers["etag"] == '"1"'
    assert "immutable" in first.headers["cache-control"]
    again = world.reader.get(path, params={"version": 1}, headers={"If-None-Match": '"1"'})
    assert again.status_code == 304
    assert_problem(world.reader.get(path, params={"version": 3}), 404, "not-found")


@pytest.mark.parametrize(
    ("suffix", "status", "slug", "pointer"),
    [
        ("/not-a-uuid", 422, "validation", "/path/annotation_id"),
        ("/{id}?version=0", 422, "validation", "/query/version"),
        ("/{id}?version=x", 422, "validation", "/query/version"),
        (f"/{{id}}?version={2**63}", 422, "validation", "/query/version"),
        ("/{id}?version=1.5", 422, "validation", "/query/version"),
        (f"/{uuid.UUID(int=5)}", 404, "not-found", None),
        ("/not-a-uuid/versions", 422, "validation", "/path/annotation_id"),
        (f"/{uuid.UUID(int=5)}/versions", 404, "not-found", None),
        ("/{id}/versions?cursor=garbage", 422, "validation", None),
        ("/{id}/versions?limit=0", 422, "validation", "/query/limit"),
    ],
)
def test_bad_reads_are_4xx(
    world: World, suffix: str, status: int, slug: str, pointer: str | None
) -> None:
    made = world.create()
    response = world.reader.get(ANN + suffix.replace("{id}", str(made.id)))
    body = assert_problem(response, status, slug)
    if pointer is not None:
        assert pointers(body) == [pointer]


def test_a_deleted_annotation_is_gone_but_its_versions_stay(world: World) -> None:
    made = world.create()
    world.db.annotations.delete("vision", made.id)
    path = f"{ANN}/{made.id}"
    body = assert_problem(world.reader.get(path), 410, "deleted")
    assert "was deleted (version 2)" in body["detail"]
    assert world.reader.get(path, params={"version": 1}).json() == made.to_json()
    versions = world.reader.get(path + "/versions").json()
    assert [(v["version"], v["deleted"]) for v in versions["items"]] == [(1, False), (2, True)]


def test_versions_are_paginated(world: World) -> None:
    made = world.create()
    for version in range(1, 5):
        world.db.annotations.update("vision", made.id, expected_version=version, data=BOX)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = world.reader.get(f"{ANN}/{made.id}/versions", params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [a.to_json() for a in world.db.annotations.versions("vision", made.id)]
    assert [v["version"] for v in seen] == [1, 2, 3, 4, 5]


def test_another_tenants_annotation_does_not_exist(world: World) -> None:
    theirs = world.create("other")
    missing = uuid.uuid4()
    # Through our namespace's URL: the same answer as for an id nobody has.
    for client in (world.reader, world.admin):
        got = client.get(f"{ANN}/{theirs.id}")
        never = client.get(f"{ANN}/{missing}")
        assert assert_problem(got, 404, "not-found")["detail"] == assert_problem(
            never, 404, "not-found"
        )["detail"].replace(str(missing), str(theirs.id))
        assert_problem(client.get(f"{ANN}/{theirs.id}/versions"), 404, "not-found")
        patched = world.writer.patch(f"{ANN}/{theirs.id}", json={"expected_version": 1})
        assert_problem(patched, 404, "not-found")
        assert_problem(world.writer.delete(f"{ANN}/{theirs.id}"), 404, "not-found")
    # Through theirs: the namespace does not exist for us, as one that really does not.
    path = f"/v1/namespaces/other/annotations/{theirs.id}"
    hidden = assert_problem(world.reader.get(path), 404, "not-found")
    absent = assert_problem(
        world.reader.get(f"/v1/namespaces/nothing/annotations/{theirs.id}"), 404, "not-found"
    )
    assert hidden["detail"] == absent["detail"].replace("nothing", "other")
    search = world.reader.post("/v1/namespaces/other/annotations/search", json={})
    assert_problem(search, 404, "not-found")
    assert world.olga.get(path).json() == theirs.to_json()
    assert world.db.annotations.get("other", theirs.id) == theirs  # untouched


def test_count(world: World) -> None:
    for _ in range(3):
        world.create()
    world.db.annotations.delete("vision", world.create().id)
    assert world.reader.get(ANN + "/count").json() == {"count": 3}
    assert world.olga.get("/v1/namespaces/other/annotations/count").json() == {"count": 0}


# -- update and delete ---------------------------------------------------------------------


def test_update_with_the_version_read(world: World) -> None:
    made = world.create()
    path = f"{ANN}/{made.id}"
    moved = {**BOX, "boxTimeRange": {"start": 5, "end": 6}}
    response = world.writer.patch(path, json={"expected_version": 1, "data": moved})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    updated = response.json()
    assert (updated["version"], updated["data"], updated["created_by"]) == (2, moved, "app:wally")
    assert updated == world.db.annotations.get("vision", made.id).to_json()
    assert world.db.annotations.get("vision", made.id, 1) == made
    [entry] = world.audit(response)
    assert (entry.action, entry.status, entry.target) == ("annotation.update", 200, path)
    # If-Match instead of the body's expected_version; associations and type change too.
    new = {"associations": [VIDEO], "type": {"name": "BOUNDING_BOX", "version": 0}}
    third = world.writer.patch(path, json=new, headers={"If-Match": '"2"'})
    assert third.status_code == 200, third.text
    assert (third.json()["version"], third.json()["associations"]) == (3, [VIDEO])
    assert third.json()["data"] == moved  # kept


def test_a_stale_update_is_409_with_the_current_version(world: World) -> None:
    made = world.create()
    world.db.annotations.update("vision", made.id, expected_version=1, data=BOX)
    path = f"{ANN}/{made.id}"
    for response in (
        world.writer.patch(path, json={"expected_version": 1, "data": BOX}),
        world.writer.patch(path, json={"data": BOX}, headers={"If-Match": '"1"'}),
    ):
        body = assert_problem(response, 409, "stale-version")
        assert body["current_version"] == 2
        assert world.audit(response)[0].status == 409
    assert len(world.db.annotations.versions("vision", made.id)) == 2


@pytest.mark.parametrize(
    ("body", "headers", "slug", "expected"),
    [
        pytest.param({"data": BOX}, {}, "validation", [], id="no-version"),
        pytest.param({"data": BOX}, {"If-Match": "*"}, "validation", [], id="if-match-star"),
        pytest.param(
            {"data": BOX}, {"If-Match": "1"}, "validation", ["/header/if-match"], id="unquoted"
        ),
        pytest.param(
            {"data": BOX}, {"If-Match": 'W/"1"'}, "validation", ["/header/if-match"], id="weak"
        ),
        pytest.param(
            {"data": BOX}, {"If-Match": '"1", "2"'}, "validation", ["/header/if-match"], id="two"
        ),
        pytest.param(
            {"expected_version": 1, "data": BOX},
            {"If-Match": '"2"'},
            "validation",
            [],
            id="disagree",
        ),
        pytest.param(
            {"expected_version": "1", "data": BOX},
            {},
            "validation",
            ["/body/expected_version"],
            id="version-is-text",
        ),
        pytest.param(
            {"expected_version": 1, "data": {"boundingBox": 3}},
            {},
            "validation",
            ["/data", "/data/boundingBox"],
            id="data-breaks-the-type",
        ),
        pytest.param(
            {"expected_version": 1, "associations": []},
            {},
            "validation",
            ["/associations"],
            id="no-association",
        ),
        pytest.param(
            {"expected_version": 1, "type": "NOPE"}, {}, "validation", ["/type"], id="bad-type"
        ),
    ],
)
def test_bad_updates_are_4xx_and_store_nothing(
    world: World, body: dict[str, Any], headers: dict[str, str], slug: str, expected: list[str]
) -> None:
    made = world.create()
    response = world.writer.patch(f"{ANN}/{made.id}", json=body, headers=headers)
    assert pointers(assert_problem(response, 422, slug)) == expected
    assert world.db.annotations.versions("vision", made.id) == [made]


def test_readers_cannot_update_or_delete(world: World) -> None:
    made = world.create()
    path = f"{ANN}/{made.id}"
    assert_problem(world.reader.patch(path, json={"expected_version": 1}), 403, "forbidden")
    assert_problem(world.reader.delete(path), 403, "forbidden")
    assert world.db.annotations.versions("vision", made.id) == [made]


def test_delete_stores_a_tombstone_once(world: World) -> None:
    made = world.create()
    path = f"{ANN}/{made.id}"
    stale = world.writer.delete(path, params={"expected_version": 2})
    assert assert_problem(stale, 409, "stale-version")["current_version"] == 1
    stale = world.writer.delete(path, headers={"If-Match": '"2"'})
    assert assert_problem(stale, 409, "stale-version")["current_version"] == 1
    response = world.writer.delete(path, headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.text
    tombstone = response.json()
    assert (tombstone["version"], tombstone["deleted"], tombstone["data"]) == (2, True, BOX)
    assert tombstone["created_by"] == "app:wally"
    assert tombstone == world.db.annotations.versions("vision", made.id)[-1].to_json()
    [entry] = world.audit(response)
    assert (entry.action, entry.status, entry.target) == ("annotation.delete", 200, path)
    again = assert_problem(world.writer.delete(path), 409, "stale-version")
    assert again["current_version"] == 2
    assert_problem(world.writer.delete(path, params={"expected_version": "x"}), 422, "validation")
    assert world.db.annotations.count("vision") == 0


# -- search, listing, timeline -------------------------------------------------------------


SEARCHES = [
    pytest.param({}, id="everything"),
    pytest.param({"type": "TEMPORAL_SPATIAL_BASE", "limit": 7}, id="is-a"),
    pytest.param({"type": "CHARACTER_IN_FRAME@1", "subtypes": False}, id="no-subtypes"),
    pytest.param({"type": {"name": "CHARACTER_IN_FRAME", "version": 1}}, id="type-object"),
    pytest.param({"associations": [VIDEO], "time": [10, 30], "sort": "-time"}, id="time"),
    pytest.param({"time": [10, 30], "time_op": "within"}, id="time-within"),
    pytest.param({"box": [0, 0, 0.3, 0.3]}, id="box-list"),
    pytest.param({"box": {"x": 0.5, "y": 0.5, "w": 1, "h": 1}, "box_op": "within"}, id="box"),
    pytest.param({"text": "glove"}, id="text"),
    pytest.param({"text": "colour", "text_fields": ["comment"]}, id="text-fields"),
    pytest.param(
        {"type": "CHARACTER_IN_FRAME", "where": 'data.characterName contains "bob"'},
        id="where-text",
    ),
    pytest.param(
        {
            "type": "CHARACTER_IN_FRAME",
            "where": {"field": "data.temporal", "overlaps": [20, 40]},
            "sort": "created",
        },
        id="where-json",
    ),
]


@pytest.mark.parametrize("body", SEARCHES)
def test_search_answers_what_the_library_finds(scene: World, body: dict[str, Any]) -> None:
    found, cursor, pages = [], None, 0
    while True:
        page = scene.reader.post(ANN + "/search", json={**body, "cursor": cursor})
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor, pages = page.json()["next_cursor"], pages + 1
        if cursor is None:
            break
    args = {**body, "limit": 1000}
    expected = scene.db.annotations.search("vision", **args)
    assert expected.next_cursor is None
    assert found == [hit.to_json() for hit in expected.items]
    assert found, "the search should find something"
    if "limit" in body:
        assert pages > 1


def test_text_search_highlights_and_scores(scene: World) -> None:
    [hit] = scene.reader.post(ANN + "/search", json={"text": "gloves"}).json()["items"]
    assert hit["highlights"] == {
        "comment": "Please change the colour of the <em>gloves</em> to black"
    }
    assert isinstance(hit["score"], float)


@pytest.mark.parametrize(
    ("body", "status", "slug", "expected"),
    [
        ({"where": "data.label = 1"}, 400, "invalid-query", []),
        ({"type": "CHARACTER_IN_FRAME", "where": "data.nope = 1"}, 400, "invalid-query", []),
        ({"type": "CHARACTER_IN_FRAME", "where": "data.label = "}, 400, "invalid-query", []),
        ({"type": "NOPE"}, 400, "invalid-query", []),
        ({"time": [1]}, 400, "invalid-query", []),
        ({"time": [5, 1]}, 400, "invalid-query", []),
        ({"time": [-1, 1]}, 400, "invalid-query", []),
        ({"box": [0, 0, 1]}, 400, "invalid-query", []),
        ({"box": {"x": 0}}, 400, "invalid-query", []),
        ({"time_op": "near"}, 400, "invalid-query", []),
        ({"sort": "relevance"}, 400, "invalid-query", []),
        ({"text": "..."}, 400, "invalid-query", []),
        ({"cursor": "garbage"}, 422, "validation", []),
        (
            {"associations": [{"type": "VIDEO", "id": ""}]},
            422,
            "validation",
            ["/associations/0/id"],
        ),
        ({"limit": 0}, 422, "validation", ["/body/limit"]),
        ({"limit": 1001}, 422, "validation", ["/body/limit"]),
        ({"time": "soon"}, 422, "validation", ["/body/time"]),
        ({"associations": ["VIDEO:1"]}, 422, "validation", ["/associations/0"]),
        ({"associations": "VIDEO:1"}, 422, "validation", ["/body/associations"]),
        ({"subtypes": "yes"}, 422, "validation", ["/body/subtypes"]),
        ({"colour": "red"}, 422, "validation", ["/body/colour"]),
    ],
)
def test_bad_searches_are_4xx(
    scene: World, body: dict[str, Any], status: int, slug: str, expected: list[str]
) -> None:
    response = scene.reader.post(ANN + "/search", json=body)
    assert pointers(assert_problem(response, status, slug)) == expected


def test_a_cursor_belongs_to_its_sort(scene: World) -> None:
    page = scene.reader.post(ANN + "/search", json={"limit": 2}).json()
    other = scene.reader.post(
        ANN + "/search", json={"sort": "created", "cursor": page["next_cursor"]}
    )
    assert_problem(other, 422, "validation")


def test_listing_by_association(scene: World) -> None:
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"association": "VIDEO:video-42", "limit": 25}
        page = scene.reader.get(ANN, params=params | ({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    expected = scene.db.annotations.search("vision", associations=[VIDEO], limit=1000)
    assert seen == [hit.annotation.to_json() for hit in expected.items]
    assert len(seen) == 61
    none = scene.reader.get(ANN, params=[("association", "VIDEO:video-42"), ("association", "X:1")])
    assert none.json() == {"items": [], "next_cursor": None}
    typed = scene.reader.get(ANN, params={"type": "BOUNDING_BOX", "sort": "-created"})
    assert typed.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "status", "expected"),
    [
        ({"association": "VIDEO"}, 422, ["/query/association/0"]),
        ({"association": "VIDEO:"}, 422, ["/associations/0/id"]),
        ({"type": "A@b"}, 422, ["/query/type"]),
        ({"sort": "nope"}, 400, []),
        ({"limit": "1001"}, 422, ["/query/limit"]),
        ({"cursor": "x"}, 422, []),
    ],
)
def test_bad_listings_are_4xx(
    world: World, params: dict[str, str], status: int, expected: list[str]
) -> None:
    response = world.reader.get(ANN, params=params)
    assert response.status_code == status, response.text
    assert pointers(response.json()) == expected


def test_timeline_pages_in_start_order(scene: World) -> None:
    path = NS + "/associations/VIDEO/video-42/timeline"
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"start": 20, "end": 100, "limit": 7}
        page = scene.reader.get(path, params=params | ({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    expected = scene.db.annotations.timeline("vision", VIDEO, 20, 100)
    assert seen == [a.to_json() for a in expected.items]
    starts = [a["data"]["temporal"]["start"] for a in seen]
    assert starts == sorted(starts) and starts[0] == 20.0
    typed = scene.reader.get(path, params={"type": "BOUNDING_BOX"})
    assert typed.json() == {"items": [], "next_cursor": None}


def test_timeline_of_an_id_with_slashes_and_dots(world: World) -> None:
    entity = {"type": "SHOT_ID", "id": "reel/../7 %2F"}
    made = world.create(
        type="CHARACTER_IN_FRAME", associations=[entity], data=character("A", 1, 0)["data"]
    )
    path = NS + "/associations/SHOT_ID/reel%2F%2E%2E%2F7%20%252F/timeline"
    assert world.reader.get(path).json()["items"] == [made.to_json()]


@pytest.mark.parametrize(
    ("query", "status", "slug"),
    [
        ("start=5&end=1", 422, "validation"),
        ("start=-1", 422, "validation"),
        ("end=inf", 422, "validation"),
        ("start=abc", 422, "validation"),
        ("limit=0", 422, "validation"),
        ("limit=10001", 422, "validation"),
        ("cursor=xyz", 422, "validation"),
        ("type=NOPE", 400, "invalid-query"),
    ],
)
def test_bad_timelines_are_4xx(world: World, query: str, status: int, slug: str) -> None:
    response = world.reader.get(f"{NS}/associations/VIDEO/video-42/timeline?{query}")
    assert_problem(response, status, slug)
    bad_type = world.reader.get(f"{NS}/associations/9x/1/timeline")
    assert pointers(assert_problem(bad_type, 422, "validation")) == ["/association/0/type"]


# -- association types ---------------------------------------------------------------------


def test_association_types(world: World) -> None:
    path = NS + "/association-types"
    assert world.reader.get(path).json() == {"types": None}
    assert_problem(world.writer.put(path, json={"types": ["MOVIE_ID"]}), 403, "forbidden")
    response = world.admin.put(path, json={"types": ["SHOT_ID", "MOVIE_ID"]})
    assert response.json() == {"types": ["MOVIE_ID", "SHOT_ID"]}
    assert world.db.annotations.association_types("vision") == ("MOVIE_ID", "SHOT_ID")
    [entry] = world.audit(response)
    assert (entry.action, entry.status, entry.principal) == (
        "annotation.restrict_association_types",
        200,
        "user:alice",
    )
    refused = world.writer.post(
        ANN, json={"type": "BOUNDING_BOX", "associations": [MOVIE, VIDEO], "data": BOX}
    )
    assert pointers(assert_problem(refused, 422, "validation")) == ["/associations/1/type"]
    bad = world.admin.put(path, json={"types": ["MOVIE ID"]})
    assert pointers(assert_problem(bad, 422, "validation")) == ["/types/0"]
    assert_problem(world.admin.put(path, json={}), 422, "validation")
    assert world.admin.put(path, json={"types": None}).json() == {"types": None}
    assert world.db.annotations.association_types("vision") is None


# -- the published API ---------------------------------------------------------------------


def test_openapi_publishes_the_annotation_routes(world: World) -> None:
    paths = httpx.get(world.live.url + "/openapi.json").json()["paths"]
    one = paths["/v1/namespaces/{namespace}/annotations/{annotation_id}"]
    assert one["get"]["x-reeldb-role"] == "reader"
    assert {p["name"] for p in one["get"]["parameters"]} == {
        "namespace",
        "annotation_id",
        "version",
    }
    assert {"304", "410"} <= set(one["get"]["responses"])
    assert one["patch"]["x-reeldb-audit"] == "annotation.update"
    assert "if-match" in {p["name"].lower() for p in one["patch"]["parameters"]}
    assert paths["/v1/namespaces/{namespace}/annotations"]["post"]["x-reeldb-role"] == "writer"


def test_get_is_a_direct_route(world: World) -> None:
    from fastapi.routing import APIRoute

    from reeldb.api import create_app

    with reeldb.connect("memory:") as db:
        app = create_app(db)
    [route] = [
        r
        for r in app.routes
        if isinstance(r, APIRoute)
        and r.path == "/v1/namespaces/{namespace}/annotations/{annotation_id}"
        and "GET" in r.methods
    ]
    assert route.app.__qualname__.startswith("_direct_app")


# -- bugs in the library, shown where they surface -----------------------------------------


def _forged_cursor(*values: object) -> str:
    raw = "ann1:" + json.dumps(["time", *values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_a_forged_cursor_is_a_4xx(world: World) -> None:
    response = world.reader.post(ANN + "/search", json={"cursor": _forged_cursor(1, 2, 3, 4)})
    assert 400 <= response.status_code < 500, response.text


def test_library_get_of_a_huge_version(world: World) -> None:
    made = world.create()
    with pytest.raises((ValidationError, reeldb.NotFoundError)):
        world.db.annotations.get("vision", made.id, 2**63)


def test_library_type_with_a_huge_version(world: World) -> None:
    with pytest.raises(ValidationError):
        world.create(type="BOUNDING_BOX@99999999999999999999")


def test_library_type_with_a_superscript_version(world: World) -> None:
    with pytest.raises(ValidationError):
        world.create(type="BOUNDING_BOX@²")


def test_an_association_type_with_a_newline_is_refused(world: World) -> None:
    body = {"type": "BOUNDING_BOX", "associations": [{"type": "MOVIE_ID\n", "id": "1"}]}
    response = world.writer.post(ANN, json={**body, "data": BOX})
    assert response.status_code == 422, response.text
