"""The web console: static files built from ``console/`` and served by ``reeldb serve`` at ``/``.

The console is a single-page application that talks only to the public ``/v1`` API with the
API key its user signs in with. ``make console`` (run by ``make install``, ``make run`` and
``make test``) builds it with Vite into ``static/`` beside this module; see docs/console.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "console_routes"]

STATIC_DIR: Final = Path(__file__).with_name("static")
"""Where ``make console`` puts the built console (``index.html`` and ``assets/``)."""

_NOT_BUILT: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reeldb console: not built</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The reeldb console is not built</h1>
<p>This reeldb was installed without the web console's static files.
From a checkout of the repository, build them with <code>make console</code>
(Node.js 20 and npm), or run <code>make run</code>, which builds them first.</p>
<p>The HTTP API works without the console: see <a href="/docs">/docs</a>
and <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>
"""


class _Assets(StaticFiles):
    """Static files whose folder may not exist yet (an unbuilt console): 404, not 500."""

    async def check_config(self) -> None:
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()


def _index(static_dir: Path) -> Route:
    async def index(request: Request) -> Response:
        page = static_dir / "index.html"
        if not page.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    return Route("/", index, methods=["GET", "HEAD"], include_in_schema=False, name="console")


def console_routes(static_dir: Path = STATIC_DIR) -> list[BaseRoute]:
    """The console's routes: ``/`` (the page) and ``/assets`` (its hashed scripts and styles).

    Nothing else is mounted, so every other path (``/v1``, ``/docs``, ``/openapi.json``,
    health and metrics) is answered as before. When the console is not built, ``/`` answers
    ``503`` with a page that says how to build it.

    Args:
        static_dir: The directory of the built console.

    Returns:
        Starlette routes to append to the application's router.
    """
    assets = _Assets(directory=static_dir / "assets", check_dir=False)
    return [_index(static_dir), Mount("/assets", app=assets, name="console-assets")]
