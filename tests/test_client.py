"""`reeldb.client.Client`: what only a Client has; tests/test_database.py runs the shared scenarios.

Side by side with the service's own Database (``live.db``): the same errors (class, message,
``violations``, ``incompatibilities``) and the same values, bodies byte for byte. Then pages,
keys, authentication, transports, the environment, whoami, API keys and the audit log.
"""

from __future__ import annotations

import copy
import math
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

import reeldb
import reeldb.client
from reeldb.client import DEFAULT_URL, Client
from reeldb.errors import (
    AlreadyExistsError,
    BackendUnavailableError,
    DatabaseClosedError,
    IncompatibleSchemaError,
    NotFoundError,
    PermissionDeniedError,
    ReelError,
    UnauthenticatedError,
    ValidationError,
)
from reeldb.model.document import Document
from reeldb.testing import FACE_DETECTION, MID, face_document, running_service

DS = "vision/face_detection/1"
OTHER_MID = {"title_id": "80100173", "video_stream_id": "vs-720p-02"}
TAG = {"name": "TAG", "properties": {"label": {"type": "string"}}}
E = "tracks/0/components/0/events/0"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

Api = reeldb.Database | Client


@dataclass
class World:
    """Namespace ``vision`` (admin ``user:alice``), schemas ``face_detection`` and ``TAG``,
    DataStore ``vision/face_detection/1`` and one document, all made through the client."""

    live: Any  # conftest's Live: url, db (the service's own Database), admin_key
    client: Client
    doc: Document

    @property
    def db(self) -> reeldb.Database:
        database: reeldb.Database = self.live.db
        return database


@pytest.fixture
def world(live: Any) -> Iterator[World]:
    with live.client() as client:
        client.create_namespace("vision", admins=["user:alice"])
        client.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        client.add_schema("vision", copy.deepcopy(TAG))
        client.create_datastore(DS, mid_keys=list(MID), schema="face_detection")
        doc = client.put_document(DS, MID, face_document())
        yield World(live, client, doc)


def bug(reason: str, raises: type[BaseException] = AssertionError) -> pytest.MarkDecorator:
    """A known difference from the embedded Database: the test fails until it is fixed."""
    return pytest.mark.xfail(strict=True, raises=raises, reason=f"BUG: {reason}")


# -- the same errors as embedded ---------------------------------------------------------------

Call = Callable[[Any, uuid.UUID], object]


def outcome(call: Call, api: Api, doc_id: uuid.UUID) -> tuple[Any, ...]:
    """What a call did: its exception's class, text, violations and incompatibilities."""
    try:
        result = call(api, doc_id)
    except Exception as exc:
        found = (getattr(exc, "violations", None), getattr(exc, "incompatibilities", None))
        return (type(exc), str(exc), *found)
    return ("returned", type(result).__name__)


def _broken_title(api: Api, _: uuid.UUID) -> object:
    document = face_document()
    document["asset"]["title"] = 42
    document["tracks"][0]["components"][0]["events"][0]["confidence"] = 1.5
    return api.put_document(DS, MID, document)


def _batch_with_a_bad_item(api: Api, _: uuid.UUID) -> object:
    return api.put_documents(DS, [(MID, face_document()), (MID, {"tracks": []})])


