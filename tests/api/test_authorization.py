"""The authorisation matrix: every route of the service x every kind of caller.

Each route declares its need in OpenAPI (``x-reeldb-role``). For every route this module
sends one concrete request (from `REQUESTS`, a table keyed by method and path template) as
each caller in `CALLERS` and checks the policy:

- unauthenticated (no key, a key that is not one, another scheme, a wrong secret, a revoked
  key): 401 with ``WWW-Authenticate``;
- a role in the namespace too weak for the route: 403;
- no role in the namespace (someone else's admin, a principal with no roles): 404 whose
  body is the one the same caller gets for a namespace that does not exist;
- system routes: 403 for everyone but system administrators;
- otherwise 2xx, and every audited call (allowed or refused) is in the audit log with its
  principal, action, status and the answer's ``X-Request-ID``.

A route added without a declared role, or without a row in `REQUESTS`, fails
`test_every_route_declares_a_role_and_has_a_request`.
"""

from __future__ import annotations

import copy
import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

import reeldb
from reeldb.api import create_app
from reeldb.auth.policy import Need
from reeldb.testing import BOUNDING_BOX, FACE_DETECTION, MID, face_document

VISION = "vision"
OTHER = "other"
MISSING = "no-such-namespace"
DATASTORE = "face_detection/1"


# -- the world ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Someone calling the service."""

    name: str
    principal: str | None
    """Who the service sees; None when the credentials do not authenticate."""
    role: str | None = None
    """The principal's role in `VISION`."""
    system: bool = False


CALLERS = (
    Caller("no_key", None),
    Caller("not_a_key", None),
    Caller("not_bearer", None),
    Caller("wrong_secret", None),
    Caller("revoked_key", None),
    Caller("reader", "user:rita", role="reader"),
    Caller("writer", "app:wally", role="writer"),
    Caller("admin", "user:alice", role="admin"),
    Caller("other_admin", "user:olga"),
    Caller("no_roles", "user:nobody"),
    Caller("system_admin", "user:admin", system=True),
)
_RANK = {"reader": 1, "writer": 2, "admin": 3}


