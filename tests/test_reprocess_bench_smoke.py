"""Smoke test: the reprocessing benchmark runs at a tiny size and prints one JSON object."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO_ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow  # spawns a process


def _run(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "benchmarks/reprocess_bench.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    result = orjson.loads(lines[0])
    assert isinstance(result, dict)
    return result


def test_reprocess_bench_smoke(tmp_path: Path) -> None:
    result = _run(
        *("--count", "1500", "--batch", "400", "--live-seconds", "0.5", "--live-batch", "200"),
        *("--tmpdir", str(tmp_path)),
    )
    assert result["benchmark"] == "reprocess"
    assert result["sizes"]["annotations"] == 1500
    run = result["backends"]["sqlite"]
    assert run["load"]["per_s"] > 0
    export = run["export_iceberg"]
    assert export["rows"] == 1500  # one row per version: nothing was updated yet
    assert export["seconds"] > 0 and export["raw_parquet_write_s"] > 0
    assert export["job_progress"]["failed"] == 0
    for job in ("reindex", "backfill", "backfill_nothing_to_do"):
        assert run[job]["items"] == 1500, job
        assert run[job]["items_per_s"] > 0, job
    assert run["reindex"]["vs_raw_update"] > 0
    assert run["backfill"]["vs_raw_backfill"] > 0
    base = run["baselines"]
    assert base["rows"] == 1500
    for key in ("raw_read_per_s", "raw_update_per_s", "raw_backfill_per_s"):
        assert base[key] > 0, key
    reads = run["live_reads"]
    assert reads["budget_ms"] > 0
    for phase in ("idle", "adaptive", "unlimited"):
        assert reads[phase]["runs"] > 0, phase
        assert reads[phase]["p99_ms"] >= reads[phase]["p50_ms"] > 0, phase
    for phase in ("adaptive", "unlimited"):
        assert isinstance(reads[phase]["p99_rise"], float), phase
        assert reads[phase]["job_items_per_s"] >= 0, phase
    targets = result["targets"]["sqlite"]
    assert isinstance(targets["reindex_items_per_s_at_least_50k"], bool)
    assert targets["export_1m_below_10s"] is None  # judged at 1M only
    assert list(tmp_path.iterdir()) == []  # the temporary database and warehouse are gone
