"""Streamed ingest of large documents: throughput and the worker's peak memory, by size.

Prints one JSON object. For each size (regions), a detection document (one track, one
component, ``--regions`` boxes per event) is written to a file without ever being held in
memory, then:

1. **reeldb**: a fresh worker process (the real one: DBOS workflow, ``Worker``, warmed up by
   one tiny write) uploads the file as a blob (streamed, encrypted at rest), submits the
   asynchronous write and waits for ``INDEXED``: validation pass, reservation, indexing pass
   in batches, publication (on SQLite a blob of 64 MiB or more is validated and staged in
   one pass, during the ``validate`` step). It reports the seconds of the write (upload
   apart), regions per second, and its peak RSS.
2. **Floor**: another fresh process does the least the same work needs: ijson (C backend)
   parses the file's events, one tuple per region holds the same values as reeldb's index
   rows, and raw ``sqlite3`` ``executemany`` inserts them into one table with the same
   pragmas (WAL, ``synchronous=full``), in one transaction; no validation, no second pass,
   no secondary index, no encryption.
3. **Indexed floor**: the same, into a table with the B-trees reeldb's index generation keeps
   for this schema (a region-level keyword, two event-level fields, the event and document
   node ids): what SQLite alone costs for the index reeldb must build.

``vs_floor`` and ``vs_indexed_floor`` are reeldb's throughput over each floor's, same run.
Targets (the issue): >= 100k regions/s end to end, worker peak RSS < 512 MB and flat across
sizes.

``--backends sqlite postgresql`` runs the same on PostgreSQL too, side by side: reeldb on a
fresh database of the server ``--postgres`` names (dropped afterwards), and as floors raw
psycopg binary ``COPY`` of the same rows into an ordinary table, without and
with the same B-trees.

Usage::

    python benchmarks/ingest_bench.py [--sizes 100000 1000000 5000000] [--regions 10]
        [--backends sqlite postgresql] [--postgres URL] [--quick] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from measure import database
from reeldb.testing import POSTGRES_SERVER_URL
from search_bench import DS, SCHEMA, event

WORKER = r"""
import json, resource, sys, time
import reeldb
from reeldb.workflows.writes import Worker

url, path, datastore = sys.argv[1], sys.argv[2], sys.argv[3]
db = reeldb.connect(url)
namespace = datastore.split("/")[0]
worker = Worker(db, name="bench", poll=0.01).start()  # DBOS migrates its database once
warm = db.blobs.put(namespace, [b'{"asset": {"title": "warm"}, "tracks": []}'])
request, _ = db.submit_write(datastore, {"title_id": "warm-up"}, blob=warm.id)
assert db.wait_write_request(request.id, timeout=60, poll=0.01).state.value == "INDEXED"
started = time.perf_counter()
with open(path, "rb") as handle:
    size = handle.seek(0, 2)
    handle.seek(0)
    record = db.blobs.create(namespace, size=size)
    db.blobs.upload(record.id, iter(lambda: handle.read(1 << 20), b""), namespace=namespace)