SAME_ERRORS = [
    pytest.param(lambda a, d: a.create_namespace("Has Spaces"), id="namespace-bad-name"),
    pytest.param(lambda a, d: a.create_namespace("reeldb"), id="namespace-reserved"),
    pytest.param(lambda a, d: a.create_namespace("vision"), id="namespace-exists"),
    pytest.param(
        lambda a, d: a.create_namespace("other", admins=["bad principal!"]), id="namespace-admin"
    ),
    pytest.param(lambda a, d: a.get_namespace("missing"), id="namespace-missing"),
    pytest.param(lambda a, d: a.get_namespace("Bad Name"), id="namespace-invalid"),
    pytest.param(
        lambda a, d: a.grant_role("vision", "bad principal!", "reader"), id="role-principal"
    ),
    pytest.param(
        lambda a, d: a.grant_role("missing", "user:bob", "reader"), id="role-missing-namespace"
    ),
    pytest.param(lambda a, d: a.revoke_role("vision", "user:nobody"), id="role-not-held"),
    pytest.param(lambda a, d: a.list_roles("missing"), id="roles-missing-namespace"),
    pytest.param(
        lambda a, d: a.add_schema("vision", {"name": "X", "properties": {"a": {"type": "nope"}}}),
        id="schema-invalid",
    ),
    pytest.param(
        lambda a, d: a.check_schema("vision", {"name": "X", "properties": {"a": {"type": "no"}}}),
        id="schema-check-invalid",
    ),
    pytest.param(
        lambda a, d: a.add_schema(
            "vision", {"name": "TAG", "properties": {"label": {"type": "int"}}}
        ),
        id="schema-incompatible",
    ),
    pytest.param(lambda a, d: a.add_schema("vision", "{"), id="schema-not-json"),
    pytest.param(lambda a, d: a.get_schema("vision", "face_detection", 99), id="schema-version"),
    pytest.param(lambda a, d: a.get_schema("vision", "missing"), id="schema-missing"),
    pytest.param(lambda a, d: a.get_schema("vision", "bad name"), id="schema-bad-name"),
    pytest.param(
        lambda a, d: a.list_schema_versions("vision", "missing"), id="schema-versions-missing"
    ),
    pytest.param(lambda a, d: a.set_compatibility("vision", "TAG", "bogus"), id="mode-unknown"),
    pytest.param(lambda a, d: a.set_compatibility("vision", "missing", "NONE"), id="mode-missing"),
    pytest.param(lambda a, d: a.validate("vision", "TAG", {}, version=9), id="validate-version"),
    pytest.param(
        lambda a, d: a.create_datastore(DS, mid_keys=list(MID), schema="face_detection"),
        id="datastore-exists",
    ),
    pytest.param(
        lambda a, d: a.create_datastore("vision/x/1", mid_keys=["a", "a"], schema="face_detection"),
        id="datastore-repeated-keys",
    ),
    pytest.param(
        lambda a, d: a.create_datastore("vision/tags/1", mid_keys=["id"], schema="TAG"),
        id="datastore-properties-schema",
    ),
    pytest.param(
        lambda a, d: a.create_datastore("vision/x/1", mid_keys=["id"], schema="missing"),
        id="datastore-schema-missing",
    ),
    pytest.param(lambda a, d: a.get_datastore("vision/missing/1"), id="datastore-missing"),
    pytest.param(lambda a, d: a.get_datastore("vision/face_detection"), id="datastore-bad-ref"),
    pytest.param(lambda a, d: a.list_datastores("missing"), id="datastores-missing-namespace"),
    pytest.param(lambda a, d: a.count_documents("vision/missing/1"), id="count-missing"),
    pytest.param(_broken_title, id="document-violations"),
    pytest.param(
        lambda a, d: a.put_document(DS, {"title_id": "1", "x": 2}, face_document()),
        id="document-bad-mid",
    ),
    pytest.param(lambda a, d: a.put_document(DS, MID, b'{"asset": '), id="document-not-json"),
    pytest.param(lambda a, d: a.put_document(DS, MID, [1, 2]), id="document-not-object"),
    pytest.param(
        lambda a, d: a.put_document(DS, MID, {"asset": {"n": 2**70}, "tracks": []}),
        id="document-wide-integer",
    ),
    pytest.param(_batch_with_a_bad_item, id="batch-violations"),
    pytest.param(lambda a, d: a.put_documents(DS, []), id="batch-empty"),
    pytest.param(lambda a, d: a.put_documents(DS, [MID]), id="batch-not-pairs"),
    pytest.param(lambda a, d: a.get_document("not-a-uuid"), id="document-id-invalid"),
    pytest.param(lambda a, d: a.get_document(uuid.UUID(int=5)), id="document-missing"),
    pytest.param(
        lambda a, d: a.get_document(d, datastore="vision/face_detection/2"),
        id="document-other-datastore",
    ),
    pytest.param(lambda a, d: a.latest_document(DS, OTHER_MID), id="latest-none"),
    pytest.param(lambda a, d: a.latest_document(DS, {"title_id": "1"}), id="latest-bad-mid"),
    pytest.param(lambda a, d: a.list_documents(DS, MID, cursor="garbage"), id="list-bad-cursor"),
    pytest.param(lambda a, d: a.list_documents(DS, {"x": "1"}), id="list-bad-mid"),
    pytest.param(lambda a, d: a.create_api_key("bad principal!"), id="key-bad-principal"),
    pytest.param(lambda a, d: a.list_api_keys("bad principal!"), id="keys-bad-principal"),
    pytest.param(lambda a, d: a.revoke_api_key("missing"), id="key-missing"),
    pytest.param(lambda a, d: a.list_audit(cursor="garbage"), id="audit-bad-cursor"),
    pytest.param(lambda a, d: a.list_audit("Bad Name"), id="audit-bad-namespace"),
    # Differences found by these tests and fixed:
    pytest.param(
        lambda a, d: a.grant_role("vision", "user:bob", "owner"),
        id="role-unknown",
    ),
    pytest.param(
        lambda a, d: a.create_datastore("vision/xyz/1", mid_keys="xyz", schema="face_detection"),
        id="datastore-keys-string",
    ),
    pytest.param(
        lambda a, d: a.get_datastore("vision/face_detection/0"),
        id="datastore-get-version-0",
    ),
    pytest.param(
        lambda a, d: a.get_schema("vision", "face_detection", 0),
        id="schema-version-0",
    ),
    pytest.param(
        lambda a, d: a.validate("vision", "TAG", {}, version=0),
        id="validate-version-0",
    ),
    pytest.param(
        lambda a, d: a.add_schema("vision", [1, 2]),
        id="schema-not-object",
    ),
    pytest.param(
        lambda a, d: a.get_namespace(""),
        id="namespace-empty",
    ),
    pytest.param(
        lambda a, d: a.get_namespace("a/b"),
        id="namespace-slash",
    ),
    pytest.param(
        lambda a, d: a.revoke_api_key(""),
        id="key-empty-id",
    ),
    pytest.param(
        lambda a, d: a.latest_document(DS, ["title_id"]),
        id="latest-mid-not-object",
    ),
    pytest.param(
        lambda a, d: a.put_document(DS, ["title_id"], face_document()),
        id="document-mid-not-object",
    ),
    pytest.param(
        lambda a, d: a.list_documents(DS, MID, limit=0),
        id="limit-0",
    ),
]


