"""Scale-out on PostgreSQL: many processes share one database; a server restart loses nothing.

* Four processes write documents to overlapping MIDs and update shared annotations at once
  (optimistic versions, retried on conflicts): afterwards every acknowledged write is
  present exactly once, and no annotation version is lost or doubled.
* A private PostgreSQL cluster (``initdb`` + ``pg_ctl`` on a free port, so the machine's
  shared server keeps serving the other tests) is restarted in the middle of a stream of
  HTTP writes to ``reeldb serve``: clients get successes or retryable 503s, the service
  recovers by itself, and every acknowledged write can be read back afterwards.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import reeldb
from reeldb import testing
from reeldb.testing import FACE_DETECTION

pytestmark = pytest.mark.slow

DATASTORE = "vision/face_detection/1"
PROCESSES = 4
WRITES = 40
SHARED_MIDS = 5

WRITER = r"""
import json, sys
import reeldb
from reeldb import testing
from reeldb.errors import VersionConflictError

url, shared = sys.argv[1], sys.argv[5:]
who, writes, mids = (int(a) for a in sys.argv[2:5])
acked = {"documents": [], "versions": []}
with reeldb.connect(url) as db:
    for n in range(writes):
        mid = {"title_id": f"t{n % mids}", "video_stream_id": "vs"}
        data = testing.face_document(2, title=f"{who}-{n}")
        doc = db.put_document("vision/face_detection/1", mid, data)
        acked["documents"].append([str(doc.id), mid["title_id"]])
        target = shared[n % len(shared)]
        while True:  # optimistic update of a shared annotation: retry on a lost race
            current = db.annotations.get("vision", target)
            try:
                new = db.annotations.update(
                    "vision", target, expected_version=current.version,
                    data={**current.data, "label": f"{who}-{n}"},
                )
            except VersionConflictError:
                continue
            acked["versions"].append([target, new.version, f"{who}-{n}"])
            break
