"""Property tests of the running service against its own published OpenAPI schema.

Schemathesis generates requests, valid and invalid, for every operation of the schema and
sends them over real HTTP to the service (uvicorn on a loopback port, the demo data loaded,
a system administrator's key). Each answer must:

- not be a server error (``not_a_server_error``);
- have a documented status, content type and headers, and a body that matches the
  documented schema (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
- be a 4xx when the request breaks the schema (``negative_data_rejection``): wrong types,
  malformed or non-JSON bodies, wrong content types, unsupported methods;
- when it is an error, be an ``application/problem+json`` `ProblemOut` whose ``status`` and
  ``request_id`` match the answer's (``problem_conformance``, below).

Why the schema comes from an app built at import time: schemathesis loads a schema from a
fixture with ``schemathesis.pytest.from_fixture``, which is broken with pytest 9.2 (its
``LazySchema`` reads ``request.node._nodeid``, which pytest 9.2 removed: AttributeError).
The operations are therefore collected from ``create_app(...).openapi()`` (one test per
operation, which xdist spreads over its workers), and
`test_the_tests_use_the_live_schema` checks that this is exactly the schema the running
service publishes at ``/openapi.json``.

Generation settings, and why:

- ``with_security_parameters=False``: the test sends a valid key itself; otherwise negative
  cases "without the Authorization header" would be sent with it and count as accepted
  negative data. Missing, bad and revoked keys are covered by test_authorization.py.
- ``allow_extra_parameters=False``: unknown query parameters are ignored (as HTTP services
  do), so negative cases made only of extra query parameters would count as accepted.
- Hypothesis health checks: ``too_slow`` (every example is a real HTTP round trip and some
  write to the database) and ``filter_too_much`` (cases with integers SQLite cannot store
  are rejected, see `_out_of_sqlite_range`). The service fixture is module-scoped, so
  ``function_scoped_fixture`` need not be suppressed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import checks

import reeldb
from reeldb.api import create_app
from reeldb.demo import load_demo

PROBLEM_TYPE = "application/problem+json"
SQLITE_MAX = 2**63 - 1


def _published_schema() -> dict[str, Any]:
    with reeldb.connect("memory:") as db:
        return create_app(db).openapi()


PUBLISHED = _published_schema()
schema = schemathesis.openapi.from_dict(PUBLISHED)
schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)

_PROBLEM = jsonschema_rs.Draft202012Validator(
    {"$ref": "#/components/schemas/ProblemOut", "components": PUBLISHED["components"]}
)


@dataclass(frozen=True)
class Service:
    """The running service and the headers of its system administrator."""

    url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def service(service_app: tuple[FastAPI, str]) -> Iterator[Service]:
    """The session's running service over a fresh database holding the demo data."""
    app, url = service_app
    with reeldb.connect("memory:") as db:
        admin = db.bootstrap()
        assert admin is not None
        assert load_demo(db)
        previous = app.state.db
        app.state.db = db
        try:
            yield Service(url, {"Authorization": f"Bearer {admin.secret}"})
        finally:
            app.state.db = previous


def test_the_tests_use_the_live_schema(service: Service) -> None:
    live = httpx.get(f"{service.url}/openapi.json", timeout=10).json()
    assert live == PUBLISHED


@schemathesis.check
def problem_conformance(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Errors are problem+json documents that match ProblemOut and the answer."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0] == PROBLEM_TYPE, f"error sent as {content_type!r}"
    body = response.json()
    errors = [error.message for error in _PROBLEM.iter_errors(body)]
    assert not errors, f"the problem does not match ProblemOut: {errors}"
    assert body["status"] == response.status_code, "the problem's status is not the answer's"
    request_id = response.headers.get("x-request-id", [""])[0]
    assert body["request_id"] == request_id, "the problem's request_id is not X-Request-ID"
    return True


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    problem_conformance,
]


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api(case: schemathesis.Case, service: Service) -> None:
    case.call_and_validate(base_url=service.url, headers=service.headers, checks=CHECKS)


# -- bugs the fuzzing found, pinned as plain requests ---------------------------------------

HUGE = 2**63  # one more than SQLite's largest INTEGER
DS = "/v1/namespaces/demo/datastores/face_detection"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", f"{DS}/{HUGE}", None, id="get-datastore"),
        pytest.param("GET", f"{DS}/{HUGE}/count", None, id="count"),
        pytest.param(
            "POST",
            f"{DS}/{HUGE}/documents",
            {"mid": {"title_id": "1", "video_stream_id": "2"}, "document": {}},
            id="put-document",
        ),
        pytest.param(
            "GET",
            f"/v1/namespaces/demo/schemas/face_detection/versions/{HUGE}",
            None,
            id="get-schema-version",
        ),
        pytest.param(
            "POST",
            "/v1/namespaces/demo/datastores",
            {
                "analysis_type": "huge",
                "version": HUGE,
                "mid_keys": ["title_id"],
                "schema": "face_detection",
            },
            id="create-datastore",
        ),
        pytest.param(
            "POST",
            "/v1/namespaces/demo/schemas/face_detection/validate",
            {"instance": {}, "version": HUGE},
            id="validate",
        ),
    ],
)
def test_huge_integers_are_refused(
    service: Service, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = httpx.request(
        method, service.url + path, json=body, headers=service.headers, timeout=10
    )
    assert 400 <= response.status_code < 500, response.text


def test_errors_are_documented_as_problem_json() -> None:
    wrong = []
    for path, operations in PUBLISHED["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = response.get("content", {})
                problem = content.get(PROBLEM_TYPE, {}).get("schema", {}).get("$ref")
                if problem != "#/components/schemas/ProblemOut" or set(content) != {PROBLEM_TYPE}:
                    wrong.append(f"{method.upper()} {path} {status}: {sorted(content)}")
    assert not wrong, "\n".join(wrong[:5])
