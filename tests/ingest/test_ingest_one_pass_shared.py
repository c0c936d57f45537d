"""A blob below ``own_generation_bytes`` is written in one pass into the shared generation.

Its size is not known as it is staged, so the ingest reserves as many ids as the blob's
bytes allow rows (`unsized_bound`), behind a sentinel row; once validated, the sentinels
move to the end of the document's own range. These tests check that the range holds
whatever the document, that writes made meanwhile go past it, and that a crash, an
invalid document or a document staged again by the second pass leave nothing behind.
"""

from __future__ import annotations

import contextlib
import copy
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from ingest_docs import DS, DS2, NS, documents, dumps, setup
from test_ingest_one_pass import finish, validate
from test_ingest_own_generation import small_document
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
from reeldb.errors import ConflictError, NotFoundError, ValidationError
from reeldb.index.rows import DocumentRows
from reeldb.store.base import IngestStart
from reeldb.store.sqlite._ingest import UNSIZED, unsized_bound

SQL_ROWS = "SELECT id, doc, e FROM ix{g}_rows ORDER BY id"


ROLLOVER = 200
"""A document of 100 rows or more would be staged alone if its count were known: the test
documents' reservations (half their bytes) are larger, their rows fewer."""


def connect(path: Path, rollover: int = 1_000_000) -> reeldb.Database:
    return reeldb.connect(
        f"sqlite:///{path / 'reel.db'}", index_chunk_bytes=200, index_rollover_rows=rollover
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[reeldb.Database]:
    with connect(tmp_path, ROLLOVER) as database:
        setup(database, DS, DS2)
        database.put_document(DS, {"id": "m0"}, small_document())  # the shared generation
        yield database


def rows(db: reeldb.Database, path: Path) -> list[tuple[int, int, int | None]]:
    """``(id, doc, e)`` of every row of the DataStore's one generation."""
    [gen] = db.index_status(DS)
    with contextlib.closing(sqlite3.connect(path / "reel.db")) as conn:
        return [tuple(row) for row in conn.execute(SQL_ROWS.format(g=gen.id))]


def sentinels(db: reeldb.Database, path: Path) -> list[int]:
    """Ids of the reservations' sentinel rows (no event, no position)."""
    [gen] = db.index_status(DS)
    with contextlib.closing(sqlite3.connect(path / "reel.db")) as conn:
        found = conn.execute(f"SELECT id FROM ix{gen.id}_rows WHERE e IS NULL AND t IS NULL")
        return [row[0] for row in found]


def spans(db: reeldb.Database, path: Path) -> dict[int, tuple[int, int]]:
    [gen] = db.index_status(DS)
    with contextlib.closing(sqlite3.connect(path / "reel.db")) as conn:
        found = conn.execute(
            "SELECT doc_seq, first_row, last_row FROM index_docs WHERE generation_id = ?",
            (gen.id,),
        )
        return {seq: (first, last) for seq, first, last in found}


def assert_consistent(db: reeldb.Database, path: Path) -> None:
    """No sentinel is left, and every document's rows are exactly its span's."""
    assert sentinels(db, path) == []
    by_doc: dict[int, list[int]] = {}
    for row_id, doc, _ in rows(db, path):
        by_doc.setdefault(doc, []).append(row_id)
    assert {seq: (ids[0], ids[-1]) for seq, ids in by_doc.items()} == spans(db, path)
    assert all(ids == list(range(ids[0], ids[-1] + 1)) for ids in by_doc.values())


def test_validation_stages_into_the_shared_generation(db: reeldb.Database, tmp_path: Path) -> None:
    doc = rich_document()
    [shared] = db.index_status(DS)
    request = uuid4()
    validated = validate(db, doc, request)
    state = db.store.get_ingest(request)
    assert state.rows_done == state.rows == validated.plan.rows == 22
    assert state.chunks_done == state.chunks == validated.plan.chunks > 1
    assert unsized_bound(len(dumps(doc))) > ROLLOVER
    assert db.index_status(DS) == [shared]  # no generation of its own, whatever it reserved
    # Invisible until published; the reservation's end moved to the document's last row.
    assert db.count_documents(DS) == 1
    with pytest.raises(NotFoundError):
        db.get_document(state.document_id)
    for query in QUERIES:
        found = {m.id for m in db.query_datastore(DS, query, limit=1000).items}
        assert state.document_id not in found, query
    assert sentinels(db, tmp_path) == []
    assert db._ingest.begin(request, validated) == state
    assert db._ingest.stage(request, validated) == state
    streamed = db._ingest.publish(request)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed.id, written.id)
    assert_consistent(db, tmp_path)
    ids = [row_id for row_id, seq, _ in rows(db, tmp_path) if seq == state.doc_seq]
    assert len(ids) == 22
    # The reservation shrank to the document's rows: a later document takes the next ids.
    later = db.put_document(DS, {"id": "m2"}, small_document())
    later_ids = [row_id for row_id, seq, _ in rows(db, tmp_path) if seq > state.doc_seq]
    assert min(later_ids) == ids[-1] + 1
    assert {m.id for m in db.query_datastore(DS, 'event.label = "face"', limit=10).items} >= {
        streamed.id
    }
    assert db.get_document(later.id).data == small_document()


