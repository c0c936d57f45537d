"""Annotations on SQLite: every version, and the index of current ones, in one transaction.

Tables (migration ``0005_annotations``):

* ``annotations``: one row per annotation: its current version, type, time, box and
  comparable properties (``facets``); ``t0`` is `NO_TIME` when it has no time, so it sorts last;
* ``annotation_versions``: every version as stored (the source of truth);
* ``annotation_links``: ``(association, start, annotation)`` of live annotations: listing an
  association's annotations in time order is one index range;
* ``annotation_space``: R*Tree over time and box; ``annotation_text``: FTS5 over the stems of
  text fields, one row per field, with rowid ``(annotation << 12) | field``, plus the minutes
  of the annotation's time (`time_tokens`).

A search starts from the smallest candidate set it can estimate cheaply (an association's
or a type's live count, a term's row count, a bounded R*Tree count) and tests every other
condition on each candidate row.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

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
    SearchRows,
)
from reeldb.store.sqlite._connection import SQLiteConnections

__all__ = ["NO_TIME", "SQLiteAnnotations"]

_FAR: Final = 3.0e38
"""R*Tree coordinate of a missing time or box: beyond any window a query names."""
_FIELD_BITS: Final = 12
_HEADS_AT_ONCE: Final = 500
"""Head rows read by one statement (``id IN (...)``) when a write reads what it updates."""
_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ROW: Final = (
    "a.id, a.namespace, v.version, t.name, t.version, v.deleted, v.created_at, v.created_by, "
    "v.body, a.version"
)


def _record(row: Sequence[Any], score: float | None = None) -> AnnotationRecord:
    return AnnotationRecord(
        UUID(bytes=row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        bool(row[5]),
        datetime.fromisoformat(row[6]),
        row[7],
        bytes(row[8]),
        row[9],
        score,
    )


def fts_phrase(tokens: Sequence[str]) -> str:
    """An FTS5 phrase query of tokens (each already one FTS token)."""
    return '"' + " ".join(tokens) + '"'


class SQLiteAnnotations:
    """`reeldb.store.base.AnnotationStore` on the store's connections."""

    _db: SQLiteConnections

    def _annotation_state(self) -> tuple[threading.Lock, dict[str, Any]]:
        state = self.__dict__.get("_ann_state")
        if state is None:
            state = self.__dict__.setdefault("_ann_state", (threading.Lock(), {}))
        return state  # type: ignore[no-any-return]

    # -- writes ---------------------------------------------------------------------------

    def put_annotation_batches(
        self, batches: Sequence[tuple[Sequence[AnnotationWrite], Sequence[AuditEntry]]]
    ) -> list[ReelError | None]:
        """See `AnnotationStore.put_annotation_batches`."""
        results: list[ReelError | None] = []
        bulk = sum(len(writes) for writes, _ in batches) >= 20_000
        with self._db.write(changes_access=False, bulk=bulk) as conn:
            for writes, audit in batches:
                conn.execute("SAVEPOINT batch")
                try:
                    self._put(conn, writes, audit)
                except ReelError as exc:
                    conn.execute("ROLLBACK TO batch")
                    results.append(exc)
                else:
                    results.append(None)
                conn.execute("RELEASE batch")
        return results

    def annotation_ids(self, namespace: str, *, after: UUID | None, limit: int) -> list[UUID]:
        """See `AnnotationStore.annotation_ids`."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id FROM annotations WHERE namespace = ? AND id > ? ORDER BY id LIMIT ?",
                (namespace, b"" if after is None else after.bytes, limit),
            ).fetchall()
        return [UUID(bytes=row[0]) for row in rows]

    def reindex_annotations(self, writes: Sequence[AnnotationWrite]) -> None:
        """See `AnnotationStore.reindex_annotations`."""
        with self._db.write(changes_access=False, bulk=len(writes) >= 20_000) as conn:
            self._put(conn, writes, (), refresh=True)

    def _put(
        self,
        conn: sqlite3.Connection,
        writes: Sequence[AnnotationWrite],
        audit: Sequence[AuditEntry],
        *,
        refresh: bool = False,
    ) -> None:
        """Store writes: each one's version (unless ``refresh``) and what search reads of it.

        Only the search rows that change are rewritten: an update that keeps an
        annotation's time, box, links or text (a backfilled keyword, say) leaves those rows
        as they are, and so does a ``refresh`` (a reindex) whose rows, read back, are
        already what its version derives. An R*Tree row, an FTS5 row and a link each cost
        several times more to delete and insert again than to read and compare.
        """
        check_distinct(writes)
        types = self._type_ids(conn, writes)
        keys = self._key_ids(conn, writes)
        fields = self._field_ids(conn, writes)
        heads = self._heads(conn, writes, keys, refresh=refresh)
        versions = []
        live_types: dict[int, int] = {}
        live_keys: dict[int, int] = {}
        spans: dict[int, float] = {}
        links_out: list[tuple[int, float, int]] = []
        links_in: list[tuple[int, float, int, float | None]] = []
        space_out: list[tuple[int]] = []
        space_in: list[tuple[Any, ...]] = []
        text_out: list[tuple[int]] = []
        text_in: list[tuple[int, str]] = []
        new_heads: list[tuple[Any, ...]] = []
        head_updates: list[tuple[Any, ...]] = []
        narrow_updates: list[tuple[Any, ...]] = []
        next_pk = conn.execute("SELECT coalesce(max(pk), 0) FROM annotations").fetchone()[0]
        # What is stored of the updated annotations, read for the whole batch at once: their
        # text rows, and for a reindex their R*Tree rows and links (an update compares with
        # its head row, which its own writes keep right).
        updated = [h.pk for h in heads.values()]
        stored_texts = self._text_rows(conn, updated)
        stored_space = self._space_rows(conn, updated) if refresh else {}
        stored_links = (
            self._link_rows(
                conn,
                [(k, h.row[3], h.pk) for h in heads.values() if not h.row[1] for k in h.links],
            )
            if refresh
            else {}
        )
        for w in writes:
            type_id = types[w.namespace, w.type_name, w.type_version]
            ident = w.id.bytes
            t0 = NO_TIME if w.time is None else w.time[0]
            t1 = None if w.time is None else w.time[1]
            box = w.box or (None, None, None, None)
            link_keys = [] if w.deleted else [keys[w.namespace, k, i] for k, i in w.associations]
            space = None if w.deleted else _space(w.time, w.box)
            version = w.expected_version + (0 if refresh else 1)
            row = (
                version,
                int(w.deleted),
                type_id,
                t0,
                t1,
                *box,
                w.facets.decode(),
                _words(w.texts),
            )
            if w.expected_version == 0:
                next_pk += 1
                pk = next_pk
                new_heads.append((pk, ident, w.namespace, *row))
                old: _Head | None = None
            else:
                old = heads.get(ident)
                if old is None or old.namespace != w.namespace:
                    raise NotFoundError(f"annotation {w.id} does not exist")
                check_head(w, old.version, old.deleted)  # so the current version is live
                pk = old.pk
                if refresh and old.row == row:
                    pass  # what search reads of the head row is already right
                elif old.row[1:4] == row[1:4]:  # deleted, type and start kept: no B-tree moves
                    narrow_updates.append((version, *row[4:], pk))
                else:
                    head_updates.append((*row, pk))
            if not refresh:  # a reindex keeps the version and rewrites what search reads
                versions.append(
                    (
                        pk,
                        version,
                        type_id,
                        int(w.deleted),
                        w.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
                        w.created_by,
                        w.body,
                    )
                )
            if old is not None:
                live_types[old.row[2]] = live_types.get(old.row[2], 0) - 1
            if not w.deleted:
                live_types[type_id] = live_types.get(type_id, 0) + 1
            # Links: kept when the keys, start and end are; a reindex checks that they exist.
            kept = (
                old is not None
                and old.links == link_keys
                and old.row[3:5] == (t0, t1)
                and (not refresh or all(stored_links.get((k, pk)) == (t0, t1) for k in link_keys))
            )
            if not kept:
                for key in old.links if old is not None else ():
                    live_keys[key] = live_keys.get(key, 0) - 1
                    links_out.append((key, old.row[3], pk))  # type: ignore[union-attr]
                length = 0.0 if w.time is None else w.time[1] - w.time[0]
                for key in link_keys:
                    live_keys[key] = live_keys.get(key, 0) + 1
                    links_in.append((key, t0, pk, t1))
                    if length > spans.get(key, 0.0):
                        spans[key] = length
            # Time and box: kept when equal to what is stored (read back by a reindex).
            if old is not None:
                stored = stored_space.get(pk) if refresh else old.space
                if space is not None and stored == (_rtree_box(space) if refresh else space):
                    space = None
                elif stored is not None:
                    space_out.append((pk,))
            if space is not None:
                space_in.append((pk, *space))
            # Text: the FTS5 rows of its fields, read back and compared.
            texts = [] if w.deleted else _text_rows_of(pk, w.texts, w.time, fields)
            assert texts is not None  # every field was interned above
            if old is not None:
                present = stored_texts.get(pk, [])
                if present == texts:
                    texts = []
                else:
                    text_out += [(rowid,) for rowid, _ in present]
            text_in += texts
        try:
            conn.executemany(
                "INSERT INTO annotations (pk, id, namespace, version, deleted, type_id, t0, "
                "t1, x0, y0, x1, y1, facets, words) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                new_heads,
            )
        except sqlite3.IntegrityError:
            taken = next(
                UUID(bytes=row[1])
                for row in new_heads
                if conn.execute("SELECT 1 FROM annotations WHERE id = ?", (row[1],)).fetchone()
            )
            raise AlreadyExistsError(f"annotation {taken} already exists") from None
        conn.executemany(
            "UPDATE annotations SET version = ?, deleted = ?, type_id = ?, t0 = ?, t1 = ?, "
            "x0 = ?, y0 = ?, x1 = ?, y1 = ?, facets = ?, words = ? WHERE pk = ?",
            head_updates,
        )
        # Neither indexed column changes: SQLite leaves both B-trees of the table alone.
        conn.executemany(
            "UPDATE annotations SET version = ?, t1 = ?, x0 = ?, y0 = ?, x1 = ?, y1 = ?, "
            "facets = ?, words = ? WHERE pk = ?",
            narrow_updates,
        )
        conn.executemany(
            "INSERT INTO annotation_versions (pk, version, type_id, deleted, created_at, "
            "created_by, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            versions,
        )
        conn.executemany(
            "DELETE FROM annotation_links WHERE key = ? AND t0 = ? AND pk = ?", links_out
        )
        conn.executemany("INSERT INTO annotation_links VALUES (?, ?, ?, ?)", links_in)
        conn.executemany("DELETE FROM annotation_space WHERE pk = ?", space_out)
        conn.executemany("INSERT INTO annotation_space VALUES (?, ?, ?, ?, ?, ?, ?)", space_in)
        # FTS5 deletes one exact rowid several times faster than a rowid range.
        conn.executemany("DELETE FROM annotation_text WHERE rowid = ?", text_out)
        conn.executemany("INSERT INTO annotation_text (rowid, body) VALUES (?, ?)", text_in)
        conn.executemany(
            "UPDATE annotation_types SET live = live + ? WHERE id = ?",
            [(n, i) for i, n in live_types.items() if n],
        )
        conn.executemany(
            "UPDATE annotation_keys SET live = live + ?, span = max(span, ?) WHERE id = ?",
            [(n, spans.get(i, 0.0), i) for i, n in live_keys.items() if n or i in spans],
        )
        if audit:
            self._append_audit(conn, audit)  # type: ignore[attr-defined]

    @staticmethod
    def _link_rows(
        conn: sqlite3.Connection, wanted: Sequence[tuple[int, float, int]]
    ) -> dict[tuple[int, int], tuple[float, float | None]]:
        """Links as stored, by their primary keys ``(key, t0, pk)``: ``(key, pk) -> (t0, t1)``.

        Each link is sought by its primary key from a JSON array, the whole batch in one
        statement. ``t0`` passes through JSON text, so it is matched within a hair and
        compared exactly by the caller.
        """
        if not wanted:
            return {}
        return {
            (key, pk): (t0, t1)
            for key, t0, pk, t1 in conn.execute(
                "SELECT l.key, l.t0, l.pk, l.t1 FROM json_each(?) j CROSS JOIN annotation_links l "
                "ON l.key = j.value ->> 0 AND l.t0 BETWEEN (j.value ->> 1) - 1e-9 "
                "AND (j.value ->> 1) + 1e-9 AND l.pk = j.value ->> 2",
                (_json.dumps(wanted).decode(),),
            )
        }

    @staticmethod
    def _text_rows(conn: sqlite3.Connection, pks: Sequence[int]) -> dict[int, list[Any]]:
        """Annotations' FTS5 rows ``(rowid, body)`` as stored, in rowid order, by ``pk``.

        One statement for the batch. Annotations written together have neighbouring pks:
        if the batch's span is at most twice its size, FTS5 walks that one rowid range
        (measured 1.5x faster than a seek per annotation), else each annotation's range
        (``CROSS JOIN`` keeps the JSON array outside, so each range is one seek).
        """
        out: dict[int, list[Any]] = {}
        if not pks:  # a batch of new annotations
            return out
        lo, hi = min(pks), max(pks)
        if hi - lo < 2 * len(pks):
            wanted = set(pks)
            for rowid, body in conn.execute(
                "SELECT rowid, body FROM annotation_text WHERE rowid BETWEEN ? AND ?",
                (lo << _FIELD_BITS, ((hi + 1) << _FIELD_BITS) - 1),
            ):
                pk = rowid >> _FIELD_BITS
                if pk in wanted:
                    out.setdefault(pk, []).append((rowid, body))
            return out
        for rowid, body in conn.execute(
            "SELECT t.rowid, t.body FROM json_each(?) j CROSS JOIN annotation_text t "
            f"ON t.rowid BETWEEN j.value << {_FIELD_BITS} "
            f"AND ((j.value + 1) << {_FIELD_BITS}) - 1",
            (_json.dumps(list(pks)).decode(),),
        ):
            out.setdefault(rowid >> _FIELD_BITS, []).append((rowid, body))
        return out

    @staticmethod
    def _space_rows(conn: sqlite3.Connection, pks: Sequence[int]) -> dict[int, tuple[float, ...]]:
        """Annotations' R*Tree rows as stored (32-bit bounds), of those that have one."""
        return {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT s.pk, s.t0, s.t1, s.x0, s.x1, s.y0, s.y1 FROM json_each(?) j "
                "CROSS JOIN annotation_space s ON s.pk = j.value",
                (_json.dumps(list(pks)).decode(),),
            )
        }

    @staticmethod
    def _type_ids(
        conn: sqlite3.Connection, writes: Sequence[AnnotationWrite]
    ) -> dict[tuple[str, str, int], int]:
        wanted = {(w.namespace, w.type_name, w.type_version): w.lineage for w in writes}
        conn.executemany(
            "INSERT OR IGNORE INTO annotation_types (namespace, name, version, lineage) "
            "VALUES (?, ?, ?, ?)",
            [(*key, _json.dumps(list(lineage)).decode()) for key, lineage in wanted.items()],
        )
        out = {}
        for key in wanted:
            out[key] = conn.execute(
                "SELECT id FROM annotation_types WHERE namespace = ? AND name = ? AND version = ?",
                key,
            ).fetchone()[0]
        return out

    @staticmethod
    def _key_ids(
        conn: sqlite3.Connection, writes: Sequence[AnnotationWrite]
    ) -> dict[tuple[str, str, str], int]:
        wanted = {(w.namespace, kind, ident) for w in writes for kind, ident in w.associations}
        conn.executemany(
            "INSERT OR IGNORE INTO annotation_keys (namespace, type, value) VALUES (?, ?, ?)",
            sorted(wanted),
        )
        return {
            key: conn.execute(
                "SELECT id FROM annotation_keys WHERE namespace = ? AND type = ? AND value = ?",
                key,
            ).fetchone()[0]
            for key in wanted
        }

    @staticmethod
    def _field_ids(conn: sqlite3.Connection, writes: Sequence[AnnotationWrite]) -> dict[str, int]:
        wanted = sorted({name for w in writes for name, _ in w.texts})
        conn.executemany(
            "INSERT OR IGNORE INTO annotation_fields (name) VALUES (?)", [(n,) for n in wanted]
        )
        return {
            name: conn.execute(
                "SELECT id FROM annotation_fields WHERE name = ?", (name,)
            ).fetchone()[0]
            for name in wanted
        }

    @staticmethod
    def _heads(
        conn: sqlite3.Connection,
        writes: Sequence[AnnotationWrite],
        keys: dict[tuple[str, str, str], int],
        *,
        refresh: bool = False,
    ) -> dict[bytes, _Head]:
        """The current state of each annotation the writes update (and, if live, its links).

        Read `_HEADS_AT_ONCE` at a time. With ``refresh`` (a reindex: each write is of the
        current version), an annotation's links are its write's: no version is read.
        ``keys`` holds the writes' association ids; an older version's others are looked up.
        """
        out: dict[bytes, _Head] = {}
        writes_by_id = {w.id.bytes: w for w in writes if w.expected_version != 0}
        # (A taken id of a new annotation fails the insert (UNIQUE), and is reported then.)
        wanted = list(writes_by_id)
        source = (
            "annotations a"
            if refresh
            else "annotations a JOIN annotation_versions v ON v.pk = a.pk AND v.version = a.version"
        )
        known = dict(keys)
        for at in range(0, len(wanted), _HEADS_AT_ONCE):
            chunk = wanted[at : at + _HEADS_AT_ONCE]
            rows = conn.execute(
                "SELECT a.id, a.pk, a.namespace, a.version, a.deleted, a.type_id, a.t0, a.t1, "
                f"a.x0, a.y0, a.x1, a.y1, a.facets, a.words, {'NULL' if refresh else 'v.body'} "
                f"FROM {source} WHERE a.id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for found in rows:
                w = writes_by_id[found[0]]
                links: list[int] = []
                if refresh and not found[4]:
                    links = [keys[w.namespace, kind, ident] for kind, ident in w.associations]
                elif not found[4]:
                    for a in _json.loads(found[14])["associations"]:
                        key = (found[2], a["type"], a["id"])
                        if key not in known:
                            known[key] = conn.execute(
                                "SELECT id FROM annotation_keys WHERE namespace = ? "
                                "AND type = ? AND value = ?",
                                key,
                            ).fetchone()[0]
                        links.append(known[key])
                out[found[0]] = _Head(found[1], found[2], tuple(found[3:14]), links)
        return out

    # -- reads ----------------------------------------------------------------------------

    def get_annotation(
        self, namespace: str, annotation_id: UUID, version: int | None = None
    ) -> AnnotationRecord:
        """See `AnnotationStore.get_annotation`."""
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(
                f"SELECT {_ROW} FROM annotations a JOIN annotation_versions v ON v.pk = a.pk "
                f"AND v.version = {'a.version' if version is None else '?'} "
                "JOIN annotation_types t ON t.id = v.type_id WHERE a.id = ? AND a.namespace = ?",
                (annotation_id.bytes, namespace)
                if version is None
                else (version, annotation_id.bytes, namespace),
            ).fetchone()
        if row is None:
            raise missing_annotation(namespace, annotation_id, version)
        return _record(row)

    def annotation_versions(self, namespace: str, annotation_id: UUID) -> list[AnnotationRecord]:
        """See `AnnotationStore.annotation_versions`."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_ROW} FROM annotations a JOIN annotation_versions v ON v.pk = a.pk "
                "JOIN annotation_types t ON t.id = v.type_id WHERE a.id = ? AND a.namespace = ? "
                "ORDER BY v.version",
                (annotation_id.bytes, namespace),
            ).fetchall()
        if not rows:
            raise missing_annotation(namespace, annotation_id)
        return [_record(row) for row in rows]

    def annotation_history(
        self, namespace: str, *, after: UUID | None, limit: int, bodies: bool = True
    ) -> list[AnnotationRecord]:
        """See `AnnotationStore.annotation_history`."""
        row = _ROW if bodies else _ROW.replace("v.body", "x''")
        start = b"" if after is None else after.bytes
        with self._db.read() as conn:
            # The page's last id first, then one walk of the id index up to it: rows come in
            # (id, version) order with no sort.
            rows = conn.execute(
                f"SELECT {row} FROM annotations a JOIN annotation_versions v ON v.pk = a.pk "
                "JOIN annotation_types t ON t.id = v.type_id "
                "WHERE a.namespace = ? AND a.id > ? AND a.id <= (SELECT max(id) FROM (SELECT id "
                "FROM annotations WHERE namespace = ? AND id > ? ORDER BY id LIMIT ?)) "
                "ORDER BY a.id, v.version",
                (namespace, start, namespace, start, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def annotation_heads(
        self, namespace: str, *, after: UUID | None, limit: int, at: datetime | None
    ) -> list[tuple[AnnotationRecord, AnnotationRecord | None]]:
        """See `AnnotationStore.annotation_heads`."""
        params = {
            "namespace": namespace,
            "after": b"" if after is None else after.bytes,
            "limit": limit,
            # As the writer stores ``created_at``: fixed-width UTC text, ordered as times are.
            "at": None if at is None else at.astimezone(UTC).isoformat(timespec="microseconds"),
        }
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_ROW}, a.pk, (SELECT max(w.version) FROM annotation_versions w "
                "WHERE w.pk = a.pk AND (:at IS NULL OR w.created_at <= :at)) "
                "FROM annotations a JOIN annotation_versions v ON v.pk = a.pk "
                "AND v.version = a.version JOIN annotation_types t ON t.id = v.type_id "
                "WHERE a.namespace = :namespace AND a.id > :after ORDER BY a.id LIMIT :limit",
                params,
            ).fetchall()
            return [
                (_record(found), None) if found[-1] is None else self._head_pair(conn, found)
                for found in rows
            ]

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

        The page's head rows with their current versions, one statement; ``derive`` outside
        any transaction (it may read type versions); then, in one read snapshot, the FTS5,
        R*Tree and link rows of those to check, each in one statement (`_text_rows`,
        `_space_rows`, `_link_rows`), compared as a reindex's write compares them (`_put`).
        An annotation written between the two reads has search rows its write derived:
        either they match, or it is returned and its reindex finds it moved on.
        """
        params = {
            "namespace": namespace,
            "after": b"" if after is None else after.bytes,
            "before": None if before is None else before.bytes,
            "limit": limit,
            "at": None if at is None else at.astimezone(UTC).isoformat(timespec="microseconds"),
        }
        with self._db.read(snapshot=False) as conn:
            rows = conn.execute(
                f"SELECT {_ROW}, a.pk, v.type_id, a.deleted, a.type_id, a.t0, a.t1, a.x0, a.y0, "
                "a.x1, a.y1, a.facets, a.words, CASE WHEN :at IS NULL OR v.created_at <= :at "
                "THEN v.version ELSE (SELECT max(w.version) FROM annotation_versions w "
                "WHERE w.pk = a.pk AND w.created_at <= :at) END "
                "FROM annotations a JOIN annotation_versions v ON v.pk = a.pk "
                "AND v.version = a.version JOIN annotation_types t ON t.id = v.type_id "
                "WHERE a.namespace = :namespace AND a.id > :after "
                "AND (:before IS NULL OR a.id < :before) ORDER BY a.id LIMIT :limit",
                params,
            ).fetchall()
        if not rows:
            return AnnotationHeadPage([], 0, None)
        checked: list[tuple[Sequence[Any], SearchRows]] = []
        rest: list[Sequence[Any]] = []
        for found in rows:
            then = found[-1]
            if then is None:
                continue  # created after the instant: not in the page's round
            derived = None
            if then == found[2] and not found[12]:  # live, and unchanged since ``at``
                derived = derive(found[3], found[4], found[8])
            if derived is None:
                rest.append(found)
            else:
                checked.append((found, derived))
        pairs: list[tuple[AnnotationRecord, AnnotationRecord | None]] = []
        with self._db.read() as conn:
            stale = self._not_indexed(conn, namespace, checked)
            for found in rest:
                pairs.append(self._head_pair(conn, found))
        # What the page holds in id order, less the annotations already indexed.
        for found, _ in stale:
            pairs.append((_record(found), _record(found)))
        pairs.sort(key=lambda pair: pair[0].id.bytes)
        return AnnotationHeadPage(pairs, len(checked) - len(stale), UUID(bytes=bytes(rows[-1][0])))

    @staticmethod
    def _head_pair(
        conn: sqlite3.Connection, found: Sequence[Any]
    ) -> tuple[AnnotationRecord, AnnotationRecord]:
        """An annotation's current version and its version of the instant (`annotation_heads`).

        ``found`` is ``_ROW, pk, ...`` and, last, the version of the instant (not None).
        """
        current, then = _record(found), found[-1]
        if then == current.version:
            return current, current
        older = conn.execute(  # changed since the instant: rare while a job runs
            f"SELECT {_ROW} FROM annotations a JOIN annotation_versions v "
            "ON v.pk = a.pk AND v.version = ? JOIN annotation_types t "
            "ON t.id = v.type_id WHERE a.pk = ?",
            (then, found[10]),
        ).fetchone()
        return current, _record(older)

    def _not_indexed(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        checked: Sequence[tuple[Sequence[Any], SearchRows]],
    ) -> list[tuple[Sequence[Any], SearchRows]]:
        """Of live head rows and what their versions derive, those whose search rows differ.

        A row is ``_ROW, pk, the version's type_id`` and the head row's ``deleted, type_id,
        t0, t1, x0, y0, x1, y1, facets, words``. The comparisons are `_put`'s for a reindex
        (``refresh``).
        """
        if not checked:
            return []
        pks = [found[10] for found, _ in checked]
        texts = self._text_rows(conn, pks)
        space = self._space_rows(conn, pks)
        fields = {name: i for i, name in conn.execute("SELECT id, name FROM annotation_fields")}
        wanted = sorted({pair for _, rows in checked for pair in rows.associations})
        keys = {
            (kind, value): i
            for i, kind, value in conn.execute(
                "SELECT k.id, k.type, k.value FROM json_each(?) j CROSS JOIN annotation_keys k "
                "ON k.namespace = ? AND k.type = j.value ->> 0 AND k.value = j.value ->> 1",
                (_json.dumps(wanted).decode(), namespace),
            )
        }
        links = self._link_rows(
            conn,
            [
                (keys.get(pair, -1), found[14], found[10])
                for found, rows in checked
                for pair in rows.associations
            ],
        )
        stale = []
        for found, rows in checked:
            pk, time, box = found[10], rows.time, rows.box
            t0, t1 = (NO_TIME, None) if time is None else time
            head = (found[11], t0, t1, *(box or _NO_BOX), rows.facets.decode(), _words(rows.texts))
            if head != tuple(found[13:22]):
                stale.append((found, rows))
                continue
            if any(links.get((keys.get(pair, -1), pk)) != (t0, t1) for pair in rows.associations):
                stale.append((found, rows))
                continue
            want = _space(time, box)
            if space.get(pk) != (None if want is None else _rtree_box(want)):
                stale.append((found, rows))
                continue
            if texts.get(pk, []) != _text_rows_of(pk, rows.texts, time, fields):
                stale.append((found, rows))
        return stale

    def annotation_columns(
        self,
        namespace: str,
        *,
        after: tuple[int, int] | None,
        limit: int,
        bodies: bool = True,
    ) -> AnnotationColumns:
        """See `AnnotationStore.annotation_columns`."""
        # One walk of the versions' primary key ``(pk, version)`` from the cursor, each row
        # joined to its annotation by primary key (CROSS JOIN keeps that order: no sort of the
        # namespace per page); the few types are read apart.
        pk, version = after if after is not None else (0, 0)
        body = "v.body" if bodies else "NULL"
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT v.pk, a.id, v.version, v.type_id, v.deleted, v.created_at, "
                f"v.created_by, {body} FROM annotation_versions v "
                "CROSS JOIN annotations a ON a.pk = v.pk "
                "WHERE v.pk >= ? AND (v.pk > ? OR v.version > ?) AND a.namespace = ? "
                "ORDER BY v.pk, v.version LIMIT ?",
                (pk, pk, version, namespace, limit),
            ).fetchall()
            types = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT id, name, version FROM annotation_types WHERE namespace = ?",
                    (namespace,),
                )
            }
        if not rows:
            return AnnotationColumns()
        pks, ids, versions, type_ids, deleted, created, by, body_ = zip(*rows, strict=True)
        kinds = [types[i] for i in type_ids]
        return AnnotationColumns(
            ids,
            versions,
            tuple(k[0] for k in kinds),
            tuple(k[1] for k in kinds),
            tuple(map(bool, deleted)),
            created,  # as the writer stores it: isoformat(timespec="microseconds"), UTC
            by,
            body_ if bodies else (),
            (pks[-1], versions[-1]),
        )

    def count_annotations(self, namespace: str) -> int:
        """See `AnnotationStore.count_annotations`."""
        with self._db.read() as conn:
            found: int = conn.execute(
                "SELECT coalesce(sum(live), 0) FROM annotation_types WHERE namespace = ?",
                (namespace,),
            ).fetchone()[0]
        return found

    def association_types(self, namespace: str) -> tuple[str, ...] | None:
        """See `AnnotationStore.association_types`."""
        with self._db.read(snapshot=False) as conn:
            row = conn.execute(
                "SELECT association_types FROM annotation_settings WHERE namespace = ?",
                (namespace,),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return tuple(_json.loads(row[0]))

    def set_association_types(self, namespace: str, types: Sequence[str] | None) -> None:
        """See `AnnotationStore.set_association_types`."""
        with self._db.write() as conn:
            if (
                conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (namespace,)).fetchone()
                is None
            ):
                raise NotFoundError(f"namespace {namespace!r} does not exist")
            conn.execute(
                "INSERT INTO annotation_settings (namespace, association_types) VALUES (?, ?) "
                "ON CONFLICT (namespace) DO UPDATE SET "
                "association_types = excluded.association_types",
                (namespace, None if types is None else _json.dumps(sorted(set(types))).decode()),
            )

    # -- search ---------------------------------------------------------------------------

    def search_annotations(
        self, query: AnnotationQuery
    ) -> tuple[list[AnnotationRecord], tuple[float | int, ...] | None]:
        """See `AnnotationStore.search_annotations`."""
        with self._db.read() as conn:
            return _Search(conn, query).run()