@pytest.mark.parametrize("call", SAME_ERRORS)
def test_errors_match_embedded(world: World, call: Call) -> None:
    """Each call fails through the Client exactly as on the service's own Database."""
    remote = outcome(call, world.client, world.doc.id)  # first: it must not see embedded effects
    embedded = outcome(call, world.db, world.doc.id)
    assert remote == embedded
    assert isinstance(embedded[0], type) and issubclass(embedded[0], ReelError)


def test_violations_and_incompatibilities_cross_the_wire(world: World) -> None:
    with pytest.raises(ValidationError) as info:
        _broken_title(world.client, world.doc.id)
    assert [v.pointer for v in info.value.violations] == ["/asset/title", f"/{E}/confidence"]
    with pytest.raises(IncompatibleSchemaError) as incompatible:
        world.client.add_schema("vision", {"name": "TAG", "properties": {"label": {"type": "int"}}})
    [found] = incompatible.value.incompatibilities
    assert (found.path, found.rule) == ("$.label", "TYPE")
    assert world.client.get_schema("vision", "TAG").version == 1  # nothing was stored


# -- the same values as embedded ---------------------------------------------------------------


def test_reads_return_the_databases_values(world: World) -> None:
    """Every read returns what the service's Database returns: same classes, same values."""
    c, db = world.client, world.db
    c.grant_role("vision", "app:tagger", "writer")
    c.put_document(DS, MID, face_document(2))
    assert c.get_namespace("vision") == db.get_namespace("vision")
    assert c.list_namespaces() == db.list_namespaces()
    assert c.list_roles("vision") == db.list_roles("vision")
    assert c.list_schemas("vision") == db.list_schemas("vision")
    assert c.list_schemas("reeldb") == db.list_schemas("reeldb")
    assert c.get_schema("vision", "face_detection") == db.get_schema("vision", "face_detection")
    assert c.get_schema("vision", "TAG", 1) == db.get_schema("vision", "TAG", 1)
    assert c.get_schema("vision", "TEMPORAL_SPATIAL_BASE") == db.get_schema(
        "vision", "TEMPORAL_SPATIAL_BASE"
    )
    assert c.list_schema_versions("vision", "TAG") == db.list_schema_versions("vision", "TAG")
    candidate = {"name": "TAG", "properties": {"label": {"type": "int"}}}
    assert c.check_schema("vision", candidate) == db.check_schema("vision", candidate)
    assert c.validate("vision", "TAG", {"label": 3}) == db.validate("vision", "TAG", {"label": 3})
    assert c.get_datastore(DS) == db.get_datastore(DS)
    assert c.list_datastores() == db.list_datastores()
    assert c.list_datastores("vision") == db.list_datastores("vision")
    assert c.count_documents(DS) == db.count_documents(DS) == 2
    assert c.get_document(world.doc.id) == db.get_document(world.doc.id) == world.doc
    assert c.get_document(str(world.doc.id), datastore=DS) == world.doc
    assert c.latest_document(DS, MID) == db.latest_document(DS, MID)
    assert c.list_documents(DS, MID, limit=1) == db.list_documents(DS, MID, limit=1)
    assert c.list_api_keys() == db.list_api_keys()
    assert c.list_audit(limit=3) == db.list_audit(limit=3)


