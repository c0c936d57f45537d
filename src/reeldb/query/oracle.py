"""The reference evaluator: a query over one decoded document, in plain Python.

It defines what a query means, and the tests hold every backend's index to it. It walks the
document as *rows*: one per region of each event (one per event without regions), and one per
track, component or document that has nothing below it, each row carrying its whole context.

* A comparison with a missing value is false (``!=`` too); ``not`` negates its operand.
* Numbers compare as numbers (a stored ``true`` is not 1); strings by code point; timestamps
  as instants.
* Time ranges and boxes are closed and compared in IEEE doubles, as an SQL backend does:
  times converted from exact seconds or frames to the nearest double, ``x + w`` and
  ``y + h`` computed in doubles.
* ``count(event ...)`` counts the events of the row's track (or component) for which the
  condition holds on some row of the event.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reeldb.model.timing import FrameRate, TimeRange
from reeldb.query.ast import (
    And,
    BoxTest,
    Compare,
    Contains,
    Count,
    Expr,
    Field,
    In,
    Not,
    Or,
    Overlaps,
    Scalar,
    holds,
)
from reeldb.query.check import parse_timestamp
from reeldb.query.fulltext import contains_phrase

__all__ = ["EventMatch", "document_matches", "matching_events"]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Row:
    asset: dict[str, Any] | None
    track: dict[str, Any] | None
    component: dict[str, Any] | None
    event: dict[str, Any] | None
    region: dict[str, Any] | None
    rate: FrameRate | None
    t: int = -1
    c: int = -1
    e: int = -1
    r: int = -1


@dataclass(frozen=True, slots=True)
class EventMatch:
    """An event that matched a document-level query.

    Attributes:
        path: ``(track, component, event)`` indexes.
        start: Start of the event in seconds (as a double).
        end: End of the event in seconds (as a double).
        regions: Indexes of the event's regions that matched (all of them when the query
            names no region field).
    """

    path: tuple[int, int, int]
    start: float
    end: float
    regions: tuple[int, ...]


def _rows(data: dict[str, Any]) -> Iterator[_Row]:
    asset = data.get("asset")
    tracks = data.get("tracks") or []
    if not tracks:
        yield _Row(asset, None, None, None, None, None)
    for t, track in enumerate(tracks):
        rate = _rate(track)
        components = track.get("components") or []
        if not components:
            yield _Row(asset, track, None, None, None, rate, t)
        for c, component in enumerate(components):
            yield from _component_rows(asset, track, component, rate, t, c)


def _component_rows(
    asset: Any, track: dict[str, Any], component: dict[str, Any], rate: Any, t: int, c: int
) -> Iterator[_Row]:
    events = component.get("events") or []
    if not events:
        yield _Row(asset, track, component, None, None, rate, t, c)
    for e, event in enumerate(events):
        yield from _event_rows(asset, track, component, event, rate, t, c, e)


def _event_rows(
    asset: Any,
    track: dict[str, Any],
    component: dict[str, Any],
    event: dict[str, Any],
    rate: Any,
    t: int,
    c: int,
    e: int,
) -> Iterator[_Row]:
    regions = event.get("regions") or []
    if not regions:
        yield _Row(asset, track, component, event, None, rate, t, c, e)
    for r, region in enumerate(regions):
        yield _Row(asset, track, component, event, region, rate, t, c, e, r)


def _rate(track: dict[str, Any]) -> FrameRate | None:
    spec = track.get("frame_rate")
    return None if spec is None else FrameRate.parse(spec)


def document_matches(
    expr: Expr, data: dict[str, Any], timestamps: Collection[tuple[str, str]] = ()
) -> bool:
    """Whether a DataStore-level filter selects a document.

    Args:
        expr: The query (checked against the schema).
        data: The decoded document (valid for its schema).
        timestamps: The ``(level, name)`` of ``timestamp`` fields: compared as instants.

    Returns:
        True if some row of the document satisfies the query.
    """
    evaluate = _Evaluator(frozenset(timestamps))
    return any(evaluate(expr, row) for row in _rows(data))


def matching_events(
    expr: Expr, data: dict[str, Any], timestamps: Collection[tuple[str, str]] = ()
) -> list[EventMatch]:
    """The events a document-level query selects, in time order.

    Args:
        expr: The query.
        data: The decoded document.
        timestamps: As for `document_matches`.

    Returns:
        Each matching event once, ordered by start, end, then position in the document.
    """
    evaluate = _Evaluator(frozenset(timestamps))
    found: dict[tuple[int, int, int], list[int]] = {}
    times: dict[tuple[int, int, int], tuple[float, float]] = {}
    for row in _rows(data):
        if row.event is None or not evaluate(expr, row):
            continue
        path = (row.t, row.c, row.e)
        if path not in found:
            found[path] = []
            span = TimeRange.from_json(row.event["time_range"], row.rate)
            times[path] = (float(span.start), float(span.end))
        if row.r >= 0:
            found[path].append(row.r)
    matches = [EventMatch(path, *times[path], tuple(regions)) for path, regions in found.items()]
    return sorted(matches, key=lambda m: (m.start, m.end, m.path))


class _Evaluator:
    def __init__(self, timestamps: frozenset[tuple[str, str]]) -> None:
        self.timestamps = timestamps

    def __call__(self, expr: Expr, row: _Row) -> bool:
        if isinstance(expr, And):
            return all(self(item, row) for item in expr.items)
        if isinstance(expr, Or):
            return any(self(item, row) for item in expr.items)
        if isinstance(expr, Not):
            return not self(expr.item, row)
        if isinstance(expr, Count):
            return holds(self.count(expr, row), expr.op, expr.value)
        value = _value(expr.field, row)
        if value is _MISSING:
            return False
        if isinstance(expr, Compare | In):
            instant = (expr.field.level, expr.field.name) in self.timestamps
            if isinstance(expr, Compare):
                return _matches(value, expr.op, expr.value, instant=instant)
            return any(_matches(value, "=", v, instant=instant) for v in expr.values)
        if isinstance(expr, Contains):
            return isinstance(value, str) and contains_phrase(value, expr.text)
        if isinstance(expr, Overlaps):
            span = _span(value, row)
            if span is None:
                return False
            return span[0] <= float(expr.end) and float(expr.start) <= span[1]
        return _box_test(expr, value)

    def count(self, expr: Count, row: _Row) -> int:
        if row.track is None or (expr.scope == "component" and row.component is None):
            return 0
        if expr.scope == "component":
            components = [(row.c, row.component)]
        else:
            components = list(enumerate(row.track.get("components") or []))
        n = 0
        for c, component in components:
            assert component is not None
            for e, event in enumerate(component.get("events") or []):
                if expr.where is None:
                    n += 1
                    continue
                rows = _event_rows(row.asset, row.track, component, event, row.rate, row.t, c, e)
                n += any(self(expr.where, r) for r in rows)
        return n


def _value(field: Field, row: _Row) -> Any:
    obj = getattr(row, field.level)
    if obj is None:
        return _MISSING
    value = obj.get(field.name)
    return _MISSING if value is None else value


def _span(value: Any, row: _Row) -> tuple[float, float] | None:
    if not isinstance(value, dict):
        return None
    exact = TimeRange.from_json(value, row.rate)
    return float(exact.start), float(exact.end)


def _box_test(expr: BoxTest, value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    x, y, w, h = (float(value[k]) for k in ("x", "y", "w", "h"))
    qx, qy, qw, qh = (float(v) for v in (expr.box.x, expr.box.y, expr.box.w, expr.box.h))
    if expr.op == "intersects":
        return x <= qx + qw and qx <= x + w and y <= qy + qh and qy <= y + h
    return qx <= x and x + w <= qx + qw and qy <= y and y + h <= qy + qh


def _matches(stored: Any, op: str, wanted: Scalar, *, instant: bool) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        if not (isinstance(wanted, bool) and isinstance(stored, bool)):
            return False
        return holds(stored, op, wanted) if op in ("=", "!=") else False
    if isinstance(wanted, str):
        if not isinstance(stored, str):
            return False
        if instant:
            when, at = parse_timestamp(stored), parse_timestamp(wanted)
            return when is not None and at is not None and holds(when, op, at)
        return holds(stored, op, wanted)
    if not isinstance(stored, int | float) or (isinstance(stored, float) and math.isnan(stored)):
        return False
    number = float(wanted) if isinstance(wanted, Decimal) else wanted
    if isinstance(stored, int) and not -(2**63) <= stored < 2**63:
        stored = float(stored)  # beyond 64 bits, numbers are doubles
    return holds(stored, op, number)
