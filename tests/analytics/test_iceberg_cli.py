"""``reeldb export iceberg``: JSON output, the default warehouse, one-line errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import reeldb
from reeldb.cli import app
from reeldb.testing import FACE_DETECTION, face_document

RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None})
DS = "vision/face_detection/1"


def invoke(*args: str) -> Result:
    return RUNNER.invoke(app, list(args))


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'data' / 'reel.db'}"
    with reeldb.connect(url) as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore(DS, mid_keys=["title_id"], schema="face_detection")
        db.put_document(DS, {"title_id": "1"}, face_document(2))
    return url


def test_export_iceberg_json_then_nothing_new(url: str, tmp_path: Path) -> None:
    result = invoke("-d", url, "-o", "json", "export", "iceberg")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["warehouse"] == (tmp_path / "data" / "warehouse").as_uri()
    assert out["rows"] == {"documents": 1, "events": 2, "regions": 2, "annotations": 0}
    again = invoke("-d", url, "export", "iceberg", "--table", "documents")
    assert again.exit_code == 0, again.output
    assert "0 documents rows appended, 0 commits" in again.stdout


def test_export_iceberg_errors_are_one_line(url: str, tmp_path: Path) -> None:
    bad = invoke("-d", url, "export", "iceberg", "--since", "yesterday")
    assert bad.exit_code == 1
    assert "--since 'yesterday': give an ISO 8601 time" in bad.output
    assert "Traceback" not in bad.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = invoke("-d", url, "export", "iceberg", "--warehouse", str(blocker))
    assert bad.exit_code == 1
    assert "is not a writable directory" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    bad = invoke("-d", url, "export", "iceberg", "--catalog", "oracle://x")
    assert bad.exit_code == 1 and "the catalog is a SQL database" in bad.output
    bad = invoke("-d", url, "export", "iceberg", "--since", "2020-01-01", "--table", "movies")
    assert bad.exit_code == 1 and "unknown Iceberg table movies" in bad.output
