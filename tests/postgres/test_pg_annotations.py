"""Annotations on PostgreSQL: SQLite's answers, under concurrent writers, partitioned.

SQLite is the reference: relevance scores must be FTS5's bm25 to the last bit, and the
Hypothesis searches of ``tests/annotations/test_search_oracle.py`` must agree with the
brute-force oracle on PostgreSQL too. Then what only a shared server can get wrong:
concurrent writers of one annotation, of one id in two namespaces, and of many annotations
sharing types and associations (their live counters); and the partitioned layout.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from uuid_utils.compat import uuid7

import reeldb
from reeldb.errors import AlreadyExistsError, VersionConflictError
from reeldb.index.sqlite import fts_token
from reeldb.query.fulltext import stems
from reeldb.store import Store, load_store
from reeldb.store.base import AnnotationQuery, AnnotationRecord, AnnotationWrite
from reeldb.testing import NOW, PostgresUnavailable, postgres_schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "annotations"))
import test_search_oracle as suite  # type: ignore[import-not-found]  # noqa: E402

T = TypeVar("T")
NS = "vision"
LINEAGE = ("vision/NOTE v1", "reeldb/TEMPORAL_SPATIAL_BASE v0")
V1, V2 = ("VIDEO", "v1"), ("VIDEO", "v2")


def tokens(text: str) -> str:
    return " ".join(fts_token(s) for s in stems(text))


def write(
    ident: UUID,
    expected: int = 0,
    *,
    namespace: str = NS,
    links: Sequence[tuple[str, str]] = (V1,),
    time: tuple[float, float] | None = None,
    texts: dict[str, str] | None = None,
    deleted: bool = False,
) -> AnnotationWrite:
    body = {"associations": [{"type": t, "id": i} for t, i in links], "data": texts or {}}
    return AnnotationWrite(
        id=ident,
        namespace=namespace,
        expected_version=expected,
        type_name="NOTE",
        type_version=1,
        lineage=LINEAGE,
        deleted=deleted,
        created_at=NOW + timedelta(seconds=expected),
        created_by=None,
        body=orjson.dumps(body),
        associations=tuple(links),
        time=time,
        texts=tuple((name, tokens(value)) for name, value in (texts or {}).items()),
    )


def pages(store: Store, q: AnnotationQuery) -> list[AnnotationRecord]:
    out: list[AnnotationRecord] = []
    after = None
    while True:
        records, after = store.search_annotations(replace(q, after=after))
        out += records
        if after is None:
            return out


@pytest.fixture
def pair(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """The reference (SQLite) and PostgreSQL, each with the namespaces vision and other."""
    stores = (load_store("memory:"), load_store(postgres_url))
    for store in stores:
        for namespace in (NS, "other"):
            store.create_namespace(namespace, "", NOW)
    yield stores
    for store in stores:
        store.close()


# -- the same answers as SQLite --------------------------------------------------------------


def test_relevance_scores_are_fts5_bm25_to_the_last_bit(pair: tuple[Store, Store]) -> None:
    comments = [
        "red car red car red",  # overlapping phrase occurrences
        "a red car chase",
        "cars chased, red gloves",
        "the car is red and the red car is fast",
        "red",
        "gloves " * 40 + "red car",  # long: its length counts
        "café crème brûlée red",  # non-ASCII stems
    ]
    ids = [uuid7() for _ in range(len(comments) * 3)]
    writes = []
    for i, ident in enumerate(ids):
        comment = comments[i % len(comments)]
        time = None if i % 3 == 0 else ((i, i + 0.5) if i % 3 == 1 else (0.0, 5000.0 + i))
        texts = {"comment": comment} if i % 2 else {"comment": comment, "color": "red car"}
        namespace = "other" if i % 5 == 4 else NS
        writes.append(write(ident, namespace=namespace, time=time, texts=texts))
    changes = [
        write(ids[1], 1, texts={"comment": "no longer a car"}),
        write(ids[2], 1, deleted=True),
        write(ids[3], 1, time=(7, 8), texts={"comment": "red red red car car"}),
    ]
    for store in pair:
        store.put_annotations(writes)
        store.put_annotations(changes)
    phrases = ["red", "car", "red car", "red car red", "glove", "crème", "chase red", "fast"]
    for phrase in phrases:
        for extra in ({}, {"text_fields": ("comment",)}, {"time": (0.0, 100.0)}):
            q = AnnotationQuery(
                namespace=NS, text=tuple(tokens(phrase).split()), sort="relevance", **extra
            )
            for limit in (1000, 3):
                sqlite, postgres = (
                    [(r.id, r.score, r.version) for r in pages(store, replace(q, limit=limit))]
                    for store in pair
                )
                assert postgres == sqlite, (phrase, extra, limit)
    assert pages(pair[1], AnnotationQuery(namespace=NS, text=("red",), sort="relevance"))


@pytest.fixture(scope="module")
def server() -> str:
    """The test server (skipped when unreachable, except under ``CI=true``)."""
    try:
        with postgres_schema():
            pass
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    return os.environ.get("REELDB_TEST_POSTGRES") or ""


def run_on_postgres(
    server: str,
    scenario: suite.Scenario,
    queries: list[suite.Search],
    windows: list[suite.Timeline],
) -> None:
    """`suite.run` on a PostgreSQL database of its own."""
    with postgres_schema(server or None) as url, reeldb.connect(url) as db:
        db.create_namespace(suite.NS)
        for definition in suite.SCHEMAS:
            db.add_schema(suite.NS, copy.deepcopy(definition))
        live = suite.play(db, scenario)
        for search in queries:
            suite.check_search(db.annotations, live, search)
        for timeline in windows:
            suite.check_timeline(db.annotations, live, timeline)


ORACLE = settings(
    max_examples=int(os.environ.get("REELDB_ORACLE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@ORACLE
@example(
    scenario=suite.Scenario([suite.UNTIMED, suite.UNTIMED, suite.TIMED], 3),
    queries=[suite.Search(sort="-time", limit=1), suite.Search(sort="time", limit=2)],
    windows=[],
)
@given(
    suite.scenarios(suite.DYADIC),
    st.lists(suite.searches(suite.DYADIC), min_size=1, max_size=8),
    st.lists(suite.timelines(suite.DYADIC), max_size=3),
)
def test_search_agrees_with_the_oracle_on_postgres(
    server: str,
    scenario: suite.Scenario,
    queries: list[suite.Search],
    windows: list[suite.Timeline],
) -> None:
    run_on_postgres(server, scenario, queries, windows)


@ORACLE
@example(
    scenario=suite.Scenario([suite.NOTE_01], 1),
    queries=[
        suite.Search(time=(0.1, 0.2), time_op="within"),
        suite.Search(box=(0.1, 0.1, 0.2, 0.1), box_op="within"),
    ],
    windows=[],
)
@given(
    suite.scenarios(suite.DECIMAL),
    st.lists(suite.searches(suite.DECIMAL), min_size=1, max_size=8),
    st.lists(suite.timelines(suite.DECIMAL), max_size=3),
)
def test_search_agrees_with_the_oracle_on_postgres_on_decimal_coordinates(
    server: str,
    scenario: suite.Scenario,
    queries: list[suite.Search],
    windows: list[suite.Timeline],
) -> None:
    run_on_postgres(server, scenario, queries, windows)


# -- concurrent writers ------------------------------------------------------------------------


def in_threads(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``work(i)`` in ``count`` threads released together; results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("did not run")] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def pg_stores(postgres_url: str) -> Iterator[list[Store]]:
    """Four stores (pools) on one schema: writers as separate processes would be."""
    stores = [load_store(postgres_url) for _ in range(4)]
    for namespace in (NS, "other"):
        stores[0].create_namespace(namespace, "", NOW)
    yield stores
    for store in stores:
        store.close()


def test_concurrent_updates_of_one_annotation_lose_nothing(pg_stores: list[Store]) -> None:
    a = uuid7()
    pg_stores[0].put_annotations([write(a, texts={"comment": "start"})])

    def work(i: int) -> int:
        done = 0
        for step in range(15):
            current = pg_stores[i].get_annotation(NS, a).version
            links = (V1, ("SHOT", f"s{i}")) if step % 2 else (V2,)
            change = write(a, current, links=links, time=(i, i + step), texts={"comment": "x"})
            try:
                pg_stores[i].put_annotations([change])
            except VersionConflictError:
                continue
            done += 1
        return done

    results = in_threads(4, work)
    assert all(isinstance(r, int) for r in results), results
    wins = sum(r for r in results if isinstance(r, int))
    store = pg_stores[0]
    versions = store.annotation_versions(NS, a)
    assert [v.version for v in versions] == list(range(1, wins + 2))
    assert store.count_annotations(NS) == 1
    body = orjson.loads(versions[-1].body)
    links = [(x["type"], x["id"]) for x in body["associations"]]
    for link in (V1, V2, *(("SHOT", f"s{i}") for i in range(4))):
        found = [r.id for r in pages(store, AnnotationQuery(namespace=NS, associations=(link,)))]
        assert found == ([a] if link in links else []), link
    assert [r.id for r in pages(store, AnnotationQuery(namespace=NS, text=("x",)))] == [a]
    assert pages(store, AnnotationQuery(namespace=NS, text=("start",))) == []


def test_one_id_created_at_once_in_two_namespaces_is_stored_once(
    pg_stores: list[Store],
) -> None:
    for _ in range(5):
        a = uuid7()

        def create(i: int, a: UUID = a) -> None:
            pg_stores[i].put_annotations([write(a, namespace=(NS, "other")[i])])

        results = in_threads(2, create)
        assert sorted(type(r).__name__ for r in results) == ["AlreadyExistsError", "NoneType"]
        assert any(isinstance(r, AlreadyExistsError) for r in results)


def test_concurrent_creators_share_types_and_associations(pg_stores: list[Store]) -> None:
    def work(i: int) -> list[UUID]:
        made = []
        for step in range(10):
            batch = [uuid7() for _ in range(5)]
            links = [(V1, ("SHOT", str(step))), (V2, V1)][step % 2]
            pg_stores[i].put_annotations(
                [write(b, links=links, time=(step, step + 1)) for b in batch]
            )
            made += batch
        return made

    results = in_threads(4, work)
    made = [ident for r in results if isinstance(r, list) for ident in r]
    assert len(made) == 200, results
    store = pg_stores[0]
    assert store.count_annotations(NS) == 200
    by_video = pages(store, AnnotationQuery(namespace=NS, associations=(V1,), limit=37))
    assert sorted(r.id for r in by_video) == sorted(made)
    assert len(pages(store, AnnotationQuery(namespace=NS, associations=(V2,)))) == 100
    window = AnnotationQuery(namespace=NS, associations=(V1,), time=(3.5, 3.5))
    assert len(pages(store, window)) == 20


# -- the layout ------------------------------------------------------------------------------


def test_an_annotation_lives_in_its_namespace_partition(postgres_url: str) -> None:
    store = load_store(postgres_url)
    try:
        store.create_namespace(NS, "", NOW)
        a = uuid7()
        store.put_annotations([write(a, time=(1, 2), texts={"comment": "red car"})])
        store.put_annotations([write(a, 1, time=(2, 3), texts={"comment": "blue car"})])
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        strategy: dict[str, str] = dict(
            conn.execute(
                "SELECT c.relname, p.partstrat FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace "
                "AND c.relname LIKE 'annotation%%'"
            ).fetchall()
        )
        assert strategy == dict.fromkeys(
            [
                "annotations",
                "annotation_versions",
                "annotation_links",
                "annotation_text",
                "annotation_keys",
                "annotation_ids",
            ],
            "h",
        )
        homes: set[Any] = set()
        for table in ("annotations", "annotation_versions", "annotation_links", "annotation_text"):
            homes |= {
                row[0]
                for row in conn.execute(
                    f"SELECT DISTINCT tableoid::regclass::text FROM {table}"  # noqa: S608
                )
            }
        assert len({home.rsplit("_p", 1)[1] for home in homes}) == 1, homes


def test_head_rows_leave_room_on_their_pages_for_updates(postgres_url: str) -> None:
    with reeldb.connect(postgres_url) as db:
        options = db.store._pg.read(
            lambda conn: conn.execute(
                "SELECT DISTINCT array_to_string(reloptions, ',') FROM pg_class "
                "WHERE relname ~ '^annotations_p[0-9]+$' AND relkind = 'r'"
            ).fetchall()
        )
    assert options == [("fillfactor=80",)]


def test_statistics_are_gathered_as_annotations_grow(postgres_url: str) -> None:
    # Autovacuum may be off (it is on the test machines) and never analyzes a partitioned
    # parent: without statistics a namespace of a million annotations plans like an empty one.
    def stats(db: Any) -> tuple[float, int]:
        def read(conn: Any) -> tuple[float, int]:
            tuples = conn.execute(
                "SELECT sum(greatest(reltuples, 0)) FROM pg_class "
                "WHERE relname ~ '^annotations_p' AND relkind = 'r'"
            ).fetchone()[0]
            versions = conn.execute(
                "SELECT sum(greatest(reltuples, 0)) FROM pg_class "
                "WHERE relname ~ '^annotation_versions_p' AND relkind = 'r'"
            ).fetchone()[0]
            assert versions == tuples  # one version each here
            # Pages merged now from the full-text index's pending list (none: it was merged).
            pending = conn.execute(
                "SELECT coalesce(sum(gin_clean_pending_list(i.inhrelid::regclass)), 0) "
                "FROM pg_inherits i WHERE i.inhparent = 'annotation_text_lexemes'::regclass"
            ).fetchone()[0]
            return float(tuples), int(pending)

        found: tuple[float, int] = db.store._pg.read(read)
        return found

    with reeldb.connect(postgres_url) as db:
        db.create_namespace("vision")
        db.add_schema("vision", {"name": "NOTE", "properties": {"comment": {"type": "text"}}})
        note = {"type": "NOTE", "associations": [{"type": "VIDEO", "id": "v"}]}
        db.annotations.create_many("vision", [{**note, "data": {"comment": "a"}}] * 100)
        assert stats(db)[0] == 0  # not yet: the first threshold is 500 annotations
        db.annotations.create_many("vision", [{**note, "data": {"comment": "glove"}}] * 450)
        assert stats(db) == (550, 0)
        assert len(db.annotations.search("vision", text="glove", limit=500).items) == 450


def _versions_of_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each search row as stored, with the transaction that wrote it (``xmin``)."""
    with psycopg.connect(url) as conn:
        return {
            "links": conn.execute(
                "SELECT key, t0, t1, xmin::text FROM annotation_links ORDER BY key"
            ).fetchall(),
            "text": conn.execute(
                "SELECT field, words, xmin::text FROM annotation_text ORDER BY field"
            ).fetchall(),
            "totals": conn.execute(
                "SELECT (SELECT sum(rows) FROM annotation_text_totals), "
                "(SELECT count(*) FROM annotation_text)"
            ).fetchall(),
        }


