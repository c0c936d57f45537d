"""Helpers shared by the benchmarks: one call timed, percentiles of many, a fresh database."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

import reeldb


def percentiles(samples: list[float], digits: int = 2) -> dict[str, float]:
    """p50 and p99 in milliseconds (nearest rank), and the number of samples."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, digits),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, digits),
        "runs": len(ordered),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call took, and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@contextmanager
def database(backend: str, work: Path, server: str) -> Iterator[str]:
    """A fresh reeldb database URL: a SQLite file in ``work``, or a new PostgreSQL database
    on ``server`` (dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{work / 'reel.db'}"
        return
    parts = urlsplit(server)
    name = f"reeldb_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def each_backend(
    backends: Sequence[str],
    tmpdir: str | None,
    server: str,
    run: Callable[[str, str, Path], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``run(backend, url, work_dir)`` on a fresh database of each backend, in order."""
    import tempfile

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        for backend in backends:
            work = Path(tmp) / backend
            work.mkdir()
            with database(backend, work, server) as url:
                results[backend] = run(backend, url, work)
    return results


def environment() -> dict[str, str]:
    """Where a benchmark ran: Python, SQLite and reeldb versions, the machine, the time."""
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "reeldb": reeldb.__version__,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
