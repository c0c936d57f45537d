"""JSON encoding and decoding with reeldb errors (orjson underneath)."""

from __future__ import annotations

from typing import Any

import orjson

from reeldb.errors import ValidationError, Violation

__all__ = ["dumps", "dumps_pretty", "loads", "same"]


def loads(data: bytes | bytearray | memoryview | str, *, what: str = "JSON input") -> Any:
    """Decode JSON text.

    Args:
        data: UTF-8 JSON text.
        what: Names the input in error messages ("document", "schema file ...").

    Returns:
        The decoded value.

    Raises:
        ValidationError: The text is not valid JSON; the message gives the position.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(
            f"{what} is not valid JSON", [Violation("", f"{exc.msg} at position {exc.pos}")]
        ) from exc


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Encode a value as compact UTF-8 JSON.

    Args:
        value: The value to encode.
        sort_keys: Sort object keys (canonical form).

    Returns:
        The JSON bytes.

    Raises:
        ValidationError: The value cannot be represented in JSON (e.g. an integer wider than
            64 bits, a non-string key, NaN).
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise ValidationError("value cannot be stored as JSON", [Violation("", str(exc))]) from exc


def dumps_pretty(value: Any) -> str:
    """Encode a value as indented JSON text for people.

    Args:
        value: The value to encode.

    Returns:
        The JSON text, indented by two spaces.
    """
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def same(a: Any, b: Any) -> bool:
    """Whether two values are the same JSON: unlike Python's ``==``, ``true`` is not ``1``.

    ``1`` and ``1.0`` count as different, which only makes callers more cautious.

    Args:
        a: A JSON value.
        b: A JSON value.

    Returns:
        True if both encode to the same canonical JSON.
    """
    try:
        return dumps(a, sort_keys=True) == dumps(b, sort_keys=True)
    except ValidationError:
        return False
