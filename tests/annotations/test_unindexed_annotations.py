"""A reindex checks a page of annotations against what their versions derive, in bulk.

`AnnotationStore.unindexed_annotations` reads a page of head rows with their current
versions, derives each version's search rows, and compares them with the stored ones (head
row, full text, time and box, links) without writing or locking: an annotation whose rows
are all right is counted, not returned, and costs the job no write. Each kind of damage a
reindex repairs must make its annotation come back; anything a job must decide itself
(deleted, changed since the snapshot, another type) comes back as `annotation_heads`
returns it. On SQLite and on PostgreSQL (whose check is the reindex's write run read-only).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

import reeldb
from reeldb.store.base import AnnotationStore, SearchRows
from reeldb.testing import PostgresUnavailable, postgres_schema

NS = "rows"
VIDEO = {"type": "VIDEO", "id": "v1"}
SHOT = {
    "name": "SHOT",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {"caption": {"type": "text"}, "source": {"type": "keyword"}},
}
COUNT = 6


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reel.db'}"
        return
    try:
        with postgres_schema() as found:
            yield found
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
def db(url: str) -> Iterator[reeldb.Database]:
    with reeldb.connect(url) as database:
        database.create_namespace(NS)
        database.add_schema(NS, SHOT)
        yield database


def shot(i: int, caption: str = "a heron lands") -> dict[str, Any]:
    return {
        "type": "SHOT",
        "associations": [VIDEO, {"type": "SHOW", "id": f"s{i % 2}"}],
        "data": {
            "temporal": {"start": 10.0 * i + 0.1, "end": 10.0 * i + 2.7},
            "spatial": {"x": 0.1 * i, "y": 0.2, "w": 0.05, "h": 0.3},
            "caption": caption,
        },
    }


def made(db: reeldb.Database) -> list[UUID]:
    """``COUNT`` annotations, in id order."""
    return sorted(a.id for a in db.annotations.create_many(NS, [shot(i) for i in range(COUNT)]))


def page(
    db: reeldb.Database,
    *,
    after: UUID | None = None,
    before: UUID | None = None,
    limit: int = 100,
    at: datetime | None = None,
    derive: Any = None,
) -> Any:
    return db.store.unindexed_annotations(
        NS,
        after=after,
        before=before,
        limit=limit,
        at=at,
        derive=derive or db.annotations.search_rows(NS),
    )


def damage(url: str, target: UUID, statements: list[str]) -> None:
    """Run statements on the database behind reeldb's back, ``?`` bound to the target's pk."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            pk = conn.execute(
                "SELECT pk FROM annotations WHERE id = ?", (target.bytes,)
            ).fetchone()[0]
            for statement in statements:
                conn.execute(statement, (pk,) * statement.count("?"))
        conn.close()
        return
    with psycopg.connect(url, autocommit=True) as pg:
        found = pg.execute("SELECT pk FROM annotations WHERE id = %s", (target,)).fetchone()
        assert found is not None
        for statement in statements:
            pg.execute(statement.replace("?", "%s"), (found[0],) * statement.count("?"))


def test_a_page_of_indexed_annotations_is_counted_and_not_returned(db: reeldb.Database) -> None:
    ids = made(db)
    found = page(db)
    assert (found.pairs, found.indexed, found.last) == ([], COUNT, ids[-1])
    assert page(db, after=ids[-1]).last is None


