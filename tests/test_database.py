"""The Database facade: namespaces, roles, DataStores, MIDs and immutable documents.

Every scenario that takes ``db`` (or ``vision``, built on it) runs twice: on an embedded
Database, and through `reeldb.client.Client` against a live service (the issue's acceptance:
the same library-level scenarios pass through Client as through Database). A test that needs
the embedded object itself (a file, a setting of the caller's Database, ``connect``) does not
take ``db`` and says why; tests/test_client.py checks the Client's side of it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import orjson
import pytest

import reeldb
from reeldb.client import Client
from reeldb.errors import (
    AlreadyExistsError,
    BackendUnavailableError,
    ConfigError,
    DatabaseClosedError,
    InvalidSchemaError,
    NotFoundError,
    ValidationError,
)
from reeldb.testing import FACE_DETECTION, MID, face_document

DS = "vision/face_detection/1"

Api = reeldb.Database | Client
"""What the scenarios call: the embedded Database or the Client, method for method."""


@pytest.fixture(params=["embedded", "http"])
def db(request: pytest.FixtureRequest) -> Iterator[Api]:
    """Overrides conftest's ``db`` here (and so ``vision``): embedded, or through a Client.

    ``http`` is a Client with a system administrator's key (it may do everything, like the
    local owner of an embedded database) on a live service over a fresh in-memory database.
    """
    if request.param == "embedded":
        with reeldb.connect("memory:") as database:
            yield database
    else:
        live = request.getfixturevalue("live")
        with live.client() as client:
            yield client


def pointers(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [v.pointer for v in exc.value.violations]


# -- namespaces and roles ----------------------------------------------------------------------


def test_namespaces_and_roles(db: Api) -> None:
    db.create_namespace("media-video-analytics", description="LDAP group", admins=["user:alice"])
    assert [n.name for n in db.list_namespaces()] == ["media-video-analytics"]
    db.grant_role("media-video-analytics", "app:shot-detector", "writer")
    db.grant_role("media-video-analytics", "app:promo-tools", reeldb.Role.READER)
    roles = {g.principal: g.role for g in db.list_roles("media-video-analytics")}
    assert roles == {
        "user:alice": "admin",
        "app:shot-detector": "writer",
        "app:promo-tools": "reader",
    }
    db.revoke_role("media-video-analytics", "app:promo-tools")
    assert "app:promo-tools" not in {g.principal for g in db.list_roles("media-video-analytics")}
    with pytest.raises(ValidationError, match="invalid principal"):
        db.grant_role("media-video-analytics", "bad principal!", "reader")
    with pytest.raises(AlreadyExistsError):
        db.create_namespace("media-video-analytics")
    with pytest.raises(ValidationError, match="invalid namespace"):
        db.create_namespace("Has Spaces")
    with pytest.raises(ValidationError, match="reserved"):
        db.create_namespace("reeldb")
    with pytest.raises(NotFoundError):
        db.list_roles("missing")


def test_unknown_roles_are_refused(db: Api) -> None:
    db.create_namespace("media-video-analytics")
    with pytest.raises(ValidationError, match="unknown role 'owner'") as info:
        db.grant_role("media-video-analytics", "user:bob", "owner")
    assert info.value.violations == ()


# -- DataStores --------------------------------------------------------------------------------


def test_datastore_identity_is_a_triple(vision: Api) -> None:
    ds = vision.get_datastore(DS)
    assert (ds.ref.namespace, ds.ref.analysis_type, ds.ref.version) == (
        "vision",
        "face_detection",
        1,
    )
    assert ds.mid_keys == ("title_id", "video_stream_id")
    assert (ds.schema_name, ds.schema_version) == ("face_detection", 1)
    v2 = vision.create_datastore(
        "vision/face_detection/2", mid_keys=["title_id"], schema="face_detection"
    )
    assert [d.ref for d in vision.list_datastores("vision")] == [ds.ref, v2.ref]
    with pytest.raises(AlreadyExistsError, match="vision/face_detection/1"):
        vision.create_datastore(DS, mid_keys=["title_id"], schema="face_detection")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        pytest.param([], "non-empty list", id="empty"),
        pytest.param(["a", "a"], "repeats keys: a", id="duplicate"),
        pytest.param(["bad key"], "invalid MID key", id="bad-key"),
        pytest.param("title_id", "non-empty list", id="string-not-list"),
    ],
)
def test_bad_mid_schemas(vision: Api, keys: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        vision.create_datastore("vision/x/1", mid_keys=keys, schema="face_detection")


def test_datastore_needs_a_document_schema_of_its_namespace(vision: Api) -> None:
    vision.add_schema("vision", {"name": "TAG", "properties": {"label": {"type": "string"}}})
    with pytest.raises(InvalidSchemaError, match="annotation type"):
        vision.create_datastore("vision/tags/1", mid_keys=["id"], schema="TAG")
    with pytest.raises(ValidationError, match="built-in"):
        vision.create_datastore("vision/x/1", mid_keys=["id"], schema="TEMPORAL_SPATIAL_BASE")
    with pytest.raises(NotFoundError):
        vision.create_datastore("vision/x/1", mid_keys=["id"], schema="missing")
    with pytest.raises(NotFoundError):
        vision.create_datastore("other/x/1", mid_keys=["id"], schema="face_detection")
    with pytest.raises(ValidationError, match="namespace/analysis_type/version"):
        vision.get_datastore("vision/face_detection")


def test_the_mid_schema_cannot_change(vision: Api) -> None:
    """NMDB-13: no API changes a MID schema; recreating the DataStore is refused."""
    assert not any("mid" in name for name in dir(vision) if "update" in name or "set" in name)
    with pytest.raises(AlreadyExistsError):
        vision.create_datastore(
            DS, mid_keys=["title_id", "video_stream_id", "language"], schema="face_detection"
        )
    assert vision.get_datastore(DS).mid_keys == ("title_id", "video_stream_id")


# -- MIDs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mid", "expected"),
    [
        pytest.param({"title_id": "80100172"}, ["/video_stream_id"], id="missing-key"),
        pytest.param({**MID, "language": "en"}, ["/language"], id="extra-key"),
        pytest.param(
            {"title_id": 80100172, "video_stream_id": "v"}, ["/title_id"], id="not-a-string"
        ),
        pytest.param({"title_id": "", "video_stream_id": "v"}, ["/title_id"], id="empty-value"),
        pytest.param(
            {"language": "en"}, ["/title_id", "/video_stream_id", "/language"], id="all-wrong"
        ),
    ],
)
def test_mid_must_match_the_mid_schema(vision: Api, mid: Any, expected: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        vision.put_document(DS, mid, face_document())
    assert pointers(info) == expected
    assert vision.count_documents(DS) == 0


def test_mid_key_order_does_not_matter(vision: Api) -> None:
    vision.put_document(
        DS, {"video_stream_id": "vs-1080p-01", "title_id": "80100172"}, face_document()
    )
    assert vision.latest_document(DS, MID).mid == MID


# -- documents ---------------------------------------------------------------------------------


def test_write_and_read_back(vision: Api) -> None:
    doc = vision.put_document(DS, MID, face_document())
    assert doc.id.version == 7
    assert doc.schema_version == 1
    assert doc.data == face_document()
    assert vision.get_document(doc.id).body == doc.body
    assert vision.get_document(str(doc.id), datastore=DS).id == doc.id
    assert vision.latest_document(DS, MID).id == doc.id
    with pytest.raises(NotFoundError):
        vision.get_document(doc.id, datastore="vision/face_detection/2")


# Embedded only (no ``db``): a SQLite file's separate reader connections; the Client's reads
# are compared byte for byte with the Database's in tests/test_client.py.
def test_reads_are_repeatable_and_byte_identical(file_db: reeldb.Database) -> None:
    file_db.create_namespace("vision")
    file_db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
    file_db.create_datastore(DS, mid_keys=list(MID), schema="face_detection")
    doc = file_db.put_document(DS, MID, orjson.dumps(face_document(3)))
    again = [file_db.get_document(doc.id).body for _ in range(3)]
    assert again == [doc.body] * 3


def test_every_write_gets_a_new_document_id(vision: Api) -> None:
    """NMDB-15/16 (AT-18): retries are kept as their own documents; latest is the last one."""
    a1 = vision.put_document(DS, MID, face_document(1))
    a2 = vision.put_document(DS, MID, face_document(1))  # a retried submission
    b = vision.put_document(DS, MID, face_document(2))
    assert len({a1.id, a2.id, b.id}) == 3
    listed = vision.list_documents(DS, MID)
    assert [i.id for i in listed.items] == [b.id, a2.id, a1.id]
    assert listed.next_cursor is None
    assert vision.latest_document(DS, MID).id == b.id
    assert vision.get_document(a1.id).data == face_document(1)


def test_pagination_with_cursors(vision: Api) -> None:
    ids = [vision.put_document(DS, MID, face_document(1)).id for _ in range(7)]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = vision.list_documents(DS, MID, limit=3, cursor=cursor)
        seen += [i.id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    with pytest.raises(ValidationError, match="invalid cursor"):
        vision.list_documents(DS, MID, cursor="garbage")
    with pytest.raises(ValidationError, match="limit"):
        vision.list_documents(DS, MID, limit=0)
    with pytest.raises(ValidationError, match="limit"):
        vision.list_documents(DS, MID, limit=5000)


def _break(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set a value at a slash path like 'tracks/0/kind'."""
    broken = copy.deepcopy(document)
    *parents, last = path.split("/")
    node: Any = broken
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return broken


