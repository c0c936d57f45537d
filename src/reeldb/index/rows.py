"""A document as index rows: the backend-neutral half of indexing.

A document is cut into the rows `reeldb.query.oracle` evaluates queries on: one per region
of each event (one per event without regions), and one per track, component or document
with nothing below it. Every row carries the values of every searchable field of its
context, converted once for comparison:

* strings (``text``, ``keyword``, ``string``, ``enum``) as ``str``; numbers as ``int`` or
  ``float`` (a boolean is not a number); booleans as ``0``/``1``; timestamps as integer
  microseconds since the epoch (UTC);
* time ranges as two doubles (start, end), converted from exact seconds or frames;
* boxes as four doubles ``x0, y0, x1, y1`` with ``x1 = x + w`` and ``y1 = y + h`` computed
  in doubles;
* a value of another type, or none, as ``None`` (missing).

Text for full-text search is kept per *node* (the asset, a track, a component, an event or a
region), not per row, as the Porter stems of its words.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import orjson

from reeldb.model.timing import FrameRate, TimeRange
from reeldb.query.ast import LEVELS
from reeldb.query.check import FieldInfo, parse_timestamp
from reeldb.query.fulltext import stems

__all__ = [
    "Column",
    "ChunkPacker",
    "DocumentRows",
    "RowCutter",
    "column_width",
    "columns_for",
    "document_rows",
    "space_column",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_WIDTH: Final = {"time_range": 2, "bounding_box": 4}


def column_width(kind: str) -> int:
    """How many values a field of this type takes in a row (a time range 2, a box 4).

    Args:
        kind: The reeldb type.

    Returns:
        The width.
    """
    return _WIDTH.get(kind, 1)


_SEARCHABLE: Final = frozenset(
    {"text", "keyword", "string", "enum", "int", "float", "bool", "timestamp", "time_range"}
    | {"bounding_box"}
)


@dataclass(frozen=True, slots=True)
class Column:
    """One searchable field and where its values sit in a row.

    Attributes:
        level: The level.
        name: The property name.
        type: Its reeldb type.
        index: Position of its first value in `Row.values`.
        width: How many values it takes (2 for a time range, 4 for a box, else 1).
    """

    level: str
    name: str
    type: str
    index: int
    width: int


def columns_for(fields: Mapping[tuple[str, str], FieldInfo]) -> list[Column]:
    """The columns of a DataStore's rows, in a stable order (level, then name).

    Args:
        fields: From `reeldb.query.searchable_fields`.

    Returns:
        One column per indexed, searchable field.
    """
    order = {level: i for i, level in enumerate(LEVELS)}
    keys = sorted(
        (key for key, info in fields.items() if info.indexed and info.type in _SEARCHABLE),
        key=lambda key: (order[key[0]], key[1]),
    )
    columns, index = [], 0
    for level, name in keys:
        kind = fields[level, name].type
        width = column_width(kind)
        columns.append(Column(level, name, kind, index, width))
        index += width
    return columns


@dataclass(frozen=True, slots=True)
class DocumentRows:
    """A document cut into rows.

    Attributes:
        rows: ``(t, c, e, r, t0, c0, e0, k, ko, kl, *values)`` per row: the track,
            component, event and region indexes (-1 where the row has none), the offsets
            (within this document's rows) of the first row of its track, component and
            event (``None`` where it has none), the chunk (within this document's chunks)
            holding its event with the event's byte offset and length in it (``None`` if
            none), then the column values. A backend adds its own bases to the offsets as it
            inserts, so the rows are bound as they are.
        events: ``(offset of the event's first row, box)`` per event, the box
            ``(x0, x1, y0, y1)`` around its regions' ``bounding_box`` values (None if none).
        texts: ``(row offset of the node's first row, level, {name: stems})`` per node with
            text: the stems joined by spaces.
        chunks: The events, in chunks of consecutive events of one component of at most
            ``chunk_bytes`` (or one event): ``(head, events)``, the head being the JSON of
            ``{"track": ..., "component": ...}`` (their attributes without their lists) and
            ``events`` the events' JSON, comma-separated. A document-level query reads only
            the bytes of the events it returns, never the whole document.
    """

    rows: list[tuple[Any, ...]]
    events: list[tuple[int, tuple[float, float, float, float] | None]]
    texts: list[tuple[int, str, dict[str, str]]]
    chunks: list[tuple[bytes, bytes]]


Extractor = Callable[[Mapping[str, Any], "FrameRate | None"], tuple[Any, ...]]
RegionRows = Callable[
    [list[tuple[Any, ...]], tuple[Any, ...], tuple[Any, ...], list[Any], "FrameRate | None"],
    "tuple[float, float, float, float] | None",
]


def _statements(columns: tuple[Column, ...]) -> tuple[list[str], list[str]]:
    """Python statements that set one local per value of ``obj``'s columns, and the locals.

    The common cases (strings, seconds, boxes) are inline; the rest is left to `convert`.
    """
    lines, names = ["get = obj.get"], []
    for i, column in enumerate(columns):
        value = f"_{i}"
        lines.append(f"{value} = get({column.name!r})")
        if column.type in ("text", "keyword", "string"):
            lines.append(f"if type({value}) is not str: {value} = None")
            names.append(value)
        elif column.type == "bounding_box":
            x0, y0, x1, y1 = (f"_{i}_{k}" for k in range(4))
            lines += [
                f"if type({value}) is dict:",
                f"    {x0} = float({value}['x']); {y0} = float({value}['y'])",
                f"    {x1} = {x0} + float({value}['w']); {y1} = {y0} + float({value}['h'])",
                f"else: {x0} = {y0} = {x1} = {y1} = None",
            ]
            names += [x0, y0, x1, y1]
        elif column.type == "time_range":
            lo, hi = f"_{i}_0", f"_{i}_1"
            lines += [
                f"if {value} is None: {lo} = {hi} = None",
                f"else: {lo}, {hi} = _range({value}, rate)",
            ]
            names += [lo, hi]
        else:
            lines.append(f"{value} = convert(_kinds[{i}], {value}, rate)")
            names.append(f"*{value}")
    return lines, names


def space_column(columns: Sequence[Column]) -> Column | None:
    """The regions' box a backend's spatial index covers (``region.bounding_box``), if any.

    Args:
        columns: From `columns_for`.

    Returns:
        The column, or None.
    """
    for column in columns:
        if (column.level, column.name, column.type) == ("region", "bounding_box", "bounding_box"):
            return column
    return None


def _compiled(source: str, columns: tuple[Column, ...], name: str) -> Any:
    namespace: dict[str, Any] = {
        "_INF": float("inf"),
        "_range": _range,
        "convert": convert,
        "_kinds": [c.type for c in columns],
    }
    exec(compile(source, f"<reeldb.index.rows {name}>", "exec"), namespace)
    return namespace[name]


@functools.lru_cache(maxsize=256)
def _extractor(columns: tuple[Column, ...]) -> Extractor:
    """A function from a node to its values for these columns (all of one level).

    Compiled (`_statements`), like `_region_rows`: one local per value, no call per column.
    """
    lines, names = _statements(columns)
    body = "".join(f"    {line}\n" for line in lines)
    values = ", ".join(names) + ("," if len(names) == 1 else "")
    source = f"def extract(obj, rate):\n{body}    return ({values})\n"
    extract: Extractor = _compiled(source, columns, "extract")
    return extract


@functools.lru_cache(maxsize=256)
def _region_rows(columns: tuple[Column, ...]) -> RegionRows:
    """A function appending an event's region rows: ``(*head, r, *tail, *values)`` each.

    It returns the box ``(x0, x1, y0, y1)`` around the regions' ``bounding_box`` values
    (None if the regions have none, or the columns no such field).

    Indexing runs it for every event, over every region: compiled, so a region costs no
    function call beyond its dictionary lookups and conversions.
    """
    lines, names = _statements(columns)
    values = "".join(f", {name}" for name in names)
    box = space_column(columns)
    if box is not None:  # the box around the regions' boxes, for the R*Tree of events
        x0, y0, x1, y1 = (f"_{columns.index(box)}_{k}" for k in range(4))
        lines += [
            f"if {x0} is not None:",
            f"    if {x0} < bx0: bx0 = {x0}",
            f"    if {x1} > bx1: bx1 = {x1}",
            f"    if {y0} < by0: by0 = {y0}",
            f"    if {y1} > by1: by1 = {y1}",
        ]
    body = "".join(f"        {line}\n" for line in lines)
    source = (
        "def region_rows(out, head, tail, regions, rate):\n"
        "    t, c, e = head\n"
        "    append = out.append\n"
        "    bx0 = by0 = _INF\n"
        "    bx1 = by1 = -_INF\n"
        "    for r, obj in enumerate(regions):\n"
        f"{body}"
        f"        append((t, c, e, r, *tail{values}))\n"
        "    return None if bx0 > bx1 else (bx0, bx1, by0, by1)\n"
    )
    region_rows: RegionRows = _compiled(source, columns, "region_rows")
    return region_rows


def _range(value: Any, rate: FrameRate | None) -> tuple[Any, Any]:
    if value is None:
        return (None, None)
    if type(value) is dict:
        start, end = value.get("start"), value.get("end")
        if type(start) in (int, float) and type(end) in (int, float):
            return float(start), float(end)  # type: ignore[arg-type]
    low, high = convert("time_range", value, rate)
    return low, high


def document_rows(
    data: Mapping[str, Any], columns: list[Column], chunk_bytes: int = 4 * 1024 * 1024
) -> DocumentRows:
    """Cut a valid document into rows.

    Each node's values are converted once; a row is the concatenation of its asset's,
    track's, component's, event's and region's values (columns are ordered by level).

    Args:
        data: The decoded document.
        columns: From `columns_for`.
        chunk_bytes: The largest chunk of events (a larger single event is a chunk alone).

    Returns:
        The rows, the text of each node and the chunks of events.
    """
    cutter = RowCutter(columns, chunk_bytes)
    cutter.document(data.get("asset"))
    for t, track in enumerate(data.get("tracks") or []):
        cutter.track(t, {k: v for k, v in track.items() if k != "components"})
        for c, component in enumerate(track.get("components") or []):
            cutter.component(c, {k: v for k, v in component.items() if k != "events"})
            for e, event in enumerate(component.get("events") or []):
                cutter.event(e, event)
            cutter.end_component()
        cutter.end_track()
    cutter.end_document()
    return cutter.take()


class ChunkPacker:
    """Where each event of a component goes as the events are packed into chunks.

    The one packing rule, for cutting (`RowCutter`) and for counting ahead
    (`reeldb.ingest.plan`): consecutive events, comma-separated, up to ``limit`` bytes (an
    event larger than that is a chunk alone); a component's last chunk ends with it.

    Args:
        limit: The largest chunk.
    """

    __slots__ = ("closed", "limit", "open", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.closed = 0  # chunks closed so far
        self.size = 0  # bytes in the open chunk
        self.open = False

    def add(self, length: int) -> tuple[bool, int, int]:
        """Place an event of ``length`` bytes.

        Returns:
            Whether the open chunk was closed first, the event's chunk (from 0) and its
            offset in it.
        """
        closed = self.open and self.size + length + 1 > self.limit
        if closed:
            self.closed += 1
            self.size, self.open = 0, False
        offset = self.size + (1 if self.open else 0)
        self.size, self.open = offset + length, True
        return closed, self.closed, offset

    def close(self) -> bool:
        """End the component: whether a chunk was open (and is now closed)."""
        was_open = self.open
        if was_open:
            self.closed += 1
        self.size, self.open = 0, False
        return was_open


class RowCutter:
    """Cuts a document into rows node by node, so a streamed document is cut in batches.

    Call `document`, then for each track `track`, its components (`component`, its events
    with `event`, `end_component`) and `end_track`, then `end_document`. `take` returns the
    rows cut since the last `take` (a batch); offsets in them count from the document's
    first row and chunk, so batches are bound like a whole document's rows
    (`DocumentRows.rows`), at ids ``base + row_start + i`` for the batch's ``i``-th row.

    Args:
        columns: From `columns_for`.
        chunk_bytes: The largest chunk of events.
    """

    def __init__(self, columns: Sequence[Column], chunk_bytes: int = 4 * 1024 * 1024) -> None:
        by_level: dict[str, list[Column]] = {level: [] for level in LEVELS}
        for column in columns:
            by_level[column.level].append(column)
        self._by_level = by_level
        self._extract = {level: _extractor(tuple(cols)) for level, cols in by_level.items()}
        self._region_rows = _region_rows(tuple(by_level["region"]))
        self._empty = {level: (None,) * sum(c.width for c in by_level[level]) for level in LEVELS}
        self._text_levels = {
            level for level, cols in by_level.items() if any(c.type == "text" for c in cols)
        }
        self._chunk_bytes = chunk_bytes
        self.rows: list[tuple[Any, ...]] = []
        self._events: list[tuple[int, tuple[float, float, float, float] | None]] = []
        self._texts: list[tuple[int, str, dict[str, str]]] = []
        self._chunks: list[tuple[bytes, bytes]] = []
        self.row_start = 0  # the document offset of the batch's first row
        self.chunk_start = 0  # and of its first chunk
        self._packer = ChunkPacker(chunk_bytes)
        self._asset: tuple[Any, ...] = ()
        self._above_t: tuple[Any, ...] = ()
        self._above_c: tuple[Any, ...] = ()
        self._rate: FrameRate | None = None
        self._t = self._c = 0
        self._t0 = self._c0 = 0
        self._tracks = self._components = self._count = 0
        self._head = b""
        self._parts: list[bytes] = []

    @property
    def cut(self) -> int:
        """Rows cut so far in the document."""
        return self.row_start + len(self.rows)

    @property
    def chunks_cut(self) -> int:
        """Chunks of events closed so far in the document."""
        return self.chunk_start + len(self._chunks)

    def _values(self, level: str, obj: Any) -> tuple[Any, ...]:
        return self._empty[level] if obj is None else self._extract[level](obj, self._rate)

    def _text(self, level: str, obj: Mapping[str, Any] | None, first: int) -> None:
        if level not in self._text_levels or obj is None:
            return
        found = {
            c.name: " ".join(stems(obj[c.name]))
            for c in self._by_level[level]
            if c.type == "text" and isinstance(obj.get(c.name), str)
        }
        if found:
            self._texts.append((first, level, found))

    def document(self, asset: Mapping[str, Any] | None) -> None:
        """Start the document with its asset (None if it has none)."""
        self._asset = self._values("asset", asset)
        self._text("asset", asset, 0)

    def track(self, t: int, head: Mapping[str, Any]) -> None:
        """Start track ``t``; ``head`` is the track without its components."""
        spec = head.get("frame_rate")
        self._rate = None if spec is None else FrameRate.parse(spec)
        self._t, self._t0, self._components = t, self.cut, 0
        self._tracks += 1
        self._text("track", head, self._t0)
        self._above_t = (*self._asset, *self._values("track", head))
        self._track_head = head

    def component(self, c: int, head: Mapping[str, Any]) -> None:
        """Start component ``c`` of the current track; ``head`` is it without its events."""
        self._c, self._c0, self._count = c, self.cut, 0
        self._components += 1
        self._text("component", head, self._c0)
        self._above_c = (*self._above_t, *self._values("component", head))
        self._head = orjson.dumps({"track": self._track_head, "component": head})
        self._parts = []

    def event(self, e: int, event: Mapping[str, Any], part: bytes | None = None) -> None:
        """Cut event ``e`` of the current component (``part``: its JSON, if made already)."""
        self._count += 1
        if part is None:
            part = orjson.dumps(event)
        closed, chunk, offset = self._packer.add(len(part))
        if closed:
            self._flush_chunk()
        self._parts.append(part)
        home = (chunk, offset, len(part))
        e0 = self.cut
        self._text("event", event, e0)
        fixed = (self._t, self._c, e, -1, self._t0, self._c0, e0, *home,
                 *self._above_c, *self._values("event", event))  # fmt: skip
        regions = event.get("regions") or []
        if not regions:
            self.rows.append((*fixed, *self._empty["region"]))
            self._events.append((e0, None))
            return
        if "region" in self._text_levels:
            for r, region in enumerate(regions):
                self._text("region", region, e0 + r)
        box = self._region_rows(self.rows, fixed[:3], fixed[4:], regions, self._rate)
        self._events.append((e0, box))

    def _flush_chunk(self) -> None:
        self._chunks.append((self._head, b",".join(self._parts)))
        self._parts = []

    def end_component(self) -> None:
        """End the current component."""
        if self._packer.close():
            self._flush_chunk()
        if not self._count:
            self.rows.append((self._t, self._c, -1, -1, self._t0, self._c0, None, None, None,
                              None, *self._above_c, *self._empty["event"],
                              *self._empty["region"]))  # fmt: skip

    def end_track(self) -> None:
        """End the current track."""
        if not self._components:
            self.rows.append((self._t, -1, -1, -1, self._t0, None, None, None, None, None,
                              *self._above_t, *self._empty["component"], *self._empty["event"],
                              *self._empty["region"]))  # fmt: skip

    def end_document(self) -> None:
        """End the document."""
        if not self._tracks:
            self.rows.append((-1, -1, -1, -1, *(None,) * 6, *self._asset, *self._empty["track"],
                              *self._empty["component"], *self._empty["event"],
                              *self._empty["region"]))  # fmt: skip

    def take(self) -> DocumentRows:
        """The rows, events, texts and chunks cut since the last call (a batch)."""
        batch = DocumentRows(self.rows, self._events, self._texts, self._chunks)
        self.row_start += len(self.rows)
        self.chunk_start += len(self._chunks)
        self.rows, self._events, self._texts, self._chunks = [], [], [], []
        return batch


def convert(kind: str, value: Any, rate: FrameRate | None = None) -> list[Any]:
    """A stored value as index values (see the module docstring); ``None`` where missing.

    Args:
        kind: The field's reeldb type.
        value: The value in the document.
        rate: The track's frame rate (for time ranges in frames).

    Returns:
        ``width`` values.
    """
    if kind == "time_range":
        if not isinstance(value, dict):
            return [None, None]
        start, end = value.get("start"), value.get("end")
        if isinstance(start, int | float) and isinstance(end, int | float):
            # Seconds: the nearest double of the exact value is the number itself.
            return [float(start), float(end)]
        first, last = value.get("start_frame"), value.get("end_frame")
        if "rate" not in value and rate is not None and type(first) is int and type(last) is int:
            # Frames at the track's rate: frame / rate = frame * den / num, and Python's
            # division of integers rounds to the nearest double, as float(Fraction) does.
            num, den = rate.value.numerator, rate.value.denominator
            return [first * den / num, last * den / num]
        exact = TimeRange.from_json(value, rate)
        return [float(exact.start), float(exact.end)]
    if kind == "bounding_box":
        if not isinstance(value, dict):
            return [None] * 4
        x, y, w, h = (float(value[k]) for k in ("x", "y", "w", "h"))
        return [x, y, x + w, y + h]
    return [scalar(kind, value)]


def literal(kind: str, value: Any) -> Any:
    """A query's literal as the index compares it (exact decimals as doubles; see `scalar`).

    Args:
        kind: The field's reeldb type.
        value: The literal.

    Returns:
        The comparable value.
    """
    return scalar(kind, float(value) if isinstance(value, Decimal) else value)


def scalar(kind: str, value: Any) -> Any:
    """A scalar as the index compares it, or None (see the module docstring).

    Args:
        kind: The field's reeldb type.
        value: A stored value, or a query's literal.

    Returns:
        The comparable value.
    """
    if kind == "bool":
        return int(value) if isinstance(value, bool) else None
    if kind in ("int", "float", "enum") and isinstance(value, int | float):
        if isinstance(value, bool):
            return None
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return float(value)  # beyond 64 bits, numbers are doubles (as in queries)
        return value
    if kind in ("int", "float"):
        return None
    if kind == "timestamp":
        when = parse_timestamp(value) if isinstance(value, str) else None
        if when is None:
            return None
        delta = when - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return value if isinstance(value, str) else None
