"""Asynchronous DataStore-level queries (NMDB-19): submit, poll, page; runners that die."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from uuid_utils.compat import uuid7

import reeldb
from reeldb.database import check_request_id
from reeldb.errors import BackendUnavailableError
from reeldb.query import parse_query, to_json
from reeldb.store.base import QueryRequestRecord

DS = "vision/faces/1"
SCHEMA: dict[str, Any] = {
    "name": "faces",
    "levels": {
        "asset": {"properties": {"title": {"type": "text"}}},
        "region": {"properties": {"person": {"type": "keyword"}}},
    },
}
BOX = {"x": 0, "y": 0, "w": 0.5, "h": 0.5}
QUERY = 'region.person = "Alice" or asset.title contains storm'


def document(i: int) -> dict[str, Any]:
    people = ["Alice", "Bob", "Carol"]
    return {
        "asset": {"title": "storm warning" if i % 5 == 0 else "calm day"},
        "tracks": [
            {
                "components": [
                    {
                        "events": [
                            {
                                "time_range": {"start": e, "end": e + 1},
                                "regions": [{"bounding_box": BOX, "person": people[(i + e) % 3]}],
                            }
                            for e in range(i % 3)
                        ]
                    }
                ]
            }
        ],
    }


def _open(path: Path, **settings: Any) -> reeldb.Database:
    return reeldb.connect(f"sqlite:///{path / 'reel.db'}", **settings)


def _filled(path: Path, count: int = 30, **settings: Any) -> reeldb.Database:
    db = _open(path, **settings)
    db.create_namespace("vision")
    db.add_schema("vision", SCHEMA)
    db.create_datastore(DS, mid_keys=["title_id"], schema="faces")
    for i in range(count):
        db.put_document(DS, {"title_id": str(i)}, document(i))
    return db


def _all_results(db: reeldb.Database, request_id: Any, limit: int) -> list[Any]:
    found, cursor = [], None
    while True:
        page = db.query_results(request_id, limit=limit, cursor=cursor)
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return found


def test_results_equal_the_synchronous_query_page_by_page(tmp_path: Path) -> None:
    with _filled(tmp_path) as db:
        expected = db.query_datastore(DS, QUERY, limit=1000)
        request = db.submit_query(DS, QUERY)
        assert request.datastore == reeldb.DataStoreRef.parse(DS)
        assert request.state in ("pending", "running", "done")
        done = db.wait_query(request.id, timeout=30)
        assert (done.state, done.found, done.error) == ("done", len(expected.items), None)
        assert done.finished_at is not None and done.finished_at >= done.created_at
        assert _all_results(db, request.id, 7) == list(expected.items)
        assert db.query_results(request.id, limit=7).total == len(expected.items)
        every = db.wait_query(db.submit_query(DS, QUERY, all_versions=True).id, timeout=30)
        assert every.all_versions and every.found == len(expected.items)


def test_a_bad_query_is_refused_at_submission(tmp_path: Path) -> None:
    with _filled(tmp_path, 1) as db:
        with pytest.raises(reeldb.QueryError, match="did you mean region.person"):
            db.submit_query(DS, 'region.persn = "Alice"')
        with pytest.raises(reeldb.NotFoundError):
            db.submit_query("vision/nothing/1", QUERY)
        with pytest.raises(reeldb.ValidationError, match="invalid query request id"):
            db.get_query_request("not-a-uuid")
        with pytest.raises(reeldb.NotFoundError, match="no query request"):
            db.query_results("01936f5e-0000-7000-8000-000000000000")


def test_a_request_nobody_ran_is_run_by_the_next_poll_from_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _filled(tmp_path) as first:
        monkeypatch.setattr(first, "_start_query", lambda request_id: None)  # it "died"
        request = first.submit_query(DS, QUERY)
        assert request.state == "pending"
        with pytest.raises(reeldb.ConflictError, match="is pending: poll it until it is done"):
            first.query_results(request.id)
        expected = first.query_datastore(DS, QUERY, limit=1000).items
    with _open(tmp_path) as second:
        assert second.wait_query(request.id, timeout=30).state == "done"
        assert _all_results(second, request.id, 4) == list(expected)


def test_a_runner_whose_lease_ran_out_is_taken_over_from_scratch(tmp_path: Path) -> None:
    with _filled(tmp_path) as db:
        expected = db.query_datastore(DS, QUERY, limit=1000).items
        record = _pending(db)
        # A runner claimed it, stored a bogus partial result and died; its lease ran out.
        past = datetime.now(UTC) - timedelta(minutes=5)
        assert db.store.claim_query_request(record.id, "dead", past, past + timedelta(seconds=1))
        assert db.store.add_query_results(record.id, "dead", [(expected[0].id, "{}")] * 3, past)
        assert db.wait_query(record.id, timeout=30).found == len(expected)
        assert _all_results(db, record.id, 5) == list(expected)


def test_a_live_runner_is_left_alone(tmp_path: Path) -> None:
    with _filled(tmp_path, 3) as db:
        record = _pending(db)
        now = datetime.now(UTC)
        assert db.store.claim_query_request(record.id, "busy", now, now + timedelta(hours=1))
        assert db.wait_query(record.id, timeout=0.3).state == "running"
        with pytest.raises(reeldb.ConflictError, match="is running"):
            db.query_results(record.id)


def test_a_failing_query_is_failed_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _filled(tmp_path, 3) as db:

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise BackendUnavailableError("the disk went away")

        monkeypatch.setattr(db.store, "search_documents", broken)
        done = db.wait_query(db.submit_query(DS, QUERY).id, timeout=30)
        assert (done.state, done.error) == ("failed", "the disk went away")
        with pytest.raises(reeldb.ConflictError, match="failed: the disk went away"):
            db.query_results(done.id)


def test_finished_requests_expire_after_the_ttl(tmp_path: Path) -> None:
    with _filled(tmp_path, 3, query_result_ttl=0.05) as db:
        old = db.wait_query(db.submit_query(DS, QUERY).id, timeout=30)
        assert old.state == "done"
        time.sleep(0.1)
        newer = db.submit_query(DS, QUERY)  # submitting sweeps what expired
        with pytest.raises(reeldb.NotFoundError):
            db.get_query_request(old.id)
        assert db.wait_query(newer.id, timeout=30).state == "done"


def test_a_query_survives_kill_9_of_the_process_that_ran_it(tmp_path: Path) -> None:
    _filled(tmp_path, 40).close()
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        import reeldb
        db = reeldb.connect({f"sqlite:///{tmp_path / 'reel.db'}"!r})
        def slow(*args, **kwargs):
            time.sleep(60)  # stuck mid-run: killed here, lease held
        db.store.add_query_results = slow
        request = db.submit_query({DS!r}, {QUERY!r})
        while db.store.get_query_request(request.id).state != "running":
            time.sleep(0.01)
        print(request.id, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        request_id = child.stdout.readline().strip()
        child.kill()
    with _open(tmp_path) as db:
        assert db.get_query_request(request_id).state == "running"  # lease still held
        record = db.store.get_query_request(check_request_id(request_id))
        assert record.lease_until is not None
        # Time passes beyond the dead runner's lease: the next poll takes it over.
        later = record.lease_until + timedelta(seconds=1)
        claimed = db.store.claim_query_request(record.id, "rescuer", later, later)
        assert claimed is not None and claimed.owner == "rescuer"
        db.store.finish_query_request(record.id, "rescuer", error=None, finished_at=None)
        done = db.wait_query(request_id, timeout=30)
        assert done.state == "done"
        assert _all_results(db, request_id, 10) == list(
            db.query_datastore(DS, QUERY, limit=1000).items
        )


def _pending(db: reeldb.Database) -> QueryRequestRecord:
    """A request stored as `submit_query` stores it, but that no runner of ``db`` started."""
    record = QueryRequestRecord(
        uuid7(),
        db.store.get_datastore(reeldb.DataStoreRef.parse(DS)).id,
        orjson.dumps(to_json(parse_query(QUERY))).decode(),
        False,
        "pending",
        created_at=datetime.now(UTC),
    )
    db.store.add_query_request(record)
    return record