E = "tracks/0/components/0/events/0"


@pytest.mark.parametrize(
    ("path", "value", "pointer"),
    [
        pytest.param("asset/title", 42, "/asset/title", id="asset"),
        pytest.param("tracks/0/kind", "hologram", "/tracks/0/kind", id="track"),
        pytest.param("tracks/0/frame_rate", "fast", "/tracks/0/frame_rate", id="track-frame-rate"),
        pytest.param(
            "tracks/0/components/0/algorithm",
            None,
            "/tracks/0/components/0/algorithm",
            id="component",
        ),
        pytest.param(f"{E}/confidence", 1.5, f"/{E}/confidence", id="event"),
        pytest.param(
            f"{E}/time_range", {"start": 5, "end": 1}, f"/{E}/time_range", id="event-time-order"
        ),
        pytest.param(f"{E}/regions/0/person", ["Alice"], f"/{E}/regions/0/person", id="region"),
        pytest.param(
            f"{E}/regions/0/bounding_box",
            {"x": 0, "y": 0, "w": -1, "h": 1},
            f"/{E}/regions/0/bounding_box/w",
            id="region-box",
        ),
        pytest.param(f"{E}/regions/0/typo", 1, f"/{E}/regions/0", id="region-unknown-property"),
    ],
)
def test_invalid_documents_at_each_level(vision: Api, path: str, value: Any, pointer: str) -> None:
    with pytest.raises(ValidationError) as info:
        vision.put_document(DS, MID, _break(face_document(), path, value))
    assert pointer in pointers(info)
    assert "nothing was stored" in str(info.value)
    assert vision.count_documents(DS) == 0


