"""A brute-force annotation search: what `Annotations.search` and `.timeline` must answer.

The tests keep their own model of the live annotations (`Item`) and evaluate a `Search`
over all of them in plain Python. The semantics, written down once here:

* every condition given must hold;
* type: with ``subtypes`` an annotation matches when its type's lineage (the type and every
  ancestor, as the registry resolved it) holds ``NAME`` at the version asked for (any version
  when None); without ``subtypes`` only its own type counts;
* associations: every one asked for is among the annotation's;
* time and box: closed intervals compared in IEEE doubles (``x + w``, ``y + h`` and frame
  times rounded to the nearest double); ``overlaps``/``intersects`` means
  ``a.start <= q.end and a.end >= q.start`` on each axis, ``within`` means
  ``q.start <= a.start and a.end <= q.end``; an annotation without a time (box) never
  matches a time (box) condition;
* text: the query's Porter stems appear consecutively in one text field of the annotation's
  type (one of ``text_fields`` when given), `reeldb.query.fulltext.contains_phrase`;
* where: a comparison with a missing value is false (``!=`` too); ``not`` negates;
* order: ``time`` is (start, creation) with untimed annotations last; ``-time`` its reverse;
  ``created`` is the order the annotations were first created; ``-created`` its reverse;
  ``relevance`` is not checked here (only the set).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from uuid import UUID

from reeldb.query.fulltext import contains_phrase

__all__ = [
    "Cmp",
    "In",
    "Item",
    "Not",
    "Search",
    "Timeline",
    "TypeInfo",
    "Where",
    "box_of",
    "expected",
    "expected_timeline",
    "matches",
    "render",
    "time_of",
]


@dataclass(frozen=True)
class TypeInfo:
    """What search reads of one annotation type version.

    Attributes:
        name: The type name.
        version: The type version.
        lineage: ``(name, version)`` of the type and every ancestor.
        time: The property holding the time range, if any.
        box: The property holding the bounding box, if any.
        texts: The text properties.
    """

    name: str
    version: int
    lineage: tuple[tuple[str, int], ...]
    time: str | None = None
    box: str | None = None
    texts: tuple[str, ...] = ()


@dataclass
class Item:
    """A live annotation as the test knows it.

    Attributes:
        id: Its id.
        seq: Its creation order (first version).
        type: Its current type version.
        associations: Its ``(type, id)`` associations.
        data: Its current data.
        version: Its current version number.
    """

    id: UUID
    seq: int
    type: TypeInfo
    associations: frozenset[tuple[str, str]]
    data: dict[str, Any]
    version: int = 1


@dataclass(frozen=True)
class Cmp:
    """``data.field op value``."""

    field: str
    op: str
    value: str | int | float


@dataclass(frozen=True)
class In:
    """``data.field in (values...)``."""

    field: str
    values: tuple[str | int, ...]


@dataclass(frozen=True)
class Not:
    """``not (item)``."""

    item: Where


Where = Cmp | In | Not


def render(where: Where) -> str:
    """The condition in the query language."""

    def literal(value: str | int | float) -> str:
        return f'"{value}"' if isinstance(value, str) else repr(value)

    if isinstance(where, Cmp):
        return f"data.{where.field} {where.op} {literal(where.value)}"
    if isinstance(where, In):
        return f"data.{where.field} in ({', '.join(literal(v) for v in where.values)})"
    return f"not ({render(where.item)})"


def _holds(where: Where, data: Mapping[str, Any]) -> bool:
    if isinstance(where, Not):
        return not _holds(where.item, data)
    value = data.get(where.field)
    if value is None:
        return False
    if isinstance(where, In):
        return any(_compare(value, "=", v) for v in where.values)
    return _compare(value, where.op, where.value)


def _compare(stored: Any, op: str, wanted: Any) -> bool:
    if isinstance(stored, str) != isinstance(wanted, str):
        return False
    results: dict[str, bool] = {
        "=": stored == wanted,
        "!=": stored != wanted,
        "<": stored < wanted,
        "<=": stored <= wanted,
        ">": stored > wanted,
        ">=": stored >= wanted,
    }
    return results[op]


@dataclass(frozen=True)
class Search:
    """One search request, as `Annotations.search` takes it."""

    type: tuple[str, int | None] | None = None
    subtypes: bool = True
    associations: tuple[tuple[str, str], ...] = ()
    time: tuple[float, float] | None = None
    time_op: str = "overlaps"
    box: tuple[float, float, float, float] | None = None
    box_op: str = "intersects"
    text: str | None = None
    text_fields: tuple[str, ...] | None = None
    where: Where | None = None
    sort: str = "time"
    limit: int = 100

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `Annotations.search` (without namespace and cursor)."""
        out: dict[str, Any] = {"sort": self.sort, "limit": self.limit}
        if self.type is not None:
            name, version = self.type
            out["type"] = name if version is None else f"{name}@{version}"
            out["subtypes"] = self.subtypes
        if self.associations:
            out["associations"] = [{"type": t, "id": i} for t, i in self.associations]
        if self.time is not None:
            out["time"], out["time_op"] = self.time, self.time_op
        if self.box is not None:
            out["box"], out["box_op"] = self.box, self.box_op
        if self.text is not None:
            out["text"] = self.text
            if self.text_fields is not None:
                out["text_fields"] = list(self.text_fields)
        if self.where is not None:
            out["where"] = render(self.where)
        return out


