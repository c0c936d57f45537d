"""Tenancy and DataStore value objects: namespaces, roles, DataStores."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from reeldb.errors import ValidationError
from reeldb.model.names import check_analysis_type, check_namespace, check_version

__all__ = ["DataStore", "DataStoreRef", "Namespace", "Role", "RoleGrant"]


class Role(enum.StrEnum):
    """A principal's role in a namespace (NMDB-11)."""

    ADMIN = "admin"
    """Manage DataStores and schemas, grant roles; also write and read."""
    WRITER = "writer"
    """Write documents; also read."""
    READER = "reader"
    """Read and query."""

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """Parse a role name.

        Args:
            value: ``admin``, ``writer`` or ``reader`` (any case).

        Returns:
            The role.

        Raises:
            ValidationError: The name is not a role.
        """
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValidationError(
                f"unknown role {value!r}: use one of admin, writer, reader"
            ) from None


@dataclass(frozen=True, slots=True)
class Namespace:
    """A tenant: a team or LDAP-style group that owns schemas and DataStores."""

    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """A principal's role in a namespace."""

    namespace: str
    principal: str
    role: Role
    granted_at: datetime


@dataclass(frozen=True, slots=True, order=True)
class DataStoreRef:
    """The identity of a DataStore: ``(namespace, analysis_type, version)`` (NMDB-10).

    Written as ``namespace/analysis_type/version``, e.g. ``vision/object_detection/2``.
    """

    namespace: str
    analysis_type: str
    version: int

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        check_analysis_type(self.analysis_type)
        check_version(self.version, "DataStore version")

    @classmethod
    def parse(cls, value: str | DataStoreRef) -> DataStoreRef:
        """Parse ``namespace/analysis_type/version``.

        Args:
            value: The text form, or a ref (returned unchanged).

        Returns:
            The ref.

        Raises:
            ValidationError: The text is not of that form.
        """
        if isinstance(value, DataStoreRef):
            return value
        parts = str(value).split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValidationError(
                f"invalid DataStore {value!r}: write it as namespace/analysis_type/version, "
                "e.g. vision/object_detection/2"
            )
        return cls(parts[0], parts[1], int(parts[2]))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.analysis_type}/{self.version}"


@dataclass(frozen=True, slots=True)
class DataStore:
    """Where one kind of media analysis lives (NMDB-9).

    Attributes:
        ref: The DataStore's identity.
        mid_keys: The immutable MID schema: the keys every MID must have, in declared order.
        schema_name: The document schema's name, in the DataStore's namespace.
        schema_version: The schema version new documents are validated against.
        description: Free text.
        created_at: When the DataStore was created.
        id: The storage backend's internal id (stable; used in distribution keys).
    """

    ref: DataStoreRef
    mid_keys: tuple[str, ...]
    schema_name: str
    schema_version: int
    description: str
    created_at: datetime
    id: int
