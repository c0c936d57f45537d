"""Search: ingest throughput with indexing, DataStore-level filters and document-level queries.

Prints one JSON object. For each backend of ``--backends`` (default: SQLite alone), on a
fresh database (SQLite: a file, ``synchronous=full``, the default; PostgreSQL: a new
database on the server ``--postgres`` names, dropped afterwards), the same workload from the
same seed, so every backend holds the same data and is asked the same literals in the same
order:

1. **Ingest**: ``--docs`` documents of ``--events`` events with ``--regions`` regions each,
   then one big document of ``--big-events`` x ``--regions`` (the "1-hour" document), each
   written with `Database.put_document`: validation, the durable write and indexing in the
   same transaction. Reported as regions per second of the whole write path. **Floor**: the
   big document's region rows (the values reeldb's index rows hold, built before the clock
   starts) stored in one transaction into a plain table with the B-trees reeldb keeps for
   this schema: ``executemany`` (WAL, ``synchronous=full``) on SQLite, psycopg binary
   ``COPY`` on PostgreSQL; ``big_document_vs_floor`` is reeldb's rate over the floor's.
2. **DataStore-level filters** (selective: a few documents out of all), each run ``--repeat``
   times in a random order with fresh literals, p50/p99 per query and for the mix.
3. **Document-level queries** on the big document (a time window as a UI scrubbing a video
   asks, a person, a label with a box), p50/p99.
4. **Baseline**: the same questions as hand-written SQL of the backend's own index tables
   (``ix{g}_rows``, ``ix{g}_fts``, ``documents``, ``index_docs``), literals bound: sqlite3
   on the SQLite file, psycopg on the PostgreSQL database. Filters ask every generation of
   the alias (a ``UNION``) and keep each MID's latest version, first 51 in write order (on
   PostgreSQL naming the DataStore, the key of the partitioned ``documents``; titles through
   the ``tsvector`` GIN index rather than FTS5). Document-level queries return the
   document's matching events (``GROUP BY e0``), first 51 in time order, without reading
   the events' JSON. Each baseline must find as many hits as reeldb's page (asserted on
   every run), and ``vs_sql`` is reeldb's overhead over raw SQL on that backend (parsing,
   checking, compiling, paging, building results).

On PostgreSQL, ``statistics`` shows what the planner knows of each index table (reeldb
ANALYZEs a generation's tables as it passes 500, 2 000, 8 000, ... rows; the benchmark runs
no ANALYZE of its own, so reeldb and the baseline plan with the same statistics).

Output: ``backends`` holds each backend's results, ``side_by_side`` the headline numbers
and each query's p50 and SQL p50 per backend. Targets (the issue, on SQLite; the same
three for PostgreSQL under ``targets.postgresql``): filters p50 < 20 ms, document-level
p50 < 50 ms on a 1M-region document, ingest >= 100k regions/s. ``--quick`` is a smoke test
of a few seconds per backend.

Usage::

    python benchmarks/search_bench.py [--docs 100] [--events 10000] [--regions 10]
        [--big-events 100000] [--repeat 30] [--backends sqlite postgresql]
        [--postgres URL] [--quick] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

import reeldb
from measure import each_backend, environment, percentiles, timed
from reeldb.testing import POSTGRES_SERVER_URL

DS = "bench/detections/1"
SCHEMA: dict[str, Any] = {
    "name": "detections",
    "levels": {
        "asset": {"properties": {"title": {"type": "text", "mandatory": True}}},
        "track": {"properties": {"kind": {"type": "keyword"}}},
        "component": {"properties": {"algorithm": {"type": "keyword"}}},
        "event": {
            "properties": {
                "label": {"type": "keyword", "mandatory": True},
                "confidence": {"type": "float"},
            }
        },
        "region": {"properties": {"person": {"type": "keyword"}}},
    },
}
LABELS = ["face", "car", "dog", "logo", "text"]
PEOPLE = 200_000


def event(rng: random.Random, index: int, e: int, regions: int) -> dict[str, Any]:
    """Event ``e`` of document ``index``: one every 2 frames at 24 fps, ``regions`` boxes."""
    return {
        "time_range": {"start": e / 12, "end": (e + 1) / 12},
        "label": LABELS[(e * 7 + index) % len(LABELS)],
        "confidence": round(rng.random(), 3),
        "regions": [
            {
                "bounding_box": {
                    "x": round(rng.random() * 0.8, 3),
                    "y": round(rng.random() * 0.8, 3),
                    "w": 0.1,
                    "h": 0.15,
                },
                "person": f"p{rng.randrange(PEOPLE)}",
            }
            for _ in range(regions)
        ],
    }


def document(rng: random.Random, index: int, events: int, regions: int) -> dict[str, Any]:
    """A 24 fps detection track: one event per 2 frames, ``regions`` boxes each."""
    return {
        "asset": {"title": f"title {index} word{index} storm" if index % 7 == 0 else f"t{index}"},
        "tracks": [
            {
                "kind": "video",
                "frame_rate": "24",
                "components": [
                    {
                        "algorithm": "detector-v2",
                        "events": [event(rng, index, e, regions) for e in range(events)],
                    }
                ],
            }
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--big-events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--rollover-rows",
        type=int,
        default=None,
        help="index_rollover_rows (default: reeldb's default)",
    )
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument("--postgres", default=POSTGRES_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny sizes")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.docs, args.events, args.big_events, args.repeat = 4, 500, 2000, 5
    out: dict[str, Any] = {
        "benchmark": "search",
        **environment(),
        "sizes": {
            "documents": args.docs + 1,
            "regions_per_event": args.regions,
            "events_per_document": args.events,
            "big_document_events": args.big_events,
            "regions_total": (args.docs * args.events + args.big_events) * args.regions,
            "big_document_regions": args.big_events * args.regions,
        },
    }
    if "postgresql" in args.backends:
        with psycopg.connect(args.postgres) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        out["postgresql"] = row[0] if row else None
    backends = each_backend(
        args.backends,
        args.tmpdir,
        args.postgres,
        lambda b, url, work: run_backend(b, url, work, args),
    )
    out["backends"] = backends
    out["side_by_side"] = side_by_side(backends)
    out["targets"] = {}
    for backend, found in backends.items():
        met = {
            "filter_p50_ms_below_20": found["filters"]["mix"]["p50_ms"] < 20,
            "document_query_p50_ms_below_50": found["document_queries"]["mix"]["p50_ms"] < 50,
            "ingest_regions_per_s_at_least_100k": found["ingest"]["regions_per_s"] >= 100_000,
        }
        if backend == "sqlite":  # the targets are the embedded database's
            out["targets"].update(met)
        else:
            out["targets"][backend] = met
    print(json.dumps(out))
    return 0


def run_backend(backend: str, url: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The whole workload on one fresh database, the same data and literals on every backend."""
    rng = random.Random(42)
    settings: dict[str, Any] = {"max_document_bytes": 2**31}
    if args.rollover_rows is not None:
        settings["index_rollover_rows"] = args.rollover_rows
    out: dict[str, Any] = {}
    with reeldb.connect(url, **settings) as db:
        db.create_namespace("bench")
        db.add_schema("bench", SCHEMA)
        db.create_datastore(DS, mid_keys=["title_id"], schema="detections")
        out["ingest"] = ingest(db, rng, args, Floor(backend, url, work))
        big_id = out["ingest"].pop("big_document_id")
        gen = db.index_status(DS)
        out["index"] = [{"name": g.name, "docs": g.docs, "rows": g.rows} for g in gen]
        base = Baseline(backend, url)
        try:
            if backend == "sqlite":
                out["file_mb"] = round(sum(p.stat().st_size for p in work.iterdir()) / 1e6, 1)
            else:
                out["database_mb"] = round(
                    base.scalar("SELECT pg_database_size(current_database())") / 1e6, 1
                )
                out["statistics"] = base.statistics()
            out["filters"] = filters(db, base, rng, args)
            out["document_queries"] = document_queries(db, base, big_id, rng, args)
        finally:
            base.close()
    return out


