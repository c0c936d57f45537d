"""Search: ingest throughput with indexing, DataStore-level filters and document-level queries.

Prints one JSON object. On a fresh SQLite file (``synchronous=full``, the default):

1. **Ingest**: ``--docs`` documents of ``--events`` events with ``--regions`` regions each,
   then one big document of ``--big-events`` x ``--regions`` (the "1-hour" document), each
   written with `Database.put_document`: validation, the durable write and indexing in the
   same transaction. Reported as regions per second of the whole write path.
2. **DataStore-level filters** (selective: a few documents out of all), each run ``--repeat``
   times in a random order with fresh literals, p50/p99 per query and for the mix.
3. **Document-level queries** on the big document (a time window as a UI scrubbing a video
   asks, a person, a label with a box), p50/p99.
4. **Baseline**: the same questions as hand-written SQL on the same file (the index tables
   queried directly, with the literals bound), so ``vs_sql`` is reeldb's overhead (parsing,
   checking, compiling, paging, building results).

Targets (the issue): filters p50 < 20 ms, document-level p50 < 50 ms on a 1M-region document,
ingest >= 100k regions/s. ``--quick`` is a smoke test of a few seconds.

Usage::

    python benchmarks/search_bench.py [--docs 100] [--events 10000] [--regions 10]
        [--big-events 100000] [--repeat 30] [--quick] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import reeldb
from measure import percentiles, timed

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
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny sizes")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.docs, args.events, args.big_events, args.repeat = 4, 500, 2000, 5
    rng = random.Random(42)
    out: dict[str, Any] = {
        "benchmark": "search",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "reeldb": reeldb.__version__,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": {
            "documents": args.docs + 1,
            "regions_per_event": args.regions,
            "events_per_document": args.events,
            "big_document_events": args.big_events,
            "regions_total": (args.docs * args.events + args.big_events) * args.regions,
            "big_document_regions": args.big_events * args.regions,
        },
    }
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "search.db"
        settings: dict[str, Any] = {"max_document_bytes": 2**31}
        if args.rollover_rows is not None:
            settings["index_rollover_rows"] = args.rollover_rows
        with reeldb.connect(f"sqlite:///{path}", **settings) as db:
            db.create_namespace("bench")
            db.add_schema("bench", SCHEMA)
            db.create_datastore(DS, mid_keys=["title_id"], schema="detections")
            out["ingest"] = ingest(db, rng, args)
            big_id = out["ingest"].pop("big_document_id")
            out["file_mb"] = round(sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6, 1)
            gen = db.index_status(DS)
            out["index"] = [{"name": g.name, "docs": g.docs, "rows": g.rows} for g in gen]
            out["filters"] = filters(db, path, rng, args)
            out["document_queries"] = document_queries(db, path, big_id, rng, args)
    out["targets"] = {
        "filter_p50_ms_below_20": out["filters"]["mix"]["p50_ms"] < 20,
        "document_query_p50_ms_below_50": out["document_queries"]["mix"]["p50_ms"] < 50,
        "ingest_regions_per_s_at_least_100k": out["ingest"]["regions_per_s"] >= 100_000,
    }
    print(json.dumps(out))
    return 0


def ingest(db: reeldb.Database, rng: random.Random, args: argparse.Namespace) -> dict[str, Any]:
    seconds, regions = 0.0, 0
    for i in range(args.docs):
        doc = document(rng, i, args.events, args.regions)
        took, _ = timed(lambda doc=doc, i=i: db.put_document(DS, {"title_id": str(i)}, doc))
        seconds += took
        regions += args.events * args.regions
    big = document(rng, args.docs, args.big_events, args.regions)
    took, stored = timed(lambda: db.put_document(DS, {"title_id": "big"}, big))
    return {
        "seconds": round(seconds + took, 2),
        "regions_per_s": round((regions + args.big_events * args.regions) / (seconds + took)),
        "small_documents_regions_per_s": round(regions / seconds) if seconds else None,
        "big_document_seconds": round(took, 2),
        "big_document_regions_per_s": round(args.big_events * args.regions / took),
        "big_document_id": stored.id,
    }


def _generations(path: Path) -> list[tuple[int, dict[str, int]]]:
    """Each generation queries read: its id and where each field's values are in a row."""
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT g.id, g.columns FROM index_generations g JOIN index_alias a "
            "ON a.generation_id = g.id ORDER BY g.id"
        ).fetchall()
    return [(gid, {f"{c[0]}.{c[1]}": c[3] for c in json.loads(cols)}) for gid, cols in found]


