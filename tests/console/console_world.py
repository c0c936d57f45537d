"""Helpers of the console's browser tests: the data they load and what they do in the page."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import reeldb
from reeldb.console import STATIC_DIR
from reeldb.demo import FACE_DETECTION, load_demo

CHROMIUM = os.environ.get("REELDB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SCREENSHOTS = os.environ.get("REELDB_SCREENSHOTS", "")  # read before clean_environ
DEMO_MID = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (make browser installs Debian's chromium)"
    if not (STATIC_DIR / "index.html").is_file():
        return "the console is not built (make console)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (make install)"
    return None


def require_browser() -> None:
    """Skip (or, under CI=true, fail) when the browser tests cannot run."""
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"console tests must run in CI: {reason}")
    pytest.skip(reason)


@dataclass
class Console:
    url: str
    admin_key: str
    reader_key: str
    document_ids: list[str]
    db_url: str = ""
    """The served database (tests run reprocessing jobs on it, as a worker would)."""

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


def load_world(url: str) -> tuple[str, str, list[str]]:
    """The demo data, a second schema version, a namespace the reader cannot see."""
    with reeldb.connect(url) as db:
        admin = db.bootstrap()
        assert admin is not None
        load_demo(db)
        newer = copy.deepcopy(FACE_DETECTION)
        newer["levels"]["event"]["properties"]["emotion"] = {"type": "keyword"}
        db.add_schema("demo", newer)
        db.create_namespace("secret-ns", description="not for readers of demo")
        reader = db.create_api_key("app:promo-tools", description="console tests")
        ids = [
            str(d.id)
            for d in db.list_documents("demo/face_detection/1", DEMO_MID).items  # newest first
        ]
        return admin.secret, reader.secret, ids


def sign_in(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=principal]")


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Save a screenshot (always to tmp_path; to docs/img when REELDB_SCREENSHOTS is set)."""
    folder = (
        tmp_path if not SCREENSHOTS else (DOCS_IMG if SCREENSHOTS == "1" else Path(SCREENSHOTS))
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path