def _heads_as_stored(url: str) -> list[tuple[Any, ...]]:
    """Head rows' search columns, with the transaction that wrote each (``xmin``)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT t0, t1, x0, facets::text, xmin::text FROM annotations ORDER BY pk"
        ).fetchall()


def test_an_update_rewrites_only_the_search_rows_that_change(postgres_url: str) -> None:
    store = load_store(postgres_url)
    try:
        store.create_namespace(NS, "", NOW)
        a = uuid7()
        store.put_annotations([write(a, time=(1, 2), texts={"comment": "red car"})])
        first = _versions_of_rows(postgres_url)
        # A new version with the same links, time and text (a backfilled keyword, say).
        store.put_annotations([write(a, 1, time=(1, 2), texts={"comment": "red car"})])
        kept = _versions_of_rows(postgres_url)
        assert kept == first
        # New text: its rows are rewritten, the links stay.
        store.put_annotations([write(a, 2, time=(1, 2), texts={"comment": "blue car"})])
        text = _versions_of_rows(postgres_url)
        assert text["links"] == first["links"]
        assert [r[1] for r in text["text"]] != [r[1] for r in first["text"]]
        assert text["text"][0][2] != first["text"][0][2]
        # Another time in the same minute moves the links only; in another minute, the text
        # too (its time tokens are the minutes it touches).
        store.put_annotations([write(a, 3, time=(2, 3), texts={"comment": "blue car"})])
        nudged = _versions_of_rows(postgres_url)
        assert [r[1:3] for r in nudged["links"]] == [(2.0, 3.0)]
        assert nudged["text"] == text["text"]
        store.put_annotations([write(a, 4, time=(600, 601), texts={"comment": "blue car"})])
        moved = _versions_of_rows(postgres_url)
        assert [r[1:3] for r in moved["links"]] == [(600.0, 601.0)]
        assert moved["text"][0][2] != text["text"][0][2]
        assert moved["totals"] == [(1, 1)]
        # A reindex of what is right rewrites nothing: no head row, link or text row.
        current = write(a, 5, time=(600, 601), texts={"comment": "blue car"})
        heads = _heads_as_stored(postgres_url)
        store.reindex_annotations([current])
        assert _versions_of_rows(postgres_url) == moved
        assert _heads_as_stored(postgres_url) == heads
        # Of rows lost or changed behind reeldb's back, it restores them.
        with psycopg.connect(postgres_url) as conn:
            conn.execute("DELETE FROM annotation_text")
            conn.execute("DELETE FROM annotation_links")
            conn.execute("UPDATE annotations SET x0 = 0.5, facets = '{\"n\": 1}'")
        store.reindex_annotations([current])
        restored = _versions_of_rows(postgres_url)
        for rows in ("text", "links"):
            assert [r[:-1] for r in restored[rows]] == [r[:-1] for r in moved[rows]]
        assert [r[:-1] for r in _heads_as_stored(postgres_url)] == [r[:-1] for r in heads]
        [hit] = pages(store, AnnotationQuery(NS, text=tuple(tokens("blue").split())))
        assert hit.id == a
        [hit] = pages(store, AnnotationQuery(NS, associations=(V1,), time=(600, 601)))
        assert hit.id == a
    finally:
        store.close()
