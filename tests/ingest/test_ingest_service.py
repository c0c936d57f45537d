"""Documents written from blobs, end to end on a SQLite file: the same as a synchronous write."""

from __future__ import annotations

import contextlib
import copy
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from ingest_docs import DS, DS2, NS, SCHEMA, documents, dumps, setup

import reeldb
from reeldb.errors import AlreadyExistsError, ConflictError, NotFoundError, ValidationError
from reeldb.ingest.plan import IngestPlan

CHUNK = 200
GRACE = 600.0

QUERIES = [
    'event.label = "face"',
    'event.label != "car"',
    'event.label in ("car", "dog")',
    'region.person = "Alice"',
    "region.score >= 0.5",
    "region.bounding_box intersects(0, 0, 0.2, 0.2)",
    "region.bounding_box within(0, 0, 1, 1)",
    "event.time_range overlaps(0.5, 1.5)",
    "event.time_range overlaps(2, 3)",
    "region.time_range overlaps(0, 1)",
    "event.text contains storm",
    'event.text contains "heavy rain"',
    'asset.title contains "café"',
    'track.kind = "video"',
    'component.algorithm = "b"',
    "event.confidence > 0.2",
    'count(event where event.label = "face") >= 2',
    'track.lang = "fr" and not event.label = "face"',
]


def connect(path: Path) -> reeldb.Database:
    return reeldb.connect(
        f"sqlite:///{path / 'reel.db'}", index_chunk_bytes=CHUNK, blob_grace=GRACE
    )


@pytest.fixture
def fdb(tmp_path: Path) -> Iterator[reeldb.Database]:
    with connect(tmp_path) as database:
        setup(database, DS, DS2)
        yield database


def pieces(data: bytes, size: int = 97) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def rich_document() -> dict[str, Any]:
    """Three tracks (frames, seconds, no components), texts, regions: 22 rows."""

    def ev(i: int, label: str, **extra: Any) -> dict[str, Any]:
        return {"label": label, "time_range": {"start": i * 0.5, "end": i * 0.5 + 1}, **extra}

    box = {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.3}
    return {
        "asset": {"title": "Café storms", "year": 2026},
        "tracks": [
            {
                "kind": "video",
                "lang": "en",
                "frame_rate": "30000/1001",
                "components": [
                    {
                        "algorithm": "a",
                        "version": 1.5,
                        "events": [
                            ev(
                                i,
                                "face" if i % 3 else "car",
                                confidence=i / 10,
                                text="heavy rain storm" if i % 2 else "running",
                                regions=[
                                    {"bounding_box": box, "person": "Alice", "score": 0.5},
                                    {
                                        "bounding_box": {**box, "x": 0.6},
                                        "person": "Bob",
                                        "time_range": {"start_frame": i, "end_frame": i + 30},
                                    },
                                ]
                                if i % 4 == 0
                                else [],
                            )
                            for i in range(9)
                        ],
                    },
                    {"algorithm": "b", "events": []},
                    {
                        "algorithm": "b",
                        "events": [
                            {"label": "dog", "time_range": {"start_frame": 10, "end_frame": 40}}
                        ],
                    },
                ],
            },
            {
                "kind": "audio",
                "lang": "fr",
                "components": [
                    {"algorithm": "a", "events": [ev(i, "face", text="storm") for i in range(7)]}
                ],
            },
            {"kind": "subtitle"},
        ],
    }


def rows_of(db: reeldb.Database, doc: dict[str, Any]) -> int:
    from reeldb.index.rows import document_rows

    return len(document_rows(doc, list(db._columns(db.schemas.get(NS, "scenes", 1))), CHUNK).rows)


def assert_same_answers(db: reeldb.Database, streamed: UUID, written: UUID) -> None:
    """The streamed document answers every query as the synchronously written one."""
    assert db.get_document(streamed).data == db.get_document(written).data
    for query in QUERIES:
        a = db.query_document(streamed, query, limit=1000)
        b = db.query_document(written, query, limit=1000)
        assert a.items == b.items, query
        found_a = {m.id for m in db.query_datastore(DS, query, limit=1000).items}
        found_b = {m.id for m in db.query_datastore(DS2, query, limit=1000).items}
        assert (streamed in found_a) == (written in found_b), query


