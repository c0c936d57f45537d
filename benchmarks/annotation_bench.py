"""Annotations: bulk create throughput, reads by id and by association, and combined search.

Prints one JSON object. On a fresh SQLite file (``synchronous=full``, the default):

1. **Bulk create**: ``--count`` frame-level ``CHARACTER_IN_FRAME`` annotations (it extends
   ``TEMPORAL_SPATIAL_BASE``: a time range of one frame at 24 fps, a box, a character name,
   and a comment on one in ten) on ``--videos`` videos, written with
   `Annotations.create_many` in batches of ``--batch``: validation, the durable write and
   indexing in one transaction per batch. Reported as annotations per second; the baseline
   is raw ``sqlite3`` ``executemany`` of the same rows into a plain table on the same disk.
2. **Reads**, each ``--repeat`` times in a random order with fresh values, p50/p99:
   get by id; the first page (100) of a video's annotations by association; a 60 s window
   of a video's timeline; combined **time + box + text** searches across all videos (a
   character's name, a 5-minute window, a quadrant of the frame) and within one video.
3. **Baseline**: the same questions as hand-written SQL on the same file (the tables queried
   directly, with literals bound): ``vs_sql`` is reeldb's overhead (checking, planning,
   building results, highlighting).

Target (DESIGN.md): combined search over 10M annotations p50 < 5 ms, p99 < 50 ms.
``--quick`` is a smoke test of a few seconds.

Usage::

    python benchmarks/annotation_bench.py [--count 10000000] [--videos 2000]
        [--batch 10000] [--repeat 200] [--quick] [--tmpdir DIR]
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
from uuid import UUID

import reeldb
from measure import percentiles, timed
from reeldb.annotations import Association, NewAnnotation
from reeldb.index.sqlite import fts_token
from reeldb.query.fulltext import stems

NS = "bench"
NAMES = 5000
WORDS = [
    "glove", "black", "colour", "change", "light", "shadow", "blur", "sharp", "crop", "logo",
    "face", "smile", "frown", "door", "window", "car", "street", "night", "rain", "sun",
]  # fmt: skip
FPS = 24


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
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny sizes")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.count, args.batch, args.repeat = 20_000, 5000, 20
    if args.videos is None:
        args.videos = max(1, args.count // (3600 * FPS))
    rng = random.Random(7)
    out: dict[str, Any] = {
        "benchmark": "annotations",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "reeldb": reeldb.__version__,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sizes": {"annotations": args.count, "videos": args.videos, "batch": args.batch},
    }
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "annotations.db"
        with reeldb.connect(f"sqlite:///{path}") as db:
            db.create_namespace(NS)
            db.add_schema(NS, {"name": "LABELED", "properties": {"label": {"type": "keyword"}}})
            db.add_schema(
                NS,
                {
                    "name": "CHARACTER_IN_FRAME",
                    "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED"],
                    "properties": {
                        "characterName": {"type": "text", "mandatory": True},
                        "comment": {"type": "text"},
                    },
                },
            )
            out["create"] = create(db, rng, args, Path(tmp))
            out["file_mb"] = round(sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6, 1)
            out["reads"] = reads(db, path, rng, args)
    search = out["reads"]["time_box_text_all_videos"]
    out["targets"] = {
        "search_p50_ms_below_5": search["p50_ms"] < 5,
        "search_p99_ms_below_50": search["p99_ms"] < 50,
    }
    print(json.dumps(out))
    return 0


def create(
    db: reeldb.Database, rng: random.Random, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    seconds = 0.0
    done = 0
    while done < args.count:
        n = min(args.batch, args.count - done)
        batch = items(rng, done, n, args.videos)
        took, _ = timed(lambda batch=batch: db.annotations.create_many(NS, batch))
        seconds += took
        done += n
    # Baseline: the same rows (id, association, time, box, JSON body) into one plain table.
    conn = sqlite3.connect(tmp / "baseline.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA synchronous = full")
    conn.execute(
        "CREATE TABLE a (id BLOB PRIMARY KEY, video TEXT, t0 REAL, t1 REAL, x REAL, y REAL, "
        "body TEXT)"
    )
    base = 0.0
    sample = min(args.count, 200_000)
    made = 0
    while made < sample:
        n = min(args.batch, sample - made)
        rows = [
            (
                os.urandom(16),
                it.associations[0].id,
                it.data["temporal"]["start"],
                it.data["temporal"]["end"],
                it.data["spatial"]["x"],
                it.data["spatial"]["y"],
                json.dumps(it.data),
            )
            for it in items(rng, made, n, args.videos)
        ]

        def insert(rows: list[Any] = rows) -> None:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO a VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")

        took, _ = timed(insert)
        base += took
        made += n
    conn.close()
    rate = args.count / seconds
    base_rate = sample / base
    return {
        "seconds": round(seconds, 1),
        "annotations_per_s": round(rate),
        "sql_executemany_per_s": round(base_rate),
        "vs_sql": round(base_rate / rate, 2),
    }


def reads(
    db: reeldb.Database, path: Path, rng: random.Random, args: argparse.Namespace
) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    ids = [
        row[0]
        for row in conn.execute(
            f"SELECT id FROM annotations ORDER BY random() LIMIT {args.repeat * 2}"
        )
    ]
    frames = max(1, args.count // args.videos)
    duration = frames / FPS
    video_key = (
        "SELECT id FROM annotation_keys WHERE namespace = ? AND type = 'VIDEO_ID' AND value = ?"
    )
    full = (
        "SELECT a.id, a.version, v.body FROM annotations a JOIN annotation_versions v "
        "ON v.pk = a.pk AND v.version = a.version WHERE a.pk IN ({inner}) ORDER BY a.t0, a.pk "
        "LIMIT {limit}"
    )

    def by_id() -> tuple[Callable[[], Any], str, list[Any]]:
        ident = rng.choice(ids)
        sql = (
            "SELECT a.id, a.version, v.body FROM annotations a JOIN annotation_versions v "
            "ON v.pk = a.pk AND v.version = a.version WHERE a.id = ? AND a.namespace = ?"
        )
        return (lambda: db.annotations.get(NS, UUID(bytes=ident))), sql, [ident, NS]

    def by_association() -> tuple[Callable[[], Any], str, list[Any]]:
        video = f"v{rng.randrange(args.videos)}"
        inner = (
            f"SELECT pk FROM annotation_links WHERE key = ({video_key}) ORDER BY t0, pk LIMIT 100"
        )
        return (
            lambda: db.annotations.search(
                NS, associations=[{"type": "VIDEO_ID", "id": video}], limit=100
            ),
            full.format(inner=inner, limit=100),
            [NS, video],
        )

    def timeline() -> tuple[Callable[[], Any], str, list[Any]]:
        video = f"v{rng.randrange(args.videos)}"
        t = rng.uniform(0, max(0.0, duration - 60))
        inner = (
            f"SELECT pk FROM annotation_links WHERE key = ({video_key}) AND t0 BETWEEN ? AND ? "
            "AND t1 >= ?"
        )
        return (
            lambda: db.annotations.timeline(
                NS, {"type": "VIDEO_ID", "id": video}, t, t + 60, limit=10_000
            ),
            full.format(inner=inner, limit=10_000),
            [NS, video, t - 1 / FPS, t + 60, t],
        )

    def search_all() -> tuple[Callable[[], Any], str, list[Any]]:
        name = character(rng.randrange(NAMES))
        t = rng.uniform(0, max(0.0, duration - 300))
        qx, qy = rng.choice([(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)])
        token = fts_token(stems(name)[0])
        inner = (
            "SELECT h.pk FROM (SELECT rowid >> 12 AS pk FROM annotation_text WHERE "
            "annotation_text MATCH ?) m JOIN annotations h ON h.pk = m.pk WHERE h.t0 <= ? "
            "AND h.t1 >= ? AND h.x0 <= ? AND h.x1 >= ? AND h.y0 <= ? AND h.y1 >= ?"
        )
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
            full.format(inner=inner, limit=100),
            [f'"{token}"', t + 300, t, qx + 0.5, qx, qy + 0.5, qy],
        )

    def search_video() -> tuple[Callable[[], Any], str, list[Any]]:
        video = f"v{rng.randrange(args.videos)}"
        word = rng.choice(WORDS)
        t = rng.uniform(0, max(0.0, duration - 600))
        inner = (
            f"SELECT l.pk FROM annotation_links l JOIN annotations h ON h.pk = l.pk WHERE "
            f"l.key = ({video_key}) AND l.t0 BETWEEN ? AND ? AND h.x0 <= 0.5 AND h.y0 <= 0.5 "
            "AND instr(h.words, ?) > 0"
        )
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
            full.format(inner=inner, limit=100),
            [NS, video, t - 1 / FPS, t + 600, f" {fts_token(stems(word)[0])} "],
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
    sql: dict[str, list[float]] = {name: [] for name in kinds}
    hits: dict[str, int] = {name: 0 for name in kinds}
    for name in plan:
        run, statement, params = kinds[name]()
        took, found = timed(run)
        ours[name].append(took)
        hits[name] += len(found.items) if hasattr(found, "items") else 1
        took, _ = timed(lambda s=statement, p=params: conn.execute(s, p).fetchall())
        sql[name].append(took)
    out: dict[str, Any] = {}
    for name in kinds:
        mine, base = percentiles(ours[name], 3), percentiles(sql[name], 3)
        out[name] = {
            **mine,
            "sql_p50_ms": base["p50_ms"],
            "vs_sql": round(mine["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None,
            "mean_hits": round(hits[name] / args.repeat, 1),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
