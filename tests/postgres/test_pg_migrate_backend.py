"""``reeldb migrate-backend``: a whole embedded installation copied into PostgreSQL, verified,
and resumed after an interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

import reeldb
from reeldb.auth.model import AuditEntry
from reeldb.cli import app
from reeldb.database import Database
from reeldb.demo import DEMO_DATASTORE, DEMO_NAMESPACE, FACE_DETECTION, load_demo
from reeldb.errors import ConflictError, UnauthenticatedError
from reeldb.model.requests import WriteState
from reeldb.transfer import migrate_backend, verify_backend

MID = {"title_id": "t9", "video_stream_id": "vs"}


def _document(title: str, people: int) -> dict[str, Any]:
    return {
        "asset": {"title": title},
        "tracks": [
            {
                "kind": "video",
                "components": [
                    {
                        "algorithm": "retina",
                        "events": [
                            {
                                "time_range": {"start": i, "end": i + 1},
                                "label": "face",
                                "regions": [
                                    {
                                        "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2},
                                        "person": f"p{i}",
                                    }
                                ],
                            }
                            for i in range(people)
                        ],
                    }
                ],
            }
        ],
    }


def _populate(db: Database) -> dict[str, Any]:
    """Every kind of record an installation holds, in more than one version."""
    load_demo(db)
    admin = db.bootstrap("user:root")
    assert admin is not None
    revoked = db.create_api_key("app:old", description="retired")
    db.revoke_api_key(revoked.key.key_id)
    kept = db.create_api_key("app:face-detector")
    db.grant_system_admin("user:ops")
    # A second schema version: the DataStore moves; older documents stay on version 1.
    v2 = dict(FACE_DETECTION)
    v2["levels"] = {**FACE_DETECTION["levels"], "asset": {"properties": {
        "title": {"type": "text", "mandatory": True}, "studio": {"type": "keyword"}}}}  # fmt: skip
    db.add_schema(DEMO_NAMESPACE, v2)
    second = {**_document("Second", 3), "asset": {"title": "Second", "studio": "A"}}
    db.put_document(DEMO_DATASTORE, MID, second)
    # A document streamed from a blob (its body stays in the blob store).
    blob = db.blobs.put(DEMO_NAMESPACE, [orjson.dumps(_document("Streamed", 40))])
    streamed = db.put_document_from_blob(DEMO_DATASTORE, MID, blob.id)
    # A second tenant.
    db.create_namespace("sports", admins=["user:coach"])
    db.add_schema("sports", {"name": "plays", "levels": {"asset": {"properties": {
        "title": {"type": "text"}}}}})  # fmt: skip
    db.create_datastore("sports/plays/1", mid_keys=["match"], schema="plays")
    for i in range(7):
        db.put_document("sports/plays/1", {"match": f"m{i % 3}"}, {"asset": {"title": f"p{i}"}})
    # Annotations: history (updates, a deletion) and association settings.
    notes = [h.annotation for h in db.annotations.search(DEMO_NAMESPACE, type="REVIEW_NOTE").items]
    first = notes[0]
    db.annotations.update(
        DEMO_NAMESPACE, first.id, expected_version=1, data={**first.data, "comment": "fixed glove"}
    )
    db.annotations.delete(DEMO_NAMESPACE, notes[1].id)
    # A finished asynchronous write (its idempotency key must still find it).
    request, _ = db.submit_write(
        DEMO_DATASTORE, MID, document=_document("Async", 2), idempotency_key="k-1"
    )
    db.store.update_write_request(request.id, WriteState.FAILED, datetime.now(UTC))
    db.record_audit(
        [AuditEntry(0, datetime.now(UTC), "user:root", "role.grant", "sports", "x", "r-1", 201)]
    )
    return {"admin": admin.secret, "kept": kept.secret, "revoked": revoked.secret,
            "streamed": streamed.id, "request": request.id, "updated": first.id}  # fmt: skip


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Database, dict[str, Any]]]:
    with reeldb.connect(f"sqlite:///{tmp_path / 'src' / 'reel.db'}") as db:
        yield db, _populate(db)


@pytest.fixture
def target_url(postgres_url: str) -> str:
    return postgres_url


def _target(url: str, tmp_path: Path) -> Database:
    # Its own blob store and key: streamed bodies are re-encrypted on the way.
    return reeldb.connect(url, blobs=f"file://{tmp_path / 'dst-blobs'}")


def _same_answers(src: Database, dst: Database, secrets: dict[str, Any]) -> None:
    for ds in src.list_datastores():
        for query in ('person = "p1"', 'title ~ "demo"', "label = face"):
            try:
                mine = src.query_datastore(ds.ref, query, limit=100)
            except reeldb.errors.QueryError:
                continue
            theirs = dst.query_datastore(ds.ref, query, limit=100)
            assert [m.id for m in theirs.items] == [m.id for m in mine.items], (ds.ref, query)
    assert dst.get_document(secrets["streamed"]).data == src.get_document(secrets["streamed"]).data
    for search in ({"text": "glove"}, {"text": "fixed"}, {"time": (3, 7), "box": (0, 0, 0.3, 1)}):
        mine = src.annotations.search(DEMO_NAMESPACE, limit=100, **search).items
        theirs = dst.annotations.search(DEMO_NAMESPACE, limit=100, **search).items
        assert [h.annotation for h in theirs] == [h.annotation for h in mine] and mine, search
    # The deleted note is gone from search on both sides, its history kept.
    assert not dst.annotations.search(DEMO_NAMESPACE, text="logo").items
    versions = dst.annotations.versions(DEMO_NAMESPACE, secrets["updated"])
    assert [v.version for v in versions] == [1, 2]
    assert dst.authenticate(secrets["admin"]).name == "user:root"
    assert dst.authenticate(secrets["kept"]).name == "app:face-detector"
    with pytest.raises(UnauthenticatedError):
        dst.authenticate(secrets["revoked"])
    # A retried submission with the same idempotency key finds the copied request.
    again, new = dst.submit_write(
        DEMO_DATASTORE, MID, document=_document("Async", 2), idempotency_key="k-1"
    )
    assert (again.id, new) == (secrets["request"], False)


def test_a_whole_installation_is_copied_verified_and_answers_the_same(
    source: tuple[Database, dict[str, Any]], target_url: str, tmp_path: Path
) -> None:
    src, secrets = source
    steps: list[str] = []
    with _target(target_url, tmp_path) as dst:
        report = migrate_backend(src, dst, batch_size=3, progress=lambda s, d, t: steps.append(s))
        assert report.ok, [c for c in report.checks if not c.ok]
        assert report.copied["documents"] == src.count_documents(DEMO_DATASTORE) + 7
        assert report.copied["blob payloads"] == report.copied["blobs"] == 1  # the streamed one
        assert report.copied["api keys"] == 3 and report.copied["write requests"] == 1
        assert sorted(report.rebuilt) == [DEMO_DATASTORE, "sports/plays/1"]
        assert {c.what for c in report.checks} >= {
            "namespaces", "roles", "schema versions", "api keys", "audit log",
            f"documents {DEMO_DATASTORE}", f"index {DEMO_DATASTORE}", "annotations demo",
        }  # fmt: skip
        assert f"documents {DEMO_DATASTORE}" in steps and "annotations demo" in steps
        old = dst.get_document(src.list_documents(DEMO_DATASTORE, {"title_id": "80100172",
                               "video_stream_id": "vs-1080p-01"}).items[0].id)  # fmt: skip
        assert old.schema_version == 1 and dst.get_datastore(DEMO_DATASTORE).schema_version == 2
        _same_answers(src, dst, secrets)
        # Run again: nothing new is copied, and the copy still verifies.
        again = migrate_backend(src, dst)
        assert again.ok and sum(again.copied.values()) == 0, again.copied
        # A difference is found: one more document in the target.
        dst.put_document(DEMO_DATASTORE, MID, _document("extra", 1))
        bad = [c.what for c in verify_backend(src, dst) if not c.ok]
        assert bad == [f"documents {DEMO_DATASTORE}", f"index {DEMO_DATASTORE}"]


class _Crash(Exception):
    pass


def _fail_after(obj: Any, name: str, calls: int, monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable[..., Any] = getattr(obj, name)
    count = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        if count[0] > calls:
            raise _Crash(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)


@pytest.mark.parametrize("where", ["import_documents", "put_annotations", "append_audit"])
def test_an_interrupted_copy_is_finished_by_running_it_again(
    source: tuple[Database, dict[str, Any]],
    target_url: str,
    tmp_path: Path,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, secrets = source
    with _target(target_url, tmp_path) as dst:
        with monkeypatch.context() as patch:
            _fail_after(dst.store, where, 2 if where != "append_audit" else 0, patch)
            with pytest.raises(_Crash):
                migrate_backend(src, dst, batch_size=2)
        report = migrate_backend(src, dst, batch_size=2)
        assert report.ok, [c for c in report.checks if not c.ok]
        # Nothing twice: the document and annotation counts are the source's exactly.
        assert dst.count_documents(DEMO_DATASTORE) == src.count_documents(DEMO_DATASTORE)
        assert dst.store.count_annotations(DEMO_NAMESPACE) == src.store.count_annotations(
            DEMO_NAMESPACE
        )
        _same_answers(src, dst, secrets)


def test_a_source_with_unfinished_writes_or_a_foreign_target_is_refused(
    source: tuple[Database, dict[str, Any]], target_url: str, tmp_path: Path
) -> None:
    src, _ = source
    with _target(target_url, tmp_path) as dst:
        dst.create_namespace("sports", description="someone else's")
        with pytest.raises(ConflictError, match="namespace sports"):
            migrate_backend(src, dst)
        src.submit_write(DEMO_DATASTORE, MID, document=_document("late", 1))
        with pytest.raises(ConflictError, match="1 PENDING"):
            migrate_backend(src, dst)


def test_cli_copies_and_verifies_or_fails_in_one_line(
    source: tuple[Database, dict[str, Any]], target_url: str, tmp_path: Path
) -> None:
    src, _ = source
    runner = CliRunner()
    url = src.url
    blobs = ["--target-blobs", f"file://{tmp_path / 'dst-blobs'}"]
    done = runner.invoke(app, ["-o", "json", "migrate-backend", url, target_url, *blobs])
    assert done.exit_code == 0, done.output
    result = orjson.loads(done.stdout)
    assert result["ok"] and result["copied"]["documents"] > 0
    assert (
        "@" not in result["target"]
        or "***" in result["target"]
        or ":" not in result["target"].split("@")[0].removeprefix("postgresql://")
    )
    verify = runner.invoke(app, ["migrate-backend", url, target_url, "--verify-only", *blobs])
    assert verify.exit_code == 0, verify.output
    assert "Verification" in verify.stdout
    same = runner.invoke(app, ["migrate-backend", url, url])
    assert same.exit_code == 1
    assert same.stderr.strip().count("\n") == 0 and "same database" in same.stderr
    with reeldb.connect(target_url) as dst:
        dst.put_document("sports/plays/1", {"match": "m9"}, {"asset": {"title": "x"}})
    bad = runner.invoke(app, ["migrate-backend", url, target_url, "--verify-only", *blobs])
    assert bad.exit_code == 1 and "verification failed: documents sports/plays/1" in bad.stderr


def test_a_copy_killed_with_sigkill_is_finished_by_running_it_again(
    tmp_path: Path, target_url: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'big' / 'reel.db'}"
    with reeldb.connect(source_url) as db:
        load_demo(db)
        docs = [(MID, _document(f"d{i}", 2)) for i in range(3000)]
        for start in range(0, len(docs), 500):
            db.put_documents(DEMO_DATASTORE, docs[start : start + 500])
        base = db.annotations.search(DEMO_NAMESPACE, type="REVIEW_NOTE").items[0].annotation
        db.annotations.create_many(
            DEMO_NAMESPACE,
            [
                {"type": "REVIEW_NOTE", "associations": [{"type": "MOVIE_ID", "id": str(i)}],
                 "data": {**base.data, "comment": f"note {i}"}}
                for i in range(1500)
            ],
        )  # fmt: skip
        expected = db.count_documents(DEMO_DATASTORE)
    command = [sys.executable, "-m", "reeldb", "-o", "json", "migrate-backend"]
    args = [source_url, target_url, "--batch-size", "20"]
    env = {**os.environ, "REELDB_BLOBS": f"file://{tmp_path / 'dst-blobs'}"}
    first = subprocess.Popen([*command, *args], env=env, stdout=subprocess.DEVNULL)
    try:
        with reeldb.connect(target_url) as dst:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if dst.count_documents(DEMO_DATASTORE) >= 200:
                        break
                except reeldb.errors.NotFoundError:
                    pass
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)  # mid-copy: documents are still arriving
            first.wait(timeout=30)
            partial = dst.count_documents(DEMO_DATASTORE)
        assert 200 <= partial < expected and first.returncode == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    done = subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["ok"] and result["copied"]["documents"] == expected - partial
    with reeldb.connect(target_url) as dst:
        assert dst.count_documents(DEMO_DATASTORE) == expected
        assert dst.store.count_annotations(DEMO_NAMESPACE) == 1500 + 35


def test_a_long_audit_log_is_copied_page_by_page_and_resumed_mid_way(
    source: tuple[Database, dict[str, Any]],
    target_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import reeldb.transfer

    src, _ = source
    now = datetime.now(UTC)
    src.record_audit(
        [AuditEntry(0, now, f"user:{i}", "doc.put", "sports", "x", f"r{i}", 201) for i in range(11)]
    )
    expected = len(src.list_audit(limit=1000).items)
    monkeypatch.setattr(reeldb.transfer, "_PAGE", 3)  # many pages, one number kept per page
    with _target(target_url, tmp_path) as dst:
        with monkeypatch.context() as patch:
            _fail_after(dst.store, "append_audit", 2, patch)
            with pytest.raises(_Crash):
                migrate_backend(src, dst)
        copied = len(dst.list_audit(limit=1000).items)
        assert 0 < copied < expected
        # An entry written meanwhile shifts the pages: the last one copied is mid-page now.
        src.record_audit([AuditEntry(0, now, "user:late", "doc.put", "sports", "x", "r", 201)])
        report = migrate_backend(src, dst)
        assert report.ok, [c for c in report.checks if not c.ok]
        assert report.copied["audit entries"] == expected + 1 - copied
        mine = [(e.principal, e.request_id) for e in src.list_audit(limit=1000).items]
        theirs = [(e.principal, e.request_id) for e in dst.list_audit(limit=1000).items]
        assert theirs == mine  # the same entries, in the same order
