"""Annotations on PostgreSQL: every version, and the index of current ones, in one transaction.

Tables (the SQLite layout of migration ``0005_annotations``, in PostgreSQL idioms):

* ``annotations``: one row per annotation: its current version (updated in place), type,
  time, box and comparable properties (``facets``, ``jsonb``); ``t0`` is `NO_TIME` when it
  has no time, so it sorts last. ``span`` (a ``float8`` range, `annotation_span`) and
  ``area`` (a ``box``) are generated from the time and box of live annotations (NULL when
  missing or deleted, so such an annotation lies outside every query window, as on SQLite)
  and GiST-indexed: they stand for SQLite's R*Tree (a ``box``'s operators allow a tolerance,
  so exact tests on the coordinates decide);
* ``annotation_versions``: every version as stored, never changed (the source of truth);
  a tombstone is one more version: deletes keep the history;
* ``annotation_links``: ``(association, start, annotation)`` of live annotations, a B-tree:
  listing an association's annotations in time order is one index range;
* ``annotation_text``: one row per text field of a live annotation: its tokens (``words``),
  their count and a GIN-indexed ``tsvector`` of them;
* ``annotation_ids``: which namespace (and row) holds each annotation id, so that ids stay
  unique across namespaces;
* ``annotation_types``, ``annotation_keys``, ``annotation_fields``: types (with their
  lineage and live count), associations (with their live count and longest time range) and
  text field names, interned; ``annotation_settings``: the association types a namespace
  allows.

Partitioning: ``annotations``, ``annotation_versions``, ``annotation_links``,
``annotation_text`` and ``annotation_keys`` are partitioned by ``HASH (namespace)``. Every
method of the port names the namespace (a get, a version history, a search, a count, and
each write), so every statement carries it and reads one partition; an annotation and all
of its versions, links and text rows live in the same partition, so the joins of a search
never cross partitions (and would stay on one server once partitions move to shards). The
one key a namespace cannot carry is the annotation id, unique across namespaces:
``annotation_ids`` is partitioned by ``HASH (id)`` and its primary key makes "this id is
taken" atomic. (Hashing the id everywhere instead would spread one namespace's search over
every partition and split an annotation from its association's links.) Types, text field
names and the text totals are small tables, not partitioned.

Full text: the service stems texts in Python (`reeldb.index.sqlite.fts_token` tokens of
PyStemmer stems, the same at write and at query time), so PostgreSQL does no linguistics of
its own. A text row's ``tsvector`` holds its tokens as lexemes verbatim, the equivalent of
the ``simple`` configuration without its parser (built with ``array_to_tsvector``: the
parser would split the private-use tokens of non-ASCII stems and fold nothing we have not
folded already). The GIN index finds the rows that hold every token of a phrase; the phrase
itself, tokens one after the other, is then tested exactly on ``words`` (tokens between
single spaces), so the matching is exactly SQLite's FTS5 phrase matching (a ``tsvector``'s
positions are capped and could not decide it exactly). Tokens longer than `_LEXEME_MAX`
bytes are hashed into their lexeme (the exact test decides). The minutes of an
annotation's time are lexemes too (`time_tokens`), so that a search by words within a time
window reads the matches of the window only, as on SQLite.

Relevance is FTS5's ``bm25`` computed exactly (the same doubles, the same order): per
matching text row ``idf * f * (k1 + 1) / (f + k1 * (1 - b + b * D / avgdl))``, negated,
the best field per annotation. ``f`` counts the phrase's occurrences in the row, ``D`` its
tokens (time tokens included), ``avgdl`` the mean over all text rows, ``idf`` comes from the
number of rows holding the phrase (all of these over every namespace, as in SQLite's one
full-text table). The row and token totals FTS5 keeps are kept in
``annotation_text_totals`` (in slots by server process, so that concurrent writers do not
queue on one row). FTS5's per-term statistics (``fts5vocab``) only served SQLite to choose
where a search starts; here a bounded count of the GIN matches does (`PROBE_LIMIT`), and
PostgreSQL's planner has its own lexeme statistics (``ANALYZE`` of ``tsvector`` columns).

A search starts from the smallest candidate set it can estimate cheaply (an association's
live count, a bounded count of a text's or of a time window's matches) and tests every other
condition on each candidate row. Writes lock the head rows they change (``FOR UPDATE``), so
the expected-version check and the write are atomic among concurrent writers; creation order
(``pk``, sort ``created``) is the order of the sequence ``annotation_pk``. A batch writes
each table of a namespace with one statement (its rows as arrays, ``unnest``-ed).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, LiteralString
from uuid import UUID

import psycopg

from reeldb import _json
from reeldb.auth.model import AuditEntry
from reeldb.errors import (
    AlreadyExistsError,
    NotFoundError,
    ReelError,
)
from reeldb.index._compile import fts_tokens
from reeldb.index.rows import literal
from reeldb.query.ast import BoxTest, Compare, Contains, Expr, In, Overlaps
from reeldb.store._annotation_plan import (
    NO_TIME,
    PROBE_LIMIT,
    AnnotationSearch,
    Key,
    WhereSql,
    check_distinct,
    check_head,
    missing_annotation,
    order_by,
    time_tokens,
    window_tokens,
)
from reeldb.store.base import (
    AnnotationColumns,
    AnnotationHeadPage,
    AnnotationQuery,
    AnnotationRecord,
    AnnotationWrite,
    DeriveSearchRows,
)
from reeldb.store.postgres._base import PostgresBase, append_audit

__all__ = ["DDL", "PostgresAnnotations"]

PARTITIONS: Final = 8
"""Hash partitions of each partitioned annotation table."""
_TOTAL_SLOTS: Final = 16
_ANALYZE_AT: Final = tuple(500 * 4**k for k in range(14))
"""Annotations created (over all namespaces) at which the annotation tables' statistics are
gathered and the full-text index's pending list merged. Autovacuum would do it, if it runs
(it may be off, and it never analyzes a partitioned parent); without statistics the planner
takes a namespace of a million annotations for an empty one."""
"""Rows of ``annotation_text_totals``: a writer adds to the slot of its server process."""


def _partitions(table: LiteralString) -> tuple[str, ...]:
    return tuple(
        f"CREATE TABLE {table}_p{r} PARTITION OF {table} "
        f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {r})"
        for r in range(PARTITIONS)
    )


DDL: Final[tuple[str, ...]] = (
    # A closed range of seconds in doubles, compared exactly (doubles cast to numeric round).
    "CREATE TYPE annotation_span AS RANGE (subtype = float8, subtype_diff = float8mi)",
    "CREATE SEQUENCE annotation_pk AS BIGINT",
    "CREATE SEQUENCE annotation_key_id AS BIGINT",
    # Annotation types in use, each with its lineage (is-a) and live count.
    """CREATE TABLE annotation_types (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        namespace TEXT COLLATE "C" NOT NULL REFERENCES namespaces (name),
        name TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        lineage TEXT NOT NULL,
        live BIGINT NOT NULL DEFAULT 0,
        UNIQUE (namespace, name, version)
    )""",
    # Associations in use, interned; `span` bounds the length of their annotations' time
    # ranges, so a time window is one range of `annotation_links`.
    """CREATE TABLE annotation_keys (
        namespace TEXT COLLATE "C" NOT NULL,
        id BIGINT NOT NULL DEFAULT nextval('annotation_key_id'),
        type TEXT COLLATE "C" NOT NULL,
        value TEXT COLLATE "C" NOT NULL,
        live BIGINT NOT NULL DEFAULT 0,
        span DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, id),
        UNIQUE (namespace, type, value)
    ) PARTITION BY HASH (namespace)""",
    *_partitions("annotation_keys"),
    # Text field names, interned.
    """CREATE TABLE annotation_fields (
        id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT COLLATE "C" NOT NULL UNIQUE
    )""",
    # Where each annotation id lives (ids are unique across namespaces).
    """CREATE TABLE annotation_ids (
        id UUID PRIMARY KEY,
        namespace TEXT COLLATE "C" NOT NULL,
        pk BIGINT NOT NULL
    ) PARTITION BY HASH (id)""",
    *_partitions("annotation_ids"),
    # One row per annotation: its current version, and what search reads of it.
    """CREATE TABLE annotations (
        namespace TEXT COLLATE "C" NOT NULL,
        pk BIGINT NOT NULL,
        id UUID NOT NULL,
        version INTEGER NOT NULL,
        deleted BOOLEAN NOT NULL,
        type_id BIGINT NOT NULL,
        t0 DOUBLE PRECISION NOT NULL,
        t1 DOUBLE PRECISION,
        x0 DOUBLE PRECISION, y0 DOUBLE PRECISION, x1 DOUBLE PRECISION, y1 DOUBLE PRECISION,
        facets JSONB NOT NULL,
        span annotation_span GENERATED ALWAYS AS (
            CASE WHEN t1 IS NULL OR deleted THEN NULL ELSE annotation_span(t0, t1, '[]') END
        ) STORED,
        area BOX GENERATED ALWAYS AS (
            CASE WHEN x0 IS NULL OR deleted THEN NULL ELSE box(point(x0, y0), point(x1, y1)) END
        ) STORED,
        PRIMARY KEY (namespace, pk),
        UNIQUE (namespace, id)
    ) PARTITION BY HASH (namespace)""",
    *_partitions("annotations"),
    "CREATE INDEX annotations_live ON annotations (namespace, t0, pk) WHERE NOT deleted",
    "CREATE INDEX annotations_by_type ON annotations (type_id, t0, pk) WHERE NOT deleted",
    "CREATE INDEX annotations_by_span ON annotations USING gist (span) WHERE span IS NOT NULL",
    "CREATE INDEX annotations_by_area ON annotations USING gist (area) WHERE area IS NOT NULL",
    # Every version, as stored: the source of truth.
    """CREATE TABLE annotation_versions (
        namespace TEXT COLLATE "C" NOT NULL,
        pk BIGINT NOT NULL,
        version INTEGER NOT NULL,
        type_id BIGINT NOT NULL,
        deleted BOOLEAN NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        created_by TEXT,
        body BYTEA NOT NULL,
        PRIMARY KEY (namespace, pk, version)
    ) PARTITION BY HASH (namespace)""",
    *_partitions("annotation_versions"),
    # The associations of live annotations, by association and start time.
    """CREATE TABLE annotation_links (
        namespace TEXT COLLATE "C" NOT NULL,
        key BIGINT NOT NULL,
        t0 DOUBLE PRECISION NOT NULL,
        pk BIGINT NOT NULL,
        t1 DOUBLE PRECISION,
        PRIMARY KEY (namespace, key, t0, pk)
    ) PARTITION BY HASH (namespace)""",
    *_partitions("annotation_links"),
    # The tokens of live annotations' text fields, one row per field.
    """CREATE TABLE annotation_text (
        namespace TEXT COLLATE "C" NOT NULL,
        pk BIGINT NOT NULL,
        field INTEGER NOT NULL,
        words TEXT COLLATE "C" NOT NULL,
        length INTEGER NOT NULL,
        lexemes TSVECTOR NOT NULL,
        PRIMARY KEY (namespace, pk, field)
    ) PARTITION BY HASH (namespace)""",
    *_partitions("annotation_text"),
    "CREATE INDEX annotation_text_lexemes ON annotation_text USING gin (lexemes)",
    # Text rows and their tokens (time tokens included), over all namespaces: bm25's
    # document count and mean length. The sums over the slots count.
    """CREATE TABLE annotation_text_totals (
        slot INTEGER PRIMARY KEY,
        rows BIGINT NOT NULL,
        tokens BIGINT NOT NULL
    )""",
    "INSERT INTO annotation_text_totals (slot, rows, tokens) "
    f"SELECT s, 0, 0 FROM generate_series(0, {_TOTAL_SLOTS - 1}) s",
    # Per namespace: which association types annotations may use (NULL: any).
    """CREATE TABLE annotation_settings (
        namespace TEXT COLLATE "C" PRIMARY KEY REFERENCES namespaces (name),
        association_types TEXT
    )""",
)
"""Tables of this part, created by migration 0001_initial (in order)."""

_LEXEME_MAX: Final = 1000
"""Bytes of the longest token kept as its own lexeme (PostgreSQL's limit is 2047)."""
_K1: Final = 1.2
_B: Final = 0.75
"""FTS5's bm25 parameters."""
_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_NUMBER_VS_TEXT: Final = {op: "TRUE" if op in ("!=", "<", "<=") else "FALSE" for op in _OPS}
"""A number compared with a text, as SQLite compares them (every number sorts first)."""
_TEXT_VS_NUMBER: Final = {op: "TRUE" if op in ("!=", ">", ">=") else "FALSE" for op in _OPS}
_REGEX_SPECIAL: Final = frozenset("\\^$.|?*+()[]{}")


HEAD_ROOM: Final = tuple(
    f"ALTER TABLE annotations_p{r} SET (fillfactor = 80)" for r in range(PARTITIONS)
)
"""Migration ``0003``: room on each page of head rows for the new row of an update.

Every new version of an annotation updates its head row. With room on its page, and when no
indexed column changes (a backfilled property, say), PostgreSQL writes the new row there
without touching the six indexes (a heap-only update); full pages make every update insert
into each of them, the two GiST indexes included."""

_ROW: Final = (  # of annotations a, annotation_versions v, annotation_types t
    "a.id, a.namespace, v.version, t.name, t.version, v.deleted, v.created_at, v.created_by, "
    "v.body, a.version"
)


def _record(row: Sequence[Any], score: float | None = None) -> AnnotationRecord:
    return AnnotationRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bytes(row[8]), row[9], score
    )


