"""Value objects of the schema registry."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reeldb.errors import ValidationError

__all__ = [
    "CompatibilityMode",
    "SchemaKind",
    "SchemaRef",
    "SchemaSubject",
    "SchemaVersion",
]


class SchemaKind(enum.StrEnum):
    """What a schema describes."""

    PROPERTIES = "properties"
    """A set of typed properties: an annotation type or a reusable base (``BOUNDING_BOX``)."""
    DOCUMENT = "document"
    """A 5-level media document: properties per level (asset, track, component, event, region)."""
    JSON_SCHEMA = "json_schema"
    """A plain JSON Schema 2020-12 document, validated exactly as the specification says."""


class CompatibilityMode(enum.StrEnum):
    """How a new schema version must relate to earlier ones before it is stored."""

    BACKWARD = "BACKWARD"
    """Data valid under the previous version stays valid under the new one (default)."""
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    """As BACKWARD, against every earlier version."""
    FORWARD = "FORWARD"
    """Data valid under the new version is valid under the previous one."""
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    """As FORWARD, against every earlier version."""
    FULL = "FULL"
    """BACKWARD and FORWARD."""
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    """BACKWARD and FORWARD against every earlier version."""
    NONE = "NONE"
    """No mode check; the seed rules (type rule, stored-data rule) still apply."""

    @classmethod
    def parse(cls, value: str | CompatibilityMode) -> CompatibilityMode:
        """Parse a mode name.

        Args:
            value: The name, any case (``backward``, ``FULL_TRANSITIVE``).

        Returns:
            The mode.

        Raises:
            ValidationError: The name is not a mode.
        """
        try:
            return cls(str(value).upper())
        except ValueError:
            names = ", ".join(mode.value for mode in cls)
            raise ValidationError(
                f"unknown compatibility mode {value!r}: use one of {names}"
            ) from None

    @property
    def backward(self) -> bool:
        """Whether the mode checks that new versions accept old data."""
        return self in (self.BACKWARD, self.BACKWARD_TRANSITIVE, self.FULL, self.FULL_TRANSITIVE)

    @property
    def forward(self) -> bool:
        """Whether the mode checks that old versions accept new data."""
        return self in (self.FORWARD, self.FORWARD_TRANSITIVE, self.FULL, self.FULL_TRANSITIVE)

    @property
    def transitive(self) -> bool:
        """Whether the mode checks against every earlier version, not only the latest."""
        return self.value.endswith("_TRANSITIVE")


@dataclass(frozen=True, slots=True, order=True)
class SchemaRef:
    """The identity of one schema version."""

    namespace: str
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} v{self.version}"


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One immutable version of a schema.

    Attributes:
        ref: ``(namespace, name, version)``.
        kind: What the schema describes.
        description: Free text.
        definition: The definition as registered (DSL or plain JSON Schema).
        json_schema: The compiled, standalone JSON Schema 2020-12 document.
        resolved: Properties after inheritance, ``{name: {type, mandatory, origin}}``; for a
            document schema ``{level: {name: {...}}}``; empty for plain JSON Schema.
        lineage: This schema and its ancestors in C3 order (most derived first), as
            ``namespace/NAME vN`` strings: an instance of this schema is an instance of each.
        created_at: When the version was stored.
    """

    ref: SchemaRef
    kind: SchemaKind
    description: str
    definition: dict[str, Any]
    json_schema: dict[str, Any]
    resolved: dict[str, Any]
    lineage: tuple[str, ...]
    created_at: datetime

    @property
    def namespace(self) -> str:
        """The namespace that owns the schema."""
        return self.ref.namespace

    @property
    def name(self) -> str:
        """The schema name."""
        return self.ref.name

    @property
    def version(self) -> int:
        """The version number."""
        return self.ref.version


@dataclass(frozen=True, slots=True)
class SchemaSubject:
    """A schema name in a namespace, with its versions' summary and compatibility mode."""

    namespace: str
    name: str
    kind: SchemaKind
    compatibility: CompatibilityMode
    latest_version: int
    versions: tuple[int, ...] = field(default=())
    builtin: bool = False
