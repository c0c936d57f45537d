"""reeldb: a media metadata and annotation database.

Open a database with `connect`; everything else is a method of `Database`::

    import reeldb

    db = reeldb.connect("sqlite:///reel.db")
    db.create_namespace("vision")
"""

from reeldb.__about__ import __version__
from reeldb.annotations import Annotation, AnnotationHit, Association, NewAnnotation, TypeRef
from reeldb.auth.model import ApiKey, AuditEntry, NewApiKey, Principal
from reeldb.database import Database, connect
from reeldb.errors import (
    AlreadyExistsError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DatabaseClosedError,
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
from reeldb.model.datastore import DataStore, DataStoreRef, Namespace, Role, RoleGrant
from reeldb.model.document import Document, DocumentInfo, EventView, Page
from reeldb.model.timing import FrameRate, TimeRange
from reeldb.schema.model import (
    CompatibilityMode,
    SchemaKind,
    SchemaRef,
    SchemaSubject,
    SchemaVersion,
)
from reeldb.schema.registry import CompatibilityReport

__all__ = [
    "AlreadyExistsError",
    "Annotation",
    "AnnotationHit",
    "ApiKey",
    "Association",
    "AuditEntry",
    "BackendUnavailableError",
    "CompatibilityMode",
    "CompatibilityReport",
    "ConfigError",
    "ConflictError",
    "DataStore",
    "DataStoreRef",
    "Database",
    "DatabaseClosedError",
    "DeletedError",
    "Document",
    "DocumentInfo",
    "EventView",
    "FrameRate",
    "Incompatibility",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "MissingDependencyError",
    "Namespace",
    "NewAnnotation",
    "NewApiKey",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "Principal",
    "QueryError",
    "QueryTimeoutError",
    "ReelError",
    "Role",
    "RoleGrant",
    "SchemaKind",
    "SchemaRef",
    "SchemaSubject",
    "SchemaVersion",
    "StaleSchemaError",
    "TimeRange",
    "TypeRef",
    "UnauthenticatedError",
    "ValidationError",
    "VersionConflictError",
    "Violation",
    "__version__",
    "connect",
]
