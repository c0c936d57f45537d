"""Annotations (Marken, MRK-2): small, typed, versioned metadata attached to any entity.

An annotation is ``{id, version, type: {name, version}, associations: [{type, id}], data}``:

* ``type`` names an annotation type, a ``properties`` schema of the registry, and the
  version ``data`` was validated against;
* ``associations`` are the entities it annotates (``{"type": "MOVIE_ID", "id": "81234567"}``),
  at least one;
* ``data`` holds the type's properties.

Every update stores a new version; a delete stores a tombstone version. Old versions stay
readable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from reeldb.errors import ValidationError, Violation
from reeldb.model.names import MAX_VERSION

__all__ = [
    "ASSOCIATION_TYPE",
    "MAX_BATCH",
    "Annotation",
    "AnnotationHit",
    "Association",
    "NewAnnotation",
    "TypeRef",
    "parse_associations",
    "parse_type",
]

ASSOCIATION_TYPE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}\Z")
r"""Use with ``match``: the whole text must be a type (``\Z``: no newline slips past)."""
"""An association type: a letter, then letters, digits, ``_ . -`` (64 at most)."""
_MAX_ASSOCIATION_ID: Final = 512
_DIGITS: Final = re.compile(r"[0-9]{1,19}")
_TYPE_RULE: Final = "an association type is a letter, then letters, digits, _ . - (64 at most)"
_ID_RULE: Final = "an association id is a string of 1 to 512 characters"
MAX_BATCH: Final = 10_000
"""Annotations one bulk create may hold."""
MAX_ASSOCIATIONS: Final = 64
"""Associations one annotation may carry."""


@dataclass(frozen=True, slots=True, order=True)
class Association:
    """An entity an annotation is attached to.

    Attributes:
        type: What kind of entity (``MOVIE_ID``, ``SHOT_ID``, ``IMAGE_ID``...).
        id: Its identifier in its own system (any non-empty string).
    """

    type: str
    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not ASSOCIATION_TYPE.match(self.type):
            raise ValidationError(f"association type {self.type!r}: {_TYPE_RULE}")
        if not isinstance(self.id, str) or not 0 < len(self.id) <= _MAX_ASSOCIATION_ID:
            raise ValidationError(f"association id {self.id!r}: {_ID_RULE}")

    def to_json(self) -> dict[str, str]:
        """The association as JSON: ``{"type": ..., "id": ...}``."""
        return {"type": self.type, "id": self.id}

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True, slots=True, order=True)
class TypeRef:
    """An annotation type and version: ``BOUNDING_BOX`` v0."""

    name: str
    version: int

    def to_json(self) -> dict[str, Any]:
        """The reference as JSON: ``{"name": ..., "version": ...}``."""
        return {"name": self.name, "version": self.version}

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True, slots=True)
class Annotation:
    """One version of an annotation.

    Attributes:
        id: The annotation id (UUIDv7), the same for all its versions.
        version: This version's number: 1 for the first, one more for each update or delete.
        namespace: The namespace that owns it.
        type: The annotation type and the version ``data`` was validated against.
        associations: The entities it annotates.
        data: The type's properties.
        deleted: True for a tombstone (the version a delete stored); ``data`` and
            ``associations`` are then those of the version it deleted.
        created_at: When this version was stored (UTC).
        created_by: The principal that stored it, when known.
    """

    id: UUID
    version: int
    namespace: str
    type: TypeRef
    associations: tuple[Association, ...]
    data: dict[str, Any]
    deleted: bool
    created_at: datetime
    created_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The annotation as JSON (the form every face returns)."""
        return {
            "id": str(self.id),
            "version": self.version,
            "namespace": self.namespace,
            "type": self.type.to_json(),
            "associations": [a.to_json() for a in self.associations],
            "data": self.data,
            "deleted": self.deleted,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class NewAnnotation:
    """An annotation to create.

    Attributes:
        type: The type: ``"NAME"`` (latest version), ``"NAME@3"``, a `TypeRef` or
            ``{"name": ..., "version": ...}``.
        associations: At least one entity it annotates.
        data: The type's properties.
        id: Keep this id (imports); None to make a new UUIDv7.
    """

    type: str | TypeRef | Mapping[str, Any]
    associations: tuple[Association, ...]
    data: Mapping[str, Any]
    id: UUID | None = None

    @classmethod
    def from_json(cls, value: Any, *, at: str = "") -> NewAnnotation:
        """Read ``{"type": ..., "associations": [...], "data": {...}[, "id": ...]}``.

        Args:
            value: The decoded JSON.
            at: JSON pointer of ``value`` in a larger input, for messages.

        Returns:
            The annotation to create.

        Raises:
            ValidationError: A field is missing or malformed.
        """
        if not isinstance(value, Mapping):
            raise ValidationError(
                "an annotation is a JSON object", [Violation(at, "expected an object")]
            )
        problems: list[Violation] = []
        unknown = sorted(set(value) - {"type", "associations", "data", "id"})
        problems += [Violation(f"{at}/{key}", "unknown field") for key in unknown]
        if "type" not in value:
            problems.append(Violation(at, "type is required"))
        if not isinstance(value.get("data", {}), Mapping):
            problems.append(Violation(f"{at}/data", "data is an object"))
        ident: UUID | None = None
        if value.get("id") is not None:
            try:
                ident = UUID(str(value["id"]))
            except ValueError:
                problems.append(
                    Violation(f"{at}/id", f"{value['id']!r} is not an annotation id (a UUID)")
                )
        associations: tuple[Association, ...] = ()
        try:
            associations = parse_associations(value.get("associations"), at=f"{at}/associations")
        except ValidationError as exc:
            problems += exc.violations
        if problems:
            raise ValidationError("the annotation is malformed", problems)
        return cls(value["type"], associations, dict(value.get("data", {})), ident)


@dataclass(frozen=True, slots=True)
class AnnotationHit:
    """An annotation a search found.

    Attributes:
        annotation: Its current version.
        score: Relevance of a full-text match (higher is better); None without text.
        highlights: For each text field that matched, its text with the matching words
            wrapped in ``<em>`` and ``</em>``.
    """

    annotation: Annotation
    score: float | None = None
    highlights: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The hit as JSON: the annotation's fields plus ``score`` and ``highlights``."""
        out = self.annotation.to_json()
        out["score"] = self.score
        out["highlights"] = self.highlights
        return out


SortOrder = Literal["time", "-time", "created", "-created", "relevance"]


def parse_type(value: str | TypeRef | Mapping[str, Any]) -> tuple[str, int | None]:
    """Read a type reference: ``"NAME"``, ``"NAME@3"``, a `TypeRef` or a JSON object.

    Args:
        value: The reference.

    Returns:
        ``(name, version)``; version None means the latest.

    Raises:
        ValidationError: The reference is malformed.
    """
    if isinstance(value, TypeRef):
        return value.name, value.version
    if isinstance(value, Mapping):
        name, version = value.get("name"), value.get("version")
        if not isinstance(name, str) or not name:
            raise ValidationError("an annotation type is {name, version}: name is missing")
        if version is not None and (
            not isinstance(version, int)
            or isinstance(version, bool)
            or not 0 <= version <= MAX_VERSION
        ):
            raise ValidationError(
                f"the version of type {name} is a whole number from 0 to {MAX_VERSION}"
            )
        return name, version
    if isinstance(value, str) and value:
        name, at, version_text = value.partition("@")
        if not at:
            return name, None
        if _DIGITS.fullmatch(version_text) and int(version_text) <= MAX_VERSION:
            return name, int(version_text)
    raise ValidationError(f"an annotation type is 'NAME' or 'NAME@VERSION', not {value!r}")


def parse_associations(value: Any, *, at: str = "/associations") -> tuple[Association, ...]:
    """Read ``[{"type": ..., "id": ...}, ...]`` (or `Association` objects).

    Duplicates are dropped; order is kept.

    Args:
        value: The decoded JSON list.
        at: JSON pointer of the list, for messages.

    Returns:
        The associations.

    Raises:
        ValidationError: The list is empty, too long, or an item is malformed.
    """
    if not isinstance(value, list | tuple) or not value:
        raise ValidationError(
            "an annotation needs at least one association",
            [Violation(at, "a non-empty list of {type, id} is required")],
        )
    if (
        type(value) is tuple
        and len(value) <= MAX_ASSOCIATIONS
        and all(type(item) is Association for item in value)
        and len(set(value)) == len(value)
    ):
        return value  # every Association is checked when it is made
    if len(value) > MAX_ASSOCIATIONS:
        raise ValidationError(
            "too many associations",
            [Violation(at, f"at most {MAX_ASSOCIATIONS} associations, got {len(value)}")],
        )
    out: dict[Association, None] = {}
    problems: list[Violation] = []
    for i, item in enumerate(value):
        if isinstance(item, Association):
            kind, ident = item.type, item.id
        elif isinstance(item, Mapping) and set(item) == {"type", "id"}:
            kind, ident = item["type"], item["id"]
        else:
            problems.append(Violation(f"{at}/{i}", "an association is {type, id}"))
            continue
        if not isinstance(kind, str) or not ASSOCIATION_TYPE.match(kind):
            problems.append(Violation(f"{at}/{i}/type", _TYPE_RULE))
        elif not isinstance(ident, str) or not ident or len(ident) > _MAX_ASSOCIATION_ID:
            problems.append(Violation(f"{at}/{i}/id", _ID_RULE))
        else:
            out[Association(kind, ident)] = None
    if problems:
        raise ValidationError("an association is malformed", problems)
    return tuple(out)
