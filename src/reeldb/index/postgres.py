"""The search index on PostgreSQL: tables in the database, written in the document's transaction.

It answers every query exactly as `reeldb.index.sqlite` does (the reference), with
PostgreSQL's own indexes. Each *generation* of a DataStore's index has its own tables, named
after its id ``g``:

* ``ix{g}_rows``: one row per document row (`reeldb.index.rows`), with the document's
  sequence number, the row's position, the ids of the first rows of its track, component
  and event (node ids), and one column per value, typed so that comparisons are SQLite's:
  ``int`` and ``float`` values as ``numeric`` (exact, as SQLite compares integers with
  doubles), strings as ``text COLLATE "C"`` (byte order, SQLite's ``BINARY``), timestamps
  as ``bigint`` microseconds, booleans as ``smallint``, time ranges and boxes as
  ``float8``. An ``enum`` may hold numbers and strings: its numbers are in ``v{i}``, its
  strings in ``s{i}``, and the compiler orders them as SQLite does (numbers first). A
  B-tree per scalar column of assets, events and regions, chosen as SQLite's are.
* ``ix{g}_chunks``: the events' JSON in chunks (``events`` stored uncompressed, so that a
  page of hits reads only its events' bytes with ``substring``).
* ``ix{g}_time``: each event's time range (``tb``) and the box around its regions' boxes
  (``sb``) as ``box`` values with GiST indexes; ``&&`` finds candidate events, the exact
  tests on the rows decide.
* ``ix{g}_fts``: one row per node and text field: its tokens (`fts_token`, the stems of
  `reeldb.query.fulltext`) as text, and as a ``tsvector`` (GIN) of its distinct lexemes. The
  GIN index finds the nodes holding every word of a phrase; the phrase test on the tokens
  decides, so a match is exactly an FTS5 phrase match.

Row ids: a generation's ``next_row``/``next_chunk`` counters (in ``index_generations``) are
moved on with ``UPDATE ... RETURNING``, so each document's rows get consecutive ids, also
when a streamed document reserves its range long before it is staged (no sentinel rows are
needed, unlike on SQLite). Generations are opened and swapped, and new documents indexed,
by transactions that hold the DataStore's seq lock (`reeldb.store.postgres._documents`,
``lock_datastores``): the callers take it.

Plans: a DataStore-level query gathers the matching documents' numbers once, as an array,
and looks them up in ``documents`` by primary key, whatever the statistics say; a
generation's tables are analyzed as they pass 500, 2 000, 8 000, ... rows (fresh tables
have no statistics until autovacuum comes by).

Strings cannot hold NUL in PostgreSQL: U+0000 and U+0001 are spelled U+0001 U+0001 and
U+0001 U+0002 in values and literals alike, which keeps equality and byte order.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple
from uuid import UUID

import orjson
import psycopg
from psycopg import errors as pg_errors

from reeldb.errors import ConflictError
from reeldb.index._base import IndexBase, row_indexes
from reeldb.index._compile import (
    FIXED,
    OPS,
    QueryCompiler,
    column_json,
    columns_of,
    fts_token,
)
from reeldb.index.model import EventHit, Generation
from reeldb.index.rows import Column, DocumentRows, literal, space_column
from reeldb.query.ast import BoxTest, Compare, Expr, In, Overlaps

__all__ = ["PostgresIndex"]

Conn = psycopg.Connection[Any]

_LEXEME: Final = 200
"""Longer tokens are hashed in the ``tsvector`` (PostgreSQL caps a lexeme at 2 KB)."""
_SQL_TYPE: Final = {
    "text": 'TEXT COLLATE "C"',
    "keyword": 'TEXT COLLATE "C"',
    "string": 'TEXT COLLATE "C"',
    "enum": "NUMERIC",
    "int": "NUMERIC",
    "float": "NUMERIC",
    "bool": "SMALLINT",
    "timestamp": "BIGINT",
    "time_range": "FLOAT8",
    "bounding_box": "FLOAT8",
}
_COPY_TYPE: Final = {
    'TEXT COLLATE "C"': "text",
    "NUMERIC": "numeric",
    "SMALLINT": "int2",
    "BIGINT": "int8",
    "FLOAT8": "float8",
}
"""The binary ``COPY`` type of each value column's SQL type."""
_FIXED_COPY_TYPES: Final = ("int8", "int8", *("int4",) * 4, *("int8",) * 7)
"""Those of `FIXED`: ``id, doc`` then ``t, c, e, r`` then node ids and chunk positions."""
_ANALYZE_AT: Final = tuple(500 * 4**k for k in range(8))
"""Row counts of a generation at which its tables' statistics are gathered (then autovacuum's)."""