def index_counts(db: reeldb.Database, ds: str, path: Path) -> dict[str, int]:
    """Rows of each of the DataStore's index tables (read from the file)."""
    gens = db.index_status(ds)
    if not gens:
        return {}
    (gen,) = gens
    out = {}
    with contextlib.closing(sqlite3.connect(path / "reel.db")) as conn:
        for table in ("rows", "chunks", "time", "fts"):
            with contextlib.suppress(sqlite3.OperationalError):  # no such table
                out[table] = conn.execute(f"SELECT count(*) FROM ix{gen.id}_{table}").fetchone()[0]
        out["index_docs"] = conn.execute(
            "SELECT count(*) FROM index_docs WHERE generation_id = ?", (gen.id,)
        ).fetchone()[0]
    return out


def write_both(db: reeldb.Database, doc: dict[str, Any], mid: str = "m1") -> tuple[Any, Any]:
    data = dumps(doc)
    blob = db.blobs.put(NS, pieces(data))
    streamed = db.put_document_from_blob(DS, {"id": mid}, blob.id)
    written = db.put_document(DS2, {"id": mid}, copy.deepcopy(doc))
    return streamed, written


# -- a streamed write is a write ------------------------------------------------------------


def test_a_streamed_document_reads_and_queries_as_a_written_one(
    fdb: reeldb.Database, tmp_path: Path
) -> None:
    doc = rich_document()
    data = dumps(doc)
    blob = fdb.blobs.put(NS, pieces(data))
    assert blob.state == "stored" and blob.size == len(data)
    progress: list[tuple[int, int]] = []
    streamed = fdb.put_document_from_blob(
        DS, {"id": "m1"}, str(blob.id), progress=lambda d, t: progress.append((d, t))
    )
    assert progress and progress[-1][0] == progress[-1][1]
    assert streamed.body == b""  # not read back: it may be gigabytes
    assert streamed.blob is not None
    assert b"".join(fdb.open_document_body(streamed)) == data
    with pytest.raises(ValidationError, match="without its body"):
        _ = streamed.data
    assert streamed.mid == {"id": "m1"}
    got = fdb.get_document(streamed.id)
    assert got.body == data
    assert got.data == doc
    assert fdb.get_document(streamed.id, datastore=DS).body == data
    assert fdb.get_document_info(streamed.id).size == len(data)
    assert fdb.latest_document(DS, {"id": "m1"}).id == streamed.id
    assert fdb.count_documents(DS) == 1
    written = fdb.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(fdb, streamed.id, written.id)
    assert index_counts(fdb, DS, tmp_path) == index_counts(fdb, DS2, tmp_path)
    counts = index_counts(fdb, DS, tmp_path)
    assert counts["rows"] == rows_of(fdb, doc) == 22
    assert counts["chunks"] > 1 and counts["fts"] > 0 and counts["time"] > 0


def test_answers_survive_a_reopen(tmp_path: Path) -> None:
    doc = rich_document()
    with connect(tmp_path) as db:
        setup(db, DS, DS2)
        streamed, written = write_both(db, doc)
    with connect(tmp_path) as db:
        assert db.get_document(streamed.id).body == dumps(doc)
        assert_same_answers(db, streamed.id, written.id)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[reeldb.Database, Path]]:
    path = tmp_path_factory.mktemp("ingest")
    with connect(path) as database:
        setup(database, DS, DS2)
        yield database, path


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=documents(max_tracks=2, max_events=3))
def test_generated_documents_stream_as_they_write(
    shared: tuple[reeldb.Database, Path], doc: dict[str, Any]
) -> None:
    db, path = shared
    mid = str(uuid4())
    streamed, written = write_both(db, doc, mid)
    assert db.get_document(streamed.id).body == dumps(doc)
    assert_same_answers(db, streamed.id, written.id)
    assert index_counts(db, DS, path) == index_counts(db, DS2, path)


# -- the steps: batches, resume, invisibility ------------------------------------------------