def _lexeme(token: str) -> str:
    """The lexeme of a token (a long one hashed: lexemes are at most 2047 bytes)."""
    if len(token.encode()) <= _LEXEME_MAX:
        return token
    return "\ue002" + hashlib.sha256(token.encode()).hexdigest()


def _tsquery(tokens: Sequence[str], any_of: Sequence[str] = ()) -> str:
    """A ``tsquery`` (text) of rows holding every token (and one of ``any_of``)."""

    def quote(token: str) -> str:
        return "'" + _lexeme(token).replace("\\", "\\\\").replace("'", "''") + "'"

    query = " & ".join(quote(t) for t in tokens)
    if any_of:
        query = f"{query} & ({' | '.join(quote(t) for t in any_of)})"
    return query


def _phrase(tokens: Sequence[str]) -> str:
    """What ``words`` holds where the tokens appear one after the other."""
    return " " + " ".join(tokens) + " "


def _occurrences(tokens: Sequence[str]) -> str:
    """A regular expression matching where each occurrence of the phrase starts.

    Occurrences may overlap, as FTS5 counts them.
    """
    pattern = "".join("\\" + c if c in _REGEX_SPECIAL else c for c in _phrase(tokens))
    return f"(?={pattern})"


def _text_row(body: str, when: list[str]) -> tuple[str, int, str]:
    """``words``, token count and space-separated lexemes of a text field (and its time)."""
    tokens = body.split()
    lexemes = " ".join(sorted({_lexeme(t) for t in (*tokens, *when)}))
    return _phrase(tokens) if tokens else " ", len(tokens) + len(when), lexemes