def _text(value: str) -> str:
    """A string as stored: NUL-free, with equality and byte order kept."""
    if "\x00" in value or "\x01" in value:
        return value.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return value


def _number(value: Any) -> Any:
    """A number as ``numeric`` takes it exactly (a double's exact decimal expansion)."""
    return Decimal(value) if type(value) is float else value


def _lexeme(token: str) -> str:
    return token if len(token) <= _LEXEME else "#" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Layout:
    """How a generation's rows are stored: the value columns and their conversion.

    Attributes:
        names: The value columns after the fixed ones (``v0``, ... then ``s{i}`` per enum).
        types: Their SQL types.
        convert: From a cut row's values (``row[10:]``) to the stored ones.
    """

    names: tuple[str, ...]
    types: tuple[str, ...]
    convert: Callable[[Sequence[Any]], list[Any]]

    @property
    def copy_types(self) -> list[str]:
        """Every column's type for a binary ``COPY`` of rows (`FIXED` first)."""
        return [*_FIXED_COPY_TYPES, *(_COPY_TYPE[t] for t in self.types)]


@functools.lru_cache(maxsize=256)
def _layout(columns: tuple[Column, ...]) -> _Layout:
    names: list[str] = []
    types: list[str] = []
    for column in columns:
        for i in range(column.width):
            names.append(f"v{column.index + i}")
            types.append(_SQL_TYPE[column.type])
    enums = [c.index for c in columns if c.type == "enum"]
    names += [f"s{i}" for i in enums]
    types += ['TEXT COLLATE "C"'] * len(enums)
    numbers = [c.index for c in columns if c.type in ("int", "float")]
    strings = [c.index for c in columns if c.type in ("text", "keyword", "string")]

    def convert(values: Sequence[Any]) -> list[Any]:
        out = list(values)
        for i in numbers:
            if type(out[i]) is float:
                out[i] = Decimal(out[i])
        for i in strings:
            if out[i] is not None:
                out[i] = _text(out[i])
        for i in enums:
            value = out[i]
            if isinstance(value, str):
                out[i] = None
                out.append(_text(value))
            else:
                out[i] = _number(value)
                out.append(None)
        return out

    return _Layout(tuple(names), tuple(types), convert)


class _Part(NamedTuple):
    """Rows to insert: a document's, or a batch of them, and where their ids start."""

    seq: int
    doc: DocumentRows
    rows_at: tuple[int, int]
    chunks_at: tuple[int, int]


def _box(x0: float | None, y0: float | None, x1: float | None, y1: float | None) -> str | None:
    """A ``box`` in PostgreSQL's text form (None if a corner is missing)."""
    if x0 is None or y0 is None or x1 is None or y1 is None:
        return None
    return f"({x0!r},{y0!r}),({x1!r},{y1!r})"


