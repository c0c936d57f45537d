"""The ASGI application: routes, problem+json errors, request ids, audit, metrics."""

from __future__ import annotations

import gc
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, Final

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reeldb import __version__, connect
from reeldb._problems import HTTP_PROBLEMS, MEDIA_TYPE, TYPE_PREFIX, problem_body
from reeldb.api import models as m
from reeldb.api._group_commit import GroupCommitter
from reeldb.api._routing import (
    AUDIT_KEY,
    SECURITY_SCHEME,
    AuditDraft,
    Routes,
    json_response,
)
from reeldb.api.routes import DOCUMENT_PATH, build_routes, document_response
from reeldb.auth.policy import Need
from reeldb.config import Settings, load_settings
from reeldb.console import console_routes
from reeldb.database import Database
from reeldb.errors import ReelError
from reeldb.reprocess._limits import LIVE, LatencyPublisher

__all__ = ["create_app"]

log = logging.getLogger("reeldb.api")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": title,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}},
    }
    for status, title in (
        (400, "Malformed request"),
        (401, "Missing or bad API key"),
        (403, "Role too weak"),
        (404, "Not found, or in a namespace where the caller has no role"),
        (409, "Conflict"),
        (413, "Body too large"),
        (415, "Body is not JSON"),
        (422, "Validation failed"),
        (503, "Database unavailable"),
    )
}


def _problem(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=MEDIA_TYPE)


def _request_id(request: Request) -> str:
    state = request.scope.get("state", {})
    return str(state.get("request_id", ""))


async def _reel_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReelError)
    body = problem_body(exc, instance=request.url.path, request_id=_request_id(request))
    headers = {}
    if body["status"] == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reeldb"'
    elif body["status"] == 503:
        headers["Retry-After"] = "1"
    elif body["status"] >= 500:
        log.error("request %s failed: %s", _request_id(request), exc)
    return _problem(body["status"], body, headers)


def _http_problem(request: Request, status: int, detail: str, **extra: Any) -> Response:
    slug, title, _ = HTTP_PROBLEMS.get(status, ("http-error", "HTTP error", None))
    body = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": _request_id(request),
        **extra,
    }
    return _problem(status, body)