class _Search(AnnotationSearch[sqlite3.Connection]):
    """One annotation search on a read connection."""

    param = "?"
    record = staticmethod(_record)

    def field_ids(self, names: Sequence[str]) -> list[int]:
        """See `AnnotationSearch.field_ids`."""
        return [
            row[0]
            for row in self.conn.execute(
                f"SELECT id FROM annotation_fields WHERE name IN ({', '.join('?' * len(names))})",
                names,
            )
        ]

    def select(
        self, type_ids: list[int] | None, keys: list[Key], fields: list[int] | None, offset: int
    ) -> list[Any]:
        """See `AnnotationSearch.select`."""
        driver = self._driver(type_ids, keys)
        where, params = self._conditions(driver, type_ids, keys, fields)
        source, source_params, score = self._source(driver, type_ids, keys, fields)
        # The driver is the outer loop (CROSS JOIN keeps SQLite from reordering), and an
        # association's links are read in time order straight from their index.
        order, after = self._order("l" if driver == "link" else "h")
        if after:
            where.append(after[0])
            params += after[1]
        # The page is chosen from the annotations' own rows; only its rows read their
        # stored version.
        sql = (
            f"SELECT c.id, c.namespace, v.version, t.name, t.version, v.deleted, v.created_at, "
            "v.created_by, v.body, c.version, c.score, c.t0, c.pk FROM "
            f"(SELECT h.id, h.namespace, h.version, h.type_id, {score or 'NULL'} AS score, "
            f"h.t0, h.pk FROM {source} WHERE {' AND '.join(where)} ORDER BY {order} "
            f"LIMIT {self.q.limit + 1} OFFSET {offset}) c "
            "CROSS JOIN annotation_versions v ON v.pk = c.pk AND v.version = c.version "
            "CROSS JOIN annotation_types t ON t.id = c.type_id "
            f"ORDER BY {self._order('c')[0]}"
        )
        return self.conn.execute(sql, [*source_params, *params]).fetchall()

    def _conditions(
        self,
        driver: str,
        type_ids: list[int] | None,
        keys: list[Key],
        fields: list[int] | None,
    ) -> tuple[list[str], list[Any]]:
        """The tests each candidate row (``h``) must pass, and their parameters."""
        q = self.q
        where: list[str] = ["h.namespace = ?", "h.deleted = 0"]
        params: list[Any] = [q.namespace]
        if type_ids is not None:
            where.append(f"h.type_id IN ({', '.join(map(str, type_ids))})")
        for key, _, _ in keys[1:] if driver == "link" else keys:
            where.append(
                "EXISTS (SELECT 1 FROM annotation_links l WHERE l.key = ? AND l.t0 = h.t0 "
                "AND l.pk = h.pk)"
            )
            params.append(key)
        if q.time is not None or q.box is not None:
            tests, values = self._space("h.", widen=False)
            where.append(tests)
            params += values
        if q.text and driver != "text":
            if fields is None:  # the phrase, in the row's own words: no index lookup
                where.append("instr(h.words, ?) > 0")
                params.append(" " + " ".join(q.text) + " ")
            else:
                where.append(_text_exists("h.pk", fields))
                params.append(fts_phrase(q.text))
        if q.where is not None:
            where.append(_Where(q.kinds or {}, params).expr(q.where))
        return where, params

    def _driver(self, type_ids: list[int] | None, keys: list[Key]) -> str:
        """Where to start: the candidate set estimated smallest."""
        q = self.q
        if q.sort == "relevance":
            return "text"
        estimates = self.link_estimates(keys)
        if type_ids is not None:
            live = self.conn.execute(
                "SELECT coalesce(sum(live), 0) FROM annotation_types WHERE id IN "
                f"({', '.join(map(str, type_ids))})"
            ).fetchone()[0]
            estimates.append((live, 3, "type"))
        if q.text:
            counts = [
                row[0]
                for token in q.text
                for row in self.conn.execute(
                    "SELECT doc FROM annotation_terms WHERE term = ?", (token,)
                )
            ]
            estimates.append((min(counts) if len(counts) == len(q.text) else 0, 1, "text"))
        best = min(estimates, default=(float("inf"), 9, "namespace"))
        if (q.time is not None or q.box is not None) and best[0] > PROBE_LIMIT // 5:
            # Counted only as far as it would clearly beat the best so far (its candidates
            # cost about as much each, and counting them is not free).
            space = self._space()
            bound = int(min(PROBE_LIMIT, best[0] // 4))
            found = self.count(f"SELECT 1 FROM annotation_space WHERE {space[0]}", space[1], bound)
            estimates.append((found if found < bound else float("inf"), 2, "space"))
            best = min(estimates)
        return best[2]

    def _space(self, a: str = "", *, widen: bool = True) -> tuple[str, list[float]]:
        """The time and box tests on columns ``t0 t1 x0 x1 y0 y1`` of alias ``a``.

        With ``widen``, the R*Tree's: it holds 32-bit bounds rounded outwards, so ``within``
        is probed with the query's bounds widened by more than that rounding (``overlaps``
        and ``intersects`` need nothing: rounding outwards only adds candidates), and the
        exact tests on the rows' doubles decide.
        """
        below, above = (_below, _above) if widen else (float, float)
        q = self.q
        where: list[str] = []
        params: list[float] = []
        if q.time is not None:
            start, end = q.time
            if q.time_op == "within":
                where.append(f"{a}t0 >= ? AND {a}t1 <= ?")
                params += [below(start), above(end)]
            else:
                where.append(f"{a}t0 <= ? AND {a}t1 >= ?")
                params += [end, start]
        if q.box is not None:
            x0, y0, x1, y1 = q.box
            if q.box_op == "within":
                where.append(f"{a}x0 >= ? AND {a}x1 <= ? AND {a}y0 >= ? AND {a}y1 <= ?")
                params += [below(x0), above(x1), below(y0), above(y1)]
            else:
                where.append(f"{a}x0 <= ? AND {a}x1 >= ? AND {a}y0 <= ? AND {a}y1 >= ?")
                params += [x1, x0, y1, y0]
        return " AND ".join(where), params

    def count(self, sql: str, params: Sequence[Any], bound: int) -> int:
        """See `AnnotationSearch.count`."""
        found: int = self.conn.execute(
            f"SELECT count(*) FROM ({sql} LIMIT {int(bound)})", params
        ).fetchone()[0]
        return found

    def _source(
        self,
        driver: str,
        type_ids: list[int] | None,
        keys: list[Key],
        fields: list[int] | None,
    ) -> tuple[str, list[Any], str | None]:
        q = self.q
        params: list[Any]
        if driver == "link":
            condition, params = self.links_of(keys[0])
            return (
                f"annotation_links l CROSS JOIN annotations h ON h.pk = l.pk AND {condition}",
                params,
                None,
            )
        if driver == "text":
            field_test = (
                "" if fields is None else f" AND (rowid & 4095) IN ({', '.join(map(str, fields))})"
            )
            if q.sort == "relevance":  # bm25 costs: only when it orders the results
                matches = f"SELECT rowid >> {_FIELD_BITS} AS pk, min(rank) AS score"
                group = " GROUP BY 1"
            else:
                matches, group = f"SELECT DISTINCT rowid >> {_FIELD_BITS} AS pk", ""
            match = fts_phrase(q.text)
            buckets = None if q.time is None or group else window_tokens(*q.time)
            if buckets:  # the time window narrows the matches inside the full-text index
                match += " AND (" + " OR ".join(f'"{token}"' for token in buckets) + ")"
            return (
                f"({matches} FROM annotation_text WHERE annotation_text MATCH ?{field_test}"
                f"{group}) m CROSS JOIN annotations h ON h.pk = m.pk",
                [match],
                "m.score" if group else None,
            )
        if driver == "space":
            condition, params = self._space("s.")
            return (
                f"annotation_space s CROSS JOIN annotations h ON h.pk = s.pk AND {condition}",
                params,
                None,
            )
        return "annotations h", [], None

    def _order(self, a: str) -> tuple[str, tuple[str, list[Any]] | None]:
        """``ORDER BY`` and the keyset condition after the cursor (on alias ``a``)."""
        return order_by(self.q, a, "?", "?")


def _below(value: float) -> float:
    """A bound lowered past any 32-bit rounding of values at or above it."""
    return value - abs(value) * 1e-6 - 1e-30


def _above(value: float) -> float:
    """A bound raised past any 32-bit rounding of values at or below it."""
    return value + abs(value) * 1e-6 + 1e-30


_NO_BOX: Final = (None, None, None, None)


def _text_rows_of(
    pk: int,
    texts: Sequence[tuple[str, str]],
    time: tuple[float, float] | None,
    fields: dict[str, int],
) -> list[tuple[int, str]] | None:
    """An annotation's FTS5 rows ``(rowid, body)``, in rowid order.

    One per text field, each with the minutes of its time (None: a field not interned yet).
    """
    when = "" if time is None else " " + " ".join(time_tokens(*time))
    out = []
    for name, body in texts:
        field = fields.get(name)
        if field is None:
            return None
        out.append(((pk << _FIELD_BITS) | field, body + when))
    out.sort()
    return out


def _words(texts: Sequence[tuple[str, str]]) -> str | None:
    """An annotation's text tokens, fields apart (``|`` is never a token): `` a b | c ``."""
    if not texts:
        return None
    return " " + " | ".join(tokens for _, tokens in texts) + " "


class _Head:
    """An annotation's head row as a write finds it, and its links' keys (if live)."""

    __slots__ = ("links", "namespace", "pk", "row")

    def __init__(self, pk: int, namespace: str, row: tuple[Any, ...], links: list[int]) -> None:
        self.pk = pk
        self.namespace = namespace
        self.row = row
        """``version, deleted, type_id, t0, t1, x0, y0, x1, y1, facets, words``."""
        self.links = links

    @property
    def version(self) -> int:
        return int(self.row[0])

    @property
    def deleted(self) -> bool:
        return bool(self.row[1])

    @property
    def space(self) -> tuple[float, ...] | None:
        """Its R*Tree row's values (exact), if it has one (`_space`)."""
        t0, t1, x0, y0, x1, y1 = self.row[3:9]
        return _space(None if t0 == NO_TIME else (t0, t1), None if x0 is None else (x0, y0, x1, y1))


def _space(
    time: tuple[float, float] | None, box: tuple[float, float, float, float] | None
) -> tuple[float, ...] | None:
    """An annotation's R*Tree row ``(lo, hi, x0, x1, y0, y1)`` (None: no time and no box).

    A missing time or box lies far beyond any query's window (`_FAR`).
    """
    if time is None and box is None:
        return None
    lo, hi = time if time is not None else (_FAR, _FAR)
    x0, y0, x1, y1 = box if box is not None else (_FAR,) * 4
    return (lo, hi, x0, x1, y0, y1)


_TOWARDS: Final = 1.0 - 1.0 / 8388608.0
_AWAY: Final = 1.0 + 1.0 / 8388608.0


def _f32(value: float) -> float:
    return array("f", (value,))[0]


def _rtree_box(space: tuple[float, ...]) -> tuple[float, ...]:
    """What SQLite's R*Tree stores of a row's bounds (``rtree.c``).

    32-bit floats, each low bound rounded down and each high bound up (``rtreeValueDown``,
    ``rtreeValueUp``).
    """
    out = array("f", space).tolist()  # the nearest: right unless it lies inside the bounds
    for i, (d, f) in enumerate(zip(space, out, strict=True)):
        if f == d:
            continue
        if i % 2 == 0 and f > d:
            f = _f32(d * (_AWAY if d < 0 else _TOWARDS))
        elif i % 2 == 1 and f < d:
            f = _f32(d * (_TOWARDS if d < 0 else _AWAY))
        out[i] = f
    return tuple(out)


def _text_exists(pk: str, fields: list[int] | None) -> str:
    field_test = (
        "" if fields is None else f" AND (f.rowid & 4095) IN ({', '.join(map(str, fields))})"
    )
    return (
        "EXISTS (SELECT 1 FROM annotation_text f WHERE annotation_text MATCH ? "
        f"AND f.rowid BETWEEN {pk} << {_FIELD_BITS} AND (({pk} + 1) << {_FIELD_BITS}) - 1"
        f"{field_test})"
    )


class _Where(WhereSql):
    """A condition on ``data.*`` fields as SQL over ``h.facets`` (``0``/``1``, never NULL)."""

    def test(self, expr: Expr) -> str:
        """See `WhereSql.test`."""
        if isinstance(expr, Contains):
            tokens = fts_tokens(expr.text)
            self.params.append(fts_phrase(tokens))
            self.params.append(expr.field.name)
            return (
                "EXISTS (SELECT 1 FROM annotation_text f WHERE annotation_text MATCH ? "
                f"AND f.rowid BETWEEN h.pk << {_FIELD_BITS} "
                f"AND ((h.pk + 1) << {_FIELD_BITS}) - 1 AND (f.rowid & 4095) = "
                "(SELECT id FROM annotation_fields WHERE name = ?))"
            )
        kind = self.kinds.get(expr.field.name, "string")  # type: ignore[union-attr]
        path = '$."' + expr.field.name + '"'  # type: ignore[union-attr]
        if isinstance(expr, Overlaps):
            self.params += [path + "[0]", float(expr.end), path + "[1]", float(expr.start)]
            return "coalesce(json_extract(h.facets, ?) <= ? AND json_extract(h.facets, ?) >= ?, 0)"
        if isinstance(expr, BoxTest):
            x, y, w, h = (float(v) for v in (expr.box.x, expr.box.y, expr.box.w, expr.box.h))
            parts = [f"{path}[{i}]" for i in range(4)]
            if expr.op == "intersects":
                values = [x + w, y + h, x, y]
                test = "{0} <= ? AND {1} <= ? AND {2} >= ? AND {3} >= ?"
            else:
                values = [x, y, x + w, y + h]
                test = "{0} >= ? AND {1} >= ? AND {2} <= ? AND {3} <= ?"
            sql = test.format(*(["json_extract(h.facets, ?)"] * 4))
            for part, value in zip(parts, values, strict=True):
                self.params += [part, value]
            return f"coalesce({sql}, 0)"
        column = "json_extract(h.facets, ?)"
        self.params.append(path)
        if isinstance(expr, Compare):
            self.params.append(literal(kind, expr.value))
            return f"coalesce({column} {_OPS[expr.op]} ?, 0)"
        assert isinstance(expr, In)
        self.params.extend(literal(kind, v) for v in expr.values)
        return f"coalesce({column} IN ({', '.join('?' * len(expr.values))}), 0)"
