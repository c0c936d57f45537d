"""Index generations: rollover, rebuild beside live reads and writes, and crash recovery."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import reeldb
from reeldb.query import parse_query
from reeldb.query.oracle import document_matches

DS = "vision/faces/1"
SCHEMA: dict[str, Any] = {
    "name": "faces",
    "levels": {
        "asset": {"properties": {"title": {"type": "text"}}},
        "event": {"properties": {"label": {"type": "keyword"}}},
        "region": {"properties": {"person": {"type": "keyword"}}},
    },
}
QUERIES = [
    'region.person = "Alice"',
    'asset.title contains storm and event.label = "face"',
    'not region.person = "Bob" and event.time_range overlaps(1, 2)',
    "count(event) >= 2",
]


def document(i: int) -> dict[str, Any]:
    people = ["Alice", "Bob", "Carol"]
    return {
        "asset": {"title": "storm warning" if i % 2 else "calm day"},
        "tracks": [
            {
                "components": [
                    {
                        "events": [
                            {
                                "time_range": {"start": e, "end": e + 1},
                                "label": "face" if (i + e) % 3 else "car",
                                "regions": [
                                    {
                                        "bounding_box": {"x": 0, "y": 0, "w": 0.5, "h": 0.5},
                                        "person": people[(i + e) % 3],
                                    }
                                ],
                            }
                            for e in range(1 + i % 3)
                        ]
                    }
                ]
            }
        ],
    }


def setup(db: reeldb.Database) -> None:
    db.create_namespace("vision")
    db.add_schema("vision", SCHEMA)
    db.create_datastore(DS, mid_keys=["id"], schema="faces")


def write(db: reeldb.Database, first: int, count: int) -> dict[Any, dict[str, Any]]:
    return {
        db.put_document(DS, {"id": str(i)}, document(i)).id: document(i)
        for i in range(first, first + count)
    }


def expected(docs: dict[Any, dict[str, Any]], query: str) -> set[Any]:
    expr = parse_query(query)
    return {doc_id for doc_id, data in docs.items() if document_matches(expr, data)}


def found(db: reeldb.Database, query: str) -> set[Any]:
    ids: set[Any] = set()
    cursor = None
    while True:
        page = db.query_datastore(DS, query, limit=7, cursor=cursor)
        ids |= {m.id for m in page.items}
        cursor = page.next_cursor
        if cursor is None:
            return ids


def assert_answers(db: reeldb.Database, docs: dict[Any, dict[str, Any]]) -> None:
    for query in QUERIES:
        assert found(db, query) == expected(docs, query), query


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}


def test_rollover_opens_generations_and_queries_span_them(tmp_path: Path) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'r.db'}", index_rollover_rows=10) as db:
        setup(db)
        docs = write(db, 0, 30)
        generations = db.index_status(DS)
        assert len(generations) >= 4
        assert all(g.in_alias and g.state == "active" for g in generations)
        assert sum(g.docs for g in generations) == 30
        assert [g.name for g in generations] == [f"g{i + 1}" for i in range(len(generations))]
        assert_answers(db, docs)
        # Document-level queries find documents in every generation.
        for doc_id, data in docs.items():
            events = db.query_document(doc_id, "event.time_range overlaps(0, 100)").items
            assert len(events) == len(data["tracks"][0]["components"][0]["events"])


def test_a_new_searchable_field_opens_a_generation(tmp_path: Path) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'r.db'}") as db:
        setup(db)
        docs = write(db, 0, 3)
        evolved = {**SCHEMA, "levels": {**SCHEMA["levels"]}}
        evolved["levels"]["event"] = {
            "properties": {"label": {"type": "keyword"}, "mood": {"type": "keyword"}}
        }
        db.add_schema("vision", evolved)
        later = document(3)
        later["tracks"][0]["components"][0]["events"][0]["mood"] = "calm"
        docs[db.put_document(DS, {"id": "3"}, later).id] = later
        assert [g.name for g in db.index_status(DS)] == ["g1", "g2"]
        assert found(db, 'event.mood = "calm"') == expected(docs, 'event.mood = "calm"')
        assert found(db, 'not event.mood = "calm"') == expected(docs, 'not event.mood = "calm"')
        assert_answers(db, docs)


def test_rebuild_swaps_to_one_new_generation_and_drops_the_old(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with reeldb.connect(f"sqlite:///{path}", index_rollover_rows=10) as db:
        setup(db)
        docs = write(db, 0, 25)
        old = db.index_status(DS)
        seen: list[tuple[int, int]] = []
        new = db.rebuild_index(DS, batch_size=4, progress=lambda d, t: seen.append((d, t)))
        assert db.index_status(DS) == [new]
        assert new.state == "active" and new.in_alias and new.docs == 25
        assert new.id not in {g.id for g in old}
        assert seen[-1] == (25, 25) and seen == sorted(seen)
        assert not any(f"ix{g.id}_" in name for g in old for name in tables(path))
        assert_answers(db, docs)


def test_rebuild_beside_live_reads_and_writes(tmp_path: Path) -> None:
    """No read fails or sees fewer documents while the rebuild runs and swaps."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with reeldb.connect(url) as db:
        setup(db)
        docs = write(db, 0, 200)
    query = 'region.person = "Alice"'
    floor = expected(docs, query)
    stop = threading.Event()
    reading = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        with reeldb.connect(url) as db:
            while not stop.is_set():
                try:
                    ids = found(db, query)
                except Exception as exc:  # noqa: BLE001 - the point is that none happens
                    problems.append(repr(exc))
                    reading.set()
                    return
                reads += 1
                reading.set()
                if not floor <= ids:
                    problems.append(f"a read saw {len(ids)} documents, fewer than {len(floor)}")

    added: dict[Any, dict[str, Any]] = {}

    def writer() -> None:
        with reeldb.connect(url) as db:
            for i in range(200, 260):
                added.update(write(db, i, 1))

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    # The reader is reading before the rebuild starts (a loaded machine could otherwise let
    # the whole rebuild pass before its first read), and keeps reading through it.
    assert reading.wait(30)
    with reeldb.connect(url) as db:
        db.rebuild_index(DS, batch_size=20)
    threads[1].join()
    stop.set()
    threads[0].join()
    assert not problems, problems[:3]
    assert reads > 0
    with reeldb.connect(url) as db:
        assert len(db.index_status(DS)) == 1
        assert_answers(db, {**docs, **added})


