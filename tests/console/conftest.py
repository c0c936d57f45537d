"""A live `reeldb serve` on loopback with known data, and Debian's Chromium driven by Playwright.

The browser tests skip when Chromium or the built console is missing, except under CI=true,
where they fail: CI must run them (`make test` builds the console and installs Chromium).
Set REELDB_SCREENSHOTS=1 to refresh the screenshots in docs/img (any other value: a folder).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_world import CHROMIUM, CHROMIUM_ARGS, Console, load_world, require_browser

REELDB = str(Path(sys.executable).with_name("reeldb"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{root}/reel.db"
    admin_key, reader_key, ids = load_world(url)
    port = _free_port()
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(
        [REELDB, "-d", url, "serve", "--port", str(port), "--no-access-log"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("reeldb serve did not start: " + (root / "serve.log").read_text())
        time.sleep(0.1)
    try:
        yield Console(base, admin_key, reader_key, ids, db_url=url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, per test module: Playwright's sync API keeps an event loop running in this
    thread while it is open, which code that refuses to run inside one (DBOS) must not meet
    in the tests that follow on the same xdist worker."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """A fresh tab (its own session storage) on the console, with page errors collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(console.url + "/")
    try:
        yield tab
        assert errors == [], f"errors in the page: {errors}"
    finally:
        context.close()
