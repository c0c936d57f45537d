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

import functools
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from reeldb.index.model import EventHit, Generation
from reeldb.index.rows import Column, DocumentRows, literal, space_column
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
    fields_of,
    holds,
)
from reeldb.query.fulltext import stems

__all__ = ["SQLiteIndex", "fts_token"]

_NODE: Final = {"asset": "d0", "track": "t0", "component": "c0", "event": "e0", "region": "id"}
_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FIXED: Final = ("id", "doc", "t", "c", "e", "r", "d0", "t0", "c0", "e0", "k", "ko", "kl")
_FIRST_ROWS: Final = "r <= 0"
"""The rows that stand for their event (its first region's, or its only one) or node."""


def fts_token(stem: str) -> str:
    """A stem as one FTS5 ``unicode61`` token, the same at indexing and at query time.

    ASCII letters and digits stay as they are. Any other stem is spelled as a private-use
    character (a token character for ``unicode61``, never part of a word) followed by the
    hex of its UTF-8, so that the tokenizer can neither split nor fold it.

    Args:
        stem: A stem from `reeldb.query.fulltext.stems`.

    Returns:
        The token.
    """
    if stem.isascii() and stem.isalnum():
        return stem
    return "\ue000" + stem.encode().hex()


_NO_BOX: Final = 3.0e38
"""The R*Tree box of an event without boxes: beyond any box a query names (exact tests decide)."""


def _column_json(columns: Sequence[Column]) -> str:
    return orjson.dumps([[c.level, c.name, c.type, c.index, c.width] for c in columns]).decode()


@functools.lru_cache(maxsize=256)
def _columns(text: str) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in orjson.loads(text))


