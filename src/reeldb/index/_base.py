"""What both index backends do alike: the generations of a DataStore's index and their reading.

`IndexBase` lists, chooses, resumes and swaps generations, and gathers a query's conditions
over the generations of a DataStore's alias; a backend creates and drops a generation's
tables, writes its rows and runs the queries. Every value is a bound parameter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

from reeldb.index._compile import FIRST_ROWS, NODE, SCALAR_SKIPPED, QueryCompiler, columns_of
from reeldb.index.model import Generation
from reeldb.index.rows import Column
from reeldb.query.ast import Expr, fields_of

__all__ = ["Connection", "DocumentQuery", "IndexBase", "row_indexes"]


def row_indexes(gid: int, columns: Sequence[Column], *, enum_strings: bool = False) -> list[str]:
    """The statements that create the B-trees of a generation's rows.

    B-trees for scalar fields of assets, events and regions. Tracks and components are few
    per document and their fields seldom select: a B-tree on every one of their rows would
    cost every write more than it saves (they stay searchable). An asset's or event's value
    is the same on all rows of the event, so its B-tree holds only each event's first row
    (``r <= 0``, a term every query without region fields has): ten times fewer entries for
    ten regions per event.

    Node ids grow with the row id: their B-trees are appended to, cheaply. They let a
    full-text hit (a node) or a hit of the events' index (an event) find the node's rows.
    Full-text hits on assets, tracks and components need only the nodes' first rows
    (queries without region fields read only those; with region fields, another B-tree
    leads). Events' need every row: a document-level query looks up all rows of the events
    a window of the events' index returns.

    Args:
        gid: The generation's id.
        columns: Its columns.
        enum_strings: Enums also keep their strings in ``s{i}`` (PostgreSQL): a B-tree each.

    Returns:
        ``CREATE INDEX`` statements.
    """
    statements = []
    for column in columns:
        if column.type in SCALAR_SKIPPED or column.level not in ("asset", "event", "region"):
            continue
        where = "" if column.level == "region" else f" WHERE {FIRST_ROWS}"
        names = ("v", "s") if enum_strings and column.type == "enum" else ("v",)
        statements += [
            f"CREATE INDEX ix{gid}_{n}{column.index} ON ix{gid}_rows ({n}{column.index}){where}"
            for n in names
        ]
    text_levels = {c.level for c in columns if c.type == "text"} | {"event"}
    for level in sorted(text_levels - {"region"}):
        node = NODE[level]
        where = "" if level == "event" else f" WHERE {FIRST_ROWS}"
        statements.append(f"CREATE INDEX ix{gid}_{node} ON ix{gid}_rows ({node}){where}")
    return statements


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the shared code needs of a database connection: statements with parameters."""

    def execute(self, sql: str, params: Any, /) -> _Cursor:
        """Run a statement with bound parameters."""
        ...


C = TypeVar("C", bound=Connection)


class DocumentQuery(NamedTuple):
    """A query compiled over the rows of one document in one generation.

    Attributes:
        gen: The generation holding the document's rows.
        span: The document's first and last row ids.
        where: The condition over the rows (alias ``r``).
        params: Its bound parameters.
        time: The column of events' time ranges.
    """

    gen: Generation
    span: tuple[int, int]
    where: str
    params: list[Any]
    time: Column


