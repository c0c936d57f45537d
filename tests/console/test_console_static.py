"""`reeldb serve` serves the console at `/` and everything else as before."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
from console_world import Console
from starlette.applications import Starlette

from reeldb.console import console_routes


def test_root_serves_the_console_and_the_api_still_answers(console: Console) -> None:
    page = httpx.get(console.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
    assert scripts and all(s.startswith("/assets/") for s in scripts), scripts
    asset = httpx.get(console.url + scripts[0])
    assert asset.status_code == 200
    assert "javascript" in asset.headers["content-type"]
    assert "https://" not in page.text  # no CDN: everything is served from here
    assert httpx.get(console.url + "/docs").status_code == 200
    assert httpx.get(console.url + "/openapi.json").json()["info"]["title"] == "reeldb"
    assert "/" not in httpx.get(console.url + "/openapi.json").json()["paths"]
    missing = httpx.get(console.url + "/v1/no-such-route")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert console.api("GET", "/v1/whoami").json()["name"] == "user:admin"
    assert httpx.get(console.url + "/assets/nothing.js").status_code == 404


def _get(folder: Path, *paths: str) -> list[httpx.Response]:
    app = Starlette(routes=console_routes(folder))

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            return [await client.get(path) for path in paths]

    # In a thread of its own: Playwright's sync API may hold this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, run).result()


def test_without_a_build_the_root_says_how_to_build_it(tmp_path: Path) -> None:
    page, asset = _get(tmp_path / "not-built", "/", "/assets/index.js")
    assert page.status_code == 503
    assert "make console" in page.text
    assert asset.status_code == 404


def test_a_build_is_served_from_its_folder(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>built</title>")
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    page, asset = _get(tmp_path, "/", "/assets/app.js")
    assert "built" in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert asset.text == "console.log(1)"
