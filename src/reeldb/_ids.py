"""Identifiers given as text: one parser, one message."""

from __future__ import annotations

from uuid import UUID

from reeldb.errors import ValidationError

__all__ = ["parse_uuid"]


def parse_uuid(value: UUID | str, what: str) -> UUID:
    """A UUID from a UUID or its text.

    Args:
        value: The value.
        what: Names it in the error ("blob id").

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
        raise ValidationError(f"invalid {what} {value!r}: expected a UUID") from None
