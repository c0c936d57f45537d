"""The reeldb HTTP service (FastAPI): ``reeldb serve`` runs `create_app` under uvicorn.

See docs/http-api.md. Every ``/v1`` route is authenticated with an API key and authorised by
the principal's role in the route's namespace (`reeldb.auth.policy`).
"""

from __future__ import annotations

from reeldb.api._service import create_app

__all__ = ["create_app"]
