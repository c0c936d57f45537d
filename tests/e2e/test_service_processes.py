"""`reeldb serve` as real processes: two workers on one database, and SIGKILL of the service.

Every write the service acknowledged (201 with a DocumentID) must be readable afterwards,
whichever worker answered it and even if the whole service was killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import reeldb
import reeldb.client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs process groups and SIGKILL"),
]

REELDB = str(Path(sys.executable).with_name("reeldb"))
DS = "/v1/namespaces/demo/datastores/face_detection/1"
DEMO_MID = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def init(url: str) -> str:
    result = subprocess.run(
        [REELDB, "-d", url, "-o", "json", "init"], capture_output=True, text=True, check=True
    )
    key: str = json.loads(result.stdout)["admin_key"]
    return key


@contextmanager
def serving(url: str, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [REELDB, "-d", url, "serve", "--port", str(port), "--no-access-log", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"reeldb serve did not start:\n{output}")
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout:
            process.stdout.close()


def demo_document(base: str, key: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    latest = httpx.get(
        base + DS + "/documents/latest", params={"mid": json.dumps(DEMO_MID)}, headers=headers
    )
    assert latest.status_code == 200, latest.text
    data: dict[str, object] = latest.json()["data"]
    return data


def write_many(base: str, key: str, document: object, count: int, threads: int) -> list[str]:
    def write(i: int) -> str:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            body = {"mid": {"title_id": f"t{i % 7}", "video_stream_id": "v"}, "document": document}
            response = client.post(DS + "/documents", json=body)
            assert response.status_code == 201, response.text
            doc_id: str = response.json()["id"]
            return doc_id

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(write, range(count)))


def test_two_workers_share_one_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/reel.db"
    key = init(url)
    with serving(url, "--workers", "2", "--demo") as (base, process):
        document = demo_document(base, key)
        ids = write_many(base, key, document, count=60, threads=6)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers) as client:
            for doc_id in ids:
                assert client.get(f"/v1/documents/{doc_id}").status_code == 200
            count = client.get(DS + "/count").json()["count"]
            metrics = client.get("/metrics").text
        # Metrics from both workers are merged (a multiprocess registry).
        posts = re.findall(
            r'reeldb_http_requests_total\{method="POST",route="[^"]*documents",status="201"\} '
            r"([0-9.]+)",
            metrics,
        )
        assert sum(float(n) for n in posts) == 60
        workers = {
            int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", _drain(process))
        }
    assert len(workers) == 2
    assert len(set(ids)) == 60
    assert count == 60 + 3  # the demo's three documents
    with reeldb.connect(url) as db:
        assert db.count_documents("demo/face_detection/1") == 63
        audit = db.list_audit("demo", limit=1000).items
        assert sum(e.action == "document.put" and e.status == 201 for e in audit) == 60


def _drain(process: subprocess.Popen[str]) -> str:
    """What the service printed so far (it keeps running)."""
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    try:
        return process.stdout.read() or ""
    finally:
        os.set_blocking(process.stdout.fileno(), True)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/reel.db"
    key = init(url)
    acknowledged: list[str] = []
    with serving(url, "--demo") as (base, process):
        document = demo_document(base, key)
        acknowledged += write_many(base, key, document, count=40, threads=4)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with serving(url) as (base, _process):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers) as client:
            for doc_id in acknowledged:
                response = client.get(f"/v1/documents/{doc_id}")
                assert response.status_code == 200
                assert response.json()["data"] == document


def test_access_changes_reach_every_worker_at_once(tmp_path: Path) -> None:
    """Workers cache authentications; a revocation from any process ends them at once."""
    url = f"sqlite:///{tmp_path}/reel.db"
    admin = init(url)
    with serving(url, "--workers", "2", "--demo") as (base, _process):
        admin_headers = {"Authorization": f"Bearer {admin}"}
        created = httpx.post(
            base + "/v1/keys", json={"principal": "app:viewer"}, headers=admin_headers
        )
        assert created.status_code == 201, created.text
        viewer = created.json()["secret"]
        grant = httpx.put(
            base + "/v1/namespaces/demo/roles/app:viewer",
            json={"role": "reader"},
            headers=admin_headers,
        )
        assert grant.status_code == 200, grant.text

        def statuses(key: str, path: str = DS) -> set[int]:
            # Fresh connections, so that both workers answer (and cache) some of them.
            def one(_: int) -> int:
                return httpx.get(
                    base + path, headers={"Authorization": f"Bearer {key}"}
                ).status_code

            with ThreadPoolExecutor(8) as pool:
                return set(pool.map(one, range(40)))

        assert statuses(viewer) == {200}
        # A role revoked through the service: every worker answers 404 at once.
        revoked_role = httpx.delete(
            base + "/v1/namespaces/demo/roles/app:viewer", headers=admin_headers
        )
        assert revoked_role.status_code == 204, revoked_role.text
        assert statuses(viewer) == {404}
        assert statuses(viewer, "/v1/whoami") == {200}
        # The key revoked by another process (the CLI on the database file): 401 at once.
        key_id = created.json()["key"]["key_id"]
        subprocess.run(
            [REELDB, "-d", url, "keys", "revoke", key_id], check=True, capture_output=True
        )
        assert statuses(viewer, "/v1/whoami") == {401}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_runs_asynchronous_writes_without_a_separate_worker(
    tmp_path: Path, workers: str
) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    key = init(url)
    with serving(url, "--demo", "--workers", workers) as (base, _process):
        document = demo_document(base, key)
        with reeldb.client.Client(base, key) as client:
            request, created = client.submit_write(
                "demo/face_detection/1", DEMO_MID, document=document, idempotency_key="once"
            )
            assert created
            done = client.wait_write_request(request.id, timeout=30)
            assert done.state.value == "INDEXED", done.error
            assert client.get_document(done.document_id).data == document


def children(pid: int) -> dict[int, str]:
    """The live processes whose parent is ``pid``: their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode()
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_runs_its_worker_in_a_process_that_dies_with_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    key = init(url)
    with serving(url, "--demo") as (base, process):
        [(worker, command)] = children(process.pid).items()
        assert " worker --name " in command and str(tmp_path) not in command  # URL by env
        document = demo_document(base, key)
        with reeldb.client.Client(base, key) as client:
            request, _ = client.submit_write("demo/face_detection/1", DEMO_MID, document=document)
            done = client.wait_write_request(request.id, timeout=30)
            assert done.state.value == "INDEXED", done.error
        process.send_signal(signal.SIGKILL)  # the service alone, not its process group
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{worker}").exists() and "Z" not in _state(worker):
            assert time.monotonic() < deadline, "the worker outlived the service"
            time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