def steps(db: reeldb.Database, doc: dict[str, Any], mid: str = "m1") -> tuple[UUID, Any]:
    blob = db.blobs.put(NS, pieces(dumps(doc)))
    validated = db._ingest.validate(DS, {"id": mid}, blob.id)
    request = uuid4()
    db._ingest.begin(request, validated)
    return request, validated


def test_batch_boundaries(fdb: reeldb.Database, tmp_path: Path) -> None:
    doc = rich_document()
    request, validated = steps(fdb, doc)
    assert validated.plan.rows == 22 and validated.plan.rows % 7
    done: list[int] = []
    state = fdb._ingest.stage(
        request, validated, batch_rows=7, progress=lambda d, t: done.append(d)
    )
    assert state.rows_done == state.rows == 22
    assert state.chunks_done == state.chunks == validated.plan.chunks
    assert len(done) >= 3 and done == sorted(done)
    streamed = fdb._ingest.publish(request)
    assert fdb._ingest.publish(request).id == streamed.id  # idempotent
    written = fdb.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(fdb, streamed.id, written.id)
    assert index_counts(fdb, DS, tmp_path) == index_counts(fdb, DS2, tmp_path)


@pytest.mark.parametrize("batch_rows", [1, 2, 5, 21, 22, 23])
def test_any_batch_size_gives_the_same_index(
    fdb: reeldb.Database, tmp_path: Path, batch_rows: int
) -> None:
    doc = rich_document()
    request, validated = steps(fdb, doc)
    fdb._ingest.stage(request, validated, batch_rows=batch_rows)
    streamed = fdb._ingest.publish(request)
    written = fdb.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(fdb, streamed.id, written.id)
    assert index_counts(fdb, DS, tmp_path) == index_counts(fdb, DS2, tmp_path)


class Crash(Exception):
    pass


