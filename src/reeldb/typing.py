"""Type aliases and sentinels shared across reeldb."""

from __future__ import annotations

import enum
from typing import Any, Final, TypeAlias

__all__ = ["UNSET", "JSONObject", "JSONValue", "Unset"]

JSONValue: TypeAlias = Any
"""Any value that ``orjson`` can encode: dict, list, str, int, float, bool or None."""

JSONObject: TypeAlias = dict[str, Any]
"""A decoded JSON object."""


class Unset(enum.Enum):
    """Sentinel type for "argument not given" where ``None`` is a meaningful value."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