TRICKY = {
    "asset": {
        "text": 'é 😀 \u2028 "quoted" \\ \n\t \u0000 </script>',
        "floats": [0.1, 1e-7, 1.5e300, -0.0, 123456789.123456789, 5e-324],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1],
        "order": {"z": 1, "a": [True, False, None], "": "empty key"},
    },
    "tracks": [],
}


def test_document_bodies_are_byte_identical(world: World) -> None:
    world.client.add_schema("vision", {"$schema": JSON_SCHEMA, "title": "raw", "type": "object"})
    world.client.create_datastore("vision/raw/1", mid_keys=["id"], schema="raw")
    written = world.client.put_document("vision/raw/1", {"id": "1"}, TRICKY)
    embedded = world.db.get_document(written.id)
    assert written.body == embedded.body
    assert [world.client.get_document(written.id).body for _ in range(3)] == [embedded.body] * 3
    assert world.client.get_document(written.id, datastore="vision/raw/1").body == embedded.body
    assert world.client.latest_document("vision/raw/1", {"id": "1"}).body == embedded.body
    assert orjson.loads(embedded.body) == TRICKY
    # Written embedded as indented text: the Client reads the stored (compact) bytes.
    pretty = orjson.dumps(TRICKY, option=orjson.OPT_INDENT_2)
    stored = world.db.put_document("vision/raw/1", {"id": "2"}, pretty)
    assert world.client.get_document(stored.id).body == stored.body == embedded.body


# -- pages -------------------------------------------------------------------------------------