class SQLiteIndex:
    """Index reads and writes on connections of the store (writes inside its transactions).

    Args:
        rollover_rows: Open a new generation when the newest one holds this many rows.
    """

    def __init__(self, *, rollover_rows: int = 1_000_000) -> None:
        self.rollover_rows = rollover_rows
        self._space: dict[int, bool] = {}

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

    def generations(self, conn: sqlite3.Connection, datastore_id: int) -> list[Generation]:
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
            "LEFT JOIN index_alias a ON a.generation_id = g.id WHERE g.datastore_id = ? "
            "ORDER BY g.id",
            (datastore_id,),
        ).fetchall()
        return [
            Generation(
                row[0],
                row[1],
                row[2],
                _columns(row[3]),
                row[4],
                row[5],
                bool(row[6]),
                datetime.fromisoformat(row[7]),
            )
            for row in rows
        ]

    def _writable(
        self, conn: sqlite3.Connection, datastore_id: int, columns: Sequence[Column]
    ) -> Generation:
        found = [g for g in self.generations(conn, datastore_id) if g.in_alias]
        newest = found[-1] if found else None
        if (
            newest is not None
            and newest.columns == tuple(columns)
            and newest.rows < self.rollover_rows
        ):
            return newest
        return self.open_generation(conn, datastore_id, columns, alias=True)

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
            state: ``active`` or ``building``.

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
            (datastore_id, f"g{count + 1}", state, _column_json(columns), now.isoformat()),
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
        for column in columns:
            # B-trees for scalar fields of assets, events and regions. Tracks and components
            # are few per document and their fields seldom select: a B-tree on every one of
            # their rows would cost every write more than it saves (they stay searchable).
            # An asset's or event's value is the same on all rows of the event, so its B-tree
            # holds only each event's first row (``r <= 0``): ten times fewer entries for
            # ten regions per event. Queries that name no region field read only those rows.
            if column.type in ("text", "time_range", "bounding_box") or column.level not in (
                "asset",
                "event",
                "region",
            ):
                continue
            where = "" if column.level == "region" else f" WHERE {_FIRST_ROWS}"
            conn.execute(
                f"CREATE INDEX ix{gid}_v{column.index} ON ix{gid}_rows (v{column.index}){where}"
            )
        # Node ids grow with the row id: their B-trees are appended to, cheaply. They let a
        # full-text hit (a node) or an R*Tree hit (an event) find the node's rows.
        # Full-text hits on assets, tracks and components need only the nodes' first rows
        # (queries without region fields read only those; with region fields, another
        # B-tree leads). Events' need every row: a document-level query looks up all rows
        # of the events an R*Tree window returns.
        text_levels = {c.level for c in columns if c.type == "text"} | {"event"}
        for level in sorted(text_levels - {"region"}):
            node = _NODE[level]
            where = "" if level == "event" else f" WHERE {_FIRST_ROWS}"
            conn.execute(f"CREATE INDEX ix{gid}_{node} ON ix{gid}_rows ({node}){where}")
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

    def begin_rebuild(
        self, conn: sqlite3.Connection, datastore_id: int, columns: Sequence[Column]
    ) -> Generation:
        """The generation a rebuild fills: an unfinished one with these columns, or a new one.

        Args:
            conn: The writer connection, in a transaction.
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

    def checkpoint(self, conn: sqlite3.Connection, generation_id: int) -> int:
        """The last document sequence number indexed in a generation (0 if none).

        Args:
            conn: A connection.
            generation_id: The generation.

        Returns:
            The sequence number.
        """
        value: int = conn.execute(
            "SELECT coalesce(max(doc_seq), 0) FROM index_docs WHERE generation_id = ?",
            (generation_id,),
        ).fetchone()[0]
        return value

    def swap(self, conn: sqlite3.Connection, datastore_id: int, generation: Generation) -> None:
        """Make a rebuilt generation the only one queries read, atomically.

        Args:
            conn: The writer connection, in the transaction that caught the generation up.
            datastore_id: The DataStore.
            generation: The rebuilt generation.
        """
        conn.execute("DELETE FROM index_alias WHERE datastore_id = ?", (datastore_id,))
        conn.execute(
            "INSERT INTO index_alias (datastore_id, generation_id) VALUES (?, ?)",
            (datastore_id, generation.id),
        )
        conn.execute(
            "UPDATE index_generations SET state = CASE WHEN id = ? THEN 'active' "
            "ELSE 'retired' END WHERE datastore_id = ?",
            (generation.id, datastore_id),
        )

    def drop(self, conn: sqlite3.Connection, generation: Generation) -> None:
        """Delete a generation and its tables.

        Args:
            conn: The writer connection, in a transaction.
            generation: A generation outside the alias.
        """
        conn.execute(f"DROP TABLE IF EXISTS ix{generation.id}_rows")
        conn.execute(f"DROP TABLE IF EXISTS ix{generation.id}_fts")
        conn.execute(f"DROP TABLE IF EXISTS ix{generation.id}_chunks")
        conn.execute(f"DROP TABLE IF EXISTS ix{generation.id}_time")
        conn.execute("DELETE FROM index_docs WHERE generation_id = ?", (generation.id,))
        conn.execute("DELETE FROM index_alias WHERE generation_id = ?", (generation.id,))
        conn.execute("DELETE FROM index_generations WHERE id = ?", (generation.id,))

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
        A whole document's rows take the next ids, unbound; a batch's are bound, as a
        sentinel holds the end of their reserved range (`reserve`): ``bound``.
        """
        base, start = rows_at
        chunk_base, chunk_start = chunks_at
        width = sum(c.width for c in gen.columns)
        names = ", ".join((*_FIXED[1:], *(f"v{i}" for i in range(width))))
        time = next(c.index for c in gen.columns if (c.level, c.name) == ("event", "time_range"))
        at = len(_FIXED) - 3 + time  # where an event's start is in a document row
        text_columns = {(c.level, c.name): c.index for c in gen.columns if c.type == "text"}
        # The rows are bound as they were cut: the document's bases are literals of the
        # statement (integers), added by SQLite (NULL + n is NULL).
        values = (
            f"{seq}, ?, ?, ?, ?, {base}, {base} + ?, {base} + ?, {base} + ?, {chunk_base} + ?, "
            f"?, ?{', ?' * width}"
        )
        if not bound:
            # Row ids are not bound: an INTEGER PRIMARY KEY left out is one more than the
            # largest.
            conn.executemany(f"INSERT INTO ix{gen.id}_rows ({names}) VALUES ({values})", doc.rows)
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            if last != base + len(doc.rows) - 1:  # pragma: no cover - SQLite's rowid choice
                raise RuntimeError(f"index rows got ids up to {last}, not {base + len(doc.rows)}")
        else:
            # The sentinel of the reserved range (`reserve`) makes way for the last row.
            first, last = base + start, base + start + len(doc.rows) - 1
            conn.execute(f"DELETE FROM ix{gen.id}_rows WHERE id = ? AND e IS NULL", (last,))
            conn.executemany(
                f"INSERT INTO ix{gen.id}_rows (id, {names}) VALUES (?, {values})",
                [(first + i, *row) for i, row in enumerate(doc.rows)],
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
    ) -> tuple[Generation, int, int]:
        """Reserve ids for a document indexed in batches over several transactions.

        A document's rows must have consecutive ids (`events` reads a document's span), so
        a sentinel row is put at the end of the range now; later documents take ids past
        it. The staged rows stay invisible until `publish`: queries join the
        ``documents`` table, where the document appears only then.

        Args:
            conn: The writer connection, in a transaction.
            datastore_id: The DataStore.
            columns: The columns the rows will be cut with.
            seq: The document's (reserved) sequence number.
            rows: How many rows the document cuts into (at least 1).
            chunks: How many chunks of events it has.

        Returns:
            The generation, the first row id and the first chunk id.
        """
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
        self._insert(conn, gen, seq, batch, rows_at, chunks_at, texts, bound=True)
        self._insert_texts(conn, gen, texts)

    def publish(
        self, conn: sqlite3.Connection, gen: Generation, seq: int, base: int, rows: int
    ) -> None:
        """Record a staged document's span (in the transaction that makes it visible).

        Args:
            conn: The writer connection, in a transaction.
            gen: The generation it was staged in.
            seq: The document's sequence number.
            base: Its first row id.
            rows: Its row count.
        """
        self._count(conn, gen, [(gen.id, seq, base, base + rows - 1)], rows)

    def discard(
        self,
        conn: sqlite3.Connection,
        generation_id: int,
        rows_at: tuple[int, int],
        chunks_at: tuple[int, int],
    ) -> None:
        """Delete a staged document's rows, events' boxes and chunks (an abandoned ingest).

        Full-text entries stay (a contentless FTS5 table cannot forget without the text):
        they point at row ids that no longer exist and match nothing.

        Args:
            conn: The writer connection, in a transaction.
            generation_id: The generation it was staged in.
            rows_at: ``(first row id, row count)``.
            chunks_at: ``(first chunk id, chunk count)``.
        """
        gid = generation_id
        exists = conn.execute("SELECT 1 FROM index_generations WHERE id = ?", (gid,)).fetchone()
        if exists is None:
            return  # the generation was dropped: nothing is left
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
        # Without region fields, a row decides as every other row of its event does: each
        # event (and node without events) is decided by its first row alone.
        first_rows = all(f.level != "region" for f in fields_of(expr))
        parts, params = [], []
        for gen in self.generations(conn, datastore_id):
            if not gen.in_alias:
                continue
            where, values = _Compiler(gen, space=self.has_space(conn, gen)).compile(expr, "r")
            if first_rows:  # the same term as the partial B-trees', so they can be used
                where = f"r.{_FIRST_ROWS} AND {where}"
            parts.append(f"SELECT r.doc FROM ix{gen.id}_rows r WHERE {where}")
            params += values
        if not parts:
            return None
        latest = (
            ""
            if all_versions
            else " AND d.seq = (SELECT max(d2.seq) FROM documents d2 "
            "WHERE d2.datastore_id = d.datastore_id AND d2.mid_key = d.mid_key)"
        )
        where = f"d.seq IN ({' UNION '.join(parts)}) AND d.datastore_id = ?{latest}"
        return where, [*params, datastore_id]

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
        for gen in reversed(self.generations(conn, datastore_id)):
            if not gen.in_alias:
                continue
            span = conn.execute(
                "SELECT first_row, last_row FROM index_docs WHERE generation_id = ? "
                "AND doc_seq = ?",
                (gen.id, doc_seq),
            ).fetchone()
            if span is None:
                continue
            time = next(c for c in gen.columns if (c.level, c.name) == ("event", "time_range"))
            compiler = _Compiler(gen, tuple(span), space=self.has_space(conn, gen))
            where, values = compiler.compile(expr, "r")
            start, end = f"r.v{time.index}", f"r.v{time.index + 1}"
            found = conn.execute(
                f"SELECT r.t, r.c, r.e, r.k, min({start}), min({end}), group_concat(r.r), "
                "min(r.ko), min(r.kl) "
                f"FROM ix{gen.id}_rows r WHERE r.id BETWEEN ? AND ? AND r.e >= 0 AND {where} "
                "GROUP BY r.e0 ORDER BY 5, 6, r.t, r.c, r.e LIMIT ? OFFSET ?",
                [*span, *values, limit, offset],
            ).fetchall()
            heads: dict[int, Any] = {}
            hits = []
            for t, c, e, k, lo, hi, regions, offset, size in found:
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
        return []


