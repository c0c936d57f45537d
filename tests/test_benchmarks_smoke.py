"""Smoke test: each benchmark runs at tiny sizes and prints one JSON object with positive rates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO_ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow  # spawns processes


def _run(script: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    result = orjson.loads(lines[0])
    assert isinstance(result, dict)
    return result


def test_bench_validation_smoke() -> None:
    result = _run("bench_validation.py", "--count", "2000", "--runs", "1")
    assert result["benchmark"] == "validation"
    assert result["count"] == 2000
    assert result["seed"] == 0
    assert result["python"]
    for key in (
        "reeldb_validator_is_valid_per_s",
        "reeldb_validate_api_per_s",
        "orjson_roundtrip_per_s",
        "jsonschema_rs_plain_per_s",
        "ratio_vs_plain_jsonschema_rs",
        "violations_per_s",
    ):
        assert result[key] > 0, key
    assert result["target_per_core"] == 200_000
    assert isinstance(result["meets_target"], bool)
    assert result["invalid_count"] == 200


def test_bench_write_small_smoke(tmp_path: Path) -> None:
    result = _run(
        "bench_write.py",
        *("--documents", "50", "--only", "small", "--runs", "1", "--tmpdir", str(tmp_path)),
    )
    assert result["benchmark"] == "write"
    assert result["synchronous"] == "full"
    assert "large_document" not in result
    small = result["small_documents"]
    assert small["documents"] == 50
    for run in ("single_put_document", "batch_put_documents_100"):
        assert small[run]["documents_per_s"] > 0
        assert small[run]["mb_per_s"] > 0
    baseline = result["baseline_executemany"]
    for run in ("single_row_per_transaction", "batch_100_rows_per_transaction"):
        assert baseline[run]["rows_per_s"] > 0
    assert baseline["ratio_single"] > 0
    assert baseline["ratio_batch"] > 0
    assert list(tmp_path.iterdir()) == []  # temporary databases were removed


def test_http_bench_quick_smoke(tmp_path: Path) -> None:
    # One worker, 1 s per scenario; without wrk the script's own Python load generator runs.
    result = _run("http_bench.py", "--quick", "--tmpdir", str(tmp_path))
    assert result["benchmark"] == "http"
    assert result["load_generator"] == ("wrk" if shutil.which("wrk") else "python")
    assert result["cpu_count"] >= 1
    assert result["errors_ok"] is True
    (run,) = result["runs"]
    assert run["workers"] == 1
    for scenario in ("baseline", "fastapi_hello", "healthz", "get", "post", "ann_get", "ann_post"):
        (measured,) = run[scenario]
        assert measured["connections"] == 4
        assert measured["rps"] > 0, scenario
        assert measured["error_rate"] <= 0.01, scenario
        assert measured["p99_ms"] >= measured["p50_ms"] >= 0, scenario
    assert run["get"][0]["vs_baseline"] > 0
    assert run["post_documents_stored"] >= run["post_2xx_measured"] > 0
    assert run["ann_post_annotations_stored"] >= run["ann_post_2xx_measured"] > 0
    assert result["targets"]["met"] is None  # judged on two workers only
    assert list(tmp_path.iterdir()) == []  # temporary databases and servers were removed


_ANNOTATION_READS = {
    "get_by_id",
    "by_association_first_100",
    "timeline_60s",
    "time_box_text_all_videos",
    "time_box_text_one_video",
}


def test_annotation_bench_quick_smoke(tmp_path: Path) -> None:
    result = _run("annotation_bench.py", "--quick", "--tmpdir", str(tmp_path))
    assert result["benchmark"] == "annotations"
    assert result["sizes"]["annotations"] == 20_000
    assert set(result["backends"]) == {"sqlite"}
    sqlite = result["backends"]["sqlite"]
    assert sqlite["create"]["annotations_per_s"] > 0
    assert sqlite["create"]["sql_executemany_per_s"] > 0
    assert sqlite["file_mb"] > 0
    assert set(sqlite["reads"]) == _ANNOTATION_READS
    for name, measured in sqlite["reads"].items():
        assert measured["runs"] == 20, name
        assert measured["p99_ms"] >= measured["p50_ms"] > 0, name
        assert measured["mean_hits"] > 0, name
        assert measured["sql_mean_hits"] == measured["mean_hits"], name  # the same question
    assert set(result["side_by_side"]["reads"]) == _ANNOTATION_READS
    assert isinstance(result["targets"]["search_p50_ms_below_5"], bool)
    assert "postgresql" not in result["targets"]
    assert list(tmp_path.iterdir()) == []


def test_annotation_bench_quick_smoke_postgresql(tmp_path: Path, postgres_url: str) -> None:
    # postgres_url: skips without a server (fails under CI=true); the benchmark creates (and
    # drops) its own database on the server it names.
    result = _run(
        "annotation_bench.py",
        *("--quick", "--backends", "sqlite", "postgresql", "--postgres", postgres_url),
        *("--tmpdir", str(tmp_path)),
    )
    assert set(result["backends"]) == {"sqlite", "postgresql"}
    pg = result["backends"]["postgresql"]
    for key in ("annotations_per_s", "sql_executemany_per_s", "sql_copy_per_s"):
        assert pg["create"][key] > 0, key
    assert pg["db_mb"] > 0
    for backend, measured_reads in ((b, r["reads"]) for b, r in result["backends"].items()):
        assert set(measured_reads) == _ANNOTATION_READS, backend
        for name, measured in measured_reads.items():
            assert measured["runs"] == 20, (backend, name)
            assert measured["p99_ms"] >= measured["p50_ms"] > 0, (backend, name)
            assert measured["sql_mean_hits"] == measured["mean_hits"] > 0, (backend, name)
    # The same data and questions on both backends: the same hits.
    sqlite_hits = {n: m["mean_hits"] for n, m in result["backends"]["sqlite"]["reads"].items()}
    assert {n: m["mean_hits"] for n, m in pg["reads"].items()} == sqlite_hits
    side = result["side_by_side"]
    assert set(side["create"]) == {"sqlite", "postgresql"}
    for name in _ANNOTATION_READS:
        assert set(side["reads"][name]) == {"sqlite", "postgresql"}, name
    assert isinstance(result["targets"]["postgresql"]["search_p50_ms_below_5"], bool)
    assert list(tmp_path.iterdir()) == []


_SEARCH_TARGETS = {
    "filter_p50_ms_below_20",
    "document_query_p50_ms_below_50",
    "ingest_regions_per_s_at_least_100k",
}


def _check_search_backend(found: dict[str, Any]) -> None:
    for key in ("regions_per_s", "big_document_regions_per_s", "big_document_floor_regions_per_s"):
        assert found["ingest"][key] > 0, key
    assert found["index"][0]["docs"] == 5
    for group in ("filters", "document_queries"):
        for name, measured in found[group].items():
            assert measured["p99_ms"] >= measured["p50_ms"] > 0, name
            assert measured["sql_p50_ms"] > 0, name
    # The selective queries find something (the data generator and the queries agree); the
    # benchmark itself asserts that each SQL baseline finds as many hits as reeldb.
    assert found["filters"]["title_words"]["mean_hits"] >= 1
    assert found["document_queries"]["time_window_10s"]["mean_hits"] > 0


def test_search_bench_quick_smoke(tmp_path: Path) -> None:
    result = _run("search_bench.py", "--quick", "--tmpdir", str(tmp_path))
    assert result["benchmark"] == "search"
    assert result["sizes"]["regions_total"] == (4 * 500 + 2000) * 10
    assert list(result["backends"]) == ["sqlite"]
    _check_search_backend(result["backends"]["sqlite"])
    assert result["backends"]["sqlite"]["file_mb"] > 0
    assert set(result["targets"]) == _SEARCH_TARGETS
    assert list(tmp_path.iterdir()) == []


def test_search_bench_quick_smoke_postgresql(tmp_path: Path, postgres_url: str) -> None:
    # postgres_url: skips without a server (fails under CI=true); the benchmark creates (and
    # drops) its own database on the server it names.
    result = _run(
        "search_bench.py",
        *("--quick", "--backends", "sqlite", "postgresql", "--postgres", postgres_url),
        *("--tmpdir", str(tmp_path)),
    )
    assert list(result["backends"]) == ["sqlite", "postgresql"]
    for found in result["backends"].values():
        _check_search_backend(found)
    assert result["backends"]["postgresql"]["database_mb"] > 0
    side = result["side_by_side"]
    assert set(side["ingest_regions_per_s"]) == {"sqlite", "postgresql"}
    assert set(side["document_queries"]["time_window_10s"]) == {"sqlite", "postgresql"}
    assert set(result["targets"]) == _SEARCH_TARGETS | {"postgresql"}
    assert set(result["targets"]["postgresql"]) == _SEARCH_TARGETS
    assert list(tmp_path.iterdir()) == []


def test_ingest_bench_smoke(tmp_path: Path) -> None:
    result = _run("ingest_bench.py", "--quick", "--tmpdir", str(tmp_path))
    assert result["benchmark"] == "ingest"
    assert [size["regions"] for size in result["sizes"]] == [2_000, 10_000]
    for size in result["sizes"]:
        for key in ("regions_per_s", "floor_regions_per_s", "indexed_floor_regions_per_s"):
            assert size[key] > 0, key
        assert set(size["steps_s"]) == {"validate", "persist", "index"}
        assert size["worker_peak_rss_mb"] > 0
    assert isinstance(result["meets_memory"], bool)


def test_migrate_bench_quick_smoke(tmp_path: Path, postgres_url: str) -> None:
    result = _run(
        "migrate_bench.py", "--quick", "--postgres", postgres_url, "--tmpdir", str(tmp_path)
    )
    assert result["benchmark"] == "migrate-backend"
    sizes = result["sizes"]
    copied = result["reeldb"]["copied"]
    assert copied["documents"] == sizes["documents"] == 10
    assert copied["annotation versions"] == sizes["annotation_versions"] == 2200
    for key in ("regions_per_s", "annotation_versions_per_s"):
        assert result["reeldb"][key] > 0 and result["floor"][key] > 0, key
    assert set(result["reeldb"]["steps_s"]) >= {"documents", "index", "annotations"}
    assert list(tmp_path.iterdir()) == []


def test_iceberg_bench_smoke(tmp_path: Path) -> None:
    result = _run("iceberg_bench.py", "--quick", "--tmpdir", str(tmp_path))
    assert result["benchmark"] == "iceberg_export"
    [row] = result["results"]
    assert row["backend"] == "sqlite" and row["annotations"] == 5000
    for key in (
        "export_s",
        "export_rows_per_s",
        "raw_parquet_write_s",
        "hand_written_read_and_write_s",
        "incremental_s",
    ):
        assert row[key] > 0, key
    assert set(result["side_by_side"]) == {"sqlite"}
    assert list(tmp_path.iterdir()) == []


def test_reprocess_bench_smoke(tmp_path: Path) -> None:
    result = _run(
        "reprocess_bench.py",
        *("--count", "1500", "--batch", "400", "--live-seconds", "0.5", "--live-batch", "200"),
        *("--workers", "2", "--tmpdir", str(tmp_path)),
        timeout=120,
    )
    assert result["benchmark"] == "reprocess"
    assert result["sizes"]["annotations"] == 1500
    assert result["sizes"]["workers"] == 2  # the jobs ran in a second process too
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
    for found in (reads, reads["in_thread"]):  # a worker process, then a thread beside
        for phase in ("adaptive", "unlimited"):
            assert found[phase]["p99_ms"] >= found[phase]["p50_ms"] > 0, phase
            assert isinstance(found[phase]["p99_rise"], float), phase
            assert found[phase]["job_items_per_s"] >= 0, phase
            assert isinstance(found[phase]["job_ended_in_window"], bool), phase
    targets = result["targets"]["sqlite"]
    assert isinstance(targets["reindex_items_per_s_at_least_50k"], bool)
    assert targets["export_1m_below_10s"] is None  # judged at 1M only
    assert list(tmp_path.iterdir()) == []  # the temporary database and warehouse are gone
