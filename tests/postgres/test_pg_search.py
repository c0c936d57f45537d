"""The PostgreSQL index answers exactly as the SQLite one (the reference) and the oracle do.

Hypothesis runs the strategies of ``tests/index/test_oracle_equivalence.py`` against a
PostgreSQL schema; then the cases those strategies never reach but where PostgreSQL's types
differ from SQLite's are compared with SQLite directly: enums of numbers and strings, NUL in
strings, integers beyond a double's precision, phrases, byte order of strings. Streamed
documents (staged ingests) and index generations (rollover, rebuilds beside live reads and
writes) are checked with the helpers of their SQLite suites.
"""

from __future__ import annotations

import copy
import itertools
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reeldb
from reeldb.errors import ConflictError, NotFoundError
from reeldb.index.rows import DocumentRows
from reeldb.query import ast as q
from reeldb.store.postgres._documents import lock_datastores

# The strategies and helpers of the SQLite suites, run here against PostgreSQL.
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("index", "ingest")]
import test_generations as gens  # noqa: E402
from ingest_docs import DS, DS2, NS, setup  # noqa: E402
from test_ingest_service import QUERIES, Crash, crash_on, pieces, rich_document  # noqa: E402
from test_oracle_equivalence import (  # noqa: E402
    SCHEMA,
    check_datastore,
    counts,
    documents,
    event_predicates,
    other_predicates,
    queries,
)

_names = itertools.count()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[reeldb.Database]:
    with reeldb.connect(postgres_url, index_chunk_bytes=200) as db:
        yield db


def _datastore(db: reeldb.Database, schema: dict[str, Any]) -> str:
    """A fresh DataStore (a namespace per call: Hypothesis examples share one database)."""
    namespace = f"v{next(_names)}"
    db.create_namespace(namespace)
    db.add_schema(namespace, schema)
    ds = f"{namespace}/{schema['name']}/1"
    db.create_datastore(ds, mid_keys=["id"], schema=schema["name"])
    return ds


def _check(db: reeldb.Database, docs: list[dict[str, Any]], exprs: list[q.Expr]) -> None:
    check_datastore(db, _datastore(db, SCHEMA), docs, exprs)


_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@_SETTINGS
@given(
    docs=st.lists(documents(), min_size=1, max_size=4),
    exprs=st.lists(queries, min_size=1, max_size=4),
)
def test_the_postgres_index_agrees_with_the_oracle(
    pg: reeldb.Database, docs: list[dict[str, Any]], exprs: list[q.Expr]
) -> None:
    _check(pg, docs, exprs)


@_SETTINGS
@given(
    docs=st.lists(documents(), min_size=1, max_size=3),
    predicates=st.lists(
        st.one_of(event_predicates, other_predicates, counts), min_size=4, max_size=8
    ),
)
def test_single_predicates_agree_on_postgres(
    pg: reeldb.Database, docs: list[dict[str, Any]], predicates: list[q.Expr]
) -> None:
    _check(pg, docs, [*predicates, *(q.Not(p) for p in predicates)])


# -- where PostgreSQL's types are not SQLite's: compared with SQLite itself -----------------

