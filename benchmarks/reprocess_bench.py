"""Reprocessing jobs: reindex and backfill throughput, live reads beside a job, Iceberg export.

Prints one JSON object. For each of ``--backends`` (``sqlite``, the default, and/or
``postgresql``), on a fresh database (a SQLite file; or a new database on the PostgreSQL
server ``--postgres`` names, dropped afterwards), in one run:

1. **Load**: ``--count`` ``CHARACTER_IN_FRAME`` annotations made by the annotation
   benchmark's generator (``annotation_bench.items``), stored with
   `Annotations.create_many` in batches of 10,000 (reported, not judged).
2. **Export**: an ``export-iceberg`` job of the namespace's annotations into an empty
   warehouse (``db.reprocess.submit`` + ``run``: `reeldb.analytics.export_iceberg` under the
   job runner), against the **baseline** of ``pyarrow.parquet.write_table`` of exactly the
   rows the export wrote (read back from its Parquet files: the Arrow table already in
   memory, the floor of any Parquet writer). Target: < 10 s for 1M annotations.
3. **Reindex**: a ``reindex`` job (``annotations = true``): every live annotation's search
   rows derived again from its current version and compared with what is stored, no new
   version (checked in bulk first: an intact index is read, not rewritten; ``rewritten``
   counts the annotations the job wrote). Items per second.
4. **Backfill**: a ``backfill`` job whose function (`stamp`) sets an optional ``source``
   property, returning None when it already holds the value: every annotation gets a new
   version. Items per second. Target for both jobs: ≥ 50,000 items/s.
5. **Baselines** of 3 and 4, same run, same database server: (a) a raw read of every
   current version with its body (``sqlite3``/psycopg, one query per page of 10,000 ids,
   ``orjson.loads`` of each body); (b) a raw ``executemany`` ``UPDATE`` of as many rows of
   a plain table ``(pk, body)`` (a copy of the bodies), one transaction per job batch;
   (c) a hand-written backfill: (a)'s pages, the field set in each body, written back by
   (b)'s ``UPDATE``. ``vs_*`` are the baseline's rate over the job's.
6. **Live reads**: a reader thread in this process (as the service's request handlers
   are) alternates a get by id and the first page (20) of a video's annotations
   (`Annotations.search` by association), recording each duration in
   `reeldb.reprocess.LIVE` as the HTTP service does for every request, and publishing its
   p99 in the database as the service does (`LatencyPublisher`). p50/p99 over
   ``--live-seconds`` each: with no job; with a backfill job running with
   ``latency_budget_ms`` (the adaptive limit; default budget: 1.2 x the idle p99); with
   the same job unlimited; both in batches of ``--live-batch`` (500, the spec's default:
   the adaptive limit adjusts after each batch). The jobs run in a worker process
   (``reeldb reprocess work``), as ``reeldb serve`` runs its worker, where the adaptive
   limit reads the published p99; the window opens once the job has made progress.
   ``in_thread`` repeats both with the job in a thread of this process, beside the reader
   (as a library user's ``db.reprocess.run`` would, or the worker of a ``memory:`` service),
   for comparison (``--no-in-thread``: skipped). The jobs are stopped after the window
   (their rate is reported); a job that ended inside it (``job_ended_in_window``: make
   ``--count`` larger) is not judged.
   Target: the p99 rises < 25 % with the adaptive limit on.

``--workers N`` runs the reindex and backfill jobs in N processes at once (this one and N - 1
more, each ``db.reprocess.run`` of the same job: they share its partitions by lease, as
``reeldb worker`` processes do); their CPU seconds are added up.

``--count`` is small for a smoke run (``--count 2000 --live-seconds 1`` takes seconds).

Usage::

    python benchmarks/reprocess_bench.py [--count 1000000] [--batch 5000] [--partitions 8]
        [--concurrency 1] [--workers 1] [--live-seconds 10] [--live-batch 500] [--budget-ms MS]
        [--no-in-thread]
        [--backends sqlite postgresql] [--postgres URL] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

import reeldb
import reeldb.analytics._iceberg  # noqa: F401  # pyiceberg's import (~1 s) before any timing
from annotation_bench import CHARACTER_IN_FRAME, LABELED, items
from measure import each_backend, environment, percentiles, timed
from reeldb.reprocess import LIVE, LatencyPublisher
from reeldb.testing import POSTGRES_SERVER_URL

NS = "bench"
LOAD_BATCH = 10_000
PAGE = 10_000
TARGET_PER_S = 50_000
TARGET_EXPORT_S = 10.0
TARGET_EXPORT_COUNT = 1_000_000
TARGET_RISE = 0.25
FUNCTION = "reprocess_bench:stamp"


def stamp(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """The backfill function: set ``source`` to the job's ``options.value`` (None: already)."""
    value = context["options"]["value"]
    if data.get("source") == value:
        return None
    data["source"] = value
    return data