class PostgresAnnotations(PostgresBase):
    """`reeldb.store.base.AnnotationStore` on PostgreSQL (see the module docstring)."""

    # -- writes ---------------------------------------------------------------------------

    def put_annotation_batches(
        self, batches: Sequence[tuple[Sequence[AnnotationWrite], Sequence[AuditEntry]]]
    ) -> list[ReelError | None]:
        """See `AnnotationStore.put_annotation_batches`."""
        if not batches:
            return []

        def run(conn: psycopg.Connection[Any]) -> list[ReelError | None]:
            results: list[ReelError | None] = []
            for writes, audit in batches:
                try:
                    with conn.transaction():  # a SAVEPOINT: this batch all or none
                        _put(conn, writes, audit)
                except ReelError as exc:
                    results.append(exc)
                else:
                    results.append(None)
            return results

        return self._pg.write(run)

    def annotation_ids(self, namespace: str, *, after: UUID | None, limit: int) -> list[UUID]:
        """See `AnnotationStore.annotation_ids`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                "SELECT id FROM annotations WHERE namespace = %s "
                "AND (%s::uuid IS NULL OR id > %s) ORDER BY id LIMIT %s",
                (namespace, after, after, limit),
            ).fetchall()
        )
        return [row[0] for row in rows]

    def reindex_annotations(self, writes: Sequence[AnnotationWrite]) -> None:
        """See `AnnotationStore.reindex_annotations`."""
        if writes:
            self._pg.write(lambda conn: _put(conn, writes, (), refresh=True))

    # -- reads ----------------------------------------------------------------------------

    def get_annotation(
        self, namespace: str, annotation_id: UUID, version: int | None = None
    ) -> AnnotationRecord:
        """See `AnnotationStore.get_annotation`."""
        sql = (
            f"SELECT {_ROW} FROM annotations a JOIN annotation_versions v "
            "ON v.namespace = a.namespace AND v.pk = a.pk AND v.version = "
            + ("a.version" if version is None else "%s")
            + " JOIN annotation_types t ON t.id = v.type_id "
            "WHERE a.namespace = %s AND a.id = %s AND v.namespace = %s"
        )
        params: tuple[Any, ...] = (namespace, annotation_id, namespace)
        if version is not None:
            params = (version, *params)
        row = self._pg.read(lambda conn: conn.execute(sql, params).fetchone())
        if row is None:
            raise missing_annotation(namespace, annotation_id, version)
        return _record(row)

    def annotation_versions(self, namespace: str, annotation_id: UUID) -> list[AnnotationRecord]:
        """See `AnnotationStore.annotation_versions`."""
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {_ROW} FROM annotations a JOIN annotation_versions v "
                "ON v.namespace = a.namespace AND v.pk = a.pk "
                "JOIN annotation_types t ON t.id = v.type_id "
                "WHERE a.namespace = %s AND a.id = %s AND v.namespace = %s ORDER BY v.version",
                (namespace, annotation_id, namespace),
            ).fetchall()
        )
        if not rows:
            raise missing_annotation(namespace, annotation_id)
        return [_record(row) for row in rows]

    def annotation_history(
        self, namespace: str, *, after: UUID | None, limit: int, bodies: bool = True
    ) -> list[AnnotationRecord]:
        """See `AnnotationStore.annotation_history`."""
        row = _ROW if bodies else _ROW.replace("v.body", "''::bytea")
        rows = self._pg.read(
            lambda conn: conn.execute(
                f"SELECT {row} FROM annotations a JOIN annotation_versions v "
                "ON v.namespace = a.namespace AND v.pk = a.pk "
                "JOIN annotation_types t ON t.id = v.type_id "
                "WHERE a.namespace = %s AND v.namespace = %s AND a.pk = ANY(ARRAY("
                "SELECT pk FROM annotations WHERE namespace = %s "
                "AND (%s::uuid IS NULL OR id > %s) ORDER BY id LIMIT %s)) "
                "ORDER BY a.id, v.version",
                (namespace, namespace, namespace, after, after, limit),
            ).fetchall()
        )
        return [_record(row) for row in rows]

    def annotation_heads(
        self, namespace: str, *, after: UUID | None, limit: int, at: datetime | None
    ) -> list[tuple[AnnotationRecord, AnnotationRecord | None]]:
        """See `AnnotationStore.annotation_heads`."""
        params = {"namespace": namespace, "after": after, "limit": limit, "at": at}

        def read(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
            # The page's head rows first (one walk of the id index), then each one's
            # versions by primary key (LATERAL: however stale the statistics, the planner
            # cannot join the whole namespace and sort it). Its estimate, one subquery per
            # row, would have it compiled (JIT) for longer than it runs.
            conn.execute("SET LOCAL jit = off")
            rows = conn.execute(
                "WITH a AS MATERIALIZED (SELECT id, namespace, pk, version FROM annotations "
                "WHERE namespace = %(namespace)s AND (%(after)s::uuid IS NULL OR id > %(after)s) "
                "ORDER BY id LIMIT %(limit)s) "
                f"SELECT {_ROW}, a.pk, (SELECT max(w.version) FROM annotation_versions w "
                "WHERE w.namespace = %(namespace)s AND w.pk = a.pk "
                "AND (%(at)s::timestamptz IS NULL OR w.created_at <= %(at)s)) "
                "FROM a CROSS JOIN LATERAL (SELECT * FROM annotation_versions v "
                "WHERE v.namespace = %(namespace)s AND v.pk = a.pk AND v.version = a.version "
                "LIMIT 1) v "
                "JOIN annotation_types t ON t.id = v.type_id ORDER BY a.id",
                params,
            ).fetchall()
            changed = [row for row in rows if row[-1] not in (None, row[2])]
            if not changed:
                return rows, []
            older = conn.execute(  # changed since ``at``: few while a job runs
                f"SELECT {_ROW} FROM annotations a JOIN annotation_versions v "
                "ON v.namespace = a.namespace AND v.pk = a.pk "
                "JOIN annotation_types t ON t.id = v.type_id "
                "WHERE a.namespace = %s AND v.namespace = %s "
                "AND (v.pk, v.version) IN (SELECT * FROM unnest(%s::bigint[], %s::int[]))",
                (namespace, namespace, [r[-2] for r in changed], [r[-1] for r in changed]),
            ).fetchall()
            return rows, older

        rows, older = self._pg.read(read)
        then = {(r.id, r.version): r for r in map(_record, older)}
        out: list[tuple[AnnotationRecord, AnnotationRecord | None]] = []
        for row in rows:
            current, version = _record(row), row[-1]
            if version is None or version == current.version:
                out.append((current, None if version is None else current))
            else:
                out.append((current, then[current.id, version]))
        return out

    def unindexed_annotations(
        self,
        namespace: str,
        *,
        after: UUID | None,
        before: UUID | None,
        limit: int,
        at: datetime | None,
        derive: DeriveSearchRows,
    ) -> AnnotationHeadPage:
        """See `AnnotationStore.unindexed_annotations`.

        The page of `annotation_heads`, then, in one read-only snapshot, a reindex's write
        of its live annotations run as a check (`_put` with ``stale``): its comparisons, no
        lock and no write.
        """
        pairs = [
            pair
            for pair in self.annotation_heads(namespace, after=after, limit=limit, at=at)
            if before is None or pair[0].id < before
        ]
        if not pairs:
            return AnnotationHeadPage([], 0, None)
        writes: list[AnnotationWrite] = []
        rest: list[tuple[AnnotationRecord, AnnotationRecord | None]] = []
        for now, then in pairs:
            if then is None:
                continue  # created after the instant: not in the page's round
            rows = None
            if then.version == now.version and not now.deleted:
                rows = derive(now.type_name, now.type_version, now.body)
            if rows is None:
                rest.append((now, then))
                continue
            writes.append(rows.refresh(now))
        stale: set[UUID] = set()
        if writes:
            self._pg.read(lambda conn: _put(conn, writes, (), refresh=True, stale=stale))
        returned = [(now, then) for now, then in pairs if now.id in stale]
        returned = sorted([*rest, *returned], key=lambda pair: pair[0].id)
        return AnnotationHeadPage(returned, len(writes) - len(stale), pairs[-1][0].id)

    def annotation_columns(
        self,
        namespace: str,
        *,
        after: tuple[int, int] | None,
        limit: int,
        bodies: bool = True,
    ) -> AnnotationColumns:
        """See `AnnotationStore.annotation_columns`."""
        pk, version = after if after is not None else (0, 0)
        body: LiteralString = "v.body" if bodies else "NULL::bytea"

        def run(conn: psycopg.Connection[Any]) -> tuple[list[Any], dict[int, tuple[str, int]]]:
            # The versions' primary key read in order, each joined to its annotation by
            # index: never a sort of the namespace per page, which the planner picks when
            # its statistics lag behind a bulk load (measured: seconds per page).
            conn.execute("SET LOCAL enable_sort = off")
            conn.execute("SET LOCAL enable_bitmapscan = off")
            rows = conn.execute(
                "SELECT v.pk, uuid_send(a.id), v.version, v.type_id, v.deleted, "
                "to_char(v.created_at AT TIME ZONE 'UTC', "
                """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), v.created_by, """
                + body
                + " FROM annotation_versions v JOIN annotations a "
                "ON a.namespace = v.namespace AND a.pk = v.pk "
                "WHERE v.namespace = %s AND a.namespace = %s AND (v.pk, v.version) > (%s, %s) "
                "ORDER BY v.pk, v.version LIMIT %s",
                (namespace, namespace, pk, version, limit),
                binary=True,  # bytea as bytes, not hex text
            ).fetchall()
            types = conn.execute(
                "SELECT id, name, version FROM annotation_types WHERE namespace = %s",
                (namespace,),
            ).fetchall()
            return rows, {row[0]: (row[1], row[2]) for row in types}

        rows, types = self._pg.read(run)
        if not rows:
            return AnnotationColumns()
        pks, ids, versions, type_ids, deleted, created, by, body_ = zip(*rows, strict=True)
        kinds = [types[i] for i in type_ids]
        return AnnotationColumns(
            ids,
            versions,
            tuple(k[0] for k in kinds),
            tuple(k[1] for k in kinds),
            deleted,
            created,
            by,
            body_ if bodies else (),
            (pks[-1], versions[-1]),
        )

    def count_annotations(self, namespace: str) -> int:
        """See `AnnotationStore.count_annotations`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                "SELECT coalesce(sum(live), 0)::bigint FROM annotation_types WHERE namespace = %s",
                (namespace,),
            ).fetchone()
        )
        assert row is not None
        return int(row[0])

    def association_types(self, namespace: str) -> tuple[str, ...] | None:
        """See `AnnotationStore.association_types`."""
        row = self._pg.read(
            lambda conn: conn.execute(
                "SELECT association_types FROM annotation_settings WHERE namespace = %s",
                (namespace,),
            ).fetchone()
        )
        if row is None or row[0] is None:
            return None
        return tuple(_json.loads(row[0]))

    def set_association_types(self, namespace: str, types: Sequence[str] | None) -> None:
        """See `AnnotationStore.set_association_types`."""
        value = None if types is None else _json.dumps(sorted(set(types))).decode()

        def run(conn: psycopg.Connection[Any]) -> None:
            # FOR KEY SHARE: the namespace cannot go away before this commits.
            found = conn.execute(
                "SELECT 1 FROM namespaces WHERE name = %s FOR KEY SHARE", (namespace,)
            ).fetchone()
            if found is None:
                raise NotFoundError(f"namespace {namespace!r} does not exist")
            conn.execute(
                "INSERT INTO annotation_settings (namespace, association_types) VALUES (%s, %s) "
                "ON CONFLICT (namespace) DO UPDATE SET "
                "association_types = excluded.association_types",
                (namespace, value),
            )

        self._pg.write(run)

    # -- search ---------------------------------------------------------------------------

    def search_annotations(
        self, query: AnnotationQuery
    ) -> tuple[list[AnnotationRecord], tuple[float | int, ...] | None]:
        """See `AnnotationStore.search_annotations`."""
        return self._pg.read(lambda conn: _Search(conn, query).run())


