"""The docs are tested: examples run, generated sections are current, every name is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import reeldb

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", [pytest.param(p, id=p.name) for p in PAGES])
def test_python_examples_run(page: Path) -> None:
    """Each page's python blocks run in order, sharing one namespace (like a session)."""
    blocks = FENCE.findall(page.read_text())
    scope: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page.name}[{index}]", "exec"), scope)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{page.name} python block {index} failed: {exc!r}\n{block}")
    db = scope.get("db")
    if isinstance(db, reeldb.Database):
        db.close()


def test_generated_sections_are_current() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cogapp",
            "-I",
            "docs",
            "--check",
            "docs/cli.md",
            "docs/operations.md",
            "docs/http-api.md",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "", "COLUMNS": "100"},
    )
    assert result.returncode == 0, (
        "docs are stale: run "
        ".venv/bin/cog -I docs -r docs/cli.md docs/operations.md docs/http-api.md\n"
        + result.stdout
        + result.stderr
    )


def test_every_cli_command_is_documented() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from docs_helpers import commands
    finally:
        sys.path.remove(str(ROOT / "docs"))
    cli = (ROOT / "docs" / "cli.md").read_text()
    for path in commands():
        assert f"## `{' '.join(['reeldb', *path])}`" in cli


def test_every_public_name_is_documented() -> None:
    text = "\n".join(page.read_text() for page in PAGES)
    missing = [name for name in reeldb.__all__ if name != "__version__" and name not in text]
    assert missing == []
