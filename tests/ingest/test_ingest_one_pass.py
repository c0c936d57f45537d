"""A large blob is validated and staged in one pass (SQLite): its JSON is decoded once.

Every write that names its request is written in one pass (``one_pass_bytes`` is 0), and
here ``own_generation_bytes`` is 0 too: validation cuts and stages the rows as it goes,
into an index generation of its own (``test_ingest_one_pass_shared`` stages into the
shared one); `begin` and `stage` find the work done. The index is the one a synchronous write
makes; a crash resumes; an invalid document leaves nothing; a document whose members come
after their lists is staged again by the second pass.
"""

from __future__ import annotations

import contextlib
import copy
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from ingest_docs import DS, DS2, NS, documents, dumps, setup
from test_ingest_service import (
    QUERIES,
    Crash,
    assert_same_answers,
    crash_on,
    index_counts,
    pieces,
    rich_document,
)

import reeldb
from reeldb.errors import NotFoundError, ValidationError
from reeldb.ingest import ValidatedBlob
from reeldb.ingest._service import OWN_GENERATION_BYTES
from reeldb.store.sqlite._ingest import UNSIZED


def connect(path: Path) -> reeldb.Database:
    db = reeldb.connect(f"sqlite:///{path / 'reel.db'}", index_chunk_bytes=200)
    db._ingest.own_generation_bytes = 0
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[reeldb.Database]:
    with connect(tmp_path) as database:
        setup(database, DS, DS2)
        yield database


def validate(
    db: reeldb.Database, doc: dict[str, Any] | bytes, request: UUID, mid: str = "m1"
) -> ValidatedBlob:
    body = doc if isinstance(doc, bytes) else dumps(doc)
    blob = db.blobs.put(NS, pieces(body))
    return db._ingest.validate(DS, {"id": mid}, blob.id, request_id=request)


def finish(db: reeldb.Database, request: UUID, validated: ValidatedBlob) -> UUID:
    """The later steps of the write (`begin`, `stage`, `publish`); the DocumentID."""
    db._ingest.begin(request, validated)
    db._ingest.stage(request, validated)
    return db._ingest.publish(request).id


def tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path / "reel.db")) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}


def refused(db: reeldb.Database, doc: dict[str, Any], tmp_path: Path) -> list[Any]:
    """Stream ``doc`` in one pass: the violations (those of a synchronous write of it), with
    its ingest discarded and no index table left behind."""
    request = uuid4()
    with pytest.raises(ValidationError) as streamed:
        validate(db, doc, request)
    with pytest.raises(ValidationError) as written:
        db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert streamed.value.violations == written.value.violations
    assert db.store.get_ingest(request).state == "discarded"
    assert not any(name.startswith("ix") for name in tables(tmp_path))
    return list(streamed.value.violations)


def test_the_default_thresholds() -> None:
    assert OWN_GENERATION_BYTES == 64 * 1024 * 1024
    with reeldb.connect("memory:") as db:
        assert db._ingest.one_pass_bytes == 0
        assert db._ingest.own_generation_bytes == OWN_GENERATION_BYTES


def test_validation_stages_every_row(db: reeldb.Database, tmp_path: Path) -> None:
    doc = rich_document()
    first = db.put_document(DS, {"id": "m0"}, {"asset": {"title": "short"}})
    request = uuid4()
    validated = validate(db, doc, request)
    state = db.store.get_ingest(request)
    assert state.state == "staging"
    assert state.rows_done == state.rows == validated.plan.rows == 22
    assert state.chunks_done == state.chunks == validated.plan.chunks > 1
    shared, own = db.index_status(DS)
    assert (own.state, own.in_alias) == ("staging", False)
    # Invisible until published.
    assert db.count_documents(DS) == 1
    with pytest.raises(NotFoundError):
        db.get_document(state.document_id)
    for query in QUERIES:
        found = {m.id for m in db.query_datastore(DS, query, limit=1000).items}
        assert state.document_id not in found, query
    # The later steps find the work done.
    assert db._ingest.begin(request, validated) == state
    assert db._ingest.stage(request, validated) == state
    streamed = db._ingest.publish(request)
    assert streamed.id == state.document_id
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed.id, written.id)
    assert [g.in_alias for g in db.index_status(DS)] == [True, True]
    assert db.index_status(DS)[0] == shared
    matched = {m.id for m in db.query_datastore(DS, 'event.label = "face"', limit=10).items}
    assert first.id not in matched and streamed.id in matched


