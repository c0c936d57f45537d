"""The HTTP service over real HTTP: errors as problem+json, ETags, pages, health, metrics."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

import reeldb
from reeldb.testing import FACE_DETECTION, MID, face_document, running_service

PROBLEM = "application/problem+json"
DS = "/v1/namespaces/vision/datastores/face_detection/1"


def http(live: Any, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or live.admin_key}"}
    return httpx.Client(base_url=live.url, headers=headers, timeout=30)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:reeldb:problem:{slug}"
    assert body["status"] == status
    assert body["detail"] and body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


@pytest.fixture
def world(live: Any) -> Any:
    """Namespace vision with the face_detection DataStore and one document."""
    db: reeldb.Database = live.db
    db.create_namespace("vision", admins=["user:alice"])
    db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
    db.create_datastore("vision/face_detection/1", mid_keys=list(MID), schema="face_detection")
    live.doc = db.put_document("vision/face_detection/1", MID, face_document(2))
    return live


def test_health_and_readiness(live: Any) -> None:
    with httpx.Client(base_url=live.url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}


def test_readiness_fails_cleanly_when_the_database_is_closed(service_app: Any) -> None:
    app, url = service_app
    closed = reeldb.connect("memory:")
    closed.close()
    previous, app.state.db = app.state.db, closed
    try:
        response = httpx.get(url + "/readyz")
    finally:
        app.state.db = previous
    body = assert_problem(response, 503, "unavailable")
    assert response.headers["retry-after"] == "1"
    assert "closed" in body["detail"]


def test_openapi_and_docs(live: Any) -> None:
    with httpx.Client(base_url=live.url) as client:
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    assert schema["info"]["title"] == "reeldb"
    put = schema["paths"][
        "/v1/namespaces/{namespace}/datastores/{analysis_type}/{version}/documents"
    ]
    assert put["post"]["x-reeldb-role"] == "writer"
    assert put["post"]["x-reeldb-audit"] == "document.put"
    body = put["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/DocumentPut"}
    assert "DocumentPut" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    # every operation documents its problem responses
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert "401" in operation["responses"], (method, path)
                assert "x-reeldb-role" in operation, (method, path)


def test_unauthenticated(live: Any) -> None:
    with httpx.Client(base_url=live.url) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
            response = client.get("/v1/whoami", headers=headers)
            assert_problem(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"] == 'Bearer realm="reeldb"'


def test_revoked_key_is_refused_at_once(live: Any) -> None:
    new = live.db.create_api_key("user:carol")
    with http(live, new.secret) as client:
        assert client.get("/v1/whoami").json()["name"] == "user:carol"
        live.db.revoke_api_key(new.key.key_id)
        assert_problem(client.get("/v1/whoami"), 401, "unauthenticated")


def test_whoami_reflects_current_roles(world: Any) -> None:
    key = world.key("user:alice")
    with http(world, key) as client:
        me = client.get("/v1/whoami").json()
        assert me["roles"] == {"vision": "admin"} and me["system_admin"] is False
        world.db.grant_role("vision", "user:alice", "reader")
        assert client.get("/v1/whoami").json()["roles"] == {"vision": "reader"}


def test_malformed_json_is_400(world: Any) -> None:
    with http(world) as client:
        for path in ("/v1/namespaces", DS + "/documents"):
            response = client.post(
                path, content=b'{"name": ', headers={"Content-Type": "application/json"}
            )
            body = assert_problem(response, 400, "malformed-request")
            assert body["detail"].startswith("the request body is not valid JSON: ")
    assert world.db.count_documents("vision/face_detection/1") == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(world: Any, content_type: str) -> None:
    with http(world) as client:
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post(DS + "/documents", content=b'{"a": 1}', headers=headers)
        assert_problem(response, 415, "unsupported-media-type")


def test_unknown_fields_are_422(world: Any) -> None:
    with http(world) as client:
        body = assert_problem(
            client.post("/v1/namespaces", json={"name": "x", "colour": "red"}), 422, "validation"
        )
        assert body["violations"] == [
            {"pointer": "/body/colour", "message": "Extra inputs are not permitted"}
        ]
        doc = {"mid": MID, "document": face_document(1), "extra": 1}
        body = assert_problem(client.post(DS + "/documents", json=doc), 422, "validation")
        assert "extra" in body["detail"]


def test_document_violations_have_pointers(world: Any) -> None:
    bad = face_document(1)
    bad["tracks"][0]["components"][0]["events"][0]["regions"][0]["bounding_box"]["w"] = -1
    with http(world) as client:
        response = client.post(DS + "/documents", json={"mid": MID, "document": bad})
    body = assert_problem(response, 422, "validation")
    pointers = [v["pointer"] for v in body["violations"]]
    assert pointers == ["/tracks/0/components/0/events/0/regions/0/bounding_box/w"]
    assert world.db.count_documents("vision/face_detection/1") == 1


def test_incompatible_schema_is_409_with_every_incompatibility(world: Any) -> None:
    changed = copy.deepcopy(FACE_DETECTION)
    changed["levels"]["event"]["properties"]["confidence"]["type"] = "string"
    with http(world) as client:
        response = client.post("/v1/namespaces/vision/schemas", json={"definition": changed})
    body = assert_problem(response, 409, "incompatible-schema")
    assert {i["rule"] for i in body["incompatibilities"]} >= {"TYPE"}


@pytest.mark.parametrize(
    ("path", "slug"),
    [
        ("/v1/documents/not-a-uuid", "validation"),
        (DS + "/documents/12", "validation"),
        ("/v1/namespaces?cursor=garbage", "validation"),
        (DS + "/documents?mid=" + json.dumps(MID) + "&cursor=x", "validation"),
        (DS + "/documents/latest?mid=[1]", "validation"),
        (DS + "/documents/latest?mid={", "validation"),
        ("/v1/namespaces?limit=0", "validation"),
        ("/v1/namespaces?limit=1001", "validation"),
        ("/v1/namespaces/vision/datastores/face_detection/x", "validation"),
        ("/v1/nothing", "not-found"),
        ("/v1/documents/01a20000-0000-7000-8000-000000000000", "not-found"),
    ],
)
def test_bad_requests_are_4xx(world: Any, path: str, slug: str) -> None:
    with http(world) as client:
        response = client.get(path)
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code, slug)


def test_method_not_allowed(world: Any) -> None:
    with http(world) as client:
        assert_problem(client.delete("/v1/namespaces"), 405, "method-not-allowed")


def test_oversized_bodies_are_413() -> None:
    with reeldb.connect("memory:", max_request_bytes=2000) as db:
        admin = db.bootstrap()
        assert admin is not None
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore("vision/face_detection/1", mid_keys=list(MID), schema="face_detection")
        with running_service(db) as url:
            headers = {"Authorization": f"Bearer {admin.secret}"}
            big = {"mid": MID, "document": face_document(40)}
            response = httpx.post(url + DS + "/documents", json=big, headers=headers)
            assert_problem(response, 413, "payload-too-large")

            def chunks() -> Any:
                yield json.dumps(big).encode()

            streamed = httpx.post(
                url + DS + "/documents",
                content=chunks(),
                headers={**headers, "Content-Type": "application/json"},
            )
            assert_problem(streamed, 413, "payload-too-large")
        assert db.count_documents("vision/face_detection/1") == 0


def test_request_id_is_echoed_or_made(world: Any) -> None:
    with http(world) as client:
        given = client.get("/v1/whoami", headers={"X-Request-ID": "trace-42"})
        assert given.headers["x-request-id"] == "trace-42"
        made = client.get("/v1/whoami", headers={"X-Request-ID": "bad id\twith tab"})
        assert len(made.headers["x-request-id"]) == 32


def test_document_etag_and_if_none_match(world: Any) -> None:
    doc_id = str(world.doc.id)
    with http(world) as client:
        for path in (f"/v1/documents/{doc_id}", f"{DS}/documents/{doc_id}"):
            first = client.get(path)
            assert first.status_code == 200
            assert first.headers["etag"] == f'"{doc_id}"'
            assert "immutable" in first.headers["cache-control"]
            assert first.json()["data"] == world.doc.data
            again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert (again.status_code, again.content) == (304, b"")
            assert again.headers["etag"] == first.headers["etag"]
            other = client.get(path, headers={"If-None-Match": '"something-else"'})
            assert other.status_code == 200


def test_schema_version_etag(world: Any) -> None:
    with http(world) as client:
        path = "/v1/namespaces/vision/schemas/face_detection/versions/1"
        first = client.get(path)
        assert first.json()["version"] == 1
        again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304


def test_document_body_is_the_stored_bytes(world: Any) -> None:
    with http(world) as client:
        raw = client.get(f"/v1/documents/{world.doc.id}").content
    # the stored body is embedded verbatim in the envelope
    assert world.doc.body in raw


def test_write_then_read_over_http(world: Any) -> None:
    with http(world) as client:
        created = client.post(DS + "/documents", json={"mid": MID, "document": face_document(3)})
        assert created.status_code == 201
        info = created.json()
        assert created.headers["location"] == f"/v1/documents/{info['id']}"
        latest = client.get(DS + "/documents/latest", params={"mid": json.dumps(MID)}).json()
        assert latest["id"] == info["id"]
        assert info["size"] == len(world.db.get_document(info["id"]).body)


@pytest.mark.parametrize(
    ("path", "count"),
    [
        ("/v1/namespaces", 5),
        ("/v1/namespaces/vision/roles", 5),
        ("/v1/namespaces/vision/schemas", 2),
        ("/v1/namespaces/vision/datastores", 5),
        ("/v1/keys", 5),
        ("/v1/audit", 0),
    ],
)
def test_every_list_is_cursor_paginated(world: Any, path: str, count: int) -> None:
    db: reeldb.Database = world.db
    for i in range(4):
        db.create_namespace(f"ns{i}")
        db.grant_role("vision", f"user:u{i}", "reader")
        db.create_datastore(
            f"vision/face_detection/{i + 2}", mid_keys=list(MID), schema="face_detection"
        )
        db.create_api_key(f"app:a{i}")
    with http(world) as client:
        for i in range(3):  # audited actions
            client.put(f"/v1/namespaces/vision/roles/user:x{i}", json={"role": "reader"})
        seen: list[Any] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get(path, params=params).json()
            assert len(page["items"]) <= 2
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        whole = client.get(path, params={"limit": 1000}).json()
    assert seen == whole["items"]
    assert len(seen) >= count
    assert len({json.dumps(item, sort_keys=True) for item in seen}) == len(seen)


def test_metrics_count_requests_per_route(world: Any) -> None:
    with http(world) as client:
        client.get(f"/v1/documents/{world.doc.id}")
        client.get("/v1/documents/not-a-uuid")
        text = client.get("/metrics").text
    assert (
        'reeldb_http_requests_total{method="GET",route="/v1/documents/{document_id}",status="200"}'
        in text
    )
    assert (
        'reeldb_http_requests_total{method="GET",route="/v1/documents/{document_id}",status="422"}'
        in text
    )
    assert "reeldb_http_request_duration_seconds_bucket{" in text


def test_secrets_are_never_listed(world: Any) -> None:
    new = world.db.create_api_key("app:x")
    with http(world) as client:
        text = client.get("/v1/keys").text
    assert new.secret not in text and world.admin_key not in text
    assert new.key.key_id in text


def test_large_writes_run_off_the_event_loop_and_are_audited(world: Any) -> None:
    from reeldb.api.routes import INLINE_WRITE_BYTES

    big = face_document(6000)
    body = json.dumps({"mid": MID, "document": big}).encode()
    assert len(body) > INLINE_WRITE_BYTES
    with http(world) as client:
        created = client.post(
            DS + "/documents", content=body, headers={"Content-Type": "application/json"}
        )
        assert created.status_code == 201, created.text
        request_id = created.headers["x-request-id"]
        small = client.post(DS + "/documents", json={"mid": MID, "document": face_document(1)})
        assert small.status_code == 201
    assert world.db.get_document(created.json()["id"]).data == big
    audit = world.db.list_audit("vision", limit=10).items
    assert [(e.action, e.status) for e in audit[:2]] == [("document.put", 201)] * 2
    assert audit[1].request_id == request_id
    assert len({e.seq for e in audit}) == len(audit)  # one entry per write, not two


def test_direct_routes_report_bad_parameters_like_the_others(world: Any) -> None:
    """GET by DocumentID and POST of a document skip FastAPI's solver (`direct=True`)."""
    with http(world) as client:
        direct = client.get("/v1/documents/not-a-uuid")
        posted = client.post(
            "/v1/namespaces/vision/datastores/face_detection/x/documents",
            json={"mid": MID, "document": face_document(1)},
        )
        solved = client.get("/v1/namespaces/vision/datastores/face_detection/x")
    for response in (direct, posted, solved):
        assert_problem(response, 422, "validation")
    assert [v["pointer"] for v in direct.json()["violations"]] == ["/path/document_id"]
    assert posted.json()["violations"] == solved.json()["violations"]
    assert [v["pointer"] for v in posted.json()["violations"]] == ["/path/version"]


