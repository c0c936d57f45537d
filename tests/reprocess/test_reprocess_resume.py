"""Crash and resume: a worker killed with SIGKILL mid-job, then a restart, on SQLite file and
PostgreSQL; the final output equals a clean run's output exactly.

The worker is a subprocess (``reprocess_worker.py``) running a job whose function sleeps a
little per item; it is killed once some partitions have checkpoints and others are under
way. Its leases are short (2 s), so the restart takes its partitions over soon after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from reprocess_support import NS, add_tags, history, setup

import reeldb
from reeldb.reprocess import read_rows

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
FN = "reprocess_functions:"
ITEMS = 120
LIMITS = {"partitions": 6, "batch": 4, "concurrency": 2}


def _spec(processor: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "name": "crash",
        "source": {"namespace": NS, "annotation_type": "TAG"},
        "processor": processor,
        "limits": LIMITS,
        **more,
    }


BACKFILL = _spec({"kind": "backfill", "function": FN + "add_source", "options": {"sleep": 0.01}})


def _custom(out: Path) -> dict[str, Any]:
    processor = {"kind": "custom", "function": FN + "tag_row", "options": {"sleep": 0.01}}
    return _spec(processor, sink={"kind": "jsonl", "path": str(out)})


def _worker(url: str, job_id: str, name: str = "w") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(HERE / "reprocess_worker.py"), url, job_id, name, "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_mid_job(db: reeldb.Database, url: str, job_id: str) -> None:
    """Run the job in a worker and SIGKILL it once a quarter of the items are checkpointed
    and a partition is half done."""
    worker = _worker(url, job_id)
    deadline = time.monotonic() + 60

    def far_enough() -> bool:
        job = db.reprocess.get(job_id)
        half_done = any(p.state == "running" and p.done for p in job.partitions)
        return job.progress.done >= ITEMS // 4 and half_done

    try:
        while not far_enough():
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(timeout=30)
        worker.communicate()
    assert worker.returncode == -signal.SIGKILL
    killed = db.reprocess.get(job_id)
    assert killed.state == "running"
    assert ITEMS // 4 <= killed.progress.done < ITEMS  # stopped half way
    # A partition it held is left behind with its lease and checkpoint.
    assert any(p.state == "running" and p.owner and p.done for p in killed.partitions)


def _labels() -> list[str]:
    return [f"crash {n:03d}" for n in range(ITEMS)]


def _by_label(db: reeldb.Database) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Each annotation's versions (type version, data) by its first label: comparable across
    databases (ids differ)."""
    return {
        versions[0][2]["label"]: [(tv, data) for tv, _, data in versions]
        for versions in history(db).values()
    }


def _clean(spec: dict[str, Any]) -> reeldb.Database:
    db = reeldb.connect("memory:")
    setup(db)
    add_tags(db, _labels())
    job = db.reprocess.run(db.reprocess.submit(spec).id)
    assert job.state == "done"
    return db


def test_a_killed_backfill_resumes_without_writing_anything_twice(shared_url: str) -> None:
    with _clean(BACKFILL) as clean:
        want = _by_label(clean)
    assert all(len(v) == 2 for v in want.values())
    with reeldb.connect(shared_url) as db:
        setup(db)
        add_tags(db, _labels())
        job = db.reprocess.submit(BACKFILL)
        _kill_mid_job(db, shared_url, str(job.id))
        resumed = db.reprocess.run(job.id)
        assert resumed.state == "done"
        # Checkpointed work is not done again: each item counted once, and as changed (a
        # batch written before the kill but not checkpointed is found done by the job).
        assert resumed.progress.done == resumed.progress.changed == ITEMS
        assert resumed.progress.partitions_done == resumed.progress.partitions
        # Exactly the clean run's output: one job version per annotation (2, never 3).
        assert _by_label(db) == want
        authors = {by for versions in history(db).values() for _, by, _ in versions[1:]}
        assert authors == {f"job:{job.id}"}


def test_a_killed_file_export_resumes_without_duplicate_rows(
    shared_url: str, tmp_path: Path
) -> None:
    with _clean(_custom(tmp_path / "clean")) as clean:
        [clean_job] = clean.reprocess.list_jobs()
        want = read_rows(tmp_path / "clean" / str(clean_job.id))
    assert len(want) == ITEMS
    out = tmp_path / "out"
    with reeldb.connect(shared_url) as db:
        setup(db)
        add_tags(db, _labels())
        job = db.reprocess.submit(_custom(out))
        _kill_mid_job(db, shared_url, str(job.id))
        resumed = db.reprocess.run(job.id)
        assert resumed.state == "done" and resumed.progress.done == ITEMS
        rows = read_rows(out / str(job.id))

    def comparable(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return sorted((row["label"], row["version"]) for row in rows)

    assert comparable(rows) == comparable(want)  # no row twice, none missing
    assert len({row["id"] for row in rows}) == ITEMS
