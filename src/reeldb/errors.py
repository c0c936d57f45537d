"""Every error reeldb raises on purpose.

The tree::

    ReelError
    ├── NotFoundError (LookupError)          a namespace, schema, DataStore or document is missing
    ├── AlreadyExistsError                   creating something that exists
    ├── ConflictError                        a concurrent change won; retrying may succeed
    │   └── StaleSchemaError                 a DataStore's schema moved while a write was prepared
    ├── ValidationError (ValueError)         input breaks a rule; carries every Violation
    │   └── InvalidSchemaError               a schema definition itself is malformed
    ├── IncompatibleSchemaError              a schema version breaks compatibility; carries every
    │                                        Incompatibility
    ├── QueryError                           a query is malformed (line/column)
    ├── PermissionDeniedError                the principal lacks the role
    ├── UnauthenticatedError                 no or bad credentials
    ├── BackendUnavailableError              storage is unreachable, busy or closed (retryable)
    │   └── DatabaseClosedError              the Database was closed
    ├── QueryTimeoutError                    a read ran past its time limit
    ├── ConfigError                          a setting is unknown or has a bad value
    └── MissingDependencyError (ImportError) an optional extra is not installed

Faces map these to HTTP status codes or CLI exit codes in one place each; the core never
formats them for a transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyExistsError",
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "DeletedError",
    "DatabaseClosedError",
    "Incompatibility",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryError",
    "QueryTimeoutError",
    "ReelError",
    "StaleSchemaError",
    "UnauthenticatedError",
    "ValidationError",
    "VersionConflictError",
    "Violation",
]


class ReelError(Exception):
    """Root of every error reeldb raises on purpose."""


class NotFoundError(ReelError, LookupError):
    """The named namespace, schema, DataStore or document does not exist."""


class AlreadyExistsError(ReelError):
    """The thing being created already exists."""


class ConflictError(ReelError):
    """A concurrent change won the race; the operation may succeed if retried."""


class StaleSchemaError(ConflictError):
    """A DataStore's document schema changed between validation and persistence."""


class VersionConflictError(ConflictError):
    """An update named a version that is no longer current (optimistic concurrency).

    Attributes:
        current: The current version, when known.
    """

    def __init__(self, message: str, current: int | None = None) -> None:
        self.current = current
        super().__init__(message)


class DeletedError(NotFoundError):
    """The annotation was deleted; its earlier versions stay readable."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule in a validated value.

    Attributes:
        pointer: JSON pointer (RFC 6901) of the offending value; ``""`` is the whole value.
        message: What is wrong, in words.
    """

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One reason a schema version is incompatible with an earlier one.

    Attributes:
        path: JSON path of the schema property concerned (``$.boundingBox``), or of the
            stored document that no longer validates.
        message: What changed and why it breaks compatibility.
        rule: The rule that was broken: a compatibility mode (``BACKWARD``...), ``TYPE``
            (a property changed type) or ``STORED_DATA`` (a stored document fails).
    """

    path: str
    message: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


def _summarise(head: str, items: Sequence[object], limit: int = 5) -> str:
    shown = "; ".join(str(item) for item in items[:limit])
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return f"{head}: {shown}{more}" if items else head


class ValidationError(ReelError, ValueError):
    """Input breaks one or more rules; nothing was stored.

    Attributes:
        violations: Every violation found, in document order.
    """

    def __init__(self, message: str, violations: Iterable[Violation] = ()) -> None:
        self.violations: tuple[Violation, ...] = tuple(violations)
        self.summary = message
        super().__init__(_summarise(message, self.violations))


class InvalidSchemaError(ValidationError):
    """A schema definition is malformed (unknown type, bad keyword, conflicting parents...)."""


class IncompatibleSchemaError(ReelError):
    """A new schema version is incompatible; the registry was left unchanged.

    Attributes:
        incompatibilities: Every incompatibility found.
    """

    def __init__(self, message: str, incompatibilities: Iterable[Incompatibility]) -> None:
        self.incompatibilities: tuple[Incompatibility, ...] = tuple(incompatibilities)
        self.summary = message
        super().__init__(_summarise(message, self.incompatibilities))


class QueryError(ReelError):
    """A query is malformed or does not fit the schema.

    Attributes:
        line: 1-based line of the problem in the query text, if known.
        column: 1-based column of the problem in the query text, if known.
    """

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(f"{message}{where}")


class PermissionDeniedError(ReelError):
    """The principal is authenticated but lacks the role for this action."""


class UnauthenticatedError(ReelError):
    """No credentials, or credentials that do not identify a principal."""


class BackendUnavailableError(ReelError):
    """The storage backend is unreachable, locked for too long or closed; retry later."""


class DatabaseClosedError(BackendUnavailableError):
    """The Database (or store) was used after ``close()``."""


class QueryTimeoutError(ReelError):
    """A read ran past its configured time limit and was interrupted."""


class ConfigError(ReelError):
    """A setting is unknown or has a value that cannot be used."""


class MissingDependencyError(ReelError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""
