"""Compiled validators: JSON Schema 2020-12 checks by jsonschema-rs, violations as JSON pointers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonschema_rs

from reeldb.errors import InvalidSchemaError, ValidationError, Violation
from reeldb.schema.builtins import X_ORDERED, OrderedKeyword

if TYPE_CHECKING:
    from jsonschema_rs import KeywordValidator

__all__ = ["MAX_VIOLATIONS", "SchemaValidator", "json_pointer"]

MAX_VIOLATIONS = 1000
"""Violations reported per value at most; more are summarised as a count."""


def json_pointer(path: Any) -> str:
    """Format a path (a sequence of keys and indexes) as an RFC 6901 JSON pointer.

    Args:
        path: The keys and list indexes from the root.

    Returns:
        The pointer, ``""`` for the root.
    """
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class SchemaValidator:
    """A compiled validator for one schema version.

    Validation is done in compiled code (jsonschema-rs); only ``start <= end`` of time ranges
    (``x-reeldb-ordered``) calls back into Python, and only for schemas compiled from the DSL.
    Remote ``$ref`` retrieval is disabled: a schema is self-contained.

    Args:
        json_schema: A JSON Schema 2020-12 document.
        reeldb_keywords: Enable reeldb's custom keywords (for schemas compiled from the DSL);
            plain JSON Schemas are validated exactly as the specification says.

    Raises:
        InvalidSchemaError: The schema cannot be compiled.
    """

    __slots__ = ("_validator",)

    def __init__(self, json_schema: dict[str, Any], *, reeldb_keywords: bool) -> None:
        keywords: dict[str, type[KeywordValidator]] | None = (
            {X_ORDERED: OrderedKeyword} if reeldb_keywords else None
        )
        try:
            self._validator = jsonschema_rs.validator_for(
                json_schema, keywords=keywords, offline=True
            )
        except jsonschema_rs.ValidationError as exc:
            pointer = json_pointer(exc.instance_path)
            raise InvalidSchemaError(
                "schema cannot be compiled", [Violation(pointer, exc.message)]
            ) from None
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            raise InvalidSchemaError(f"schema cannot be compiled: {exc}") from None

    def is_valid(self, instance: Any) -> bool:
        """Whether the instance is valid (the fast path: no error objects are built).

        Args:
            instance: A decoded JSON value.

        Returns:
            True if valid.
        """
        return bool(self._validator.is_valid(instance))

    def violations(self, instance: Any, limit: int = MAX_VIOLATIONS) -> list[Violation]:
        """Every violation in the instance, up to ``limit``.

        Args:
            instance: A decoded JSON value.
            limit: Stop after this many.

        Returns:
            The violations, in the validator's order; empty when valid.
        """
        found: list[Violation] = []
        for error in self._validator.iter_errors(instance):
            if len(found) >= limit:
                found.append(Violation("", f"... more than {limit} violations; fix these first"))
                break
            found.append(Violation(json_pointer(error.instance_path), error.message))
        return found

    def validate(self, instance: Any, what: str) -> None:
        """Raise with every violation if the instance is invalid.

        Args:
            instance: A decoded JSON value.
            what: Names the value in the error message ("document for MID ...").

        Raises:
            ValidationError: The instance is invalid; ``violations`` lists every problem.
        """
        if not self._validator.is_valid(instance):
            raise ValidationError(f"{what} is invalid", self.violations(instance))