DAMAGE = {  # each kind of damage: the statements on SQLite and on PostgreSQL (None: no such row)
    "box moved": (
        ["UPDATE annotation_space SET x0 = 5, x1 = 6 WHERE pk = ?"],
        ["UPDATE annotations SET x0 = 5, x1 = 6 WHERE pk = ?"],
    ),
    "no R*Tree row": (["DELETE FROM annotation_space WHERE pk = ?"], None),
    "links lost": (["DELETE FROM annotation_links WHERE pk = ?"],) * 2,
    "one of two links lost": (
        [
            "DELETE FROM annotation_links WHERE pk = ? AND key = (SELECT max(key) "
            "FROM annotation_links WHERE pk = ?)"
        ],
    )
    * 2,
    "a link's end moved": (["UPDATE annotation_links SET t1 = t1 + 1 WHERE pk = ?"],) * 2,
    "text lost": (
        ["DELETE FROM annotation_text WHERE rowid >> 12 = ?"],
        ["DELETE FROM annotation_text WHERE pk = ?"],
    ),
    "text changed": (
        ["UPDATE annotation_text SET body = 'crane' WHERE rowid >> 12 = ?"],
        ["UPDATE annotation_text SET words = 'crane' WHERE pk = ?"],
    ),
    "lexemes changed": (
        None,
        ["UPDATE annotation_text SET lexemes = to_tsvector('simple', 'crane') WHERE pk = ?"],
    ),
    "facets": (
        ["UPDATE annotations SET facets = '{}' WHERE pk = ?"],
        ["UPDATE annotations SET facets = '{}'::jsonb WHERE pk = ?"],
    ),
    "words": (["UPDATE annotations SET words = ' crane ' WHERE pk = ?"], None),
    "end": (["UPDATE annotations SET t1 = t1 + 1 WHERE pk = ?"],) * 2,
    "box column": (["UPDATE annotations SET x1 = 0.99 WHERE pk = ?"],) * 2,
    "type": (["UPDATE annotations SET type_id = type_id + 100 WHERE pk = ?"],) * 2,
}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (backend, kind)
        for kind in sorted(DAMAGE)
        for n, backend in enumerate(("sqlite", "postgresql"))
        if DAMAGE[kind][n] is not None
    ],
    indirect=["url"],
)
def test_each_kind_of_damage_returns_its_annotation_until_it_is_reindexed(
    db: reeldb.Database, url: str, kind: str
) -> None:
    statements = DAMAGE[kind][0 if url.startswith("sqlite") else 1]
    assert statements is not None
    ids = made(db)
    target = ids[3]
    damage(url, target, statements)
    found = page(db)
    assert [(now.id, then.id) for now, then in found.pairs] == [(target, target)]
    assert (found.indexed, found.last) == (COUNT - 1, ids[-1])
    now, then = found.pairs[0]
    assert now == then and now.version == 1 and not now.deleted
    if kind != "type":  # (a head row of an unknown type is beyond what a reindex mends)
        db.annotations.reindex(NS, [now])
        assert (page(db).pairs, page(db).indexed) == ([], COUNT)


def test_what_the_job_decides_comes_back_as_annotation_heads_returns_it(
    db: reeldb.Database,
) -> None:
    ids = made(db)
    at = datetime.now(UTC)
    updated, deleted = ids[1], ids[4]
    db.annotations.update(NS, updated, expected_version=1, data={**shot(1)["data"], "source": "x"})
    db.annotations.delete(NS, deleted, expected_version=1)
    created = db.annotations.create_many(NS, [shot(9)])[0].id
    found = page(db, at=at)
    heads = db.store.annotation_heads(NS, after=None, limit=100, at=at)
    expected = [pair for pair in heads if pair[0].id in (updated, deleted)]
    assert found.pairs == expected
    assert [(now.version, then.version) for now, then in found.pairs] == [(2, 1), (2, 1)]
    assert found.indexed == COUNT - 2  # the new one is not in the round: not counted
    assert found.last == max(*ids, created)
    # Without an instant, the update and the new annotation are simply indexed.
    assert [now.id for now, _ in page(db).pairs] == [deleted]
    assert page(db).indexed == COUNT


def test_a_page_keeps_to_its_bounds_and_limit(db: reeldb.Database) -> None:
    ids = made(db)
    found = page(db, after=ids[0], before=ids[4])
    assert (found.indexed, found.last) == (3, ids[3])
    found = page(db, after=ids[0], limit=2)
    assert (found.indexed, found.last) == (2, ids[2])
    assert page(db, after=ids[2], before=ids[3]).last is None


def test_a_version_derive_leaves_alone_is_returned(db: reeldb.Database) -> None:
    ids = made(db)
    derive = db.annotations.search_rows(NS)
    skip = db.store.get_annotation(NS, ids[2]).body

    def some(name: str, version: int, body: bytes) -> SearchRows | None:
        return None if body == skip else derive(name, version, body)

    found = page(db, derive=some)
    assert [now.id for now, _ in found.pairs] == [ids[2]]
    assert found.indexed == COUNT - 1


def test_the_default_checks_nothing_and_returns_the_page_as_annotation_heads(
    db: reeldb.Database,
) -> None:
    ids = made(db)
    found = AnnotationStore.unindexed_annotations(
        db.store,
        NS,
        after=ids[0],
        before=ids[5],
        limit=100,
        at=None,
        derive=db.annotations.search_rows(NS),
    )
    heads = db.store.annotation_heads(NS, after=ids[0], limit=100, at=None)
    assert found.pairs == heads[:4]
    assert (found.indexed, found.last) == (0, ids[4])