def test_a_direct_route_refuses_parameters_it_cannot_read() -> None:
    from fastapi import FastAPI

    from reeldb.api._routing import Routes
    from reeldb.auth.policy import Need

    routes = Routes()

    @routes.route("GET", "/things", need=Need.PUBLIC, direct=True)
    async def things(limit: int = 5) -> None: ...

    with pytest.raises(TypeError, match="cannot take parameter 'limit'"):
        routes.install(FastAPI())


@pytest.mark.parametrize("condition", [None, "etag", "*", '"other"'])
def test_the_fast_path_answers_exactly_as_the_route(
    world: Any, monkeypatch: pytest.MonkeyPatch, condition: str | None
) -> None:
    """``GET /v1/documents/{id}`` is answered before the framework when it succeeds."""
    from reeldb.api._service import _ServiceMiddleware

    headers = {} if condition is None else {"If-None-Match": condition}
    if condition == "etag":
        headers["If-None-Match"] = f'"{world.doc.id}"'
    answered = []
    original = _ServiceMiddleware._fast_document

    def spy(self: Any, *args: Any) -> Any:
        answered.append(original(self, *args))
        return answered[-1]

    with http(world) as client:
        monkeypatch.setattr(_ServiceMiddleware, "_fast_document", spy)
        fast = client.get(f"/v1/documents/{world.doc.id}", headers=headers)
        monkeypatch.setattr(_ServiceMiddleware, "_fast_document", lambda *args: None)
        routed = client.get(f"/v1/documents/{world.doc.id}", headers=headers)
    assert len(answered) == 1 and answered[0] is not None  # the fast path answered
    assert (
        fast.status_code == routed.status_code == (200 if condition in (None, '"other"') else 304)
    )
    assert fast.content == routed.content
    drop = {"date", "x-request-id"}
    assert {k: v for k, v in fast.headers.items() if k not in drop} == {
        k: v for k, v in routed.headers.items() if k not in drop
    }


@pytest.mark.parametrize(
    "form",
    ["{UUID}", "urn:uuid:UUID", "UUPPER", "SHORT", "0193c1b27d3a70008000000000000000----"],
)
def test_other_forms_of_an_id_are_answered_as_the_route_answers_them(
    world: Any, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    from reeldb.api._service import _ServiceMiddleware

    canonical = str(world.doc.id)
    path = form.replace("UUPPER", canonical.upper()).replace("UUID", canonical)
    path = path.replace("SHORT", canonical[:-1])
    with http(world) as client:
        fast = client.get(f"/v1/documents/{path}")
        monkeypatch.setattr(_ServiceMiddleware, "_fast_document", lambda *args: None)
        routed = client.get(f"/v1/documents/{path}")
    assert fast.status_code == routed.status_code
    assert fast.status_code in (200, 422)
    if fast.status_code == 200:
        assert fast.content == routed.content
    else:
        assert fast.json()["violations"] == routed.json()["violations"]
