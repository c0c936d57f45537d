"""`AnnotationStore.annotation_columns`, the export's bulk read, on every backend.

Its pages, whatever their size, hold exactly what `annotation_history` holds: every version
of every annotation of the namespace, once.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import reeldb
from reeldb.store.base import AnnotationColumns

NS = "cols"
TAG = {
    "type": "TAG",
    "version": 0,
    "description": "A tag",
    "keys": {"properties": {"label": {"type": "string", "mandatory": True}}},
}


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return "memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'reel.db'}"


def rows_of(page: AnnotationColumns) -> list[tuple[Any, ...]]:
    return list(
        zip(
            page.ids,
            page.versions,
            page.type_names,
            page.type_versions,
            page.deleted,
            [datetime.fromisoformat(t) for t in page.created_at],
            page.created_by,
            page.bodies,
            strict=True,
        )
    )


def test_pages_hold_every_version_once(db_url: str) -> None:
    with reeldb.connect(db_url) as db:
        for ns in (NS, "other"):
            db.create_namespace(ns)
            db.add_schema(ns, dict(TAG))
        video = [{"type": "VIDEO", "id": "v"}]
        made = [db.annotations.create(NS, "TAG", video, {"label": str(i)}) for i in range(5)]
        db.annotations.update(NS, made[0].id, expected_version=1, data={"label": "b"})
        db.annotations.update(NS, made[0].id, expected_version=2, data={"label": "c"})
        db.annotations.delete(NS, made[3].id)
        db.annotations.create("other", "TAG", video, {"label": "elsewhere"})
        store = db.store
        history = store.annotation_history(NS, after=None, limit=100)
        want = sorted(
            (
                r.id.bytes,
                r.version,
                r.type_name,
                r.type_version,
                r.deleted,
                r.created_at,
                r.created_by,
                r.body,
            )
            for r in history
        )
        assert len(want) == 8
        for limit in (1, 2, 3, 100):
            got: list[tuple[Any, ...]] = []
            after = None
            while True:
                page = store.annotation_columns(NS, after=after, limit=limit)
                if not page.ids:
                    assert page.cursor is None
                    break
                assert len(page.ids) <= limit
                got += rows_of(page)
                after = page.cursor
            assert sorted(got) == want, limit
            # each annotation's versions together, oldest first
            order = [(row[0], row[1]) for row in got]
            assert all(a[1] < b[1] for a, b in zip(order, order[1:], strict=False) if a[0] == b[0])
        bare = store.annotation_columns(NS, after=None, limit=100, bodies=False)
        assert bare.bodies == () and sorted(bare.versions) == sorted(r[1] for r in want)
        assert len(store.annotation_columns("other", after=None, limit=100).ids) == 1
        assert store.annotation_columns("nobody", after=None, limit=10) == AnnotationColumns()
