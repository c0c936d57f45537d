"""Reprocessing beside live traffic: catch-up rounds, dead letters and retry, two workers.

* While a snapshot job with ``catch_up`` runs (slowed by its rate), a thread creates and
  updates annotations and writes documents: afterwards every item written during the run
  was processed, and none twice (one job version per annotation). Without ``catch_up``,
  what was created after the snapshot is left alone.
* Items whose function fails are retried with back-off, then become dead letters; once the
  cause is fixed, a retry processes them and the letters are gone.
* Two workers (threads, or processes on SQLite file and PostgreSQL) share one job: every
  partition is done once, each item written once, and both workers took partitions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reprocess_support import (
    DS,
    NS,
    add_documents,
    add_tags,
    history,
    latest_documents,
    setup,
)

import reeldb
from reeldb.errors import VersionConflictError
from reeldb.reprocess import Job

HERE = Path(__file__).parent
FN = "reprocess_functions:"


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # reported by the test
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _result(thread: threading.Thread, out: list[Any]) -> Any:
    thread.join(timeout=120)
    assert not thread.is_alive()
    [value] = out
    if isinstance(value, BaseException):
        raise value
    return value


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _update_label(db: reeldb.Database, ident: str, label: str) -> None:
    """A live update that keeps every other field (so a job's ``source`` stays)."""
    while True:
        current = db.annotations.get(NS, ident)
        try:
            db.annotations.update(
                NS,
                ident,
                expected_version=current.version,
                data={**current.data, "label": label},
            )
            return
        except VersionConflictError:  # the job wrote it meanwhile
            continue


# -- catch-up -------------------------------------------------------------------------------


def test_catch_up_processes_every_live_write_once(rdb: reeldb.Database, tmp_path: Path) -> None:
    db = rdb
    snapshot = add_tags(db, [f"old {n}" for n in range(60)])
    # Catch-up windows reach `catch_up_grace` back (late commits): older than that, the
    # snapshot's annotations are met once.
    time.sleep(0.6)
    log = tmp_path / "calls.log"
    log.touch()
    spec = {
        "name": "live",
        "source": {
            "namespace": NS,
            "annotation_type": "TAG",
            "catch_up": True,
            "catch_up_grace": 0.5,
        },
        "processor": {
            "kind": "backfill",
            "function": FN + "logged_source",
            "options": {"log": str(log)},
        },
        "limits": {"partitions": 4, "batch": 5, "rate": 30},
    }
    job = db.reprocess.submit(spec)
    runner, result = _in_thread(lambda: db.reprocess.run(job.id))
    created: list[str] = []
    updated_early, updated_late = snapshot[40:50], snapshot[:10]

    # Before the job wrote anything, and after it processed the first items: new annotations,
    # updates of items it has not reached yet, and of items it has already written.
    for ident in updated_early:
        _update_label(db, ident, "changed early")
    created += add_tags(db, [f"new {n}" for n in range(10)])
    _wait_for(lambda: db.reprocess.get(job.id).progress.done >= 15, "the job's first batches")
    for ident in updated_late:
        _update_label(db, ident, "changed late")
    created += add_tags(db, [f"newer {n}" for n in range(10)])
    assert db.reprocess.get(job.id).round == 0  # all of it while the snapshot round ran

    done: Job = _result(runner, result)
    assert done.state == "done" and done.round >= 1
    after = history(db)
    principal = f"job:{job.id}"
    for ident in [*snapshot, *created]:
        versions = after[ident]
        by_job = [v for v in versions if v[1] == principal]
        assert len(by_job) == 1, (ident, versions)  # processed, and not twice
        assert versions[-1][2]["source"] == "job"
    for ident in updated_early + updated_late:
        assert after[ident][-1][2]["label"].startswith("changed")
    # The function met each annotation nobody touched exactly once: once in the snapshot.
    calls = Counter(line.split()[0] for line in log.read_text().splitlines())
    untouched = set(snapshot) - set(updated_early) - set(updated_late)
    assert {calls[ident] for ident in untouched} == {1}
    assert all(calls[ident] >= 1 for ident in created)
    assert done.progress.failed == 0


def test_catch_up_on_documents_processes_documents_written_during_the_run(
    mdb: reeldb.Database,
) -> None:
    db = mdb
    add_documents(db, 30, mids=15)
    spec = {
        "name": "live documents",
        "source": {"namespace": NS, "datastore": DS, "catch_up": True},
        "processor": {"kind": "backfill", "function": FN + "upper_title"},
        "limits": {"partitions": 4, "batch": 3, "rate": 30},
    }
    job = db.reprocess.submit(spec)
    runner, result = _in_thread(lambda: db.reprocess.run(job.id))
    _wait_for(lambda: db.reprocess.get(job.id).progress.done >= 6, "the job's first batches")
    add_documents(db, 10, mids=40, first=15)  # MIDs t15..t24: new ones
    assert db.reprocess.get(job.id).round == 0
    done: Job = _result(runner, result)
    assert done.state == "done" and done.round >= 1
    latest = latest_documents(db)
    assert len(latest) == 25
    assert all(d["asset"]["title"] == d["asset"]["title"].upper() for d in latest.values())
    # One job version per MID: 40 documents written, 25 MIDs, each changed once.
    assert db.count_documents(DS) == 40 + 25


def test_without_catch_up_later_items_are_left_alone(mdb: reeldb.Database) -> None:
    db = mdb
    old = add_tags(db, [f"old {n}" for n in range(20)])
    spec = {
        "name": "snapshot only",
        "source": {"namespace": NS, "annotation_type": "TAG"},
        "processor": {"kind": "backfill", "function": FN + "add_source"},
        "limits": {"partitions": 3, "batch": 4, "rate": 60},
    }
    job = db.reprocess.submit(spec)
    later = add_tags(db, [f"later {n}" for n in range(8)])  # after the snapshot
    add_documents(db, 4, mids=4)
    done = db.reprocess.run(job.id)
    assert done.state == "done" and done.round == 0 and done.progress.done == 20
    after = history(db)
    assert all(len(after[i]) == 2 for i in old)
    assert all(len(after[i]) == 1 for i in later)


# -- dead letters ---------------------------------------------------------------------------


def test_failing_items_become_dead_letters_and_a_retry_clears_them(
    rdb: reeldb.Database, tmp_path: Path
) -> None:
    db = rdb
    labels = [f"bad {n}" if n % 5 == 0 else f"ok {n}" for n in range(25)]
    ids = dict(zip(labels, add_tags(db, labels), strict=True))
    flag, log = tmp_path / "fixed", tmp_path / "failures.log"
    spec = {
        "name": "flaky",
        "source": {"namespace": NS, "annotation_type": "TAG"},
        "processor": {
            "kind": "backfill",
            "function": FN + "flaky_source",
            "options": {"flag": str(flag), "log": str(log)},
        },
        "limits": {"partitions": 3, "batch": 4, "max_attempts": 3, "backoff": 0.05},
    }
    job = db.reprocess.run(db.reprocess.submit(spec).id)
    assert job.state == "done"
    bad = sorted(ids[label] for label in labels if label.startswith("bad"))
    assert (job.progress.changed, job.progress.failed) == (20, 5)
    letters = db.reprocess.dead_letters(job.id)
    assert [d.item for d in letters] == bad
    assert all(d.attempts == 3 and d.state == "dead" for d in letters)
    assert all("RuntimeError: cannot derive the source" in d.error for d in letters)
    # Three attempts each, spaced by the back-off (0.05 s, then 0.1 s; jitter 0.5 to 1.5).
    attempts: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        label, at = line.rsplit(" ", 1)
        attempts.setdefault(label, []).append(float(at))
    assert sorted(attempts) == sorted(label for label in labels if label.startswith("bad"))
    for times in attempts.values():
        assert len(times) == 3
        assert times[1] - times[0] >= 0.025 and times[2] - times[1] >= 0.05
    assert all(len(history(db)[i]) == 1 for i in bad)

    # Retry before the cause is fixed: they fail again and stay dead letters.
    assert db.reprocess.retry(job.id) == 5
    again = db.reprocess.run(job.id)
    assert again.state == "done"
    assert [d.item for d in db.reprocess.dead_letters(job.id)] == bad
    assert db.reprocess.retry(job.id) == 5

    # Fixed: the retry succeeds and the letters are gone.
    flag.touch()
    fixed = db.reprocess.run(job.id)
    assert fixed.state == "done"
    assert db.reprocess.dead_letters(job.id) == []
    assert db.reprocess.retry(job.id) == 0
    after = history(db)
    assert all(len(after[i]) == 2 and after[i][1][2]["source"] == "job" for i in ids.values())
    kinds = Counter(p.kind for p in fixed.partitions)
    assert kinds == {"range": 3, "retry": 2}


def test_a_retried_letter_whose_annotation_was_deleted_is_resolved(mdb: reeldb.Database) -> None:
    db = mdb
    spec = {
        "name": "bad migration",
        "source": {"namespace": NS, "annotation_type": "BOUNDING_BOX"},
        "processor": {"kind": "migrate", "function": FN + "bad_label", "target_version": 1},
        "limits": {"partitions": 2, "batch": 2},
    }
    from reprocess_support import add_boxes

    boxes = add_boxes(db, 6)
    job = db.reprocess.run(db.reprocess.submit(spec).id)
    assert [d.item for d in db.reprocess.dead_letters(job.id)] == sorted(boxes[1::2])
    for ident in boxes[1::2]:
        db.annotations.delete(NS, ident)
    assert db.reprocess.retry(job.id) == 3
    done = db.reprocess.run(job.id)
    assert done.state == "done" and db.reprocess.dead_letters(job.id) == []


# -- two workers ----------------------------------------------------------------------------


def _scale_spec() -> dict[str, Any]:
    return {
        "name": "shared",
        "source": {"namespace": NS, "annotation_type": "TAG"},
        "processor": {
            "kind": "backfill",
            "function": FN + "add_source",
            "options": {"sleep": 0.01},
        },
        "limits": {"partitions": 8, "batch": 4, "concurrency": 4},
    }


def _check_shared_run(db: reeldb.Database, job_id: Any, tags: list[str]) -> None:
    done = db.reprocess.get(job_id)
    assert done.state == "done"
    assert done.progress.partitions_done == done.progress.partitions == 8
    assert done.progress.done == len(tags)  # no partition processed twice to completion
    after = history(db)
    assert all(len(after[t]) == 2 and after[t][1][1] == f"job:{job_id}" for t in tags)


def test_two_worker_threads_share_a_job(mdb: reeldb.Database) -> None:
    db = mdb
    tags = add_tags(db, [f"t{n}" for n in range(64)])
    job = db.reprocess.submit(_scale_spec())
    held: dict[str, set[int]] = {"alpha": set(), "beta": set()}

    def runner(name: str) -> Callable[[], Job]:
        def seen(j: Job) -> None:
            held[name].update(
                p.number for p in j.partitions if (p.owner or "").rpartition(":")[0] == name
            )

        return lambda: db.reprocess.run(job.id, worker=name, threads=2, progress=seen)

    threads = [_in_thread(runner(name)) for name in held]
    for thread, out in threads:
        assert _result(thread, out).state == "done"
    _check_shared_run(db, job.id, tags)
    assert held["alpha"] and held["beta"]


@pytest.mark.slow
def test_two_worker_processes_share_a_job(shared_url: str, tmp_path: Path) -> None:
    with reeldb.connect(shared_url) as db:
        setup(db)
        tags = add_tags(db, [f"t{n}" for n in range(64)])
        job = db.reprocess.submit(_scale_spec())
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
        go = tmp_path / "go"
        workers = {
            name: subprocess.Popen(
                [sys.executable, str(HERE / "reprocess_worker.py"), shared_url, str(job.id)]
                + [name, "2", "30", str(go)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("alpha", "beta")
        }
        for worker in workers.values():  # both are up before either starts
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        go.touch()
        reports = {}
        for name, worker in workers.items():
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            reports[name] = json.loads(out.splitlines()[-1])
        assert all(r["state"] == "done" for r in reports.values())
        assert reports["alpha"]["held"] and reports["beta"]["held"], reports
        _check_shared_run(db, job.id, tags)


def test_a_write_committed_after_its_window_was_scanned_is_still_caught_up(
    mdb: reeldb.Database,
) -> None:
    db = mdb
    tags = add_tags(db, [f"t{n}" for n in range(6)])
    spec = {
        "name": "late commit",
        "source": {
            "namespace": NS,
            "annotation_type": "TAG",
            "catch_up": True,
            "catch_up_grace": 0.5,
        },
        "processor": {"kind": "backfill", "function": FN + "add_source"},
        "limits": {"partitions": 1, "batch": 1, "concurrency": 1},
    }
    job = db.reprocess.submit(spec)
    late: list[Any] = []

    def interleave(seen: Job) -> None:
        if seen.round == 0 and not late:
            # The job wrote tags[0]; a live update of it is prepared (stamped) now, and
            # another annotation is updated (committed) now.
            current = db.annotations.get(NS, tags[0])
            late.append(
                db.annotations.prepare_update(
                    NS, tags[0], expected_version=current.version, data={"label": "late"}
                )
            )
            _update_label(db, tags[5], "live")
        elif seen.round == 1 and len(late) == 1:
            # The catch-up round has walked past tags[0]: the update commits now, while the
            # job still runs.
            [result] = db.annotations.commit(late)
            assert not isinstance(result, Exception)
            late.append(result)

    done = db.reprocess.run(job.id, threads=1, progress=interleave)
    assert done.state == "done" and len(late) == 2
    assert db.annotations.get(NS, tags[0]).data == {"label": "late", "source": "job"}
