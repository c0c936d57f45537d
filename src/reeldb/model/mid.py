"""Media IDs (MIDs): immutable ``string -> string`` maps keyed by a DataStore's MID schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reeldb import _json
from reeldb.errors import ValidationError, Violation
from reeldb.model.names import check_mid_key

__all__ = ["check_mid", "check_mid_keys", "mid_key"]


def check_mid_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """Check a MID schema: a non-empty list of distinct keys.

    Args:
        keys: The MID keys, e.g. ``["title_id", "video_stream_id"]``.

    Returns:
        The keys as a tuple, in the given order.

    Raises:
        ValidationError: The list is empty, has duplicates or a bad key.
    """
    if isinstance(keys, str) or not isinstance(keys, Sequence) or not keys:
        raise ValidationError(
            "a MID schema is a non-empty list of key names, e.g. ['title_id', 'video_stream_id']"
        )
    checked = tuple(check_mid_key(key) for key in keys)
    duplicates = sorted({key for key in checked if checked.count(key) > 1})
    if duplicates:
        raise ValidationError(f"MID schema repeats keys: {', '.join(duplicates)}")
    return checked


def check_mid(mid: Any, keys: Sequence[str]) -> dict[str, str]:
    """Check a MID against a DataStore's MID schema (NMDB-12, NMDB-13).

    Args:
        mid: The candidate MID.
        keys: The DataStore's MID keys.

    Returns:
        The MID as a plain dict.

    Raises:
        ValidationError: Every missing key, extra key and non-string or empty value is listed.
    """
    if not isinstance(mid, Mapping):
        raise ValidationError(
            f"a MID is an object of string values with keys {', '.join(keys)}; got "
            f"{type(mid).__name__}"
        )
    violations = [
        Violation(f"/{key}", "missing MID key (required by the DataStore's MID schema)")
        for key in keys
        if key not in mid
    ]
    expected = set(keys)
    violations.extend(
        Violation(f"/{key}", f"unexpected MID key; the MID schema has only {', '.join(keys)}")
        for key in mid
        if key not in expected
    )
    violations.extend(
        Violation(f"/{key}", "MID values must be non-empty strings")
        for key, value in mid.items()
        if key in expected and (not isinstance(value, str) or not value)
    )
    if violations:
        raise ValidationError("MID does not match the DataStore's MID schema", violations)
    return {key: mid[key] for key in keys}


def mid_key(mid: Mapping[str, str]) -> str:
    """The canonical text form of a checked MID: compact JSON with sorted keys.

    Two MIDs are the same media asset exactly when their canonical forms are equal.

    Args:
        mid: A MID that passed `check_mid`.

    Returns:
        The canonical key.
    """
    return _json.dumps(dict(mid), sort_keys=True).decode()