def test_the_same_index_in_one_pass_or_two(tmp_path: Path) -> None:
    doc = rich_document()
    counts = []
    for one_pass in (True, False):
        path = tmp_path / str(one_pass)
        path.mkdir()
        with connect(path) as db:
            setup(db, DS, DS2)
            blob = db.blobs.put(NS, pieces(dumps(doc)))
            db._ingest.one_pass_bytes = 0 if one_pass else len(dumps(doc)) + 1
            streamed = db.put_document_from_blob(DS, {"id": "m1"}, blob.id, request_id=uuid4())
            written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
            assert_same_answers(db, streamed.id, written.id)
            counts.append(index_counts(db, DS, path))
    assert counts[0] == counts[1] and counts[0]["rows"] == 22


def test_only_a_large_blob_goes_in_one_pass(db: reeldb.Database) -> None:
    body = dumps(rich_document())
    db._ingest.one_pass_bytes = len(body) + 1
    request = uuid4()
    validate(db, body, request)
    with pytest.raises(NotFoundError):
        db.store.get_ingest(request)  # validated only: nothing begun
    db._ingest.one_pass_bytes = len(body)
    validate(db, body, request)
    assert db.store.get_ingest(request).rows_done == 22


def test_without_a_request_it_only_validates(db: reeldb.Database) -> None:
    blob = db.blobs.put(NS, pieces(dumps(rich_document())))
    validated = db._ingest.validate(DS, {"id": "m1"}, blob.id)
    assert validated.plan.rows == 22
    assert db.index_status(DS) == []


@pytest.mark.parametrize(
    "late",
    [
        "asset after tracks",
        "frame_rate after components",
        "component member after events",
        "everything late",
    ],
)
def test_members_after_their_lists_are_staged_by_the_second_pass(
    db: reeldb.Database, tmp_path: Path, late: str
) -> None:
    doc = rich_document()
    track, component = doc["tracks"][0], doc["tracks"][0]["components"][0]
    if late in ("asset after tracks", "everything late"):
        doc = {"tracks": doc["tracks"], "asset": doc["asset"]}
    if late in ("frame_rate after components", "everything late"):
        rate = track.pop("frame_rate")
        track["frame_rate"] = rate  # after "components"
    if late in ("component member after events", "everything late"):
        version = component.pop("version")
        component["version"] = version
    assert dumps(doc) != dumps(rich_document())
    request = uuid4()
    validated = validate(db, doc, request)
    state = db.store.get_ingest(request)
    assert state.state == "staging" and state.rows == 22 and state.rows_done == 0
    [own] = db.index_status(DS)
    assert (own.state, own.rows) == ("staging", 0)
    assert set(index_counts(db, DS, tmp_path).values()) == {0}  # a fresh generation
    streamed = finish(db, request, validated)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed, written.id)
    assert index_counts(db, DS, tmp_path)["rows"] == 22
    # The generation staged into first was dropped, not left behind.
    assert not any(name.startswith(f"ix{own.id - 1}_") for name in tables(tmp_path))


def test_an_invalid_document_leaves_nothing(db: reeldb.Database, tmp_path: Path) -> None:
    doc = rich_document()
    events = doc["tracks"][1]["components"][0]["events"]
    events[5]["confidence"] = 7  # late in the document: most rows are cut before it
    del events[6]["label"]
    assert len(refused(db, doc, tmp_path)) == 2
    assert db.index_status(DS) == []