EDGE_SCHEMA: dict[str, Any] = {
    "name": "edge",
    "levels": {
        "asset": {
            "properties": {
                "title": {"type": "text"},
                "mixed": {"type": "enum", "values": ["low", "high", 1, 2.5]},
                "big": {"type": "int"},
                "ratio": {"type": "float"},
                "tag": {"type": "keyword"},
            }
        },
        "event": {"properties": {"label": {"type": "keyword"}}},
    },
}
EDGE_DOCS: list[dict[str, Any]] = [
    {"asset": {"title": "heavy rain storms", "mixed": "low", "big": 2**53 + 1, "tag": "a\x00b"}},
    {"asset": {"title": "rain heavy", "mixed": 1, "big": 2**53, "ratio": 0.1, "tag": "a"}},
    {"asset": {"title": "storm", "mixed": 2.5, "big": -(2**63), "ratio": 1, "tag": "a\x01"}},
    {"asset": {"mixed": "high", "big": 2**63 - 1, "ratio": 2.5, "tag": "é"}},
    {"asset": {"title": "Ünïcode café heavy", "ratio": 0.30000000000000004, "tag": "z"}},
    {"tracks": []},
]
EDGE_QUERIES = [
    *(f'asset.mixed {op} "low"' for op in q.COMPARISONS),
    *(f"asset.mixed {op} 1" for op in q.COMPARISONS),
    *(f"asset.mixed {op} 2.5" for op in q.COMPARISONS),
    'asset.mixed in ("high", 1)',
    'not asset.mixed in ("high", 2.5)',
    *(f"asset.big {op} 9007199254740992" for op in q.COMPARISONS),
    *(f"asset.big {op} 9007199254740993" for op in q.COMPARISONS),
    *(f"asset.big {op} 9223372036854775807" for op in q.COMPARISONS),
    *(f"asset.ratio {op} 0.1" for op in q.COMPARISONS),
    *(f"asset.ratio {op} 0.30000000000000004" for op in q.COMPARISONS),
    *(f"asset.ratio {op} 1" for op in q.COMPARISONS),
    *(f'asset.tag {op} "a"' for op in q.COMPARISONS),
    *(f'asset.tag {op} "a\\u0000b"' for op in q.COMPARISONS),
    *(f'asset.tag {op} "a\\u0001"' for op in q.COMPARISONS),
    *(f'asset.tag {op} "e"' for op in q.COMPARISONS),
    'asset.title contains "heavy rain"',
    'asset.title contains "rain heavy"',
    "asset.title contains storms",
    'asset.title contains "unicode cafe"',
    'asset.title contains "café heavy"',
    'not asset.title contains "heavy"',
]


def _answers(db: reeldb.Database) -> list[list[str]]:
    ds = _datastore(db, EDGE_SCHEMA)
    for i, doc in enumerate(EDGE_DOCS):
        db.put_document(ds, {"id": str(i)}, doc)
    return [
        [m.mid["id"] for m in db.query_datastore(ds, text, limit=100).items]
        for text in EDGE_QUERIES
    ]


def test_edge_cases_answer_as_on_sqlite(pg: reeldb.Database) -> None:
    with reeldb.connect("memory:") as sqlite:
        expected = _answers(sqlite)
    found = _answers(pg)
    for text, want, got in zip(EDGE_QUERIES, expected, found, strict=True):
        assert got == want, text
    assert any(expected) and not all(expected)


def test_a_number_in_a_mixed_enum_sorts_before_every_string(pg: reeldb.Database) -> None:
    ds = _datastore(pg, EDGE_SCHEMA)
    for i, value in enumerate(["low", 1, 2.5, "high"]):
        pg.put_document(ds, {"id": str(i)}, {"asset": {"mixed": value}})

    def ids(text: str) -> list[str]:
        return [m.mid["id"] for m in pg.query_datastore(ds, text, limit=10).items]

    assert ids('asset.mixed < "high"') == ["1", "2"]
    assert ids('asset.mixed >= "high"') == ["0", "3"]
    assert ids("asset.mixed > 1") == ["0", "2", "3"]
    assert ids("asset.mixed != 1") == ["0", "2", "3"]
    assert ids('asset.mixed = "low"') == ["0"]
    assert ids(f"asset.mixed = {Decimal('2.5')}") == ["2"]


# -- streamed documents: reserved, staged in batches, published ------------------------------


@pytest.fixture
def ingest_db(postgres_url: str) -> Iterator[reeldb.Database]:
    with reeldb.connect(postgres_url, index_chunk_bytes=200, blob_grace=600.0) as db:
        setup(db, DS, DS2)
        yield db


def _body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _same_answers(db: reeldb.Database, streamed: Any, written: Any) -> None:
    assert db.get_document(streamed).data == db.get_document(written).data
    for query in QUERIES:
        a = db.query_document(streamed, query, limit=1000)
        b = db.query_document(written, query, limit=1000)
        assert [(m.path, m.region_indexes) for m in a.items] == [
            (m.path, m.region_indexes) for m in b.items
        ], query
        found_a = {m.id for m in db.query_datastore(DS, query, limit=1000).items}
        found_b = {m.id for m in db.query_datastore(DS2, query, limit=1000).items}
        assert (found_a == {streamed}) == (found_b == {written}), query


