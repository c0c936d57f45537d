"""Contract: every DocumentStore adapter behaves like this."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from uuid_utils.compat import uuid7

from reeldb.auth.model import AuditEntry
from reeldb.errors import DatabaseClosedError, NotFoundError, StaleSchemaError
from reeldb.model.datastore import DataStore, DataStoreRef
from reeldb.schema.model import CompatibilityMode, SchemaVersion
from reeldb.store import NewDocument, Store, load_store
from reeldb.store.base import DocumentBatch, DocumentRecord
from reeldb.testing import NOW

MID_A = '{"title_id":"a"}'
MID_B = '{"title_id":"b"}'


@pytest.fixture
def datastore(store: Store, make_schema: Callable[..., SchemaVersion]) -> DataStore:
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.BACKWARD, [])
    return store.create_datastore(
        DataStoreRef("vision", "faces", 1), ("title_id",), "faces", 1, "", NOW
    )


def _new(body: bytes, mid: str = MID_A) -> NewDocument:
    return NewDocument(uuid7(), mid, NOW, body)


def test_put_and_read_back_bytes(store: Store, datastore: DataStore) -> None:
    doc = _new(b'{"asset":{"title":"x"}}')
    [seq] = store.put_documents(datastore.id, 1, [doc])
    record = store.get_document(doc.id)
    assert record.body == doc.body
    assert (record.id, record.seq, record.mid_key, record.schema_version) == (doc.id, seq, MID_A, 1)
    assert record.size == len(doc.body)
    assert record.created_at == NOW
    assert store.latest_document(datastore.id, MID_A).id == doc.id


def test_every_write_is_a_new_document(store: Store, datastore: DataStore) -> None:
    docs = [_new(b'{"same":true}') for _ in range(3)]
    seqs = [store.put_documents(datastore.id, 1, [d])[0] for d in docs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert store.count_documents(datastore.id) == 3
    listed = store.list_documents(datastore.id, MID_A, limit=10, before_seq=None)
    assert [r.id for r in listed] == [d.id for d in reversed(docs)]
    assert all(r.body == b"" for r in listed)
    assert store.latest_document(datastore.id, MID_A).id == docs[-1].id


def test_batch_sequence_numbers_and_pagination(store: Store, datastore: DataStore) -> None:
    batch = [_new(b"{}", MID_A if i % 2 else MID_B) for i in range(10)]
    seqs = store.put_documents(datastore.id, 1, batch)
    # Increasing; consecutive only on SQLite (PostgreSQL's writers to other DataStores draw
    # from the same sequence at the same time).
    assert seqs == sorted(set(seqs)) and len(seqs) == 10
    page1 = store.list_documents(datastore.id, MID_A, limit=3, before_seq=None)
    page2 = store.list_documents(datastore.id, MID_A, limit=3, before_seq=page1[-1].seq)
    ids = [r.id for r in page1 + page2]
    assert ids == [d.id for d in reversed(batch) if d.mid_key == MID_A]
    assert store.max_seq(datastore.id) == seqs[-1]
    streamed = list(store.iter_documents(datastore.id))
    assert [r.id for r in streamed] == [d.id for d in batch]
    window = store.iter_documents(datastore.id, after_seq=seqs[3], upto_seq=seqs[5])
    assert [r.id for r in window] == [batch[4].id, batch[5].id]


def test_iteration_spans_many_batches(store: Store, datastore: DataStore) -> None:
    docs = [_new(b'{"n":%d}' % i) for i in range(700)]
    store.put_documents(datastore.id, 1, docs)
    assert [r.body for r in store.iter_documents(datastore.id)] == [d.body for d in docs]


def test_locate_gives_everything_but_the_body(store: Store, datastore: DataStore) -> None:
    doc = _new(b'{"located":true}', MID_B)
    [seq] = store.put_documents(datastore.id, 1, [doc])
    located = store.locate_document(doc.id)
    assert located == dataclasses.replace(store.get_document(doc.id), body=b"")
    assert (located.seq, located.datastore_id, located.mid_key, located.blob) == (
        seq, datastore.id, MID_B, None,
    )  # fmt: skip
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError, match=f"document {missing} does not exist"):
        store.locate_document(missing)


def test_one_group_commit_writes_to_several_datastores(store: Store, datastore: DataStore) -> None:
    other = store.create_datastore(
        DataStoreRef("vision", "cars", 1), ("title_id",), "faces", 1, "", NOW
    )
    docs = {datastore.id: [_new(b'{"a":1}'), _new(b'{"a":2}')], other.id: [_new(b'{"b":1}')]}
    results = store.put_document_batches(
        [DocumentBatch(ds_id, 1, batch) for ds_id, batch in docs.items()]
    )
    assert all(isinstance(r, list) for r in results)
    for ds_id, batch in docs.items():
        assert [r.id for r in store.iter_documents(ds_id)] == [d.id for d in batch]
        assert store.count_documents(ds_id) == len(batch)
        for doc in batch:
            assert store.get_document(doc.id).datastore_id == ds_id
    assert (
        store.list_documents(other.id, MID_A, limit=5, before_seq=None)[0].id
        == docs[other.id][0].id
    )


def test_missing_things(store: Store, datastore: DataStore) -> None:
    with pytest.raises(NotFoundError):
        store.get_document(uuid.uuid4())
    with pytest.raises(NotFoundError):
        store.latest_document(datastore.id, MID_B)
    with pytest.raises(NotFoundError):
        store.put_documents(datastore.id + 1000, 1, [_new(b"{}")])
    assert store.list_documents(datastore.id, MID_B, limit=5, before_seq=None) == []
    assert store.max_seq(datastore.id) == 0
    assert store.count_documents(datastore.id) == 0


def test_a_stale_schema_version_stores_nothing(store: Store, datastore: DataStore) -> None:
    with pytest.raises(StaleSchemaError):
        store.put_documents(datastore.id, 2, [_new(b"{}"), _new(b"{}")])
    assert store.count_documents(datastore.id) == 0


def test_batches_in_one_transaction_succeed_or_fail_each_on_their_own(
    store: Store, datastore: DataStore
) -> None:
    entry = AuditEntry(0, NOW, "user:a", "document.put", "vision", "/x", "req-1", 201)
    ok_one, ok_two = [_new(b'{"n":1}'), _new(b'{"n":2}')], [_new(b'{"n":3}')]
    stale, missing = [_new(b'{"n":4}')], [_new(b'{"n":5}')]
    results = store.put_document_batches(
        [
            DocumentBatch(datastore.id, 1, ok_one, [entry]),
            DocumentBatch(datastore.id, 2, stale, [dataclasses.replace(entry, request_id="r2")]),
            DocumentBatch(datastore.id + 1000, 1, missing),
            DocumentBatch(datastore.id, 1, ok_two),
        ]
    )
    first, second, third, fourth = results
    assert isinstance(second, StaleSchemaError) and isinstance(third, NotFoundError)
    assert isinstance(first, list) and isinstance(fourth, list)
    assert len(first) == 2 and len(fourth) == 1 and first[0] < first[1] < fourth[0]
    stored = {r.id: r.seq for r in store.iter_documents(datastore.id)}
    assert stored == {ok_one[0].id: first[0], ok_one[1].id: first[1], ok_two[0].id: fourth[0]}
    # Only the audit entry of a persisted batch is recorded.
    assert [e.request_id for e in store.list_audit(None, limit=10, before_seq=None)] == ["req-1"]


def test_use_after_close(store_url: str) -> None:
    opened = load_store(store_url)
    opened.close()
    with pytest.raises(DatabaseClosedError):
        opened.list_namespaces()
    with pytest.raises(DatabaseClosedError):
        opened.create_namespace("x", "", NOW)
    opened.close()  # closing twice is harmless


def test_reopening_a_file_keeps_everything(
    tmp_path: Path, make_schema: Callable[..., SchemaVersion]
) -> None:
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    first = load_store(url)
    first.create_namespace("vision", "", NOW)
    first.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.BACKWARD, [])
    ds = first.create_datastore(DataStoreRef("vision", "faces", 1), ("t",), "faces", 1, "", NOW)
    doc = _new(b'{"kept":1}')
    first.put_documents(ds.id, 1, [doc])
    first.close()
    second = load_store(url)  # migrations are recorded: reopening applies nothing twice
    assert second.get_document(doc.id).body == b'{"kept":1}'
    second.close()


# -- import (reeldb migrate-backend) ----------------------------------------------------------


def test_import_keeps_ids_versions_times_and_blobs_and_skips_what_exists(
    store: Store, datastore: DataStore
) -> None:
    [seq] = store.put_documents(datastore.id, 1, [_new(b'{"here":1}')])
    blob = uuid.uuid4()
    records = [_record(_new(b'{"n":1}', MID_B), 7), _record(_new(b'{"n":2}'), 3)]
    records.append(_record(NewDocument(uuid7(), MID_B, NOW, b""), 2, blob=blob, size=1234))
    assert store.import_documents(datastore.id, records) == 3
    got = list(store.iter_documents(datastore.id))
    assert [r.id for r in got][1:] == [r.id for r in records]
    assert got[1].seq > seq and [r.seq for r in got] == sorted(r.seq for r in got)
    for mine, theirs in zip(got[1:], records, strict=True):
        assert (mine.mid_key, mine.schema_version, mine.created_at) == (
            theirs.mid_key,
            theirs.schema_version,
            theirs.created_at,
        )
        assert (mine.size, mine.body, mine.blob) == (theirs.size, theirs.body, theirs.blob)
    # Run again (an interrupted copy resumed): nothing is stored twice.
    assert store.import_documents(datastore.id, records) == 0
    again = [*records[1:], _record(_new(b'{"n":3}'), 1)]
    assert store.import_documents(datastore.id, again) == 1
    assert store.count_documents(datastore.id) == 5
    with pytest.raises(NotFoundError):
        store.import_documents(datastore.id + 999, [_record(_new(b"{}"), 1)])


def _record(
    doc: NewDocument, version: int, *, blob: uuid.UUID | None = None, size: int | None = None
) -> DocumentRecord:
    return DocumentRecord(
        seq=0,
        id=doc.id,
        datastore_id=0,
        mid_key=doc.mid_key,
        schema_version=version,
        created_at=NOW - timedelta(days=version),
        size=len(doc.body) if size is None else size,
        body=doc.body,
        blob=blob,
    )
