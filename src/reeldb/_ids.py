"""Identifiers given as text: one parser, one message."""

from __future__ import annotations

from uuid import UUID

from reeldb.errors import ValidationError

__all__ = ["ANNOTATION_ID_ERROR", "parse_uuid"]

ANNOTATION_ID_ERROR = "{value!r} is not an annotation id (a UUID)"
"""The error of an annotation id that is not a UUID (the library's and the client's)."""


def parse_uuid(value: UUID | str, what: str, *, message: str | None = None) -> UUID:
    """A UUID from a UUID or its text.

    Args:
        value: The value.
        what: Names it in the error ("blob id").
        message: The error's text instead, with ``{value!r}`` for the value.

    Returns:
        The UUID.

    Raises:
        ValidationError: It is not a UUID.
    """
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        text = message or f"invalid {what} {{value!r}}: expected a UUID"
        raise ValidationError(text.format(value=value)) from None
