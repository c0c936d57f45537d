"""The curated public root: everything in __all__ exists, is sorted, and nothing drifts."""

from __future__ import annotations

import reeldb

EXPECTED = {
    "AlreadyExistsError", "ApiKey", "AuditEntry", "BackendUnavailableError",
    "CompatibilityMode", "CompatibilityReport", "NewApiKey", "Principal",
    "ConfigError", "ConflictError", "DataStore", "DataStoreRef", "Database",
    "DatabaseClosedError", "Document", "DocumentInfo", "EventView", "FrameRate",
    "Incompatibility", "IncompatibleSchemaError", "InvalidSchemaError", "MissingDependencyError",
    "Namespace", "NotFoundError", "Page", "PermissionDeniedError", "QueryError",
    "QueryTimeoutError", "ReelError", "Role", "RoleGrant", "SchemaKind", "SchemaRef",
    "SchemaSubject", "SchemaVersion", "StaleSchemaError", "TimeRange", "UnauthenticatedError",
    "ValidationError", "Violation", "__version__", "connect",
    # annotations
    "Annotation", "AnnotationHit", "Association", "NewAnnotation", "TypeRef", "DeletedError",
    "VersionConflictError",
}  # fmt: skip


def test_all_is_sorted_and_complete() -> None:
    assert reeldb.__all__ == sorted(reeldb.__all__)
    assert set(reeldb.__all__) == EXPECTED
    for name in reeldb.__all__:
        assert hasattr(reeldb, name), name


def test_every_error_is_a_reel_error() -> None:
    errors = [getattr(reeldb, n) for n in reeldb.__all__ if n.endswith("Error")]
    assert all(issubclass(e, reeldb.ReelError) for e in errors)
    assert issubclass(reeldb.NotFoundError, LookupError)
    assert issubclass(reeldb.ValidationError, ValueError)
    assert issubclass(reeldb.MissingDependencyError, ImportError)


def test_version() -> None:
    assert reeldb.__version__.count(".") == 2