class IndexBase(ABC, Generic[C]):
    """Generations of an index and the conditions of a query over them, on a connection ``C``.

    Args:
        rollover_rows: Open a new generation when the newest one holds this many rows.
    """

    MARK: ClassVar[str]
    """The bound-parameter mark (``?`` or ``%s``)."""

    def __init__(self, *, rollover_rows: int = 1_000_000) -> None:
        self.rollover_rows = rollover_rows

    # -- what each backend does its own way ----------------------------------------------

    @abstractmethod
    def open_generation(
        self,
        conn: C,
        datastore_id: int,
        columns: Sequence[Column],
        *,
        alias: bool,
        state: str = "active",
    ) -> Generation:
        """Create a generation and its tables (in the alias if ``alias``), ``state`` as given."""

    @abstractmethod
    def drop(self, conn: C, generation: Generation) -> None:
        """Delete a generation (outside the alias) and its tables."""

    @abstractmethod
    def _count(
        self, conn: C, gen: Generation, spans: list[tuple[int, int, int, int]], rows: int
    ) -> None:
        """Record documents' spans ``(generation, seq, first row, last row)`` and rows."""

    @abstractmethod
    def _compiler(
        self, conn: C, gen: Generation, span: tuple[int, int] | None = None
    ) -> QueryCompiler:
        """The query compiler of a generation (of one document's rows, given its span)."""

    @staticmethod
    def _created(value: Any) -> datetime:
        """A generation's ``created_at`` as the driver returns it, as a datetime."""
        if isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value)

    # -- generations ---------------------------------------------------------------------

    def generations(self, conn: C, datastore_id: int) -> list[Generation]:
        """Every generation of a DataStore's index, oldest first.

        Args:
            conn: A connection.
            datastore_id: The DataStore.

        Returns:
            The generations.
        """
        rows = conn.execute(
            "SELECT g.id, g.name, g.state, g.columns, g.docs, g.rows, "
            "a.generation_id IS NOT NULL, g.created_at FROM index_generations g "
            f"LEFT JOIN index_alias a ON a.generation_id = g.id WHERE g.datastore_id = {self.MARK} "
            "ORDER BY g.id",
            (datastore_id,),
        ).fetchall()
        return [
            Generation(
                row[0],
                row[1],
                row[2],
                columns_of(row[3]),
                row[4],
                row[5],
                bool(row[6]),
                self._created(row[7]),
            )
            for row in rows
        ]

    def _writable(self, conn: C, datastore_id: int, columns: Sequence[Column]) -> Generation:
        """The generation new documents go to: the alias's newest, or a new one."""
        found = [g for g in self.generations(conn, datastore_id) if g.in_alias]
        newest = found[-1] if found else None
        if (
            newest is not None
            and newest.columns == tuple(columns)
            and newest.rows < self.rollover_rows
        ):
            return newest
        return self.open_generation(conn, datastore_id, columns, alias=True)

    # -- rebuilds ------------------------------------------------------------------------

    def begin_rebuild(self, conn: C, datastore_id: int, columns: Sequence[Column]) -> Generation:
        """The generation a rebuild fills: an unfinished one with these columns, or a new one.

        Args:
            conn: A connection, in a write transaction (on PostgreSQL, holding the
                DataStore's seq lock).
            datastore_id: The DataStore.
            columns: The DataStore's current columns.

        Returns:
            A ``building`` generation, outside the alias.
        """
        for gen in self.generations(conn, datastore_id):
            if gen.state != "building":
                continue
            if gen.columns == tuple(columns):
                return gen  # resume: a rebuild that stopped half way
            self.drop(conn, gen)
        return self.open_generation(conn, datastore_id, columns, alias=False, state="building")

    def checkpoint(self, conn: C, generation_id: int) -> int:
        """The last document sequence number indexed in a generation (0 if none).

        Args:
            conn: A connection.
            generation_id: The generation.

        Returns:
            The sequence number.
        """
        row = conn.execute(
            f"SELECT coalesce(max(doc_seq), 0) FROM index_docs WHERE generation_id = {self.MARK}",
            (generation_id,),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def swap(self, conn: C, datastore_id: int, generation: Generation) -> None:
        """Make a rebuilt generation the only one queries read, atomically.

        Args:
            conn: A connection, in the transaction that caught the generation up (on
                PostgreSQL, holding the DataStore's seq lock).
            datastore_id: The DataStore.
            generation: The rebuilt generation.
        """
        m = self.MARK
        conn.execute(f"DELETE FROM index_alias WHERE datastore_id = {m}", (datastore_id,))
        conn.execute(
            f"INSERT INTO index_alias (datastore_id, generation_id) VALUES ({m}, {m})",
            (datastore_id, generation.id),
        )
        conn.execute(
            f"UPDATE index_generations SET state = CASE WHEN id = {m} THEN 'active' "
            f"ELSE 'retired' END WHERE datastore_id = {m}",
            (generation.id, datastore_id),
        )

    # -- streamed documents --------------------------------------------------------------

    def publish(self, conn: C, gen: Generation, seq: int, base: int, rows: int) -> None:
        """Record a staged document's span (in the transaction that makes it visible).

        Args:
            conn: A connection, in a write transaction.
            gen: The generation it was staged in.
            seq: The document's sequence number.
            base: Its first row id.
            rows: Its row count.
        """
        self._count(conn, gen, [(gen.id, seq, base, base + rows - 1)], rows)

    # -- reading -------------------------------------------------------------------------

    def _matching_docs(self, conn: C, datastore_id: int, expr: Expr) -> tuple[str, list[Any]]:
        """The sequence numbers of the documents that match, as a ``UNION`` of generations'.

        Args:
            conn: A read connection.
            datastore_id: The DataStore.
            expr: The query (checked).

        Returns:
            A ``SELECT`` of document sequence numbers (empty: no index yet), its parameters.
        """
        # Without region fields, a row decides as every other row of its event does: each
        # event (and node without events) is decided by its first row alone.
        first_rows = all(f.level != "region" for f in fields_of(expr))
        parts, params = [], []
        for gen in self.generations(conn, datastore_id):
            if not gen.in_alias:
                continue
            where, values = self._compiler(conn, gen).compile(expr, "r")
            if first_rows:  # the same term as the partial B-trees', so they can be used
                where = f"r.{FIRST_ROWS} AND {where}"
            parts.append(f"SELECT r.doc FROM ix{gen.id}_rows r WHERE {where}")
            params += values
        return " UNION ".join(parts), params

    def _document_query(
        self, conn: C, datastore_id: int, doc_seq: int, expr: Expr
    ) -> DocumentQuery | None:
        """A query over one document's rows, in the newest generation of the alias holding it.

        Args:
            conn: A read connection.
            datastore_id: The document's DataStore.
            doc_seq: The document's sequence number.
            expr: The query (checked).

        Returns:
            The compiled query, or None if no generation of the alias holds the document.
        """
        for gen in reversed(self.generations(conn, datastore_id)):
            if not gen.in_alias:
                continue
            span = conn.execute(
                f"SELECT first_row, last_row FROM index_docs WHERE generation_id = {self.MARK} "
                f"AND doc_seq = {self.MARK}",
                (gen.id, doc_seq),
            ).fetchone()
            if span is None:
                continue
            time = next(c for c in gen.columns if (c.level, c.name) == ("event", "time_range"))
            where, values = self._compiler(conn, gen, (span[0], span[1])).compile(expr, "r")
            return DocumentQuery(gen, (span[0], span[1]), where, values, time)
        return None
