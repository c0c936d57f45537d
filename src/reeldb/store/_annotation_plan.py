"""What the SQLite and PostgreSQL annotation stores decide alike, apart from their SQL.

The time of an annotation in its index rows (`NO_TIME`, `time_tokens`), the checks of a write
(and their errors), and the plan of a search: which types, associations and text fields it
names (an empty result when one is unknown), the estimate of starting from an association,
its order and keyset condition, and the page and cursor made of the rows read. A backend's
`AnnotationSearch` reads with its own SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar
from uuid import UUID

from reeldb import _json
from reeldb.errors import NotFoundError, ValidationError, VersionConflictError
from reeldb.query.ast import And, Expr, Not, Or
from reeldb.store.base import AnnotationQuery, AnnotationRecord, AnnotationWrite

__all__ = [
    "NO_TIME",
    "PROBE_LIMIT",
    "AnnotationSearch",
    "Key",
    "WhereSql",
    "check_distinct",
    "check_head",
    "link_condition",
    "matching_types",
    "missing_annotation",
    "order_by",
    "time_tokens",
    "window_tokens",
]

Key = tuple[int, int, float]
"""An association named by a search: its id, live count and longest time range."""
NO_TIME: Final = 1e300
"""``t0`` of an annotation without a time: after every real time."""
_BUCKET: Final = 60.0
"""Seconds of one time token (`time_tokens`); changing it needs the text rows rebuilt."""
_BUCKETS_MAX: Final = 16
_TIME_TOKEN: Final = "\ue001"
PROBE_LIMIT: Final = 5000
"""A probe of an index is counted up to this many candidates when choosing where to start."""


class _Connection(Protocol):
    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...


ConnT = TypeVar("ConnT", bound=_Connection)
Page = tuple[list[AnnotationRecord], tuple[float | int, ...] | None]


def time_tokens(start: float, end: float) -> list[str]:
    """The time tokens of a text row: the minutes its annotation's time range touches.

    A range over more than `_BUCKETS_MAX` minutes has the one token ``long`` instead. A
    search by words and a time window then asks the full-text index for rows that hold the
    words *and* one of the window's minutes (or ``long``): the matches it reads are those
    of the window, not of all time. (The prefix is a private-use character: no word's token
    starts with it.)
    """
    first, last = int(start // _BUCKET), int(end // _BUCKET)
    if last - first >= _BUCKETS_MAX:
        return [_TIME_TOKEN + "long"]
    return [f"{_TIME_TOKEN}{b}" for b in range(first, last + 1)]


def window_tokens(start: float, end: float) -> list[str] | None:
    """The time tokens a row overlapping ``[start, end]`` holds one of (None: too many)."""
    first, last = int(start // _BUCKET), int(min(end, 1e15) // _BUCKET)
    if last - first >= _BUCKETS_MAX:
        return None
    return [*(f"{_TIME_TOKEN}{b}" for b in range(first, last + 1)), _TIME_TOKEN + "long"]


def check_distinct(writes: Sequence[AnnotationWrite]) -> None:
    """Check that no annotation appears twice in one write.

    Raises:
        ValidationError: One does.
    """
    if len({w.id for w in writes}) < len(writes):
        raise ValidationError("an annotation appears twice in one write")


def check_head(write: AnnotationWrite, current: int, deleted: bool) -> None:
    """Check an update against the annotation's current version.

    Raises:
        VersionConflictError: The annotation is at another version, or deleted.
    """
    if current != write.expected_version:
        raise VersionConflictError(
            f"annotation {write.id} is at version {current}, not "
            f"{write.expected_version}: read it again and retry",
            current,
        )
    if deleted:
        raise VersionConflictError(f"annotation {write.id} is deleted", current)


def missing_annotation(
    namespace: str, annotation_id: UUID, version: int | None = None
) -> NotFoundError:
    """The error of an annotation (or a version of it) not found in a namespace."""
    what = f"annotation {annotation_id}"
    if version is not None:
        what += f" version {version}"
    return NotFoundError(f"{what} does not exist in namespace {namespace!r}")


def matching_types(rows: Iterable[Sequence[Any]], q: AnnotationQuery) -> list[int]:
    """The ids of the annotation types a query names.

    Args:
        rows: ``(id, lineage)`` of each type of the namespace (``lineage`` a JSON list,
            the type's own name first).
        q: The query (``types`` set).
    """
    assert q.types is not None
    out = []
    for type_id, lineage in rows:
        entries = _json.loads(lineage) if q.subtypes else _json.loads(lineage)[:1]
        if any(
            entry == want or (want.endswith(" v") and entry.startswith(want))
            for want in q.types
            for entry in entries
        ):
            out.append(type_id)
    return out


def link_condition(q: AnnotationQuery, key: Key, param: str) -> tuple[str, list[Any]]:
    """The links of an association (``l``) that may match the query's time window.

    Args:
        q: The query.
        key: The association.
        param: The backend's parameter placeholder.
    """
    ident, _, span = key
    condition = f"l.key = {param}"
    params: list[Any] = [ident]
    if q.time is not None and q.time_op == "overlaps":
        # An annotation overlapping [start, end] starts in [start - span, end]
        # (widened a little: the stored span is a difference of doubles).
        condition += f" AND l.t0 BETWEEN {param} AND {param} AND l.t1 >= {param}"
        params += [q.time[0] - span * (1 + 1e-9) - 1e-9, q.time[1], q.time[0]]
    elif q.time is not None:
        condition += f" AND l.t0 BETWEEN {param} AND {param}"
        params += [q.time[0], q.time[1]]
    return condition, params


def order_by(
    q: AnnotationQuery, a: str, pk: str, t0: str
) -> tuple[str, tuple[str, list[Any]] | None]:
    """``ORDER BY`` and the keyset condition after the cursor (on alias ``a``).

    Args:
        q: The query.
        a: The alias of the rows ordered (``h``: relevance orders by ``m.score``).
        pk: The placeholder of a ``pk`` parameter.
        t0: The placeholder of a ``t0`` parameter.
    """
    after = list(q.after or ())
    if q.sort == "relevance":
        return f"{'m' if a == 'h' else a}.score, {a}.pk", None
    if q.sort == "created":
        return f"{a}.pk", (f"{a}.pk > {pk}", after) if after else None
    if q.sort == "-created":
        return f"{a}.pk DESC", (f"{a}.pk < {pk}", after) if after else None
    keyset = f"({a}.t0, {a}.pk) {{}} ({t0}, {pk})"
    if q.sort == "-time":
        return f"{a}.t0 DESC, {a}.pk DESC", (keyset.format("<"), after) if after else None
    return f"{a}.t0, {a}.pk", (keyset.format(">"), after) if after else None


class AnnotationSearch(ABC, Generic[ConnT]):
    """One annotation search: what it names is looked up, then one page is read.

    A backend reads the text fields the query names, and the page (`select`): up to
    ``limit + 1`` rows of the stored version's columns (as its `record` reads them), then the
    score, ``t0`` and ``pk``.
    """

    param: ClassVar[str]
    """The backend's parameter placeholder."""

    def __init__(self, conn: ConnT, query: AnnotationQuery) -> None:
        self.conn = conn
        self.q = query

    def run(self) -> Page:
        """The page of results, and the cursor of the next (None: the last page)."""
        q = self.q
        type_ids: list[int] | None = None
        if q.types is not None:
            type_ids = matching_types(self.type_lineages(), q)
            if not type_ids:
                return [], None
        keys: list[Key] = []
        for kind, ident in q.associations:
            row = self.key(kind, ident)
            if row is None or row[1] <= 0:
                return [], None
            keys.append(row)
        fields: list[int] | None = None
        if q.text and q.text_fields is not None:
            fields = self.field_ids(q.text_fields)
            if not fields:
                return [], None
        offset = 0
        if q.sort == "relevance" and q.after:
            offset = int(q.after[0])
        rows = self.select(type_ids, keys, fields, offset)
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        records = [self.record(row, row[10]) for row in rows]
        if not more or not rows:
            return records, None
        last = rows[-1]
        if q.sort == "relevance":
            return records, (offset + q.limit,)
        if q.sort in ("created", "-created"):
            return records, (last[12],)
        return records, (last[11], last[12])

    def link_estimates(self, keys: list[Key]) -> list[tuple[float, int, str]]:
        """The estimate of starting from an association's links (none without associations).

        ``keys`` are sorted by their live count: the first is the one to start from.
        """
        if not keys:
            return []
        keys.sort(key=lambda k: k[1])
        estimate = keys[0][1]
        if self.q.time is not None and estimate > PROBE_LIMIT // 5:
            # The links of the window (an index range), counted up to a bound.
            condition, params = self.links_of(keys[0])
            estimate = self.count(
                f"SELECT 1 FROM annotation_links l WHERE {condition}", params, PROBE_LIMIT
            )
        return [(estimate, 0, "link")]

    @abstractmethod
    def count(self, sql: str, params: Sequence[Any], bound: int) -> int:
        """Rows of ``sql`` (a ``SELECT 1``), counted up to ``bound``."""

    def links_of(self, key: Key) -> tuple[str, list[Any]]:
        """The links of an association (``l``) that may match the query's time window."""
        return link_condition(self.q, key, self.param)

    def type_lineages(self) -> Iterable[Sequence[Any]]:
        """``(id, lineage)`` of each annotation type of the query's namespace."""
        rows: list[Sequence[Any]] = self.conn.execute(
            f"SELECT id, lineage FROM annotation_types WHERE namespace = {self.param}",
            (self.q.namespace,),
        ).fetchall()
        return rows

    def key(self, kind: str, ident: str) -> Key | None:
        """An association of the query's namespace (None: unknown)."""
        p = self.param
        row: Key | None = self.conn.execute(
            f"SELECT id, live, span FROM annotation_keys WHERE namespace = {p} AND type = {p} "
            f"AND value = {p}",
            (self.q.namespace, kind, ident),
        ).fetchone()
        return row

    @abstractmethod
    def field_ids(self, names: Sequence[str]) -> list[int]:
        """The ids of the text fields of these names that exist."""

    @abstractmethod
    def select(
        self, type_ids: list[int] | None, keys: list[Key], fields: list[int] | None, offset: int
    ) -> list[Any]:
        """The rows of the page (one more than the limit if there are more), from ``offset``.

        Args:
            type_ids: The types named (None: any).
            keys: The associations named (each known and live).
            fields: The text fields named (None: any).
            offset: Rows skipped (a relevance page's cursor).
        """

    @staticmethod
    @abstractmethod
    def record(row: Sequence[Any], score: float | None = None) -> AnnotationRecord:
        """The record of a row of the stored version's columns."""


class WhereSql(ABC):
    """A condition on ``data.*`` fields as SQL over the facets of the candidate row ``h``.

    Args:
        kinds: The kind of each field (``string`` when missing).
        params: The statement's parameters, which the tests append theirs to.
    """

    def __init__(self, kinds: dict[str, str], params: list[Any]) -> None:
        self.kinds = kinds
        self.params = params

    def expr(self, expr: Expr) -> str:
        """The SQL of a condition (its parameters appended to ``params``)."""
        if isinstance(expr, And):
            return "(" + " AND ".join(self.expr(item) for item in expr.items) + ")"
        if isinstance(expr, Or):
            return "(" + " OR ".join(self.expr(item) for item in expr.items) + ")"
        if isinstance(expr, Not):
            return f"(NOT {self.expr(expr.item)})"
        return self.test(expr)

    @abstractmethod
    def test(self, expr: Expr) -> str:
        """The SQL of a test of one field (not ``And``, ``Or`` or ``Not``)."""