class _Compiler:
    """A query as an SQL condition over one generation's rows (``0``/``1``, never NULL).

    Args:
        gen: The generation.
        span: The row ids of one document, for document-level queries.
        space: Whether the generation's R*Tree of events covers regions' boxes.
    """

    def __init__(
        self, gen: Generation, span: tuple[int, int] | None = None, *, space: bool = False
    ) -> None:
        self.gen = gen
        self.columns = {(c.level, c.name): c for c in gen.columns}
        self.span = span
        self.space = space

    def compile(self, expr: Expr, alias: str) -> tuple[str, list[Any]]:
        params: list[Any] = []
        items = expr.items if isinstance(expr, And) else (expr,)
        return self._and(items, alias, params), params

    def _expr(self, expr: Expr, a: str, params: list[Any], *, probe: bool = True) -> str:
        if isinstance(expr, And):
            return self._and(expr.items, a, params)
        if isinstance(expr, Or):  # each branch may lead on its own (SQLite's OR plans)
            branches = (i.items if isinstance(i, And) else (i,) for i in expr.items)
            return "(" + " OR ".join(self._and(items, a, params) for items in branches) + ")"
        if isinstance(expr, Not):
            return f"(NOT {self._expr(expr.item, a, params)})"
        if isinstance(expr, Count):
            return self._count(expr, a, params)
        column = self.columns.get((expr.field.level, expr.field.name))
        if column is None:
            return "0"  # this generation has no such field: missing
        v = f"{a}.v{column.index}"
        if isinstance(expr, Compare):
            params.append(literal(column.type, expr.value))
            return f"({v} IS NOT NULL AND {v} {_OPS[expr.op]} ?)"
        if isinstance(expr, In):
            params.extend(literal(column.type, value) for value in expr.values)
            return f"({v} IS NOT NULL AND {v} IN ({', '.join('?' * len(expr.values))}))"
        if isinstance(expr, Contains):
            return self._contains(expr.field, column, expr.text, a, params)
        if isinstance(expr, Overlaps):
            hi = f"{a}.v{column.index + 1}"
            params += [float(expr.end), float(expr.start)]
            exact = f"({v} IS NOT NULL AND {v} <= ? AND ? <= {hi})"
            if not probe or not self._is_time(expr):
                return exact
            # The R*Tree (single precision, rounded outwards) finds candidate events; the
            # exact test on the doubles decides.
            params += [float(expr.end), float(expr.start)]
            return (
                f"({exact} AND {a}.e0 IN (SELECT id FROM ix{self.gen.id}_time "
                "WHERE lo <= ? AND hi >= ?))"
            )
        return self._box(expr, column, a, params)

    def _and(self, items: Sequence[Expr], a: str, params: list[Any]) -> str:
        """Items that must all hold, with one R*Tree probe for a time window and a box.

        The R*Tree only narrows the candidates (the exact tests decide), so it is used where
        it should lead: for a box, together with a time window of the same group, or where
        no B-tree could lead (no equality on a region field, no full-text test).
        """
        time = next((i for i in items if self._is_time(i)), None)
        box = next((i for i in items if self._is_space_box(i)), None)
        if (
            box is not None
            and time is None
            and (self.span is not None or any(self._leads(i) for i in items))
        ):
            box = None  # a B-tree (or the document's rows) leads; no probe for the box
        parts = [
            self._expr(item, a, params, probe=box is None or item is not time) for item in items
        ]
        if box is not None:
            assert isinstance(box, BoxTest)
            where: list[str] = []
            if time is not None:
                assert isinstance(time, Overlaps)
                where += ["lo <= ?", "hi >= ?"]
                params += [float(time.end), float(time.start)]
            qx, qy, qw, qh = (float(v) for v in (box.box.x, box.box.y, box.box.w, box.box.h))
            where += ["x0 <= ?", "x1 >= ?", "y0 <= ?", "y1 >= ?"]
            params += [qx + qw, qx, qy + qh, qy]  # a box within the query's intersects it
            parts.append(
                f"{a}.e0 IN (SELECT id FROM ix{self.gen.id}_time WHERE {' AND '.join(where)})"
            )
        return "(" + " AND ".join(parts) + ")"

    def _is_time(self, expr: Expr) -> bool:
        return (
            isinstance(expr, Overlaps)
            and (expr.field.level, expr.field.name)
            == (
                "event",
                "time_range",
            )
            and ("event", "time_range") in self.columns
        )

    def _is_space_box(self, expr: Expr) -> bool:
        if not self.space or not isinstance(expr, BoxTest):
            return False
        return (expr.field.level, expr.field.name) == ("region", "bounding_box")

    def _leads(self, expr: Expr) -> bool:
        """Whether SQLite could start from this item with a B-tree or the full-text index."""
        if isinstance(expr, Contains):
            return True
        if isinstance(expr, Compare | In) and (isinstance(expr, In) or expr.op == "="):
            column = self.columns.get((expr.field.level, expr.field.name))
            return (
                column is not None
                and column.level == "region"
                and column.type
                not in (
                    "text",
                    "time_range",
                    "bounding_box",
                )
            )
        return False

    def _contains(self, field: Field, column: Column, text: str, a: str, params: list[Any]) -> str:
        tokens = [fts_token(s) for s in stems(text)]
        if not tokens:
            return "0"
        node = f"{a}.{_NODE[field.level]}"
        params.append(f'f{column.index} : "{" ".join(tokens)}"')
        return (
            f"({node} IS NOT NULL AND {node} IN "
            f"(SELECT rowid FROM ix{self.gen.id}_fts WHERE ix{self.gen.id}_fts MATCH ?))"
        )

    def _box(self, expr: BoxTest, column: Column, a: str, params: list[Any]) -> str:
        x0, y0, x1, y1 = (f"{a}.v{column.index + i}" for i in range(4))
        qx, qy, qw, qh = (float(v) for v in (expr.box.x, expr.box.y, expr.box.w, expr.box.h))
        if expr.op == "intersects":
            params += [qx + qw, qx, qy + qh, qy]
            test = f"{x0} <= ? AND ? <= {x1} AND {y0} <= ? AND ? <= {y1}"
        else:
            params += [qx, qx + qw, qy, qy + qh]
            test = f"? <= {x0} AND {x1} <= ? AND ? <= {y0} AND {y1} <= ?"
        return f"({x0} IS NOT NULL AND {test})"

    def _count(self, expr: Count, a: str, params: list[Any]) -> str:
        # Counted once per track (or component) by one grouped subquery, not per row. Nodes
        # with no counted event are absent from the groups: their count is 0.
        x, key = a + "x", "t0" if expr.scope == "track" else "c0"
        where = "" if expr.where is None else f" AND {self._expr(expr.where, x, params)}"
        span = ""
        if self.span is not None:
            span = f" AND {x}.id BETWEEN ? AND ?"
            params.extend(self.span)
        params.append(expr.value)
        test = f"count(DISTINCT {x}.e0) {_OPS[expr.op]} ?"
        zero_passes = holds(0, expr.op, expr.value)
        groups = (
            f"SELECT {x}.{key} FROM ix{self.gen.id}_rows {x} WHERE {x}.e >= 0{where}{span} "
            f"GROUP BY {x}.{key} HAVING {'NOT ' if zero_passes else ''}({test})"
        )
        if zero_passes:
            return f"({a}.{key} IS NULL OR {a}.{key} NOT IN ({groups}))"
        return f"({a}.{key} IS NOT NULL AND {a}.{key} IN ({groups}))"
