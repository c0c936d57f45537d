"""The embedded search index: tables in the SQLite file, written in the document's transaction.

Each *generation* of a DataStore's index has its own tables, named after its id ``g``:

* ``ix{g}_rows``: one row per document row (`reeldb.index.rows`), with the document's
  sequence number, the row's position, the ids of the first rows of its track, component
  and event (node ids), and one column per value (``v0``, ``v1``, ...); a B-tree index per
  scalar column;
* ``ix{g}_fts``: FTS5 over the Porter stems of each text field, one row per node with text
  (its rowid is the node's first row id).

A generation's columns are fixed when it is created; a document whose schema has other
searchable fields opens a new generation. Queries read every generation of the DataStore's
alias (a field a generation lacks is missing there).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from reeldb.index._base import IndexBase, row_indexes
from reeldb.index._compile import (
    FIXED,
    QueryCompiler,
    column_json,
    fts_token,
)
from reeldb.index.model import EventHit, Generation
from reeldb.index.rows import Column, DocumentRows, space_column
from reeldb.query.ast import BoxTest, Expr, Overlaps

__all__ = ["SQLiteIndex", "build_b_tree", "fts_token"]

_NO_BOX: Final = 3.0e38
"""The R*Tree box of an event without boxes: beyond any box a query names (exact tests decide)."""


_ROWS_PER_STATEMENT: Final = 64
"""Rows inserted by one statement (a ``VALUES`` list) into a table without B-trees yet.

