"""Crash safety of asynchronous writes: SIGKILL the worker during validation, persistence and
indexing of a large document; after a restart the request completes exactly once.

A worker process (``reeldb worker --name crash``) runs one write request of a document of
some hundred thousand regions. The test watches it (the DBOS workflow started but the request
still ``PENDING``: validating; ``VALIDATED``: persisting; rows staged but not all: indexing)
and kills it there with SIGKILL, checking meanwhile that the document is never visible in
part. A worker restarted with the same name resumes the workflow at the step that was
running; the request ends ``INDEXED`` with one DocumentID, every index row exactly once.
"""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import reeldb
from reeldb.model.requests import WriteState
from reeldb.testing import FACE_DETECTION

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL"),
]

DS = "vision/face_detection/1"
MID = {"title_id": "crash", "video_stream_id": "v"}
EVENTS = 12_000
REGIONS = 10
TIMEOUT = 60.0


def _document() -> dict[str, Any]:
    events = [
        {
            "time_range": {"start": e / 25, "end": (e + 1) / 25},
            "label": "face" if e % 3 else "car",
            "confidence": 0.5,
            "regions": [
                {"bounding_box": {"x": r / 20, "y": 0.1, "w": 0.05, "h": 0.05}, "person": f"p{r}"}
                for r in range(REGIONS)
            ],
        }
        for e in range(EVENTS)
    ]
    return {
        "asset": {"title": "a long film"},
        "tracks": [{"kind": "video", "components": [{"algorithm": "det", "events": events}]}],
    }


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reeldb", "-d", url, "worker", "--name", "crash"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "REELDB_INDEX_CHUNK_BYTES": str(256 * 1024)},
        )


def _workflow_started(workflows: Path, request_id: str) -> bool:
    if not workflows.exists():
        return False
    try:
        with sqlite3.connect(workflows, timeout=1) as conn:
            row = conn.execute(
                "SELECT status FROM workflow_status WHERE workflow_uuid = ?", (request_id,)
            ).fetchone()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "PENDING"


def _never_partial(db: reeldb.Database, regions: int) -> None:
    """If the document is visible, all of it is: its every region is indexed."""
    page = db.query_datastore(DS, 'region.person = "p3"')
    if page.items:
        found = db.query_document(page.items[0].id, 'event.label = "car"', limit=1)
        assert found.total is None or found.total == EVENTS // 3 + (EVENTS % 3 > 0)
        assert db.count_documents(DS) == 1


@pytest.mark.parametrize("phase", ["validating", "persisting", "indexing"])
def test_a_killed_worker_completes_the_write_exactly_once(tmp_path: Path, phase: str) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    workflows = tmp_path / "reel-workflows.db"
    log = tmp_path / "worker.log"
    with reeldb.connect(url) as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore(DS, mid_keys=["title_id", "video_stream_id"], schema="face_detection")
        body = orjson.dumps(_document())
        blob = db.blobs.put("vision", (body[i : i + 65536] for i in range(0, len(body), 65536)))
        request, _ = db.submit_write(DS, MID, blob=blob.id)
        rid = str(request.id)

        def ingest_progress() -> tuple[int, int] | None:
            try:
                state = db.store.get_ingest(request.id)
            except reeldb.NotFoundError:
                return None
            return state.rows_done, state.rows

        conditions: dict[str, Callable[[], bool]] = {
            "validating": lambda: (
                db.get_write_request(rid).state is WriteState.PENDING
                and _workflow_started(workflows, rid)
            ),
            "persisting": lambda: db.get_write_request(rid).state is WriteState.VALIDATED,
            "indexing": lambda: (p := ingest_progress()) is not None and 0 < p[0] < p[1],
        }
        worker = _worker(url, log)
        try:
            deadline = time.monotonic() + TIMEOUT
            while not conditions[phase]():
                _never_partial(db, EVENTS * REGIONS)
                assert worker.poll() is None, log.read_text()
                assert db.get_write_request(rid).state is not WriteState.INDEXED, (
                    f"the write finished before it could be killed while {phase}"
                )
                assert time.monotonic() < deadline, f"never saw the worker {phase}"
                time.sleep(0.002)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            killed_at = db.get_write_request(rid).state
            _never_partial(db, EVENTS * REGIONS)
            if killed_at is not WriteState.INDEXED:
                assert db.count_documents(DS) == 0
            worker = _worker(url, log)
            done = db.wait_write_request(rid, timeout=TIMEOUT)
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=30)
        assert done.state is WriteState.INDEXED, (done.error, log.read_text())
        # Exactly once: one document, its rows indexed once, no staged leftovers.
        assert db.count_documents(DS) == 1
        [listed] = db.list_documents(DS, MID).items
        assert listed.id == done.document_id
        assert db.get_document(done.document_id).data == orjson.loads(body)
        ingest = db.store.get_ingest(request.id)
        assert ingest.state == "published"
        assert ingest.rows_done == ingest.rows == EVENTS * REGIONS
        [generation] = db.index_status(DS)
        person = next(
            c.index for c in generation.columns if (c.level, c.name) == ("region", "person")
        )
    with sqlite3.connect(tmp_path / "reel.db") as conn:
        [[gid]] = conn.execute("SELECT generation_id FROM index_docs").fetchall()
        assert gid == generation.id
        rows = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM ix{gid}_rows")
        assert rows.fetchone() == (EVENTS * REGIONS, EVENTS * REGIONS)
        assert conn.execute(f"SELECT count(*) FROM ix{gid}_time").fetchone()[0] == EVENTS
        found = conn.execute(f"SELECT count(*) FROM ix{gid}_rows WHERE v{person} = 'p3'")
        assert found.fetchone()[0] == EVENTS