def test_writes_while_it_stages_go_past_its_range(
    db: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reeldb.ingest._service.BATCH_ROWS", 5)
    original = db.store.stage_ingest
    others: list[Any] = []

    def stage_ingest(*args: Any, **kwargs: Any) -> Any:
        others.append(db.put_document(DS, {"id": f"o{len(others)}"}, rich_document()))
        return original(*args, **kwargs)

    monkeypatch.setattr(db.store, "stage_ingest", stage_ingest)
    doc = rich_document()
    request = uuid4()
    streamed = finish(db, request, validate(db, doc, request))
    assert len(others) >= 4
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed, written.id)
    for other in others:
        assert_same_answers(db, other.id, written.id)
    assert_consistent(db, tmp_path)


def test_an_invalid_document_leaves_nothing(db: reeldb.Database, tmp_path: Path) -> None:
    before = rows(db, tmp_path)
    doc = rich_document()
    events = doc["tracks"][1]["components"][0]["events"]
    events[5]["confidence"] = 7  # late: most rows are staged before it
    request = uuid4()
    with pytest.raises(ValidationError, match="confidence"):
        validate(db, doc, request)
    assert db.store.get_ingest(request).state == "discarded"
    assert rows(db, tmp_path) == before
    assert db.count_documents(DS) == 1
    # Its full-text entries stay (a contentless table cannot forget) but match nothing.
    later = db.put_document(DS, {"id": "m2"}, rich_document())
    written = db.put_document(DS2, {"id": "m2"}, rich_document())
    assert_same_answers(db, later.id, written.id)
    assert_consistent(db, tmp_path)


