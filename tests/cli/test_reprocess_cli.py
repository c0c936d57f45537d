"""``reeldb reprocess``: run, status, list, pause/resume/cancel, dead letters and retry."""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import reeldb
from reeldb.cli import app
from reeldb.testing import BOUNDING_BOX

RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None})

FUNCTIONS = """
import os
import pathlib
import time


def two_processes(data, context):
    # Each process's first item waits (up to 25 s) until another process has logged one.
    log = pathlib.Path(context["options"]["log"])
    with log.open("a") as out:
        out.write("%d\\n" % os.getpid())
    deadline = time.monotonic() + 25
    while len(set(log.read_text().split())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    if "label" in data:
        return None
    data["label"] = "p"
    return data


def add_label(data, context):
    if "label" in data:
        return None
    if data["boundingBox"]["x"] == 3 and not pathlib.Path(context["options"]["fixed"]).exists():
        raise RuntimeError("x=3 is not ready")
    data["label"] = "x%d" % data["boundingBox"]["x"]
    return data
"""


def migrate_job(path: Path, function: str, options: str, limits: str) -> Path:
    """A TOML job moving BOUNDING_BOX annotations to version 1 with a function of the module."""
    path.write_text(
        f"""
name = "{path.stem}"
[source]
namespace = "vision"
annotation_type = "BOUNDING_BOX"
[processor]
kind = "migrate"
target_version = 1
function = "cli_reprocess_functions:{function}"
options = {{ {options} }}
[limits]
{limits}
"""
    )
    return path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    url = f"sqlite:///{tmp_path / 'd' / 'reel.db'}"
    (tmp_path / "cli_reprocess_functions.py").write_text(FUNCTIONS)
    sys.path.insert(0, str(tmp_path))
    with reeldb.connect(url) as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(BOUNDING_BOX))
        labeled = copy.deepcopy(BOUNDING_BOX)
        labeled["version"] = 1
        labeled["keys"]["properties"]["label"] = {"type": "string", "mandatory": False}
        db.add_schema("vision", labeled)
        for x in range(8):
            db.annotations.create(
                "vision",
                type="BOUNDING_BOX@0",
                associations=[{"type": "VIDEO", "id": "v"}],
                data={
                    "boundingBox": {"x": x, "y": 0, "w": 1, "h": 1},
                    "boxTimeRange": {"start": x, "end": x + 1},
                },
            )
    migrate_job(
        tmp_path / "label.toml",
        "add_label",
        f'fixed = "{tmp_path / "fixed"}"',
        "partitions = 2\nbatch = 3\nmax_attempts = 2\nbackoff = 0.01",
    )
    yield url, tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("cli_reprocess_functions", None)


def invoke(url: str, *args: str) -> Result:
    return RUNNER.invoke(app, ["--database", url, *args])


def test_a_job_runs_fails_an_item_and_its_retry_succeeds(world: tuple[str, Path]) -> None:
    url, work = world
    ran = invoke(url, "-o", "json", "reprocess", "run", str(work / "label.toml"))
    assert ran.exit_code == 0, ran.output
    job = json.loads(ran.stdout[ran.stdout.index("{") :])
    assert job["state"] == "done"
    assert job["progress"] == {
        "total": 8,
        "done": 8,
        "changed": 7,
        "skipped": 0,
        "failed": 1,
        "partitions": 2,
        "partitions_done": 2,
        "running": 0,
    }
    dead = invoke(url, "-o", "json", "reprocess", "dead", job["id"])
    [letter] = json.loads(dead.stdout)
    assert letter["attempts"] == 2 and "x=3 is not ready" in letter["error"]
    (work / "fixed").touch()
    retried = invoke(url, "reprocess", "retry", job["id"])
    assert retried.exit_code == 0, retried.output
    assert "1 dead letters" in retried.stdout and "is done" in retried.stdout
    assert json.loads(invoke(url, "-o", "json", "reprocess", "dead", job["id"]).stdout) == []
    with reeldb.connect(url) as db:
        labels = sorted(
            h.annotation.data.get("label", "") for h in db.annotations.search("vision").items
        )
    assert labels == [f"x{x}" for x in range(8)]


