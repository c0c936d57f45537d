"""Where the SQLite compiler asks the R*Tree of events (time, and the box of their regions).

Correctness (the same answers as the oracle) is `test_oracle_equivalence`'s; these pin down
which plans are offered, so that a box test never forces a large R*Tree probe on a query that
a B-tree answers better.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reeldb.index.model import Generation
from reeldb.index.rows import columns_for
from reeldb.index.sqlite import _Compiler
from reeldb.query import check_query, parse_query, searchable_fields

FIELDS = searchable_fields(
    {
        "event": {"label": {"type": "keyword"}},
        "region": {"person": {"type": "keyword"}},
    }
)
GEN = Generation(7, "g1", "active", tuple(columns_for(FIELDS)), 0, 0, True, datetime.now(UTC))
BOX = "region.bounding_box intersects(0, 0, 0.1, 0.1)"
WINDOW = "event.time_range overlaps(10, 20)"


def _sql(text: str, *, span: tuple[int, int] | None = None, space: bool = True) -> str:
    expr = parse_query(text)
    check_query(expr, FIELDS)
    where, params = _Compiler(GEN, span, space=space).compile(expr, "r")
    assert where.count("?") == len(params)
    return where


@pytest.mark.parametrize(
    ("query", "probes"),
    [
        (BOX, ["x0 <= ?"]),  # nothing else leads: the R*Tree does
        (f"{BOX} and {WINDOW}", ["lo <= ? AND hi >= ? AND x0 <= ?"]),  # one probe for both
        (f'{BOX} and event.label = "face"', ["x0 <= ?"]),  # event B-trees serve r <= 0 only
        (f'{BOX} and region.person = "Ann"', []),  # the person B-tree leads
        (f'{BOX} and region.person in ("Ann", "Bo")', []),
        (WINDOW, ["lo <= ? AND hi >= ?)"]),
        (f'{WINDOW} and region.person = "Ann"', ["lo <= ? AND hi >= ?)"]),
        (f"not ({BOX} and {WINDOW})", ["lo <= ? AND hi >= ? AND x0 <= ?"]),
        (f"{BOX} or {WINDOW}", ["x0 <= ?", "lo <= ? AND hi >= ?)"]),
    ],
)
def test_filters(query: str, probes: list[str]) -> None:
    sql = _sql(query)
    assert sql.count("_time WHERE") == len(probes), sql
    for probe in probes:
        assert f"ix7_time WHERE {probe}" in sql


def test_a_document_level_box_needs_a_time_window_to_use_the_rtree() -> None:
    assert "_time" not in _sql(BOX, span=(1, 100))
    assert "_time WHERE lo <= ? AND hi >= ? AND x0 <= ?" in _sql(f"{BOX} and {WINDOW}", span=(1, 9))


def test_a_generation_with_time_only_never_probes_boxes() -> None:
    assert "x0" not in _sql(f"{BOX} and {WINDOW}", space=False).split("_time")[1]
    assert "_time" not in _sql(BOX, space=False)
