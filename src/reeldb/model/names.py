"""Rules for the names users give things, checked in one place."""

from __future__ import annotations

import re

from reeldb.errors import ValidationError

__all__ = [
    "check_analysis_type",
    "check_mid_key",
    "check_namespace",
    "check_principal",
    "check_schema_name",
    "check_version",
    "MAX_VERSION",
]

_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_ANALYSIS_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SCHEMA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
_MID_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_VERSION = 2**63 - 1
"""The largest version number (a signed 64-bit integer in every backend)."""
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$")


def _check(pattern: re.Pattern[str], value: object, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValidationError(f"invalid {what} {value!r}: {rule}")
    return value


def check_namespace(value: object) -> str:
    """Check a namespace name (an LDAP-style group name such as ``media-video-analytics``).

    Args:
        value: The candidate name.

    Returns:
        The name, unchanged.

    Raises:
        ValidationError: The name breaks the rule.
    """
    return _check(
        _NAMESPACE, value, "namespace", "use 1-63 of a-z 0-9 . _ -, starting with a letter or digit"
    )


def check_analysis_type(value: object) -> str:
    """Check a DataStore's media analysis type (``video_face_detection``).

    Args:
        value: The candidate name.

    Returns:
        The name, unchanged.

    Raises:
        ValidationError: The name breaks the rule.
    """
    return _check(
        _ANALYSIS_TYPE,
        value,
        "analysis type",
        "use 1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit",
    )


def check_schema_name(value: object) -> str:
    """Check a schema name (``BOUNDING_BOX``, ``face_detection``).

    Args:
        value: The candidate name.

    Returns:
        The name, unchanged.

    Raises:
        ValidationError: The name breaks the rule.
    """
    return _check(
        _SCHEMA_NAME, value, "schema name", "use 1-128 of A-Z a-z 0-9 _ . -, starting with a letter"
    )


def check_mid_key(value: object) -> str:
    """Check one key of a MID schema (``title_id``).

    Args:
        value: The candidate key.

    Returns:
        The key, unchanged.

    Raises:
        ValidationError: The key breaks the rule.
    """
    return _check(
        _MID_KEY, value, "MID key", "use 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or _"
    )


def check_principal(value: object) -> str:
    """Check a principal id (``user:alice``, ``app:shot-detector``).

    Args:
        value: The candidate id.

    Returns:
        The id, unchanged.

    Raises:
        ValidationError: The id breaks the rule.
    """
    return _check(
        _PRINCIPAL, value, "principal", "use 1-128 of A-Z a-z 0-9 _ . : @ / -, e.g. 'user:alice'"
    )


def check_version(value: object, what: str = "version") -> int:
    """Check a version number (a non-negative integer, not a bool).

    Args:
        value: The candidate version.
        what: Names the version in the error message.

    Returns:
        The version as an int.

    Raises:
        ValidationError: The value is not a non-negative integer.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise ValidationError(f"invalid {what} {value!r}: use an integer from 0 to {MAX_VERSION}")
    return value
