"""Annotations: bulk create throughput, reads by id and by association, and combined search.

Prints one JSON object. For each of ``--backends`` (``sqlite``, the default, and/or
``postgresql``), on a fresh database (a SQLite file with ``synchronous=full``, the default;
or a new database on the PostgreSQL server ``--postgres`` names, dropped afterwards), with
the same seeds, so that both backends store the same annotations and answer the same
questions:

1. **Bulk create**: ``--count`` frame-level ``CHARACTER_IN_FRAME`` annotations (it extends
   ``TEMPORAL_SPATIAL_BASE``: a time range of one frame at 24 fps, a box, a character name,
   and a comment on one in ten) on ``--videos`` videos, written with
   `Annotations.create_many` in batches of ``--batch``: validation, the durable write and
   indexing in one transaction per batch. Reported as annotations per second, with the
   database's size after it (``file_mb`` on SQLite, ``db_mb`` on PostgreSQL).
2. **Create baselines**, same run, same disk, rows of the same shape (id, association,
   time, box, JSON body; up to 200,000 of them) into one plain table, one transaction per
   batch: on SQLite raw ``sqlite3`` ``executemany`` into a second file
   (``sql_executemany_per_s``); on PostgreSQL raw psycopg 3 into tables of the same
   database (dropped before the reads), both ``cursor.executemany`` (which pipelines the
   statements, ``sql_executemany_per_s``) and binary ``COPY`` with typed columns
   (``sql_copy_per_s``). ``vs_sql``/``vs_copy`` are the baseline's rate over reeldb's.
3. **Reads**, each ``--repeat`` times in a random order with fresh values, p50/p99:
   get by id; the first page (100) of a video's annotations by association; a 60 s window
   of a video's timeline; combined **time + box + text** searches across all videos (a
   character's name, a 5-minute window, a quadrant of the frame) and within one video.
4. **Read baselines**: the same questions as hand-written SQL over reeldb's own tables, the
   values bound as parameters: on SQLite through ``sqlite3`` on the same file (FTS5,
   ``annotation_links``, the head rows' ``words``); on PostgreSQL through psycopg
   (autocommit) on the same database, over its annotation tables (hash-partitioned by
   namespace: every statement names the namespace of each table it reads; the GIN index on
   ``annotation_text.lexemes`` finds a name, the GiST index on ``annotations.span`` a window,
   ``annotation_links`` a video's annotations in time order; the one-video search walks
   them in that order up to the page, on both backends). ``vs_sql`` is reeldb's p50 over the
   baseline's on that backend: its overhead (checking, planning, building results). Each
   question's baseline must find as many rows as reeldb (``mean_hits`` and
   ``sql_mean_hits``); the script exits with 1, after printing, if one does not.

PostgreSQL plans with statistics that reeldb never gathers for its annotation tables (it
never ``ANALYZE``s them, autovacuum never analyzes partitioned parents, and it may be off),
and every full-text search scans the GIN index's pending list until a vacuum merges it. By
default the script runs ``VACUUM ANALYZE`` on the annotation tables before the reads, as
autovacuum would on a server where it runs; ``--no-vacuum-analyze`` reads them as reeldb
leaves them (on large data a search can then take minutes). ``backends.postgresql.stats``
records which partitions had statistics and the pending list's pages, before and at the
reads.

``side_by_side`` puts each backend's create rates and each read's p50/p99/sql_p50 next to
each other. Target (DESIGN.md): combined search over 10M annotations p50 < 5 ms, p99 < 50 ms
(``targets``: on SQLite, and under ``targets.postgresql`` on PostgreSQL).
``--quick`` is a smoke test of a few seconds per backend.

Usage::

    python benchmarks/annotation_bench.py [--count 10000000] [--videos 2000]
        [--batch 10000] [--repeat 200] [--backends sqlite postgresql] [--postgres URL]
        [--no-vacuum-analyze] [--quick] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

import reeldb
from measure import each_backend, environment, percentiles, timed
from reeldb.annotations import Association, NewAnnotation
from reeldb.index.sqlite import fts_token
from reeldb.query.fulltext import stems
from reeldb.testing import POSTGRES_SERVER_URL

NS = "bench"
NAMES = 5000
WORDS = [
    "glove", "black", "colour", "change", "light", "shadow", "blur", "sharp", "crop", "logo",
    "face", "smile", "frown", "door", "window", "car", "street", "night", "rain", "sun",
]  # fmt: skip
FPS = 24
BASELINE_ROWS = 200_000
"""Rows the create baselines write at most."""
ANNOTATION_TABLES = (
    "annotations",
    "annotation_versions",
    "annotation_links",
    "annotation_text",
    "annotation_keys",
    "annotation_ids",
)
"""The partitioned annotation tables of PostgreSQL (``--vacuum-analyze``)."""


def character(i: int) -> str:
    return f"name{i}"


def items(rng: random.Random, start: int, n: int, videos: int) -> list[NewAnnotation]:
    """Annotations ``start`` to ``start + n``: number ``k`` is frame ``k // videos`` of a video."""
    out = []
    for k in range(start, start + n):
        frame = k // videos
        x, y = rng.random() * 0.8, rng.random() * 0.8
        data: dict[str, Any] = {
            "label": "character",
            "characterName": f"{character(rng.randrange(NAMES))} {rng.choice(WORDS)}",
            "temporal": {"start": frame / FPS, "end": (frame + 1) / FPS},
            "spatial": {"x": round(x, 4), "y": round(y, 4), "w": 0.1, "h": 0.15},
        }
        if k % 10 == 0:
            data["comment"] = " ".join(rng.choice(WORDS) for _ in range(8))
        out.append(
            NewAnnotation(
                "CHARACTER_IN_FRAME",
                (Association("VIDEO_ID", f"v{k % videos}"),),
                data,
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument(
        "--videos", type=int, default=None, help="default: one hour at 24 fps per video"
    )
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument("--postgres", default=POSTGRES_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument(
        "--vacuum-analyze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL: VACUUM ANALYZE the annotation tables before the reads (default), as "
        "autovacuum would on a server where it runs; --no-vacuum-analyze reads them as reeldb "
        "leaves them (no statistics, the GIN pending list unmerged)",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny sizes")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.count, args.batch, args.repeat = 20_000, 5000, 20
    if args.videos is None:
        args.videos = max(1, args.count // (3600 * FPS))
    out: dict[str, Any] = {
        "benchmark": "annotations",
        **environment(),
        "sizes": {"annotations": args.count, "videos": args.videos, "batch": args.batch},
    }
    if "postgresql" in args.backends:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            row = admin.execute("SHOW server_version").fetchone()
            out["postgresql"] = row[0] if row else None
    results = each_backend(
        args.backends, args.tmpdir, args.postgres, lambda b, url, work: run(b, url, work, args)
    )
    out["backends"] = results
    out["side_by_side"] = side_by_side(results)
    out["targets"] = targets(results)
    print(json.dumps(out))
    wrong = [
        f"{backend}.{name}: reeldb {r['mean_hits']}, SQL {r['sql_mean_hits']}"
        for backend, result in results.items()
        for name, r in result["reads"].items()
        if r["mean_hits"] != r["sql_mean_hits"]
    ]
    if wrong:
        print("baseline SQL found other hits than reeldb: " + "; ".join(wrong), file=sys.stderr)
        return 1
    return 0


LABELED: dict[str, Any] = {"name": "LABELED", "properties": {"label": {"type": "keyword"}}}
CHARACTER_IN_FRAME: dict[str, Any] = {
    "name": "CHARACTER_IN_FRAME",
    "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED"],
    "properties": {
        "characterName": {"type": "text", "mandatory": True},
        "comment": {"type": "text"},
    },
}
"""The annotation type the benchmark writes (it extends `LABELED`)."""


def run(backend: str, url: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Create, then read, on one backend's fresh database (the same seeds on each)."""
    out: dict[str, Any] = {}
    with reeldb.connect(url) as db:
        db.create_namespace(NS)
        db.add_schema(NS, LABELED)
        db.add_schema(NS, CHARACTER_IN_FRAME)
        out["create"] = create(db, random.Random(7), args)
        if backend == "sqlite":
            files = [p for p in work.iterdir() if p.name.startswith("reel.db")]
            out["file_mb"] = round(sum(p.stat().st_size for p in files) / 1e6, 1)
            out["create"] |= sqlite_create_baseline(work / "baseline.db", args)
            out["reads"] = reads(db, SQLiteQuestions(work / "reel.db"), random.Random(8), args)
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                assert row is not None
                out["db_mb"] = round(row[0] / 1e6, 1)
                out["create"] |= postgres_create_baseline(conn, args)
                before = postgres_stats(conn)
                if args.vacuum_analyze:
                    conn.execute(f"VACUUM ANALYZE {', '.join(ANNOTATION_TABLES)}")
                out["stats"] = {
                    "vacuum_analyze_before_reads": args.vacuum_analyze,
                    "before": before,
                    "at_reads": postgres_stats(conn) if args.vacuum_analyze else before,
                }
                questions = PostgresQuestions(conn)
                out["reads"] = reads(db, questions, random.Random(8), args)
    rate = out["create"]["annotations_per_s"]
    for key in ("sql_executemany_per_s", "sql_copy_per_s"):
        if key in out["create"]:
            suffix = key.removeprefix("sql_").removesuffix("_per_s")
            name = "vs_sql" if suffix == "executemany" else f"vs_{suffix}"
            out["create"][name] = round(out["create"][key] / rate, 2)
    return out


def create(db: reeldb.Database, rng: random.Random, args: argparse.Namespace) -> dict[str, Any]:
    """reeldb's bulk create, batch by batch."""
    seconds = 0.0
    done = 0
    while done < args.count:
        n = min(args.batch, args.count - done)
        batch = items(rng, done, n, args.videos)
        took, _ = timed(lambda batch=batch: db.annotations.create_many(NS, batch))
        seconds += took
        done += n
    return {"seconds": round(seconds, 1), "annotations_per_s": round(args.count / seconds)}


def baseline_batches(args: argparse.Namespace) -> list[list[tuple[Any, ...]]]:
    """The create baselines' rows, by batch: (id, video, t0, t1, x, y, JSON body)."""
    rng = random.Random(9)
    sample = min(args.count, BASELINE_ROWS)
    batches = []
    for start in range(0, sample, args.batch):
        batches.append(
            [
                (
                    uuid.UUID(bytes=os.urandom(16)),
                    it.associations[0].id,
                    it.data["temporal"]["start"],
                    it.data["temporal"]["end"],
                    it.data["spatial"]["x"],
                    it.data["spatial"]["y"],
                    json.dumps(it.data),
                )
                for it in items(rng, start, min(args.batch, sample - start), args.videos)
            ]
        )
    return batches


def sqlite_create_baseline(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Raw ``sqlite3`` ``executemany`` of the rows into one plain table of a second file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA synchronous = full")
    conn.execute(
        "CREATE TABLE a (id BLOB PRIMARY KEY, video TEXT, t0 REAL, t1 REAL, x REAL, y REAL, "
        "body TEXT)"
    )
    seconds, rows = 0.0, 0
    for batch in baseline_batches(args):
        values = [(r[0].bytes, *r[1:]) for r in batch]

        def insert(values: list[Any] = values) -> None:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO a VALUES (?, ?, ?, ?, ?, ?, ?)", values)
            conn.execute("COMMIT")

        took, _ = timed(insert)
        seconds += took
        rows += len(batch)
    conn.close()
    return {"sql_executemany_per_s": round(rows / seconds)}


def postgres_create_baseline(
    conn: psycopg.Connection[Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Raw psycopg of the rows into plain tables: ``executemany`` (pipelined) and binary COPY."""
    columns = (
        "(id UUID PRIMARY KEY, video TEXT, t0 FLOAT8, t1 FLOAT8, x FLOAT8, y FLOAT8, body TEXT)"
    )
    conn.execute(f"CREATE TABLE baseline_many {columns}")
    conn.execute(f"CREATE TABLE baseline_copy {columns}")
    types = ["uuid", "text", "float8", "float8", "float8", "float8", "text"]
    many, copied, rows = 0.0, 0.0, 0
    for batch in baseline_batches(args):

        def insert(batch: list[tuple[Any, ...]] = batch) -> None:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO baseline_many VALUES (%s, %s, %s, %s, %s, %s, %s)", batch
                )

        def copy(batch: list[tuple[Any, ...]] = batch) -> None:
            with (
                conn.transaction(),
                conn.cursor() as cursor,
                cursor.copy("COPY baseline_copy FROM STDIN (FORMAT BINARY)") as stream,
            ):
                stream.set_types(types)
                for row in batch:
                    stream.write_row(row)

        took, _ = timed(insert)
        many += took
        took, _ = timed(copy)
        copied += took
        rows += len(batch)
    conn.execute("DROP TABLE baseline_many, baseline_copy")
    return {"sql_executemany_per_s": round(rows / many), "sql_copy_per_s": round(rows / copied)}


def postgres_stats(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What PostgreSQL plans the reads with: which annotation partitions have statistics, and
    the pages of the full-text GIN index's pending list (scanned by every text search until
    a vacuum, or autovacuum's analyze, merges it; None without ``pgstattuple``)."""
    row = conn.execute("SHOW autovacuum").fetchone()
    analyzed = [
        name
        for (name,) in conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname LIKE 'annotation%' "
            "AND n_live_tup > 0 AND coalesce(last_analyze, last_autoanalyze) IS NOT NULL "
            "ORDER BY relname"
        )
    ]
    pending: int | None = None
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        found = conn.execute(
            "SELECT coalesce(sum((pgstatginindex(i.inhrelid)).pending_pages), 0)::int "
            "FROM pg_inherits i WHERE i.inhparent = 'annotation_text_lexemes'::regclass"
        ).fetchone()
        pending = found[0] if found else None
    except psycopg.Error:
        pass
    return {
        "autovacuum": row[0] if row else None,
        "analyzed_partitions": analyzed,
        "gin_pending_pages": pending,
    }


Question = tuple[Callable[[], Any], str, Any]
"""reeldb's call, the baseline's SQL and its parameters."""


class SQLiteQuestions:
    """The hand-written SQL of each read over reeldb's SQLite tables (``sqlite3``)."""

    KEY = "SELECT id FROM annotation_keys WHERE namespace = ? AND type = 'VIDEO_ID' AND value = ?"
    FULL = (
        "SELECT a.id, a.version, v.body FROM annotations a JOIN annotation_versions v "
        "ON v.pk = a.pk AND v.version = a.version WHERE a.pk IN ({inner}) ORDER BY a.t0, a.pk "
        "LIMIT {limit}"
    )

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)

    def sample_ids(self, n: int) -> list[UUID]:
        return [
            UUID(bytes=row[0])
            for row in self.conn.execute(f"SELECT id FROM annotations ORDER BY random() LIMIT {n}")
        ]

    def execute(self, sql: str, params: Any) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def by_id(self, ident: UUID) -> tuple[str, Any]:
        return (
            "SELECT a.id, a.version, v.body FROM annotations a JOIN annotation_versions v "
            "ON v.pk = a.pk AND v.version = a.version WHERE a.id = ? AND a.namespace = ?"
        ), [ident.bytes, NS]

    def by_association(self, video: str) -> tuple[str, Any]:
        inner = (
            f"SELECT pk FROM annotation_links WHERE key = ({self.KEY}) ORDER BY t0, pk LIMIT 100"
        )
        return self.FULL.format(inner=inner, limit=100), [NS, video]

    def timeline(self, video: str, t: float) -> tuple[str, Any]:
        inner = (
            f"SELECT pk FROM annotation_links WHERE key = ({self.KEY}) AND t0 BETWEEN ? AND ? "
            "AND t1 >= ?"
        )
        return self.FULL.format(inner=inner, limit=10_000), [NS, video, t - 1 / FPS, t + 60, t]

    def search_all(self, name: str, t: float, qx: float, qy: float) -> tuple[str, Any]:
        inner = (
            "SELECT h.pk FROM (SELECT rowid >> 12 AS pk FROM annotation_text WHERE "
            "annotation_text MATCH ?) m JOIN annotations h ON h.pk = m.pk WHERE h.t0 <= ? "
            "AND h.t1 >= ? AND h.x0 <= ? AND h.x1 >= ? AND h.y0 <= ? AND h.y1 >= ?"
        )
        token = fts_token(stems(name)[0])
        return self.FULL.format(inner=inner, limit=100), [
            f'"{token}"',
            t + 300,
            t,
            qx + 0.5,
            qx,
            qy + 0.5,
            qy,
        ]

    def search_video(self, video: str, word: str, t: float) -> tuple[str, Any]:
        inner = (
            f"SELECT l.pk FROM annotation_links l JOIN annotations h ON h.pk = l.pk WHERE "
            f"l.key = ({self.KEY}) AND l.t0 BETWEEN ? AND ? AND l.t1 >= ? AND h.x0 <= 0.5 "
            "AND h.y0 <= 0.5 AND instr(h.words, ?) > 0 ORDER BY l.t0, l.pk LIMIT 100"
        )
        token = fts_token(stems(word)[0])
        return self.FULL.format(inner=inner, limit=100), [
            NS,
            video,
            t - 1 / FPS,
            t + 600,
            t,
            f" {token} ",
        ]

    def close(self) -> None:
        self.conn.close()


class PostgresQuestions:
    """The hand-written SQL of each read over reeldb's PostgreSQL tables (psycopg).

    Every table is partitioned by ``HASH (namespace)``: each statement names the namespace
    of every table it reads, so that PostgreSQL reads one partition of each.
    """

    KEY = (
        "(SELECT id FROM annotation_keys WHERE namespace = %(ns)s AND type = 'VIDEO_ID' "
        "AND value = %(video)s)"
    )
    FULL = (
        "SELECT a.id, a.version, v.body FROM annotations a JOIN annotation_versions v "
        "ON v.namespace = a.namespace AND v.pk = a.pk AND v.version = a.version "
        "WHERE a.namespace = %(ns)s AND v.namespace = %(ns)s AND a.pk IN ({inner}) "
        "ORDER BY a.t0, a.pk LIMIT {limit}"
    )

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def sample_ids(self, n: int) -> list[UUID]:
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT id FROM annotations WHERE namespace = %s ORDER BY random() LIMIT %s",
                (NS, n),
            )
        ]

    def execute(self, sql: str, params: Any) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def by_id(self, ident: UUID) -> tuple[str, Any]:
        return (
            "SELECT a.id, a.version, v.body FROM annotations a JOIN annotation_versions v "
            "ON v.namespace = a.namespace AND v.pk = a.pk AND v.version = a.version "
            "WHERE a.namespace = %(ns)s AND v.namespace = %(ns)s AND a.id = %(id)s"
        ), {"ns": NS, "id": ident}

    def by_association(self, video: str) -> tuple[str, Any]:
        inner = (
            f"SELECT l.pk FROM annotation_links l WHERE l.namespace = %(ns)s AND l.key = "
            f"{self.KEY} ORDER BY l.t0, l.pk LIMIT 100"
        )
        return self.FULL.format(inner=inner, limit=100), {"ns": NS, "video": video}

    def timeline(self, video: str, t: float) -> tuple[str, Any]:
        inner = (
            f"SELECT l.pk FROM annotation_links l WHERE l.namespace = %(ns)s AND l.key = "
            f"{self.KEY} AND l.t0 BETWEEN %(lo)s AND %(hi)s AND l.t1 >= %(t)s"
        )
        return self.FULL.format(inner=inner, limit=10_000), {
            "ns": NS, "video": video, "lo": t - 1 / FPS, "hi": t + 60, "t": t
        }  # fmt: skip

    def search_all(self, name: str, t: float, qx: float, qy: float) -> tuple[str, Any]:
        inner = (
            "SELECT f.pk FROM annotation_text f JOIN annotations h ON h.namespace = f.namespace "
            "AND h.pk = f.pk WHERE f.namespace = %(ns)s AND h.namespace = %(ns)s "
            "AND f.lexemes @@ %(query)s::tsquery "
            "AND h.span && annotation_span(%(t0)s, %(t1)s, '[]') "
            "AND h.x0 <= %(x1)s AND h.x1 >= %(x0)s AND h.y0 <= %(y1)s AND h.y1 >= %(y0)s"
        )
        token = fts_token(stems(name)[0])
        query = "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"
        return self.FULL.format(inner=inner, limit=100), {
            "ns": NS, "query": query, "t0": t, "t1": t + 300,
            "x0": qx, "x1": qx + 0.5, "y0": qy, "y1": qy + 0.5,
        }  # fmt: skip

    def search_video(self, video: str, word: str, t: float) -> tuple[str, Any]:
        inner = (
            "SELECT l.pk FROM annotation_links l JOIN annotations h ON h.namespace = l.namespace "
            f"AND h.pk = l.pk WHERE l.namespace = %(ns)s AND h.namespace = %(ns)s AND l.key = "
            f"{self.KEY} AND l.t0 BETWEEN %(lo)s AND %(hi)s AND l.t1 >= %(t)s "
            "AND h.x0 <= 0.5 AND h.y0 <= 0.5 AND EXISTS (SELECT 1 FROM annotation_text f "
            "WHERE f.namespace = %(ns)s AND f.pk = l.pk AND position(%(phrase)s IN f.words) > 0) "
            "ORDER BY l.t0, l.pk LIMIT 100"
        )
        token = fts_token(stems(word)[0])
        return self.FULL.format(inner=inner, limit=100), {
            "ns": NS, "video": video, "lo": t - 1 / FPS, "hi": t + 600, "t": t,
            "phrase": f" {token} ",
        }  # fmt: skip

    def close(self) -> None:
        pass


def reads(
    db: reeldb.Database,
    sql: SQLiteQuestions | PostgresQuestions,
    rng: random.Random,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Each read ``--repeat`` times, reeldb's call then the baseline's SQL, in a random order."""
    ids = sql.sample_ids(args.repeat * 2)
    frames = max(1, args.count // args.videos)
    duration = frames / FPS

    def by_id() -> Question:
        ident = rng.choice(ids)
        return (lambda: db.annotations.get(NS, ident)), *sql.by_id(ident)

    def by_association() -> Question:
        video = f"v{rng.randrange(args.videos)}"
        return (
            lambda: db.annotations.search(
                NS, associations=[{"type": "VIDEO_ID", "id": video}], limit=100
            ),
            *sql.by_association(video),
        )

    def timeline() -> Question:
        video = f"v{rng.randrange(args.videos)}"
        t = rng.uniform(0, max(0.0, duration - 60))
        return (
            lambda: db.annotations.timeline(
                NS, {"type": "VIDEO_ID", "id": video}, t, t + 60, limit=10_000
            ),
            *sql.timeline(video, t),
        )

    def search_all() -> Question:
        name = character(rng.randrange(NAMES))
        t = rng.uniform(0, max(0.0, duration - 300))
        qx, qy = rng.choice([(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)])
        return (
            lambda: db.annotations.search(
                NS,
                type="TEMPORAL_SPATIAL_BASE",
                time=(t, t + 300),
                box=(qx, qy, 0.5, 0.5),
                text=name,
                sort="time",
                limit=100,
            ),
            *sql.search_all(name, t, qx, qy),
        )

    def search_video() -> Question:
        video = f"v{rng.randrange(args.videos)}"
        word = rng.choice(WORDS)
        t = rng.uniform(0, max(0.0, duration - 600))
        return (
            lambda: db.annotations.search(
                NS,
                associations=[{"type": "VIDEO_ID", "id": video}],
                time=(t, t + 600),
                box=(0, 0, 0.5, 0.5),
                text=word,
                sort="time",
                limit=100,
            ),
            *sql.search_video(video, word, t),
        )

    kinds = {
        "get_by_id": by_id,
        "by_association_first_100": by_association,
        "timeline_60s": timeline,
        "time_box_text_all_videos": search_all,
        "time_box_text_one_video": search_video,
    }
    plan = [name for name in kinds for _ in range(args.repeat)]
    rng.shuffle(plan)
    ours: dict[str, list[float]] = {name: [] for name in kinds}
    base: dict[str, list[float]] = {name: [] for name in kinds}
    hits: dict[str, int] = {name: 0 for name in kinds}
    sql_hits: dict[str, int] = {name: 0 for name in kinds}
    for name in plan:
        call, statement, params = kinds[name]()
        took, found = timed(call)
        ours[name].append(took)
        hits[name] += len(found.items) if hasattr(found, "items") else 1
        took, rows = timed(lambda s=statement, p=params: sql.execute(s, p))
        base[name].append(took)
        sql_hits[name] += len(rows)
    sql.close()
    out: dict[str, Any] = {}
    for name in kinds:
        mine, theirs = percentiles(ours[name], 3), percentiles(base[name], 3)
        out[name] = {
            **mine,
            "sql_p50_ms": theirs["p50_ms"],
            "sql_p99_ms": theirs["p99_ms"],
            "vs_sql": round(mine["p50_ms"] / theirs["p50_ms"], 2) if theirs["p50_ms"] else None,
            "mean_hits": round(hits[name] / args.repeat, 1),
            "sql_mean_hits": round(sql_hits[name] / args.repeat, 1),
        }
    return out


def side_by_side(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each backend's create rates, and each read's p50/p99/sql_p50, next to each other."""
    create_keys = ("annotations_per_s", "sql_executemany_per_s", "sql_copy_per_s")
    out: dict[str, Any] = {
        "create": {
            backend: {k: r["create"][k] for k in create_keys if k in r["create"]}
            for backend, r in results.items()
        }
    }
    names = next(iter(results.values()))["reads"] if results else {}
    out["reads"] = {}
    for name in names:
        out["reads"][name] = {
            backend: {k: r["reads"][name][k] for k in ("p50_ms", "p99_ms", "sql_p50_ms", "vs_sql")}
            for backend, r in results.items()
        }
    return out


def targets(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The design target on SQLite (top level) and on PostgreSQL (``postgresql``)."""

    def met(result: dict[str, Any] | None) -> dict[str, bool | None]:
        search = result["reads"]["time_box_text_all_videos"] if result else None
        return {
            "search_p50_ms_below_5": search["p50_ms"] < 5 if search else None,
            "search_p99_ms_below_50": search["p99_ms"] < 50 if search else None,
        }

    out: dict[str, Any] = met(results.get("sqlite"))
    if "postgresql" in results:
        out["postgresql"] = met(results["postgresql"])
    return out


if __name__ == "__main__":
    sys.exit(main())
