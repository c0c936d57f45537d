"""Documents, blobs, write requests, workers and query leases on PostgreSQL.

The first tests run on SQLite and PostgreSQL alike (the SQLite store is the reference: both
must answer the same); the rest check what only a shared server can get wrong: concurrent
processes' transactions (idempotency keys, takeovers, leases, sequence numbers in commit
order) and the partitioned layout.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from uuid_utils.compat import uuid7

import reeldb
from reeldb.errors import AlreadyExistsError, ConflictError, NotFoundError
from reeldb.model.datastore import DataStore, DataStoreRef
from reeldb.model.requests import WriteRequest, WriteState
from reeldb.schema.model import CompatibilityMode
from reeldb.store import NewDocument, Store, load_store
from reeldb.store.base import BlobPart, BlobRecord, DocumentBatch, QueryRequestRecord
from reeldb.testing import FACE_DETECTION, MID, NOW, face_document, stored_schema_version

T = TypeVar("T")
FACE_DS = "vision/face_detection/1"


@pytest.fixture(params=["sqlite-memory", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    url = "memory:" if request.param == "sqlite-memory" else request.getfixturevalue("postgres_url")
    opened = load_store(url)
    for namespace in ("vision", "audio"):
        opened.create_namespace(namespace, "", NOW)
    yield opened
    opened.close()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Store]:
    opened = load_store(postgres_url)
    opened.create_namespace("vision", "", NOW)
    yield opened
    opened.close()


def _datastore(store: Store, analysis_type: str = "faces") -> DataStore:
    if analysis_type == "faces":
        schema = stored_schema_version("vision", "faces", 1)
        store.add_schema_version(schema, CompatibilityMode.BACKWARD, [])
    return store.create_datastore(
        DataStoreRef("vision", analysis_type, 1), ("title_id",), "faces", 1, "", NOW
    )


def _blob(namespace: str = "vision", *, at: timedelta = timedelta(0)) -> BlobRecord:
    return BlobRecord(uuid7(), namespace, 10, None, None, "open", NOW + at, "user:a")


def _request(namespace: str = "vision", key: str | None = None) -> WriteRequest:
    ref = DataStoreRef(namespace, "faces", 1)
    return WriteRequest(
        uuid7(), ref, {"title_id": "t"}, uuid4(), WriteState.PENDING, None, None, key, None,
        "user:a", NOW, NOW,
    )  # fmt: skip


def _docs(n: int) -> list[NewDocument]:
    return [NewDocument(uuid7(), '{"title_id":"a"}', NOW, b'{"n":%d}' % i) for i in range(n)]


def _at_once(count: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(0..count-1)`` in threads released together; their results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# -- both backends alike -------------------------------------------------------------------


def test_blob_records_move_from_open_to_stored_to_claimed(store: Store) -> None:
    record = _blob()
    store.add_blob(record)
    assert store.get_blob(record.id) == record
    assert store.claim_blob(record.id, NOW).state == "open"  # not uploaded: not claimable
    stored = store.blob_stored(record.id, 12, "ab" * 32, NOW)
    assert (stored.size, stored.sha256, stored.state) == (12, "ab" * 32, "stored")
    assert store.blob_stored(record.id, 99, "cd" * 32, NOW) == stored  # stored once
    assert store.claim_blob(record.id, NOW).state == "claimed"
    assert store.claim_blob(record.id, NOW + timedelta(1)).state == "claimed"
    with pytest.raises(NotFoundError, match="namespace 'nope' does not exist"):
        store.add_blob(_blob("nope"))
    missing = uuid4()
    for read in (store.get_blob, lambda b: store.blob_stored(b, 1, "", NOW)):
        with pytest.raises(NotFoundError, match=f"blob {missing} does not exist"):
            read(missing)


def test_blob_parts_replace_by_number_until_the_upload_completes(store: Store) -> None:
    record = _blob()
    store.add_blob(record)
    two, one, again = (BlobPart(n, 5, "00" * 32, uuid4()) for n in (2, 1, 1))
    assert store.put_blob_part(record.id, two) is None
    assert store.put_blob_part(record.id, one) is None
    assert store.put_blob_part(record.id, again) == one.payload
    assert store.blob_parts(record.id) == [again, two]
    store.blob_stored(record.id, 10, "11" * 32, NOW)
    with pytest.raises(ConflictError, match=f"the upload of blob {record.id} is complete"):
        store.put_blob_part(record.id, one)
    with pytest.raises(NotFoundError):
        store.put_blob_part(uuid4(), one)
    assert sorted(store.forget_blob_parts(record.id)) == sorted([again.payload, two.payload])
    assert store.blob_parts(record.id) == [] and store.forget_blob_parts(record.id) == []


def test_collect_blobs_takes_old_unused_blobs_with_their_parts(store: Store) -> None:
    old, recent, claimed, claimed_long_ago = (
        _blob(at=-timedelta(hours=2)),
        _blob(),
        _blob(at=-timedelta(hours=2)),
        _blob(at=-timedelta(hours=3)),
    )
    for record in (old, recent, claimed, claimed_long_ago):
        store.add_blob(record)
    part = BlobPart(1, 3, "22" * 32, uuid4())
    store.put_blob_part(old.id, part)
    for record in (claimed, claimed_long_ago):
        store.blob_stored(record.id, 3, "33" * 32, NOW - timedelta(hours=2))
    store.claim_blob(claimed.id, NOW)
    store.claim_blob(claimed_long_ago.id, NOW - timedelta(hours=2))
    cutoff = NOW - timedelta(hours=1)
    gone = store.collect_blobs(cutoff, 10)
    assert gone[0] == part.payload  # the parts' payloads first, then the blobs
    assert sorted(gone[1:]) == sorted([old.id, claimed_long_ago.id])
    for record in (old, claimed_long_ago):
        with pytest.raises(NotFoundError):
            store.get_blob(record.id)
    assert store.get_blob(recent.id) == recent and store.get_blob(claimed.id).state == "claimed"
    assert store.collect_blobs(cutoff, 10) == []
    assert store.collect_blobs(NOW + timedelta(hours=1), 1) in ([recent.id], [claimed.id])


def test_an_idempotency_key_names_one_request_per_namespace(store: Store) -> None:
    first = _request(key="k1")
    assert store.add_write_request(first) == (first, True)
    assert store.add_write_request(_request(key="k1")) == (first, False)
    other = _request("audio", key="k1")
    assert store.add_write_request(other) == (other, True)
    plain = [_request(), _request()]
    assert [store.add_write_request(r) for r in plain] == [(r, True) for r in plain]
    assert store.get_write_request(first.id) == first
    with pytest.raises(NotFoundError, match="namespace 'nope' does not exist"):
        store.add_write_request(_request("nope"))
    missing = uuid4()
    with pytest.raises(NotFoundError, match=f"write request {missing} does not exist"):
        store.get_write_request(missing)


def test_write_requests_move_on_and_never_leave_a_final_state(store: Store) -> None:
    request = _request()
    store.add_write_request(request)
    doc = uuid4()
    later = NOW + timedelta(seconds=5)
    validated = store.update_write_request(
        request.id, WriteState.VALIDATED, later, step=("validate", 0.5)
    )
    assert (validated.state, validated.updated_at, validated.steps) == (
        WriteState.VALIDATED, later, {"validate": 0.5},
    )  # fmt: skip
    persisted = store.update_write_request(
        request.id, WriteState.PERSISTED, later, document_id=doc, step=("persist", 1.0)
    )
    assert persisted.document_id == doc and persisted.steps == {"validate": 0.5, "persist": 1.0}
    problem = {"title": "boom", "detail": "x"}
    failed = store.update_write_request(request.id, WriteState.FAILED, later, error=problem)
    assert (failed.state, failed.error, failed.document_id) == (WriteState.FAILED, problem, doc)
    assert store.update_write_request(request.id, WriteState.INDEXED, NOW) == failed
    assert store.get_write_request(request.id) == failed
    with pytest.raises(NotFoundError):
        store.update_write_request(uuid4(), WriteState.FAILED, NOW)


def test_write_requests_list_newest_first_and_count_by_state(store: Store) -> None:
    requests = [_request("vision" if i % 3 else "audio") for i in range(7)]
    for request in requests:
        store.add_write_request(request)
    store.update_write_request(requests[1].id, WriteState.INDEXED, NOW)
    store.update_write_request(requests[2].id, WriteState.VALIDATED, NOW)
    newest = [r.id for r in reversed(requests)]
    assert [r.id for r in store.list_write_requests()] == newest
    assert [r.id for r in store.list_write_requests(limit=2, before=newest[1])] == newest[2:4]
    vision = [r.id for r in store.list_write_requests(namespace="vision")]
    assert vision == [
        i for i in newest if i not in (requests[0].id, requests[3].id, requests[6].id)
    ]
    unfinished = store.list_write_requests(namespace="vision", unfinished=True)
    assert requests[1].id not in [r.id for r in unfinished] and len(unfinished) == len(vision) - 1
    assert store.count_write_requests() == {"PENDING": 5, "VALIDATED": 1, "PERSISTED": 0}


def test_silent_workers_are_taken_over_once(store: Store) -> None:
    minute = timedelta(minutes=1)
    store.worker_seen("w1", NOW - 5 * minute)
    store.worker_seen("w2", NOW - 5 * minute)
    store.worker_seen("me", NOW - 9 * minute)  # never takes itself over
    store.worker_seen("fresh", NOW)
    assert store.claim_silent_workers("me", NOW - minute, NOW) == ["w1", "w2"]
    assert store.claim_silent_workers("other", NOW - minute, NOW) == ["me"]
    # A taken worker counts as seen then: it is silent again only a while later.
    assert store.claim_silent_workers("other", NOW - minute / 2, NOW + minute) == []
    store.worker_gone("w1")
    store.worker_seen("w2", NOW + 2 * minute)  # back: not taken
    taken = store.claim_silent_workers("x", NOW + minute, NOW + 3 * minute)
    assert taken == ["fresh", "me"]


# -- PostgreSQL: many processes, one database ------------------------------------------------


def test_concurrent_submissions_with_one_key_record_one_request(pg: Store) -> None:
    submitted = [_request(key="same") for _ in range(8)]
    outcomes = _at_once(8, lambda i: pg.add_write_request(submitted[i]))
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert sum(new for _, new in outcomes) == 1
    assert len({stored.id for stored, _ in outcomes}) == 1
    assert len(pg.list_write_requests()) == 1


def test_concurrent_takeovers_take_each_silent_worker_once(pg: Store) -> None:
    names = [f"w{i}" for i in range(20)]
    for name in names:
        pg.worker_seen(name, NOW - timedelta(hours=1))
    taken = _at_once(6, lambda i: pg.claim_silent_workers(f"taker{i}", NOW, NOW))
    assert sorted(name for got in taken for name in got) == sorted(names)


def test_concurrent_runners_claim_a_query_request_once(pg: Store) -> None:
    ds = _datastore(pg)
    request_id = uuid7()
    pg.add_query_request(
        QueryRequestRecord(request_id, ds.id, "{}", False, "pending", created_at=NOW)
    )
    lease = NOW + timedelta(minutes=5)
    claims = _at_once(6, lambda i: pg.claim_query_request(request_id, f"r{i}", NOW, lease))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1, claims
    assert pg.get_query_request(request_id).owner == winners[0].owner


def test_a_writer_waits_for_an_uncommitted_seq_of_its_datastore(pg: Store) -> None:
    from reeldb.store.postgres import PostgresStore
    from reeldb.store.postgres._documents import next_seq

    assert isinstance(pg, PostgresStore)
    ds, other = _datastore(pg), _datastore(pg, "cars")
    got: list[int] = []
    with pg._pg.connection() as conn:  # an ingest that reserved a seq and has not committed
        conn.execute("BEGIN")
        reserved = next_seq(conn, ds.id)
        writer = threading.Thread(target=lambda: got.extend(pg.put_documents(ds.id, 1, _docs(2))))
        writer.start()
        # Another DataStore is not held up.
        [unrelated] = pg.put_documents(other.id, 1, _docs(1))
        time.sleep(0.3)
        assert writer.is_alive() and not got  # waits: a lower seq is not yet committed
        conn.execute("COMMIT")
    writer.join(10)
    assert len(got) == 2 and reserved < got[0] < got[1] and unrelated not in got


def test_concurrent_writers_to_one_datastore_lose_and_double_nothing(pg: Store) -> None:
    ds = _datastore(pg)
    written = [_docs(5) for _ in range(8)]
    seqs = _at_once(8, lambda i: pg.put_documents(ds.id, 1, written[i]))
    assert all(isinstance(s, list) and s == sorted(s) for s in seqs), seqs
    every = [seq for batch in seqs for seq in batch]
    assert len(set(every)) == 40 and pg.max_seq(ds.id) == max(every)
    streamed = [(r.seq, r.id) for r in pg.iter_documents(ds.id)]
    expected = {(seq, doc.id) for batch, docs in zip(seqs, written, strict=True)
                for seq, doc in zip(batch, docs, strict=True)}  # fmt: skip
    assert set(streamed) == expected and [s for s, _ in streamed] == sorted(every)


def test_documents_of_many_datastores_are_found_by_id_across_partitions(pg: Store) -> None:
    from reeldb.store.postgres import PostgresStore

    assert isinstance(pg, PostgresStore)
    stores = [_datastore(pg)] + [_datastore(pg, f"kind{i}") for i in range(11)]
    docs = {ds.id: _docs(2) for ds in stores}
    pg.put_document_batches([DocumentBatch(ds.id, 1, docs[ds.id]) for ds in stores])
    for ds in stores:
        for doc in docs[ds.id]:
            found = pg.get_document(doc.id)
            assert (found.datastore_id, found.body) == (ds.id, doc.body)
            assert pg.locate_document(doc.id).body == b""
        assert pg.count_documents(ds.id) == 2
    partitions = pg._pg.read(
        lambda conn: conn.execute("SELECT count(DISTINCT tableoid) FROM documents").fetchone()
    )
    assert partitions is not None and partitions[0] > 1


def test_a_duplicate_document_id_fails_its_batch_only(pg: Store) -> None:
    ds, other = _datastore(pg), _datastore(pg, "cars")
    [dup] = _docs(1)
    pg.put_documents(ds.id, 1, [dup])
    fine, clash = _docs(2), [*_docs(1), dup]
    first, second = pg.put_document_batches(
        [DocumentBatch(other.id, 1, fine), DocumentBatch(other.id, 1, clash)]
    )
    assert isinstance(first, list) and isinstance(second, AlreadyExistsError)
    assert str(dup.id) in str(second)
    assert [r.id for r in pg.iter_documents(other.id)] == [d.id for d in fine]
    assert pg.get_document(dup.id).datastore_id == ds.id


def test_collect_blobs_spares_a_blob_a_document_keeps_its_body_in(pg: Store) -> None:
    from reeldb.store.postgres import PostgresStore

    assert isinstance(pg, PostgresStore)
    ds = _datastore(pg)
    kept, garbage = _blob(at=-timedelta(hours=2)), _blob(at=-timedelta(hours=2))
    for record in (kept, garbage):
        pg.add_blob(record)
    [doc] = _docs(1)
    pg.put_documents(ds.id, 1, [doc])
    pg._pg.write(
        lambda conn: conn.execute("UPDATE documents SET blob = %s WHERE id = %s", (kept.id, doc.id))
    )
    assert pg.collect_blobs(NOW, 10) == [garbage.id]
    assert pg.get_blob(kept.id) == kept
    assert pg.locate_document(doc.id).blob == kept.id


def test_an_async_write_runs_once_to_indexed(postgres_url: str) -> None:
    from reeldb.workflows.writes import Worker

    with reeldb.connect(postgres_url) as db:
        db.create_namespace("vision", admins=["user:alice"])
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore(
            FACE_DS, mid_keys=["title_id", "video_stream_id"], schema="face_detection"
        )
        document = face_document(title="async")
        with Worker(db, name="pg-test", poll=0.05):
            request, new = db.submit_write(FACE_DS, MID, document=document, idempotency_key="k")
            again, again_new = db.submit_write(FACE_DS, MID, document=document, idempotency_key="k")
            assert new and not again_new and again.id == request.id
            done = db.wait_write_request(request.id, timeout=30)
        assert done.state == WriteState.INDEXED, done.error
        assert set(done.steps) == {"validate", "persist", "index"}
        assert done.document_id is not None
        assert db.get_document(done.document_id).data == document
        assert [m.id for m in db.query_datastore(FACE_DS, 'asset.title = "async"').items] == [
            done.document_id
        ]
        assert db.store.count_write_requests() == {"PENDING": 0, "VALIDATED": 0, "PERSISTED": 0}
