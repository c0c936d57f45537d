"""How routes are declared: each names the `Need` it requires, beside the route.

Writes and admin actions also name their audit action. The need is published in OpenAPI as
``x-reeldb-role`` (and the audit action as ``x-reeldb-audit``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from reeldb import _json
from reeldb.auth.model import Principal
from reeldb.auth.policy import Need, authorize
from reeldb.database import Database
from reeldb.errors import UnauthenticatedError, ValidationError
from reeldb.model.document import Page

__all__ = ["AUDIT_KEY", "Routes", "db_of", "json_response", "paginate", "principal_of"]

T = TypeVar("T")
AUDIT_KEY = "reeldb.audit"
ROLE_EXTENSION = "x-reeldb-role"
AUDIT_EXTENSION = "x-reeldb-audit"

SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: `Authorization: Bearer rdb_...` (`reeldb keys create`).",
}
_PRINCIPAL_KEY = "reeldb.principal"


def db_of(request: Request) -> Database:
    """The service's database.

    Args:
        request: The request.

    Returns:
        The `Database` the app serves.
    """
    db: Database = request.app.state.db
    return db


def principal_of(request: Request) -> Principal:
    """The principal the route's guard authenticated.

    Args:
        request: The request.

    Returns:
        The principal with its current roles.
    """
    principal: Principal = request.scope["state"][_PRINCIPAL_KEY]
    return principal


def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise UnauthenticatedError(
            "send an API key in the Authorization header: Authorization: Bearer rdb_..."
        )
    return db_of(request).authenticate(credentials.strip())


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """What the middleware writes to the audit log once the answer's status is known."""

    principal: str
    action: str
    namespace: str | None
    target: str


def _guard(need: Need, audit: str | None) -> Callable[..., Any]:
    # One plain dependency per route: each FastAPI sub-dependency costs time per request.
    async def guard(request: Request) -> None:
        principal = _authenticate(request)
        state = request.scope.setdefault("state", {})
        state[_PRINCIPAL_KEY] = principal
        namespace = request.path_params.get("namespace")
        if audit is not None:
            state[AUDIT_KEY] = AuditDraft(principal.name, audit, namespace, request.scope["path"])
        authorize(principal, need, namespace)

    return guard


@dataclass(frozen=True, slots=True)
class _RouteSpec:
    method: str
    path: str
    endpoint: Callable[..., Any]
    options: dict[str, Any]


class Routes:
    """Routes that each declare their need (and audit action) beside them.

    They are installed straight on the app's router, in declaration order (hot routes
    first): an included router would add a second matching pass to every request.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.specs: list[_RouteSpec] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        need: Need,
        audit: str | None = None,
        status_code: int = 200,
        response_model: Any = None,
        summary: str | None = None,
        tags: Sequence[str] = (),
        openapi_extra: dict[str, Any] | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Declare a route.

        Args:
            method: The HTTP method.
            path: The path template.
            need: What the caller needs (`Need.PUBLIC` for no authentication).
            audit: The audit action name, for writes and admin actions.
            status_code: The success status.
            response_model: The success body's model (for OpenAPI).
            summary: One line for OpenAPI.
            tags: OpenAPI tags.
            openapi_extra: More OpenAPI for the operation.
            responses: More documented responses.

        Returns:
            The decorator.
        """
        extra: dict[str, Any] = {ROLE_EXTENSION: need.value, **(openapi_extra or {})}
        if need is not Need.PUBLIC:
            extra["security"] = [{"ApiKey": []}]
        if audit is not None:
            extra[AUDIT_EXTENSION] = audit
        dependencies = [] if need is Need.PUBLIC else [Depends(_guard(need, audit))]

        def register(endpoint: Callable[..., T]) -> Callable[..., T]:
            options = {
                "methods": [method],
                "dependencies": dependencies,
                "status_code": status_code,
                "response_model": response_model,
                "summary": summary,
                "tags": list(tags),
                "openapi_extra": extra,
                "responses": responses,
            }
            self.specs.append(_RouteSpec(method, self.prefix + path, endpoint, options))
            return endpoint

        return register

    def install(self, app: FastAPI) -> None:
        """Add the routes to an app.

        Args:
            app: The app.
        """
        for spec in self.specs:
            app.add_api_route(spec.path, spec.endpoint, **spec.options)


def json_response(
    value: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response encoded by orjson (``orjson.Fragment`` values are embedded verbatim).

    Args:
        value: The body.
        status_code: The status.
        headers: Extra headers.

    Returns:
        The response.
    """
    return Response(
        orjson.dumps(value), status_code, headers=headers, media_type="application/json"
    )


def page_json(page: Page[T], encode: Callable[[T], Any]) -> dict[str, Any]:
    """The wire form of a page.

    Args:
        page: The page.
        encode: Encodes one item.

    Returns:
        ``{"items": [...], "next_cursor": ...}``.
    """
    return {"items": [encode(item) for item in page.items], "next_cursor": page.next_cursor}


_KEY_CURSOR = "rdbk:"


def paginate(
    items: Sequence[T], key: Callable[[T], str], *, limit: int, cursor: str | None
) -> Page[T]:
    """Page through a listing ordered by a unique text key (keyset pagination).

    Args:
        items: Every item, in key order.
        key: The item's key.
        limit: Page size.
        cursor: The previous page's ``next_cursor``.

    Returns:
        The page.

    Raises:
        ValidationError: A cursor not made by this function.
    """
    after = None
    if cursor is not None:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raw = ""
        if not raw.startswith(_KEY_CURSOR):
            raise ValidationError(
                f"invalid cursor {cursor!r}: pass the next_cursor of a previous page"
            )
        after = raw[len(_KEY_CURSOR) :]
    remaining = [item for item in items if after is None or key(item) > after]
    page = remaining[:limit]
    more = len(remaining) > limit
    next_cursor = (
        base64.urlsafe_b64encode((_KEY_CURSOR + key(page[-1])).encode()).decode().rstrip("=")
        if more
        else None
    )
    return Page(tuple(page), next_cursor)


def parse_mid(text: str) -> dict[str, str]:
    """Read a MID given as a JSON object in a query parameter.

    Args:
        text: E.g. ``{"title_id": "80100172"}``.

    Returns:
        The MID (its keys and values are checked by the facade).

    Raises:
        ValidationError: Not a JSON object.
    """
    value = _json.loads(text, what="mid")
    if not isinstance(value, dict):
        raise ValidationError('mid must be a JSON object such as {"title_id": "80100172"}')
    return value