print(json.dumps(acked))
"""


def _setup(db: reeldb.Database) -> None:
    db.create_namespace("vision", admins=["user:alice"])
    db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
    db.create_datastore(
        DATASTORE, mid_keys=["title_id", "video_stream_id"], schema="face_detection"
    )


def _label_type(db: reeldb.Database) -> None:
    db.add_schema(
        "vision",
        {
            "type": "LABEL",
            "version": 0,
            "description": "a label over a time range and box",
            "extends": ["TEMPORAL_SPATIAL_BASE"],
            "keys": {"properties": {"label": {"type": "string", "mandatory": True}}},
        },
    )


def test_four_processes_lose_no_write(postgres_url: str) -> None:
    with reeldb.connect(postgres_url) as db:
        _setup(db)
        _label_type(db)
        shared = [
            str(
                db.annotations.create(
                    "vision",
                    "LABEL",
                    [{"type": "MOVIE", "id": "m1"}],
                    {"label": "start", "temporal": {"start": i, "end": i + 1}},
                ).id
            )
            for i in range(3)
        ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, postgres_url, str(who), str(WRITES), str(SHARED_MIDS)]
            + shared,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for who in range(PROCESSES)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    documents = [d for r in results for d in r["documents"]]
    versions = [v for r in results for v in r["versions"]]
    assert len(documents) == PROCESSES * WRITES
    assert len({d[0] for d in documents}) == len(documents)  # no DocumentID given twice
    with reeldb.connect(postgres_url) as db:
        for title in {d[1] for d in documents}:
            mid = {"title_id": title, "video_stream_id": "vs"}
            listed: list[str] = []
            cursor = None
            while True:
                page = db.list_documents(DATASTORE, mid, limit=50, cursor=cursor)
                listed += [str(info.id) for info in page.items]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            acked = sorted(d[0] for d in documents if d[1] == title)
            assert sorted(listed) == acked  # each acknowledged write once, nothing else
        for target in shared:
            mine = sorted((v[1], v[2]) for v in versions if v[0] == target)
            history = db.annotations.versions("vision", target)
            # Version 1 is the creation; every acknowledged update owns exactly one version.
            assert [a.version for a in history] == list(range(1, len(mine) + 2))
            assert [v for v, _ in mine] == list(range(2, len(mine) + 2))
            by_version = {a.version: a.data["label"] for a in history}
            assert all(by_version[v] == label for v, label in mine)


# -- a restart of the server in the middle of a write stream ----------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(command: list[str]) -> list[str]:
    """Run a server command as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class Cluster:
    """A private PostgreSQL 15 cluster on a free loopback port, for tests that restart it."""

    def __init__(self, root: Path) -> None:
        bindir = Path("/usr/lib/postgresql/15/bin")
        if not (bindir / "initdb").exists():
            found = shutil.which("initdb")
            if found is None:
                pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
            bindir = Path(found).parent
        self.bin = bindir
        self.data = root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.pg_ctl("start")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin / tool), *args]),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def pg_ctl(self, action: str) -> None:
        """``pg_ctl start|restart|stop`` (fast shutdown: open connections are cut)."""
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        # The server logs to a file: pipes it inherited would keep `run` waiting for EOF.
        log = str(self.data.parent / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-w", "-m", "fast", "-o", options, action
        )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="reeldb-pg-"))
    try:
        found = Cluster(root)
        try:
            yield found
        finally:
            found.pg_ctl("stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


REELDB = str(Path(sys.executable).with_name("reeldb"))
DEMO = "/v1/namespaces/demo/datastores/face_detection/1"
DEMO_DATASTORE = "demo/face_detection/1"


def _serve(url: str, port: int, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """``reeldb init`` then ``reeldb serve --demo`` (output to ``log``): key and server."""
    init = subprocess.run(
        [REELDB, "-d", url, "-o", "json", "init"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key: str = json.loads(init.stdout)["admin_key"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [REELDB, "-d", url, "serve", "--port", str(port), "--demo", "--no-worker"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return key, server


def test_a_server_restart_mid_stream_loses_nothing_acknowledged(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    key, server = _serve(cluster.url, port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "reeldb serve did not start"
                time.sleep(0.2)
            document = testing.face_document(2, title="stream")
            acked: list[str] = []
            refused = 0
            restarted = threading.Event()
            after_restart = 0
            n = 0

            before_restart: list[int] = []

            def restart() -> None:
                time.sleep(1.0)
                before_restart.append(len(acked))
                cluster.pg_ctl("restart")
                restarted.set()

            restarter = threading.Thread(target=restart)
            restarter.start()
            stream_deadline = time.monotonic() + 120
            while after_restart < 20:
                assert time.monotonic() < stream_deadline, (len(acked), refused)
                n += 1
                body: dict[str, Any] = {
                    "mid": {"title_id": f"t{n % 3}", "video_stream_id": "vs"},
                    "document": document,
                }
                try:
                    answer = http.post(DEMO + "/documents", json=body, timeout=60)
                except httpx.TransportError:
                    refused += 1
                    continue
                if answer.status_code == 201:
                    acked.append(answer.json()["id"])
                    after_restart += restarted.is_set()
                else:
                    # While the server is away: retryable answers only, never a 500.
                    assert answer.status_code == 503, (answer.text, log.read_text()[-3000:])
                    assert answer.headers["content-type"].startswith("application/problem+json")
                    refused += 1
            restarter.join()
            assert before_restart[0] > 0  # the restart fell in the middle of the stream
            for doc_id in acked:
                assert http.get(f"/v1/documents/{doc_id}").status_code == 200
        with reeldb.connect(cluster.url) as db:
            total = sum(
                len(
                    db.list_documents(
                        DEMO_DATASTORE, {"title_id": f"t{i}", "video_stream_id": "vs"}, limit=1000
                    ).items
                )
                for i in range(3)
            )
        # Every acknowledged write is there; an unacknowledged one may be too (its commit
        # may have happened just before the connection broke), never a duplicate.
        assert len(acked) <= total <= len(acked) + refused
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
