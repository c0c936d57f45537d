"""A large streamed document is staged into an index generation of its own (SQLite).

Its generation is created outside the alias and without B-trees; publishing the document
builds them and adds the generation to the alias in the same transaction. Until then the
document and its rows are invisible; a crash resumes; a discarded write drops the generation.
Here ``index_rollover_rows`` is small, so a 22-row document counts as large, and writes take
two passes (``one_pass_bytes`` is out of reach): the row count the first pass finds decides
(a one-pass write decides by the blob's size: ``test_ingest_one_pass``).
"""

from __future__ import annotations

import contextlib
import copy
import re
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
    pieces,
    rich_document,
)

import reeldb
from reeldb.errors import ConflictError, NotFoundError
from reeldb.index.sqlite import SQLiteIndex, build_b_tree

ROLLOVER = 40  # a document of 20 rows or more is staged alone


def connect(path: Path, rollover: int = ROLLOVER) -> reeldb.Database:
    db = reeldb.connect(
        f"sqlite:///{path / 'reel.db'}", index_chunk_bytes=200, index_rollover_rows=rollover
    )
    db._ingest.one_pass_bytes = 1 << 62
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[reeldb.Database]:
    with connect(tmp_path) as database:
        setup(database, DS, DS2)
        yield database


def small_document(label: str = "face") -> dict[str, Any]:
    return {
        "asset": {"title": "short"},
        "tracks": [
            {"components": [{"events": [{"label": label, "time_range": {"start": 0, "end": 1}}]}]}
        ],
    }


def begin(db: reeldb.Database, doc: dict[str, Any], mid: str = "m1") -> tuple[UUID, Any]:
    blob = db.blobs.put(NS, pieces(dumps(doc)))
    validated = db._ingest.validate(DS, {"id": mid}, blob.id)
    request = uuid4()
    db._ingest.begin(request, validated)
    return request, validated


def indexes(path: Path, gid: int) -> list[str]:
    """The B-trees of a generation's rows, as SQL with the generation's id taken out."""
    with contextlib.closing(sqlite3.connect(path / "reel.db")) as conn:
        rows = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL ORDER BY name",
            (f"ix{gid}_rows",),
        ).fetchall()
    return [re.sub(rf"\bix{gid}_", "ix_", sql) for (sql,) in rows]


def row_ids(path: Path, gid: int) -> tuple[int, int, int, int]:
    with contextlib.closing(sqlite3.connect(path / "reel.db")) as conn:
        found = conn.execute(
            f"SELECT count(*), count(DISTINCT id), min(id), max(id) FROM ix{gid}_rows"
        ).fetchone()
    return tuple(found)


def test_the_threshold_is_half_the_rollover() -> None:
    assert SQLiteIndex().own_generation_rows == 500_000
    assert SQLiteIndex(rollover_rows=ROLLOVER).own_generation_rows == 20
    assert SQLiteIndex(rollover_rows=1).own_generation_rows == 1


def test_staged_alone_then_published_with_its_b_trees(db: reeldb.Database, tmp_path: Path) -> None:
    first = db.put_document(DS, {"id": "m0"}, small_document())
    [shared] = db.index_status(DS)
    doc = rich_document()
    request, validated = begin(db, doc)
    assert validated.plan.rows == 22
    shared_now, own = db.index_status(DS)
    assert shared_now == shared
    assert (own.state, own.in_alias, own.docs, own.rows) == ("staging", False, 0, 0)
    assert indexes(tmp_path, own.id) == []  # built at publication

    state = db._ingest.stage(request, validated, batch_rows=7)
    assert state.rows_done == state.rows == 22
    # Invisible until published: no document, no match, no count; the alias unchanged.
    assert db.count_documents(DS) == 1
    with pytest.raises(NotFoundError):
        db.get_document(state.document_id)
    for query in QUERIES:
        found = db.query_datastore(DS, query, limit=1000).items
        assert state.document_id not in {m.id for m in found}, query
    assert [g.in_alias for g in db.index_status(DS)] == [True, False]

    streamed = db._ingest.publish(request)
    assert db._ingest.publish(request).id == streamed.id  # idempotent
    shared_now, own = db.index_status(DS)
    assert (own.state, own.in_alias, own.docs, own.rows) == ("active", True, 1, 22)
    assert indexes(tmp_path, own.id) == indexes(tmp_path, shared.id) != []
    assert row_ids(tmp_path, own.id) == (22, 22, 1, 22)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed.id, written.id)
    # Queries read both generations; the first document is still found.
    matched = {m.id for m in db.query_datastore(DS, 'event.label = "face"', limit=10).items}
    assert matched == {first.id, streamed.id}


