"""The PostgreSQL tests cannot silently stop running in CI.

With ``CI=true`` an unreachable server fails the tests that need it; without, they skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_TEST = "tests/contract/test_metadata_store.py::test_namespaces[postgresql]"


def _run(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER")}
    env["REELDB_TEST_POSTGRES"] = "postgresql://postgres@127.0.0.1:1/nowhere"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-rs",
            ONE_TEST,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_an_unreachable_server_fails_under_ci() -> None:
    result = _run("true")
    assert result.returncode == 1, result.stdout
    assert "CI=true and PostgreSQL at postgresql://postgres@127.0.0.1:1/nowhere" in result.stdout
    assert "1 failed" in result.stdout or "1 error" in result.stdout


@pytest.mark.slow
def test_an_unreachable_server_skips_elsewhere() -> None:
    result = _run(None)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