@pytest.fixture
def crowd(world: World) -> World:
    """More than one page (of 2) of everything that is listed, made through the client."""
    c = world.client
    for n in range(5):
        c.create_namespace(f"ns{n}")
        c.grant_role("vision", f"app:p{n}", "reader")
        c.create_api_key(f"app:p{n}")
        c.add_schema("vision", {"name": f"S{n}", "properties": {"x": {"type": "string"}}})
        c.create_datastore(f"vision/d{n}/1", mid_keys=["id"], schema="face_detection")
    for n in range(2, 5):
        properties = {f"p{i}": {"type": "string"} for i in range(n)}
        c.add_schema(
            "vision", {"name": "TAG", "properties": {"label": {"type": "string"}, **properties}}
        )
    return world


def raw_pages(live: Any, path: str, limit: int) -> list[list[dict[str, Any]]]:
    """Every page of a listing, asked for with plain httpx."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    auth = {"Authorization": f"Bearer {live.admin_key}"}
    with httpx.Client(base_url=live.url, headers=auth) as http:
        while len(pages) < 100:
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            response = http.get("/v1" + path, params=params)
            assert response.status_code == 200, response.text
            found = response.json()
            pages.append(found["items"])
            cursor = found["next_cursor"]
            if cursor is None:
                break
    return pages


LISTINGS = [
    pytest.param(
        "/namespaces", "name", lambda db: [n.name for n in db.list_namespaces()], id="namespaces"
    ),
    pytest.param(
        "/namespaces/vision/roles",
        "principal",
        lambda db: [g.principal for g in db.list_roles("vision")],
        id="roles",
    ),
    pytest.param(
        "/namespaces/vision/schemas",
        "name",
        lambda db: [s.name for s in db.list_schemas("vision")],
        id="schemas",
    ),
    pytest.param(
        "/namespaces/vision/schemas/TAG/versions",
        "version",
        lambda db: [v.version for v in db.list_schema_versions("vision", "TAG")],
        id="schema-versions",
    ),
    pytest.param(
        "/namespaces/vision/datastores",
        "datastore",
        lambda db: [str(ds.ref) for ds in db.list_datastores("vision")],
        id="datastores",
    ),
    pytest.param("/keys", "key_id", lambda db: [k.key_id for k in db.list_api_keys()], id="keys"),
    pytest.param(
        "/audit", "seq", lambda db: [e.seq for e in db.list_audit(limit=1000).items], id="audit"
    ),
    pytest.param(
        "/namespaces/vision/audit",
        "seq",
        lambda db: [e.seq for e in db.list_audit("vision", limit=1000).items],
        id="namespace-audit",
    ),
]


@pytest.mark.parametrize(("path", "field", "expected"), LISTINGS)
def test_the_service_pages_listings(
    crowd: World, path: str, field: str, expected: Callable[[reeldb.Database], list[Any]]
) -> None:
    pages = raw_pages(crowd.live, path, limit=2)
    everything = expected(crowd.db)
    assert len(everything) > 2
    assert [item[field] for page in pages for item in page] == everything
    assert len(pages) == math.ceil(len(everything) / 2)
    assert all(len(page) == 2 for page in pages[:-1])


class Recording(httpx.BaseTransport):
    """The network, remembering every request."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def test_the_client_follows_pages(crowd: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reeldb.client, "_PAGE", 2)
    db, recording = crowd.db, Recording()
    with Client(crowd.live.url, crowd.live.admin_key, transport=recording) as client:
        assert client.list_namespaces() == db.list_namespaces()
        asked = [r for r in recording.requests if r.url.path == "/v1/namespaces"]
        assert len(asked) == math.ceil(len(db.list_namespaces()) / 2) > 2
        assert all(r.url.params["limit"] == "2" for r in asked)
        assert "cursor" not in asked[0].url.params
        assert all("cursor" in r.url.params for r in asked[1:])
        assert client.list_roles("vision") == db.list_roles("vision")
        assert client.list_schemas("vision") == db.list_schemas("vision")
        assert client.list_schema_versions("vision", "TAG") == db.list_schema_versions(
            "vision", "TAG"
        )
        assert client.list_datastores("vision") == db.list_datastores("vision")
        assert client.list_datastores() == db.list_datastores()
        assert client.list_api_keys() == db.list_api_keys()
        assert client.list_api_keys("app:p3") == db.list_api_keys("app:p3")


