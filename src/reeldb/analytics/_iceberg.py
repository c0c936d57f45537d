"""The Iceberg export: rows from the store, appended in batches with their watermarks.

Layout and rules are documented in docs/analytics.md. In short:

* ``documents``, ``events`` and ``regions`` are fed by one pass over each DataStore's
  documents in write order (``seq``). Each table keeps, per DataStore, the position it has
  appended up to -- ``"<seq>"`` (that document and all before it) or ``"<seq>:<rows>"`` (the
  first ``rows`` rows of document ``seq``, when an append cut a large document) -- in its
  table properties, set in the same Iceberg transaction as the rows.
* ``annotations``: every version, deletions included. Updates add versions to old ids, so
  no cursor over ids or creation times is exact; the table itself is the watermark: a run
  reads the ``(id, version)`` pairs already exported for a namespace and appends every
  stored version above them. What is in the table is exactly what was committed, so a
  crash can neither skip nor repeat a version.
* Every commit asserts the snapshot it started from (pyiceberg's optimistic concurrency):
  two exports at once cannot both append the same rows; the loser gets `ConflictError`.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Table, Transaction
from pyiceberg.transforms import DayTransform

from reeldb.analytics._model import (
    ICEBERG_NAMESPACE,
    ICEBERG_TABLES,
    IcebergExport,
    catalog_uri,
    resolve_warehouse,
    warehouse_io,
)
from reeldb.database import Database
from reeldb.errors import ConfigError, ConflictError, ValidationError
from reeldb.index.rows import convert
from reeldb.ingest import stream
from reeldb.model.datastore import DataStore, DataStoreRef
from reeldb.model.names import check_namespace
from reeldb.model.timing import FrameRate
from reeldb.store import redact_url
from reeldb.store.base import AnnotationColumns, AnnotationRecord, DocumentRecord

__all__ = ["export", "open_catalog"]

_TS: Final = pa.timestamp("us", tz="UTC")
_PAGE: Final = 50_000
"""Annotation versions per `annotation_columns` page."""
_REFETCH: Final = 64
"""Up to this many new versions in a page (of a later export), their bodies are read one
annotation at a time, else by reading the page again."""
_WATERMARK: Final = "reeldb.watermark."
_SINCE: Final = "reeldb.since."
_VERSIONS: Final = "reeldb.versions."
_NAME: Final = re.compile(r"[^A-Za-z0-9_]")
_NO_RETRY: Final = {"commit.retry.num-retries": "0"}
"""pyiceberg would retry a commit that lost a race by re-applying the append on top of the
winner's: rows twice. The loser must fail instead (and its run start again)."""

_EVENT: Final[list[tuple[str, pa.DataType]]] = [
    ("document_id", pa.string()),
    ("namespace", pa.string()),
    ("datastore", pa.string()),
    ("created_at", _TS),
    ("seq", pa.int64()),
    ("track", pa.int32()),
    ("component", pa.int32()),
    ("event", pa.int32()),
]
"""The leading columns of ``events`` and ``regions``: the document and the event's place."""
_FIXED: Final[dict[str, list[tuple[str, pa.DataType]]]] = {
    "documents": [
        ("document_id", pa.string()),
        ("namespace", pa.string()),
        ("datastore", pa.string()),
        ("mid", pa.string()),
        ("schema_version", pa.int32()),
        ("created_at", _TS),
        ("size", pa.int64()),
        ("seq", pa.int64()),
        ("properties", pa.string()),
    ],
    "events": [
        *_EVENT,
        ("time_start", pa.float64()),
        ("time_end", pa.float64()),
        ("regions", pa.int32()),
        ("properties", pa.string()),
        ("track_properties", pa.string()),
        ("component_properties", pa.string()),
    ],
    "regions": [
        *_EVENT,
        ("region", pa.int32()),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("w", pa.float64()),
        ("h", pa.float64()),
        ("time_start", pa.float64()),
        ("time_end", pa.float64()),
        ("properties", pa.string()),
    ],
    "annotations": [
        ("id", pa.string()),
        ("version", pa.int32()),
        ("namespace", pa.string()),
        ("type", pa.string()),
        ("type_version", pa.int32()),
        ("deleted", pa.bool_()),
        ("created_at", _TS),
        ("created_by", pa.string()),
        (
            "associations",
            pa.list_(pa.struct([("type", pa.string()), ("id", pa.string())])),
        ),
        ("time_start", pa.float64()),
        ("time_end", pa.float64()),
        ("box_x0", pa.float64()),
        ("box_y0", pa.float64()),
        ("box_x1", pa.float64()),
        ("box_y1", pa.float64()),
        ("data", pa.string()),
    ],
}
_PARTITION: Final = {
    "documents": "datastore",
    "events": "datastore",
    "regions": "datastore",
    "annotations": "namespace",
}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- typed property columns -------------------------------------------------------------

_INT64: Final = (-(2**63), 2**63 - 1)


def _as_string(value: Any) -> str | None:
    return value if type(value) is str else None if value is None else _json(value)


def _as_long(value: Any) -> int | None:
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:
        return value
    return None


