"""Reprocessing jobs over HTTP and the client: roles, plug-ins only, steering, dead letters."""

from __future__ import annotations

import copy
import importlib.metadata
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import reeldb
from reeldb.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from reeldb.testing import BOUNDING_BOX
from reeldb.workflows.writes import Worker

NS = "vision"


def add_label(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """The plug-in the tests install (entry point ``label``)."""
    if "label" in data:
        return None
    data["label"] = f"{context['options']['prefix']}{data['boundingBox']['x']}"
    return data


def bad_label(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A plug-in whose output never validates (``label`` is a string)."""
    return {**data, "label": 5}


def spec(**processor: Any) -> dict[str, Any]:
    return {
        "name": "test job",
        "source": {"namespace": NS, "annotation_type": "BOUNDING_BOX"},
        "processor": processor,
        "limits": {"partitions": 2, "batch": 4, "backoff": 0.01, "max_attempts": 1},
    }


@pytest.fixture
def world(live: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    db: reeldb.Database = live.db
    for namespace in (NS, "other"):
        db.create_namespace(namespace, admins=["user:alice"])
        db.add_schema(namespace, copy.deepcopy(BOUNDING_BOX))
        labeled = copy.deepcopy(BOUNDING_BOX)
        labeled["version"] = 1
        labeled["keys"]["properties"]["label"] = {"type": "string", "mandatory": False}
        db.add_schema(namespace, labeled)
    db.grant_role(NS, "user:wanda", "writer")
    db.grant_role(NS, "user:rita", "reader")
    for x in range(10):
        db.annotations.create(
            NS,
            type="BOUNDING_BOX@0",
            associations=[{"type": "VIDEO", "id": "v"}],
            data={
                "boundingBox": {"x": x, "y": 0, "w": 1, "h": 1},
                "boxTimeRange": {"start": x, "end": x + 1},
            },
        )
    plugins = [
        importlib.metadata.EntryPoint(
            name=name, value=f"{__name__}:{attribute}", group="reeldb.processors"
        )
        for name, attribute in (("label", "add_label"), ("bad-label", "bad_label"))
    ]
    real = importlib.metadata.entry_points

    def entry_points(**selection: Any) -> Any:
        if selection.get("group") == "reeldb.processors":
            return importlib.metadata.EntryPoints(plugins)
        return real(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    yield live


@pytest.fixture
def connect(world: Any) -> Iterator[Any]:
    """``connect(principal=None)``: a client (the admin's by default), closed after the test."""
    opened: list[Any] = []

    def open_client(principal: str | None = None) -> Any:
        client = world.client(None if principal is None else world.key(principal))
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def wait_done(client: Any, job_id: Any) -> Any:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.reprocess.get(job_id)
        if job.finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_a_writer_submits_a_plugin_job_that_a_worker_runs(world: Any, connect: Any) -> None:
    wanda = connect("user:wanda")
    job = wanda.reprocess.submit(
        spec(kind="migrate", function="label", target_version=1, options={"prefix": "x"})
    )
    assert job.state == "running" and job.created_by == "user:wanda"
    assert job.progress.total == 10 and job.progress.partitions == 2
    with Worker(world.db, name="jobs-api", poll=0.05):
        done = wait_done(wanda, job.id)
    assert (done.state, done.progress.changed, done.progress.failed) == ("done", 10, 0)
    assert [p.state for p in done.partitions] == ["done", "done"]
    labels = sorted(h.annotation.data["label"] for h in world.db.annotations.search(NS).items)
    assert labels == sorted(f"x{x}" for x in range(10))
    rita = connect("user:rita")
    assert [j.id for j in rita.reprocess.list_jobs(NS)] == [job.id]
    # The audit log names who submitted it.
    actions = [e.action for e in world.db.list_audit(NS, limit=100).items]
    assert "job.submit" in actions


def test_roles_and_tenants(world: Any, connect: Any) -> None:
    rita = connect("user:rita")
    with pytest.raises(PermissionDeniedError):
        rita.reprocess.submit(spec(kind="reindex"))
    job = connect().reprocess.submit(spec(kind="reindex"))
    assert rita.reprocess.get(job.id).id == job.id
    with pytest.raises(PermissionDeniedError):
        rita.reprocess.pause(job.id)
    stranger = connect("user:stranger")
    with pytest.raises(NotFoundError):
        stranger.reprocess.get(job.id)
    # Another namespace's path does not reach the job.
    response = httpx.get(
        f"{world.url}/v1/namespaces/other/jobs/{job.id}",
        headers={"Authorization": f"Bearer {world.admin_key}"},
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_only_plugins_may_be_named_over_http(world: Any, connect: Any) -> None:
    client = connect()
    with pytest.raises(PermissionDeniedError, match="only name installed plug-ins"):
        client.reprocess.submit(spec(kind="backfill", function="os:system"))
    with pytest.raises(reeldb.errors.ConfigError, match="no processor plug-in named"):
        client.reprocess.submit(spec(kind="backfill", function="nope"))
    assert client.reprocess.list_jobs(NS) == []


def test_http_jobs_write_files_only_in_the_exports_directory(world: Any, connect: Any) -> None:
    client = connect()
    for sink in (
        {"kind": "jsonl", "path": "/tmp/anywhere"},
        {"kind": "jsonl", "path": "../../escape"},
        {"kind": "parquet", "path": "a/../../b"},
    ):
        with pytest.raises(PermissionDeniedError, match="exports directory"):
            client.reprocess.submit({**spec(kind="custom", function="label"), "sink": sink})
    with pytest.raises(PermissionDeniedError, match="warehouse"):
        client.reprocess.submit({**spec(kind="export-iceberg"), "sink": {"warehouse": "/tmp/lake"}})
    job = client.reprocess.submit(
        {
            **spec(kind="custom", function="label", options={"prefix": "f"}),
            "sink": {"kind": "jsonl", "path": "labels"},
        }
    )
    assert job.spec.sink.path is not None and job.spec.sink.path.endswith("/exports/labels")
    assert [j.id for j in client.reprocess.list_jobs(NS)] == [job.id]


def test_bad_specs_are_problems_not_500s(world: Any, connect: Any) -> None:
    headers = {"Authorization": f"Bearer {world.admin_key}"}
    url = f"{world.url}/v1/namespaces/{NS}/jobs"
    for body in (
        {"name": "x"},
        {**spec(kind="reindex"), "source": {"namespace": NS}},
        {**spec(kind="backfill")},
        {**spec(kind="reindex"), "source": {"namespace": "other", "annotations": True}},
        "not an object",
    ):
        response = httpx.post(url, json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    with pytest.raises(ValidationError):
        connect().reprocess.submit({"name": "x"})


def test_steering_and_dead_letters(world: Any, connect: Any) -> None:
    client = connect()
    # Every item's new version is invalid: each goes to the dead letters at once.
    job = client.reprocess.submit(spec(kind="migrate", function="bad-label", target_version=1))
    assert client.reprocess.pause(job.id).state == "paused"
    with pytest.raises(ConflictError):
        client.reprocess.pause(job.id)
    assert client.reprocess.resume(job.id).state == "running"
    with Worker(world.db, name="jobs-api-2", poll=0.05):
        done = wait_done(client, job.id)
        assert (done.state, done.progress.failed) == ("done", 10)
        letters = client.reprocess.dead_letters(job.id)
        assert len(letters) == 10
        assert all("ValidationError" in d.error and "label" in d.error for d in letters)
        assert client.reprocess.dead_letters(job.id, after=letters[4].item, limit=3) == letters[5:8]
        assert client.reprocess.retry(job.id) == 10
        again = wait_done(client, job.id)
    assert again.progress.failed == 20  # they failed again, and stay dead letters
    assert len(client.reprocess.dead_letters(job.id)) == 10
    with pytest.raises(ConflictError):
        client.reprocess.cancel(job.id)