def test_later_documents_are_written_beside_it(db: reeldb.Database) -> None:
    blob = db.blobs.put(NS, pieces(dumps(rich_document())))
    streamed = db.put_document_from_blob(DS, {"id": "m1"}, blob.id)
    later = db.put_document(DS, {"id": "m2"}, small_document("dog"))
    [own] = db.index_status(DS)  # the newest of the alias takes new documents
    assert (own.docs, own.rows, own.in_alias) == (2, 23, True)
    assert [m.id for m in db.query_datastore(DS, 'event.label = "dog"').items] == [
        streamed.id,
        later.id,
    ]
    another = db.put_document_from_blob(DS, {"id": "m3"}, blob.id)  # alone again
    assert [g.docs for g in db.index_status(DS)] == [2, 1]
    face = 'event.label = "face"'
    assert (
        db.query_document(another.id, face, limit=100).items
        == db.query_document(streamed.id, face, limit=100).items
        != ()
    )


def test_resume_after_a_crash_stages_each_row_once(
    db: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = rich_document()
    request, validated = begin(db, doc)
    calls = crash_on(db, monkeypatch, 3)
    with pytest.raises(Crash):
        db._ingest.stage(request, validated, batch_rows=7)
    state = db.store.get_ingest(request)
    assert state.state == "staging" and 14 <= state.rows_done < state.rows
    [own] = db.index_status(DS)
    assert row_ids(tmp_path, own.id)[:2] == (state.rows_done, state.rows_done)
    assert db.query_datastore(DS, 'event.label = "face"').items == ()
    with pytest.raises(ConflictError, match="cannot be published"):
        db._ingest.publish(request)  # not every row is staged: no B-tree is built yet
    assert indexes(tmp_path, own.id) == []
    state = db._ingest.stage(request, validated, batch_rows=7)
    assert state.rows_done == state.rows and len(calls) > 3
    streamed = db._ingest.publish(request)
    assert row_ids(tmp_path, own.id) == (22, 22, 1, 22)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed.id, written.id)


