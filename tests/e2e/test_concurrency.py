"""Concurrency on one SQLite file: many writers to the same MID lose nothing.

Threads sharing one `Database`, separate processes each with their own connection, readers
racing writers, and a schema version added while documents keep arriving.
"""

from __future__ import annotations

import contextlib
import copy
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import reeldb
from reeldb import testing
from reeldb.errors import BackendUnavailableError
from reeldb.testing import FACE_DETECTION, MID

DATASTORE = "vision/face_detection/1"
TIMEOUT = 60.0
WRITE_PAUSE = 0.002
"""Seconds a steady writer rests between writes (without it, see the starvation test)."""


def face_document(title: str, n_events: int = 2, **event_extra: Any) -> dict[str, Any]:
    """A valid FACE_DETECTION document whose title tells who wrote it."""
    return testing.face_document(n_events, title=title, **event_extra)


def _setup(db: reeldb.Database) -> None:
    db.create_namespace("vision", admins=["user:alice"])
    db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
    db.create_datastore(
        DATASTORE, mid_keys=["title_id", "video_stream_id"], schema="face_detection"
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reel.db'}"


@pytest.fixture
def shared(url: str) -> Iterator[reeldb.Database]:
    """A file database with the DataStore, shared by every thread of a test."""
    with reeldb.connect(url) as db:
        _setup(db)
        yield db


def _all_listed(db: reeldb.Database, limit: int = 37) -> list[str]:
    """Every DocumentID of MID, following next_cursor page by page."""
    ids: list[str] = []
    cursor = None
    while True:
        page = db.list_documents(DATASTORE, MID, limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        ids += [str(info.id) for info in page.items]
        if page.next_cursor is None:
            return ids
        assert len(page.items) == limit
        cursor = page.next_cursor


def _check_newest_first(listed: list[str], acked_in_order: list[list[str]]) -> None:
    """Each writer's IDs appear in the listing in the reverse of its acknowledgement order."""
    position = {doc_id: index for index, doc_id in enumerate(listed)}
    for ids in acked_in_order:
        assert [position[i] for i in ids] == sorted((position[i] for i in ids), reverse=True)


def test_threads_writing_the_same_mid_lose_nothing(shared: reeldb.Database) -> None:
    threads, writes = 8, 25
    start = threading.Barrier(threads)

    def write(thread: int) -> list[str]:
        start.wait(timeout=TIMEOUT)
        return [
            str(shared.put_document(DATASTORE, MID, face_document(f"t{thread}-{i}")).id)
            for i in range(writes)
        ]

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(write, t) for t in range(threads)]
        acked = [future.result(timeout=TIMEOUT) for future in futures]

    every = [doc_id for ids in acked for doc_id in ids]
    assert len(set(every)) == threads * writes
    listed = _all_listed(shared)
    assert len(listed) == threads * writes
    assert set(listed) == set(every)
    _check_newest_first(listed, acked)
    assert str(shared.latest_document(DATASTORE, MID).id) == listed[0]
    assert shared.count_documents(DATASTORE) == threads * writes
    for thread, ids in enumerate(acked):
        for i, doc_id in enumerate(ids):
            doc = shared.get_document(doc_id, datastore=DATASTORE)
            assert json.loads(doc.body) == face_document(f"t{thread}-{i}")


WRITER_SCRIPT = """
import sys

import reeldb

url, worker, writes = sys.argv[1], sys.argv[2], int(sys.argv[3])
mid = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}
document = {
    "asset": {"title": ""},
    "tracks": [
        {
            "kind": "video",
            "frame_rate": "24000/1001",
            "components": [{"algorithm": "face_detector", "events": []}],
        }
    ],
}
with reeldb.connect(url) as db:
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\\n"
    for i in range(writes):
        document["asset"]["title"] = f"p{worker}-{i}"
        print(db.put_document("vision/face_detection/1", mid, document).id, flush=True)
"""


def _kill_running(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_processes_writing_the_same_mid_lose_nothing(url: str) -> None:
    with reeldb.connect(url) as db:
        _setup(db)
    workers, writes = 4, 25
    outputs = []
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", WRITER_SCRIPT, url, str(w), str(writes)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for w in range(workers)
        ]
        stack.callback(_kill_running, procs)  # runs first: no exit waits on a live writer
        for proc in procs:  # every process has its connection open before any writes
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err
            outputs.append(out.split())

    every = [doc_id for ids in outputs for doc_id in ids]
    assert [len(ids) for ids in outputs] == [writes] * workers
    assert len(set(every)) == workers * writes
    with reeldb.connect(url) as db:
        listed = _all_listed(db)
        assert len(listed) == workers * writes
        assert set(listed) == set(every)
        _check_newest_first(listed, outputs)
        assert db.count_documents(DATASTORE) == workers * writes
        for worker, ids in enumerate(outputs):
            for i, doc_id in enumerate(ids):
                doc = db.get_document(doc_id, datastore=DATASTORE)
                assert json.loads(doc.body)["asset"]["title"] == f"p{worker}-{i}"


def test_readers_see_whole_documents_and_read_their_writes(
    shared: reeldb.Database, url: str
) -> None:
    writers, writes = 2, 40
    first = shared.put_document(DATASTORE, MID, face_document("first"))
    expected = {"first": face_document("first")}
    for w in range(writers):
        for i in range(writes):
            expected[f"w{w}-{i}"] = face_document(f"w{w}-{i}", n_events=1 + i % 7)
    handed: queue.Queue[str | None] = queue.Queue()
    done = threading.Event()

    def write(writer: int) -> None:
        for i in range(writes):
            doc = shared.put_document(DATASTORE, MID, expected[f"w{writer}-{i}"])
            handed.put(str(doc.id))

    def read_after_write(other: reeldb.Database) -> int:
        """Read each ID the moment a writer hands it over, on this thread's connections."""
        seen = 0
        while (doc_id := handed.get(timeout=TIMEOUT)) is not None:
            for db in (shared, other):
                doc = db.get_document(doc_id, datastore=DATASTORE)
                data = json.loads(doc.body)
                assert data == expected[data["asset"]["title"]]
            seen += 1
        return seen

    def poll_latest(other: reeldb.Database) -> int:
        polls = 0
        while not done.is_set() or polls == 0:
            for db in (shared, other):
                doc = db.latest_document(DATASTORE, MID)
                data = json.loads(doc.body)
                assert data == expected[data["asset"]["title"]]
            polls += 1
        return polls

    with reeldb.connect(url) as other, ThreadPoolExecutor(writers + 2) as pool:
        poller = pool.submit(poll_latest, other)
        reader = pool.submit(read_after_write, other)
        try:
            writing = [pool.submit(write, w) for w in range(writers)]
            for future in writing:
                future.result(timeout=TIMEOUT)
        finally:
            handed.put(None)
            done.set()
        assert reader.result(timeout=TIMEOUT) == writers * writes
        assert poller.result(timeout=TIMEOUT) > 0
        latest = other.latest_document(DATASTORE, MID)
    assert latest.id != first.id
    assert shared.count_documents(DATASTORE) == 1 + writers * writes


def _evolved() -> dict[str, Any]:
    """FACE_DETECTION v2: an optional event property, a BACKWARD-compatible change."""
    evolved = copy.deepcopy(FACE_DETECTION)
    evolved["levels"]["event"]["properties"]["emotion"] = {"type": "keyword"}
    return evolved


def test_schema_version_added_while_documents_arrive(shared: reeldb.Database) -> None:
    before, after = 20, 20
    added = threading.Event()
    stop = threading.Event()
    progress = threading.Semaphore(0)

    def write() -> list[tuple[str, int, bool]]:
        """Write until `after` documents used the new property (or until told to stop)."""
        acked: list[tuple[str, int, bool]] = []
        with_v2 = 0
        while not stop.is_set() and with_v2 < after:
            uses_v2 = added.is_set()
            extra = {"emotion": "joy"} if uses_v2 else {}
            doc = shared.put_document(DATASTORE, MID, face_document(f"d{len(acked)}", 3, **extra))
            acked.append((str(doc.id), doc.schema_version, uses_v2))
            with_v2 += uses_v2
            progress.release()
            time.sleep(WRITE_PAUSE)
        return acked

    with ThreadPoolExecutor(1) as pool:
        writer = pool.submit(write)
        try:
            for _ in range(before):
                assert progress.acquire(timeout=TIMEOUT)
            version = shared.add_schema("vision", _evolved())
            added.set()
            acked = writer.result(timeout=TIMEOUT)
        finally:
            stop.set()

    assert version.version == 2
    assert shared.get_datastore(DATASTORE).schema_version == 2
    assert sum(uses for *_, uses in acked) == after
    assert shared.count_documents(DATASTORE) == len(acked)
    ds = shared.get_datastore(DATASTORE)
    latest = shared.schemas.document_validators(shared.get_schema("vision", "face_detection"))
    stored = {str(r.id): r for r in shared.store.iter_documents(ds.id)}
    assert stored.keys() == {doc_id for doc_id, *_ in acked}
    for doc_id, version_written, uses_v2 in acked:
        record = stored[doc_id]
        assert record.schema_version == version_written
        if uses_v2:
            assert version_written == 2
        data = json.loads(record.body)
        own = shared.get_schema("vision", "face_detection", record.schema_version)
        assert all(v.is_valid(data) for v in shared.schemas.document_validators(own)), doc_id
        assert all(v.is_valid(data) for v in latest), doc_id


def test_schema_version_is_not_starved_by_a_steady_writer(
    shared: reeldb.Database, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        shared.put_document(DATASTORE, MID, face_document(f"old-{i}"))
    arrivals: list[str] = []
    # Another connection, as another process's writer would have; it hardly waits for a lock.
    with reeldb.connect(url, busy_timeout=0.05) as writer:
        real_max_seq = shared.store.max_seq

        def max_seq_then_a_document_lands(datastore_id: int) -> int:
            """Deterministic schedule: a write commits during each stored-data check."""
            seq = real_max_seq(datastore_id)
            title = f"arrival-{len(arrivals)}"
            with contextlib.suppress(BackendUnavailableError):  # the database is locked
                arrivals.append(str(writer.put_document(DATASTORE, MID, face_document(title)).id))
            return seq

        monkeypatch.setattr(shared.store, "max_seq", max_seq_then_a_document_lands)
        version = shared.add_schema("vision", _evolved())
    monkeypatch.undo()
    assert version.version == 2
    assert shared.get_datastore(DATASTORE).schema_version == 2
    assert shared.count_documents(DATASTORE) == 5 + len(arrivals)