def test_every_violation_is_listed(vision: Api) -> None:
    broken = _break(face_document(), "asset/title", 1)
    broken = _break(broken, f"{E}/label", 2)
    broken = _break(broken, f"{E}/regions/0/bounding_box", {"x": 0})
    with pytest.raises(ValidationError) as info:
        vision.put_document(DS, MID, broken)
    assert set(pointers(info)) >= {"/asset/title", f"/{E}/label", f"/{E}/regions/0/bounding_box"}


def test_missing_structure_and_wrong_shapes(vision: Api) -> None:
    with pytest.raises(ValidationError) as info:
        vision.put_document(DS, MID, {"tracks": []})
    assert pointers(info) == [""]  # asset is required: its level has a mandatory property
    with pytest.raises(ValidationError) as info:
        vision.put_document(DS, MID, _break(face_document(), E, {"label": "face"}))
    assert f"/{E}" in pointers(info)  # an event needs a time_range
    with pytest.raises(ValidationError, match="JSON object"):
        vision.put_document(DS, MID, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not valid JSON"):
        vision.put_document(DS, MID, b'{"asset": ')


def test_frame_exact_times(vision: Api) -> None:
    document = _break(
        face_document(), f"{E}/time_range", {"start_frame": 1_000_000, "end_frame": 1_000_001}
    )
    stored = vision.put_document(DS, MID, document)
    first = next(stored.events())
    assert first.time.start == Fraction(1_000_000 * 1001, 24000)  # exact at 24000/1001
    assert first.path == f"/{E}"
    no_rate = _break(document, "tracks/0/frame_rate", None)
    del no_rate["tracks"][0]["frame_rate"]
    with pytest.raises(ValidationError) as info:
        vision.put_document(DS, MID, no_rate)
    assert pointers(info) == [f"/{E}/time_range"]
    assert "no frame rate" in str(info.value)
    own_rate = _break(
        no_rate, f"{E}/time_range", {"start_frame": 30, "end_frame": 60, "rate": "30000/1001"}
    )
    assert next(vision.put_document(DS, MID, own_rate).events()).time.end == Fraction(2002, 1000)


def test_batches_are_all_or_nothing(vision: Api) -> None:
    good = face_document()
    bad = _break(good, "asset/title", 3)
    with pytest.raises(ValidationError) as info:
        vision.put_documents(DS, [(MID, good), (MID, good), (MID, bad)])
    assert pointers(info) == ["/2/asset/title"]
    assert vision.count_documents(DS) == 0
    stored = vision.put_documents(DS, [(MID, good)] * 3)
    assert len({d.id for d in stored}) == 3
    with pytest.raises(ValidationError, match="no documents"):
        vision.put_documents(DS, [])
    with pytest.raises(ValidationError, match="pair"):
        vision.put_documents(DS, [MID])  # type: ignore[list-item]


# Embedded only (no ``db``): max_document_bytes is a setting of the caller's Database; through a
# Client the service's setting applies (tests/test_client.py::test_service_settings_apply).
def test_document_size_limit(tmp_path: Any) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'small.db'}", max_document_bytes=500) as small:
        small.create_namespace("vision")
        small.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        small.create_datastore(DS, mid_keys=list(MID), schema="face_detection")
        with pytest.raises(ValidationError, match="at most 500"):
            small.put_document(DS, MID, face_document(10))
        with pytest.raises(ValidationError, match="at most 500"):
            small.put_document(DS, MID, orjson.dumps(face_document(10)))