Measured: faster than a statement per row into a table without secondary B-trees, slower
into one with them.
"""


_SORT_CACHE_KIB: Final = 2048
"""The page cache (KiB) while a B-tree is built over a full table (`build_b_tree`)."""


def build_b_tree(conn: sqlite3.Connection, statement: str) -> None:
    """Run a ``CREATE INDEX`` over a table already full, sorting in small runs on two threads.

    SQLite sorts the new index's keys in runs the size of the page cache, then merges them.
    Measured on 1M and 5M rows of a text column (the region-level keyword of a document of
    its own): runs of 2 MiB, which stay in the CPU's caches, sort about twice as fast as
    runs of the connection's 64 MiB; a second sorting thread saves another 5-15%.
    """
    cache = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    conn.execute(f"PRAGMA cache_size = -{_SORT_CACHE_KIB}")
    conn.execute("PRAGMA threads = 2")
    try:
        conn.execute(statement)
    finally:
        conn.execute("PRAGMA threads = 0")
        conn.execute(f"PRAGMA cache_size = {cache}")


def _insert_rows(
    conn: sqlite3.Connection,
    head: str,
    values: Callable[[int], str],
    rows: Sequence[tuple[Any, ...]],
    *,
    grouped: bool,
) -> None:
    """Insert rows: ``head`` then ``values(j)`` for the statement's ``j``-th row.

    ``values(j)`` binds the row's parameters as ``?(j * n + 1)`` to ``?(j * n + n)``.
    ``grouped``: many rows per statement (`_ROWS_PER_STATEMENT`), else one.
    """
    if not rows:
        return
    full = 0
    if grouped:
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        group = min(_ROWS_PER_STATEMENT, limit // len(rows[0]))
        if group > 1:
            full = len(rows) // group * group
            chain = itertools.chain.from_iterable
            conn.executemany(
                head + ", ".join(values(j) for j in range(group)),
                (tuple(chain(rows[i : i + group])) for i in range(0, full, group)),
            )
    if full < len(rows):
        conn.executemany(head + values(0), rows[full:] if full else rows)


class SQLiteIndex(IndexBase[sqlite3.Connection]):
    """Index reads and writes on connections of the store (writes inside its transactions).

    Args:
        rollover_rows: Open a new generation when the newest one holds this many rows.
    """

    MARK = "?"

    def __init__(self, *, rollover_rows: int = 1_000_000) -> None:
        super().__init__(rollover_rows=rollover_rows)
        self._space: dict[int, bool] = {}
        self.own_generation_rows = max(1, rollover_rows // 2)
        """A streamed document of this many rows is staged into a generation of its own: half
        a generation, so that it would nearly fill one anyway (a lower threshold made
        documents of 100k rows ~5% faster to write, but ten times as many generations for
        queries to read)."""

    def has_space(self, conn: sqlite3.Connection, generation: Generation) -> bool:
        """Whether a generation's R*Tree of events also covers its regions' boxes.

        Generations made before boxes were indexed have time only; either works.

        Args:
            conn: A connection.
            generation: The generation.

        Returns:
            True if the R*Tree has ``x0, x1, y0, y1``.
        """
        found = self._space.get(generation.id)
        if found is None:
            info = conn.execute(f"PRAGMA table_info(ix{generation.id}_time)").fetchall()
            found = self._space[generation.id] = len(info) == 7
        return found

    # -- generations ---------------------------------------------------------------------

    def open_generation(
        self,
        conn: sqlite3.Connection,
        datastore_id: int,
        columns: Sequence[Column],
        *,
        alias: bool,
        state: str = "active",
    ) -> Generation:
        """Create a generation and its tables.

        Args:
            conn: The writer connection, in a transaction.
            datastore_id: The DataStore.
            columns: Its columns.
            alias: Add it to the DataStore's alias (queries read it, new documents go to it).
            state: ``active``, ``building``, or ``staging``: the generation of one streamed
                document (`reserve`), created without its B-trees (`publish` builds them).

        Returns:
            The new generation.
        """
        # Names only grow: g1, g2, ... (a dropped generation's name is not reused).
        count = conn.execute(
            "SELECT coalesce(max(CAST(substr(name, 2) AS INTEGER)), 0) FROM index_generations "
            "WHERE datastore_id = ?",
            (datastore_id,),
        ).fetchone()[0]
        now = datetime.now(UTC)
        cursor = conn.execute(
            "INSERT INTO index_generations (datastore_id, name, state, columns, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (datastore_id, f"g{count + 1}", state, column_json(columns), now.isoformat()),
        )
        gid = cursor.lastrowid
        assert gid is not None
        width = sum(c.width for c in columns)
        values = "".join(f", v{i}" for i in range(width))
        conn.execute(
            f"CREATE TABLE ix{gid}_rows (id INTEGER PRIMARY KEY, doc INTEGER NOT NULL, "
            f"t INTEGER, c INTEGER, e INTEGER, r INTEGER, d0 INTEGER, t0 INTEGER, "
            f"c0 INTEGER, e0 INTEGER, k INTEGER, ko INTEGER, kl INTEGER{values})"
        )
        conn.execute(
            f"CREATE TABLE ix{gid}_chunks (id INTEGER PRIMARY KEY, head BLOB NOT NULL, "
            "events BLOB NOT NULL)"
        )
        # B-trees of scalar values of assets, events and regions, and of node ids (a staging
        # generation's are built when its document is published: faster on a full table).
        if state != "staging":
            for statement in row_indexes(gid, columns):
                conn.execute(statement)
        # Each event's time range, keyed by its first row: windows over many events. With
        # regions' boxes (`TEMPORAL_SPATIAL_BASE`), also the box around all of its regions'.
        space = ", x0, x1, y0, y1" if space_column(columns) is not None else ""
        conn.execute(f"CREATE VIRTUAL TABLE ix{gid}_time USING rtree(id, lo, hi{space})")
        texts = [f"f{c.index}" for c in columns if c.type == "text"]
        if texts:
            conn.execute(
                f"CREATE VIRTUAL TABLE ix{gid}_fts USING fts5({', '.join(texts)}, "
                "content='', tokenize='unicode61 remove_diacritics 0')"
            )
        if alias:
            conn.execute(
                "INSERT INTO index_alias (datastore_id, generation_id) VALUES (?, ?)",
                (datastore_id, gid),
            )
        return Generation(gid, f"g{count + 1}", state, tuple(columns), 0, 0, alias, now)

    # -- rebuilds ------------------------------------------------------------------------

    def drop(self, conn: sqlite3.Connection, generation: Generation) -> None:
        """Delete a generation and its tables.

        Args:
            conn: The writer connection, in a transaction.
            generation: A generation outside the alias.
        """
        self._drop(conn, generation.id)

    @staticmethod
    def _drop(conn: sqlite3.Connection, gid: int) -> None:
        conn.execute(f"DROP TABLE IF EXISTS ix{gid}_rows")
        conn.execute(f"DROP TABLE IF EXISTS ix{gid}_fts")
        conn.execute(f"DROP TABLE IF EXISTS ix{gid}_chunks")
        conn.execute(f"DROP TABLE IF EXISTS ix{gid}_time")
        conn.execute("DELETE FROM index_docs WHERE generation_id = ?", (gid,))
        conn.execute("DELETE FROM index_alias WHERE generation_id = ?", (gid,))
        conn.execute("DELETE FROM index_generations WHERE id = ?", (gid,))

    # -- writing -------------------------------------------------------------------------

    def add(
        self,
        conn: sqlite3.Connection,
        datastore_id: int,
        columns: Sequence[Column],
        docs: Sequence[tuple[int, DocumentRows]],
        generation: Generation | None = None,
    ) -> None:
        """Index documents (in the caller's write transaction).

        Args:
            conn: The writer connection, in a transaction.
            datastore_id: The DataStore.
            columns: The columns the rows were cut with.
            docs: ``(document seq, rows)`` per document.
            generation: Write to this generation (a rebuild); default: the newest
                generation of the alias with these columns, opened if there is none.
        """
        if not docs:
            return
        gen = generation or self._writable(conn, datastore_id, columns)
        first = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM ix{gen.id}_rows").fetchone()[0]
        chunk_id = conn.execute(
            f"SELECT coalesce(max(id), 0) + 1 FROM ix{gen.id}_chunks"
        ).fetchone()[0]
        texts: dict[int, dict[int, str]] = {}
        spans: list[tuple[int, int, int, int]] = []
        count = 0
        for seq, doc in docs:
            self._insert(conn, gen, seq, doc, (first, 0), (chunk_id, 0), texts)
            spans.append((gen.id, seq, first, first + len(doc.rows) - 1))
            first += len(doc.rows)
            chunk_id += len(doc.chunks)
            count += len(doc.rows)
        self._insert_texts(conn, gen, texts)
        self._count(conn, gen, spans, count)

    def _insert(
        self,
        conn: sqlite3.Connection,
        gen: Generation,
        seq: int,
        doc: DocumentRows,
        rows_at: tuple[int, int],
        chunks_at: tuple[int, int],
        texts: dict[int, dict[int, str]],
        *,
        bound: bool = False,
    ) -> None:
        """Insert a document's rows, or a batch of them (`RowCutter`), but not its texts.

        ``rows_at`` is ``(base, start)``: the document's first row id and the offset of the
        batch's first row in the document (0 for a whole document); ``chunks_at`` likewise.
        A whole document's rows (or a batch in a generation of its own) take the next ids,
        unbound; a batch's in a shared generation are bound, as a sentinel holds the end of
        their reserved range (`reserve`): ``bound``.
        """
        base, start = rows_at
        chunk_base, chunk_start = chunks_at
        width = sum(c.width for c in gen.columns)
        names = ", ".join((*FIXED[1:], *(f"v{i}" for i in range(width))))
        time = next(c.index for c in gen.columns if (c.level, c.name) == ("event", "time_range"))
        at = len(FIXED) - 3 + time  # where an event's start is in a document row
        text_columns = {(c.level, c.name): c.index for c in gen.columns if c.type == "text"}
        # The rows are bound as they were cut: the document's bases are literals of the
        # statement (integers), added by SQLite (NULL + n is NULL). Parameters are numbered:
        # row ``j`` of a statement of several rows binds ``?(j * size + 1)`` onwards.
        size = 10 + width

        def values(j: int) -> str:
            p = j * size
            # A batch's row ids are computed from its offsets, not bound (no new tuple per
            # row): a region's row is its event's first row plus its index, an event's
            # without regions its first row; a component's (track's, document's) without
            # anything below it is the first row of that component (track, document).
            row_id = (
                f"{base} + coalesce(?{p + 7} + max(?{p + 4}, 0), ?{p + 6}, ?{p + 5}, 0), "
                if bound
                else ""
            )
            return (
                f"({row_id}{seq}, ?{p + 1}, ?{p + 2}, ?{p + 3}, ?{p + 4}, {base}, "
                f"{base} + ?{p + 5}, {base} + ?{p + 6}, {base} + ?{p + 7}, "
                f"{chunk_base} + ?{p + 8}, ?{p + 9}, ?{p + 10}"
                + "".join(f", ?{p + 11 + i}" for i in range(width))
                + ")"
            )

        if not bound:
            # Row ids are not bound: an INTEGER PRIMARY KEY left out is one more than the
            # largest.
            # A generation of its own has no B-trees yet (`publish`): many rows per statement.
            _insert_rows(
                conn,
                f"INSERT INTO ix{gen.id}_rows ({names}) VALUES ",
                values,
                doc.rows,
                grouped=gen.state == "staging",
            )
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            if doc.rows and last != base + start + len(doc.rows) - 1:  # pragma: no cover
                raise RuntimeError(  # SQLite's rowid choice, or rows past the batch's start
                    f"index rows got ids up to {last}, not {base + start + len(doc.rows) - 1}"
                )
        else:
            # The sentinel of the reserved range (`reserve`) makes way for the last row.
            first, last = base + start, base + start + len(doc.rows) - 1
            conn.execute(f"DELETE FROM ix{gen.id}_rows WHERE id = ? AND e IS NULL", (last,))
            _insert_rows(
                conn,
                f"INSERT INTO ix{gen.id}_rows (id, {names}) VALUES ",
                values,
                doc.rows,
                grouped=False,
            )
            if doc.rows:
                placed = conn.execute(
                    f"SELECT count(*) FROM ix{gen.id}_rows WHERE id BETWEEN ? AND ?",
                    (first, last),
                ).fetchone()[0]
                if placed != len(doc.rows):  # pragma: no cover - the cutter's offsets
                    raise RuntimeError(
                        f"index rows of ids {first} to {last} are {placed}, not {len(doc.rows)}"
                    )
            if doc.chunks:
                conn.execute(
                    f"DELETE FROM ix{gen.id}_chunks WHERE id = ? AND head = x''",
                    (chunk_base + chunk_start + len(doc.chunks) - 1,),
                )
        conn.executemany(
            f"INSERT INTO ix{gen.id}_chunks (id, head, events) VALUES ({chunk_base} + ?, ?, ?)",
            [(chunk_start + i, *chunk) for i, chunk in enumerate(doc.chunks)],
        )
        # Each event's time range (and box around its regions), keyed by its first row.
        rows = doc.rows
        if self.has_space(conn, gen):
            far = (_NO_BOX,) * 4  # no boxes: far from any box a query names
            conn.executemany(
                f"INSERT INTO ix{gen.id}_time (id, lo, hi, x0, x1, y0, y1) "
                f"VALUES ({base} + ?, ?, ?, ?, ?, ?, ?)",
                [
                    (e0, rows[e0 - start][at], rows[e0 - start][at + 1], *(box or far))
                    for e0, box in doc.events
                ],
            )
        else:
            conn.executemany(
                f"INSERT INTO ix{gen.id}_time (id, lo, hi) VALUES ({base} + ?, ?, ?)",
                [(e0, rows[e0 - start][at], rows[e0 - start][at + 1]) for e0, _ in doc.events],
            )
        # Nodes of several levels share their first row (a document's first event is also
        # its first track's): their texts go into one FTS row, each in its own column.
        for offset, level, found in doc.texts:
            node = texts.setdefault(base + offset, {})
            for name, words in found.items():
                index = text_columns.get((level, name))
                if index is not None:
                    node[index] = " ".join(fts_token(w) for w in words.split())

    @staticmethod
    def _insert_texts(
        conn: sqlite3.Connection, gen: Generation, texts: dict[int, dict[int, str]]
    ) -> None:
        if not texts:
            return
        order = sorted(c.index for c in gen.columns if c.type == "text")
        conn.executemany(
            f"INSERT INTO ix{gen.id}_fts (rowid, {', '.join(f'f{i}' for i in order)}) "
            f"VALUES (?{', ?' * len(order)})",
            [(rowid, *(node.get(i) for i in order)) for rowid, node in texts.items()],
        )

    @staticmethod
    def _count(
        conn: sqlite3.Connection, gen: Generation, spans: list[tuple[int, int, int, int]], rows: int
    ) -> None:
        conn.executemany(
            "INSERT INTO index_docs (generation_id, doc_seq, first_row, last_row) "
            "VALUES (?, ?, ?, ?)",
            spans,
        )
        conn.execute(
            "UPDATE index_generations SET docs = docs + ?, rows = rows + ? WHERE id = ?",
            (len(spans), rows, gen.id),
        )

    # -- streamed documents: rows reserved, staged in batches, then published ---------------

    def reserve(
        self,
        conn: sqlite3.Connection,
        datastore_id: int,
        columns: Sequence[Column],
        seq: int,
        rows: int,
        chunks: int,
        *,
        alone: bool | None = None,
    ) -> tuple[Generation, int, int]:
        """Reserve ids for a document indexed in batches over several transactions.

        A document's rows must have consecutive ids (`events` reads a document's span), so
        a sentinel row is put at the end of the range now; later documents take ids past
        it. The staged rows stay invisible until `publish`: queries join the
        ``documents`` table, where the document appears only then.

        A large document (`own_generation_rows` rows or more) is staged into a generation
        of its own instead, outside the alias and without B-trees: its rows are appended,
        and `publish` builds the B-trees on the full table (about twice as fast as keeping
        them row by row) and adds the generation to the alias, in the transaction that
        makes the document visible.

        Args:
            conn: The writer connection, in a transaction.
            datastore_id: The DataStore.
            columns: The columns the rows will be cut with.
            seq: The document's (reserved) sequence number.
            rows: How many rows the document cuts into (at least 1).
            chunks: How many chunks of events it has.
            alone: True: a generation of its own whatever its size (a one-pass write of a
                large blob, whose size is not known yet); False: the shared one whatever
                its size (a one-pass write of a smaller blob, reserving an upper bound);
                None: by ``rows``.

        Returns:
            The generation, the first row id and the first chunk id.
        """
        if alone or (alone is None and rows >= self.own_generation_rows):
            own = self.open_generation(conn, datastore_id, columns, alias=False, state="staging")
            return own, 1, 1
        gen = self._writable(conn, datastore_id, columns)
        base = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM ix{gen.id}_rows").fetchone()[0]
        conn.execute(f"INSERT INTO ix{gen.id}_rows (id, doc) VALUES (?, ?)", (base + rows - 1, seq))
        chunk_base = conn.execute(
            f"SELECT coalesce(max(id), 0) + 1 FROM ix{gen.id}_chunks"
        ).fetchone()[0]
        if chunks:
            conn.execute(
                f"INSERT INTO ix{gen.id}_chunks (id, head, events) VALUES (?, x'', x'')",
                (chunk_base + chunks - 1,),
            )
        return gen, base, chunk_base

    def resize(
        self,
        conn: sqlite3.Connection,
        gen: Generation,
        seq: int,
        rows: tuple[int, int, int],
        chunks: tuple[int, int, int],
    ) -> None:
        """Fit a range of the shared generation's ids to a document's size, once it is known.

        The sentinels at the end of the reserved range (`reserve`) go; new ones end the
        document's range instead, unless its last row (chunk) is staged already. The ids
        past it stay unused.

        Args:
            conn: The writer connection, in a transaction.
            gen: The generation.
            seq: The document's sequence number.
            rows: ``(first id, ids reserved, rows of the document)``.
            chunks: Likewise for its chunks.
        """
        (base, reserved, count), (chunk_base, chunks_reserved, chunk_count) = rows, chunks
        conn.execute(
            f"DELETE FROM ix{gen.id}_rows WHERE id = ? AND e IS NULL", (base + reserved - 1,)
        )
        conn.execute(
            f"INSERT OR IGNORE INTO ix{gen.id}_rows (id, doc) VALUES (?, ?)",
            (base + count - 1, seq),
        )
        if chunks_reserved:
            conn.execute(
                f"DELETE FROM ix{gen.id}_chunks WHERE id = ? AND head = x''",
                (chunk_base + chunks_reserved - 1,),
            )
        if chunk_count:
            conn.execute(
                f"INSERT OR IGNORE INTO ix{gen.id}_chunks (id, head, events) VALUES (?, x'', x'')",
                (chunk_base + chunk_count - 1,),
            )

    def stage(
        self,
        conn: sqlite3.Connection,
        gen: Generation,
        seq: int,
        batch: DocumentRows,
        rows_at: tuple[int, int],
        chunks_at: tuple[int, int],
    ) -> None:
        """Write a batch of a reserved document's rows (`RowCutter.take`).

        Args:
            conn: The writer connection, in a transaction.
            gen: From `reserve`.
            seq: The document's sequence number.
            batch: The rows.
            rows_at: ``(first row id, the batch's first row offset)``.
            chunks_at: ``(first chunk id, the batch's first chunk offset)``.
        """
        texts: dict[int, dict[int, str]] = {}
        own = gen.state == "staging"  # the rows take the next ids, as the document's alone
        self._insert(conn, gen, seq, batch, rows_at, chunks_at, texts, bound=not own)
        self._insert_texts(conn, gen, texts)

    def publish(
        self, conn: sqlite3.Connection, gen: Generation, seq: int, base: int, rows: int
    ) -> None:
        """Record a staged document's span (in the transaction that makes it visible).

        A generation of the document's own (`reserve`) gets its B-trees and joins the
        alias, in the same transaction.

        Args:
            conn: The writer connection, in a write transaction.
            gen: The generation it was staged in.
            seq: The document's sequence number.
            base: Its first row id.
            rows: Its row count.
        """
        if gen.state == "staging":
            for statement in self.staged_b_trees(gen):
                build_b_tree(conn, statement)
            conn.execute(
                "INSERT INTO index_alias (datastore_id, generation_id) "
                "SELECT datastore_id, id FROM index_generations WHERE id = ?",
                (gen.id,),
            )
            conn.execute("UPDATE index_generations SET state = 'active' WHERE id = ?", (gen.id,))
        super().publish(conn, gen, seq, base, rows)

    @staticmethod
    def staged_b_trees(gen: Generation) -> list[str]:
        """The statements that build the B-trees of a generation of its own (`reserve`).

        Each may run in a transaction of its own before `publish` (the generation is still
        invisible): then `publish` finds it done.

        Args:
            gen: A ``staging`` generation.

        Returns:
            ``CREATE INDEX IF NOT EXISTS`` statements.
        """
        return [
            statement.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
            for statement in row_indexes(gen.id, gen.columns)
        ]

    def discard(
        self,
        conn: sqlite3.Connection,
        generation_id: int,
        rows_at: tuple[int, int],
        chunks_at: tuple[int, int],
    ) -> None:
        """Delete a staged document's rows, events' boxes and chunks (an abandoned ingest).

        Full-text entries stay (a contentless FTS5 table cannot forget without the text):
        they point at row ids that no longer exist and match nothing. A generation of the
        document's own (`reserve`) is dropped whole.

        Args:
            conn: The writer connection, in a transaction.
            generation_id: The generation it was staged in.
            rows_at: ``(first row id, row count)``.
            chunks_at: ``(first chunk id, chunk count)``.
        """
        gid = generation_id
        exists = conn.execute("SELECT state FROM index_generations WHERE id = ?", (gid,)).fetchone()
        if exists is None:
            return  # the generation was dropped: nothing is left
        if exists[0] == "staging":
            self._drop(conn, gid)
            return
        low, high = rows_at[0], rows_at[0] + rows_at[1] - 1
        conn.execute(f"DELETE FROM ix{gid}_rows WHERE id BETWEEN ? AND ?", (low, high))
        conn.execute(f"DELETE FROM ix{gid}_time WHERE id BETWEEN ? AND ?", (low, high))
        conn.execute(
            f"DELETE FROM ix{gid}_chunks WHERE id BETWEEN ? AND ?",
            (chunks_at[0], chunks_at[0] + chunks_at[1] - 1),
        )

    # -- reading -------------------------------------------------------------------------

    def filter(
        self,
        conn: sqlite3.Connection,
        datastore_id: int,
        expr: Expr,
        *,
        all_versions: bool,
        limit: int,
        after_seq: int,
    ) -> list[tuple[int, bytes, str]]:
        """Documents of a DataStore that match a query, in write order.

        Args:
            conn: A read connection.
            datastore_id: The DataStore.
            expr: The query (checked).
            all_versions: Also older versions of a MID (default: only each MID's latest).
            limit: At most this many.
            after_seq: Only documents written after this sequence number (the cursor).

        Returns:
            ``(seq, document id bytes, mid key)`` per document.
        """
        matched = self._matched(conn, datastore_id, expr, all_versions=all_versions)
        if matched is None:
            return []
        where, params = matched
        sql = (
            f"SELECT d.seq, d.id, d.mid_key FROM documents d WHERE {where} AND d.seq > ? "
            "ORDER BY d.seq LIMIT ?"
        )
        rows = conn.execute(sql, [*params, after_seq, limit]).fetchall()
        return [(row[0], bytes(row[1]), row[2]) for row in rows]

    def count(
        self,
        conn: sqlite3.Connection,
        datastore_id: int,
        expr: Expr,
        *,
        all_versions: bool,
        steps: int,
    ) -> int | None:
        """How many documents `filter` would return in all, if SQLite can tell within a budget.

        Args:
            conn: A read connection.
            datastore_id: The DataStore.
            expr: The query (checked).
            all_versions: As for `filter`.
            steps: The budget, in SQLite virtual-machine instructions (about 5-10 ms per
                million here): a count that needs more is abandoned.

        Returns:
            The count, or None if it was not cheap.
        """
        matched = self._matched(conn, datastore_id, expr, all_versions=all_versions)
        if matched is None:
            return 0
        where, params = matched
        calls = 0
        every = 1000

        def over_budget() -> bool:
            nonlocal calls
            calls += 1
            return calls * every > steps

        conn.set_progress_handler(over_budget, every)
        try:
            value: int = conn.execute(
                f"SELECT count(*) FROM documents d WHERE {where}", params
            ).fetchone()[0]
        except sqlite3.OperationalError:
            if calls * every <= steps:
                raise
            return None  # interrupted: not cheap
        finally:
            conn.set_progress_handler(None, 0)
        return value

    def _matched(
        self, conn: sqlite3.Connection, datastore_id: int, expr: Expr, *, all_versions: bool
    ) -> tuple[str, list[Any]] | None:
        """The condition on ``documents d`` of the documents that match (None: no index yet)."""
        union, params = self._matching_docs(conn, datastore_id, expr)
        if not union:
            return None
        latest = (
            ""
            if all_versions
            else " AND d.seq = (SELECT max(d2.seq) FROM documents d2 "
            "WHERE d2.datastore_id = d.datastore_id AND d2.mid_key = d.mid_key)"
        )
        where = f"d.seq IN ({union}) AND d.datastore_id = ?{latest}"
        return where, [*params, datastore_id]

    def _compiler(
        self, conn: sqlite3.Connection, gen: Generation, span: tuple[int, int] | None = None
    ) -> _Compiler:
        return _Compiler(gen, span, space=self.has_space(conn, gen))

    def events(
        self,
        conn: sqlite3.Connection,
        datastore_id: int,
        doc_seq: int,
        expr: Expr,
        *,
        limit: int,
        offset: int,
    ) -> list[EventHit]:
        """The events of one document that match a query, in time order, one page.

        Only the chunks of the page's events are read, never the whole document.

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
        found = self._document_query(conn, datastore_id, doc_seq, expr)
        if found is None:
            return []
        gen, span, where, values, time = found
        start, end = f"r.v{time.index}", f"r.v{time.index + 1}"
        rows = conn.execute(
            f"SELECT r.t, r.c, r.e, r.k, min({start}), min({end}), group_concat(r.r), "
            "min(r.ko), min(r.kl) "
            f"FROM ix{gen.id}_rows r WHERE r.id BETWEEN ? AND ? AND r.e >= 0 AND {where} "
            "GROUP BY r.e0 ORDER BY 5, 6, r.t, r.c, r.e LIMIT ? OFFSET ?",
            [*span, *values, limit, offset],
        ).fetchall()
        heads: dict[int, Any] = {}
        hits = []
        for t, c, e, k, lo, hi, regions, offset, size in rows:
            # Only the event's own bytes are read from its chunk.
            head, event = conn.execute(
                f"SELECT {'head' if k not in heads else 'NULL'}, substr(events, ?, ?) "
                f"FROM ix{gen.id}_chunks WHERE id = ?",
                (offset + 1, size, k),
            ).fetchone()
            if k not in heads:
                heads[k] = orjson.loads(head)
            matched = sorted(int(r) for r in str(regions).split(",") if int(r) >= 0)
            hits.append(
                EventHit(
                    (t, c, e),
                    lo,
                    hi,
                    tuple(matched),
                    orjson.loads(event),
                    heads[k]["track"],
                    heads[k]["component"],
                )
            )
        return hits


class _Compiler(QueryCompiler):
    """A query as an SQL condition over one generation's rows (``0``/``1``, never NULL).

    The R*Tree of events (single precision, rounded outwards) finds candidate events.
    """

    MARK = "?"
    FALSE = "0"

    def _match(self, node: str, column: Column, tokens: list[str], params: list[Any]) -> str:
        params.append(f'f{column.index} : "{" ".join(tokens)}"')
        return (
            f"({node} IS NOT NULL AND {node} IN "
            f"(SELECT rowid FROM ix{self.gen.id}_fts WHERE ix{self.gen.id}_fts MATCH ?))"
        )

    def _time_window(self, expr: Overlaps, params: list[Any]) -> str:
        params += [float(expr.end), float(expr.start)]
        return "lo <= ? AND hi >= ?"

    def _space_window(self, expr: BoxTest, params: list[Any]) -> str:
        qx, qy, qw, qh = (float(v) for v in (expr.box.x, expr.box.y, expr.box.w, expr.box.h))
        params += [qx + qw, qx, qy + qh, qy]  # a box within the query's intersects it
        return "x0 <= ? AND x1 >= ? AND y0 <= ? AND y1 >= ?"