def _indexed(db: reeldb.Database, ds: str) -> tuple[int, int]:
    gens = db.store.index_generations(db.store.get_datastore(reeldb.DataStoreRef.parse(ds)).id)
    return sum(g.docs for g in gens), sum(g.rows for g in gens)


@pytest.mark.parametrize("batch_rows", [1, 7, 22, 23])
def test_a_streamed_document_answers_as_a_written_one(
    ingest_db: reeldb.Database, batch_rows: int
) -> None:
    db, doc = ingest_db, rich_document()
    blob = db.blobs.put(NS, pieces(_body(doc)))
    validated = db._ingest.validate(DS, {"id": "m1"}, blob.id)
    request = uuid4()
    db._ingest.begin(request, validated)
    assert db._ingest.begin(request, validated).rows_done == 0  # idempotent
    state = db._ingest.stage(request, validated, batch_rows=batch_rows)
    assert state.rows_done == state.rows == 22
    streamed = db._ingest.publish(request)
    assert db._ingest.publish(request).id == streamed.id  # idempotent
    assert db.store.get_ingest(request).state == "published"
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    _same_answers(db, streamed.id, written.id)
    assert _indexed(db, DS) == _indexed(db, DS2) == (1, 22)


def test_staged_rows_stay_invisible_until_published_and_resume_once(
    ingest_db: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, doc = ingest_db, rich_document()
    blob = db.blobs.put(NS, pieces(_body(doc)))
    validated = db._ingest.validate(DS, {"id": "m1"}, blob.id)
    request = uuid4()
    db._ingest.begin(request, validated)
    calls = crash_on(db, monkeypatch, 3)
    with pytest.raises(Crash):
        db._ingest.stage(request, validated, batch_rows=7)
    state = db.store.get_ingest(request)
    assert state.state == "staging" and 14 <= state.rows_done < state.rows
    assert db.count_documents(DS) == 0
    for query in QUERIES:
        assert db.query_datastore(DS, query, limit=1000).items == (), query
    with pytest.raises(ConflictError, match="rows staged; it cannot be published"):
        db._ingest.publish(request)
    with pytest.raises(ConflictError, match="another worker staged this batch"):
        db.store.stage_ingest(
            request, DocumentRows([], [], [], []), rows_at=0, chunks_at=0, events=0
        )
    state = db._ingest.stage(request, validated, batch_rows=7)
    assert state.rows_done == state.rows and len(calls) > 3
    streamed = db._ingest.publish(request)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    _same_answers(db, streamed.id, written.id)
    assert _indexed(db, DS) == _indexed(db, DS2)


def test_a_discarded_ingest_leaves_nothing_behind(
    ingest_db: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ingest_db
    blob = db.blobs.put(NS, [_body(rich_document())])
    validated = db._ingest.validate(DS, {"id": "m1"}, blob.id)
    request = uuid4()
    db._ingest.begin(request, validated)
    original = db.store.stage_ingest
    crash_on(db, monkeypatch, 3)
    with pytest.raises(Crash):
        db._ingest.stage(request, validated, batch_rows=7)
    db.store.discard_ingest(request)
    monkeypatch.setattr(db.store, "stage_ingest", original)
    state = db.store.get_ingest(request)
    assert state.state == "discarded" and state.rows_done > 0
    db.store.discard_ingest(request)  # idempotent
    with pytest.raises(ConflictError, match="is discarded; it cannot be published"):
        db.store.publish_ingest(request)
    ds = db.store.get_datastore(reeldb.DataStoreRef.parse(DS))
    [gen] = db.store.index_generations(ds.id)
    store: Any = db.store
    left = store._pg.read(
        lambda conn: [
            conn.execute(f"SELECT count(*) FROM ix{gen.id}_{table}").fetchone()[0]
            for table in ("rows", "time", "chunks", "fts")
        ]
    )
    assert left == [0, 0, 0, 0]
    doc = db.put_document_from_blob(DS, {"id": "m1"}, blob.id)  # a new write succeeds
    assert db.query_datastore(DS, 'event.label = "face"').items[0].id == doc.id
    with pytest.raises(NotFoundError):
        db.store.get_ingest(uuid4())
    db.store.discard_ingest(uuid4())  # nothing to discard


# -- what only a shared server can get wrong -------------------------------------------------


def test_rebuilds_and_ingests_wait_for_the_writers_of_their_datastore(
    ingest_db: reeldb.Database,
) -> None:
    db = ingest_db
    ds = db.store.get_datastore(reeldb.DataStoreRef.parse(DS))
    db.put_document(DS, {"id": "w"}, rich_document())
    blob = db.blobs.put(NS, [_body(rich_document())])
    store: Any = db.store
    done: list[Any] = []

    def run(step: Any) -> None:
        try:
            done.append(step())
        except Exception as exc:  # noqa: BLE001 - reported below
            done.append(exc)

    steps = [
        lambda: db.rebuild_index(DS),
        lambda: db.put_document_from_blob(DS, {"id": "s"}, blob.id),
    ]
    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    with psycopg.connect(store._pg.url) as writer:  # a writer in the middle of its transaction
        lock_datastores(writer, [ds.id])
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        assert done == []
        writer.rollback()
    for thread in threads:
        thread.join(30)
    assert len(done) == 2
    for result in done:
        if isinstance(result, ConflictError):  # published after the swap: written again
            assert "was dropped during the write; retry" in str(result)
            db.put_document_from_blob(DS, {"id": "s"}, blob.id)
        else:
            assert not isinstance(result, Exception), result
    found = db.query_datastore(DS, 'event.label = "face"', limit=10).items
    assert sorted(m.mid["id"] for m in found) == ["s", "w"]


def test_a_search_that_saw_a_dropped_generation_reads_again(ingest_db: reeldb.Database) -> None:
    db = ingest_db
    doc = rich_document()
    written = db.put_document(DS, {"id": "m1"}, copy.deepcopy(doc))
    store: Any = db.store
    ds = store.get_datastore(reeldb.DataStoreRef.parse(DS))
    [old] = store.index_generations(ds.id)
    original = store._index.generations
    seen, go = threading.Event(), threading.Event()

    def generations(conn: Any, datastore_id: int) -> Any:
        found = original(conn, datastore_id)
        if threading.current_thread().name == "reader" and not seen.is_set():
            seen.set()  # the reader's snapshot has the old generation
            go.wait(30)
        return found

    store._index.generations = generations
    results: list[Any] = []
    reader = threading.Thread(
        target=lambda: results.append(db.query_datastore(DS, 'event.label = "face"').items),
        name="reader",
    )
    reader.start()
    assert seen.wait(30)
    db.rebuild_index(DS)  # swaps to a new generation and drops the old one's tables
    go.set()
    reader.join(30)
    assert [g.id for g in store.index_generations(ds.id)] != [old.id]
    assert [[m.id for m in items] for items in results] == [[written.id]]


# -- generations: rollover, rebuilds beside live reads and writes ----------------------------


def _ix_tables(db: reeldb.Database) -> set[str]:
    store: Any = db.store
    rows = store._pg.read(
        lambda conn: conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE 'ix%%'"
        ).fetchall()
    )
    return {row[0] for row in rows}


def test_rollover_and_a_rebuild_on_postgres(postgres_url: str) -> None:
    with reeldb.connect(postgres_url, index_rollover_rows=10) as db:
        gens.setup(db)
        docs = gens.write(db, 0, 25)
        old = db.index_status(gens.DS)
        assert len(old) >= 3 and all(g.in_alias and g.state == "active" for g in old)
        assert [g.name for g in old] == [f"g{i + 1}" for i in range(len(old))]
        gens.assert_answers(db, docs)
        for doc_id, data in docs.items():
            events = db.query_document(doc_id, "event.time_range overlaps(0, 100)").items
            assert len(events) == len(data["tracks"][0]["components"][0]["events"])
        seen: list[tuple[int, int]] = []
        new = db.rebuild_index(gens.DS, batch_size=4, progress=lambda d, t: seen.append((d, t)))
        assert db.index_status(gens.DS) == [new] and new.docs == 25
        assert seen[-1] == (25, 25)
        assert {t.split("_")[0] for t in _ix_tables(db)} == {f"ix{new.id}"}
        gens.assert_answers(db, docs)


def test_a_new_searchable_field_opens_a_generation_on_postgres(postgres_url: str) -> None:
    with reeldb.connect(postgres_url) as db:
        gens.setup(db)
        docs = gens.write(db, 0, 3)
        evolved = {**gens.SCHEMA, "levels": {**gens.SCHEMA["levels"]}}
        evolved["levels"]["event"] = {
            "properties": {"label": {"type": "keyword"}, "mood": {"type": "keyword"}}
        }
        db.add_schema("vision", evolved)
        later = gens.document(3)
        later["tracks"][0]["components"][0]["events"][0]["mood"] = "calm"
        docs[db.put_document(gens.DS, {"id": "3"}, later).id] = later
        assert [g.name for g in db.index_status(gens.DS)] == ["g1", "g2"]
        for query in ('event.mood = "calm"', 'not event.mood = "calm"'):
            assert gens.found(db, query) == gens.expected(docs, query)
        gens.assert_answers(db, docs)


def test_a_rebuild_beside_live_reads_and_writes_on_postgres(postgres_url: str) -> None:
    with reeldb.connect(postgres_url) as db:
        gens.setup(db)
        docs = gens.write(db, 0, 120)
    query = 'region.person = "Alice"'
    floor = gens.expected(docs, query)
    stop, reading = threading.Event(), threading.Event()
    problems: list[str] = []
    added: dict[Any, dict[str, Any]] = {}

    def reader() -> None:
        with reeldb.connect(postgres_url) as db:
            while not stop.is_set():
                try:
                    ids = gens.found(db, query)
                except Exception as exc:  # noqa: BLE001 - the point is that none happens
                    problems.append(repr(exc))
                    return
                finally:
                    reading.set()
                if not floor <= ids:
                    problems.append(f"a read saw {len(ids)} documents, fewer than {len(floor)}")

    def writer() -> None:
        with reeldb.connect(postgres_url) as db:
            for i in range(120, 160):
                added.update(gens.write(db, i, 1))

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    assert reading.wait(30)
    with reeldb.connect(postgres_url) as db:
        db.rebuild_index(gens.DS, batch_size=15)
    threads[1].join()
    stop.set()
    threads[0].join()
    assert not problems, problems[:3]
    with reeldb.connect(postgres_url) as db:
        assert len(db.index_status(gens.DS)) == 1
        gens.assert_answers(db, {**docs, **added})


def test_a_rebuild_refuses_to_swap_when_the_schema_moved_on_postgres(postgres_url: str) -> None:
    with reeldb.connect(postgres_url) as db:
        gens.setup(db)
        docs = gens.write(db, 0, 6)
        evolved = {**gens.SCHEMA, "levels": {**gens.SCHEMA["levels"]}}
        evolved["levels"]["event"] = {
            "properties": {"label": {"type": "keyword"}, "mood": {"type": "keyword"}}
        }

        def evolve(done: int, total: int) -> None:
            if not db.index_status(gens.DS)[-1].in_alias and done == 2:
                db.add_schema("vision", evolved)

        with pytest.raises(reeldb.ConflictError, match="run it again"):
            db.rebuild_index(gens.DS, batch_size=2, progress=evolve)
        gens.assert_answers(db, docs)
        rebuilt = db.rebuild_index(gens.DS)  # with the new columns: a fresh generation
        assert db.index_status(gens.DS) == [rebuilt]
        assert {c.name for c in rebuilt.columns} >= {"mood"}
        gens.assert_answers(db, docs)


def test_a_count_past_its_budget_is_cancelled_and_the_read_goes_on(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with reeldb.connect(postgres_url) as db:
        gens.setup(db)
        docs = gens.write(db, 0, 6)
        store: Any = db.store
        ds = store.get_datastore(reeldb.DataStoreRef.parse(gens.DS))
        expr = db._checked_query(ds, 'region.person = "Alice"')
        matched = store._index._matched

        def slow(*args: Any, **kwargs: Any) -> Any:
            where, params = matched(*args, **kwargs)
            return f"{where} AND pg_sleep(0.01) IS NOT NULL", params

        monkeypatch.setattr(store._index, "_matched", slow)
        timeouts: list[str] = []

        def count_then_read(conn: Any) -> int | None:
            found = store._index.count(conn, ds.id, expr, all_versions=True, budget=10**5)
            timeouts.append(conn.execute("SHOW statement_timeout").fetchone()[0])
            return found

        assert store._pg.read(count_then_read) is None  # 1 ms: cancelled
        assert timeouts == ["1min"]  # the transaction's own limit is back
        alice = gens.expected(docs, 'region.person = "Alice"')
        assert store.count_matches(ds.id, expr, all_versions=True, budget=10**9) == len(alice)


def test_concurrent_writers_of_one_datastore_index_every_document_once(postgres_url: str) -> None:
    with reeldb.connect(postgres_url, index_rollover_rows=40) as db:
        gens.setup(db)
    written: dict[Any, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def writer(first: int) -> None:
        try:
            with reeldb.connect(postgres_url, index_rollover_rows=40) as db:
                for i in range(first, first + 15):
                    written.update(gens.write(db, i, 1))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(first,)) for first in (0, 100, 200, 300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with reeldb.connect(postgres_url) as db:
        status = db.index_status(gens.DS)
        assert len(status) > 1 and sum(g.docs for g in status) == 60
        assert [g.name for g in status] == [f"g{i + 1}" for i in range(len(status))]
        gens.assert_answers(db, written)
        for doc_id, data in written.items():
            events = db.query_document(doc_id, "event.time_range overlaps(0, 100)").items
            assert [m.event for m in events] == [
                {k: v for k, v in e.items() if k != "regions"}
                for e in data["tracks"][0]["components"][0]["events"]
            ]


def test_a_killed_rebuild_leaves_the_old_index_serving_and_resumes_on_postgres(
    postgres_url: str,
) -> None:
    with reeldb.connect(postgres_url) as db:
        gens.setup(db)
        docs = gens.write(db, 0, 40)
        before = db.index_status(gens.DS)
    script = textwrap.dedent(
        f"""
        import os, signal, reeldb
        def die(done, total):
            if done >= 10:
                os.kill(os.getpid(), signal.SIGKILL)
        with reeldb.connect({postgres_url!r}) as db:
            db.rebuild_index({gens.DS!r}, batch_size=5, progress=die)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], check=False, timeout=120)
    assert run.returncode == -signal.SIGKILL
    with reeldb.connect(postgres_url) as db:
        status = db.index_status(gens.DS)
        building = [g for g in status if g.state == "building"]
        assert [g for g in status if g.in_alias] == before
        assert len(building) == 1 and not building[0].in_alias
        assert 10 <= building[0].docs < 40
        gens.assert_answers(db, docs)  # the old generation still answers
        docs.update(gens.write(db, 40, 5))
        rebuilt = db.rebuild_index(gens.DS, batch_size=5)
        assert rebuilt.id == building[0].id  # resumed, not started over
        assert db.index_status(gens.DS) == [rebuilt] and rebuilt.docs == 45
        gens.assert_answers(db, docs)


def test_statements_are_planned_with_their_values_even_once_prepared(postgres_url: str) -> None:
    # After 10 runs of a prepared statement PostgreSQL may keep a generic plan, blind to the
    # values; a document-level time window then scanned a whole document's rows (30x slower
    # in benchmarks/search_bench.py). Every pooled connection plans with the values.
    with reeldb.connect(postgres_url) as db:
        store: Any = db.store
        modes = {store._pg.read(lambda c: c.execute("SHOW plan_cache_mode").fetchone()[0])
                 for _ in range(12)}  # fmt: skip
    assert modes == {"force_custom_plan"}