def test_bad_document_ids(vision: Api) -> None:
    with pytest.raises(ValidationError, match="expected a UUID"):
        vision.get_document("not-a-uuid")
    with pytest.raises(NotFoundError):
        vision.get_document(uuid.uuid4())
    with pytest.raises(NotFoundError, match="no document for MID"):
        vision.latest_document(DS, MID)


def test_plain_json_schema_datastore_still_enforces_the_timeline(vision: Api) -> None:
    vision.add_schema(
        "vision",
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "loudness",
            "type": "object",
            "properties": {"asset": {"type": "object", "required": ["lufs"]}},
        },
    )
    vision.create_datastore("vision/loudness/1", mid_keys=["title_id"], schema="loudness")
    ok = {"asset": {"lufs": -23}, "tracks": []}
    vision.put_document("vision/loudness/1", {"title_id": "1"}, ok)
    with pytest.raises(ValidationError):  # the user's schema
        vision.put_document("vision/loudness/1", {"title_id": "1"}, {"asset": {}})
    bad_time = {
        "asset": {"lufs": 1},
        "tracks": [{"components": [{"events": [{"time_range": {"start": 2, "end": 1}}]}]}],
    }
    with pytest.raises(ValidationError):  # the built-in media document structure
        vision.put_document("vision/loudness/1", {"title_id": "1"}, bad_time)


# Embedded only (no ``db``): closing and opening Databases; the Client's counterparts are in
# tests/test_client.py (test_closed_client_raises, test_unreachable_service).
def test_closed_database_raises(tmp_path: Any) -> None:
    db = reeldb.connect(f"sqlite:///{tmp_path / 'c.db'}")
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.list_namespaces()


def test_unsupported_urls_and_settings() -> None:
    with pytest.raises(BackendUnavailableError, match="cannot connect to PostgreSQL"):
        reeldb.connect("postgresql://postgres@127.0.0.1:1/x")
    with pytest.raises(ConfigError, match="unsupported database URL"):
        reeldb.connect("mysql://x")
    with pytest.raises(ConfigError, match="unknown setting"):
        reeldb.connect("memory:", colour="blue")


# -- queries ------------------------------------------------------------------------------------