def test_two_workers_share_the_queue_and_write_each_request_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    log = tmp_path / "workers.log"
    with reeldb.connect(url) as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore(DS, mid_keys=["title_id", "video_stream_id"], schema="face_detection")
        small = {
            "asset": {"title": "short"},
            "tracks": [{"kind": "video", "components": [{"algorithm": "det", "events": []}]}],
        }
        requests = [
            db.submit_write(DS, {"title_id": f"t{i}", "video_stream_id": "v"}, document=small)[0]
            for i in range(12)
        ]
        with log.open("ab") as out:
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "reeldb", "-d", url, "worker", "--name", name],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                for name in ("one", "two")
            ]
        try:
            done = [db.wait_write_request(r.id, timeout=TIMEOUT) for r in requests]
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGINT)
            for worker in workers:
                worker.wait(timeout=30)
        assert [d.state for d in done] == [WriteState.INDEXED] * len(requests), log.read_text()
        assert db.count_documents(DS) == len(requests)
        assert len({d.document_id for d in done}) == len(requests)
    with sqlite3.connect(tmp_path / "reel-workflows.db") as conn:
        owners = dict(
            conn.execute(
                "SELECT executor_id, count(*) FROM workflow_status GROUP BY executor_id"
            ).fetchall()
        )
    assert sum(owners.values()) == len(requests)
    assert set(owners) <= {"one", "two"}


def test_a_worker_that_never_comes_back_is_taken_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    log = tmp_path / "workers.log"
    with reeldb.connect(url) as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore(DS, mid_keys=["title_id", "video_stream_id"], schema="face_detection")
        body = orjson.dumps(_document())
        blob = db.blobs.put("vision", [body])
        request, _ = db.submit_write(DS, MID, blob=blob.id)

        def start(name: str) -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return subprocess.Popen(
                    [sys.executable, "-m", "reeldb", "-d", url, "worker", "--name", name,
                     "--takeover-after", "2"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip

        doomed = start("doomed")
        deadline = time.monotonic() + TIMEOUT
        while db.get_write_request(request.id).state is not WriteState.VALIDATED:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.002)
        doomed.send_signal(signal.SIGKILL)  # and it never comes back
        doomed.wait(timeout=10)
        assert db.get_write_request(request.id).state is not WriteState.INDEXED
        rescuer = start("rescuer")
        try:
            done = db.wait_write_request(request.id, timeout=TIMEOUT)
        finally:
            rescuer.send_signal(signal.SIGINT)
            rescuer.wait(timeout=30)
        assert done.state is WriteState.INDEXED, (done.error, log.read_text())
        assert "rescuer takes over 1 writes of silent worker doomed" in log.read_text()
        assert db.count_documents(DS) == 1
        ingest = db.store.get_ingest(request.id)
        assert ingest.rows_done == ingest.rows == EVENTS * REGIONS