def side_by_side(backends: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each headline number, and each query's p50 and SQL p50, per backend."""

    def per(get: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        return {backend: get(found) for backend, found in backends.items()}

    out: dict[str, Any] = {
        "ingest_regions_per_s": per(lambda f: f["ingest"]["regions_per_s"]),
        "big_document_regions_per_s": per(lambda f: f["ingest"]["big_document_regions_per_s"]),
        "big_document_floor_regions_per_s": per(
            lambda f: f["ingest"]["big_document_floor_regions_per_s"]
        ),
    }
    for group in ("filters", "document_queries"):
        for pct in ("p50_ms", "p99_ms"):
            out[f"{group}_mix_{pct}"] = per(lambda f, g=group, p=pct: f[g]["mix"][p])
        out[f"{group}_mix_sql_p50_ms"] = per(lambda f, g=group: f[g]["mix"]["sql_p50_ms"])
        names = [n for n in next(iter(backends.values()))[group] if n != "mix"] if backends else []
        out[group] = {
            name: per(
                lambda f, g=group, n=name: {
                    "p50_ms": f[g][n]["p50_ms"],
                    "sql_p50_ms": f[g][n]["sql_p50_ms"],
                    "vs_sql": f[g][n]["vs_sql"],
                }
            )
            for name in names
        }
    return out


class Floor:
    """What the database alone costs to store the big document's region rows: one plain
    table (the values reeldb's index rows hold) with the B-trees reeldb keeps for this schema,
    filled in one transaction (SQLite: ``executemany``, WAL, ``synchronous=full`` and
    reeldb's 64 MiB page cache; PostgreSQL: psycopg binary ``COPY``). The rows are built
    before the clock starts."""

    COLUMNS = "doc, t, c, e, r, lo, hi, label, confidence, x0, y0, x1, y1, person"
    INDEXES = (
        "CREATE INDEX floor_label ON floor_rows (label) WHERE r <= 0",
        "CREATE INDEX floor_confidence ON floor_rows (confidence) WHERE r <= 0",
        "CREATE INDEX floor_person ON floor_rows (person)",
        "CREATE INDEX floor_doc ON floor_rows (doc) WHERE r <= 0",
        "CREATE INDEX floor_event ON floor_rows (e)",
    )

    def __init__(self, backend: str, url: str, work: Path) -> None:
        self.backend, self.url, self.work = backend, url, work

    def seconds(self, doc: dict[str, Any]) -> tuple[float, int]:
        """Seconds to store the document's rows, and how many rows."""
        rows = [
            (1, 0, 0, e, r, span["start"], span["end"], ev["label"], ev["confidence"],
             box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"], region["person"])
            for e, ev in enumerate(doc["tracks"][0]["components"][0]["events"])
            for span in (ev["time_range"],)
            for r, region in enumerate(ev["regions"])
            for box in (region["bounding_box"],)
        ]  # fmt: skip
        if self.backend == "sqlite":
            took = self._sqlite(rows)
        else:
            took = self._postgresql(rows)
        return took, len(rows)

    def _sqlite(self, rows: list[tuple[Any, ...]]) -> float:
        path = self.work / "floor.db"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA cache_size=-65536")  # reeldb's page cache (64 MiB)
            conn.execute(f"CREATE TABLE floor_rows (id INTEGER PRIMARY KEY, {self.COLUMNS})")
            for statement in self.INDEXES:
                conn.execute(statement)
            marks = ", ".join("?" * 14)

            def write() -> None:
                conn.execute("BEGIN")
                conn.executemany(f"INSERT INTO floor_rows ({self.COLUMNS}) VALUES ({marks})", rows)
                conn.execute("COMMIT")

            took, _ = timed(write)
        finally:
            conn.close()
            for leftover in self.work.glob("floor.db*"):
                leftover.unlink()
        return took

    def _postgresql(self, rows: list[tuple[Any, ...]]) -> float:
        types = ["int8", "int4", "int4", "int4", "int4", "float8", "float8", "text",
                 "float8", "float8", "float8", "float8", "float8", "text"]  # fmt: skip
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE floor_rows (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "doc BIGINT, t INT, c INT, e INT, r INT, lo FLOAT8, hi FLOAT8, label TEXT, "
                "confidence FLOAT8, x0 FLOAT8, y0 FLOAT8, x1 FLOAT8, y1 FLOAT8, person TEXT)"
            )
            for statement in self.INDEXES:
                conn.execute(statement)

            def write() -> None:
                with conn.transaction(), conn.cursor() as cursor:
                    statement = f"COPY floor_rows ({self.COLUMNS}) FROM STDIN (FORMAT BINARY)"
                    with cursor.copy(statement) as copy:
                        copy.set_types(types)
                        for row in rows:
                            copy.write_row(row)

            took, _ = timed(write)
            conn.execute("DROP TABLE floor_rows")
        return took


def ingest(
    db: reeldb.Database, rng: random.Random, args: argparse.Namespace, floor: Floor
) -> dict[str, Any]:
    seconds, regions = 0.0, 0
    for i in range(args.docs):
        doc = document(rng, i, args.events, args.regions)
        took, _ = timed(lambda doc=doc, i=i: db.put_document(DS, {"title_id": str(i)}, doc))
        seconds += took
        regions += args.events * args.regions
    big = document(rng, args.docs, args.big_events, args.regions)
    took, stored = timed(lambda: db.put_document(DS, {"title_id": "big"}, big))
    floor_took, floor_rows = floor.seconds(big)
    assert floor_rows == args.big_events * args.regions
    big_rate = args.big_events * args.regions / took
    floor_rate = floor_rows / floor_took
    return {
        "seconds": round(seconds + took, 2),
        "regions_per_s": round((regions + args.big_events * args.regions) / (seconds + took)),
        "small_documents_regions_per_s": round(regions / seconds) if seconds else None,
        "big_document_seconds": round(took, 2),
        "big_document_regions_per_s": round(big_rate),
        "big_document_floor_regions_per_s": round(floor_rate),
        "big_document_vs_floor": round(big_rate / floor_rate, 2),
        "big_document_id": stored.id,
    }


class Baseline:
    """Hand-written SQL on the backend's own index tables, with bound parameters: sqlite3
    on the file, or psycopg on the PostgreSQL database. Statements are written with ``?``
    marks (``%s`` on PostgreSQL)."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.pg = backend == "postgresql"
        if self.pg:
            self.conn: Any = psycopg.connect(url, autocommit=True)
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"))

    def close(self) -> None:
        self.conn.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self.pg:
            return list(self.conn.execute(sql.replace("?", "%s"), params).fetchall())
        return list(self.conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.rows(sql, params)[0][0]

    def generations(self) -> list[tuple[int, dict[str, int]]]:
        """Each generation queries read: its id and where each field's values are in a row."""
        found = self.rows(
            "SELECT g.id, g.columns FROM index_generations g JOIN index_alias a "
            "ON a.generation_id = g.id ORDER BY g.id"
        )
        return [(gid, {f"{c[0]}.{c[1]}": c[3] for c in json.loads(cols)}) for gid, cols in found]

    def latest(self, union: str, datastore: int) -> tuple[str, list[Any]]:
        """The latest versions among documents (their seqs: ``union``), first 51, write order."""
        if self.pg:  # ``documents`` is partitioned by DataStore, its key (datastore_id, seq)
            return (
                "SELECT d.id FROM documents d WHERE d.datastore_id = ? AND d.seq IN "
                f"({union}) AND d.seq = (SELECT max(seq) FROM documents d2 WHERE "
                "d2.datastore_id = d.datastore_id AND d2.mid_key = d.mid_key) "
                "ORDER BY d.seq LIMIT 51"
            ), [datastore]
        return (
            f"SELECT d.id FROM documents d WHERE d.seq IN ({union}) AND d.seq = (SELECT "
            "max(seq) FROM documents d2 WHERE d2.datastore_id = d.datastore_id AND "
            "d2.mid_key = d.mid_key) ORDER BY d.seq LIMIT 51"
        ), []

    def title(self, g: int, field: int, word: str) -> tuple[str, list[Any]]:
        """The documents whose title holds a word: the full-text table finds the assets."""
        if self.pg:  # one word: the GIN index of lexemes decides (no phrase to check)
            return (
                f"SELECT r.doc FROM ix{g}_rows r WHERE r.r <= 0 AND r.d0 IN (SELECT id "
                f"FROM ix{g}_fts WHERE tsv @@ ?::tsquery AND f = {field})"
            ), [f"'{word}'"]
        return (
            f"SELECT r.doc FROM ix{g}_rows r WHERE r.r <= 0 AND r.d0 IN (SELECT rowid "
            f"FROM ix{g}_fts WHERE ix{g}_fts MATCH 'f{field} : ' || ?)"
        ), [f'"{word}"']

    def statistics(self) -> dict[str, Any]:
        """What the planner knows of the index tables (PostgreSQL): the rows it believes
        each holds, the rows it holds, and whether reeldb (ANALYZE) or autovacuum gathered
        its statistics."""
        found = self.rows(
            "SELECT s.relname, c.reltuples::bigint, s.last_analyze IS NOT NULL, "
            "s.last_autoanalyze IS NOT NULL FROM pg_stat_user_tables s JOIN pg_class c "
            "ON c.oid = s.relid WHERE s.relname ~ '^ix[0-9]+_(rows|time|fts)$' ORDER BY s.relname"
        )
        return {
            name: {
                "planner_rows": planner,
                "rows": self.scalar(f"SELECT count(*) FROM {name}"),
                "analyzed": analyzed,
                "autoanalyzed": auto,
            }
            for name, planner, analyzed, auto in found
        }


def filters(
    db: reeldb.Database, base: Baseline, rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    generations = base.generations()
    datastore = base.scalar("SELECT datastore_id FROM index_generations LIMIT 1")

    def every_generation(
        inner: Callable[[int, dict[str, int]], tuple[str, list[Any]]],
    ) -> tuple[str, list[Any]]:
        # The baseline asks each generation, as reeldb must (rollover: several).
        parts = [inner(gid, col) for gid, col in generations]
        latest, first = base.latest(" UNION ".join(sql for sql, _ in parts), datastore)
        return latest, first + [p for _, params in parts for p in params]

    def person_q() -> tuple[str, str, list[Any]]:
        p = f"p{rng.randrange(PEOPLE)}"
        sql, params = every_generation(
            lambda g, col: (f"SELECT doc FROM ix{g}_rows WHERE v{col['region.person']} = ?", [p])
        )
        return f'region.person = "{p}"', sql, params

    def person_label_q() -> tuple[str, str, list[Any]]:
        p, lab = f"p{rng.randrange(PEOPLE)}", rng.choice(LABELS)
        sql, params = every_generation(
            lambda g, col: (
                f"SELECT doc FROM ix{g}_rows WHERE v{col['region.person']} = ? "
                f"AND v{col['event.label']} = ?",
                [p, lab],
            )
        )
        return f'region.person = "{p}" and event.label = "{lab}"', sql, params

    def person_time_q() -> tuple[str, str, list[Any]]:
        p, t = f"p{rng.randrange(PEOPLE)}", rng.uniform(0, args.events / 12)

        def inner(g: int, col: dict[str, int]) -> tuple[str, list[Any]]:
            start = col["event.time_range"]
            return (
                f"SELECT doc FROM ix{g}_rows WHERE v{col['region.person']} = ? "
                f"AND v{start} <= ? AND ? <= v{start + 1}"
            ), [p, round(t + 60, 3), round(t, 3)]

        sql, params = every_generation(inner)
        text = f'region.person = "{p}" and event.time_range overlaps({t:.3f}, {t + 60:.3f})'
        return text, sql, params

    def title_q() -> tuple[str, str, list[Any]]:
        i = rng.randrange(0, args.docs, 7)
        sql, params = every_generation(lambda g, col: base.title(g, col["asset.title"], f"word{i}"))
        return f'asset.title contains "word{i}"', sql, params

    kinds = {
        "person": person_q,
        "person_and_label": person_label_q,
        "person_in_time_window": person_time_q,
        "title_words": title_q,
    }
    return _measure(base, kinds, args.repeat, rng, lambda q: db.query_datastore(DS, q))


def document_queries(
    db: reeldb.Database, base: Baseline, big_id: Any, rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    gid, first, last = base.rows(
        "SELECT generation_id, first_row, last_row FROM index_docs WHERE doc_seq = "
        "(SELECT seq FROM documents WHERE id = ?)",
        (big_id if base.pg else big_id.bytes,),
    )[0]
    col = dict(base.generations())[gid]
    rows, start = f"ix{gid}_rows", col["event.time_range"]
    person, label, box = col["region.person"], col["event.label"], col["region.bounding_box"]
    # The document's matching events (each event's first row id, e0), the first 51 in time
    # order (here the order of e0), as reeldb asks for a page of 50.
    span = (
        f"SELECT e0 FROM {rows} WHERE id BETWEEN {first} AND {last} AND e0 BETWEEN {first} "
        f"AND {last} AND e >= 0 AND "
    )
    order = " GROUP BY e0 ORDER BY e0 LIMIT 51"

    def window_q() -> tuple[str, str, list[Any]]:
        t = round(rng.uniform(0, args.big_events / 12), 3)
        sql = span + f"v{start} <= ? AND ? <= v{start + 1}" + order
        return f"event.time_range overlaps({t}, {t + 10})", sql, [t + 10, t]

    def person_q() -> tuple[str, str, list[Any]]:
        p = f"p{rng.randrange(PEOPLE)}"
        return f'region.person = "{p}"', span + f"v{person} = ?" + order, [p]

    def label_box_q() -> tuple[str, str, list[Any]]:
        t = round(rng.uniform(0, args.big_events / 12), 3)
        sql = (
            span
            + (
                f"v{start} <= ? AND ? <= v{start + 1} AND v{label} = 'face' "
                f"AND v{box} <= 0.5 AND 0.2 <= v{box + 2}"
            )
            + order
        )
        text = (
            f'event.time_range overlaps({t}, {t + 30}) and event.label = "face" and '
            "region.bounding_box intersects(0.2, 0, 0.3, 1)"
        )
        return text, sql, [t + 30, t]

    kinds = {"time_window_10s": window_q, "person": person_q, "label_box_in_30s": label_box_q}
    return _measure(base, kinds, args.repeat, rng, lambda q: db.query_document(big_id, q, limit=50))


def _measure(
    base: Baseline,
    kinds: dict[str, Callable[[], tuple[str, str, list[Any]]]],
    repeat: int,
    rng: random.Random,
    run: Callable[[str], Any],
) -> dict[str, Any]:
    plan = [name for name in kinds for _ in range(repeat)]
    rng.shuffle(plan)
    ours: dict[str, list[float]] = {name: [] for name in kinds}
    sql: dict[str, list[float]] = {name: [] for name in kinds}
    hits: dict[str, int] = {name: 0 for name in kinds}
    for name in plan:
        text, statement, params = kinds[name]()
        took, page = timed(lambda text=text: run(text))
        ours[name].append(took)
        hits[name] += len(page.items)
        took, found = timed(lambda s=statement, p=params: base.rows(s, p))
        sql[name].append(took)
        # The baseline answers the same question: as many hits on a page of 50.
        if min(len(found), 50) != len(page.items):
            raise AssertionError(
                f"{base.backend} {name}: reeldb {len(page.items)} hits, SQL {len(found)}: {text}"
            )
    out: dict[str, Any] = {}
    for name in kinds:
        mine, baseline = percentiles(ours[name]), percentiles(sql[name])
        out[name] = {
            **mine,
            "sql_p50_ms": baseline["p50_ms"],
            "vs_sql": round(mine["p50_ms"] / baseline["p50_ms"], 2) if baseline["p50_ms"] else None,
            "mean_hits": round(hits[name] / repeat, 1),
        }
    every = [t for samples in ours.values() for t in samples]
    every_sql = [t for samples in sql.values() for t in samples]
    out["mix"] = {**percentiles(every), "sql_p50_ms": percentiles(every_sql)["p50_ms"]}
    return out


if __name__ == "__main__":
    sys.exit(main())