def test_queries_and_the_index(vision: Api) -> None:
    """Both query types, paging, the index status and a rebuild, embedded and over HTTP."""
    alice = vision.put_document(DS, MID, face_document(3, person="Alice", title="Storms"))
    bob = vision.put_document(DS, {**MID, "title_id": "2"}, face_document(2, person="Bob"))
    newer = vision.put_document(DS, MID, face_document(1, person="Carol"))
    query = 'region.person = "Alice" or asset.title contains storm'
    assert vision.query_datastore(DS, query).items == ()  # Alice's MID moved on to Carol
    every = vision.query_datastore(DS, query, all_versions=True)
    assert [m.id for m in every.items] == [alice.id]
    assert every.items[0].mid == MID
    page = vision.query_datastore(
        DS, {"not": {"field": "region.person", "op": "=", "value": "X"}}, limit=1
    )
    assert [m.id for m in page.items] == [bob.id] and page.next_cursor is not None
    rest = vision.query_datastore(DS, 'not region.person = "X"', limit=1, cursor=page.next_cursor)
    assert [m.id for m in rest.items] == [newer.id] and rest.next_cursor is None

    events = vision.query_document(alice.id, "event.time_range overlaps(1, 1.2)")
    [match] = events.items
    assert match.path == "/tracks/0/components/0/events/1"
    assert (match.time.start, match.time.end) == (Fraction(1), Fraction(3, 2))
    assert match.track == {"kind": "video", "frame_rate": "24000/1001"}
    assert match.component == {"algorithm": "face_detector"}
    assert "regions" not in match.event and match.event["label"] == "face"
    assert match.region_indexes == (0,) and match.regions[0]["person"] == "Alice"
    paged = vision.query_document(alice.id, 'event.label = "face"', limit=2)
    assert len(paged.items) == 2 and paged.next_cursor is not None
    last = vision.query_document(
        alice.id, 'event.label = "face"', limit=2, cursor=paged.next_cursor
    )
    assert len(last.items) == 1 and last.next_cursor is None

    [generation] = vision.index_status(DS)
    assert generation.in_alias and generation.docs == 3
    rebuilt = vision.rebuild_index(DS)
    assert vision.index_status(DS) == [rebuilt] and rebuilt.name == "g2"
    assert [m.id for m in vision.query_datastore(DS, query, all_versions=True).items] == [alice.id]


def test_filter_totals_and_asynchronous_queries(vision: Api) -> None:
    docs = [
        vision.put_document(DS, {**MID, "title_id": str(i)}, face_document(i)) for i in (1, 2, 3)
    ]
    query = 'event.label = "face"'
    first = vision.query_datastore(DS, query, limit=2)
    assert first.total == 3 and first.next_cursor is not None
    assert vision.query_datastore(DS, query, limit=2, cursor=first.next_cursor).total is None
    assert vision.query_datastore(DS, 'region.person = "Nobody"').total == 0

    submitted = vision.submit_query(DS, query)
    assert submitted.datastore == reeldb.DataStoreRef.parse(DS) and not submitted.all_versions
    assert submitted.query == {"field": "event.label", "op": "=", "value": "face"}
    done = vision.wait_query(submitted.id, timeout=30)
    assert (done.state, done.found, done.error) == ("done", 3, None)
    assert vision.get_query_request(str(submitted.id)) == done
    page = vision.query_results(submitted.id, limit=2)
    rest = vision.query_results(submitted.id, limit=2, cursor=page.next_cursor)
    assert [m.id for m in page.items + rest.items] == [d.id for d in docs]
    assert page.total == 3 and rest.next_cursor is None
    with pytest.raises(reeldb.QueryError, match="did you mean"):
        vision.submit_query(DS, 'event.lable = "face"')
    with pytest.raises(reeldb.NotFoundError):
        vision.get_query_request("01936f5e-0000-7000-8000-000000000000")
    with pytest.raises(reeldb.ValidationError):
        vision.query_results("nope")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('event.label == "x"', r"unexpected '='.*line 1, column 14"),
        ('event.lable = "x"', "did you mean event.label"),
        ('event.confidence > "high"', "compare it with a number"),
        ({"field": "event.label", "op": "~", "value": 1}, "op is one of"),
    ],
)
def test_bad_queries_are_query_errors(vision: Api, query: Any, message: str) -> None:
    doc = vision.put_document(DS, MID, face_document(1))
    with pytest.raises(reeldb.QueryError, match=message):
        vision.query_datastore(DS, query)
    with pytest.raises(reeldb.QueryError, match=message):
        vision.query_document(doc.id, query)


def test_document_info_without_the_body(vision: Api) -> None:
    doc = vision.put_document(DS, MID, face_document(2))
    info = vision.get_document_info(doc.id)
    assert (info.id, info.datastore, info.mid, info.size) == (
        doc.id,
        doc.datastore,
        MID,
        len(doc.body),
    )
    assert info.schema_version == 1 and info.created_at == doc.created_at
    with pytest.raises(NotFoundError):
        vision.get_document_info(uuid.uuid4())
    with pytest.raises(reeldb.ValidationError):
        vision.get_document_info("nope")
