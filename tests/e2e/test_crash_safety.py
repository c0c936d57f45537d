"""Crash safety: SIGKILL a writer mid-stream; every acknowledged document survives, whole.

A child process writes documents forever (single writes and batches of 5) and appends the
DocumentIDs the database returned to an fsync'ed acknowledgement file. The test kills it at a
random moment, reopens the database and checks that every acknowledged document is readable
with exactly the content written, that no partial document or partial batch exists, and that
at most the one write in flight when the process died is stored without an acknowledgement.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reeldb
from reeldb.testing import FACE_DETECTION

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL and select()")

DATASTORE = "vision/face_detection/1"
BATCH = 5
KILLS = 3
MIN_ACKS_PER_RUN = 30
RUN_STRIDE = 1_000_000
TIMEOUT = 30.0


# Shared by the child (prepended to its script) and the parent (which recomputes what the
# child wrote): a document is a pure function of its counter ``n`` and its title.
DOCUMENTS_CODE = """
def mid_for(n):
    return {"title_id": f"title-{n % 10}", "video_stream_id": "vs-1080p-01"}


def make_document(n, title):
    return {
        "asset": {"title": title},
        "tracks": [
            {
                "kind": "video",
                "frame_rate": "24000/1001",
                "components": [
                    {
                        "algorithm": f"detector-{n}",
                        "events": [
                            {
                                "time_range": {"start": i, "end": i + 0.5},
                                "label": f"face-{n}-{i}",
                                "confidence": (n + i) % 100 / 100,
                                "regions": [
                                    {
                                        "bounding_box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4},
                                        "person": f"person-{(n * 7 + i) % 13}",
                                    }
                                ],
                            }
                            for i in range(150 + n % 100)
                        ],
                    }
                ],
            }
        ],
    }
"""

WRITER_CODE = """
import os
import sys

import reeldb

url, ack_path, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = run * 1_000_000
ready = False
with reeldb.connect(url) as db, open(ack_path, "a", encoding="utf-8") as acks:
    while True:
        if n % 3 == 2:
            title = f"batch-{n}-of-5"
            numbers = range(n, n + 5)
            docs = db.put_documents(
                "vision/face_detection/1",
                [(mid_for(k), make_document(k, title)) for k in numbers],
            )
        else:
            title = f"single-{n}"
            numbers = range(n, n + 1)
            docs = [db.put_document("vision/face_detection/1", mid_for(n), make_document(n, title))]
        # Acknowledged: the call returned. Only now record the IDs, durably.
        acks.write("".join(f"{doc.id} {k} {title}\\n" for doc, k in zip(docs, numbers)))
        acks.flush()
        os.fsync(acks.fileno())
        if not ready:
            print("ready", flush=True)
            ready = True
        n += len(numbers)
"""

SCRIPT = DOCUMENTS_CODE + WRITER_CODE

_helpers: dict[str, Any] = {}
exec(DOCUMENTS_CODE, _helpers)
mid_for = _helpers["mid_for"]
make_document = _helpers["make_document"]


def _setup(url: str) -> None:
    with reeldb.connect(url) as db:
        db.create_namespace("vision", admins=["user:alice"])
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore(
            DATASTORE, mid_keys=["title_id", "video_stream_id"], schema="face_detection"
        )


def _read_acks(path: Path) -> list[tuple[str, int, str]]:
    """The acknowledged writes; a last line cut short by the kill is ignored."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # the piece after the last newline is incomplete (or "")
    acks = []
    for line in lines:
        doc_id, n, title = line.split(" ")
        acks.append((doc_id, int(n), title))
    return acks


def _stderr(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-4000:]


@contextlib.contextmanager
def _writer(url: str, ack_path: Path, run: int, stderr_path: Path) -> Iterator[subprocess.Popen]:
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, url, str(ack_path), str(run)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=TIMEOUT)
        assert proc.stdout is not None
        proc.stdout.close()


def _wait_ready(proc: subprocess.Popen, stderr_path: Path, deadline: float) -> None:
    assert proc.stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"writer not ready in time; stderr:\n{_stderr(stderr_path)}")
        readable, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.5))
        if readable:
            line = proc.stdout.readline()
            if line == b"ready\n":
                return
            pytest.fail(f"writer said {line!r}; stderr:\n{_stderr(stderr_path)}")
        if proc.poll() is not None:
            pytest.fail(f"writer exited with {proc.returncode}; stderr:\n{_stderr(stderr_path)}")