def test_status_list_and_steering(world: tuple[str, Path]) -> None:
    url, work = world
    (work / "fixed").touch()
    submitted = invoke(
        url, "-o", "json", "reprocess", "run", "--detach", "--dry-run", str(work / "label.toml")
    )
    job = json.loads(submitted.stdout)
    assert job["state"] == "running" and job["dry_run"] is True
    status = invoke(url, "reprocess", "status", job["id"])
    assert "Partitions of job" in status.stdout and "running" in status.stdout
    listed = invoke(url, "reprocess", "list", "vision")
    assert job["id"] in listed.stdout
    assert "is paused" in invoke(url, "reprocess", "pause", job["id"]).stdout
    again = invoke(url, "reprocess", "pause", job["id"])
    assert again.exit_code != 0 and "only a job that is running can be paused" in again.output
    assert "is running" in invoke(url, "reprocess", "resume", job["id"]).stdout
    worked = invoke(url, "-o", "json", "reprocess", "work", job["id"])
    done = json.loads(worked.stdout)
    assert done["state"] == "done" and done["progress"]["changed"] == 8
    with reeldb.connect(url) as db:  # a dry run writes nothing
        assert all(h.annotation.version == 1 for h in db.annotations.search("vision").items)
    cancelled = invoke(url, "reprocess", "cancel", job["id"])
    assert cancelled.exit_code != 0 and "is done" in cancelled.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('name = "x"\n', "invalid job spec: /source: Field required"),
        ("name = \n", "is not valid TOML"),
        (
            'name = "x"\n[source]\nnamespace = "vision"\nannotations = true\n'
            '[processor]\nkind = "backfill"\nfunction = "no_such_module:f"\n',
            "cannot load processor function no_such_module:f",
        ),
        (
            'name = "x"\n[source]\nnamespace = "vision"\ndatastore = "vision/nope/1"\n'
            '[processor]\nkind = "reindex"\n',
            "does not exist",
        ),
    ],
)
def test_bad_jobs_get_one_line(world: tuple[str, Path], spec: str, message: str) -> None:
    url, work = world
    path = work / "bad.toml"
    path.write_text(spec)
    result = invoke(url, "reprocess", "run", str(path))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_unknown_job_is_one_line(world: tuple[str, Path]) -> None:
    url, _ = world
    result = invoke(url, "reprocess", "status", "01a250cd-f4db-7525-bd91-d051a0e6506b")
    assert result.exit_code == 1 and "no reprocessing job" in result.output
    result = invoke(url, "reprocess", "status", "nope")
    assert result.exit_code == 1 and "job id" in result.output


def test_processes_share_a_job_from_one_command(
    world: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, work = world
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(work), *sys.path]))
    log = work / "pids.log"
    job = migrate_job(
        work / "two.toml",
        "two_processes",
        f'log = "{log}"',
        "partitions = 4\nbatch = 2\nconcurrency = 2",
    )
    ran = invoke(url, "-o", "json", "reprocess", "run", str(job), "--processes", "2")
    assert ran.exit_code == 0, ran.output
    done = json.loads(ran.stdout[ran.stdout.index("{") :])
    assert (done["state"], done["progress"]["changed"]) == ("done", 8)
    assert len(set(log.read_text().split())) == 2  # this process and the one it started
    with reeldb.connect(url) as db:
        assert {h.annotation.type.version for h in db.annotations.search("vision").items} == {1}


def test_processes_need_a_database_others_can_open(world: tuple[str, Path]) -> None:
    _, work = world
    result = invoke("memory:", "reprocess", "run", str(work / "label.toml"), "--processes", "2")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: --processes needs a database other processes can open (a file or a server)"
    )