# -- writes ---------------------------------------------------------------------------------


def _put(
    conn: psycopg.Connection[Any],
    writes: Sequence[AnnotationWrite],
    audit: Sequence[AuditEntry],
    *,
    refresh: bool = False,
    stale: set[UUID] | None = None,
) -> None:
    """Store one batch (in the caller's SAVEPOINT), as `SQLiteAnnotations` does.

    With ``refresh``, each write is the current version again (a reindex): what search
    reads of it is rewritten and no version is added. With ``stale`` too (a reindex's
    check, in a read-only snapshot): nothing is locked or written; the ids of the
    annotations whose search rows would be rewritten are added to ``stale``.
    """
    check_distinct(writes)
    checking = stale is not None
    heads = _heads(conn, writes, refresh=refresh, lock=not checking)
    types = _type_ids(conn, writes, add=not checking)
    keys = _key_ids(conn, writes, heads, add=not checking)
    fields = _field_ids(conn, writes, add=not checking)
    if stale is not None:
        # Moved on since read (its write will say so), or not interned yet: not indexed.
        unknown = {
            w.id
            for w in writes
            if (head := heads.get((w.namespace, w.id))) is None
            or head[1:3] != (w.expected_version, False)
            or (w.namespace, w.type_name, w.type_version) not in types
            or any((w.namespace, k, i) not in keys for k, i in w.associations)
            or any(name not in fields for name, _ in w.texts)
        }
        stale |= unknown
        writes = [w for w in writes if w.id not in unknown]
        heads = {key: head for key, head in heads.items() if key[1] not in unknown}
    # A reindex rewrites a head row or links only where they differ from what is stored.
    present = _present_links(conn, heads, keys) if refresh else set()
    fresh = 0 if checking else sum(1 for w in writes if w.expected_version == 0)
    drawn = sorted(
        row[0]
        for row in conn.execute(
            "SELECT nextval('annotation_pk') FROM generate_series(1, %s)", (fresh,)
        )
    )
    pks = iter(drawn)
    ids: list[tuple[UUID, str, int]] = []
    # Rows to write, by namespace (each statement then names its partition).
    rows: dict[str, dict[str, list[tuple[Any, ...]]]] = defaultdict(lambda: defaultdict(list))
    live_types: dict[int, int] = defaultdict(int)
    live_keys: dict[tuple[str, int], int] = defaultdict(int)
    spans: dict[tuple[str, int], float] = {}
    # The text rows of updated annotations, compared with the stored ones after the loop.
    texts: dict[str, dict[int, list[tuple[Any, ...]]]] = defaultdict(dict)
    for w in writes:
        ns = w.namespace
        out = rows[ns]
        type_id = types[ns, w.type_name, w.type_version]
        # Doubles throughout (an array of parameters holds one type).
        t0 = NO_TIME if w.time is None else float(w.time[0])
        t1 = None if w.time is None else float(w.time[1])
        links = [] if w.deleted else [(kind, ident) for kind, ident in w.associations]
        box = (None,) * 4 if w.box is None else tuple(float(v) for v in w.box)
        kept = False  # the links as they are
        same_head = False  # a reindex's head row as it is
        if w.expected_version == 0:
            pk = next(pks)
            ids.append((w.id, ns, pk))
        else:
            head = heads.get((ns, w.id))
            if head is None:
                raise NotFoundError(f"annotation {w.id} does not exist")
            pk, current, was_deleted, old_type, old_t0, old_t1, old_links, old_box, facets = head
            check_head(w, current, was_deleted)
            # The current version leaves the index; its links stay if nothing of them changes
            # (and, for a reindex, they are all stored as they should be).
            live_types[old_type] -= 1
            kept = (
                old_links == links
                and (old_t0, old_t1) == (t0, t1)
                and (
                    not refresh
                    or all((ns, keys[ns, k, i], t0, pk, t1) in present for k, i in links)
                )
            )
            same_head = (
                refresh
                and (was_deleted, old_type, old_t0, old_t1, old_box)
                == (w.deleted, type_id, t0, t1, box)
                and facets == _json.loads(w.facets)
            )
            for kind, ident in () if kept else old_links:
                key = keys[ns, kind, ident]
                live_keys[ns, key] -= 1
                out["links_out"].append((key, old_t0, pk))
            texts[ns][pk] = []
        version = w.expected_version + (0 if refresh else 1)
        head_row = (pk, w.id, version, w.deleted, type_id, t0, t1, *box, w.facets.decode())
        if not same_head:
            out["new" if w.expected_version == 0 else "update"].append(head_row)
        if not refresh:
            out["versions"].append(
                (pk, version, type_id, w.deleted, w.created_at, w.created_by, w.body)
            )
        if w.deleted:
            continue
        live_types[type_id] += 1
        length = 0.0 if w.time is None else w.time[1] - w.time[0]
        for kind, ident in () if kept else links:
            key = keys[ns, kind, ident]
            live_keys[ns, key] += 1
            out["links_in"].append((key, t0, pk, t1))
            if length > spans.get((ns, key), 0.0):
                spans[ns, key] = length
        when = [] if w.time is None else time_tokens(*w.time)
        text = [(pk, fields[name], *_text_row(body, when)) for name, body in w.texts]
        if pk in texts[ns]:
            texts[ns][pk] = text
        else:
            out["text_in"] += text
    for ns, changed in texts.items():
        _changed_texts(conn, ns, changed, rows[ns])
    if stale is not None:
        ids_of = {head[0]: ident for (_, ident), head in heads.items()}
        for out in rows.values():
            stale.update(row[1] for row in out["update"])
            for name, at in (("links_out", 2), ("links_in", 2), ("text_out", 0), ("text_in", 0)):
                stale.update(ids_of[row[at]] for row in out[name])
        return
    if ids:
        taken = {
            row[0]
            for row in conn.execute(
                "INSERT INTO annotation_ids (id, namespace, pk) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::bigint[]) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                list(_arrays(ids).values()),
            )
        }
        for ident, _, _ in ids:
            if ident not in taken:
                raise AlreadyExistsError(f"annotation {ident} already exists")
    text_rows, text_tokens = 0, 0
    for ns, out in sorted(rows.items()):
        for name, sql in _WRITES:
            if out[name]:
                conn.execute(sql, {"ns": ns, **_arrays(out[name])})
        if out["text_out"]:
            found = conn.execute(
                "WITH gone AS (DELETE FROM annotation_text WHERE namespace = %s "
                "AND pk = ANY(%s) RETURNING length) "
                "SELECT count(*), coalesce(sum(length), 0)::bigint FROM gone",
                (ns, [row[0] for row in out["text_out"]]),
            ).fetchone()
            assert found is not None
            text_rows, text_tokens = text_rows - found[0], text_tokens - found[1]
        if out["text_in"]:
            conn.execute(
                "INSERT INTO annotation_text (namespace, pk, field, words, length, lexemes) "
                "SELECT %s, u.pk, u.field, u.words, u.length, "
                "array_to_tsvector(string_to_array(u.lexemes, ' ')) "
                "FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::int[], %s::text[]) "
                "AS u (pk, field, words, length, lexemes)",
                (ns, *_arrays(out["text_in"]).values()),
            )
            text_rows += len(out["text_in"])
            text_tokens += sum(row[3] for row in out["text_in"])
    if text_rows or text_tokens:
        conn.execute(
            "UPDATE annotation_text_totals SET rows = rows + %s, tokens = tokens + %s "
            f"WHERE slot = mod(pg_backend_pid(), {_TOTAL_SLOTS})",
            (text_rows, text_tokens),
        )
    # In key order: concurrent writers lock the counters in one order (no deadlock).
    with conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE annotation_types SET live = live + %s WHERE id = %s",
            [(n, i) for i, n in sorted(live_types.items()) if n],
        )
        cursor.executemany(
            "UPDATE annotation_keys SET live = live + %s, span = greatest(span, %s) "
            "WHERE namespace = %s AND id = %s",
            [(n, spans.get(k, 0.0), *k) for k, n in sorted(live_keys.items())],
        )
    append_audit(conn, audit)
    if drawn and any(drawn[0] <= at <= drawn[-1] for at in _ANALYZE_AT):
        _maintain(conn)