def test_a_failed_write_drops_its_generation(
    db: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.put_document(DS, {"id": "m0"}, small_document())
    [shared] = db.index_status(DS)
    blob = db.blobs.put(NS, pieces(dumps(rich_document())))
    crash_on(db, monkeypatch, 1)
    request = uuid4()
    with pytest.raises(Crash):
        db._ingest.run(DS, {"id": "m1"}, blob.id, request_id=request)
    assert db.store.get_ingest(request).state == "discarded"
    assert db.index_status(DS) == [shared]
    with contextlib.closing(sqlite3.connect(tmp_path / "reel.db")) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert not any(name.startswith(f"ix{shared.id + 1}_") for name in tables)
    db._ingest.discard(request)  # idempotent
    monkeypatch.undo()
    streamed = db.put_document_from_blob(DS, {"id": "m1"}, blob.id)
    written = db.put_document(DS2, {"id": "m1"}, rich_document())
    assert_same_answers(db, streamed.id, written.id)


def test_a_rebuild_during_the_write_makes_it_fail_and_leaves_the_rebuilt_index(
    db: reeldb.Database,
) -> None:
    first = db.put_document(DS, {"id": "m0"}, small_document())
    request, validated = begin(db, rich_document())
    db._ingest.stage(request, validated, batch_rows=7)
    rebuilt = db.rebuild_index(DS)
    assert db.index_status(DS) == [rebuilt]  # the staging generation was dropped with the rest
    with pytest.raises(ConflictError, match="dropped"):
        db._ingest.publish(request)
    assert [m.id for m in db.query_datastore(DS, 'event.label = "face"').items] == [first.id]
    db._ingest.discard(request)
    assert db.index_status(DS) == [rebuilt]


def test_a_reopened_database_publishes_a_staged_document(tmp_path: Path) -> None:
    doc = rich_document()
    with connect(tmp_path) as db:
        setup(db, DS, DS2)
        request, validated = begin(db, doc)
        db._ingest.stage(request, validated, batch_rows=5)
    with connect(tmp_path) as db:
        streamed = db._ingest.publish(request)
        written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
        assert_same_answers(db, streamed.id, written.id)


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[reeldb.Database]:
    """Every streamed document is staged alone here (a rollover of 2 rows: 1 row is large)."""
    path = tmp_path_factory.mktemp("alone")
    with connect(path, rollover=2) as database:
        setup(database, DS, DS2)
        yield database


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(doc=documents(max_tracks=2, max_events=3))
def test_generated_documents_staged_alone_answer_as_written(
    alone: reeldb.Database, doc: dict[str, Any]
) -> None:
    mid = str(uuid4())
    blob = alone.blobs.put(NS, pieces(dumps(doc)))
    before = len(alone.index_status(DS))
    streamed = alone.put_document_from_blob(DS, {"id": mid}, blob.id)
    written = alone.put_document(DS2, {"id": mid}, copy.deepcopy(doc))
    generations = alone.index_status(DS)
    assert len(generations) == before + 1
    assert all(g.state == "active" and g.in_alias for g in generations)
    assert alone.get_document(streamed.id).body == dumps(doc)
    assert_same_answers(alone, streamed.id, written.id)


@pytest.mark.parametrize("rollover", [ROLLOVER, 1_000_000])  # alone, and in a shared generation
def test_the_same_index_alone_or_shared(tmp_path: Path, rollover: int) -> None:
    doc = rich_document()
    with reeldb.connect(
        f"sqlite:///{tmp_path / 'reel.db'}", index_chunk_bytes=200, index_rollover_rows=rollover
    ) as db:
        setup(db, DS, DS2)
        db.put_document(DS, {"id": "m0"}, small_document())
        request, validated = begin(db, doc)
        progress: list[int] = []
        state = db._ingest.stage(
            request, validated, batch_rows=5, progress=lambda done, _: progress.append(done)
        )
        assert len(progress) > 2 and progress == sorted(progress) and progress[-1] == 22
        assert state.rows_done == state.rows == 22
        streamed = db._ingest.publish(request)
        written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
        assert_same_answers(db, streamed.id, written.id)
        assert len(db.index_status(DS)) == (2 if rollover == ROLLOVER else 1)


def test_an_error_while_cutting_is_resumed(
    db: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, validated = begin(db, rich_document())
    from reeldb.index.rows import RowCutter

    original = RowCutter.event
    cut: list[int] = []

    def event(self: RowCutter, e: int, value: Any) -> None:
        cut.append(e)
        if len(cut) == 12:
            raise Crash
        original(self, e, value)

    monkeypatch.setattr(RowCutter, "event", event)
    with pytest.raises(Crash):
        db._ingest.stage(request, validated, batch_rows=5)
    state = db.store.get_ingest(request)
    assert state.state == "staging" and 0 < state.rows_done < state.rows
    monkeypatch.undo()
    db._ingest.stage(request, validated, batch_rows=5)
    streamed = db._ingest.publish(request)
    written = db.put_document(DS2, {"id": "m1"}, rich_document())
    assert_same_answers(db, streamed.id, written.id)


def test_b_trees_built_before_a_crash_are_kept(db: reeldb.Database, tmp_path: Path) -> None:
    db.put_document(DS, {"id": "m0"}, small_document())
    [shared] = db.index_status(DS)
    doc = rich_document()
    request, validated = begin(db, doc)
    db._ingest.stage(request, validated, batch_rows=7)
    # The B-trees are built one transaction each; a crash before the publication's own
    # leaves them built, the document invisible, and the next publication completes.
    assert db.store._build_staged_b_trees(request)  # type: ignore[attr-defined]
    _, own = db.index_status(DS)
    assert own.state == "staging" and not own.in_alias
    assert indexes(tmp_path, own.id) == indexes(tmp_path, shared.id)
    assert db.count_documents(DS) == 1
    streamed = db._ingest.publish(request)
    assert indexes(tmp_path, own.id) == indexes(tmp_path, shared.id)
    written = db.put_document(DS2, {"id": "m1"}, copy.deepcopy(doc))
    assert_same_answers(db, streamed.id, written.id)


def test_b_trees_are_sorted_in_small_runs_and_the_connection_gets_its_settings_back() -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [(f"v{i % 97}",) for i in range(1000)])
        seen: list[tuple[int, int]] = []

        def trace(statement: str) -> None:
            if statement.startswith("CREATE INDEX"):
                # What the statement runs with, read on a second cursor of the same connection.
                seen.append(
                    (
                        conn.execute("PRAGMA cache_size").fetchone()[0],
                        conn.execute("PRAGMA threads").fetchone()[0],
                    )
                )

        conn.set_trace_callback(trace)
        build_b_tree(conn, "CREATE INDEX t_v ON t (v)")
        conn.set_trace_callback(None)
        assert seen == [(-2048, 2)]
        assert conn.execute("SELECT count(*) FROM t INDEXED BY t_v WHERE v = 'v5'").fetchone() == (
            11,
        )
        assert conn.execute("PRAGMA cache_size").fetchone() == (-65536,)
        assert conn.execute("PRAGMA threads").fetchone() == (0,)
        with pytest.raises(sqlite3.OperationalError):
            build_b_tree(conn, "CREATE INDEX t_v ON t (v)")  # exists: the settings still return
        assert conn.execute("PRAGMA cache_size").fetchone() == (-65536,)
        assert conn.execute("PRAGMA threads").fetchone() == (0,)
