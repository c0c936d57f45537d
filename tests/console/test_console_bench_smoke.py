"""benchmarks/console_bench.py runs at tiny sizes and prints its JSON (shape, not speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from console_world import require_browser

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_console_bench_smoke(tmp_path: Path) -> None:
    require_browser()
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "console_bench.py"), "--events", "3000",
         "--baseline-events", "100", "--annotations", "300", "--frames", "10", "--repeat", "1",
         "--tmpdir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["benchmark"] == "console_timeline"
    assert out["document"]["items"] == 3000
    assert out["document"]["lanes"] == 10
    assert out["document"]["first_render_ms"] > 0
    assert out["document"]["pan_zoomed_out"]["frame_ms"]["n"] == 10
    assert out["baseline_document"]["items"] == 100
    assert out["association"]["items"] == 300