class PostgresIndex(IndexBase[Conn]):
    """Index reads and writes on connections of the store (writes inside its transactions).

    Args:
        rollover_rows: Open a new generation when the newest one holds this many rows.
    """

    MARK = "%s"

    # -- generations ---------------------------------------------------------------------

    def open_generation(
        self,
        conn: Conn,
        datastore_id: int,
        columns: Sequence[Column],
        *,
        alias: bool,
        state: str = "active",
    ) -> Generation:
        """Create a generation and its tables.

        Args:
            conn: A connection, in a write transaction holding the DataStore's seq lock.
            datastore_id: The DataStore.
            columns: Its columns.
            alias: Add it to the DataStore's alias (queries read it, new documents go to it).
            state: ``active`` or ``building``.

        Returns:
            The new generation.
        """
        # Names only grow: g1, g2, ... (a dropped generation's name is not reused).
        row = conn.execute(
            "SELECT coalesce(max(substr(name, 2)::bigint), 0) FROM index_generations "
            "WHERE datastore_id = %s",
            (datastore_id,),
        ).fetchone()
        assert row is not None
        name = f"g{row[0] + 1}"
        now = datetime.now(UTC)
        created = conn.execute(
            "INSERT INTO index_generations (datastore_id, name, state, columns, created_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (datastore_id, name, state, column_json(columns), now),
        ).fetchone()
        assert created is not None
        gid = int(created[0])
        layout = _layout(tuple(columns))
        values = "".join(f", {n} {t}" for n, t in zip(layout.names, layout.types, strict=True))
        conn.execute(
            f"CREATE TABLE ix{gid}_rows (id BIGINT PRIMARY KEY, doc BIGINT NOT NULL, "
            "t INTEGER, c INTEGER, e INTEGER, r INTEGER, d0 BIGINT, t0 BIGINT, c0 BIGINT, "
            f"e0 BIGINT, k BIGINT, ko BIGINT, kl BIGINT{values})"
        )
        conn.execute(
            f"CREATE TABLE ix{gid}_chunks (id BIGINT PRIMARY KEY, head BYTEA NOT NULL, "
            "events BYTEA NOT NULL)"
        )
        # Uncompressed: substring() reads only the slices of one event.
        conn.execute(f"ALTER TABLE ix{gid}_chunks ALTER COLUMN events SET STORAGE EXTERNAL")
        # B-trees of scalar values of assets, events and regions, and of node ids.
        for statement in row_indexes(gid, columns, enum_strings=True):
            conn.execute(statement)
        # Each event's time range, keyed by its first row; with regions' boxes, also the
        # box around all of its regions' (`space_column`).
        space = space_column(columns) is not None
        boxes = ", sb BOX" if space else ""
        conn.execute(f"CREATE TABLE ix{gid}_time (id BIGINT PRIMARY KEY, tb BOX{boxes})")
        conn.execute(f"CREATE INDEX ix{gid}_time_tb ON ix{gid}_time USING gist (tb)")
        if space:
            conn.execute(f"CREATE INDEX ix{gid}_time_sb ON ix{gid}_time USING gist (sb)")
        if any(c.type == "text" for c in columns):
            conn.execute(
                f"CREATE TABLE ix{gid}_fts (id BIGINT NOT NULL, f INTEGER NOT NULL, "
                "words TEXT NOT NULL, tsv TSVECTOR NOT NULL)"
            )
            conn.execute(f"CREATE INDEX ix{gid}_fts_tsv ON ix{gid}_fts USING gin (tsv)")
            conn.execute(f"CREATE INDEX ix{gid}_fts_id ON ix{gid}_fts (id)")
        if alias:
            conn.execute(
                "INSERT INTO index_alias (datastore_id, generation_id) VALUES (%s, %s)",
                (datastore_id, gid),
            )
        return Generation(gid, name, state, tuple(columns), 0, 0, alias, now)

    # -- rebuilds ------------------------------------------------------------------------

    def drop(self, conn: Conn, generation: Generation) -> None:
        """Delete a generation and its tables.

        Args:
            conn: A connection, in a write transaction.
            generation: A generation outside the alias.
        """
        gid = generation.id
        conn.execute("DELETE FROM index_docs WHERE generation_id = %s", (gid,))
        conn.execute("DELETE FROM index_alias WHERE generation_id = %s", (gid,))
        conn.execute("DELETE FROM index_generations WHERE id = %s", (gid,))
        conn.execute(
            f"DROP TABLE IF EXISTS ix{gid}_rows, ix{gid}_fts, ix{gid}_chunks, ix{gid}_time"
        )

    # -- writing -------------------------------------------------------------------------

    def add(
        self,
        conn: Conn,
        datastore_id: int,
        columns: Sequence[Column],
        docs: Sequence[tuple[int, DocumentRows]],
        generation: Generation | None = None,
    ) -> None:
        """Index documents (in the caller's write transaction).

        Args:
            conn: A connection, in a write transaction (holding the DataStore's seq lock
                unless ``generation`` is given).
            datastore_id: The DataStore.
            columns: The columns the rows were cut with.
            docs: ``(document seq, rows)`` per document.
            generation: Write to this generation (a rebuild); default: the newest
                generation of the alias with these columns, opened if there is none.
        """
        if not docs:
            return
        gen = generation or self._writable(conn, datastore_id, columns)
        count = sum(len(doc.rows) for _, doc in docs)
        first, chunk_id = self._allocate(conn, gen, count, sum(len(doc.chunks) for _, doc in docs))
        parts: list[_Part] = []
        spans: list[tuple[int, int, int, int]] = []
        for seq, doc in docs:
            parts.append(_Part(seq, doc, (first, 0), (chunk_id, 0)))
            spans.append((gen.id, seq, first, first + len(doc.rows) - 1))
            first += len(doc.rows)
            chunk_id += len(doc.chunks)
        self._insert(conn, gen, parts)
        self._insert_texts(conn, gen, parts)
        self._count(conn, gen, spans, count)

    @staticmethod
    def _allocate(conn: Conn, gen: Generation, rows: int, chunks: int) -> tuple[int, int]:
        """Take the next ``rows`` row ids and ``chunks`` chunk ids of a generation."""
        row = conn.execute(
            "UPDATE index_generations SET next_row = next_row + %s, "
            "next_chunk = next_chunk + %s WHERE id = %s "
            "RETURNING next_row - %s, next_chunk - %s",
            (rows, chunks, gen.id, rows, chunks),
        ).fetchone()
        if row is None:
            raise ConflictError(f"index generation #{gen.id} was dropped during the write; retry")
        return int(row[0]), int(row[1])

    @staticmethod
    def _insert(conn: Conn, gen: Generation, parts: Sequence[_Part]) -> None:
        """Insert documents' rows, or a batch of one document's (`RowCutter`): one COPY a table.

        Each part's ``rows_at`` is ``(base, start)``: the document's first row id and the
        offset of the part's first row in the document (0 for a whole document);
        ``chunks_at`` likewise.
        """
        gid = gen.id
        layout = _layout(gen.columns)
        convert = layout.convert
        names = ", ".join((*FIXED, *layout.names))
        with conn.cursor() as cursor:
            # Binary: no text formatting of every value (a third less time on the client).
            with cursor.copy(f"COPY ix{gid}_rows ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(layout.copy_types)
                for seq, doc, (base, start), (chunk_base, _) in parts:
                    first = base + start
                    for i, row in enumerate(doc.rows):
                        t, c, e, r, t0, c0, e0, k, ko, kl = row[:10]
                        copy.write_row(
                            (
                                first + i,
                                seq,
                                t,
                                c,
                                e,
                                r,
                                base,
                                None if t0 is None else base + t0,
                                None if c0 is None else base + c0,
                                None if e0 is None else base + e0,
                                None if k is None else chunk_base + k,
                                ko,
                                kl,
                                *convert(row[10:]),
                            )
                        )
            if any(part.doc.chunks for part in parts):
                with cursor.copy(f"COPY ix{gid}_chunks (id, head, events) FROM STDIN") as copy:
                    for _, doc, _, (chunk_base, chunk_start) in parts:
                        for i, (head, events) in enumerate(doc.chunks):
                            copy.write_row((chunk_base + chunk_start + i, head, events))
            if not any(part.doc.events for part in parts):
                return
            # Each event's time range (and box around its regions), keyed by its first row.
            time = next(
                c.index for c in gen.columns if (c.level, c.name) == ("event", "time_range")
            )
            at = 10 + time  # where an event's start is in a cut row
            space = space_column(gen.columns) is not None
            target = "id, tb, sb" if space else "id, tb"
            with cursor.copy(f"COPY ix{gid}_time ({target}) FROM STDIN") as copy:
                for _, doc, (base, start), _ in parts:
                    rows = doc.rows
                    for e0, box in doc.events:
                        lo, hi = rows[e0 - start][at], rows[e0 - start][at + 1]
                        item: tuple[Any, ...] = (base + e0, _box(lo, 0.0, hi, 0.0))
                        if space:
                            item += (None if box is None else _box(box[0], box[2], box[1], box[3]),)
                        copy.write_row(item)

    @staticmethod
    def _insert_texts(conn: Conn, gen: Generation, parts: Sequence[_Part]) -> None:
        """Insert the texts of the parts' nodes: one row per node and text field."""
        text_columns = {(c.level, c.name): c.index for c in gen.columns if c.type == "text"}
        if not text_columns or not any(part.doc.texts for part in parts):
            return
        sql = f"COPY ix{gen.id}_fts (id, f, words, tsv) FROM STDIN"
        with conn.cursor() as cursor, cursor.copy(sql) as copy:
            for _, doc, (base, _), _ in parts:
                for offset, level, found in doc.texts:
                    for name, words in found.items():
                        index = text_columns.get((level, name))
                        if index is None or not words:
                            continue
                        tokens = [fts_token(w) for w in words.split()]
                        lexemes = " ".join(f"'{x}'" for x in sorted({_lexeme(t) for t in tokens}))
                        copy.write_row((base + offset, index, f" {' '.join(tokens)} ", lexemes))

    @staticmethod
    def _count(
        conn: Conn, gen: Generation, spans: list[tuple[int, int, int, int]], rows: int
    ) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO index_docs (generation_id, doc_seq, first_row, last_row) "
                "VALUES (%s, %s, %s, %s)",
                spans,
            )
        found = conn.execute(
            "UPDATE index_generations SET docs = docs + %s, rows = rows + %s WHERE id = %s "
            "RETURNING rows",
            (len(spans), rows, gen.id),
        ).fetchone()
        if found is None:
            raise ConflictError(f"index generation #{gen.id} was dropped during the write; retry")
        total = int(found[0])
        if any(total - rows < at <= total for at in _ANALYZE_AT):
            # Fresh tables have no statistics until autovacuum comes by: the planner would
            # take a filled generation for an empty one (nested loops over thousands of rows).
            texts = any(c.type == "text" for c in gen.columns)
            for table in ("rows", "time", "fts") if texts else ("rows", "time"):
                conn.execute(f"ANALYZE ix{gen.id}_{table}")

    # -- streamed documents: rows reserved, staged in batches, then published ---------------

    def reserve(
        self,
        conn: Conn,
        datastore_id: int,
        columns: Sequence[Column],
        rows: int,
        chunks: int,
    ) -> tuple[Generation, int, int]:
        """Reserve ids for a document indexed in batches over several transactions.

        The generation's counters move past the range at once, so the document's rows have
        consecutive ids (`events` reads a document's span) whatever is written meanwhile.
        The staged rows stay invisible until `publish`: queries join the ``documents``
        table, where the document appears only then.

        Args:
            conn: A connection, in a write transaction holding the DataStore's seq lock.
            datastore_id: The DataStore.
            columns: The columns the rows will be cut with.
            rows: How many rows the document cuts into (at least 1).
            chunks: How many chunks of events it has.

        Returns:
            The generation, the first row id and the first chunk id.
        """
        gen = self._writable(conn, datastore_id, columns)
        base, chunk_base = self._allocate(conn, gen, rows, chunks)
        return gen, base, chunk_base

    def stage(
        self,
        conn: Conn,
        gen: Generation,
        seq: int,
        batch: DocumentRows,
        rows_at: tuple[int, int],
        chunks_at: tuple[int, int],
    ) -> None:
        """Write a batch of a reserved document's rows (`RowCutter.take`).

        Args:
            conn: A connection, in a write transaction.
            gen: From `reserve`.
            seq: The document's sequence number.
            batch: The rows.
            rows_at: ``(first row id, the batch's first row offset)``.
            chunks_at: ``(first chunk id, the batch's first chunk offset)``.
        """
        parts = [_Part(seq, batch, rows_at, chunks_at)]
        self._insert(conn, gen, parts)
        self._insert_texts(conn, gen, parts)

    def discard(
        self, conn: Conn, generation_id: int, rows_at: tuple[int, int], chunks_at: tuple[int, int]
    ) -> None:
        """Delete a staged document's rows, events' boxes, texts and chunks.

        Args:
            conn: A connection, in a write transaction.
            generation_id: The generation it was staged in.
            rows_at: ``(first row id, row count)``.
            chunks_at: ``(first chunk id, chunk count)``.
        """
        gid = generation_id
        found = conn.execute(
            "SELECT columns FROM index_generations WHERE id = %s", (gid,)
        ).fetchone()
        if found is None:
            return  # the generation was dropped: nothing is left
        low, high = rows_at[0], rows_at[0] + rows_at[1] - 1
        conn.execute(f"DELETE FROM ix{gid}_rows WHERE id BETWEEN %s AND %s", (low, high))
        conn.execute(f"DELETE FROM ix{gid}_time WHERE id BETWEEN %s AND %s", (low, high))
        if any(c.type == "text" for c in columns_of(found[0])):
            conn.execute(f"DELETE FROM ix{gid}_fts WHERE id BETWEEN %s AND %s", (low, high))
        conn.execute(
            f"DELETE FROM ix{gid}_chunks WHERE id BETWEEN %s AND %s",
            (chunks_at[0], chunks_at[0] + chunks_at[1] - 1),
        )

    # -- reading -------------------------------------------------------------------------

    def filter(
        self,
        conn: Conn,
        datastore_id: int,
        expr: Expr,
        *,
        all_versions: bool,
        limit: int,
        after_seq: int,
    ) -> list[tuple[int, UUID, str]]:
        """Documents of a DataStore that match a query, in write order.

        Args:
            conn: A read connection.
            datastore_id: The DataStore.
            expr: The query (checked).
            all_versions: Also older versions of a MID (default: only each MID's latest).
            limit: At most this many.
            after_seq: Only documents written after this sequence number (the cursor).

        Returns:
            ``(seq, document id, mid key)`` per document.
        """
        matched = self._matched(conn, datastore_id, expr, all_versions=all_versions)
        if matched is None:
            return []
        where, params = matched
        rows = conn.execute(
            f"SELECT d.seq, d.id, d.mid_key FROM documents d WHERE {where} AND d.seq > %s "
            "ORDER BY d.seq LIMIT %s",
            [*params, after_seq, limit],
        ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def count(
        self, conn: Conn, datastore_id: int, expr: Expr, *, all_versions: bool, budget: int
    ) -> int | None:
        """How many documents `filter` would return in all, if PostgreSQL can tell in time.

        Args:
            conn: A read connection.
            datastore_id: The DataStore.
            expr: The query (checked).
            all_versions: As for `filter`.
            budget: The time the count may take, in the unit of SQLite's budget (100 000 a
                millisecond): the statement is cancelled past it. Under a millisecond
                counts nothing.

        Returns:
            The count, or None if it was not cheap.
        """
        matched = self._matched(conn, datastore_id, expr, all_versions=all_versions)
        if matched is None:
            return 0
        millis = min(budget // 100_000, 2**31 - 1)
        if millis < 1:
            return None
        where, params = matched
        before = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
        assert before is not None
        try:
            with conn.transaction():  # a savepoint: a cancelled count leaves the snapshot
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{millis}",))
                row = conn.execute(
                    f"SELECT count(*) FROM documents d WHERE {where}", params
                ).fetchone()
        except pg_errors.QueryCanceled:
            return None  # not cheap
        finally:
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (before[0],))
        assert row is not None
        return int(row[0])

    def _matched(
        self, conn: Conn, datastore_id: int, expr: Expr, *, all_versions: bool
    ) -> tuple[str, list[Any]] | None:
        """The condition on ``documents d`` of the documents that match (None: no index yet)."""
        union, params = self._matching_docs(conn, datastore_id, expr)
        if not union:
            return None
        # The matching documents' numbers are gathered once, as an array, and looked up by
        # primary key: a plan that does not hang on the statistics of either table. The
        # latest-version test names the DataStore too: it reads one partition, planned once.
        where = f"d.seq = ANY(ARRAY({union})) AND d.datastore_id = %s"
        if all_versions:
            return where, [*params, datastore_id]
        latest = (
            " AND d.seq = (SELECT max(d2.seq) FROM documents d2 "
            "WHERE d2.datastore_id = %s AND d2.mid_key = d.mid_key)"
        )
        return where + latest, [*params, datastore_id, datastore_id]

    def _compiler(
        self, conn: Conn, gen: Generation, span: tuple[int, int] | None = None
    ) -> _Compiler:
        return _Compiler(gen, span)

    def events(
        self,
        conn: Conn,
        datastore_id: int,
        doc_seq: int,
        expr: Expr,
        *,
        limit: int,
        offset: int,
    ) -> list[EventHit]:
        """The events of one document that match a query, in time order, one page.

        Only the bytes of the page's events are read from their chunks.

        Args:
            conn: A read connection.
            datastore_id: The document's DataStore.
            doc_seq: The document's sequence number.
            expr: The query (checked).
            limit: At most this many events.
            offset: Skip this many first.

        Returns:
            Each matching event once, by start, end, then position.
        """
        query = self._document_query(conn, datastore_id, doc_seq, expr)
        if query is None:
            return []
        gen, span, where, values, time = query
        start, end = f"r.v{time.index}", f"r.v{time.index + 1}"
        # SQLite sorts NULL first: so does this.
        found = conn.execute(
            f"WITH hits AS (SELECT r.t, r.c, r.e, r.k, min({start}) AS lo, "
            f"min({end}) AS hi, array_agg(r.r) AS regions, min(r.ko) AS ko, "
            f"min(r.kl) AS kl FROM ix{gen.id}_rows r WHERE r.id BETWEEN %s AND %s "
            f"AND r.e >= 0 AND {where} GROUP BY r.e0, r.t, r.c, r.e, r.k "
            "ORDER BY lo NULLS FIRST, hi NULLS FIRST, r.t, r.c, r.e LIMIT %s OFFSET %s) "
            "SELECT h.t, h.c, h.e, h.k, h.lo, h.hi, h.regions, "
            "substring(ch.events FROM (h.ko + 1)::integer FOR h.kl::integer) "
            f"FROM hits h JOIN ix{gen.id}_chunks ch ON ch.id = h.k "
            "ORDER BY h.lo NULLS FIRST, h.hi NULLS FIRST, h.t, h.c, h.e",
            [span[0], span[1], *values, limit, offset],
        ).fetchall()
        if not found:
            return []
        heads = {
            k: orjson.loads(head)
            for k, head in conn.execute(
                f"SELECT id, head FROM ix{gen.id}_chunks WHERE id = ANY(%s)",
                (sorted({row[3] for row in found}),),
            ).fetchall()
        }
        return [
            EventHit(
                (t, c, e),
                lo,
                hi,
                tuple(sorted(r for r in regions if r >= 0)),
                orjson.loads(event),
                heads[k]["track"],
                heads[k]["component"],
            )
            for t, c, e, k, lo, hi, regions, event in found
        ]


class _Compiler(QueryCompiler):
    """A query as an SQL condition over one generation's rows, with ``%s`` parameters.

    The GiST indexes of events' times and boxes find candidate events (``&&``); the probe
    is offered where SQLite's compiler offers its R*Tree probe.

    Args:
        gen: The generation.
        span: The row ids of one document, for document-level queries.
    """

    MARK = "%s"
    FALSE = "FALSE"

    def __init__(self, gen: Generation, span: tuple[int, int] | None = None) -> None:
        super().__init__(gen, span, space=space_column(gen.columns) is not None)

    def _compare(self, expr: Compare | In, column: Column, a: str, params: list[Any]) -> str:
        if column.type == "enum":
            return self._enum(expr, column, a, params)
        return super()._compare(expr, column, a, params)

    def _literal(self, column: Column, value: Any) -> Any:
        found = literal(column.type, value)
        if isinstance(found, str):
            return _text(found)
        return _number(found) if column.type in ("int", "float") else found

    def _enum(self, expr: Compare | In, column: Column, a: str, params: list[Any]) -> str:
        """An enum's test: its numbers (``v``) sort before its strings (``s``), as in SQLite."""
        v, s = f"{a}.v{column.index}", f"{a}.s{column.index}"
        if isinstance(expr, In):
            found = [literal("enum", value) for value in expr.values]
            numbers = [_number(x) for x in found if x is not None and not isinstance(x, str)]
            strings = [_text(x) for x in found if isinstance(x, str)]
            tests = []
            if numbers:
                params.extend(numbers)
                tests.append(f"({v} IS NOT NULL AND {v} IN ({', '.join(['%s'] * len(numbers))}))")
            if strings:
                params.extend(strings)
                tests.append(f"({s} IS NOT NULL AND {s} IN ({', '.join(['%s'] * len(strings))}))")
            if len(numbers) + len(strings) < len(found):  # NULL in the list: never true
                tests.append(f"(({v} IS NOT NULL OR {s} IS NOT NULL) AND NULL)")
            return "(" + " OR ".join(tests) + ")"
        value, op = literal("enum", expr.value), expr.op
        if value is None:
            return f"(({v} IS NOT NULL OR {s} IS NOT NULL) AND NULL)"
        # A value of the other kind is never equal; a number is below any string.
        if isinstance(value, str):
            same, other, passes = s, v, op in ("!=", "<", "<=")
            params.append(_text(value))
        else:
            same, other, passes = v, s, op in ("!=", ">", ">=")
            params.append(_number(value))
        test = f"({same} IS NOT NULL AND {same} {OPS[op]} %s)"
        return f"({test} OR {other} IS NOT NULL)" if passes else test

    def _match(self, node: str, column: Column, tokens: list[str], params: list[Any]) -> str:
        params.append(" & ".join(f"'{_lexeme(t)}'" for t in dict.fromkeys(tokens)))
        params.append(f" {' '.join(tokens)} ")
        return (
            f"({node} IS NOT NULL AND {node} IN (SELECT id FROM ix{self.gen.id}_fts "
            f"WHERE tsv @@ %s::tsquery AND f = {column.index} AND strpos(words, %s) > 0))"
        )

    def _time_window(self, expr: Overlaps, params: list[Any]) -> str:
        params += [float(expr.start), float(expr.end)]
        return "tb && box(point(%s, 0), point(%s, 0))"

    def _space_window(self, expr: BoxTest, params: list[Any]) -> str:
        qx, qy, qw, qh = (float(v) for v in (expr.box.x, expr.box.y, expr.box.w, expr.box.h))
        params += [qx, qy, qx + qw, qy + qh]  # a box within the query's intersects it
        return "sb && box(point(%s, %s), point(%s, %s))"