def _wait_for_acks(
    proc: subprocess.Popen, ack_path: Path, count: int, stderr_path: Path, deadline: float
) -> None:
    while len(_read_acks(ack_path)) < count:
        if proc.poll() is not None:
            pytest.fail(f"writer exited with {proc.returncode}; stderr:\n{_stderr(stderr_path)}")
        if time.monotonic() > deadline:
            pytest.fail(f"fewer than {count} acknowledgements in time")
        time.sleep(0.01)


def _integrity_check(db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _verify(url: str, acks: list[tuple[str, int, str]], runs: int) -> int:
    """Check the reopened database against the acknowledgements; return the stored count."""
    with reeldb.connect(url) as db:
        ds = db.get_datastore(DATASTORE)
        schema = db.get_schema("vision", "face_detection", ds.schema_version)
        validators = db.schemas.document_validators(schema)

        # Every acknowledged document is readable, byte-complete and what the child wrote.
        for doc_id, n, title in acks:
            doc = db.get_document(doc_id, datastore=DATASTORE)
            assert str(doc.id) == doc_id
            assert doc.mid == mid_for(n)
            assert json.loads(doc.body) == make_document(n, title), doc_id
        assert len({doc_id for doc_id, _, _ in acks}) == len(acks)
        stored_count = db.count_documents(DATASTORE)
        assert stored_count >= len(acks)

        # Every stored document is complete and valid; batches are all-or-nothing.
        stored: dict[str, int] = {}
        per_title: collections.Counter[str] = collections.Counter()
        for record in db.store.iter_documents(ds.id):
            data = json.loads(record.body)
            assert record.size == len(record.body)
            assert all(v.is_valid(data) for v in validators), record.id
            title = data["asset"]["title"]
            n = int(data["tracks"][0]["components"][0]["algorithm"].removeprefix("detector-"))
            assert data == make_document(n, title), record.id
            assert json.loads(record.mid_key) == mid_for(n)
            assert str(record.id) not in stored
            stored[str(record.id)] = n
            per_title[title] += 1
        assert len(stored) == stored_count
        for title, count in per_title.items():
            expected = BATCH if title.startswith("batch-") else 1
            assert count == expected, f"{title}: {count} documents stored"

        # Nothing acknowledged is missing, and per run at most the one call in flight at the
        # kill (the newest) is stored without an acknowledgement.
        acked = {doc_id for doc_id, _, _ in acks}
        assert acked <= stored.keys()
        for run in range(runs):
            low, high = run * RUN_STRIDE, (run + 1) * RUN_STRIDE
            run_acked = [n for _, n, _ in acks if low <= n < high]
            assert run_acked, f"run {run} acknowledged nothing"
            unacked = sorted(n for i, n in stored.items() if low <= n < high and i not in acked)
            assert len(unacked) <= BATCH, unacked
            assert all(n > max(run_acked) for n in unacked), unacked
        return stored_count


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_document(tmp_path: Path) -> None:
    db_path = tmp_path / "reel.db"
    url = f"sqlite:///{db_path}"
    ack_path = tmp_path / "acks.txt"
    _setup(url)
    rng = random.Random(20261123)
    stored_before = 0
    for run in range(KILLS):
        stderr_path = tmp_path / f"writer-{run}.err"
        deadline = time.monotonic() + TIMEOUT
        target = len(_read_acks(ack_path)) + MIN_ACKS_PER_RUN
        with _writer(url, ack_path, run, stderr_path) as proc:
            _wait_ready(proc, stderr_path, deadline)
            _wait_for_acks(proc, ack_path, target, stderr_path, deadline)
            time.sleep(rng.uniform(0, 0.2))
            assert proc.poll() is None, _stderr(stderr_path)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
        _integrity_check(db_path)
        acks = _read_acks(ack_path)
        assert len(acks) >= target
        stored = _verify(url, acks, run + 1)
        assert stored > stored_before  # the restarted writer continued the stream
        stored_before = stored
    _integrity_check(db_path)