def _changed_texts(
    conn: psycopg.Connection[Any],
    ns: str,
    new: dict[int, list[tuple[Any, ...]]],
    out: dict[str, list[tuple[Any, ...]]],
) -> None:
    """Queue the text rows of updated annotations that differ from the stored ones.

    An annotation whose rows are all as stored (same fields, words, length and lexemes) keeps
    them: deleting and inserting them again costs a GIN index update each. Only annotations
    whose text changed go to ``text_out`` and ``text_in``.
    """
    stored: dict[int, set[tuple[Any, ...]]] = defaultdict(set)
    for pk, field, words, length, lexemes in conn.execute(
        "SELECT pk, field, words, length, array_to_string(tsvector_to_array(lexemes), ' ') "
        "FROM annotation_text WHERE namespace = %s AND pk = ANY(%s)",
        (ns, list(new)),
    ):
        stored[pk].add((field, words, length, frozenset(lexemes.split(" ")) - {""}))
    for pk, rows in new.items():
        wanted = {(f, w, n, frozenset(lex.split(" ")) - {""}) for _, f, w, n, lex in rows}
        if wanted == stored.get(pk, set()) and len(wanted) == len(rows):
            continue
        if pk in stored:
            out["text_out"].append((pk,))
        out["text_in"] += rows


def _maintain(conn: psycopg.Connection[Any]) -> None:
    """Gather the annotation tables' statistics and merge the text index's pending list.

    ``ANALYZE`` of a partitioned table samples every partition and analyzes each one too. A
    GIN index takes new entries into a pending list that every search scans until a vacuum
    merges it (tens of ms per search at a million annotations); merge it now.
    """
    for table in (
        "annotations",
        "annotation_versions",
        "annotation_links",
        "annotation_text",
        "annotation_keys",
    ):
        conn.execute(f"ANALYZE {table}")
    conn.execute(
        "SELECT gin_clean_pending_list(i.inhrelid::regclass) FROM pg_inherits i "
        "WHERE i.inhparent = 'annotation_text_lexemes'::regclass"
    )


