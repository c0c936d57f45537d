"""Crash safety of annotations: SIGKILL a writer mid-stream; every acknowledged write survives.

A child process creates annotations in batches of 5 and updates earlier ones (each update
expects the version it last stored), appending what the database acknowledged to an fsync'ed
file. The test kills it at a random moment three times, each run picking up where the last
left off, then checks that every acknowledged version is readable with exactly the content
written, that no batch is stored in part, and that the search index agrees with the stored
versions (an association search finds every live annotation, at its current version).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import reeldb
from reeldb.annotations import Annotations

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL"),
]

NS = "crash"
KILLS = 3
TIMEOUT = 30.0
MIN_ACKS = 20

CHILD = r"""
import json, os, sys, uuid
import reeldb

url, ack_path, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
ack = open(ack_path, "a")

def acknowledge(record):
    ack.write(json.dumps(record) + "\n")
    ack.flush()
    os.fsync(ack.fileno())

def data(n, version):
    return {"comment": f"note {n} version {version}", "temporal": {"start": n, "end": n + 1}}

db = reeldb.connect(url)
print("ready", flush=True)
latest = {}  # id -> (n, version) this run stored
n = run * 1_000_000
while True:
    batch = [
        {"type": "NOTE", "associations": [{"type": "VIDEO", "id": "v"}], "data": data(n + i, 1),
         "id": str(uuid.UUID(int=n + i))}
        for i in range(5)
    ]
    stored = db.annotations.create_many("crash", batch)
    for i, a in enumerate(stored):
        latest[str(a.id)] = (n + i, 1)
    acknowledge({"batch": [str(a.id) for a in stored], "n": n})
    n += 5
    for ident, (m, version) in list(latest.items())[-3:]:
        done = db.annotations.update(
            "crash", ident, expected_version=version, data=data(m, version + 1)
        )
        latest[ident] = (m, done.version)
        acknowledge({"id": ident, "n": m, "version": done.version})
"""


def _note(n: int, version: int) -> dict[str, object]:
    return {"comment": f"note {n} version {version}", "temporal": {"start": n, "end": n + 1}}


def _run_child(url: str, ack: Path, run: int, tmp: Path) -> None:
    script = tmp / "child.py"
    script.write_text(CHILD)
    with (tmp / f"stderr-{run}.txt").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script), url, str(ack), str(run)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", (tmp / f"stderr-{run}.txt").read_text()
        before = len(ack.read_text().splitlines()) if ack.exists() else 0
        deadline = time.monotonic() + TIMEOUT
        target = before + MIN_ACKS + random.randrange(40)
        while (len(ack.read_text().splitlines()) if ack.exists() else 0) < target:
            assert proc.poll() is None, (tmp / f"stderr-{run}.txt").read_text()
            assert time.monotonic() < deadline, "the writer is too slow"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_sigkill_mid_stream_loses_no_acknowledged_annotation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    with reeldb.connect(url) as db:
        db.create_namespace(NS)
        db.add_schema(
            NS,
            {
                "name": "NOTE",
                "extends": ["TEMPORAL_SPATIAL_BASE"],
                "properties": {"comment": {"type": "text", "mandatory": True}},
            },
        )
    ack = tmp_path / "acks.jsonl"
    for run in range(1, KILLS + 1):
        _run_child(url, ack, run, tmp_path)

    expected: dict[str, tuple[int, int]] = {}  # id -> (n, acknowledged version)
    batches: list[list[str]] = []
    for line in ack.read_text().splitlines():
        record = json.loads(line)
        if "batch" in record:
            batches.append(record["batch"])
            for i, ident in enumerate(record["batch"]):
                expected[ident] = (record["n"] + i, 1)
        else:
            expected[record["id"]] = (record["n"], record["version"])
    assert len(batches) >= KILLS and len(expected) >= KILLS * MIN_ACKS

    with reeldb.connect(url) as db:
        ann = db.annotations
        for ident, (n, version) in expected.items():
            stored = ann.get(NS, ident, version)
            assert stored.data == _note(n, version), ident
            current = ann.get(NS, ident)
            # At most the write in flight at the kill is stored without an acknowledgement.
            assert current.version in (version, version + 1), ident
            assert current.data == _note(n, current.version)
        # No batch in part: each annotation of the run's last, unacknowledged batch is
        # stored with all of its batch or not at all.
        live = {str(hit.annotation.id): hit.annotation for hit in _all(ann)}
        numbers = {uuid.UUID(ident).int for ident in live}
        for k in numbers:
            first = k - k % 5  # batches start at multiples of 5 (runs at multiples of 1M)
            assert all(first + i in numbers for i in range(5)), f"batch {first} is partial"
        # The index agrees with the versions: every acknowledged annotation is found, at
        # its current version, and nothing else is.
        assert set(expected) <= set(live)
        for ident, found in live.items():
            assert found.version == ann.get(NS, ident).version
        assert ann.count(NS) == len(live)


def _all(ann: Annotations) -> list[reeldb.AnnotationHit]:
    hits: list[reeldb.AnnotationHit] = []
    cursor = None
    while True:
        page = ann.search(
            NS, associations=[{"type": "VIDEO", "id": "v"}], limit=1000, cursor=cursor
        )
        hits += page.items
        if page.next_cursor is None:
            return hits
        cursor = page.next_cursor