uploaded = time.perf_counter()
request, _ = db.submit_write(datastore, {"title_id": path}, blob=record.id)
done = db.wait_write_request(request.id, timeout=24 * 3600, poll=0.01)
finished = time.perf_counter()
worker.stop()
assert done.state.value == "INDEXED", done.error
print(json.dumps({
    "upload_s": uploaded - started,
    "write_s": finished - uploaded,
    "steps": done.steps,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""

FLOOR = r"""
import json, resource, sqlite3, sys, time
import ijson

path, db_path, indexed = sys.argv[1], sys.argv[2], sys.argv[3] == "indexed"
conn = sqlite3.connect(db_path, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.execute(
    "CREATE TABLE rows (id INTEGER PRIMARY KEY, doc, t, c, e, r, lo, hi, label, confidence, "
    "x0, y0, x1, y1, person)"
)
if indexed:  # the B-trees reeldb's generation keeps for this schema (e0 stands for e here)
    conn.execute("CREATE INDEX rows_label ON rows (label) WHERE r <= 0")
    conn.execute("CREATE INDEX rows_confidence ON rows (confidence) WHERE r <= 0")
    conn.execute("CREATE INDEX rows_person ON rows (person)")
    conn.execute("CREATE INDEX rows_doc ON rows (doc) WHERE r <= 0")
    conn.execute("CREATE INDEX rows_event ON rows (e)")
started = time.perf_counter()
rows = []
count = 0
conn.execute("BEGIN")
with open(path, "rb") as handle:
    events = ijson.items(handle, "tracks.item.components.item.events.item", use_float=True)
    for e, event in enumerate(events):
        span, label, confidence = event["time_range"], event["label"], event["confidence"]
        for r, region in enumerate(event["regions"]):
            box = region["bounding_box"]
            x, y = box["x"], box["y"]
            rows.append((1, 0, 0, e, r, span["start"], span["end"], label, confidence,
                         x, y, x + box["w"], y + box["h"], region["person"]))
        if len(rows) >= 50_000:
            conn.executemany("INSERT INTO rows VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                             "?, ?)", rows)
            count += len(rows)
            rows = []
conn.executemany("INSERT INTO rows VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
count += len(rows)
conn.execute("COMMIT")
print(json.dumps({
    "write_s": time.perf_counter() - started,
    "rows": count,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""

PG_FLOOR = r"""
import json, resource, sys, time
import ijson, psycopg

path, url, indexed = sys.argv[1], sys.argv[2], sys.argv[3] == "indexed"
conn = psycopg.connect(url, autocommit=True)
conn.execute("DROP TABLE IF EXISTS floor_rows")
conn.execute(
    "CREATE TABLE floor_rows (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, doc BIGINT, "
    "t INT, c INT, e INT, r INT, lo FLOAT8, hi FLOAT8, label TEXT, confidence FLOAT8, "
    "x0 FLOAT8, y0 FLOAT8, x1 FLOAT8, y1 FLOAT8, person TEXT)"
)
if indexed:  # the B-trees reeldb's generation keeps for this schema (e0 stands for e here)
    conn.execute("CREATE INDEX ON floor_rows (label) WHERE r <= 0")
    conn.execute("CREATE INDEX ON floor_rows (confidence) WHERE r <= 0")
    conn.execute("CREATE INDEX ON floor_rows (person)")
    conn.execute("CREATE INDEX ON floor_rows (doc) WHERE r <= 0")
    conn.execute("CREATE INDEX ON floor_rows (e)")
types = ["bigint", "integer", "integer", "integer", "integer", "float8", "float8", "text",
         "float8", "float8", "float8", "float8", "float8", "text"]
started = time.perf_counter()
count = 0
with conn.transaction(), conn.cursor() as cursor, cursor.copy(
    "COPY floor_rows (doc, t, c, e, r, lo, hi, label, confidence, x0, y0, x1, y1, person) "
    "FROM STDIN (FORMAT BINARY)"
) as copy:
    copy.set_types(types)
    with open(path, "rb") as handle:
        events = ijson.items(handle, "tracks.item.components.item.events.item", use_float=True)
        for e, event in enumerate(events):
            span, label, confidence = event["time_range"], event["label"], event["confidence"]
            for r, region in enumerate(event["regions"]):
                box = region["bounding_box"]
                x, y = box["x"], box["y"]
                copy.write_row((1, 0, 0, e, r, span["start"], span["end"], label, confidence,
                                x, y, x + box["w"], y + box["h"], region["person"]))
                count += 1
elapsed = time.perf_counter() - started
conn.execute("DROP TABLE floor_rows")
print(json.dumps({
    "write_s": elapsed,
    "rows": count,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def write_document(path: Path, regions: int, per_event: int, seed: int) -> int:
    """Write a detection document of ``regions`` regions, one event at a time; its size."""
    rng = random.Random(seed)
    events = regions // per_event
    with path.open("wb") as out:
        out.write(b'{"asset":{"title":"a feature film, one hour"},"tracks":[{"kind":"video",')
        out.write(b'"frame_rate":"24","components":[{"algorithm":"detector-v2","events":[')
        for e in range(events):
            item = event(rng, 0, e, per_event)
            if e:
                out.write(b",")
            out.write(orjson.dumps(item))
        out.write(b"]}]}]}")
    return path.stat().st_size


def _child(source: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    here = Path(__file__).parent
    full = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", source, *args],
        capture_output=True,
        text=True,
        check=False,
        env=full,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _measure(backend: str, regions: int, document: Path, work: Path, server: str) -> dict[str, Any]:
    """reeldb's worker and the two floors of one backend, on one document."""
    import reeldb

    env = {"REELDB_BLOBS": f"file://{work / 'blobs'}"}
    with database(backend, work, server) as url:
        with reeldb.connect(url, blobs=env["REELDB_BLOBS"]) as db:
            db.create_namespace("bench")
            db.add_schema("bench", SCHEMA)
            db.create_datastore(DS, mid_keys=["title_id"], schema="detections")
        ours = _child(WORKER, url, str(document), DS, env=env)
        if backend == "sqlite":
            floor = _child(FLOOR, str(document), str(work / "floor.db"), "plain")
            indexed = _child(FLOOR, str(document), str(work / "indexed.db"), "indexed")
        else:
            floor = _child(PG_FLOOR, str(document), url, "plain")
            indexed = _child(PG_FLOOR, str(document), url, "indexed")
    rate = regions / ours["write_s"]
    floor_rate = regions / floor["write_s"]
    return {
        "backend": backend,
        "regions": regions,
        "upload_s": round(ours["upload_s"], 2),
        "write_s": round(ours["write_s"], 2),
        "steps_s": {k: round(v, 2) for k, v in ours["steps"].items()},
        "regions_per_s": round(rate),
        "worker_peak_rss_mb": round(ours["peak_rss_mb"]),
        "floor_regions_per_s": round(floor_rate),
        "floor_peak_rss_mb": round(floor["peak_rss_mb"]),
        "vs_floor": round(rate / floor_rate, 2),
        "indexed_floor_regions_per_s": round(regions / indexed["write_s"]),
        "vs_indexed_floor": round(rate / (regions / indexed["write_s"]), 2),
        "floor_rows": floor["rows"],
        "indexed_floor_rows": indexed["rows"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--regions", type=int, default=10, help="regions per event")
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument("--postgres", default=POSTGRES_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--tmpdir", type=Path, default=None)
    args = parser.parse_args()
    sizes = [2_000, 10_000] if args.quick else args.sizes
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        root = Path(tmp)
        for index, regions in enumerate(sizes):
            document = root / f"doc-{regions}.json"
            size = write_document(document, regions, args.regions, seed=index)
            for backend in args.backends:
                work = root / f"{backend}-{regions}"
                work.mkdir()
                found = _measure(backend, regions, document, work, args.postgres)
                rows = regions // args.regions * args.regions
                assert found.pop("floor_rows") == found.pop("indexed_floor_rows") == rows
                results.append({**found, "document_mb": round(size / 1e6, 1)})
            document.unlink()
    embedded = [r for r in results if r["backend"] == "sqlite"]
    peaks = [r["worker_peak_rss_mb"] for r in results]
    side_by_side = {
        str(regions): {
            r["backend"]: {
                "regions_per_s": r["regions_per_s"],
                "floor_regions_per_s": r["floor_regions_per_s"],
                "indexed_floor_regions_per_s": r["indexed_floor_regions_per_s"],
                "worker_peak_rss_mb": r["worker_peak_rss_mb"],
            }
            for r in results
            if r["regions"] == regions
        }
        for regions in sizes
    }
    print(
        json.dumps(
            {
                "benchmark": "ingest",
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "regions_per_event": args.regions,
                "sizes": results,
                "side_by_side": side_by_side,
                "target_regions_per_s": 100_000,
                "target_peak_rss_mb": 512,
                "meets_throughput": bool(embedded)
                and all(r["regions_per_s"] >= 100_000 for r in embedded),
                "meets_memory": max(peaks) < 512,
                "rss_growth_mb": max(peaks) - min(peaks),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