def test_truncated_json_after_staged_batches_leaves_nothing(
    db: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reeldb.ingest._service.BATCH_ROWS", 3)
    before = rows(db, tmp_path)
    body = dumps(rich_document())
    calls = crash_on(db, monkeypatch, 1_000)  # counts the batches, never crashes
    request = uuid4()
    with pytest.raises(ValidationError, match="not valid JSON"):
        validate(db, body[: len(body) * 3 // 4], request)
    assert len(calls) >= 2
    assert db.store.get_ingest(request).state == "discarded"
    assert rows(db, tmp_path) == before


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
    assert len(sentinels(db, tmp_path)) == 1  # the reservation's end
    validated = db._ingest.validate(DS, {"id": "m1"}, blob.id, request_id=request)
    assert len(calls) > 3
    state = db.store.get_ingest(request)
    assert state.rows_done == state.rows == 22
    again = db._ingest.validate(DS, {"id": "m1"}, blob.id, request_id=request)
    assert again.plan == validated.plan
    streamed = finish(db, request, validated)
    assert [seq for _, seq, _ in rows(db, tmp_path)].count(state.doc_seq) == 22
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed, written.id)
    assert_consistent(db, tmp_path)


def test_a_failed_run_is_discarded(
    db: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reeldb.ingest._service.BATCH_ROWS", 5)
    before = rows(db, tmp_path)
    blob = db.blobs.put(NS, pieces(dumps(rich_document())))
    crash_on(db, monkeypatch, 2)
    request = uuid4()
    with pytest.raises(Crash):
        db._ingest.run(DS, {"id": "m1"}, blob.id, request_id=request)
    assert db.store.get_ingest(request).state == "discarded"
    assert rows(db, tmp_path) == before


@pytest.mark.parametrize("retried", [False, True])
def test_members_after_their_lists_get_a_new_range(
    db: reeldb.Database, tmp_path: Path, retried: bool
) -> None:
    doc = rich_document()
    doc = {"tracks": doc["tracks"], "asset": doc["asset"]}  # rows cut without the asset
    body = dumps(doc)
    request = uuid4()
    validated = validate(db, body, request)
    if retried:  # the step runs again (a crash before its checkpoint): a new range again
        validated = validate(db, body, request)
    state = db.store.get_ingest(request)
    assert (state.rows, state.rows_done) == (22, 0)
    assert len(sentinels(db, tmp_path)) == 1  # the end of the new, exact range
    streamed = finish(db, request, validated)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed, written.id)
    assert_consistent(db, tmp_path)
    assert index_counts(db, DS, tmp_path)["rows"] == 1 + 22  # m0's row and the document's


def test_a_batch_beyond_the_reservation_is_refused(db: reeldb.Database) -> None:
    blob = db.blobs.put(NS, [b"{}"])
    ds = db._datastore(DS)
    schema = db.schemas.get(NS, "scenes", ds.schema_version)
    start = IngestStart(
        uuid4(),
        ds.id,
        ds.schema_version,
        uuid4(),
        "m9",
        datetime.now(UTC),
        blob.id,
        2,
        db._columns(schema),
        UNSIZED,
        UNSIZED,
    )
    state = db.store.begin_unsized_ingest(start, alone=False)
    assert state.rows == UNSIZED
    bound = unsized_bound(2)
    fixed = (None,) * 10 + (None,) * sum(c.width for c in db._columns(schema))
    batch = DocumentRows([fixed] * (bound + 1), [], [], [])
    with pytest.raises(ConflictError, match="more rows than it reserved"):
        db.store.stage_ingest(start.id, batch, rows_at=0, chunks_at=0, events=0)
    db.store.discard_ingest(start.id)
    assert db.store.get_ingest(start.id).state == "discarded"


def test_the_bound_holds_for_the_densest_documents() -> None:
    """Rows are at most nodes, and every node but the asset is an object in a list."""
    event = {"label": "a", "time_range": {"start": 0, "end": 1}, "regions": [{}] * 50}
    doc = {"tracks": [{"components": [{"events": [event] * 40}]}, {}, {"components": [{}]}]}
    with reeldb.connect("memory:") as db:
        setup(db, DS)
        from reeldb.index.rows import document_rows

        cut = document_rows(doc, list(db._columns(db.schemas.get(NS, "scenes", 1))), 200)
    body = dumps(doc).replace(b" ", b"")
    assert len(cut.rows) == 40 * 50 + 2 and len(cut.chunks) >= 1
    assert len(cut.rows) <= unsized_bound(len(body)) and len(cut.chunks) <= unsized_bound(len(body))
    assert unsized_bound(len(b'{"tracks":[{},{}]}')) > 3


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[reeldb.Database, Path]]:
    path = tmp_path_factory.mktemp("one-pass-shared")
    with connect(path) as database:
        setup(database, DS, DS2)
        yield database, path


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=documents(max_tracks=2, max_events=3))
def test_generated_documents_answer_as_written(
    shared_db: tuple[reeldb.Database, Path], doc: dict[str, Any]
) -> None:
    db, path = shared_db
    mid = str(uuid4())
    body = dumps(doc)
    request = uuid4()
    streamed = db.put_document_from_blob(DS, {"id": mid}, db.blobs.put(NS, [body]).id,
                                         request_id=request)  # fmt: skip
    written = db.put_document(DS2, {"id": mid}, copy.deepcopy(doc))
    assert db.get_document(streamed.id).body == body
    assert_same_answers(db, streamed.id, written.id)
    state = db.store.get_ingest(request)
    assert state.rows <= unsized_bound(len(body)) and state.chunks <= unsized_bound(len(body))
    assert_consistent(db, path)
