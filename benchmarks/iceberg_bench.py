"""Iceberg export of annotations: reeldb's export against a raw pyarrow -> Parquet write.

On a fresh database of each backend, ``--count`` ``CHARACTER_IN_FRAME`` annotations are bulk
created (``create_many``; the load is reported, not timed against a target), then:

1. **full export**: ``export_iceberg(db, tables=["annotations"])`` into an empty warehouse
   (SQLite catalog): every version read from the store, converted, written as Parquet in
   appends of ``--batch-rows`` rows with their watermarks (one Iceberg commit each);
2. **baselines, same rows**: (a) ``pyarrow.parquet.write_table`` of exactly the rows the
   export wrote (the Arrow table already in memory: the floor of any Parquet writer);
   (b) a hand-written loop over the per-record store API (``annotation_history`` with
   bodies, ``orjson``, ``pyarrow``) to one Parquet file, no Iceberg, no typed columns (what
   the export did before its bulk read);
3. **incremental**: ``--updates`` of the annotations get a new version (updates of old ids,
   the case an id cursor misses), then a second export; and a third one with nothing new.

Prints one JSON object. Target (DESIGN.md / issue 9): 1M annotations exported in < 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

import reeldb
import reeldb.analytics._iceberg  # noqa: F401  # pyiceberg's import (~1 s) before any timing
from measure import each_backend, timed
from reeldb.analytics import export_iceberg
from reeldb.annotations import Association, NewAnnotation
from reeldb.demo import CHARACTER_IN_FRAME, LABELED_BASE
from reeldb.testing import POSTGRES_SERVER_URL

NS = "bench"
FPS = 24
TARGET_SECONDS = 10.0
TARGET_COUNT = 1_000_000


def items(rng: random.Random, start: int, n: int) -> list[NewAnnotation]:
    out = []
    for k in range(start, start + n):
        frame = k // 100
        data: dict[str, Any] = {
            "label": "character",
            "characterName": f"name{rng.randrange(5000)}",
            "temporal": {"start": frame / FPS, "end": (frame + 1) / FPS},
            "spatial": {"x": round(rng.random() * 0.8, 4), "y": 0.1, "w": 0.1, "h": 0.15},
        }
        out.append(
            NewAnnotation("CHARACTER_IN_FRAME", (Association("VIDEO_ID", f"v{k % 100}"),), data)
        )
    return out


def load(db: reeldb.Database, count: int) -> dict[str, Any]:
    db.create_namespace(NS)
    db.add_schema(NS, dict(LABELED_BASE))
    db.add_schema(NS, dict(CHARACTER_IN_FRAME))
    rng = random.Random(9)
    seconds = 0.0
    done = 0
    ids: list[Any] = []
    while done < count:
        n = min(10_000, count - done)
        batch = items(rng, done, n)
        took, made = timed(lambda batch=batch: db.annotations.create_many(NS, batch))
        ids += [a.id for a in made[:: max(1, count // 20_000)]]
        seconds += took
        done += n
    return {"seconds": round(seconds, 1), "per_s": round(count / seconds), "sample_ids": ids}


def hand_written(db: reeldb.Database, path: Path) -> int:
    """The same versions from the same store API to one Parquet file: no Iceberg."""
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("version", pa.int32()),
            ("type", pa.string()),
            ("type_version", pa.int32()),
            ("deleted", pa.bool_()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("associations", pa.list_(pa.struct([("type", pa.string()), ("id", pa.string())]))),
            ("data", pa.string()),
        ]
    )
    rows = 0
    after = None
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        while True:
            page = db.store.annotation_history(NS, after=after, limit=20_000)
            if not page:
                break
            after = page[-1].id
            columns: list[list[Any]] = [[] for _ in schema]
            for r in page:
                body = orjson.loads(r.body)
                for column, value in zip(
                    columns,
                    (
                        str(r.id),
                        r.version,
                        r.type_name,
                        r.type_version,
                        r.deleted,
                        r.created_at,
                        body["associations"],
                        orjson.dumps(body["data"]).decode(),
                    ),
                    strict=True,
                ):
                    column.append(value)
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            rows += len(page)
    return rows


def run(backend: str, url: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    with reeldb.connect(url) as db:
        loaded = load(db, args.count)
        sample = loaded.pop("sample_ids")
        warehouse = work / "warehouse"
        load_before = os.getloadavg()
        cpu = time.process_time()
        full_s, full = timed(
            lambda: export_iceberg(
                db, warehouse=str(warehouse), tables=["annotations"], batch_rows=args.batch_rows
            )
        )
        full_cpu = time.process_time() - cpu
        assert full.rows["annotations"] == args.count, full.rows
        files = sorted(warehouse.rglob("*.parquet"))
        written = pa.concat_tables([pq.read_table(f) for f in files])
        assert written.num_rows == args.count
        raw_s, _ = timed(lambda: pq.write_table(written, work / "raw.parquet", compression="zstd"))
        hand_s, hand_rows = timed(lambda: hand_written(db, work / "hand.parquet"))
        assert hand_rows == args.count
        updates = sample[: args.updates]
        for ident in updates:
            db.annotations.update(NS, ident, expected_version=1, data={"label": "changed"} | {
                "characterName": "x", "temporal": {"start": 0, "end": 1},
            })  # fmt: skip
        inc_s, inc = timed(
            lambda: export_iceberg(db, warehouse=str(warehouse), tables=["annotations"])
        )
        assert inc.rows["annotations"] == len(updates), inc.rows
        idle_s, idle = timed(
            lambda: export_iceberg(db, warehouse=str(warehouse), tables=["annotations"])
        )
        assert idle.rows["annotations"] == 0 and idle.commits == 0
        parquet_mb = sum(f.stat().st_size for f in warehouse.rglob("*.parquet")) / 1e6
        result = {
            "backend": backend,
            "annotations": args.count,
            "load": loaded,
            "export_s": round(full_s, 2),
            "export_cpu_s": round(full_cpu, 2),
            "loadavg_before_export": [round(x, 2) for x in load_before],
            "export_rows_per_s": round(args.count / full_s),
            "export_commits": full.commits,
            "raw_parquet_write_s": round(raw_s, 2),
            "hand_written_read_and_write_s": round(hand_s, 2),
            "vs_raw_write": round(full_s / raw_s, 1),
            "vs_hand_written": round(full_s / hand_s, 2),
            "incremental_updates": len(updates),
            "incremental_s": round(inc_s, 2),
            "nothing_new_s": round(idle_s, 2),
            "warehouse_parquet_mb": round(parquet_mb, 1),
        }
        print(json.dumps(result), file=sys.stderr, flush=True)  # each backend as it ends
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=TARGET_COUNT, help="annotations")
    parser.add_argument("--updates", type=int, default=1000, help="old annotations updated")
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument("--postgres", default=POSTGRES_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.count, args.updates, args.batch_rows = 5_000, 50, 2_000
    results = each_backend(
        args.backends,
        args.tmpdir,
        args.postgres,
        lambda backend, url, work: run(backend, url, work, args),
    )
    side_by_side = {
        backend: {
            "export_s": r["export_s"],
            "raw_parquet_write_s": r["raw_parquet_write_s"],
            "hand_written_read_and_write_s": r["hand_written_read_and_write_s"],
            "incremental_s": r["incremental_s"],
        }
        for backend, r in results.items()
    }
    scaled = {
        backend: round(r["export_s"] * TARGET_COUNT / args.count, 1)
        for backend, r in results.items()
    }
    print(
        json.dumps(
            {
                "benchmark": "iceberg_export",
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "results": list(results.values()),
                "side_by_side": side_by_side,
                "target_s_per_1m": TARGET_SECONDS,
                "export_s_per_1m": scaled,
                "meets_target": args.count >= TARGET_COUNT
                and all(r["export_s"] < TARGET_SECONDS for r in results.values()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