@dataclass(frozen=True)
class Timeline:
    """One `Annotations.timeline` request."""

    association: tuple[str, str]
    start: float | None = None
    end: float | None = None
    type: str | None = None
    limit: int = 1000


def time_of(item: Item) -> tuple[float, float] | None:
    """The annotation's time range in seconds (nearest doubles), or None."""
    if item.type.time is None:
        return None
    value = item.data.get(item.type.time)
    if value is None:
        return None
    if "start_frame" in value:
        rate = Fraction(str(value["rate"]))
        return (
            float(Fraction(value["start_frame"]) / rate),
            float(Fraction(value["end_frame"]) / rate),
        )
    return float(value["start"]), float(value["end"])


def box_of(item: Item) -> tuple[float, float, float, float] | None:
    """The annotation's box as ``(x0, y0, x1, y1)`` in doubles, or None."""
    if item.type.box is None:
        return None
    value = item.data.get(item.type.box)
    if value is None:
        return None
    x, y, w, h = (float(value[k]) for k in ("x", "y", "w", "h"))
    return x, y, x + w, y + h


def _overlaps(low: float, high: float, start: float, end: float, op: str) -> bool:
    if op == "within":
        return start <= low and high <= end
    return low <= end and high >= start


def matches(item: Item, search: Search) -> bool:
    """Whether a live annotation answers a search."""
    if search.type is not None:
        name, version = search.type
        own = item.type.lineage if search.subtypes else item.type.lineage[:1]
        if not any(n == name and (version is None or v == version) for n, v in own):
            return False
    if not set(search.associations) <= item.associations:
        return False
    if search.time is not None:
        span = time_of(item)
        if span is None or not _overlaps(*span, *search.time, search.time_op):
            return False
    if search.box is not None:
        box = box_of(item)
        if box is None:
            return False
        x, y, w, h = search.box
        op = "within" if search.box_op == "within" else "overlaps"
        if not (
            _overlaps(box[0], box[2], x, x + w, op) and _overlaps(box[1], box[3], y, y + h, op)
        ):
            return False
    if search.text is not None:
        fields = [
            name
            for name in item.type.texts
            if search.text_fields is None or name in search.text_fields
        ]
        if not any(
            isinstance(item.data.get(name), str) and contains_phrase(item.data[name], search.text)
            for name in fields
        ):
            return False
    return search.where is None or _holds(search.where, item.data)


def _time_key(item: Item) -> tuple[float, int]:
    span = time_of(item)
    return (math.inf if span is None else span[0], item.seq)


def order(items: Iterable[Item], sort: str) -> list[Item]:
    """Items in the order of a sort (``relevance``: by creation, for a stable listing)."""
    if sort == "time":
        return sorted(items, key=_time_key)
    if sort == "-time":
        return sorted(items, key=_time_key, reverse=True)
    if sort == "-created":
        return sorted(items, key=lambda i: i.seq, reverse=True)
    return sorted(items, key=lambda i: i.seq)


def expected(items: Iterable[Item], search: Search) -> list[UUID]:
    """The ids a search must return, in order (for ``relevance``: in creation order)."""
    return [i.id for i in order((i for i in items if matches(i, search)), search.sort)]


def expected_timeline(items: Iterable[Item], timeline: Timeline) -> list[UUID]:
    """The ids a timeline must return, by (start, creation): timed annotations of the
    association (and of ``type`` or a subtype, any version) overlapping the window."""
    start = 0.0 if timeline.start is None else float(timeline.start)
    end = math.inf if timeline.end is None else float(timeline.end)
    search = Search(
        type=None if timeline.type is None else (timeline.type, None),
        associations=(timeline.association,),
    )
    found = []
    for item in items:
        span = time_of(item)
        if span is None or not matches(item, search):
            continue
        if span[0] <= end and span[1] >= start:
            found.append(item)
    return [i.id for i in order(found, "time")]