def filters(
    db: reeldb.Database, path: Path, rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    generations = _generations(path)
    conn = sqlite3.connect(path)
    latest = (
        "SELECT d.id FROM documents d WHERE d.seq IN ({inner}) AND d.seq = (SELECT max(seq) "
        "FROM documents d2 WHERE d2.datastore_id = d.datastore_id AND d2.mid_key = d.mid_key) "
        "ORDER BY d.seq LIMIT 51"
    )

    def every_generation(
        inner: Callable[[int, dict[str, int]], str], params: list[Any]
    ) -> tuple[str, list[Any]]:
        # The baseline asks each generation, as reeldb must (rollover: several).
        union = " UNION ".join(inner(gid, col) for gid, col in generations)
        return latest.format(inner=union), params * len(generations)

    def person_q() -> tuple[str, str, list[Any]]:
        p = f"p{rng.randrange(PEOPLE)}"
        sql, params = every_generation(
            lambda g, col: f"SELECT doc FROM ix{g}_rows WHERE v{col['region.person']} = ?", [p]
        )
        return f'region.person = "{p}"', sql, params

    def person_label_q() -> tuple[str, str, list[Any]]:
        p, lab = f"p{rng.randrange(PEOPLE)}", rng.choice(LABELS)
        sql, params = every_generation(
            lambda g, col: (
                f"SELECT doc FROM ix{g}_rows WHERE v{col['region.person']} = ? "
                f"AND v{col['event.label']} = ?"
            ),
            [p, lab],
        )
        return f'region.person = "{p}" and event.label = "{lab}"', sql, params

    def person_time_q() -> tuple[str, str, list[Any]]:
        p, t = f"p{rng.randrange(PEOPLE)}", rng.uniform(0, args.events / 12)

        def inner(g: int, col: dict[str, int]) -> str:
            start = col["event.time_range"]
            return (
                f"SELECT doc FROM ix{g}_rows WHERE v{col['region.person']} = ? "
                f"AND v{start} <= ? AND ? <= v{start + 1}"
            )

        sql, params = every_generation(inner, [p, round(t + 60, 3), round(t, 3)])
        text = f'region.person = "{p}" and event.time_range overlaps({t:.3f}, {t + 60:.3f})'
        return text, sql, params

    def title_q() -> tuple[str, str, list[Any]]:
        i = rng.randrange(0, args.docs, 7)
        sql, params = every_generation(
            lambda g, col: (
                f"SELECT r.doc FROM ix{g}_rows r WHERE r.r <= 0 AND r.d0 IN (SELECT rowid "
                f"FROM ix{g}_fts WHERE ix{g}_fts MATCH 'f{col['asset.title']} : ' || ?)"
            ),
            [f'"word{i}"'],
        )
        return f'asset.title contains "word{i}"', sql, params

    kinds = {
        "person": person_q,
        "person_and_label": person_label_q,
        "person_in_time_window": person_time_q,
        "title_words": title_q,
    }
    return _measure(db, conn, kinds, args.repeat, rng, lambda q: db.query_datastore(DS, q))


def document_queries(
    db: reeldb.Database, path: Path, big_id: Any, rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    gid, first, last = conn.execute(
        "SELECT generation_id, first_row, last_row FROM index_docs WHERE doc_seq = "
        "(SELECT seq FROM documents WHERE id = ?)",
        (big_id.bytes,),
    ).fetchone()
    col = dict(_generations(path))[gid]
    rows, start = f"ix{gid}_rows", col["event.time_range"]
    person, label, box = col["region.person"], col["event.label"], col["region.bounding_box"]
    span = f"SELECT t, c, e, r FROM {rows} WHERE id BETWEEN {first} AND {last} AND e >= 0 AND "
    order = " ORDER BY id LIMIT 51"

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
    return _measure(
        db, conn, kinds, args.repeat, rng, lambda q: db.query_document(big_id, q, limit=50)
    )


def _measure(
    db: reeldb.Database,
    conn: sqlite3.Connection,
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
        took, _ = timed(lambda s=statement, p=params: conn.execute(s, p).fetchall())
        sql[name].append(took)
    out: dict[str, Any] = {}
    for name in kinds:
        mine, base = percentiles(ours[name]), percentiles(sql[name])
        out[name] = {
            **mine,
            "sql_p50_ms": base["p50_ms"],
            "vs_sql": round(mine["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None,
            "mean_hits": round(hits[name] / repeat, 1),
        }
    every = [t for samples in ours.values() for t in samples]
    every_sql = [t for samples in sql.values() for t in samples]
    out["mix"] = {**percentiles(every), "sql_p50_ms": percentiles(every_sql)["p50_ms"]}
    return out


if __name__ == "__main__":
    sys.exit(main())