_HEAD_COLUMNS: Final = (
    "FROM unnest(%(c0)s::bigint[], %(c1)s::uuid[], %(c2)s::int[], %(c3)s::bool[], "
    "%(c4)s::bigint[], %(c5)s::float8[], %(c6)s::float8[], %(c7)s::float8[], "
    "%(c8)s::float8[], %(c9)s::float8[], %(c10)s::float8[], %(c11)s::text[]) "
    "AS u (pk, id, version, deleted, type_id, t0, t1, x0, y0, x1, y1, facets)"
)
_WRITES: Final = (
    # (rows, statement): the namespace ``ns``, and column ``i`` of the rows as array ``ci``.
    (
        "new",
        "INSERT INTO annotations (namespace, pk, id, version, deleted, type_id, t0, t1, "
        "x0, y0, x1, y1, facets) SELECT %(ns)s, u.pk, u.id, u.version, u.deleted, u.type_id, "
        f"u.t0, u.t1, u.x0, u.y0, u.x1, u.y1, u.facets::jsonb {_HEAD_COLUMNS}",
    ),
    (
        "update",
        "UPDATE annotations a SET version = u.version, "
        "deleted = u.deleted, type_id = u.type_id, t0 = u.t0, t1 = u.t1, x0 = u.x0, "
        f"y0 = u.y0, x1 = u.x1, y1 = u.y1, facets = u.facets::jsonb {_HEAD_COLUMNS} "
        "WHERE a.namespace = %(ns)s AND a.pk = u.pk",
    ),
    (
        "versions",
        "INSERT INTO annotation_versions (namespace, pk, version, type_id, deleted, "
        "created_at, created_by, body) SELECT %(ns)s, * FROM unnest(%(c0)s::bigint[], "
        "%(c1)s::int[], %(c2)s::bigint[], %(c3)s::bool[], %(c4)s::timestamptz[], "
        "%(c5)s::text[], %(c6)s::bytea[])",
    ),
    (
        "links_out",
        "DELETE FROM annotation_links l "
        "USING unnest(%(c0)s::bigint[], %(c1)s::float8[], %(c2)s::bigint[]) AS u (key, t0, pk) "
        "WHERE l.namespace = %(ns)s AND l.key = u.key AND l.t0 = u.t0 AND l.pk = u.pk",
    ),
    (
        "links_in",
        "INSERT INTO annotation_links (namespace, key, t0, pk, t1) "
        "SELECT %(ns)s, * FROM unnest(%(c0)s::bigint[], %(c1)s::float8[], %(c2)s::bigint[], "
        "%(c3)s::float8[])",
    ),
)
"""The bulk writes of one namespace's rows, in this order (links leave before they return)."""