@pytest.mark.parametrize("how", ["service", "client"])
def test_datastore_pages_follow_the_listing_order(
    world: World, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    for analysis_type in ("a", "a-b", "a.c", "b"):
        world.client.create_datastore(
            f"vision/{analysis_type}/1", mid_keys=["id"], schema="face_detection"
        )
    expected = world.db.list_datastores("vision")
    if how == "service":
        pages = raw_pages(world.live, "/namespaces/vision/datastores", limit=1)
        assert [item["datastore"] for [item] in pages] == [str(ds.ref) for ds in expected]
    else:
        monkeypatch.setattr(reeldb.client, "_PAGE", 2)
        assert world.client.list_datastores("vision") == expected


# -- authentication and the policy -------------------------------------------------------------


def test_no_key_is_unauthenticated(live: Any) -> None:
    with Client(live.url) as client, pytest.raises(UnauthenticatedError, match="API key"):
        client.whoami()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("garbage", id="not-a-key"),
        pytest.param("rdb_0123456789abcdef_secret", id="unknown-key"),
        pytest.param(None, id="wrong-secret"),
    ],
)
def test_invalid_keys_are_unauthenticated(live: Any, key: str | None) -> None:
    with live.client(key or live.admin_key + "x") as client:
        with pytest.raises(UnauthenticatedError):
            client.whoami()
        with pytest.raises(UnauthenticatedError):
            client.list_namespaces()


def test_revoked_keys_are_unauthenticated(live: Any) -> None:
    with live.client() as admin:
        new = admin.create_api_key("app:tagger")
        with live.client(new.secret) as tagger:
            assert tagger.whoami().name == "app:tagger"
            admin.revoke_api_key(new.key.key_id)
            with pytest.raises(UnauthenticatedError, match="invalid or revoked"):
                tagger.whoami()


def test_roles_decide_what_a_key_may_do(world: World) -> None:
    world.client.create_namespace("other")
    world.client.grant_role("vision", "app:reader", "reader")
    with world.live.client(world.live.key("app:reader")) as reader:
        assert [n.name for n in reader.list_namespaces()] == ["vision"]
        assert reader.get_document(world.doc.id) == world.doc
        with pytest.raises(PermissionDeniedError, match="needs writer"):
            reader.put_document(DS, MID, face_document())
        with pytest.raises(PermissionDeniedError, match="not a system administrator"):
            reader.create_namespace("mine")
        with pytest.raises(NotFoundError):  # no role there: as if it did not exist
            reader.get_namespace("other")
    with world.live.client(world.live.key("app:stranger")) as stranger:
        assert stranger.list_namespaces() == []
        with pytest.raises(NotFoundError):
            stranger.get_document(world.doc.id)


# -- transports, connections and the environment -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_service() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with (
        Client(url, "rdb_key", timeout=5) as client,
        pytest.raises(BackendUnavailableError, match=f"cannot reach reeldb at {url}"),
    ):
        client.list_namespaces()


NAMESPACE_JSON = {"name": "vision", "description": "d", "created_at": "2026-11-23T12:00:00+00:00"}


def test_a_given_transport_is_used() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=NAMESPACE_JSON)

    transport = httpx.MockTransport(answer)
    with Client("http://reeldb.test/", "rdb_key", transport=transport) as client:
        assert client.url == "http://reeldb.test"
        found = client.get_namespace("vision")
    assert (found.name, found.description, found.created_at.year) == ("vision", "d", 2026)
    [request] = seen
    assert (request.method, str(request.url)) == ("GET", "http://reeldb.test/v1/namespaces/vision")
    assert request.headers["Authorization"] == "Bearer rdb_key"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == "reeldb-client"