def _pointer(loc: tuple[Any, ...]) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts) if parts else ""


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        err = next(e for e in errors if e.get("type") == "json_invalid")
        where = (err.get("ctx") or {}).get("error", "")
        return _http_problem(
            request,
            400,
            f"the request body is not valid JSON: {where} at position {err['loc'][-1]}",
        )
    violations = [
        {"pointer": _pointer(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
        for e in errors
    ]
    return _http_problem(request, 422, "the request does not match the API", violations=violations)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = str(exc.detail)
    if exc.status_code == 404:
        detail = f"no route {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    response = _http_problem(request, exc.status_code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s failed", _request_id(request))
    return _http_problem(request, 500, "internal error; the server log has the details")


_DOCUMENT_PREFIX = DOCUMENT_PATH.removesuffix("{document_id}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted under their name; any other is ``OTHER`` (labels are bounded)."""


_STEPS: Final = ("validate", "persist", "index")


def _write_queue_metrics(db: Database) -> bytes:
    """The asynchronous writes' backlog and step latencies (NMDB-38), read from the database.

    Read at each scrape from the shared table, so every process reports the same, whole
    queue (workers need not be scraped). Built as metric families, not as gauges, so
    that prometheus_client's multiprocess mode keeps no files for them.
    """
    depth = GaugeMetricFamily(
        "reeldb_write_requests",
        "Asynchronous writes not finished yet, by state (the queue's depth).",
        labels=("state",),
    )
    for state, count in sorted(db.store.count_write_requests().items()):
        depth.add_metric((state,), count)
    steps = GaugeMetricFamily(
        "reeldb_write_step_seconds",
        "Seconds the steps of the latest finished asynchronous writes took (up to 500).",
        labels=("step", "quantile"),
    )
    recent = [r for r in db.store.list_write_requests(limit=500) if r.finished]
    for step in _STEPS:
        times = sorted(r.steps[step] for r in recent if step in r.steps)
        for quantile in (0.5, 0.99):
            value = times[min(len(times) - 1, int(quantile * len(times)))] if times else 0.0
            steps.add_metric((step, str(quantile)), value)

    class _Families:
        def collect(self) -> list[GaugeMetricFamily]:
            return [depth, steps]

    registry = CollectorRegistry()
    registry.register(_Families())
    return generate_latest(registry)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "reeldb_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "reeldb_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template and method.",
            ("method", "route"),
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # `labels()` checks and looks up its arguments on every call; the children of the
        # few (method, route, status) combinations are kept here instead.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self.requests.labels(method, route, str(status))
            self._counters[method, route, status] = counter
        counter.inc()
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[method, route] = self.latency.labels(method, route)
        timer.observe(seconds)

    def exposition(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def _length(headers: dict[bytes, bytes]) -> int:
    try:
        return int(headers.get(b"content-length", b"0"))
    except ValueError:
        return 0


_BLOB_UPLOAD: Final = re.compile(r"/v1/namespaces/[^/]+/blobs/[^/]+(/parts/[^/]+)?")
"""Blob uploads stream any bytes of any size (their limit is the size announced)."""


class _ServiceMiddleware:
    """Request ids, bounded JSON bodies, the audit write and metrics, in one ASGI layer.

    One raw layer rather than several: each layer costs time on every request.
    """

    def __init__(self, app: ASGIApp, service: FastAPI, metrics: _Metrics, max_body: int) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.max_body = max_body
        self._document_route = next(
            r for r in service.routes if getattr(r, "path", None) == DOCUMENT_PATH
        )

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise StarletteHTTPException(413, self._too_large())
            return message

        return limited_receive

    def _too_large(self) -> str:
        return (
            f"the request body is larger than {self.max_body} bytes "
            "(setting max_request_bytes); large payloads go to the blob store"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
                draft = state.get(AUDIT_KEY)
                if draft is not None:
                    await self._audit(draft, request_id, status)
            await send(message)

        try:
            if scope["method"] == "GET" and scope["path"].startswith(_DOCUMENT_PREFIX):
                response = self._fast_document(scope, headers)
                if response is not None:
                    await response(scope, receive, send_wrapper)
                    return
            if (
                scope["method"] in _BODY_METHODS
                and scope["path"].startswith("/v1/")
                and not (scope["method"] == "PUT" and _BLOB_UPLOAD.match(scope["path"]))
            ):
                kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
                has_body = headers.get(b"content-length", b"0") != b"0" or (
                    b"transfer-encoding" in headers
                )
                refusal = None
                if has_body and not (kind == b"application/json" or kind.endswith(b"+json")):
                    shown = kind.decode("latin-1") or "none"
                    refusal = (415, f"send JSON with Content-Type: application/json, not {shown}")
                elif _length(headers) > self.max_body:
                    refusal = (413, self._too_large())
                if refusal is not None:
                    response = _http_problem(Request(scope, receive), *refusal)
                    await response(scope, receive, send_wrapper)
                    return
                receive = self._limited(receive)
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            self.metrics.observe(scope["method"], template, status, elapsed)
            LIVE.record(elapsed)  # what adaptive reprocessing jobs keep within their budget

    def _fast_document(self, scope: Scope, headers: dict[bytes, bytes]) -> Response | None:
        """Answer ``GET /v1/documents/{id}`` without the framework, or None.

        The hottest route, read by UIs: FastAPI's routing, exception layers and dependency
        solving cost several times the read itself. Only a successful read (200 or 304) is
        answered here, by the route's own `document_response`; anything else (no or bad
        key, bad ID, not found, any error) returns None and takes the full path, which
        answers it as it answers every request.
        """
        document_id = scope["path"][len(_DOCUMENT_PREFIX) :]
        scheme, _, credentials = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or len(document_id) != 36:
            return None
        db: Database = self.service.state.db
        try:
            principal = db.authenticate(credentials.strip())
            wanted = headers.get(b"if-none-match")
            response = document_response(
                db,
                principal,
                uuid.UUID(document_id),
                None if wanted is None else wanted.decode("latin-1"),
            )
        except Exception:  # noqa: BLE001 - the full path answers (and logs) it properly
            return None
        scope["route"] = self._document_route
        return response

    async def _audit(self, draft: AuditDraft, request_id: str, status: int) -> None:
        entry = draft.entry(request_id, status)
        db: Database = self.service.state.db
        try:
            await anyio.to_thread.run_sync(db.record_audit, [entry])
        except ReelError:
            # The action itself is done (or refused); failing the answer would mislead.
            log.exception("could not write the audit entry of request %s", request_id)


class _Service(FastAPI):
    """FastAPI with reeldb's own layer outermost, in front of FastAPI's own layers.

    Request ids, metrics and the audit then cover every answer, the 500s of FastAPI's
    error layer included, and the fast path for documents skips all of FastAPI.
    """

    outer: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.outer is None else self.outer(stack)


def _health_routes(service: FastAPI, metrics: _Metrics) -> Routes:
    r = Routes()

    @r.route(
        "GET",
        "/healthz",
        need=Need.PUBLIC,
        response_model=m.HealthOut,
        tags=["ops"],
        summary="Liveness: the process answers",
    )
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @r.route(
        "GET",
        "/readyz",
        need=Need.PUBLIC,
        response_model=m.HealthOut,
        tags=["ops"],
        summary="Readiness: the database answers",
    )
    def readyz() -> Response:
        db: Database = service.state.db
        db.list_system_admins()
        return json_response({"status": "ready"})

    @r.route(
        "GET",
        "/metrics",
        need=Need.PUBLIC,
        tags=["ops"],
        summary="Prometheus metrics: request counts and latency per route",
        response_class=PlainTextResponse,
    )
    def prometheus() -> Response:
        queue = _write_queue_metrics(service.state.db)
        return Response(metrics.exposition() + queue, media_type=CONTENT_TYPE_LATEST)

    return r


def create_app(db: Database | None = None, *, settings: Settings | None = None) -> FastAPI:
    """Build the reeldb HTTP service.

    Args:
        db: Serve this open database (the caller closes it). When None, the app opens the
            database named by the settings at startup and closes it at shutdown.
        settings: Settings when ``db`` is None (default: `reeldb.config.load_settings`).

    Returns:
        The ASGI application (``uvicorn reeldb.api:create_app --factory``).
    """
    effective = settings or (db.settings if db is not None else load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = (
            db if db is not None else connect(effective.database, **_overrides(effective))
        )
        app.state.committer = GroupCommitter()
        # For the adaptive limit of reprocessing jobs in other processes (the worker's).
        publisher = LatencyPublisher(app.state.db.store).start()
        # What exists now (modules, the app, its routes and models) lives as long as the
        # process: move it out of the collector's reach. Otherwise every full collection
        # walks it all again, stopping the worker for ~50 ms at a time under load (the
        # POST p99, measured with gc.callbacks).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(publisher.stop)
            # Queued writes are committed first: their requests may still be answered.
            await anyio.to_thread.run_sync(app.state.committer.close)
            if db is None:
                app.state.db.close()

    service = _Service(
        title="reeldb",
        version=__version__,
        summary="Media metadata and annotation database",
        description=(
            "Every `/v1` route needs an API key (`Authorization: Bearer rdb_...`) and the "
            "role named by its `x-reeldb-role`. Errors are RFC 9457 `application/problem+json`."
        ),
        lifespan=lifespan,
        # reeldb exports Prometheus metrics itself; FastAPI's built-in OpenTelemetry hooks
        # add about a tenth to the work of every small request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers={
            ReelError: _reel_error,
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
            Exception: _internal_error,
        },
        responses=_ERROR_RESPONSES,
    )
    if db is not None:
        service.state.db = db
    metrics = _Metrics()
    build_routes().install(service)
    _health_routes(service, metrics).install(service)
    service.router.routes.extend(console_routes())  # the web console at /
    service.outer = lambda app: _ServiceMiddleware(
        app, service=service, metrics=metrics, max_body=effective.max_request_bytes
    )
    _document_openapi(service)
    return service


def _overrides(settings: Settings) -> dict[str, Any]:
    values = asdict(settings)
    values.pop("database")
    return values


def _document_openapi(service: FastAPI) -> None:
    """Publish the request models of routes that parse their body themselves (documents)."""

    def openapi() -> dict[str, Any]:
        if service.openapi_schema is None:
            schema = get_openapi(
                title=service.title,
                version=service.version,
                summary=service.summary,
                description=service.description,
                routes=service.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {"ApiKey": SECURITY_SCHEME}
            components = schema["components"].setdefault("schemas", {})
            for model in (m.DocumentPut, m.DocumentBatch, m.ProblemOut):
                found = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
            # Every error is problem+json, FastAPI's own 422 included.
            problem = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}
            for operations in schema["paths"].values():
                for operation in operations.values():
                    public = operation.get("x-reeldb-role") == Need.PUBLIC.value
                    for status in list(operation["responses"]):
                        if public and status in ("401", "403"):
                            del operation["responses"][status]
                        elif int(status) >= 400:
                            operation["responses"][status]["content"] = problem
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            service.openapi_schema = schema
        return service.openapi_schema

    service.openapi = openapi  # type: ignore[method-assign]