def _arrays(rows: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows (at least one) as one list per column, ``c0``, ``c1``... (``unnest`` rejoins them)."""
    columns: list[list[Any]] = [[] for _ in rows[0]]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return {f"c{i}": column for i, column in enumerate(columns)}


def _heads(
    conn: psycopg.Connection[Any],
    writes: Sequence[AnnotationWrite],
    *,
    refresh: bool,
    lock: bool = True,
) -> dict[tuple[str, UUID], tuple[Any, ...]]:
    """The current state of each annotation the writes update, locked until commit.

    Not locked without ``lock`` (a reindex's check, read-only).

    Returns:
        ``(pk, version, deleted, type_id, t0, t1, associations if live, box, facets)`` by
        namespace and id; the box and facets, which a reindex compares, only with
        ``refresh`` (else None).
    """
    compared = "x0, y0, x1, y1, facets" if refresh else "NULL, NULL, NULL, NULL, NULL"
    wanted: dict[str, list[UUID]] = defaultdict(list)
    for w in writes:
        if w.expected_version != 0:  # a taken id fails its insert, and is reported then
            wanted[w.namespace].append(w.id)
    out: dict[tuple[str, UUID], tuple[Any, ...]] = {}
    for ns, ids in sorted(wanted.items()):
        # The head rows alone: locking re-reads a row another writer changed meanwhile (a
        # join would be re-checked against the version row it read before, and miss).
        locked = conn.execute(
            f"SELECT id, pk, version, deleted, type_id, t0, t1, {compared} "
            "FROM annotations WHERE namespace = %s AND id = ANY(%s) ORDER BY id"
            + (" FOR UPDATE" if lock else ""),
            (ns, sorted(ids)),
        ).fetchall()
        live = [row for row in locked if not row[3]]
        bodies = dict(
            conn.execute(
                "SELECT v.pk, v.body FROM annotation_versions v "
                "JOIN unnest(%s::bigint[], %s::int[]) AS h (pk, version) "
                "ON v.pk = h.pk AND v.version = h.version WHERE v.namespace = %s",
                ([row[1] for row in live], [row[2] for row in live], ns),
            ).fetchall()
        )
        for ident, pk, version, deleted, type_id, t0, t1, *box, facets in locked:
            links = (
                []
                if deleted
                else [(a["type"], a["id"]) for a in _json.loads(bytes(bodies[pk]))["associations"]]
            )
            out[ns, ident] = (pk, version, deleted, type_id, t0, t1, links, tuple(box), facets)
    return out


def _present_links(
    conn: psycopg.Connection[Any],
    heads: dict[tuple[str, UUID], tuple[Any, ...]],
    keys: dict[tuple[str, str, str], int],
) -> set[tuple[Any, ...]]:
    """The links of live annotations that are stored: ``(namespace, key, t0, pk, t1)``."""
    wanted: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for (ns, _), (pk, _, deleted, _, t0, _, links, *_) in heads.items():
        if not deleted:
            wanted[ns] += [(keys[ns, kind, ident], t0, pk) for kind, ident in links]
    found: set[tuple[Any, ...]] = set()
    for ns, triples in sorted(wanted.items()):
        if triples:
            found.update(
                (ns, *row)
                for row in conn.execute(
                    "SELECT l.key, l.t0, l.pk, l.t1 FROM annotation_links l "
                    "JOIN unnest(%s::bigint[], %s::float8[], %s::bigint[]) AS u (key, t0, pk) "
                    "ON l.key = u.key AND l.t0 = u.t0 AND l.pk = u.pk WHERE l.namespace = %s",
                    (*_arrays(triples).values(), ns),
                )
            )
    return found


def _type_ids(
    conn: psycopg.Connection[Any], writes: Sequence[AnnotationWrite], *, add: bool = True
) -> dict[tuple[str, str, int], int]:
    wanted = {(w.namespace, w.type_name, w.type_version): w.lineage for w in writes}

    def lookup(keys: list[tuple[str, str, int]]) -> dict[tuple[str, str, int], int]:
        return {
            (ns, name, version): ident
            for ident, ns, name, version in conn.execute(
                "SELECT t.id, t.namespace, t.name, t.version FROM annotation_types t "
                "JOIN unnest(%s::text[], %s::text[], %s::int[]) AS w (namespace, name, version) "
                "ON t.namespace = w.namespace AND t.name = w.name AND t.version = w.version",
                list(_arrays(keys).values()),
            )
        }

    if not wanted:
        return {}
    out = lookup(sorted(wanted))
    missing = sorted(set(wanted) - set(out))
    if missing and add:  # inserted only when missing: an insert that conflicts spends an id
        conn.execute(
            "INSERT INTO annotation_types (namespace, name, version, lineage) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[]) "
            "ON CONFLICT DO NOTHING",
            [
                *_arrays(missing).values(),
                [_json.dumps(list(wanted[k])).decode() for k in missing],
            ],
        )
        out |= lookup(missing)
    return out


def _key_ids(
    conn: psycopg.Connection[Any],
    writes: Sequence[AnnotationWrite],
    heads: dict[tuple[str, UUID], tuple[Any, ...]],
    *,
    add: bool = True,
) -> dict[tuple[str, str, str], int]:
    """Ids of the associations of the writes and of the versions they replace.

    Those not interned yet are added, unless not ``add``.
    """
    wanted = {(w.namespace, kind, ident) for w in writes for kind, ident in w.associations}
    wanted |= {(ns, kind, ident) for (ns, _), head in heads.items() for kind, ident in head[6]}
    by_namespace: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ns, kind, ident in sorted(wanted):
        by_namespace[ns].append((kind, ident))

    def lookup(ns: str, pairs: list[tuple[str, str]]) -> dict[tuple[str, str, str], int]:
        return {
            (ns, kind, ident): key
            for key, kind, ident in conn.execute(
                "SELECT k.id, k.type, k.value FROM annotation_keys k "
                "JOIN unnest(%s::text[], %s::text[]) AS w (type, value) "
                "ON k.type = w.type AND k.value = w.value WHERE k.namespace = %s",
                [*_arrays(pairs).values(), ns],
            )
        }

    out: dict[tuple[str, str, str], int] = {}
    for ns, pairs in by_namespace.items():
        found = lookup(ns, pairs)
        missing = [pair for pair in pairs if (ns, *pair) not in found]
        if missing and add:
            conn.execute(
                "INSERT INTO annotation_keys (namespace, type, value) "
                "SELECT %s, * FROM unnest(%s::text[], %s::text[]) ON CONFLICT DO NOTHING",
                [ns, *_arrays(missing).values()],
            )
            found |= lookup(ns, missing)
        out |= found
    return out


def _field_ids(
    conn: psycopg.Connection[Any], writes: Sequence[AnnotationWrite], *, add: bool = True
) -> dict[str, int]:
    wanted = sorted({name for w in writes for name, _ in w.texts})

    def lookup(names: list[str]) -> dict[str, int]:
        return {
            name: ident
            for ident, name in conn.execute(
                "SELECT id, name FROM annotation_fields WHERE name = ANY(%s)", (names,)
            )
        }

    out = lookup(wanted) if wanted else {}
    missing = [name for name in wanted if name not in out]
    if missing and add:
        conn.execute(
            "INSERT INTO annotation_fields (name) SELECT * FROM unnest(%s::text[]) "
            "ON CONFLICT DO NOTHING",
            (missing,),
        )
        out |= lookup(missing)
    return out


# -- search ---------------------------------------------------------------------------------


class _Search(AnnotationSearch[psycopg.Connection[Any]]):
    """One annotation search in a read snapshot."""

    param = "%s"
    record = staticmethod(_record)

    def field_ids(self, names: Sequence[str]) -> list[int]:
        """See `AnnotationSearch.field_ids`."""
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM annotation_fields WHERE name = ANY(%s)", (list(names),)
            )
        ]

    def select(
        self, type_ids: list[int] | None, keys: list[Key], fields: list[int] | None, offset: int
    ) -> list[Any]:
        """See `AnnotationSearch.select`."""
        q = self.q
        driver = self._driver(type_ids, keys, fields)
        source, params, score = self._source(driver, keys, fields)
        where, more = self._conditions(driver, type_ids, keys, fields)
        params += more
        order, after = self._order("l" if driver == "link" else "h")
        if after:
            where.append(after[0])
            params += after[1]
        # The page is chosen from the annotations' own rows; only its rows read their
        # stored version.
        sql = (
            "SELECT c.id, c.namespace, v.version, t.name, t.version, v.deleted, v.created_at, "
            "v.created_by, v.body, c.version, c.score, c.t0, c.pk FROM "
            f"(SELECT h.id, h.namespace, h.version, h.type_id, {score} AS score, "
            f"h.t0, h.pk FROM {source} WHERE {' AND '.join(where)} ORDER BY {order} "
            "LIMIT %s OFFSET %s) c "
            "JOIN annotation_versions v ON v.namespace = %s AND v.pk = c.pk "
            "AND v.version = c.version "
            "JOIN annotation_types t ON t.id = c.type_id "
            f"ORDER BY {self._order('c')[0]}"
        )
        return self.conn.execute(sql, [*params, q.limit + 1, offset, q.namespace]).fetchall()

    def count(self, sql: str, params: Sequence[Any], bound: int) -> int:
        """See `AnnotationSearch.count`."""
        row = self.conn.execute(
            f"SELECT count(*) FROM ({sql} LIMIT %s) probe", [*params, bound]
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _driver(
        self,
        type_ids: list[int] | None,
        keys: list[Key],
        fields: list[int] | None,
    ) -> str:
        """Where to start: the candidate set estimated smallest.

        ``heads`` are the annotations' own rows, read by their time, type or space index as
        PostgreSQL plans it.
        """
        q = self.q
        if q.sort == "relevance":
            return "text"
        estimates = self.link_estimates(keys)
        if type_ids is not None:
            row = self.conn.execute(
                "SELECT coalesce(sum(live), 0) FROM annotation_types WHERE id = ANY(%s)",
                (type_ids,),
            ).fetchone()
            assert row is not None
            estimates.append((row[0], 3, "heads"))
        best = min(estimates, default=(float("inf"), 9, "heads"))
        if q.text and best[0] > PROBE_LIMIT // 5:
            # The text rows holding the words (a GIN lookup), counted up to a bound: beyond
            # it, walking the annotations in order and testing each is cheaper.
            condition, params = self._text_condition(fields)
            bound = int(min(PROBE_LIMIT, best[0]))
            found = self.count(f"SELECT 1 FROM annotation_text f WHERE {condition}", params, bound)
            if found < bound:
                best = min(best, (found, 1, "text"))
        if (
            (q.time is not None or q.box is not None)
            and best[0] > PROBE_LIMIT // 5
            and best[2] != "heads"
        ):
            # Counted only as far as it would clearly beat the best so far (a GiST probe;
            # against the annotations' own rows PostgreSQL weighs the GiST indexes itself).
            tests, params = self._space()
            bound = int(min(PROBE_LIMIT, best[0] // 4))
            found = self.count(
                f"SELECT 1 FROM annotations h WHERE h.namespace = %s AND {tests}",
                [q.namespace, *params],
                bound,
            )
            if found < bound:
                best = min(best, (found, 2, "heads"))
        return best[2]

    def _conditions(
        self,
        driver: str,
        type_ids: list[int] | None,
        keys: list[Key],
        fields: list[int] | None,
    ) -> tuple[list[str], list[Any]]:
        """The tests each candidate row (``h``) must pass, and their parameters.

        ``OFFSET 0`` keeps a sub-query a test of each candidate row (an index lookup by the
        row's key): PostgreSQL would otherwise join it, reading every match of the test.
        """
        q = self.q
        where: list[str] = ["h.namespace = %s", "NOT h.deleted"]
        params: list[Any] = [q.namespace]
        if type_ids is not None:
            where.append("h.type_id = ANY(%s)")
            params.append(type_ids)
        for key, _, _ in keys[1:] if driver == "link" else keys:
            where.append(
                "EXISTS (SELECT 1 FROM annotation_links l WHERE l.namespace = h.namespace "
                "AND l.key = %s AND l.t0 = h.t0 AND l.pk = h.pk OFFSET 0)"
            )
            params.append(key)
        if q.time is not None or q.box is not None:
            tests, values = self._space(indexed=driver == "heads")
            where.append(tests)
            params += values
        if q.text and driver != "text":
            condition, values = self._text_condition(fields)
            where.append(
                "EXISTS (SELECT 1 FROM annotation_text f WHERE f.pk = h.pk AND "
                f"{condition} OFFSET 0)"
            )
            params += values
        if q.where is not None:
            where.append(_Where(q.kinds or {}, params).expr(q.where))
        return where, params

    def _space(self, *, indexed: bool = True) -> tuple[str, list[float]]:
        """The time and box tests on ``h``.

        The GiST-indexed ``span`` is exact (a range of doubles); ``area`` is a ``box``, whose
        operators allow a tolerance: the exact tests on the coordinates decide. When the
        candidates come from elsewhere (an association's links, the text index), the GiST
        operators are left out (``indexed`` False): PostgreSQL guesses a fixed selectivity
        for them and would intersect both GiST indexes over the whole namespace (a quadrant
        of the frame: 40% of it) before joining the few candidates, 80 times slower.
        """
        q = self.q
        where: list[str] = []
        params: list[float] = []
        if q.time is not None:
            if indexed:
                op = "<@" if q.time_op == "within" else "&&"
                where.append(f"h.span {op} annotation_span(%s, %s, '[]')")
                params += [q.time[0], q.time[1]]
            elif q.time_op == "within":
                where.append("h.t1 IS NOT NULL AND h.t0 >= %s AND h.t1 <= %s")
                params += [q.time[0], q.time[1]]
            else:
                where.append("h.t1 IS NOT NULL AND h.t0 <= %s AND h.t1 >= %s")
                params += [q.time[1], q.time[0]]
        if q.box is not None:
            x0, y0, x1, y1 = q.box
            if q.box_op == "within":
                if indexed:
                    where.append("h.area <@ box(point(%s, %s), point(%s, %s))")
                    params += [x0, y0, x1, y1]
                where.append("h.x0 >= %s AND h.x1 <= %s AND h.y0 >= %s AND h.y1 <= %s")
                params += [x0, x1, y0, y1]
            else:
                if indexed:
                    where.append("h.area && box(point(%s, %s), point(%s, %s))")
                    params += [x0, y0, x1, y1]
                where.append("h.x0 <= %s AND h.x1 >= %s AND h.y0 <= %s AND h.y1 >= %s")
                params += [x1, x0, y1, y0]
        return " AND ".join(where), params

    def _text_condition(self, fields: list[int] | None) -> tuple[str, list[Any]]:
        """The text rows (``f``, of the namespace) holding the phrase (in ``fields``)."""
        q = self.q
        buckets = None
        if q.time is not None and q.sort != "relevance":
            buckets = window_tokens(*q.time)
        condition = "f.namespace = %s AND f.lexemes @@ %s::tsquery AND position(%s IN f.words) > 0"
        params: list[Any] = [q.namespace, _tsquery(q.text, buckets or ()), _phrase(q.text)]
        if fields is not None:
            condition += " AND f.field = ANY(%s)"
            params.append(fields)
        return condition, params

    def links_of(self, key: Key) -> tuple[str, list[Any]]:
        """See `AnnotationSearch.links_of` (the links of the namespace)."""
        condition, params = super().links_of(key)
        return f"l.namespace = %s AND {condition}", [self.q.namespace, *params]

    def _source(
        self, driver: str, keys: list[Key], fields: list[int] | None
    ) -> tuple[str, list[Any], str]:
        """``FROM`` of the candidates, its parameters and the score column."""
        q = self.q
        if driver == "link":
            condition, params = self.links_of(keys[0])
            return (
                "annotation_links l JOIN annotations h ON h.namespace = l.namespace "
                f"AND h.pk = l.pk AND {condition}",
                params,
                "NULL::float8",
            )
        if driver == "text":
            condition, params = self._text_condition(fields)
            if q.sort != "relevance":
                return (
                    f"(SELECT DISTINCT f.pk FROM annotation_text f WHERE {condition}) m "
                    "JOIN annotations h ON h.pk = m.pk",
                    params,
                    "NULL::float8",
                )
            score, score_params = self._bm25()
            return (
                f"(SELECT r.pk, min({score}) AS score FROM (SELECT f.pk, "
                "regexp_count(f.words, %s)::float8 AS n, f.length::float8 AS d "
                f"FROM annotation_text f WHERE {condition}) r GROUP BY r.pk) m "
                "JOIN annotations h ON h.pk = m.pk",
                [*score_params, _occurrences(q.text), *params],
                "m.score",
            )
        return "annotations h", [], "NULL::float8"

    def _bm25(self) -> tuple[str, list[Any]]:
        """FTS5's ``bm25()``, in its doubles, of a text row ``r`` (``n`` phrases, ``d`` tokens).

        Like FTS5, it counts the rows holding the phrase, the rows and their tokens over all
        namespaces (one full-text table there).
        """
        q = self.q
        totals = self.conn.execute(
            "SELECT coalesce(sum(rows), 0)::bigint, coalesce(sum(tokens), 0)::bigint "
            "FROM annotation_text_totals"
        ).fetchone()
        hits = self.conn.execute(
            "SELECT count(*) FROM annotation_text "
            "WHERE lexemes @@ %s::tsquery AND position(%s IN words) > 0",
            (_tsquery(q.text), _phrase(q.text)),
        ).fetchone()
        assert totals is not None and hits is not None
        rows, tokens = totals
        avgdl = float(tokens) / float(rows) if rows else 0.0
        idf = _idf(rows, hits[0])
        return (
            "-(%s * ((r.n * %s) / (r.n + %s * (%s + %s * r.d / %s))))",
            [idf, _K1 + 1.0, _K1, 1 - _B, _B, avgdl],
        )

    def _order(self, a: str) -> tuple[str, tuple[str, list[Any]] | None]:
        """``ORDER BY`` and the keyset condition after the cursor (on alias ``a``)."""
        return order_by(self.q, a, "%s::bigint", "%s::float8")


def _idf(rows: int, hits: int) -> float:
    """FTS5's inverse document frequency of a phrase in ``hits`` of ``rows`` rows."""
    idf = math.log((rows - hits + 0.5) / (hits + 0.5))
    return idf if idf > 0.0 else 1e-6


class _Where(WhereSql):
    """A condition on ``data.*`` fields as SQL over ``h.facets``.

    As SQLite evaluates it on its JSON: each comparison is true or false (a missing value
    compares false), numbers compare as numbers, texts byte-wise, and a number sorts before
    any text.
    """

    def test(self, expr: Expr) -> str:
        """See `WhereSql.test`."""
        if isinstance(expr, Contains):
            tokens = fts_tokens(expr.text)
            if not tokens:  # an empty phrase matches nothing (as in FTS5)
                return "FALSE"
            self.params += [_tsquery(tokens), _phrase(tokens), expr.field.name]
            return (
                "EXISTS (SELECT 1 FROM annotation_text f WHERE f.namespace = h.namespace "
                "AND f.pk = h.pk AND f.lexemes @@ %s::tsquery AND position(%s IN f.words) > 0 "
                "AND f.field = (SELECT id FROM annotation_fields WHERE name = %s))"
            )
        name = expr.field.name  # type: ignore[union-attr]
        kind = self.kinds.get(name, "string")
        if isinstance(expr, Overlaps):
            first = self.compare(name, 0, "<=", float(expr.end))
            second = self.compare(name, 1, ">=", float(expr.start))
            return f"coalesce({first} AND {second}, false)"
        if isinstance(expr, BoxTest):
            x, y, w, h = (float(v) for v in (expr.box.x, expr.box.y, expr.box.w, expr.box.h))
            if expr.op == "intersects":
                tests = [("<=", x + w), ("<=", y + h), (">=", x), (">=", y)]
            else:
                tests = [(">=", x), (">=", y), ("<=", x + w), ("<=", y + h)]
            parts = [self.compare(name, i, op, value) for i, (op, value) in enumerate(tests)]
            return f"coalesce({' AND '.join(parts)}, false)"
        if isinstance(expr, Compare):
            return (
                f"coalesce({self.compare(name, None, expr.op, literal(kind, expr.value))}, false)"
            )
        assert isinstance(expr, In)
        equal = [self.compare(name, None, "=", literal(kind, v)) for v in expr.values]
        return f"coalesce(({' OR '.join(equal) or 'NULL'}), false)"

    def compare(self, name: str, index: int | None, op: str, value: Any) -> str:
        """``facets.name[index] op value`` (NULL when the value is missing)."""
        if value is None:
            return "NULL::boolean"
        element = "h.facets -> %s" + ("" if index is None else f" -> {int(index)}")
        self.params += [name, name]
        sql_op = _OPS[op]
        if isinstance(value, str):
            self.params.append(value)
            return (
                f"CASE jsonb_typeof({element}) WHEN 'string' THEN ({element} #>> '{{}}') "
                f"COLLATE \"C\" {sql_op} %s WHEN 'number' THEN {_NUMBER_VS_TEXT[op]} END"
            )
        cast = "numeric" if isinstance(value, int) else "float8"
        self.params.append(value)
        return (
            f"CASE jsonb_typeof({element}) WHEN 'number' THEN ({element})::{cast} {sql_op} "
            f"%s::{cast} WHEN 'string' THEN {_TEXT_VS_NUMBER[op]} END"
        )