def crash_on(db: reeldb.Database, monkeypatch: pytest.MonkeyPatch, call: int) -> list[int]:
    """Make the store's stage_ingest raise on its ``call``-th call (1-based), once."""
    original = db.store.stage_ingest
    calls: list[int] = []

    def stage_ingest(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == call:
            raise Crash
        return original(*args, **kwargs)

    monkeypatch.setattr(db.store, "stage_ingest", stage_ingest)
    return calls


def test_resume_after_a_crash_stages_each_row_once(
    fdb: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = rich_document()
    before = index_counts(fdb, DS, tmp_path)
    request, validated = steps(fdb, doc)
    calls = crash_on(fdb, monkeypatch, 3)
    with pytest.raises(Crash):
        fdb._ingest.stage(request, validated, batch_rows=7)
    state = fdb.store.get_ingest(request)
    assert state.state == "staging"
    assert 14 <= state.rows_done < state.rows

    # Invisible meanwhile: no document, no match, no count.
    assert fdb.count_documents(DS) == 0
    with pytest.raises(NotFoundError):
        fdb.get_document(state.document_id)
    with pytest.raises(NotFoundError):
        fdb.query_document(state.document_id, 'event.label = "face"')
    for query in QUERIES:
        assert fdb.query_datastore(DS, query, limit=1000).items == (), query
    with pytest.raises(ConflictError):
        fdb._ingest.publish(request)  # not every row is staged

    # Resume (a validated step read back from its JSON, as a workflow would).
    from reeldb.ingest import ValidatedBlob

    again = ValidatedBlob.from_json(validated.to_json())
    assert again.plan == validated.plan
    assert IngestPlan.from_json(validated.plan.to_json()) == validated.plan
    state = fdb._ingest.stage(request, again, batch_rows=7)
    assert state.rows_done == state.rows
    assert len(calls) > 3
    streamed = fdb._ingest.publish(request)
    assert streamed.id == state.document_id

    written = fdb.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(fdb, streamed.id, written.id)
    after = index_counts(fdb, DS, tmp_path)
    assert after["rows"] - before.get("rows", 0) == 22
    assert after == index_counts(fdb, DS2, tmp_path)
    for label in ("face", "car", "dog"):
        a = fdb.query_document(streamed.id, f'event.label = "{label}"', limit=1000).items
        b = fdb.query_document(written.id, f'event.label = "{label}"', limit=1000).items
        assert len(a) == len(b) > 0
        assert len({m.path for m in a}) == len(a)  # no event twice


def test_stage_again_after_success_is_a_no_op(fdb: reeldb.Database, tmp_path: Path) -> None:
    doc = rich_document()
    request, validated = steps(fdb, doc)
    fdb._ingest.stage(request, validated, batch_rows=7)
    counts = index_counts(fdb, DS, tmp_path)
    state = fdb._ingest.stage(request, validated, batch_rows=7)
    assert state.rows_done == state.rows
    assert index_counts(fdb, DS, tmp_path) == counts
    fdb._ingest.publish(request)
    assert fdb._ingest.stage(request, validated).state == "published"
    assert fdb._ingest.begin(request, validated).state == "published"  # idempotent
    assert fdb.count_documents(DS) == 1


def test_a_failed_run_is_discarded_and_invisible(
    fdb: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = fdb.blobs.put(NS, [dumps(rich_document())])
    crash_on(fdb, monkeypatch, 1)
    request = uuid4()
    with pytest.raises(Crash):
        fdb._ingest.run(DS, {"id": "m1"}, blob.id, request_id=request)
    assert fdb.store.get_ingest(request).state == "discarded"
    assert fdb.count_documents(DS) == 0
    assert fdb.query_datastore(DS, 'event.label = "face"').items == ()
    monkeypatch.undo()
    doc = fdb.put_document_from_blob(DS, {"id": "m1"}, blob.id)  # a new write succeeds
    assert fdb.query_datastore(DS, 'event.label = "face"').items[0].id == doc.id


def test_resume_when_only_the_last_chunk_is_missing(
    fdb: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = {
        "tracks": [
            {
                "components": [
                    {
                        "events": [
                            {"label": "face", "time_range": {"start": i, "end": i + 1}}
                            for i in range(4)
                        ]
                    }
                ]
            }
        ]
    }
    request, validated = steps(fdb, doc)
    assert (validated.plan.rows, validated.plan.chunks) == (4, 1)  # the 4 events fit a chunk
    crash_on(fdb, monkeypatch, 2)
    with pytest.raises(Crash):
        fdb._ingest.stage(request, validated, batch_rows=4)
    state = fdb.store.get_ingest(request)
    assert (state.rows_done, state.chunks_done) == (4, 0)
    monkeypatch.undo()
    fdb._ingest.stage(request, validated, batch_rows=4)
    document = fdb._ingest.publish(request)
    assert len(fdb.query_document(document.id, 'event.label = "face"').items) == 4


def test_a_clean_run_with_a_chunk_only_last_batch(
    fdb: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = {
        "tracks": [
            {
                "components": [
                    {
                        "events": [
                            {"label": "face", "time_range": {"start": i, "end": i + 1}}
                            for i in range(4)
                        ]
                    }
                ]
            }
        ]
    }
    request, validated = steps(fdb, doc)
    calls = crash_on(fdb, monkeypatch, 0)  # count only
    fdb._ingest.stage(request, validated, batch_rows=4)
    assert len(calls) == 2  # 4 rows, then the chunk alone
    document = fdb._ingest.publish(request)
    assert len(fdb.query_document(document.id, 'event.label = "face"').items) == 4


# -- errors ----------------------------------------------------------------------------------


def test_a_blob_of_another_namespace_does_not_exist(fdb: reeldb.Database) -> None:
    fdb.create_namespace("other")
    blob = fdb.blobs.put("other", [dumps(rich_document())])
    with pytest.raises(NotFoundError, match="does not exist in namespace media"):
        fdb.put_document_from_blob(DS, {"id": "m1"}, blob.id)
    with pytest.raises(NotFoundError):
        fdb.blobs.get(blob.id, namespace=NS)
    with pytest.raises(NotFoundError):
        fdb.blobs.open(blob.id, namespace=NS)
    assert fdb.count_documents(DS) == 0


def test_an_unknown_blob_does_not_exist(fdb: reeldb.Database) -> None:
    with pytest.raises(NotFoundError):
        fdb.put_document_from_blob(DS, {"id": "m1"}, uuid4())
    with pytest.raises(NotFoundError):
        fdb.put_document_from_blob(DS, {"id": "m1"}, str(uuid4()))


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "1234", 42])
def test_a_blob_id_must_be_a_uuid(fdb: reeldb.Database, bad: Any) -> None:
    with pytest.raises(ValidationError, match="expected a UUID"):
        fdb.put_document_from_blob(DS, {"id": "m1"}, bad)
    with pytest.raises(ValidationError):
        fdb.blobs.get(bad, namespace=NS)


def test_unknown_datastore_and_namespace(fdb: reeldb.Database) -> None:
    blob = fdb.blobs.put(NS, [b"{}"])
    with pytest.raises(NotFoundError):
        fdb.put_document_from_blob("media/nope/1", {"id": "m1"}, blob.id)
    with pytest.raises(NotFoundError):
        fdb.blobs.create("nope")


def test_a_bad_mid(fdb: reeldb.Database) -> None:
    blob = fdb.blobs.put(NS, [b"{}"])
    with pytest.raises(ValidationError):
        fdb.put_document_from_blob(DS, {"wrong": "m1"}, blob.id)
    assert fdb.count_documents(DS) == 0


@pytest.mark.parametrize("payload", [b"0123456789X", b"012345678"], ids=["longer", "shorter"])
def test_an_upload_of_the_wrong_size_stores_nothing(fdb: reeldb.Database, payload: bytes) -> None:
    record = fdb.blobs.create(NS, size=10)
    assert record.state == "open"
    with pytest.raises(ValidationError, match="nothing was stored"):
        fdb.blobs.upload(record.id, pieces(payload, 3), namespace=NS)
    assert fdb.blobs.get(record.id, namespace=NS).state == "open"
    with pytest.raises(NotFoundError, match="not been uploaded"):
        fdb.blobs.open(record.id, namespace=NS)
    with pytest.raises(ValidationError, match="not been uploaded"):
        fdb.put_document_from_blob(DS, {"id": "m1"}, record.id)
    stored = fdb.blobs.upload(record.id, [b"{}", b"        "], namespace=NS)  # 10 bytes
    assert stored.state == "stored" and stored.size == 10
    assert b"".join(fdb.blobs.open(record.id, namespace=NS)) == b"{}        "


def test_the_exact_size_and_an_empty_blob(fdb: reeldb.Database) -> None:
    record = fdb.blobs.create(NS, size=0)
    assert fdb.blobs.upload(record.id, [], namespace=NS).size == 0
    with pytest.raises(ValidationError, match="empty"):
        fdb.put_document_from_blob(DS, {"id": "m1"}, record.id)


@pytest.mark.parametrize("size", [-1, 1.5, True, "10"])
def test_a_declared_size_is_a_count_of_bytes(fdb: reeldb.Database, size: Any) -> None:
    with pytest.raises(ValidationError):
        fdb.blobs.create(NS, size=size)


def test_a_second_upload_is_refused(fdb: reeldb.Database) -> None:
    record = fdb.blobs.create(NS)
    fdb.blobs.upload(record.id, [b"{}"], namespace=NS)
    with pytest.raises(AlreadyExistsError):
        fdb.blobs.upload(record.id, [b"{}"], namespace=NS)
    assert b"".join(fdb.blobs.open(record.id, namespace=NS)) == b"{}"


def test_an_upload_to_another_namespace_is_refused(fdb: reeldb.Database) -> None:
    fdb.create_namespace("other")
    record = fdb.blobs.create(NS)
    with pytest.raises(NotFoundError):
        fdb.blobs.upload(record.id, [b"{}"], namespace="other")


def assert_nothing_written(db: reeldb.Database) -> None:
    assert db.count_documents(DS) == 0
    assert db.query_datastore(DS, 'event.label = "face"').items == ()
    assert db.list_documents(DS).items == ()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (dumps({"tracks": [{"components": [{"events": [{"label": "face"}]}]}]}), "time_range"),
        (
            dumps(
                {
                    "tracks": [
                        {
                            "components": [
                                {"events": [{"label": 3, "time_range": {"start": 0, "end": 1}}]}
                            ]
                        }
                    ]
                }
            ),
            "is invalid",
        ),
        (dumps(rich_document())[:-40], "not valid JSON"),
        (dumps(rich_document()) + b" trailing", "not valid JSON"),
        (dumps(rich_document()).decode().encode("utf-16"), "not UTF-8"),
        (dumps(rich_document()).decode().encode("utf-16-le"), "not"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "JSON object"),
    ],
    ids=["missing-time", "bad-label", "truncated", "trailing", "utf16", "utf16le", "bom", "array"],
)
def test_an_invalid_blob_writes_nothing(fdb: reeldb.Database, payload: bytes, match: str) -> None:
    fdb.put_document(DS, {"id": "before"}, {"tracks": []})
    count = fdb.count_documents(DS)
    blob = fdb.blobs.put(NS, pieces(payload))
    with pytest.raises(ValidationError) as info:
        fdb.put_document_from_blob(DS, {"id": "m1"}, blob.id)
    assert match in str(info.value) or any(match in v.message for v in info.value.violations)
    assert fdb.count_documents(DS) == count
    assert fdb.query_datastore(DS, 'event.label = "face"').items == ()
    with pytest.raises(NotFoundError):
        fdb.latest_document(DS, {"id": "m1"})


def test_a_failed_validation_closes_the_blob_stream(
    fdb: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fdb.blobs.store
    original = store.open
    opened: list[Any] = []

    def tracking_open(blob_id: UUID) -> Any:
        stream = original(blob_id)
        opened.append(stream)
        return stream

    monkeypatch.setattr(store, "open", tracking_open)
    blob = fdb.blobs.put(NS, [b'{"tracks": [1 2]}'])
    with pytest.raises(ValidationError) as info:
        fdb.put_document_from_blob(DS, {"id": "m1"}, blob.id)
    assert info.value is not None  # the traceback is still alive here
    assert opened
    assert all(stream.gi_frame is None for stream in opened)  # closed


def test_invalid_violations_are_the_synchronous_ones(fdb: reeldb.Database) -> None:
    doc = rich_document()
    doc["tracks"][0]["components"][0]["events"][2]["confidence"] = 7
    doc["tracks"][1]["lang"] = 1
    blob = fdb.blobs.put(NS, pieces(dumps(doc)))
    with pytest.raises(ValidationError) as streamed:
        fdb.put_document_from_blob(DS, {"id": "m1"}, blob.id)
    with pytest.raises(ValidationError) as written:
        fdb.put_document(DS, {"id": "m1"}, doc)
    assert set(streamed.value.violations) == set(written.value.violations)
    assert "nothing was stored" in str(streamed.value)


def test_a_plain_json_schema_datastore_cannot_stream(fdb: reeldb.Database) -> None:
    plain = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
    fdb.add_schema(NS, plain, name="plain")
    fdb.create_datastore("media/plain/1", mid_keys=["id"], schema="plain")
    blob = fdb.blobs.put(NS, [b"{}"])
    with pytest.raises(ValidationError, match="plain JSON Schema"):
        fdb.put_document_from_blob("media/plain/1", {"id": "m1"}, blob.id)
    assert fdb.count_documents("media/plain/1") == 0


# -- garbage collection ------------------------------------------------------------------------


def test_garbage_collection(fdb: reeldb.Database) -> None:
    now = datetime.now(UTC)
    unused = fdb.blobs.put(NS, [b"{}"])
    used = fdb.blobs.put(NS, [dumps(rich_document())])
    document = fdb.put_document_from_blob(DS, {"id": "m1"}, used.id)
    announced = fdb.blobs.create(NS)  # never uploaded
    invalid = fdb.blobs.put(NS, [b"{"])
    with pytest.raises(ValidationError):
        fdb.put_document_from_blob(DS, {"id": "m2"}, invalid.id)

    # Young blobs are kept.
    assert fdb.blobs.collect_garbage(now=now) == 0
    assert fdb.blobs.collect_garbage(now=now + timedelta(seconds=GRACE / 2)) == 0
    assert fdb.blobs.get(unused.id, namespace=NS).state == "stored"

    # Old ones no document uses are deleted; the used one stays.
    later = now + timedelta(seconds=GRACE + 60)
    assert fdb.blobs.collect_garbage(now=later) == 3
    for gone in (unused, announced, invalid):
        with pytest.raises(NotFoundError):
            fdb.blobs.get(gone.id, namespace=NS)
    assert fdb.blobs.get(used.id, namespace=NS).state == "claimed"
    assert fdb.get_document(document.id).body == dumps(rich_document())
    assert fdb.query_datastore(DS, 'event.label = "face"').items[0].id == document.id
    assert fdb.blobs.collect_garbage(now=later + timedelta(days=30)) == 0


def test_garbage_collection_limit(fdb: reeldb.Database) -> None:
    for _ in range(5):
        fdb.blobs.put(NS, [b"{}"])
    later = datetime.now(UTC) + timedelta(seconds=GRACE + 60)
    assert fdb.blobs.collect_garbage(now=later, limit=2) == 2
    assert fdb.blobs.collect_garbage(now=later, limit=10) == 3


def test_a_blob_of_a_staging_ingest_is_kept(fdb: reeldb.Database) -> None:
    request, validated = steps(fdb, rich_document())
    later = datetime.now(UTC) + timedelta(seconds=GRACE + 60)
    assert fdb.blobs.collect_garbage(now=later) == 0
    fdb._ingest.discard(request)
    assert fdb.blobs.collect_garbage(now=later) == 1


def test_documents_in_blobs_take_part_in_schema_checks_and_rebuilds(tmp_path: Path) -> None:
    with connect(tmp_path) as db:
        setup(db)
        blob = db.blobs.put(NS, pieces(dumps(rich_document())))
        stored = db.put_document_from_blob(DS, {"id": "m1"}, blob.id)
        before = db.query_document(stored.id, 'event.label = "face"', limit=1000)
        assert before.items
        # A version the stored document breaks is refused: it is read from its blob.
        breaking = copy.deepcopy(SCHEMA)
        breaking["levels"]["event"]["properties"]["label"] = {"type": "keyword", "enum": ["x"]}
        with pytest.raises(reeldb.IncompatibleSchemaError, match=str(stored.id)):
            db.add_schema(NS, breaking)
        # A rebuild cuts its rows from the blob: the same answers from the new generation.
        db.rebuild_index(DS)
        assert db.query_document(stored.id, 'event.label = "face"', limit=1000) == before
        assert [g.name for g in db.index_status(DS)] == ["g2"]


def test_a_silent_worker_is_taken_over_once_and_never_by_itself(fdb: reeldb.Database) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    store = fdb.store
    store.worker_seen("a", at(0))
    store.worker_seen("b", at(50))
    assert store.claim_silent_workers("c", silent_since=at(30), at=at(60)) == ["a"]
    # Taken over, "a" counts as seen at 60: nobody takes it again before it is silent again.
    assert store.claim_silent_workers("d", silent_since=at(55), at=at(61)) == ["b"]
    assert store.claim_silent_workers("a", silent_since=at(999), at=at(62)) == ["b"]  # not "a"
    store.worker_seen("a", at(70))  # back
    assert store.claim_silent_workers("d", silent_since=at(61), at=at(71)) == []
    store.worker_gone("a")  # stopped cleanly: never taken over
    assert store.claim_silent_workers("d", silent_since=at(999), at=at(72)) == ["b"]


def test_a_schema_change_between_the_passes_is_caught(fdb: reeldb.Database) -> None:
    blob = fdb.blobs.put(NS, pieces(dumps(rich_document())))
    validated = fdb._ingest.validate(DS, {"id": "m1"}, blob.id)
    newer = copy.deepcopy(SCHEMA)
    newer["levels"]["asset"]["properties"]["studio"] = {"type": "keyword"}
    fdb.add_schema(NS, newer)  # the DataStore moves to version 2
    with pytest.raises(reeldb.StaleSchemaError):
        fdb._ingest.begin(uuid4(), validated)
    stored = fdb.put_document_from_blob(DS, {"id": "m1"}, blob.id)  # validated again
    assert stored.schema_version == 2
    assert fdb.get_document(stored.id).data == rich_document()
