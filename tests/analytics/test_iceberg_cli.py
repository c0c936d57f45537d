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


def test_export_iceberg_every_keeps_exporting(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    naps: list[float] = []

    def nap(seconds: float) -> None:  # between runs: new data, then the user's Ctrl-C
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt
        with reeldb.connect(url) as db:
            db.put_document(DS, {"title_id": "2"}, face_document(3))

    monkeypatch.setattr("reeldb.cli._export.time.sleep", nap)
    wh = tmp_path / "wh"
    result = invoke("-d", url, "export", "iceberg", "--warehouse", str(wh), "--every", "0.5")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("exported")]
    assert len(lines) == 2 and naps == [0.5, 0.5]  # run, nap, run, nap (interrupted)
    assert "1 documents, 2 events, 2 regions, 0 annotations rows appended" in lines[0]
    assert "1 documents, 3 events, 3 regions, 0 annotations rows appended" in lines[1]


def test_export_iceberg_to_s3(url: str, s3_warehouse: str, tmp_path: Path) -> None:
    catalog = f"sqlite:///{tmp_path / 'lake' / 'catalog.db'}"
    args = ("-d", url, "-o", "json", "export", "iceberg", "--warehouse", s3_warehouse)
    result = invoke(*args, "--catalog", catalog, "-t", "events", "--since", "2000-01-01Z")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["warehouse"] == s3_warehouse and out["rows"] == {"events": 2}
    bad = invoke("-d", url, "export", "iceberg", "--warehouse", s3_warehouse)
    assert bad.exit_code == 1
    assert "a warehouse on S3 needs a catalog" in bad.output
