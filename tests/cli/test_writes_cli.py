"""``reeldb doc put --stream|--async``, ``reeldb blob``, ``reeldb request``, ``reeldb worker``."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import reeldb
from reeldb.cli import app
from reeldb.testing import FACE_DETECTION, face_document

RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None})
DS = "vision/face_detection/1"
MID = ["--mid", "title_id=1", "--mid", "video_stream_id=v"]


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'd' / 'reel.db'}"
    with reeldb.connect(url) as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore(DS, mid_keys=["title_id", "video_stream_id"], schema="face_detection")
    return url


def _big(tmp_path: Path, copies: int = 200) -> tuple[Path, dict[str, object]]:
    document = face_document(title="big one")
    events = document["tracks"][0]["components"][0]["events"]
    document["tracks"][0]["components"][0]["events"] = events * copies
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps(document))
    return path, document


def test_doc_put_stream_writes_through_a_blob(database: str, tmp_path: Path) -> None:
    path, document = _big(tmp_path)
    result = RUNNER.invoke(app, ["-d", database, "doc", "put", DS, str(path), *MID, "--stream"])
    assert result.exit_code == 0, result.output
    assert f"({path.stat().st_size} bytes)" in result.output
    with reeldb.connect(database) as db:
        [found] = db.list_documents(DS, {"title_id": "1", "video_stream_id": "v"}).items
        stored = db.get_document(found.id)
        assert stored.blob is not None and stored.data == document


def test_a_file_over_the_sync_limit_is_streamed_by_default(database: str, tmp_path: Path) -> None:
    path, _ = _big(tmp_path)
    result = RUNNER.invoke(
        app,
        ["-d", database, "doc", "put", DS, str(path), *MID],
        env={"REELDB_MAX_DOCUMENT_BYTES": "1000"},
    )
    assert result.exit_code == 0, result.output
    with reeldb.connect(database) as db:
        assert db.count_documents(DS) == 1


def test_an_invalid_streamed_document_is_a_one_line_error(database: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"asset": {"title": "x"}, "tracks": [')
    result = RUNNER.invoke(app, ["-d", database, "doc", "put", DS, str(path), *MID, "--stream"])
    assert result.exit_code != 0
    assert "not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_blob_put_and_gc(database: str, tmp_path: Path) -> None:
    path, _ = _big(tmp_path, copies=2)
    result = RUNNER.invoke(app, ["-d", database, "-o", "json", "blob", "put", "vision", str(path)])
    assert result.exit_code == 0, result.output
    blob = json.loads(result.output)
    assert blob["state"] == "stored" and blob["size"] == path.stat().st_size
    result = RUNNER.invoke(app, ["-d", database, "blob", "gc"], env={"REELDB_BLOB_GRACE": "1"})
    assert result.exit_code == 0 and "deleted 0 unused blobs" in result.output
    time.sleep(1.1)
    result = RUNNER.invoke(app, ["-d", database, "blob", "gc"], env={"REELDB_BLOB_GRACE": "1"})
    assert "deleted 1 unused blob" in result.output


def test_async_put_then_a_worker_process_runs_it(database: str, tmp_path: Path) -> None:
    path, document = _big(tmp_path, copies=20)
    result = RUNNER.invoke(
        app, ["-d", database, "-o", "json", "doc", "put", DS, str(path), *MID, "--async"]
    )
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)
    assert request["state"] == "PENDING"
    worker = subprocess.Popen(
        [sys.executable, "-m", "reeldb", "-d", database, "worker", "--name", "cli-test"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        result = RUNNER.invoke(
            app, ["-d", database, "request", "wait", request["id"], "--timeout", "60"]
        )
        assert result.exit_code == 0, result.output
        assert "INDEXED" in result.output
    finally:
        worker.send_signal(signal.SIGINT)
        _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0, errors.decode()
    result = RUNNER.invoke(app, ["-d", database, "-o", "json", "request", "status", request["id"]])
    found = json.loads(result.output)
    with reeldb.connect(database) as db:
        assert db.get_document(found["document_id"]).data == document
    result = RUNNER.invoke(app, ["-d", database, "request", "list", "vision"])
    assert request["id"] in result.output


def test_request_status_of_a_bad_id_is_a_one_line_error(database: str) -> None:
    result = RUNNER.invoke(app, ["-d", database, "request", "status", "nope"])
    assert result.exit_code != 0
    assert "invalid write request id 'nope'" in result.output
