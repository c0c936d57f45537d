"""`Annotations.matcher`: a ``where`` condition tested in Python agrees with search's SQL.

A reprocessing job filters the annotations of a type with the same conditions a search takes
(``where`` on ``data.*``). The job tests each version it reads in Python; the stores test
the condition in SQL over facets and full-text rows. Both must pick the same annotations:
here every condition of a varied list, on annotations with varied and missing values, is
run both ways.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

import reeldb
from reeldb.errors import QueryError

NS = "films"
SHOT = {
    "name": "SHOT",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {
        "label": {"type": "keyword"},
        "score": {"type": "int"},
        "ratio": {"type": "float"},
        "caption": {"type": "text"},
        "scene": {"type": "time_range"},
    },
}
CLOSE_UP = {"name": "CLOSE_UP", "extends": ["SHOT"], "properties": {"face": {"type": "keyword"}}}
WORDS = ("heron", "herons", "crane", "river", "lands", "landing", "grey", "sky")
CONDITIONS = (
    'data.label = "cat"',
    'data.label != "cat"',
    'data.label in ("cat", "owl")',
    'not data.label = "dog"',
    "data.score < 5",
    "data.score >= 5 and data.ratio <= 0.5",
    "data.score = 3 or data.ratio > 0.9",
    "data.ratio != 0.25",
    "data.caption contains heron",
    'data.caption contains "heron lands"',
    "data.caption contains landing",
    'data.caption = "grey sky"',
    "data.temporal overlaps(10, 20)",
    "data.scene overlaps(0, 0.5)",
    "not data.temporal overlaps(0, 30)",
    "data.spatial intersects(0.2, 0.2, 0.3, 0.3)",
    "data.spatial within(0, 0, 0.6, 0.6)",
    '(data.label = "cat" or data.caption contains crane) and data.spatial within(0, 0, 1, 1)',
)


def _data(rng: random.Random) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if rng.random() < 0.8:
        data["label"] = rng.choice(["cat", "dog", "owl"])
    if rng.random() < 0.8:
        data["score"] = rng.randrange(10)
    if rng.random() < 0.7:
        data["ratio"] = rng.choice([0.25, 0.5, rng.random()])
    if rng.random() < 0.7:
        data["caption"] = rng.choice(
            ["grey sky", " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 5)))]
        )
    if rng.random() < 0.7:
        start = rng.uniform(0, 40)
        data["temporal"] = {"start": start, "end": start + rng.uniform(0, 5)}
    if rng.random() < 0.5:
        data["scene"] = {"start": rng.uniform(0, 1), "end": rng.uniform(1, 2)}
    if rng.random() < 0.7:
        x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.8)
        data["spatial"] = {"x": x, "y": y, "w": rng.uniform(0, 0.2), "h": rng.uniform(0, 0.2)}
    return data


@pytest.fixture(scope="module")
def db() -> Iterator[reeldb.Database]:
    with reeldb.connect("memory:") as database:
        database.create_namespace(NS)
        database.add_schema(NS, SHOT)
        database.add_schema(NS, CLOSE_UP)
        rng = random.Random(5)
        items = [
            {
                "type": "CLOSE_UP" if n % 5 == 0 else "SHOT",
                "associations": [{"type": "VIDEO", "id": "v1"}],
                "data": _data(rng) | ({"face": "x"} if n % 5 == 0 else {}),
            }
            for n in range(150)
        ]
        database.annotations.create_many(NS, items)
        yield database


def _search(db: reeldb.Database, where: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        page = db.annotations.search(NS, type="SHOT", where=where, limit=100, cursor=cursor)
        found |= {str(h.annotation.id) for h in page.items}
        cursor = page.next_cursor
        if cursor is None:
            return found


@pytest.mark.parametrize("where", CONDITIONS)
def test_the_matcher_picks_what_search_finds(db: reeldb.Database, where: str) -> None:
    matches = db.annotations.matcher(NS, "SHOT", where)
    records = [
        db.store.get_annotation(NS, ident)
        for ident in db.store.annotation_ids(NS, after=None, limit=1000)
    ]
    picked = {str(r.id) for r in records if matches(r)}
    assert picked == _search(db, where)
    assert 0 < len(picked) < len(records), "a condition that tells nothing apart"


def test_a_condition_that_does_not_fit_the_type_is_refused(db: reeldb.Database) -> None:
    for where, message in (
        ("data.nothing = 1", "nothing"),
        ("data.label contains cat", "contains needs a text field"),
        ("count(event) > 1", "count"),
    ):
        with pytest.raises(QueryError, match=message):
            db.annotations.matcher(NS, "SHOT", where)