@dataclass
class World:
    """Two tenants, `VISION` and `OTHER`, each with a schema, a DataStore and a document."""

    http: httpx.Client
    db: reeldb.Database
    headers: dict[str, dict[str, str]]
    """The headers each caller (by name) sends."""
    vision_doc: str
    other_doc: str
    counter: Iterator[int] = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        """A name not used before in this world."""
        return f"{prefix}{next(self.counter)}"

    def call(
        self,
        caller: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request as a caller."""
        sent = {**self.headers[caller], **(headers or {})}
        content = None
        if json is not None:
            content = orjson.dumps(json)
            sent["Content-Type"] = "application/json"
        return self.http.request(method, path, params=params, content=content, headers=sent)

    def audit(self) -> list[dict[str, Any]]:
        """The whole audit log, as the system administrator reads it."""
        return _all_pages(self, "system_admin", "/v1/audit")


def _build_world(http: httpx.Client, db: reeldb.Database, admin_secret: str) -> World:
    for namespace, admin in ((VISION, "user:alice"), (OTHER, "user:olga")):
        db.create_namespace(namespace, admins=[admin])
        db.add_schema(namespace, copy.deepcopy(FACE_DETECTION))
        db.create_datastore(
            f"{namespace}/{DATASTORE}",
            mid_keys=["title_id", "video_stream_id"],
            schema="face_detection",
        )
        db.add_schema(namespace, copy.deepcopy(BOUNDING_BOX))
    db.grant_role(VISION, "user:rita", "reader")
    db.grant_role(VISION, "app:wally", "writer")
    vision_doc = db.put_document(f"{VISION}/{DATASTORE}", MID, face_document(title="vision"))
    other_doc = db.put_document(f"{OTHER}/{DATASTORE}", MID, face_document(title="other"))

    revoked = db.create_api_key("user:rita")
    db.revoke_api_key(revoked.key.key_id)
    real = db.create_api_key("user:rita").secret
    authorization = {
        "no_key": None,
        "not_a_key": "Bearer not-a-reeldb-key",
        "not_bearer": "Basic dXNlcjpyaXRh",
        "wrong_secret": f"Bearer {real[:-4]}{'BBBB' if real.endswith('AAAA') else 'AAAA'}",
        "revoked_key": f"Bearer {revoked.secret}",
        "system_admin": f"Bearer {admin_secret}",
    }
    for caller in CALLERS:
        if caller.name not in authorization:
            assert caller.principal is not None
            authorization[caller.name] = f"Bearer {db.create_api_key(caller.principal).secret}"
    headers = {
        name: {} if value is None else {"Authorization": value}
        for name, value in authorization.items()
    }
    return World(http, db, headers, str(vision_doc.id), str(other_doc.id))


@pytest.fixture(scope="module")
def world(service_app: tuple[FastAPI, str]) -> Iterator[World]:
    """One world for the module, served by the session's running service."""
    app, url = service_app
    with reeldb.connect("memory:") as db, httpx.Client(base_url=url, timeout=10) as http:
        admin = db.bootstrap()
        assert admin is not None
        previous = app.state.db
        app.state.db = db
        try:
            yield _build_world(http, db, admin.secret)
        finally:
            app.state.db = previous


def _all_pages(world: World, caller: str, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = {"limit": "1000"}
    while True:
        response = world.call(caller, "GET", path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        params["cursor"] = page["next_cursor"]


# -- one concrete request per route ---------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A concrete request; ``namespace`` and ``document_id`` say what a 404 may not reveal."""

    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None
    namespace: str | None = None
    document_id: str | None = None


Builder = Callable[[World, str], Call]
"""Builds the request for a route in `VISION` (given the world and a namespace name)."""

_DS = "/v1/namespaces/{ns}/datastores/face_detection/1"
_MID = orjson.dumps(MID).decode()


def _get(path: str, params: dict[str, str] | None = None) -> Builder:
    def build(world: World, ns: str) -> Call:
        return Call("GET", path.format(ns=ns, doc=world.vision_doc), params, namespace=ns)

    return build


def _send(method: str, path: str, body: Callable[[World], Any]) -> Builder:
    def build(world: World, ns: str) -> Call:
        return Call(method, path.format(ns=ns), json=body(world), namespace=ns)

    return build


def _grant_role(world: World, ns: str) -> Call:
    target = world.fresh("user:target-")
    return Call("PUT", f"/v1/namespaces/{ns}/roles/{target}", json={"role": "reader"}, namespace=ns)


def _revoke_role(world: World, ns: str) -> Call:
    target = world.fresh("user:target-")
    world.db.grant_role(VISION, target, "reader")
    return Call("DELETE", f"/v1/namespaces/{ns}/roles/{target}", namespace=ns)


def _new_schema(world: World) -> dict[str, Any]:
    definition = copy.deepcopy(FACE_DETECTION)
    definition["name"] = world.fresh("faces_")
    return {"definition": definition}


def _new_datastore(world: World) -> dict[str, Any]:
    return {
        "analysis_type": world.fresh("type_"),
        "version": 1,
        "mid_keys": ["title_id"],
        "schema": "face_detection",
    }


def _document(world: World) -> dict[str, Any]:
    return {"mid": MID, "document": face_document(title=world.fresh("doc "))}


def _system(method: str, path: str, body: Callable[[World], Any] | None = None) -> Builder:
    def build(world: World, ns: str) -> Call:
        return Call(method, path, json=None if body is None else body(world))

    return build


def _revoke_key(world: World, ns: str) -> Call:
    key = world.db.create_api_key(world.fresh("app:doomed-"))
    return Call("DELETE", f"/v1/keys/{key.key.key_id}")


def _get_document(world: World, ns: str) -> Call:
    return Call("GET", f"/v1/documents/{world.vision_doc}", document_id=world.vision_doc)


def _document_info(world: World, ns: str) -> Call:
    return Call("GET", f"/v1/documents/{world.vision_doc}/info", document_id=world.vision_doc)


def _query_document(world: World, ns: str) -> Call:
    return Call(
        "POST",
        f"/v1/documents/{world.vision_doc}/query",
        json={"query": "event.time_range overlaps(0, 100)"},
        document_id=world.vision_doc,
    )


def _query_request(suffix: str) -> Builder:
    def build(world: World, ns: str) -> Call:
        submitted = world.db.submit_query(f"{VISION}/{DATASTORE}", 'event.label = "face"')
        assert world.db.wait_query(submitted.id, timeout=30).state == "done"
        rid = str(submitted.id)
        return Call("GET", f"/v1/queries/{rid}{suffix}", document_id=rid)

    return build


def _upload_blob(world: World, ns: str) -> Call:
    made = world.db.blobs.create(VISION)
    return Call("PUT", f"/v1/namespaces/{ns}/blobs/{made.id}", json={"any": "bytes"}, namespace=ns)


def _blob_part(world: World, ns: str) -> Call:
    made = world.db.blobs.create(VISION)
    path = f"/v1/namespaces/{ns}/blobs/{made.id}/parts/1"
    return Call("PUT", path, json={"a": "part"}, namespace=ns)


def _blob_parts(world: World, ns: str) -> Call:
    made = world.db.blobs.create(VISION)
    world.db.blobs.upload_part(made.id, 1, [b"part"], namespace=VISION)
    return Call("GET", f"/v1/namespaces/{ns}/blobs/{made.id}/parts", namespace=ns)


def _complete_blob(world: World, ns: str) -> Call:
    made = world.db.blobs.create(VISION)
    world.db.blobs.upload_part(made.id, 1, [b"part"], namespace=VISION)
    return Call("POST", f"/v1/namespaces/{ns}/blobs/{made.id}/complete", json={}, namespace=ns)


def _get_blob(world: World, ns: str) -> Call:
    made = world.db.blobs.create(VISION)
    return Call("GET", f"/v1/namespaces/{ns}/blobs/{made.id}", namespace=ns)


def _write_request(world: World, ns: str) -> Call:
    made, _ = world.db.submit_write(f"{VISION}/{DATASTORE}", MID, document=face_document())
    return Call("GET", f"/v1/requests/{made.id}", document_id=str(made.id))


_JOB_SPEC = {
    "name": "authorization",
    "source": {"namespace": VISION, "annotations": True},
    "processor": {"kind": "reindex"},
}


def _job(world: World, *, paused: bool = False) -> str:
    made = world.db.reprocess.submit(_JOB_SPEC)
    if paused:
        world.db.reprocess.pause(made.id)
    return str(made.id)


def _job_call(method: str, suffix: str = "", *, paused: bool = False) -> Builder:
    def build(world: World, ns: str) -> Call:
        path = f"/v1/namespaces/{ns}/jobs/{_job(world, paused=paused)}{suffix}"
        return Call(method, path, json={} if method == "POST" else None, namespace=ns)

    return build


def _find_job(world: World, ns: str) -> Call:
    made = _job(world)
    return Call("GET", f"/v1/jobs/{made}", document_id=made)


_ANNOTATION = {
    "type": "BOUNDING_BOX",
    "associations": [{"type": "MOVIE_ID", "id": "81234567"}],
    "data": {
        "boundingBox": {"x": 0, "y": 0, "w": 10, "h": 10},
        "boxTimeRange": {"start": 1, "end": 2},
    },
}


def _annotation_call(method: str, suffix: str = "", body: Any = None) -> Builder:
    """A request on a new annotation of `VISION` (each caller gets its own)."""

    def build(world: World, ns: str) -> Call:
        made = world.db.annotations.create(VISION, **_ANNOTATION)
        path = f"/v1/namespaces/{ns}/annotations/{made.id}{suffix}"
        return Call(method, path, json=body, namespace=ns)

    return build


_DS_ROUTE = "/v1/namespaces/{namespace}/datastores/{analysis_type}/{version}"
_ANN = "/v1/namespaces/{ns}/annotations"
_ANN_ROUTE = "/v1/namespaces/{namespace}/annotations"
_TIMELINE = "/associations/{association_type}/{association_id:path}/timeline"

REQUESTS: dict[tuple[str, str], tuple[Need, Builder]] = {
    # (method, path template): (the need the route must declare, its request)
    ("GET", "/healthz"): (Need.PUBLIC, _system("GET", "/healthz")),
    ("GET", "/readyz"): (Need.PUBLIC, _system("GET", "/readyz")),
    ("GET", "/metrics"): (Need.PUBLIC, _system("GET", "/metrics")),
    ("GET", "/v1/whoami"): (Need.AUTHENTICATED, _system("GET", "/v1/whoami")),
    ("POST", "/v1/namespaces"): (
        Need.SYSTEM,
        _system("POST", "/v1/namespaces", lambda w: {"name": w.fresh("ns-")}),
    ),
    ("GET", "/v1/namespaces"): (Need.AUTHENTICATED, _system("GET", "/v1/namespaces")),
    ("GET", "/v1/namespaces/{namespace}"): (Need.READER, _get("/v1/namespaces/{ns}")),
    ("GET", "/v1/namespaces/{namespace}/roles"): (Need.ADMIN, _get("/v1/namespaces/{ns}/roles")),
    ("PUT", "/v1/namespaces/{namespace}/roles/{principal:path}"): (Need.ADMIN, _grant_role),
    ("DELETE", "/v1/namespaces/{namespace}/roles/{principal:path}"): (Need.ADMIN, _revoke_role),
    ("GET", "/v1/namespaces/{namespace}/audit"): (Need.ADMIN, _get("/v1/namespaces/{ns}/audit")),
    ("GET", "/v1/namespaces/{namespace}/schemas"): (
        Need.READER,
        _get("/v1/namespaces/{ns}/schemas"),
    ),
    ("POST", "/v1/namespaces/{namespace}/schemas"): (
        Need.ADMIN,
        _send("POST", "/v1/namespaces/{ns}/schemas", _new_schema),
    ),
    ("POST", "/v1/namespaces/{namespace}/schemas/check"): (
        Need.ADMIN,
        _send(
            "POST",
            "/v1/namespaces/{ns}/schemas/check",
            lambda w: {"definition": copy.deepcopy(FACE_DETECTION)},
        ),
    ),
    ("GET", "/v1/namespaces/{namespace}/schemas/{name}"): (
        Need.READER,
        _get("/v1/namespaces/{ns}/schemas/face_detection"),
    ),
    ("GET", "/v1/namespaces/{namespace}/schemas/{name}/versions"): (
        Need.READER,
        _get("/v1/namespaces/{ns}/schemas/face_detection/versions"),
    ),
    ("GET", "/v1/namespaces/{namespace}/schemas/{name}/versions/{version}"): (
        Need.READER,
        _get("/v1/namespaces/{ns}/schemas/face_detection/versions/1"),
    ),
    ("PUT", "/v1/namespaces/{namespace}/schemas/{name}/compatibility"): (
        Need.ADMIN,
        _send(
            "PUT",
            "/v1/namespaces/{ns}/schemas/face_detection/compatibility",
            lambda w: {"mode": "BACKWARD"},
        ),
    ),
    ("POST", "/v1/namespaces/{namespace}/schemas/{name}/validate"): (
        Need.READER,
        _send(
            "POST",
            "/v1/namespaces/{ns}/schemas/face_detection/validate",
            lambda w: {"instance": face_document()},
        ),
    ),
    ("POST", "/v1/namespaces/{namespace}/datastores"): (
        Need.ADMIN,
        _send("POST", "/v1/namespaces/{ns}/datastores", _new_datastore),
    ),
    ("GET", "/v1/namespaces/{namespace}/datastores"): (
        Need.READER,
        _get("/v1/namespaces/{ns}/datastores"),
    ),
    ("GET", _DS_ROUTE): (Need.READER, _get(_DS)),
    ("GET", _DS_ROUTE + "/count"): (Need.READER, _get(_DS + "/count")),
    ("POST", _DS_ROUTE + "/documents"): (Need.WRITER, _send("POST", _DS + "/documents", _document)),
    ("POST", _DS_ROUTE + "/documents/batch"): (
        Need.WRITER,
        _send("POST", _DS + "/documents/batch", lambda w: {"items": [_document(w)]}),
    ),
    ("GET", _DS_ROUTE + "/documents"): (Need.READER, _get(_DS + "/documents", {"mid": _MID})),
    ("GET", _DS_ROUTE + "/documents/latest"): (
        Need.READER,
        _get(_DS + "/documents/latest", {"mid": _MID}),
    ),
    ("GET", _DS_ROUTE + "/documents/{document_id}"): (Need.READER, _get(_DS + "/documents/{doc}")),
    # Authenticated, then the reader role in the document's namespace (known once it is read).
    ("GET", "/v1/documents/{document_id}"): (Need.READER, _get_document),
    ("POST", "/v1/documents/{document_id}/query"): (Need.READER, _query_document),
    ("GET", "/v1/documents/{document_id}/info"): (Need.READER, _document_info),
    ("POST", _DS_ROUTE + "/query"): (
        Need.READER,
        _send("POST", _DS + "/query", lambda w: {"query": 'event.label = "face"'}),
    ),
    ("POST", _DS_ROUTE + "/queries"): (
        Need.READER,
        _send("POST", _DS + "/queries", lambda w: {"query": 'event.label = "face"'}),
    ),
    # Authenticated, then the reader role in the query's namespace (known once it is read).
    ("GET", "/v1/queries/{request_id}"): (Need.READER, _query_request("")),
    ("GET", "/v1/queries/{request_id}/results"): (Need.READER, _query_request("/results")),
    ("GET", _DS_ROUTE + "/index"): (Need.READER, _get(_DS + "/index")),
    ("POST", _DS_ROUTE + "/index/rebuild"): (
        Need.ADMIN,
        _send("POST", _DS + "/index/rebuild", lambda w: {"batch_size": 100}),
    ),
    ("POST", "/v1/keys"): (
        Need.SYSTEM,
        _system("POST", "/v1/keys", lambda w: {"principal": "app:new"}),
    ),
    ("GET", "/v1/keys"): (Need.SYSTEM, _system("GET", "/v1/keys")),
    ("DELETE", "/v1/keys/{key_id}"): (Need.SYSTEM, _revoke_key),
    ("GET", "/v1/audit"): (Need.SYSTEM, _system("GET", "/v1/audit")),
    ("POST", _ANN_ROUTE): (Need.WRITER, _send("POST", _ANN, lambda w: _ANNOTATION)),
    ("POST", _ANN_ROUTE + "/batch"): (
        Need.WRITER,
        _send("POST", _ANN + "/batch", lambda w: {"items": [_ANNOTATION, _ANNOTATION]}),
    ),
    ("GET", _ANN_ROUTE): (Need.READER, _get(_ANN, {"association": "MOVIE_ID:81234567"})),
    ("GET", _ANN_ROUTE + "/count"): (Need.READER, _get(_ANN + "/count")),
    ("POST", _ANN_ROUTE + "/search"): (
        Need.READER,
        _send("POST", _ANN + "/search", lambda w: {"time": [0, 10], "limit": 5}),
    ),
    ("GET", _ANN_ROUTE + "/{annotation_id}"): (Need.READER, _annotation_call("GET")),
    ("GET", _ANN_ROUTE + "/{annotation_id}/versions"): (
        Need.READER,
        _annotation_call("GET", "/versions"),
    ),
    ("PATCH", _ANN_ROUTE + "/{annotation_id}"): (
        Need.WRITER,
        _annotation_call("PATCH", body={"expected_version": 1, "data": _ANNOTATION["data"]}),
    ),
    ("DELETE", _ANN_ROUTE + "/{annotation_id}"): (Need.WRITER, _annotation_call("DELETE")),
    ("GET", "/v1/namespaces/{namespace}" + _TIMELINE): (
        Need.READER,
        _get("/v1/namespaces/{ns}/associations/MOVIE_ID/81234567/timeline", {"end": "5"}),
    ),
    ("GET", "/v1/namespaces/{namespace}/association-types"): (
        Need.READER,
        _get("/v1/namespaces/{ns}/association-types"),
    ),
    ("POST", "/v1/namespaces/{namespace}/blobs"): (
        Need.WRITER,
        _send("POST", "/v1/namespaces/{ns}/blobs", lambda w: {"size": 12}),
    ),
    ("PUT", "/v1/namespaces/{namespace}/blobs/{blob_id}"): (Need.WRITER, _upload_blob),
    ("GET", "/v1/namespaces/{namespace}/blobs/{blob_id}"): (Need.READER, _get_blob),
    ("PUT", "/v1/namespaces/{namespace}/blobs/{blob_id}/parts/{number}"): (
        Need.WRITER,
        _blob_part,
    ),
    ("GET", "/v1/namespaces/{namespace}/blobs/{blob_id}/parts"): (Need.READER, _blob_parts),
    ("POST", "/v1/namespaces/{namespace}/blobs/{blob_id}/complete"): (
        Need.WRITER,
        _complete_blob,
    ),
    ("POST", _DS_ROUTE + "/documents/async"): (
        Need.WRITER,
        _send("POST", _DS + "/documents/async", _document),
    ),
    ("GET", "/v1/requests/{request_id}"): (Need.READER, _write_request),
    ("GET", "/v1/namespaces/{namespace}/requests"): (
        Need.READER,
        _get("/v1/namespaces/{ns}/requests"),
    ),
    ("POST", "/v1/namespaces/{namespace}/jobs"): (
        Need.WRITER,
        _send("POST", "/v1/namespaces/{ns}/jobs", lambda w: _JOB_SPEC),
    ),
    ("GET", "/v1/namespaces/{namespace}/jobs"): (Need.READER, _get("/v1/namespaces/{ns}/jobs")),
    ("GET", "/v1/namespaces/{namespace}/jobs/{job_id}"): (Need.READER, _job_call("GET")),
    # Authenticated, then the reader role in the job's namespace (known once it is read).
    ("GET", "/v1/jobs/{job_id}"): (Need.READER, _find_job),
    ("POST", "/v1/namespaces/{namespace}/jobs/{job_id}/pause"): (
        Need.WRITER,
        _job_call("POST", "/pause"),
    ),
    ("POST", "/v1/namespaces/{namespace}/jobs/{job_id}/resume"): (
        Need.WRITER,
        _job_call("POST", "/resume", paused=True),
    ),
    ("POST", "/v1/namespaces/{namespace}/jobs/{job_id}/cancel"): (
        Need.WRITER,
        _job_call("POST", "/cancel"),
    ),
    ("GET", "/v1/namespaces/{namespace}/jobs/{job_id}/dead-letters"): (
        Need.READER,
        _job_call("GET", "/dead-letters"),
    ),
    ("POST", "/v1/namespaces/{namespace}/jobs/{job_id}/retry"): (
        Need.WRITER,
        _job_call("POST", "/retry"),
    ),
    ("PUT", "/v1/namespaces/{namespace}/association-types"): (
        Need.ADMIN,
        _send("PUT", "/v1/namespaces/{ns}/association-types", lambda w: {"types": None}),
    ),
}


# -- the routes of the app ------------------------------------------------------------------


def _app_routes() -> dict[tuple[str, str], APIRoute]:
    with reeldb.connect("memory:") as db:
        app = create_app(db)
        found: dict[tuple[str, str], APIRoute] = {}
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if isinstance(route, APIRoute):
                for method in route.methods:
                    found[method, str(context.path)] = route
        return found


ROUTES = _app_routes()


def _declared(route: APIRoute) -> Any:
    return (route.openapi_extra or {}).get("x-reeldb-role")


def test_every_route_declares_a_role_and_has_a_request() -> None:
    undeclared = sorted(key for key, route in ROUTES.items() if _declared(route) not in set(Need))
    assert not undeclared, f"routes without a valid x-reeldb-role: {undeclared}"
    assert set(ROUTES) - set(REQUESTS) == set(), "routes without a request in REQUESTS"
    assert set(REQUESTS) - set(ROUTES) == set(), "REQUESTS rows for routes that do not exist"
    changed = {
        key: (REQUESTS[key][0].value, _declared(route))
        for key, route in ROUTES.items()
        if _declared(route) != REQUESTS[key][0]
    }
    assert not changed, f"declared needs differ from the table's (table, route): {changed}"


def test_the_live_openapi_publishes_each_routes_role(world: World) -> None:
    published = world.call("no_key", "GET", "/openapi.json").json()["paths"]
    for (method, path), (need, _) in REQUESTS.items():
        operation = published[re.sub(r"{(\w+):\w+}", r"{\1}", path)][method.lower()]
        assert operation["x-reeldb-role"] == need.value, (method, path)


# -- the matrix -----------------------------------------------------------------------------


def _expected(need: Need, caller: Caller) -> int | None:
    """The status class the caller must get (2 for any 2xx), or None for "404 as missing"."""
    if need is Need.PUBLIC:
        return 2
    if caller.principal is None:
        return 401
    if caller.system or need is Need.AUTHENTICATED:
        return 2
    if need is Need.SYSTEM:
        return 403
    if caller.role is None:
        return None
    return 2 if _RANK[caller.role] >= _RANK[need.value] else 403


def _without(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """A problem body with its per-request fields dropped and the names asked for blanked."""
    text = orjson.dumps({k: v for k, v in body.items() if k not in ("request_id", "instance")})
    decoded = text.decode()
    for name in names:
        decoded = decoded.replace(name, "<name>")
    result: dict[str, Any] = orjson.loads(decoded)
    return result


def _as_missing(call: Call) -> tuple[Call, str]:
    """The same request for a namespace (or document) that does not exist, and its name."""
    if call.document_id is not None:
        missing_id = str(uuid.uuid4())
        path = call.path.replace(call.document_id, missing_id)
        return Call(call.method, path, call.params, call.json, document_id=missing_id), missing_id
    assert call.namespace == VISION
    old, new = f"/v1/namespaces/{VISION}", f"/v1/namespaces/{MISSING}"
    path = call.path.replace(old, new, 1)
    return Call(call.method, path, call.params, call.json, MISSING), MISSING


def _send_call(world: World, caller: str, call: Call) -> httpx.Response:
    return world.call(caller, call.method, call.path, params=call.params, json=call.json)


@pytest.mark.parametrize(
    "route_key", sorted(set(ROUTES) | set(REQUESTS)), ids=lambda key: " ".join(key)
)
def test_authorization_matrix(world: World, route_key: tuple[str, str]) -> None:
    route = ROUTES[route_key]
    need, build = REQUESTS[route_key]
    assert _declared(route) == need, "the route declares another need than REQUESTS"
    audit_action = (route.openapi_extra or {}).get("x-reeldb-audit")
    audited: list[tuple[Caller, httpx.Response]] = []
    failures: list[str] = []

    for caller in CALLERS:
        call = build(world, VISION)
        response = _send_call(world, caller.name, call)
        expected = _expected(need, caller)
        got = response.status_code
        where = f"{caller.name}: {call.method} {call.path} -> {got} {response.text[:300]}"
        if expected == 2:
            if not 200 <= got < 300:
                failures.append(f"expected 2xx; {where}")
        elif expected is None:
            if got != 404:
                failures.append(f"expected 404 (no role); {where}")
            else:
                other_call, other_name = _as_missing(call)
                missing = _send_call(world, caller.name, other_call)
                name = call.document_id or VISION
                if missing.status_code != 404 or _without(response.json(), name) != _without(
                    missing.json(), other_name
                ):
                    failures.append(f"404 differs from a missing one's ({missing.text}); {where}")
        elif got != expected:
            failures.append(f"expected {expected}; {where}")
        if got == 401:
            if "www-authenticate" not in response.headers:
                failures.append(f"401 without WWW-Authenticate; {where}")
            elif not response.headers["www-authenticate"].lower().startswith("bearer"):
                failures.append(f"WWW-Authenticate is not Bearer; {where}")
        if got >= 400 and got != 401:
            assert response.headers["content-type"].startswith("application/problem+json")
        if audit_action is not None and caller.principal is not None:
            audited.append((caller, response))

    assert not failures, "\n".join(failures)

    if audited:
        log = {entry["request_id"]: entry for entry in world.audit()}
        for caller, response in audited:
            request_id = response.headers["x-request-id"]
            entry = log.get(request_id)
            assert entry is not None, f"{caller.name}'s {audit_action} ({request_id}) not audited"
            assert entry["principal"] == caller.principal
            assert entry["action"] == audit_action
            assert entry["status"] == response.status_code


# -- more specific rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("reader", {VISION}),
        ("writer", {VISION}),
        ("admin", {VISION}),
        ("other_admin", {OTHER}),
        ("no_roles", set()),
        ("system_admin", None),
    ],
)
def test_namespace_listing_shows_only_namespaces_with_a_role(
    world: World, caller: str, expected: set[str] | None
) -> None:
    listed = {ns["name"] for ns in _all_pages(world, caller, "/v1/namespaces")}
    if expected is None:
        expected = {ns.name for ns in world.db.list_namespaces()}
        assert {VISION, OTHER} <= expected
    assert listed == expected


def _problem_without_id(response: httpx.Response, document_id: str) -> dict[str, Any]:
    assert response.status_code == 404, response.text
    return _without(response.json(), document_id)


@pytest.mark.parametrize("caller", ["reader", "writer", "admin"])
def test_another_tenants_document_does_not_exist(world: World, caller: str) -> None:
    theirs = world.call(caller, "GET", f"/v1/documents/{world.other_doc}")
    missing_id = str(uuid.uuid4())
    missing = world.call(caller, "GET", f"/v1/documents/{missing_id}")
    assert _problem_without_id(theirs, world.other_doc) == _problem_without_id(missing, missing_id)
    # The owner's admin does see it.
    assert world.call("other_admin", "GET", f"/v1/documents/{world.other_doc}").status_code == 200


def test_another_tenants_document_under_own_datastore_does_not_exist(world: World) -> None:
    path = f"/v1/namespaces/{VISION}/datastores/{DATASTORE}/documents/"
    theirs = world.call("reader", "GET", path + world.other_doc)
    missing_id = str(uuid.uuid4())
    missing = world.call("reader", "GET", path + missing_id)
    assert _problem_without_id(theirs, world.other_doc) == _problem_without_id(missing, missing_id)


def test_writers_cannot_add_schemas_or_grant_roles(world: World) -> None:
    schema = world.call(
        "writer", "POST", f"/v1/namespaces/{VISION}/schemas", json=_new_schema(world)
    )
    assert schema.status_code == 403, schema.text
    assert schema.json()["type"] == "urn:reeldb:problem:forbidden"
    grant = world.call(
        "writer", "PUT", f"/v1/namespaces/{VISION}/roles/app:wally", json={"role": "admin"}
    )
    assert grant.status_code == 403, grant.text
    assert world.db.principal("app:wally").roles[VISION] == "writer"


def test_readers_cannot_write_documents(world: World) -> None:
    before = world.db.count_documents(f"{VISION}/{DATASTORE}")
    path = f"/v1/namespaces/{VISION}/datastores/{DATASTORE}/documents"
    one = world.call("reader", "POST", path, json=_document(world))
    batch = world.call("reader", "POST", path + "/batch", json={"items": [_document(world)]})
    assert (one.status_code, batch.status_code) == (403, 403), (one.text, batch.text)
    assert world.db.count_documents(f"{VISION}/{DATASTORE}") == before


def test_audit_log_records_writes_and_refusals(world: World) -> None:
    ds = f"/v1/namespaces/{VISION}/datastores/{DATASTORE}"
    chosen_id = f"test-audit-{uuid.uuid4().hex}"
    actions = [
        # (caller, method, path, body, headers, action, status, namespace)
        ("writer", "POST", ds + "/documents", _document(world), {}, "document.put", 201, VISION),
        (
            "writer",
            "POST",
            f"/v1/namespaces/{VISION}/schemas",
            _new_schema(world),
            {"X-Request-ID": chosen_id},
            "schema.add",
            403,
            VISION,
        ),
        ("reader", "POST", ds + "/documents", _document(world), {}, "document.put", 403, VISION),
        (
            "admin",
            "PUT",
            f"/v1/namespaces/{VISION}/roles/user:newcomer",
            {"role": "reader"},
            {},
            "role.grant",
            200,
            VISION,
        ),
        ("admin", "POST", "/v1/keys", {"principal": "app:x"}, {}, "key.create", 403, None),
        ("system_admin", "POST", "/v1/keys", {"principal": "app:x"}, {}, "key.create", 201, None),
        (
            "other_admin",
            "PUT",
            f"/v1/namespaces/{OTHER}/roles/user:newcomer",
            {"role": "reader"},
            {},
            "role.grant",
            200,
            OTHER,
        ),
    ]
    sent = []
    for caller, method, path, body, headers, action, status, namespace in actions:
        response = world.call(caller, method, path, json=body, headers=headers)
        assert response.status_code == status, (caller, method, path, response.text)
        request_id = response.headers["x-request-id"]
        if headers:
            assert request_id == chosen_id
        sent.append((caller, action, status, namespace, request_id))

    def check(entries: list[dict[str, Any]], expected: list[Any]) -> None:
        by_id = {entry["request_id"]: entry for entry in entries}
        for caller, action, status, namespace, request_id in expected:
            entry = by_id.get(request_id)
            assert entry is not None, f"{caller} {action} {status} ({request_id}) not in the log"
            principal = next(c.principal for c in CALLERS if c.name == caller)
            assert (entry["principal"], entry["action"], entry["status"]) == (
                principal,
                action,
                status,
            )
            assert entry["namespace"] == namespace

    check(world.audit(), sent)
    vision_log = _all_pages(world, "admin", f"/v1/namespaces/{VISION}/audit")
    check(vision_log, [s for s in sent if s[3] == VISION])
    assert {entry["namespace"] for entry in vision_log} == {VISION}
    not_vision = {s[4] for s in sent if s[3] != VISION}
    assert not not_vision & {entry["request_id"] for entry in vision_log}


def test_role_and_key_changes_apply_to_the_next_request(world: World) -> None:
    principal = world.fresh("user:temp-")
    key = world.db.create_api_key(principal)
    world.headers[principal] = {"Authorization": f"Bearer {key.secret}"}
    write = f"/v1/namespaces/{VISION}/datastores/{DATASTORE}/documents"
    roles = f"/v1/namespaces/{VISION}/roles/{principal}"

    assert world.call(principal, "POST", write, json=_document(world)).status_code == 404
    assert world.call("admin", "PUT", roles, json={"role": "writer"}).status_code == 200
    assert world.call(principal, "POST", write, json=_document(world)).status_code == 201
    assert world.call("admin", "PUT", roles, json={"role": "reader"}).status_code == 200
    assert world.call(principal, "POST", write, json=_document(world)).status_code == 403
    assert world.call("admin", "DELETE", roles).status_code == 204
    assert world.call(principal, "POST", write, json=_document(world)).status_code == 404
    revoked = world.call("system_admin", "DELETE", f"/v1/keys/{key.key.key_id}")
    assert revoked.status_code == 200, revoked.text
    assert world.call(principal, "GET", "/v1/whoami").status_code == 401