def _problem(slug: str, status: int, **extra: Any) -> dict[str, Any]:
    return {"type": f"urn:reeldb:problem:{slug}", "status": status, "detail": "told", **extra}


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        pytest.param(409, _problem("already-exists", 409), AlreadyExistsError, id="409"),
        pytest.param(404, _problem("not-found", 404), NotFoundError, id="404"),
        pytest.param(401, _problem("unauthenticated", 401), UnauthenticatedError, id="401"),
        pytest.param(403, _problem("forbidden", 403), PermissionDeniedError, id="403"),
        pytest.param(
            503,
            _problem("unavailable", 503),
            BackendUnavailableError,
            id="503",
        ),
        pytest.param(502, b"<html>bad gateway</html>", BackendUnavailableError, id="502-html"),
        pytest.param(400, b"", ValidationError, id="400-empty"),
    ],
)
def test_problems_become_reeldb_errors(status: int, body: Any, error: type[ReelError]) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=content))
    with (
        Client("http://reeldb.test", "rdb_key", transport=transport) as client,
        pytest.raises(error) as info,
    ):
        client.get_namespace("vision")
    assert type(info.value) is error


def test_problem_details_are_kept() -> None:
    body = _problem(
        "validation", 422, violations=[{"pointer": "/a", "message": "bad"}], detail="no good"
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json=body))
    with (
        Client("http://reeldb.test", "rdb_key", transport=transport) as client,
        pytest.raises(ValidationError) as info,
    ):
        client.get_namespace("vision")
    assert info.value.summary == "no good"
    assert [(v.pointer, v.message) for v in info.value.violations] == [("/a", "bad")]


def test_transport_errors_are_backend_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        Client("http://reeldb.test", "rdb_key", transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(BackendUnavailableError, match="refused"),
    ):
        client.list_namespaces()


def test_unexpected_answers_are_reeldb_errors() -> None:
    redirect = httpx.Response(307, headers={"Location": "http://reeldb.test/v1/namespaces"})
    transport = httpx.MockTransport(lambda request: redirect)
    with (
        Client("http://reeldb.test", "rdb_key", transport=transport) as client,
        pytest.raises(ReelError),
    ):
        client.get_namespace("vision")


def test_the_client_is_a_context_manager(live: Any) -> None:
    recording = Recording()
    client = Client(live.url, live.admin_key, transport=recording)
    with client as entered:
        assert entered is client
        assert entered.whoami().system_admin
        assert not recording.closed
    assert recording.closed
    assert repr(client) == f"<reeldb.client.Client {live.url}>"


def test_closed_client_raises(live: Any) -> None:
    client = live.client()
    client.close()
    with pytest.raises(DatabaseClosedError):
        client.list_namespaces()


