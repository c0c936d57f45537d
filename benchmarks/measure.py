"""Timing helpers shared by the benchmarks: one call timed, and percentiles of many."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


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