def _as_double(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _as_bool(value: Any) -> bool | None:
    return value if type(value) is bool else None


_KINDS: Final[dict[str, tuple[pa.DataType, Callable[[Any], Any]]]] = {
    "text": (pa.string(), _as_string),
    "keyword": (pa.string(), _as_string),
    "string": (pa.string(), _as_string),
    "enum": (pa.string(), _as_string),
    "timestamp": (pa.string(), _as_string),
    "int": (pa.int64(), _as_long),
    "float": (pa.float64(), _as_double),
    "bool": (pa.bool_(), _as_bool),
}
_CONVERTED: Final[dict[Callable[[Any], Any], pa.DataType]] = {
    convert: arrow_type for arrow_type, convert in _KINDS.values()
}
_FITS: Final[dict[Callable[[Any], Any], set[type]]] = {
    _as_string: {str},
    _as_long: {int},
    _as_double: {int, float},
    _as_bool: {bool},
}
"""Per converter, the Python types whose values Arrow converts as the converter would."""


def _type_name(arrow_type: pa.DataType) -> str:
    """The Iceberg type an Arrow type stands for (Iceberg strings read back as large ones)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_int64(arrow_type):
        return "long"
    if pa.types.is_float64(arrow_type):
        return "double"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    return str(arrow_type)


Columns = tuple[tuple[str, str, Callable[[Any], Any]], ...]
"""``(property, column, converter)`` per property of one level of one schema version."""


# -- a table being appended to ----------------------------------------------------------


@dataclass
class _Position:
    """Where a table is in one DataStore: document ``seq`` done, or its first ``rows``."""

    seq: int = 0
    rows: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> _Position:
        if not text:
            return cls()
        seq, _, rows = text.partition(":")
        return cls(int(seq), int(rows) if rows else None)

    def __str__(self) -> str:
        return str(self.seq) if self.rows is None else f"{self.seq}:{self.rows}"

    @property
    def after_seq(self) -> int:
        """The ``after_seq`` to read documents from."""
        return self.seq if self.rows is None else self.seq - 1


class _Writer:
    """Rows for one Iceberg table, appended (with watermarks) every ``batch_rows`` rows."""

    def __init__(
        self,
        name: str,
        table: Table,
        batch_rows: int,
        result: _Result,
        committer: ThreadPoolExecutor,
    ) -> None:
        self.name = name
        self.committer = committer
        self._pending: Future[None] | None = None
        self.table = table
        self.batch_rows = batch_rows
        self.result = result
        self.fixed = [column for column, _ in _FIXED[name]]
        self.types: dict[str, pa.DataType] = {f.name: f.type for f in table.schema().as_arrow()}
        self.new_fields: list[pa.Field] = []
        self.rows: list[tuple[Any, ...]] = []
        self.chunks: list[pa.Table] = []
        self.chunk_rows = 0
        self.extra: dict[str, list[tuple[int, Any]]] = {}
        self.props: dict[str, str] = {}
        self._columns: dict[tuple[str, str, str], tuple[str, Callable[[Any], Any]]] = {}
        # the document being written (documents, events, regions): key, seq, rows so far
        self._doc: tuple[str, int] | None = None
        self._k = 0
        self._skip = 0

    # -- columns -----------------------------------------------------------------------

    def column(self, level: str, prop: str, kind: str) -> tuple[str, Callable[[Any], Any]]:
        """The column a schema property goes to, added to the table if new."""
        key = (level, prop, kind)
        found = self._columns.get(key)
        if found is not None:
            return found
        arrow_type, convert = _KINDS[kind]
        base = f"{level}_{_NAME.sub('_', prop)}"
        name = base
        wanted = _type_name(arrow_type)
        existing = self.types.get(name)
        if existing is not None and _type_name(existing) != wanted:
            # Another DataStore (or type) uses the name with another type: a typed sibling.
            name = f"{base}_{wanted}"
            existing = self.types.get(name)
        if existing is None:
            self.types[name] = arrow_type
            self.new_fields.append(pa.field(name, arrow_type))
        found = self._columns[key] = (name, convert)
        return found

    def columns(self, level: str, resolved: Mapping[str, Any]) -> Columns:
        """The columns of the scalar properties of one level of a schema version.

        Structured values (time ranges, boxes, objects, arrays) are in the level's JSON
        column (``properties``, ``data``), and times and boxes in their own columns.
        """
        out = []
        for prop, spec in resolved.items():
            kind = spec.get("type", "") if isinstance(spec, Mapping) else ""
            if kind in _KINDS:
                column, convert = self.column(level, prop, kind)
                out.append((prop, column, convert))
        return tuple(out)

    # -- rows --------------------------------------------------------------------------

    def add(self, row: tuple[Any, ...], *parts: tuple[Mapping[str, Any], Columns]) -> None:
        """Buffer a row: its fixed columns, then per level its values and their columns."""
        if self._doc is not None:
            self._k += 1
            if self._k <= self._skip:
                return  # appended by an earlier, interrupted run
        index = len(self.rows)
        self.rows.append(row)
        for values, columns in parts:
            for prop, column, to_value in columns:
                value = values.get(prop)
                if value is not None:
                    converted = to_value(value)
                    if converted is not None:
                        self.extra.setdefault(column, []).append((index, converted))
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def add_table(self, chunk: pa.Table) -> None:
        """Buffer rows built in bulk (columns named as the table's; missing ones are null)."""
        self.chunks.append(chunk)
        self.chunk_rows += chunk.num_rows
        if len(self.rows) + self.chunk_rows >= self.batch_rows:
            self.flush()

    def begin(self, datastore: str, position: _Position, seq: int) -> bool:
        """Start document ``seq`` of a DataStore; False if the table already has it whole."""
        if seq < position.seq or (seq == position.seq and position.rows is None):
            return False
        self._doc = (datastore, seq)
        self._k = 0
        self._skip = position.rows if seq == position.seq and position.rows else 0
        return True

    def end(self) -> None:
        """The current document is whole in the buffer (or was appended before)."""
        assert self._doc is not None
        datastore, seq = self._doc
        self.props[_WATERMARK + datastore] = str(seq)
        self._doc = None

    # -- appends -------------------------------------------------------------------------

    def flush(self) -> None:
        """Append the buffered rows and set the watermarks, in one Iceberg transaction.

        The Arrow table is built here; the Parquet files are written and the transaction
        committed on the export's commit thread while the next rows are read (one commit
        in flight per table: the next flush waits for it first).
        """
        self.wait()
        if self._doc is not None:  # cut inside a document: remember how far
            datastore, seq = self._doc
            self.props[_WATERMARK + datastore] = str(_Position(seq, self._k))
        current = self.table.properties
        self.props = {k: v for k, v in self.props.items() if current.get(k) != v}
        if not self.rows and not self.chunks and not self.props and not self.new_fields:
            return
        tx = self.table.transaction()
        if self.new_fields:
            with tx.update_schema() as update:
                update.union_by_name(pa.schema(self.new_fields))
        schema = tx.table_metadata.schema().as_arrow()
        parts = [_conform(chunk, schema) for chunk in self.chunks]
        if self.rows:
            parts.append(self._arrow(schema))
        data = None if not parts else parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        props = self.props
        self.rows, self.extra, self.props, self.new_fields = [], {}, {}, []
        self.chunks, self.chunk_rows = [], 0
        self._pending = self.committer.submit(self._commit, tx, data, props)

    def _commit(self, tx: Transaction, data: pa.Table | None, props: dict[str, str]) -> None:
        try:
            if data is not None:
                tx.append(data)
            if props:
                tx.set_properties(props)
            tx.commit_transaction()
        except CommitFailedException as exc:
            raise ConflictError(
                f"Iceberg table {ICEBERG_NAMESPACE}.{self.name} changed during the export "
                f"(another export?): run it again ({exc})"
            ) from None
        rows = 0 if data is None else data.num_rows
        self.result.rows[self.name] = self.result.rows.get(self.name, 0) + rows
        self.result.commits += 1

    def wait(self) -> None:
        """Wait for the commit in flight, if any (its error is raised here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _arrow(self, schema: pa.Schema) -> pa.Table:
        n = len(self.rows)
        columns = dict(zip(self.fixed, zip(*self.rows, strict=True), strict=True))
        arrays = []
        for f in schema:
            if f.name == "associations" and f.name in columns:
                arrays.append(_pairs(columns[f.name], f.type))
            elif f.name in columns:
                arrays.append(pa.array(columns[f.name], f.type))
            elif f.name in self.extra:
                values: list[Any] = [None] * n
                for index, value in self.extra[f.name]:
                    values[index] = value
                arrays.append(pa.array(values, f.type))
            else:
                arrays.append(pa.nulls(n, f.type))
        return pa.Table.from_arrays(arrays, schema=schema)


def _conform(chunk: pa.Table, schema: pa.Schema) -> pa.Table:
    """A bulk-built chunk with exactly the table's columns and types."""
    n = chunk.num_rows
    arrays = []
    for f in schema:
        if f.name in chunk.column_names:
            column = chunk.column(f.name)
            arrays.append(column if column.type == f.type else column.cast(f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _pairs(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``[{type, id}, ...]`` per row as a list<struct> array, built from flat columns."""
    offsets = [0, *itertools.accumulate(map(len, values))]
    flat = [pair for pairs in values for pair in pairs]
    types = [pair["type"] for pair in flat]
    ids = [pair["id"] for pair in flat]
    item = kind.value_type
    struct = pa.StructArray.from_arrays(
        [pa.array(types, item.field(0).type), pa.array(ids, item.field(1).type)],
        fields=[item.field(0), item.field(1)],
    )
    if pa.types.is_large_list(kind):
        return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), struct, type=kind)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct, type=kind)


@dataclass
class _Result:
    rows: dict[str, int]
    documents: dict[str, int]
    annotations: dict[str, int]
    commits: int = 0


# -- catalog and tables -------------------------------------------------------------------


def open_catalog(warehouse: str, uri: str) -> SqlCatalog:
    """The SQL catalog (its tables created if new) and the ``reeldb`` namespace.

    Args:
        warehouse: The warehouse URL (`resolve_warehouse`; an S3 one with its endpoint and
            region, `warehouse_io`).
        uri: The catalog's SQLAlchemy URI (`catalog_uri`).

    Returns:
        The catalog.

    Raises:
        ConfigError: The catalog's database cannot be opened.
    """
    catalog = None
    try:
        location, io = warehouse_io(warehouse)
        catalog = SqlCatalog("reeldb", uri=uri, warehouse=location, **io)
        catalog.create_namespace_if_not_exists(ICEBERG_NAMESPACE)
    except Exception as exc:  # SQLAlchemy and drivers raise many kinds
        if catalog is not None:
            catalog.engine.dispose()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot open the Iceberg catalog {redact_url(uri)}: {reason}") from None
    return catalog


def _table(catalog: Catalog, name: str) -> Table:
    identifier = (ICEBERG_NAMESPACE, name)
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    else:
        if any(table.properties.get(k) != v for k, v in _NO_RETRY.items()):
            table.transaction().set_properties(_NO_RETRY).commit_transaction()
        return table
    schema = pa.schema([pa.field(column, kind) for column, kind in _FIXED[name]])
    try:
        with (
            catalog.create_table_transaction(
                identifier,
                schema=schema,
                properties={"format-version": "2", "reeldb.layout": "1", **_NO_RETRY},
            ) as tx,
            tx.update_spec() as spec,
        ):
            spec.add_identity(_PARTITION[name])
            spec.add_field("created_at", DayTransform(), "created_at_day")
    except Exception as exc:
        if catalog.table_exists(identifier):  # created by a concurrent export
            return catalog.load_table(identifier)
        raise ConfigError(f"cannot create Iceberg table {identifier}: {exc}") from None
    return catalog.load_table(identifier)


# -- documents, events, regions ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Timeline:
    """A document as the export reads it: top attributes, then its events in order."""

    asset: dict[str, Any]
    tracks: dict[int, dict[str, Any]]
    components: dict[tuple[int, int], dict[str, Any]]
    events: Iterator[tuple[int, int, int, dict[str, Any]]]


def _inline(body: bytes) -> _Timeline:
    data = orjson.loads(body)
    tracks: dict[int, dict[str, Any]] = {}
    components: dict[tuple[int, int], dict[str, Any]] = {}
    for t, track in enumerate(data.get("tracks") or ()):
        tracks[t] = {k: v for k, v in track.items() if k != "components"}
        for c, component in enumerate(track.get("components") or ()):
            components[t, c] = {k: v for k, v in component.items() if k != "events"}

    def events() -> Iterator[tuple[int, int, int, dict[str, Any]]]:
        for t, track in enumerate(data.get("tracks") or ()):
            for c, component in enumerate(track.get("components") or ()):
                for e, event in enumerate(component.get("events") or ()):
                    yield t, c, e, event

    return _Timeline(data.get("asset") or {}, tracks, components, events())


def _streamed(open_chunks: Callable[[], Iterator[bytes]]) -> _Timeline:
    """A document kept in a blob, read twice in bounded memory: heads, then events."""
    asset: dict[str, Any] = {}
    tracks: dict[int, dict[str, Any]] = {}
    components: dict[tuple[int, int], dict[str, Any]] = {}
    t = c = -1
    for kind, a, b in stream.walk(open_chunks()):
        if kind == stream.TOP and a == "asset" and isinstance(b, dict):
            asset = b
        elif kind == stream.TRACK:
            t, c = a, -1
            tracks[t] = {}
        elif kind == stream.TRACK_ATTR:
            tracks[t][a] = b
        elif kind == stream.COMPONENT:
            c = a
            components[t, c] = {}
        elif kind == stream.COMPONENT_ATTR and a != "events":
            components[t, c][a] = b

    def events() -> Iterator[tuple[int, int, int, dict[str, Any]]]:
        t = c = -1
        for kind, a, b in stream.walk(open_chunks()):
            if kind == stream.TRACK:
                t = a
            elif kind == stream.COMPONENT:
                c = a
            elif kind == stream.EVENT:
                yield t, c, a, b

    return _Timeline(asset, tracks, components, events())


def _seconds(value: Any, rate: FrameRate | None) -> tuple[float | None, float | None]:
    if type(value) is not dict:
        return None, None
    start, end = value.get("start"), value.get("end")
    if type(start) in (int, float) and type(end) in (int, float):
        return float(start), float(end)  # type: ignore[arg-type]  # seconds: the common case
    start, end = convert("time_range", value, rate)
    return start, end


def _rate(track: Mapping[str, Any]) -> FrameRate | None:
    spec = track.get("frame_rate")
    return None if spec is None else FrameRate.parse(spec)


class _Documents:
    """One pass over a DataStore's documents feeding the documents, events, regions tables."""

    def __init__(self, ctx: _Export, ds: DataStore) -> None:
        self.ctx = ctx
        self.ds = ds
        self.key = str(ds.ref)
        self.writers = {n: w for n, w in ctx.writers.items() if n != "annotations"}
        for w in self.writers.values():
            w.wait()  # its table object is current
        self.positions = {
            n: _Position.parse(w.table.properties.get(_WATERMARK + self.key))
            for n, w in self.writers.items()
        }
        self._schemas: dict[int, dict[str, Any]] = {}
        self._columns: dict[tuple[str, int, str], Columns] = {}

    def _resolved(self, version: int) -> dict[str, Any]:
        found = self._schemas.get(version)
        if found is None:
            schema = self.ctx.db.schemas.get(self.ds.ref.namespace, self.ds.schema_name, version)
            found = self._schemas[version] = schema.resolved
        return found

    def _cols(self, table: str, version: int, level: str) -> Columns:
        key = (table, version, level)
        found = self._columns.get(key)
        if found is None:
            resolved = self._resolved(version).get(level, {})
            found = self._columns[key] = self.writers[table].columns(level, resolved)
        return found

    def run(self) -> int:
        if not self.writers:
            return 0
        start = min(p.after_seq for p in self.positions.values())
        # the total is known for a first export; later ones read only the newer documents
        total = self.ctx.db.store.count_documents(self.ds.id) if start == 0 else None
        step = f"documents {self.key}"
        done = exported = 0
        self.ctx.report(step, done, total)
        for record in self.ctx.db.store.iter_documents(self.ds.id, after_seq=start):
            wanted = [
                w
                for n, w in self.writers.items()
                if w.begin(self.key, self.positions[n], record.seq)
            ]
            if wanted:
                since = self.ctx.since
                if since is None or record.created_at > since:
                    self._document(record, wanted)
                    exported += 1
                for w in wanted:
                    w.end()
            done += 1
            if done % 1000 == 0:
                self.ctx.report(step, done, total)
        self.ctx.report(step, done, done)
        return exported

    def _document(self, record: DocumentRecord, wanted: list[_Writer]) -> None:
        ns, key, version = self.ds.ref.namespace, self.key, record.schema_version
        doc_id, at, seq = str(record.id), record.created_at, record.seq
        if record.blob is None:
            timeline = _inline(record.body)
        else:
            blob = record.blob
            timeline = _streamed(lambda: self.ctx.db.blobs.store.open(blob))
        names = {w.name for w in wanted}
        if "documents" in names:
            documents = self.writers["documents"]
            documents.add(
                (
                    doc_id,
                    ns,
                    key,
                    record.mid_key,  # canonical JSON: sorted keys
                    version,
                    at,
                    record.size,
                    seq,
                    _json(timeline.asset),
                ),
                (timeline.asset, self._cols("documents", version, "asset")),
            )
        events = self.writers["events"] if "events" in names else None
        regions = self.writers["regions"] if "regions" in names else None
        if events is None and regions is None:
            return
        rates = {t: _rate(track) for t, track in timeline.tracks.items()}
        for t, c, e, event in timeline.events:
            rate = rates.get(t)
            listed = event.get("regions")
            region_list = listed if isinstance(listed, list) else []
            if events is not None:
                track = timeline.tracks.get(t, {})
                component = timeline.components.get((t, c), {})
                start, end = _seconds(event.get("time_range"), rate)
                own = {k: v for k, v in event.items() if k != "regions"}
                events.add(
                    (
                        doc_id,
                        ns,
                        key,
                        at,
                        seq,
                        t,
                        c,
                        e,
                        start,
                        end,
                        len(region_list),
                        _json(own),
                        _json(track),
                        _json(component),
                    ),
                    (track, self._cols("events", version, "track")),
                    (component, self._cols("events", version, "component")),
                    (own, self._cols("events", version, "event")),
                )
            if regions is not None:
                columns = self._cols("regions", version, "region")
                for r, region in enumerate(region_list):
                    box = region.get("bounding_box") if isinstance(region, dict) else None
                    if not isinstance(region, dict):
                        region = {}
                    x = y = w = h = None
                    if isinstance(box, dict):
                        x, y, w, h = (_as_double(box.get(k)) for k in ("x", "y", "w", "h"))
                    start, end = _seconds(region.get("time_range"), rate)
                    regions.add(
                        (
                            doc_id,
                            ns,
                            key,
                            at,
                            seq,
                            t,
                            c,
                            e,
                            r,
                            x,
                            y,
                            w,
                            h,
                            start,
                            end,
                            _json(region),
                        ),
                        (region, columns),
                    )


# -- annotations ------------------------------------------------------------------------


def _pick(resolved: Mapping[str, Any], kind: str, preferred: str) -> str | None:
    """The property an annotation type's time (or box) is in (as annotation search picks it)."""
    if resolved.get(preferred, {}).get("type") == kind:
        return preferred
    return next((name for name, spec in resolved.items() if spec.get("type") == kind), None)


class _Annotations:
    """Every annotation version of a namespace not yet in the table, read and built in bulk.

    The store is read a page of versions at a time as columns (`annotation_columns`, the next
    page read on a thread meanwhile), and a page becomes Arrow arrays a column at a time: the
    bodies by Arrow's JSON reader (`_parsed`), or value by value when it refuses one.
    """

    def __init__(self, ctx: _Export, namespace: str) -> None:
        self.ctx = ctx
        self.ns = namespace
        self.w = ctx.writers["annotations"]
        self._layouts: dict[tuple[str, int], tuple[Columns, str | None, str | None]] = {}
        self.w.wait()  # its table object is current
        props = self.w.table.properties
        floor = props.get(_SINCE + namespace)
        self.floor = datetime.fromisoformat(floor) if floor else None
        if ctx.since is not None and (self.floor is None or ctx.since > self.floor):
            self.floor = ctx.since
            self.w.props[_SINCE + namespace] = ctx.since.isoformat()
        self.versions = int(props.get(_VERSIONS + namespace, "0"))

    def _exported(self) -> dict[str, int]:
        """The highest version of each annotation already in the table."""
        table = self.w.table
        if table.current_snapshot() is None:
            return {}
        found = (
            table.scan(row_filter=f"namespace == '{self.ns}'", selected_fields=("id", "version"))
            .to_arrow()
            .group_by("id")
            .aggregate([("version", "max")])
        )
        return dict(
            zip(
                found.column("id").to_pylist(),
                found.column("version_max").to_pylist(),
                strict=True,
            )
        )

    def _layout(self, type_name: str, type_version: int) -> tuple[Columns, str | None, str | None]:
        key = (type_name, type_version)
        found = self._layouts.get(key)
        if found is None:
            resolved = self.ctx.db.schemas.get(self.ns, type_name, type_version)
            props = resolved.resolved
            found = self._layouts[key] = (
                self.w.columns("data", props),
                _pick(props, "time_range", "temporal"),
                _pick(props, "bounding_box", "spatial"),
            )
        return found

    def run(self) -> int:
        store = self.ctx.db.store
        exported = self._exported()
        step = f"annotations {self.ns}"
        done = count = 0
        self.ctx.report(step, 0, None)

        # A first export reads the bodies with the pages. Later ones read pages without
        # them and then the bodies of what is new only: most versions are in the table.
        bodies = not exported

        def read(after: tuple[int, int] | None) -> AnnotationColumns:
            return store.annotation_columns(self.ns, after=after, limit=_PAGE, bodies=bodies)

        after = None
        with contextlib.closing(_prefetched(read)) as pages:  # its thread ends with the loop
            for page in pages:
                new = page if bodies else self._new_with_bodies(page, after, exported)
                if new is not None:
                    count += self._page(new, exported)
                after = page.cursor
                done += len(page.ids)
                self.ctx.report(step, done, None)
        self.ctx.report(step, done, done)
        self.versions += count
        self.w.props[_VERSIONS + self.ns] = str(self.versions)
        return count

    def _new_with_bodies(
        self,
        page: AnnotationColumns,
        after: tuple[int, int] | None,
        exported: Mapping[str, int],
    ) -> AnnotationColumns | None:
        """The versions of a page read without bodies not in the table yet, with bodies.

        None when there are none. Few are read one annotation at a time; more, by reading
        the page again (versions a writer added to it meanwhile are left to the next run, as
        those added behind it).
        """
        picked = self._pick(page, _uuid_strings(page.ids), _timestamps(page.created_at), exported)
        if picked is None:
            picked = pa.array(range(len(page.ids)), pa.int64())
        if len(picked) == 0:
            return None
        indices = picked.to_pylist()
        wanted = {(page.ids[i], page.versions[i]) for i in indices}
        store = self.ctx.db.store
        if len(wanted) <= _REFETCH:
            records = [
                record
                for ident in sorted({page.ids[i] for i in indices})
                for record in store.annotation_versions(self.ns, UUID(bytes=ident))
                if (ident, record.version) in wanted
            ]
            return _columns_of(records)
        again = store.annotation_columns(self.ns, after=after, limit=len(page.ids))
        keep = [
            i for i, key in enumerate(zip(again.ids, again.versions, strict=True)) if key in wanted
        ]
        return _subset(again, keep)

    def _pick(
        self,
        page: AnnotationColumns,
        ids: pa.Array,
        created: pa.Array,
        exported: Mapping[str, int],
    ) -> pa.Array | None:
        """The indices of a page's versions not in the table yet (None: all of them)."""
        mask = None
        if self.floor is not None:
            mask = pc.greater(created, pa.scalar(self.floor, _TS))
        if exported:
            get = exported.get
            new = pa.array(
                [v > get(k, 0) for k, v in zip(ids.to_pylist(), page.versions, strict=True)],
                pa.bool_(),
            )
            mask = new if mask is None else pc.and_(mask, new)
        return None if mask is None else pc.indices_nonzero(mask)

    def _page(self, page: AnnotationColumns, exported: Mapping[str, int]) -> int:
        """Buffer the versions of a page not in the table yet; how many."""
        if not page.ids:
            return 0
        ids = _uuid_strings(page.ids)
        created = _timestamps(page.created_at)
        rows = _Page(ids, created, page)
        picked = self._pick(page, ids, created, exported)
        if picked is not None:
            if len(picked) == 0:
                return 0
            if len(picked) < len(page.ids):
                rows = rows.take(picked)
        kinds = list(zip(rows.page.type_names, rows.page.type_versions, strict=True))
        if len(set(kinds)) == 1:
            self.w.add_table(self._table(kinds[0], rows))
        else:  # a chunk per annotation type version: each has its own typed columns
            groups: dict[tuple[str, int], list[int]] = {}
            for i, kind in enumerate(kinds):
                groups.setdefault(kind, []).append(i)
            for kind, indices in groups.items():
                self.w.add_table(self._table(kind, rows.take(pa.array(indices, pa.int64()))))
        return len(kinds)

    def _table(self, kind: tuple[str, int], rows: _Page) -> pa.Table:
        """The rows (all of one annotation type version) as an Arrow table."""
        page = rows.page
        n = len(page.ids)
        columns, time_prop, box_prop = self._layout(*kind)
        fixed: dict[str, pa.Array] = {
            "id": rows.ids,
            "version": pa.array(page.versions, pa.int32()),
            "namespace": pa.array([self.ns] * n, pa.string()),
            "type": pa.array(page.type_names, pa.string()),
            "type_version": pa.array(page.type_versions, pa.int32()),
            "deleted": pa.array(page.deleted, pa.bool_()),
            "created_at": rows.created,
            "created_by": pa.array(page.created_by, pa.string()),
        }
        parsed = _parsed(page.bodies, columns, time_prop, box_prop)
        if parsed is not None:
            return pa.table(fixed | parsed)
        # Bodies Arrow's JSON reader does not take as the columns' types (an int property
        # holding 1.0, a time range in frames, ...): value by value, in Python.
        payloads = list(map(orjson.loads, page.bodies))
        datas = [p.get("data") or {} for p in payloads]
        arrays: dict[str, pa.Array] = {
            **fixed,
            "associations": _pairs(
                [p.get("associations") or [] for p in payloads],
                dict(_FIXED["annotations"])["associations"],
            ),
            "data": pa.array(_data_texts(page.bodies, datas), pa.string()),
        }
        if time_prop is not None:
            start, end = _time_columns([d.get(time_prop) for d in datas])
            arrays["time_start"], arrays["time_end"] = start, end
        if box_prop is not None:
            for name, array in zip(
                ("box_x0", "box_y0", "box_x1", "box_y1"),
                _box_columns([d.get(box_prop) for d in datas]),
                strict=True,
            ):
                arrays[name] = array
        for prop, column, to_value in columns:
            array = _typed([d.get(prop) for d in datas], to_value)
            if column in arrays:  # two property names that map to one column: last wins
                array = pc.coalesce(array, arrays[column])
            arrays[column] = array
        return pa.table(arrays)


@dataclass(frozen=True, slots=True)
class _Page:
    """A page's versions: the columns already in Arrow form, and the store's columns."""

    ids: pa.Array
    created: pa.Array
    page: AnnotationColumns

    def take(self, indices: pa.Array) -> _Page:
        return _Page(
            self.ids.take(indices),
            self.created.take(indices),
            _subset(self.page, indices.to_pylist()),
        )


def _subset(page: AnnotationColumns, indices: Sequence[int]) -> AnnotationColumns:
    """These versions of a page."""

    def pick(values: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(values[i] for i in indices)

    return AnnotationColumns(
        pick(page.ids),
        pick(page.versions),
        pick(page.type_names),
        pick(page.type_versions),
        pick(page.deleted),
        pick(page.created_at),
        pick(page.created_by),
        pick(page.bodies) if page.bodies else (),
        page.cursor,
    )


def _columns_of(records: Sequence[AnnotationRecord]) -> AnnotationColumns:
    """Versions read one annotation at a time, as the columns of a page."""
    return AnnotationColumns(
        tuple(r.id.bytes for r in records),
        tuple(r.version for r in records),
        tuple(r.type_name for r in records),
        tuple(r.type_version for r in records),
        tuple(r.deleted for r in records),
        tuple(r.created_at.astimezone(UTC).isoformat(timespec="microseconds") for r in records),
        tuple(r.created_by for r in records),
        tuple(r.body for r in records),
    )


def _prefetched(
    read: Callable[[tuple[int, int] | None], AnnotationColumns],
) -> Generator[AnnotationColumns, None, None]:
    """Pages until an empty one, the next read on a thread while the caller works on one."""
    with ThreadPoolExecutor(1, thread_name_prefix="reeldb-iceberg-read") as reader:
        pending = reader.submit(read, None)
        while True:
            page = pending.result()
            if not page.ids:
                return
            pending = reader.submit(read, page.cursor)
            yield page


def _uuid_strings(ids: Sequence[bytes]) -> pa.Array:
    """16-byte UUIDs as canonical text (``8-4-4-4-12`` lowercase hex), built by Arrow."""
    n = len(ids)
    hexes = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(32), n, [None, pa.py_buffer(b"".join(ids).hex().encode())]
    )
    text = hexes.cast(pa.binary()).cast(pa.string())
    parts = [pc.utf8_slice_codeunits(text, a, b) for a, b in _UUID_PARTS]
    return pc.binary_join_element_wise(*parts, "-")


_UUID_PARTS: Final = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))


def _timestamps(texts: Sequence[str]) -> pa.Array:
    """ISO 8601 texts as UTC timestamps: parsed by Arrow, by Python if Arrow cannot."""
    try:
        return pa.array(texts, pa.string()).cast(_TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([datetime.fromisoformat(t) for t in texts], _TS)


def _data_texts(bodies: Sequence[bytes], datas: Sequence[Any]) -> list[bytes | str]:
    """Each ``data`` as stored, cut from the body.

    The body is ``{"associations":[...],"data":{...}}`` (compact), and its first ``,"data":``
    is the top-level key (a string cannot hold a bare quote).
    """
    out: list[bytes | str] = []
    for body, data in zip(bodies, datas, strict=True):
        cut = body.find(b',"data":')
        if cut > 0 and body.startswith(b'{"associations":') and body.endswith(b"}"):
            out.append(body[cut + 8 : -1])
        else:
            out.append(_json(data))
    return out


_NUMBER: Final = (int, float)
_ASSOCIATIONS: Final = dict(_FIXED["annotations"])["associations"]
_TIME: Final = pa.struct([("start", pa.float64()), ("end", pa.float64())])
_BOX: Final = pa.struct([(k, pa.float64()) for k in ("x", "y", "w", "h")])
_BODY_START: Final = b'{"associations":'


def _parsed(
    bodies: Sequence[bytes], columns: Columns, time_prop: str | None, box_prop: str | None
) -> dict[str, pa.Array] | None:
    """The body columns of a page of one annotation type, parsed by Arrow.

    No Python per version. None when a value is not what its column takes (the caller then
    goes value by value): Arrow's JSON reader refuses a value of another JSON type than the
    column's (1.0 for an int, a string for a number, an integer beyond 64 bits, ``true`` for
    a number), so what it returns is what the per-value converters (`_KINDS`, `_seconds`)
    return.
    """
    fields = {prop: _CONVERTED[to_value] for prop, _, to_value in columns}
    if time_prop is not None:
        fields[time_prop] = _TIME
    if box_prop is not None:
        fields[box_prop] = _BOX
    schema = pa.schema([("associations", _ASSOCIATIONS), ("data", pa.struct(fields.items()))])
    joined = b"\n".join(bodies)  # compact JSON holds no newline: one body per line
    try:
        table = pa_json.read_json(
            io.BytesIO(joined),
            read_options=pa_json.ReadOptions(block_size=max(1 << 20, len(joined) // 2 + 1)),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != len(bodies):
        return None
    data_text = _data_column(joined)
    if data_text is None:
        return None
    data = table.column("data").combine_chunks()
    values = dict(zip(fields, data.flatten(), strict=True))
    out: dict[str, pa.Array] = {
        "associations": table.column("associations").combine_chunks(),
        "data": data_text,
    }
    if time_prop is not None:
        start, end = values[time_prop].flatten()
        given = pc.is_valid(values[time_prop])
        if pc.any(pc.and_(given, pc.or_(pc.is_null(start), pc.is_null(end)))).as_py():
            return None  # frames or another form: `_seconds` decides
        out["time_start"], out["time_end"] = start, end
    if box_prop is not None:
        x, y, w, h = values[box_prop].flatten()
        whole = pc.and_(
            pc.and_(pc.is_valid(x), pc.is_valid(y)), pc.and_(pc.is_valid(w), pc.is_valid(h))
        )
        none = pa.nulls(len(x), pa.float64())
        x0, y0 = pc.if_else(whole, x, none), pc.if_else(whole, y, none)
        out["box_x0"], out["box_y0"] = x0, y0
        out["box_x1"], out["box_y1"] = pc.add(x0, w), pc.add(y0, h)
    for prop, column, _ in columns:
        array = values[prop]
        if column in out:  # two property names that map to one column: last wins
            array = pc.coalesce(array, out[column])
        out[column] = array
    return out


def _data_column(joined: bytes) -> pa.Array | None:
    """Each body's ``data`` as stored, cut by Arrow (see `_data_texts`).

    None if a body is not of the usual form.
    """
    bodies = pc.split_pattern(pa.array([joined], pa.large_binary()), b"\n").flatten()
    parts = pc.split_pattern(bodies, b',"data":', max_splits=1)
    usual = pc.and_(
        pc.equal(pc.list_value_length(parts), 2),
        pc.and_(
            pc.equal(pc.binary_slice(bodies, 0, len(_BODY_START)), _BODY_START),
            pc.equal(pc.binary_slice(bodies, -1), b"}"),
        ),
    )
    if not pc.all(usual).as_py():
        return None
    try:
        return pc.binary_slice(pc.list_element(parts, 1), 0, -1).cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8
        return None


def _time_columns(values: Sequence[Any]) -> tuple[pa.Array, pa.Array]:
    """``time_start``, ``time_end`` (seconds) of each row's time range value."""
    pairs = [_seconds(value, None) for value in values]
    starts = pa.array([start for start, _ in pairs], pa.float64())
    return starts, pa.array([end for _, end in pairs], pa.float64())


def _box_columns(values: Sequence[Any]) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """``box_x0``, ``box_y0``, ``box_x1``, ``box_y1`` of each row's bounding box value."""
    out: tuple[list[float | None], ...] = ([], [], [], [])
    x0s, y0s, x1s, y1s = out
    for box in values:
        if type(box) is dict:
            x, y, w, h = box.get("x"), box.get("y"), box.get("w"), box.get("h")
            if (
                type(x) in _NUMBER
                and type(y) in _NUMBER
                and type(w) in _NUMBER
                and type(h) in _NUMBER
            ):
                x0, y0 = float(x), float(y)  # type: ignore[arg-type]
                x0s.append(x0)
                y0s.append(y0)
                x1s.append(x0 + w)  # type: ignore[operator]
                y1s.append(y0 + h)  # type: ignore[operator]
                continue
        for column in out:
            column.append(None)
    x0a, y0a, x1a, y1a = (pa.array(column, pa.float64()) for column in out)
    return x0a, y0a, x1a, y1a


def _typed(values: list[Any], convert: Callable[[Any], Any]) -> pa.Array:
    """A typed property column, converted as the property's converter (`_KINDS`) would.

    Arrow converts a whole column whose values all fit; the converter takes each value of
    any other column.
    """
    arrow_type = _CONVERTED[convert]
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= _FITS.get(convert, set()):
        with contextlib.suppress(OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(values, arrow_type)  # an int beyond 64 bits: value by value
    return pa.array([None if v is None else convert(v) for v in values], arrow_type)


# -- the export -------------------------------------------------------------------------


class _Export:
    def __init__(
        self,
        db: Database,
        writers: dict[str, _Writer],
        since: datetime | None,
        progress: Callable[[str, int, int | None], None] | None,
    ) -> None:
        self.db = db
        self.writers = writers
        self.since = since
        self._progress = progress

    def report(self, step: str, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress(step, done, total)


def _check(
    db: Database,
    tables: Sequence[str],
    datastores: Sequence[str] | None,
    namespaces: Sequence[str] | None,
    batch_rows: int,
    since: datetime | None,
) -> tuple[list[DataStore], list[str], datetime | None]:
    unknown = [t for t in tables if t not in ICEBERG_TABLES]
    if unknown or not tables:
        raise ValidationError(
            f"unknown Iceberg table {', '.join(unknown) or '(none given)'}: "
            f"choose among {', '.join(ICEBERG_TABLES)}"
        )
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValidationError("batch_rows must be a whole number of at least 1")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if datastores is None:
        chosen = db.list_datastores()
    else:
        chosen = [db.get_datastore(DataStoreRef.parse(d)) for d in datastores]
    if namespaces is None:
        names = [n.name for n in db.list_namespaces()]
    else:
        names = []
        for name in namespaces:
            check_namespace(name)
            db.get_namespace(name)
            names.append(name)
    return chosen, names, since


def export(
    db: Database,
    *,
    warehouse: str | None,
    catalog: str | None,
    since: datetime | None,
    tables: Sequence[str],
    datastores: Sequence[str] | None,
    namespaces: Sequence[str] | None,
    batch_rows: int,
    progress: Callable[[str, int, int | None], None] | None,
) -> IcebergExport:
    """See `reeldb.analytics.export_iceberg`."""
    began = time.perf_counter()
    chosen, names, since = _check(db, tables, datastores, namespaces, batch_rows, since)
    location = resolve_warehouse(db, warehouse)
    uri = catalog_uri(catalog, location)
    cat = open_catalog(location, uri)
    result = _Result({t: 0 for t in tables}, {}, {})
    committer = ThreadPoolExecutor(1, thread_name_prefix="reeldb-iceberg")
    writers: dict[str, _Writer] = {}
    # A batch holds hundreds of thousands of rows of containers that never form cycles: the
    # cyclic collector would walk them all again and again (measured: half the export time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for t in ICEBERG_TABLES:
            if t in tables:
                writers[t] = _Writer(t, _table(cat, t), batch_rows, result, committer)
        ctx = _Export(db, writers, since, progress)
        if any(t != "annotations" for t in writers):
            for ds in chosen:
                result.documents[str(ds.ref)] = _Documents(ctx, ds).run()
        if "annotations" in writers:
            for name in names:
                result.annotations[name] = _Annotations(ctx, name).run()
        for writer in writers.values():
            writer.flush()
        for writer in writers.values():
            writer.wait()
    finally:
        for writer in writers.values():  # after an error: let a commit in flight end
            with contextlib.suppress(BaseException):
                writer.wait()
        committer.shutdown()
        cat.engine.dispose()
        if collecting:
            gc.enable()
    return IcebergExport(
        warehouse=location,
        catalog=redact_url(uri.replace("postgresql+psycopg://", "postgresql://")),
        rows=result.rows,
        documents=result.documents,
        annotations=result.annotations,
        commits=result.commits,
        seconds=round(time.perf_counter() - began, 3),
    )