def test_environment_defaults(live: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with Client() as client:  # the autouse fixture cleared REELDB_*
        assert client.url == DEFAULT_URL
    monkeypatch.setenv("REELDB_URL", live.url + "/")
    monkeypatch.setenv("REELDB_API_KEY", live.admin_key)
    with Client() as client:
        assert client.url == live.url
        assert client.whoami().name == "user:admin"
    alice = live.key("user:alice")
    monkeypatch.setenv("REELDB_URL", f"http://127.0.0.1:{_free_port()}")
    with Client(live.url, alice) as client:  # arguments win over the environment
        assert client.whoami().name == "user:alice"
    with Client(live.url, api_key="") as client, pytest.raises(UnauthenticatedError):
        client.whoami()  # an explicit empty key sends none


# -- whoami, API keys and the audit log --------------------------------------------------------


def test_whoami(world: World) -> None:
    admin = world.client.whoami()
    assert admin == world.db.authenticate(world.live.admin_key)
    assert (admin.name, admin.system_admin, admin.roles) == ("user:admin", True, {})
    secret = world.live.key("user:alice")
    with world.live.client(secret) as alice:
        me = alice.whoami()
    [key] = world.db.list_api_keys("user:alice")
    assert me == world.db.authenticate(secret)
    assert (me.name, me.system_admin, me.roles) == ("user:alice", False, {"vision": "admin"})
    assert me.key_id == key.key_id


def test_api_keys(live: Any) -> None:
    with live.client() as client:
        new = client.create_api_key("app:tagger", description="the tagger")
        assert new.secret.startswith("rdb_")
        key = new.key
        assert (key.principal, key.description, key.created_by) == (
            "app:tagger",
            "the tagger",
            "user:admin",  # the caller, not the embedded default local:owner
        )
        assert key.active and key.revoked_at is None
        assert live.db.authenticate(new.secret).name == "app:tagger"
        assert client.list_api_keys("app:tagger") == [key]
        assert [k.principal for k in client.list_api_keys()] == ["user:admin", "app:tagger"]
        revoked = client.revoke_api_key(key.key_id)
        assert revoked.key_id == key.key_id
        assert not revoked.active and revoked.revoked_at is not None
        assert (
            client.list_api_keys("app:tagger") == [revoked] == live.db.list_api_keys("app:tagger")
        )
        with pytest.raises(UnauthenticatedError):
            live.db.authenticate(new.secret)


def test_audit_log(world: World) -> None:
    c = world.client
    entries = c.list_audit(limit=1000).items
    assert [e.action for e in reversed(entries)] == [
        "namespace.create",
        "schema.add",
        "schema.add",
        "datastore.create",
        "document.put",
    ]
    assert [e.seq for e in entries] == sorted((e.seq for e in entries), reverse=True)
    assert {(e.principal, e.status) for e in entries} == {("user:admin", 201)}
    assert len({e.request_id for e in entries}) == len(entries)
    assert entries[0].target == "/v1/namespaces/vision/datastores/face_detection/1/documents"
    c.get_namespace("vision")  # reads are not audited
    with pytest.raises(AlreadyExistsError):
        c.create_namespace("vision")  # refused writes are
    refused = c.list_audit(limit=1).items[0]
    assert (refused.action, refused.status, refused.seq) == ("namespace.create", 409, 6)
    assert c.list_audit(limit=1000) == world.db.list_audit(limit=1000)
    in_vision = c.list_audit("vision").items
    assert {e.namespace for e in in_vision} == {"vision"}
    assert [e.action for e in in_vision][:2] == ["namespace.create", "document.put"]
    seen, cursor = [], None
    while True:
        page = c.list_audit(limit=2, cursor=cursor)
        seen += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert tuple(seen) == c.list_audit(limit=1000).items


# -- the service's settings ---------------------------------------------------------------------


def test_service_settings_apply() -> None:
    """A Client is bound by the service's max_document_bytes and max_request_bytes."""
    with reeldb.connect("memory:", max_document_bytes=600, max_request_bytes=2000) as database:
        admin = database.bootstrap()
        assert admin is not None
        with running_service(database) as url, Client(url, admin.secret) as client:
            client.create_namespace("vision")
            client.add_schema("vision", copy.deepcopy(FACE_DETECTION))
            client.create_datastore(DS, mid_keys=list(MID), schema="face_detection")
            document = face_document(4)
            assert 600 < len(orjson.dumps(document)) < 2000
            with pytest.raises(ValidationError) as remote:
                client.put_document(DS, MID, document)
            with pytest.raises(ValidationError) as embedded:
                database.put_document(DS, MID, document)
            assert str(remote.value) == str(embedded.value)
            assert "at most 600 (setting max_document_bytes)" in str(remote.value)
            with pytest.raises(ValidationError, match="larger than 2000 bytes"):
                client.put_document(DS, MID, face_document(20))
            assert client.count_documents(DS) == 0