@pytest.mark.parametrize("asset", ["a string", [1], 7, None])
def test_an_asset_of_another_type_is_reported(
    db: reeldb.Database, tmp_path: Path, asset: Any
) -> None:
    doc = rich_document()
    doc["asset"] = asset  # before the tracks: rows are cut with it until the end says no
    refused(db, doc, tmp_path)


def test_a_timing_violation_leaves_nothing(db: reeldb.Database, tmp_path: Path) -> None:
    doc = rich_document()
    doc["tracks"][0]["frame_rate"] = "0"  # frames at no rate: found at the track's end
    refused(db, doc, tmp_path)


def test_truncated_json_after_staged_batches_leaves_nothing(
    db: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reeldb.ingest._service.BATCH_ROWS", 3)
    body = dumps(rich_document())
    calls = crash_on(db, monkeypatch, 1_000)  # counts the batches, never crashes
    request = uuid4()
    with pytest.raises(ValidationError, match="not valid JSON"):
        validate(db, body[: len(body) * 3 // 4], request)
    assert len(calls) >= 2  # batches were staged before the end was found missing
    assert db.store.get_ingest(request).state == "discarded"
    assert not any(name.startswith("ix") for name in tables(tmp_path))


def test_a_crash_resumes_and_stages_each_row_once(
    db: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reeldb.ingest._service.BATCH_ROWS", 5)
    doc = rich_document()
    blob = db.blobs.put(NS, pieces(dumps(doc)))
    request = uuid4()
    calls = crash_on(db, monkeypatch, 3)
    with pytest.raises(Crash):
        db._ingest.validate(DS, {"id": "m1"}, blob.id, request_id=request)
    state = db.store.get_ingest(request)
    assert state.state == "staging" and state.rows == UNSIZED
    assert 10 <= state.rows_done < 22
    assert db.count_documents(DS) == 0
    # The step runs again: validation from the start, staging after the checkpoint.
    validated = db._ingest.validate(DS, {"id": "m1"}, blob.id, request_id=request)
    assert len(calls) > 3
    state = db.store.get_ingest(request)
    assert state.rows_done == state.rows == 22
    # Once more (a crash after the step, before its checkpoint): nothing is staged.
    again = db._ingest.validate(DS, {"id": "m1"}, blob.id, request_id=request)
    assert again.plan == validated.plan
    assert db.store.get_ingest(request) == state
    streamed = finish(db, request, validated)
    [own] = db.index_status(DS)
    with contextlib.closing(sqlite3.connect(tmp_path / "reel.db")) as conn:
        found = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM ix{own.id}_rows")
        assert found.fetchone() == (22, 22)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed, written.id)


def test_a_run_writes_in_one_pass(db: reeldb.Database) -> None:
    doc = rich_document()
    blob = db.blobs.put(NS, pieces(dumps(doc)))
    request = uuid4()
    streamed = db.put_document_from_blob(DS, {"id": "m1"}, blob.id, request_id=request)
    state = db.store.get_ingest(request)
    assert (state.state, state.rows_done, state.rows) == ("published", 22, 22)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed.id, written.id)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reeldb.Database]:
    path = tmp_path_factory.mktemp("one-pass")
    with connect(path) as database:
        setup(database, DS, DS2)
        yield database


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=documents(max_tracks=2, max_events=3))
def test_generated_documents_in_one_pass_answer_as_written(
    shared_db: reeldb.Database, doc: dict[str, Any]
) -> None:
    mid = str(uuid4())
    blob = shared_db.blobs.put(NS, pieces(dumps(doc)))
    streamed = shared_db.put_document_from_blob(DS, {"id": mid}, blob.id, request_id=uuid4())
    written = shared_db.put_document(DS2, {"id": mid}, copy.deepcopy(doc))
    assert shared_db.get_document(streamed.id).body == dumps(doc)
    assert_same_answers(shared_db, streamed.id, written.id)
