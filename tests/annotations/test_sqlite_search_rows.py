"""SQLite: an annotation write rewrites only the search rows that change.

An update that keeps an annotation's time, box, links and text leaves its R*Tree row, its
links and its FTS5 rows alone (each costs several times more to delete and insert again than
to compare); a reindex reads those rows back and rewrites the ones that differ from what the
current version derives, so it repairs damage and writes nothing where there is none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import reeldb
from reeldb.store.sqlite._annotations import _rtree_box

NS = "rows"
VIDEO = {"type": "VIDEO", "id": "v1"}
SHOT = {
    "name": "SHOT",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {"caption": {"type": "text"}, "source": {"type": "keyword"}},
}
DERIVED = ("annotation_space", "annotation_links", "annotation_text")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[reeldb.Database]:
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}") as database:
        database.create_namespace(NS)
        database.add_schema(NS, SHOT)
        yield database


def shot(i: int, caption: str = "a heron lands") -> dict[str, Any]:
    return {
        "type": "SHOT",
        "associations": [VIDEO],
        "data": {
            "temporal": {"start": 10.0 * i + 0.1, "end": 10.0 * i + 2.7},
            "spatial": {"x": 0.1 * i, "y": 0.2, "w": 0.05, "h": 0.3},
            "caption": caption,
        },
    }


def statements(db: reeldb.Database) -> list[str]:
    """Every statement the store's writer runs from now on."""
    seen: list[str] = []
    db.store._db._writer.set_trace_callback(seen.append)
    return seen


def touching(seen: list[str], tables: tuple[str, ...] = DERIVED) -> list[str]:
    return [
        s
        for s in seen
        if s.lstrip().split(" ", 1)[0] in {"INSERT", "DELETE", "UPDATE"}
        and not s.startswith("INSERT OR IGNORE")  # interning keys, types and fields
        and any(t in s for t in tables)
    ]


def ids(db: reeldb.Database, **search: object) -> set[UUID]:
    return {h.annotation.id for h in db.annotations.search(NS, limit=100, **search).items}


def test_an_update_that_keeps_time_box_links_and_text_rewrites_none_of_their_rows(
    db: reeldb.Database,
) -> None:
    made = db.annotations.create_many(NS, [shot(i) for i in range(3)])
    seen = statements(db)
    data = {**shot(1)["data"], "source": "backfill"}
    db.annotations.update(NS, made[1].id, expected_version=1, data=data)
    assert touching(seen) == []
    # The head row changes, but neither of its B-trees' columns: the narrow update.
    [head] = touching(seen, ("annotations ",))
    assert "t0" not in head and "type_id" not in head
    assert ids(db, type="SHOT", where='data.source = "backfill"') == {made[1].id}
    assert ids(db, text="heron", time=(10, 12), box=(0.1, 0.2, 0.01, 0.01)) == {made[1].id}


def test_an_update_that_moves_the_box_or_changes_the_text_rewrites_those_rows(
    db: reeldb.Database,
) -> None:
    made = db.annotations.create_many(NS, [shot(i) for i in range(3)])
    seen = statements(db)
    moved = shot(1, caption="a crane takes off")
    moved["data"]["spatial"] = {"x": 0.8, "y": 0.8, "w": 0.1, "h": 0.1}
    db.annotations.update(NS, made[1].id, expected_version=1, data=moved["data"])
    written = touching(seen)
    assert any("annotation_space" in s for s in written)
    assert any("annotation_text" in s for s in written)
    assert not any("annotation_links" in s for s in written)  # same video, same time
    assert ids(db, text="heron") == {made[0].id, made[2].id}
    assert ids(db, text="crane") == {made[1].id}
    assert ids(db, box=(0.85, 0.85, 0.01, 0.01)) == {made[1].id}
    assert made[1].id not in ids(db, box=(0.1, 0.3, 0.01, 0.01))


def test_a_reindex_repairs_damaged_rows_and_then_writes_nothing(
    db: reeldb.Database, tmp_path: Path
) -> None:
    made = db.annotations.create_many(NS, [shot(i) for i in range(4)])
    target = made[2].id
    everything = {a.id for a in made}
    assert ids(db, associations=[VIDEO]) == everything
    # Damage behind reeldb's back: the box moved away, the link and the text lost.
    with sqlite3.connect(tmp_path / "reel.db") as conn:
        pk = conn.execute("SELECT pk FROM annotations WHERE id = ?", (target.bytes,)).fetchone()[0]
        conn.execute("UPDATE annotation_space SET x0 = 5, x1 = 6 WHERE pk = ?", (pk,))
        conn.execute("DELETE FROM annotation_links WHERE pk = ?", (pk,))
        conn.execute("DELETE FROM annotation_text WHERE rowid >> 12 = ?", (pk,))
    conn.close()
    box = (0.2, 0.2, 0.01, 0.01)
    assert target not in ids(db, box=box)
    assert target not in ids(db, associations=[VIDEO], time=(20, 22))
    assert target not in ids(db, text="heron")

    records = [db.store.get_annotation(NS, a.id) for a in made]
    seen = statements(db)
    assert db.annotations.reindex(NS, records) == 4
    repaired = touching(seen)
    assert {t for t in DERIVED if any(t in s for s in repaired)} == set(DERIVED)
    assert ids(db, box=box) == {target}
    assert ids(db, associations=[VIDEO], time=(20, 22)) == {target}
    assert ids(db, text="heron") == everything

    seen.clear()
    assert db.annotations.reindex(NS, records) == 4
    assert touching(seen, (*DERIVED, "annotations ", "annotation_keys")) == []
    assert ids(db, text="heron", box=box, time=(20, 22)) == {target}


@pytest.mark.parametrize(
    "bounds",
    [
        (0.1, 2.7, 0.1, 0.15, 0.2, 0.5),
        (-3.3, -1.1, -0.7, 0.7, 1e-30, 3e38),
        (1e10 + 0.1, 1e10 + 0.2, -5e-8, 5e-8, 123456.789, 123456.79),
        (4.0, 4.0, 0.0, 0.0, -0.0, 1.0),
        (1e39, 2e39, -1e300, 1e300, 3.4028235e38, 3.4028236e38),  # beyond 32 bits
    ],
)
def test_rtree_rounding_is_what_sqlite_stores(bounds: tuple[float, ...]) -> None:
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE VIRTUAL TABLE s USING rtree(pk, t0, t1, x0, x1, y0, y1)")
        conn.execute("INSERT INTO s VALUES (1, ?, ?, ?, ?, ?, ?)", bounds)
        stored = conn.execute("SELECT t0, t1, x0, x1, y0, y1 FROM s").fetchone()
    conn.close()
    assert _rtree_box(bounds) == stored
