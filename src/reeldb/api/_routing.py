"""How routes are declared: each names the `Need` it requires, beside the route.

Writes and admin actions also name their audit action. The need is published in OpenAPI as
``x-reeldb-role`` (and the audit action as ``x-reeldb-audit``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, get_type_hints

import orjson
from fastapi import Depends, FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.types import ASGIApp, Receive, Scope, Send

from reeldb import _json
from reeldb.auth.model import AuditEntry, Principal
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
_TAKEN_KEY = "reeldb.audit.taken"


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

    def entry(self, request_id: str, status: int) -> AuditEntry:
        """The audit entry of the answered request.

        Args:
            request_id: The request id.
            status: The answer's HTTP status.

        Returns:
            The entry (its ``seq`` is assigned by the log).
        """
        return AuditEntry(
            0,
            datetime.now(UTC),
            self.principal,
            self.action,
            self.namespace,
            self.target,
            request_id,
            status,
        )


def commit_audit(request: Request, status: int) -> AuditEntry | None:
    """Take the request's audit entry, to be committed with the write it describes.

    The middleware then has nothing left to record for this request. If the write fails,
    the route puts the entry back (`restore_audit`) and the middleware records the refusal.

    Args:
        request: The request.
        status: The status the answer will have if the write commits.

    Returns:
        The entry, or None if the route is not audited.
    """
    state = request.scope["state"]
    draft: AuditDraft | None = state.pop(AUDIT_KEY, None)
    if draft is None:
        return None
    state[_TAKEN_KEY] = draft
    return draft.entry(str(state.get("request_id", "")), status)


def restore_audit(request: Request) -> None:
    """Give a taken audit entry back to the middleware (the write did not happen).

    Args:
        request: The request.
    """
    state = request.scope["state"]
    draft = state.pop(_TAKEN_KEY, None)
    if draft is not None:
        state[AUDIT_KEY] = draft


def note_audit_namespace(request: Request, namespace: str) -> None:
    """Record an action that names its namespace in the body (``namespace.create``) under it.

    Args:
        request: The request.
        namespace: The namespace the action concerns.
    """
    state = request.scope["state"]
    draft = state.get(AUDIT_KEY)
    if draft is not None and isinstance(namespace, str):
        state[AUDIT_KEY] = dataclasses.replace(draft, namespace=namespace)


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
    guard: Callable[[Request], Awaitable[None]] | None = None
    direct: bool = False


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
        response_class: type[Response] = JSONResponse,
        direct: bool = False,
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
            response_class: The success answer's class (for its OpenAPI media type).
            direct: Call the endpoint without FastAPI's per-request dependency solving
                (`_DirectRoute`), for the hottest routes. The endpoint then takes only the
                request, path parameters and dependencies on the request alone, and
                returns a `Response`.

        Returns:
            The decorator.
        """
        extra: dict[str, Any] = {ROLE_EXTENSION: need.value, **(openapi_extra or {})}
        if need is not Need.PUBLIC:
            extra["security"] = [{"ApiKey": []}]
        if audit is not None:
            extra[AUDIT_EXTENSION] = audit
        guard = None if need is Need.PUBLIC else _guard(need, audit)
        dependencies = [] if guard is None else [Depends(guard)]

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
                "response_class": response_class,
            }
            spec = _RouteSpec(method, self.prefix + path, endpoint, options, guard, direct)
            self.specs.append(spec)
            return endpoint

        return register

    def install(self, app: FastAPI) -> None:
        """Add the routes to an app.

        Args:
            app: The app.
        """
        for spec in self.specs:
            app.add_api_route(spec.path, spec.endpoint, **spec.options)
            if spec.direct:
                route = app.router.routes[-1]
                assert isinstance(route, APIRoute) and route.endpoint is spec.endpoint
                route.app = _direct_app(route, spec.guard)


def _direct_app(route: APIRoute, guard: Callable[[Request], Awaitable[None]] | None) -> ASGIApp:
    """An ASGI app that calls a route's endpoint without FastAPI's dependency solver.

    FastAPI resolves every parameter of every request through its general machinery (two
    exit stacks, the dependency graph, per-parameter validation): about as much CPU as
    the rest of a small request. Here the route's own parameters are read once, at
    start-up, into plain converters; the guard runs first, as it does as a dependency.
    What is published in OpenAPI, and the errors a bad parameter gets, stay the same.
    """
    hints = get_type_hints(route.endpoint, include_extras=True)
    readers: list[tuple[str, Callable[[Request], Any]]] = []
    for name in inspect.signature(route.endpoint).parameters:
        hint = hints[name]
        if hint is Request:
            readers.append((name, lambda request: request))
            continue
        provider = next(
            (
                m.dependency
                for m in getattr(hint, "__metadata__", ())
                if isinstance(m, params.Depends)
            ),
            None,
        )
        if provider is not None:
            readers.append((name, provider))
        elif name in route.param_convertors:
            readers.append((name, _path_reader(name, TypeAdapter(hint))))
        else:
            raise TypeError(f"a direct route cannot take parameter {name!r} ({route.path})")

    async def handler(request: Request) -> Response:
        if guard is not None:
            await guard(request)
        kwargs = {}
        for name, read in readers:
            value = read(request)
            kwargs[name] = await value if inspect.isawaitable(value) else value
        response: Response = await route.endpoint(**kwargs)
        return response

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)

        async def respond(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handler(request)
            await response(scope, receive, send)

        await wrap_app_handling_exceptions(respond, request)(scope, receive, send)

    return app


def _path_reader(name: str, adapter: TypeAdapter[Any]) -> Callable[[Request], Any]:
    def read(request: Request) -> Any:
        try:
            return adapter.validate_python(request.path_params[name])
        except PydanticValidationError as exc:
            errors = [{**e, "loc": ("path", name, *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from None

    return read


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
Key = tuple[str | int, ...]


def paginate(
    items: Sequence[T], key: Callable[[T], Key], *, limit: int, cursor: str | None
) -> Page[T]:
    """Page through a listing in the order of a unique key (keyset pagination).

    Args:
        items: Every item.
        key: The item's key; pages follow its order.
        limit: Page size.
        cursor: The previous page's ``next_cursor``.

    Returns:
        The page.

    Raises:
        ValidationError: A cursor not made by this function.
    """
    after: Key | None = None
    if cursor is not None:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            decoded = orjson.loads(raw[len(_KEY_CURSOR) :]) if raw.startswith(_KEY_CURSOR) else None
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = None
        if not isinstance(decoded, list) or not all(
            isinstance(part, str | int) and not isinstance(part, bool) for part in decoded
        ):
            raise ValidationError(
                f"invalid cursor {cursor!r}: pass the next_cursor of a previous page"
            )
        after = tuple(decoded)
    ordered = sorted(items, key=key)
    try:
        remaining = [item for item in ordered if after is None or key(item) > after]
    except TypeError:  # a forged cursor whose parts have other types than the keys
        raise ValidationError(
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous page"
        ) from None
    page = remaining[:limit]
    next_cursor = None
    if len(remaining) > limit:
        raw_key = _KEY_CURSOR + orjson.dumps(list(key(page[-1]))).decode()
        next_cursor = base64.urlsafe_b64encode(raw_key.encode()).decode().rstrip("=")
    return Page(tuple(page), next_cursor)


def parse_mid(text: str) -> Any:
    """Read a MID given as JSON in a query parameter (the facade checks what it holds).

    Args:
        text: E.g. ``{"title_id": "80100172"}``.

    Returns:
        The decoded value.

    Raises:
        ValidationError: Not JSON.
    """
    return _json.loads(text, what="mid")
