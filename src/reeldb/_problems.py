"""RFC 9457 problem types: the one table mapping reeldb errors to HTTP and back.

The service turns a `ReelError` into ``application/problem+json`` with the row's status and
type; `reeldb.client` turns the type back into the same exception class, so code catches the
same errors embedded or remote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from reeldb.errors import (
    AlreadyExistsError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DeletedError,
    Incompatibility,
    IncompatibleSchemaError,
    InvalidSchemaError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    QueryTimeoutError,
    ReelError,
    StaleSchemaError,
    UnauthenticatedError,
    ValidationError,
    VersionConflictError,
    Violation,
)

__all__ = ["PROBLEMS", "TYPE_PREFIX", "Problem", "error_from_problem", "problem_for"]

TYPE_PREFIX: Final = "urn:reeldb:problem:"
MEDIA_TYPE: Final = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem type.

    Attributes:
        error: The exception class (subclasses map to their own row when listed).
        status: The HTTP status.
        slug: The stable last part of the type URI.
        title: A short, fixed summary of the problem type.
    """

    error: type[ReelError]
    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        """The problem type URI."""
        return TYPE_PREFIX + self.slug


# Most specific classes first: `problem_for` takes the first row the error is an instance of.
PROBLEMS: Final = (
    Problem(InvalidSchemaError, 422, "invalid-schema", "The schema definition is malformed"),
    Problem(ValidationError, 422, "validation", "The input breaks one or more rules"),
    Problem(IncompatibleSchemaError, 409, "incompatible-schema", "The schema is incompatible"),
    Problem(DeletedError, 410, "deleted", "It was deleted"),
    Problem(NotFoundError, 404, "not-found", "Not found"),
    Problem(AlreadyExistsError, 409, "already-exists", "It already exists"),
    Problem(StaleSchemaError, 409, "stale-schema", "The schema changed during the write"),
    Problem(VersionConflictError, 409, "stale-version", "The version is not current"),
    Problem(ConflictError, 409, "conflict", "A concurrent change won; retry"),
    Problem(QueryError, 400, "invalid-query", "The query is malformed"),
    Problem(UnauthenticatedError, 401, "unauthenticated", "Authentication required"),
    Problem(PermissionDeniedError, 403, "forbidden", "Not allowed"),
    Problem(QueryTimeoutError, 503, "query-timeout", "The read ran past its time limit"),
    Problem(BackendUnavailableError, 503, "unavailable", "The database is not available"),
    Problem(ConfigError, 500, "configuration", "The service is misconfigured"),
    Problem(MissingDependencyError, 500, "configuration", "The service is misconfigured"),
    Problem(ReelError, 500, "internal", "Internal error"),
)

# Problems the HTTP layer itself raises, before any reeldb code runs.
HTTP_PROBLEMS: Final = {
    400: ("malformed-request", "The request is malformed", ValidationError),
    404: ("not-found", "Not found", NotFoundError),
    405: ("method-not-allowed", "Method not allowed", ValidationError),
    406: ("not-acceptable", "Not acceptable", ValidationError),
    413: ("payload-too-large", "The request body is too large", ValidationError),
    415: ("unsupported-media-type", "Send JSON (Content-Type: application/json)", ValidationError),
    422: ("validation", "The input breaks one or more rules", ValidationError),
    500: ("internal", "Internal error", ReelError),
}

_BY_SLUG: Final[dict[str, type[ReelError]]] = {}
for _row in reversed(PROBLEMS):
    _BY_SLUG[_row.slug] = _row.error
for _slug, _title, _error in HTTP_PROBLEMS.values():
    _BY_SLUG.setdefault(_slug, _error)
_BY_SLUG["malformed-json"] = ValidationError


def problem_for(error: ReelError) -> Problem:
    """The problem type of an error.

    Args:
        error: The error.

    Returns:
        Its row of `PROBLEMS`.
    """
    return next(row for row in PROBLEMS if isinstance(error, row.error))


def problem_body(error: ReelError, *, instance: str, request_id: str) -> dict[str, Any]:
    """The problem+json document for an error.

    Args:
        error: The error.
        instance: The request path.
        request_id: The request id.

    Returns:
        The document: ``type, title, status, detail, instance, request_id`` and, where they
        apply, ``violations``, ``incompatibilities``, ``line``/``column``.
    """
    row = problem_for(error)
    body: dict[str, Any] = {
        "type": row.type,
        "title": row.title,
        "status": row.status,
        "detail": str(error),
        "instance": instance,
        "request_id": request_id,
    }
    if isinstance(error, ValidationError):
        body["detail"] = error.summary
        body["violations"] = [
            {"pointer": v.pointer, "message": v.message} for v in error.violations
        ]
    elif isinstance(error, IncompatibleSchemaError):
        body["detail"] = error.summary
        body["incompatibilities"] = [
            {"path": i.path, "message": i.message, "rule": i.rule} for i in error.incompatibilities
        ]
    elif isinstance(error, QueryError) and error.line is not None:
        body["line"], body["column"] = error.line, error.column
    elif isinstance(error, VersionConflictError) and error.current is not None:
        body["current_version"] = error.current
    return body


def error_from_problem(status: int, body: Any) -> ReelError:
    """Rebuild the reeldb error a problem document describes (the client's side).

    Args:
        status: The HTTP status.
        body: The decoded problem document (or anything else the server sent).

    Returns:
        The error, of the class the service raised.
    """
    if not isinstance(body, dict):
        body = {}
    slug = str(body.get("type", "")).removeprefix(TYPE_PREFIX)
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    cls = _BY_SLUG.get(slug)
    if cls is None:
        cls = BackendUnavailableError if status >= 500 else ValidationError
    if issubclass(cls, ValidationError):
        violations = [
            Violation(str(v.get("pointer", "")), str(v.get("message", "")))
            for v in body.get("violations") or ()
            if isinstance(v, dict)
        ]
        return cls(detail, violations)
    if issubclass(cls, IncompatibleSchemaError):
        found = [
            Incompatibility(str(i.get("path", "")), str(i.get("message", "")), str(i.get("rule")))
            for i in body.get("incompatibilities") or ()
            if isinstance(i, dict)
        ]
        return cls(detail, found)
    if issubclass(cls, VersionConflictError):
        current = body.get("current_version")
        return cls(detail, current if isinstance(current, int) else None)
    return cls(detail)
