"""Moving an embedded installation to PostgreSQL: ``reeldb migrate-backend``'s throughput.

Prints one JSON object. An embedded installation (a SQLite file) is filled with ``--docs``
detection documents of ``--events`` events x ``--regions`` regions (the search benchmark's
generator) and ``--annotations`` annotations, a tenth of them updated once (two versions).
Then, into a fresh PostgreSQL database of the server ``--postgres``:

1. **reeldb**: `reeldb.transfer.migrate_backend` (what ``reeldb migrate-backend`` runs): the
   copy, the index rebuild of the target, and the verification (counts and SHA-256 of every
   record on both sides), each step timed from the progress reports.
2. **Baseline**: the least a copy needs: ``sqlite3`` reads the document and annotation-version
   rows and psycopg binary ``COPY`` writes them into two plain tables of another fresh
   database (no validation, no search structures, no verification).

``vs_copy_floor`` is the document step's rate over the baseline's, same run.

Usage::

    python benchmarks/migrate_bench.py [--docs 200] [--events 500] [--regions 10]
        [--annotations 100000] [--postgres URL] [--quick] [--tmpdir DIR]
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
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

import reeldb
from measure import database, timed
from reeldb.testing import POSTGRES_SERVER_URL
from reeldb.transfer import migrate_backend
from search_bench import DS, SCHEMA, document

NS = "bench"
NOTE = {
    "name": "NOTE",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {"comment": {"type": "text", "mandatory": True}},
}
WORDS = ["glove", "black", "light", "shadow", "blur", "logo", "face", "door", "car", "rain"]


def fill(db: reeldb.Database, args: argparse.Namespace) -> dict[str, int]:
    """The source installation: documents, then annotations with some history."""
    rng = random.Random(11)
    db.create_namespace(NS)
    db.add_schema(NS, SCHEMA)
    db.add_schema(NS, NOTE)
    db.create_datastore(DS, mid_keys=["title_id"], schema="detections")
    for i in range(args.docs):
        db.put_document(DS, {"title_id": str(i % max(1, args.docs // 2))},
                        document(rng, i, args.events, args.regions))  # fmt: skip
    made = []
    for start in range(0, args.annotations, 5000):
        batch = [
            {
                "type": "NOTE",
                "associations": [{"type": "VIDEO", "id": f"v{i % 50}"}],
                "data": {
                    "temporal": {"start": i / 24, "end": (i + 1) / 24},
                    "spatial": {"x": rng.random() * 0.8, "y": rng.random() * 0.8, "w": 0.1,
                                "h": 0.1},
                    "comment": " ".join(rng.choice(WORDS) for _ in range(4)),
                },
            }
            for i in range(start, min(args.annotations, start + 5000))
        ]  # fmt: skip
        made += db.annotations.create_many(NS, batch)
    for a in made[::10]:
        db.annotations.update(NS, a.id, expected_version=1, data={**a.data, "comment": "fixed"})
    return {
        "documents": args.docs,
        "regions": args.docs * args.events * args.regions,
        "annotations": len(made),
        "annotation_versions": len(made) + len(made[::10]),
    }


def floor(source: Path, url: str) -> dict[str, float]:
    """sqlite3 rows into plain PostgreSQL tables with binary COPY: the least a copy costs."""
    src = sqlite3.connect(source)
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE docs (seq BIGINT, id UUID, datastore_id INT, mid_key TEXT, "
            "schema_version INT, created_at TEXT, size BIGINT, body BYTEA)"
        )
        conn.execute(
            "CREATE TABLE versions (pk BIGINT, version INT, type_id BIGINT, deleted BOOL, "
            "created_at TEXT, created_by TEXT, body BYTEA)"
        )
        with conn.cursor() as cur:
            with cur.copy("COPY docs FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "uuid", "int4", "text", "int4", "text", "int8", "bytea"])
                for row in src.execute(
                    "SELECT seq, id, datastore_id, mid_key, schema_version, created_at, size, "
                    "body FROM documents ORDER BY seq"
                ):
                    copy.write_row((row[0], uuid.UUID(bytes=row[1]), *row[2:]))
            docs_s = time.perf_counter() - start
            with cur.copy("COPY versions FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int4", "int8", "bool", "text", "text", "bytea"])
                for row in src.execute(
                    "SELECT pk, version, type_id, deleted, created_at, created_by, body "
                    "FROM annotation_versions ORDER BY pk, version"
                ):
                    copy.write_row((*row[:3], bool(row[3]), *row[4:]))
    src.close()
    return {"documents_s": docs_s, "annotations_s": time.perf_counter() - start - docs_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--annotations", type=int, default=100_000)
    parser.add_argument("--postgres", default=POSTGRES_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny sizes")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.docs, args.events, args.annotations = 10, 50, 2000
    out: dict[str, Any] = {
        "benchmark": "migrate-backend",
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        path = root / "src" / "reel.db"
        with reeldb.connect(f"sqlite:///{path}") as src:
            out["sizes"] = fill(src, args)
            out["source_mb"] = round(path.stat().st_size / 1e6, 1)
            with (
                database("postgresql", root, args.postgres) as url,
                reeldb.connect(url, blobs=f"file://{root / 'dst-blobs'}") as dst,
            ):
                steps: dict[str, list[float]] = defaultdict(list)
                last = [time.perf_counter()]

                def progress(step: str, _done: int, _total: int | None) -> None:
                    now = time.perf_counter()
                    kind = step.split(" ", 1)[0]
                    steps[kind].append(now - last[0])
                    last[0] = now

                seconds, report = timed(lambda: migrate_backend(src, dst, progress=progress))
                verify_s = time.perf_counter() - last[0]
                assert report.ok, [c for c in report.checks if not c.ok]
            with database("postgresql", root, args.postgres) as url:
                base = floor(path, url)
    sizes = out["sizes"]
    by_step = {k: sum(v) for k, v in steps.items()}
    docs_s = by_step.get("documents", 0.0)
    ann_s = by_step.get("annotations", 0.0)
    out["reeldb"] = {
        "seconds": round(seconds, 2),
        "steps_s": {k: round(v, 2) for k, v in by_step.items()}
        | {"audit_and_verify": round(verify_s, 2)},
        "documents_per_s": round(sizes["documents"] / docs_s) if docs_s else None,
        "regions_per_s": round(sizes["regions"] / docs_s) if docs_s else None,
        "annotation_versions_per_s": round(sizes["annotation_versions"] / ann_s) if ann_s else None,
        "copied": report.copied,
    }
    out["floor"] = {
        "documents_s": round(base["documents_s"], 2),
        "annotations_s": round(base["annotations_s"], 2),
        "regions_per_s": round(sizes["regions"] / base["documents_s"]),
        "annotation_versions_per_s": round(sizes["annotation_versions"] / base["annotations_s"]),
    }
    out["vs_copy_floor"] = {
        "documents": round(base["documents_s"] / docs_s, 2) if docs_s else None,
        "annotations": round(base["annotations_s"] / ann_s, 2) if ann_s else None,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