# -- setup ---------------------------------------------------------------------------------


def load(db: reeldb.Database, count: int, videos: int) -> tuple[dict[str, Any], list[UUID]]:
    """The annotations, stored in batches; a sample of their ids for the live reads."""
    db.create_namespace(NS)
    db.add_schema(NS, LABELED)
    # The annotation benchmark's type, with the keyword the backfill sets.
    source = {"source": {"type": "keyword"}}
    db.add_schema(
        NS, {**CHARACTER_IN_FRAME, "properties": {**CHARACTER_IN_FRAME["properties"], **source}}
    )
    rng = random.Random(7)
    seconds, done = 0.0, 0
    sample: list[UUID] = []
    step = max(1, count // 5000)
    while done < count:
        n = min(LOAD_BATCH, count - done)
        batch = items(rng, done, n, videos)
        took, made = timed(lambda batch=batch: db.annotations.create_many(NS, batch))
        sample += [a.id for a in made[::step]]
        seconds += took
        done += n
    return {"seconds": round(seconds, 1), "per_s": round(count / seconds)}, sample


def spec(
    name: str, processor: dict[str, Any], args: argparse.Namespace, **limits: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"namespace": NS, "annotations": True},
        "processor": processor,
        "limits": {
            "batch": args.batch,
            "partitions": args.partitions,
            # Runners at once, across processes (each runs one partition at a time).
            "concurrency": max(args.concurrency, args.workers),
        }
        | limits,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _helper_env() -> dict[str, str]:
    """The environment of a process that runs jobs: it imports the backfill function here."""
    here = str(Path(__file__).parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}


def run_job(
    db: reeldb.Database, job: dict[str, Any], url: str = "", workers: int = 1
) -> tuple[float, float, Any]:
    """Submit a job and run it to the end here (and in ``workers - 1`` more processes): wall
    and CPU seconds (submit included; every process's CPU), and the job."""
    env = {**_helper_env(), "REELDB_DATABASE": url}

    def go() -> Any:
        submitted = db.reprocess.submit(job)
        helpers = [  # what `reeldb reprocess run --processes N` starts
            subprocess.Popen(
                [sys.executable, "-m", "reeldb", "-o", "json", "reprocess", "work"]
                + [str(submitted.id), "--threads", "1", "--worker", f"helper-{n}"],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            for n in range(1, workers)
        ]
        # Several processes: one partition at a time each (the job's concurrency is theirs).
        done = db.reprocess.run(submitted.id, worker="bench", threads=1 if helpers else None)
        for helper in helpers:
            if helper.wait() != 0:
                raise SystemExit(f"a helper process failed ({helper.returncode})")
        return db.reprocess.get(submitted.id) if helpers else done

    cpu, children = time.process_time(), _children_cpu()
    took, done = timed(go)
    assert done.state == "done", done.to_json()
    assert done.progress.failed == 0, done.to_json()
    return took, time.process_time() - cpu + _children_cpu() - children, done


def rates(seconds: float, cpu: float, items: int) -> dict[str, Any]:
    """Wall and CPU seconds, and items per second of each (CPU: this process's threads)."""
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "items": items,
        "items_per_s": round(items / seconds),
        "items_per_cpu_s": round(items / cpu) if cpu else None,
    }


# -- 2: export -----------------------------------------------------------------------------


def export(db: reeldb.Database, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    warehouse = work / "warehouse"
    job = spec("export", {"kind": "export-iceberg"}, args)
    job["sink"] = {"kind": "iceberg", "warehouse": str(warehouse)}
    seconds, cpu, done = run_job(db, job)
    files = sorted(warehouse.rglob("*.parquet"))
    written = pa.concat_tables([pq.read_table(f) for f in files])
    assert written.num_rows == args.count, (written.num_rows, args.count)
    raw_s, _ = timed(lambda: pq.write_table(written, work / "raw.parquet", compression="zstd"))
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "rows": written.num_rows,
        "rows_per_s": round(written.num_rows / seconds),
        "raw_parquet_write_s": round(raw_s, 3),
        "vs_raw_parquet_write": round(seconds / raw_s, 1),
        "job_progress": done.to_json()["progress"],
    }


# -- 3, 4: jobs ----------------------------------------------------------------------------


def jobs(db: reeldb.Database, url: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seconds, cpu, done = run_job(db, spec("reindex", {"kind": "reindex"}, args), url, args.workers)
    assert done.progress.done == args.count, done.to_json()
    out["reindex"] = rates(seconds, cpu, done.progress.done) | {
        "rewritten": done.progress.changed  # none: the index is right
    }
    backfill = {"kind": "backfill", "function": FUNCTION, "options": {"value": "backfill"}}
    seconds, cpu, done = run_job(db, spec("backfill", backfill, args), url, args.workers)
    assert done.progress.changed == args.count, done.to_json()
    out["backfill"] = rates(seconds, cpu, done.progress.done)
    seconds, cpu, done = run_job(db, spec("backfill-again", backfill, args), url, args.workers)
    assert done.progress.changed == 0, done.to_json()
    out["backfill_nothing_to_do"] = rates(seconds, cpu, done.progress.done)
    return out


# -- 5: baselines --------------------------------------------------------------------------


class SQLiteBaseline:
    """Raw ``sqlite3`` on reeldb's file: its tables read, a plain copy updated."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def pages(self) -> Any:
        after = b""
        while True:
            rows = self.conn.execute(
                "SELECT a.id, a.pk, v.body FROM annotations a JOIN annotation_versions v "
                "ON v.pk = a.pk AND v.version = a.version WHERE a.pk IN (SELECT pk FROM "
                "annotations WHERE namespace = ? AND id > ? ORDER BY id LIMIT ?) ORDER BY a.id",
                (NS, after, PAGE),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [(pk, body) for _, pk, body in rows]

    def copy(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_copy")
        self.conn.execute("CREATE TABLE bench_copy (pk INTEGER PRIMARY KEY, body BLOB)")
        self.conn.execute("BEGIN")
        for page in self.pages():
            self.conn.executemany("INSERT INTO bench_copy VALUES (?, ?)", page)
        self.conn.execute("COMMIT")

    def update(self, rows: list[tuple[bytes, int]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("UPDATE bench_copy SET body = ? WHERE pk = ?", rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_copy")
        self.conn.close()


class PostgresBaseline:
    """Raw psycopg on reeldb's database: its tables read, a plain copy updated."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def pages(self) -> Any:
        after = UUID(int=0)
        while True:
            rows = self.conn.execute(
                "SELECT a.id, a.pk, v.body FROM annotations a JOIN annotation_versions v "
                "ON v.namespace = a.namespace AND v.pk = a.pk AND v.version = a.version "
                "WHERE a.namespace = %(ns)s AND v.namespace = %(ns)s AND a.id > %(after)s "
                "ORDER BY a.id LIMIT %(limit)s",
                {"ns": NS, "after": after, "limit": PAGE},
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [(pk, bytes(body)) for _, pk, body in rows]

    def copy(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_copy")
        self.conn.execute("CREATE TABLE bench_copy (pk BIGINT PRIMARY KEY, body BYTEA)")
        with self.conn.transaction(), self.conn.cursor() as cursor:
            for page in self.pages():
                cursor.executemany("INSERT INTO bench_copy VALUES (%s, %s)", page)

    def update(self, rows: list[tuple[bytes, int]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany("UPDATE bench_copy SET body = %s WHERE pk = %s", rows)

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_copy")
        self.conn.close()


def baselines(raw: SQLiteBaseline | PostgresBaseline, args: argparse.Namespace) -> dict[str, Any]:
    """Raw read, raw update and a hand-written backfill of the same rows."""

    def read() -> int:
        n = 0
        for page in raw.pages():
            for _, body in page:
                orjson.loads(body)
            n += len(page)
        return n

    read_s, read_cpu, rows = timed_cpu(read)
    raw.copy()
    pks = [pk for page in raw.pages() for pk, _ in page]

    def update() -> None:
        body = b'{"x": 1}'
        for i in range(0, len(pks), args.batch):
            raw.update([(body, pk) for pk in pks[i : i + args.batch]])

    update_s, update_cpu, _ = timed_cpu(update)

    def backfill() -> None:
        pending: list[tuple[bytes, int]] = []
        for page in raw.pages():
            for pk, body in page:
                value = orjson.loads(body)
                value["data"]["source"] = "baseline"
                pending.append((orjson.dumps(value), pk))
                if len(pending) >= args.batch:
                    raw.update(pending)
                    pending = []
        if pending:
            raw.update(pending)

    backfill_s, backfill_cpu, _ = timed_cpu(backfill)
    raw.close()
    return {
        "rows": rows,
        "raw_read_per_s": round(rows / read_s),
        "raw_update_per_s": round(rows / update_s),
        "raw_backfill_per_s": round(rows / backfill_s),
        "raw_read_per_cpu_s": round(rows / read_cpu) if read_cpu else None,
        "raw_update_per_cpu_s": round(rows / update_cpu) if update_cpu else None,
        "raw_backfill_per_cpu_s": round(rows / backfill_cpu) if backfill_cpu else None,
    }


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds (this process) one call took, and what it returned."""
    cpu = time.process_time()
    took, result = timed(fn)
    return took, time.process_time() - cpu, result


# -- 6: live reads -------------------------------------------------------------------------


class Reader(threading.Thread):
    """Reads beside the jobs: a get by id, then a video's first page, over and over."""

    def __init__(self, db: reeldb.Database, sample: list[UUID], videos: int) -> None:
        super().__init__(daemon=True)
        self.db, self.sample, self.videos = db, sample, videos
        self.samples: list[float] = []
        self.recording = threading.Event()
        self.done = threading.Event()
        self.rng = random.Random(11)

    def run(self) -> None:
        reads: list[Callable[[], Any]] = [self._get, self._page]
        n = 0
        while not self.done.is_set():
            read = reads[n % 2]
            n += 1
            started = time.perf_counter()
            read()
            took = time.perf_counter() - started
            LIVE.record(took)
            if self.recording.is_set():
                self.samples.append(took)
            time.sleep(0.002)  # an open-loop-ish client: a request every few ms

    def _get(self) -> None:
        self.db.annotations.get(NS, self.rng.choice(self.sample))

    def _page(self) -> None:
        video = f"v{self.rng.randrange(self.videos)}"
        self.db.annotations.search(NS, associations=[{"type": "VIDEO_ID", "id": video}], limit=20)

    def window(self, seconds: float) -> list[float]:
        self.samples = []
        self.recording.set()
        time.sleep(seconds)
        self.recording.clear()
        return list(self.samples)


def live(
    db: reeldb.Database, sample: list[UUID], url: str, args: argparse.Namespace
) -> dict[str, Any]:
    reader = Reader(db, sample, args.videos)
    reader.start()
    publisher = LatencyPublisher(db.store).start()  # as the HTTP service does
    time.sleep(min(1.0, args.live_seconds / 2))  # warm up
    idle = percentiles(reader.window(args.live_seconds), 3)
    budget = args.budget_ms or round(max(idle["p99_ms"] * 1.2, 1.0), 2)
    out: dict[str, Any] = {"idle": idle, "budget_ms": budget}
    for where in ("process", "thread") if args.in_thread else ("process",):
        found = out if where == "process" else out.setdefault("in_thread", {})
        for name, limits in (("adaptive", {"latency_budget_ms": budget}), ("unlimited", {})):
            found[name] = _beside(db, reader, idle, url, args, f"live-{name}-{where}", limits)
    reader.done.set()
    reader.join()
    publisher.stop()
    return out


def _beside(
    db: reeldb.Database,
    reader: Reader,
    idle: dict[str, Any],
    url: str,
    args: argparse.Namespace,
    name: str,
    limits: dict[str, Any],
) -> dict[str, Any]:
    """The reader's latency while a backfill job runs in a worker process, or a thread."""
    job = db.reprocess.submit(
        spec(
            name,
            {"kind": "backfill", "function": FUNCTION, "options": {"value": name}},
            args,
            batch=args.live_batch,
            concurrency=args.concurrency,  # not --workers: one runner
            **limits,
        )
    )
    stop = threading.Event()
    worker: subprocess.Popen[bytes] | None = None
    runner: threading.Thread | None = None
    if name.endswith("-process"):
        worker = subprocess.Popen(
            [sys.executable, "-m", "reeldb", "reprocess", "work", str(job.id)]
            + ["--threads", str(args.concurrency), "--worker", name],
            env={**_helper_env(), "REELDB_DATABASE": url},
            stdout=subprocess.DEVNULL,
        )
    else:
        runner = threading.Thread(target=lambda: db.reprocess.run(job.id, stop=stop), daemon=True)
        runner.start()
    deadline = time.monotonic() + 60
    while not db.reprocess.get(job.id).progress.done:  # the job got going
        assert time.monotonic() < deadline, f"job {name} made no progress"
        time.sleep(0.05)
    before = db.reprocess.get(job.id).progress.done
    started = time.perf_counter()
    measured = percentiles(reader.window(args.live_seconds), 3)
    after = db.reprocess.get(job.id)
    done = after.progress.done - before
    rate = done / (time.perf_counter() - started)
    # A job that ended inside the window left part of it idle: its rise is not judged.
    ended = after.finished
    if worker is not None:
        worker.send_signal(signal.SIGINT)
        worker.wait()
    if runner is not None:
        stop.set()
        runner.join()
    if not db.reprocess.get(job.id).finished:
        db.reprocess.cancel(job.id)
    rise = measured["p99_ms"] / idle["p99_ms"] - 1 if idle["p99_ms"] else None
    return {
        **measured,
        "p99_rise": None if rise is None else round(rise, 3),
        "job_items_per_s": round(rate),
        "job_ended_in_window": ended,
    }


# -- the run -------------------------------------------------------------------------------


def run(backend: str, url: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "annotations": args.count}
    with reeldb.connect(url) as db:
        out["load"], sample = load(db, args.count, args.videos)
        out["export_iceberg"] = export(db, work, args)
        out |= jobs(db, url, args)
        raw = SQLiteBaseline(work / "reel.db") if backend == "sqlite" else PostgresBaseline(url)
        out["baselines"] = baselines(raw, args)
        base = out["baselines"]
        for job, baseline in (
            ("reindex", "read"),
            ("reindex", "update"),
            ("backfill", "backfill"),
        ):
            mine = out[job]
            mine[f"vs_raw_{baseline}"] = round(
                base[f"raw_{baseline}_per_s"] / mine["items_per_s"], 2
            )
            cpu = base[f"raw_{baseline}_per_cpu_s"]
            if cpu and mine["items_per_cpu_s"]:
                mine[f"vs_raw_{baseline}_cpu"] = round(cpu / mine["items_per_cpu_s"], 2)
        out["live_reads"] = live(db, sample, url, args)
    return out


def targets(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    def met(r: dict[str, Any]) -> dict[str, Any]:
        adaptive = r["live_reads"]["adaptive"]
        rise = None if adaptive["job_ended_in_window"] else adaptive["p99_rise"]
        return {
            "reindex_items_per_s_at_least_50k": r["reindex"]["items_per_s"] >= TARGET_PER_S,
            "backfill_items_per_s_at_least_50k": r["backfill"]["items_per_s"] >= TARGET_PER_S,
            "live_p99_rise_below_25pct_adaptive": None if rise is None else rise < TARGET_RISE,
            "export_1m_below_10s": (
                r["export_iceberg"]["seconds"] < TARGET_EXPORT_S
                if args.count >= TARGET_EXPORT_COUNT
                else None
            ),
        }

    return {backend: met(r) for backend, r in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="annotations")
    parser.add_argument("--videos", type=int, default=None, help="default: count / 1000")
    parser.add_argument("--batch", type=int, default=5000, help="items per job batch")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1, help="threads per job")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes running the reindex and backfill jobs"
    )
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument(
        "--in-thread",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the live reads beside the jobs in a thread of this process",
    )
    parser.add_argument(
        "--live-batch", type=int, default=500, help="batch of the jobs beside live reads"
    )
    parser.add_argument(
        "--budget-ms", type=float, default=None, help="adaptive budget (default: 1.2 x idle p99)"
    )
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument("--postgres", default=POSTGRES_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if args.videos is None:
        args.videos = max(1, args.count // 1000)
    results = each_backend(
        args.backends, args.tmpdir, args.postgres, lambda b, url, work: run(b, url, work, args)
    )
    side_by_side = {
        backend: {
            "reindex_per_s": r["reindex"]["items_per_s"],
            "backfill_per_s": r["backfill"]["items_per_s"],
            "export_s": r["export_iceberg"]["seconds"],
            "idle_p99_ms": r["live_reads"]["idle"]["p99_ms"],
            "adaptive_p99_ms": r["live_reads"]["adaptive"]["p99_ms"],
            "unlimited_p99_ms": r["live_reads"]["unlimited"]["p99_ms"],
            **(
                {
                    "in_thread_adaptive_p99_ms": r["live_reads"]["in_thread"]["adaptive"]["p99_ms"],
                    "in_thread_unlimited_p99_ms": r["live_reads"]["in_thread"]["unlimited"][
                        "p99_ms"
                    ],
                }
                if "in_thread" in r["live_reads"]
                else {}
            ),
        }
        for backend, r in results.items()
    }
    print(
        json.dumps(
            {
                "benchmark": "reprocess",
                **environment(),
                "sizes": {
                    "annotations": args.count,
                    "videos": args.videos,
                    "batch": args.batch,
                    "partitions": args.partitions,
                    "concurrency": args.concurrency,
                    "workers": args.workers,
                    "live_seconds": args.live_seconds,
                    "live_batch": args.live_batch,
                },
                "backends": results,
                "side_by_side": side_by_side,
                "targets": targets(results, args),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