def test_a_killed_rebuild_leaves_the_old_index_serving_and_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with reeldb.connect(url) as db:
        setup(db)
        docs = write(db, 0, 40)
        before = db.index_status(DS)
    script = textwrap.dedent(
        f"""
        import os, signal, reeldb
        def die(done, total):
            if done >= 10:
                os.kill(os.getpid(), signal.SIGKILL)
        with reeldb.connect({url!r}) as db:
            db.rebuild_index({DS!r}, batch_size=5, progress=die)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], check=False, timeout=120)
    assert run.returncode == -signal.SIGKILL
    with reeldb.connect(url) as db:
        status = db.index_status(DS)
        building = [g for g in status if g.state == "building"]
        assert [g for g in status if g.in_alias] == before
        assert len(building) == 1 and not building[0].in_alias
        assert 10 <= building[0].docs < 40
        assert_answers(db, docs)  # the old generation still answers
        docs.update(write(db, 40, 5))
        rebuilt = db.rebuild_index(DS, batch_size=5)
        assert rebuilt.id == building[0].id  # resumed, not started over
        assert db.index_status(DS) == [rebuilt] and rebuilt.docs == 45
        assert_answers(db, docs)


def test_a_rebuild_refuses_to_swap_when_the_schema_moved(tmp_path: Path) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'r.db'}") as db:
        setup(db)
        docs = write(db, 0, 6)
        evolved = {**SCHEMA, "levels": {**SCHEMA["levels"]}}
        evolved["levels"]["event"] = {
            "properties": {"label": {"type": "keyword"}, "mood": {"type": "keyword"}}
        }

        def evolve(done: int, total: int) -> None:
            if not db.index_status(DS)[-1].in_alias and done == 2:
                db.add_schema("vision", evolved)

        with pytest.raises(reeldb.ConflictError, match="run it again"):
            db.rebuild_index(DS, batch_size=2, progress=evolve)
        assert_answers(db, docs)
        rebuilt = db.rebuild_index(DS)  # with the new columns: a fresh generation
        assert db.index_status(DS) == [rebuilt]
        assert {c.name for c in rebuilt.columns} >= {"mood"}
        assert_answers(db, docs)


def test_status_of_an_unknown_datastore() -> None:
    with reeldb.connect("memory:") as db, pytest.raises(reeldb.NotFoundError):
        db.index_status("nope/nothing/1")


def test_documents_stored_before_indexing_existed_are_reported(tmp_path: Path) -> None:
    """A database from before the index: queries say to rebuild rather than miss documents."""
    path = tmp_path / "r.db"
    with reeldb.connect(f"sqlite:///{path}") as db:
        setup(db)
        docs = write(db, 0, 5)
    with sqlite3.connect(path) as conn:  # as if written by a version without the index
        for (gid,) in conn.execute("SELECT id FROM index_generations").fetchall():
            conn.execute(f"DROP TABLE ix{gid}_rows")
            conn.execute(f"DROP TABLE IF EXISTS ix{gid}_fts")
        conn.execute("DELETE FROM index_docs")
        conn.execute("DELETE FROM index_alias")
        conn.execute("DELETE FROM index_generations")
    with reeldb.connect(f"sqlite:///{path}") as db:
        with pytest.raises(
            reeldb.ConflictError, match="5 of the 5 documents .* `reeldb index rebuild"
        ):
            db.query_datastore(DS, 'region.person = "Alice"')
        db.rebuild_index(DS)
        assert_answers(db, docs)
