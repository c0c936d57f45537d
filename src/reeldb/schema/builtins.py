"""Built-in property types of the reeldb DSL, their JSON Schema 2020-12 forms, and built-in schemas.

Every built-in structured type compiles to a ``$ref`` into the schema's own ``$defs`` so a
compiled schema is one standalone JSON Schema document. Properties keep their DSL type in the
``x-reeldb-type`` annotation keyword, which validators ignore and the search index and the
compatibility checker read.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "BUILTIN_NAMESPACE",
    "BUILTIN_SCHEMAS",
    "DIALECT",
    "PROPERTY_TYPES",
    "SCALAR_TYPES",
    "STRUCTURED_TYPES",
    "X_INDEXED",
    "X_ORDERED",
    "X_REELDB",
    "X_TYPE",
    "OrderedKeyword",
    "structured_defs",
]

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
X_TYPE: Final = "x-reeldb-type"
X_INDEXED: Final = "x-reeldb-indexed"
X_REELDB: Final = "x-reeldb"
X_ORDERED: Final = "x-reeldb-ordered"
"""Custom keyword: a list of ``[low, high]`` key pairs whose values must not decrease."""

BUILTIN_NAMESPACE: Final = "reeldb"
"""Where built-in schemas live; every namespace can extend them by bare name."""

SCALAR_TYPES: Final[dict[str, dict[str, Any]]] = {
    "string": {"type": "string"},
    "text": {"type": "string"},
    "keyword": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "timestamp": {
        "type": "string",
        "format": "date-time",
        # format is an annotation in 2020-12; the pattern makes RFC 3339 enforced.
        "pattern": r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
    },
}

_SECONDS = {"type": "number", "minimum": 0}
_FRAME = {"type": "integer", "minimum": 0}
_FRAME_RATE = {
    # a positive number, or "num/den", or a decimal string ("29.97")
    "type": ["number", "string"],
    "exclusiveMinimum": 0,
    "pattern": r"^([1-9][0-9]*(/[1-9][0-9]*)?|[0-9]+\.[0-9]+)$",
}


def _time_range(frames_need_rate: bool) -> dict[str, Any]:
    frames: dict[str, Any] = {
        "properties": {
            "start_frame": _FRAME,
            "end_frame": _FRAME,
            "rate": {"$ref": "#/$defs/frame_rate"},
        },
        "required": ["start_frame", "end_frame", "rate"]
        if frames_need_rate
        else ["start_frame", "end_frame"],
        "additionalProperties": False,
    }
    return {
        "description": "A time range: {start, end} in seconds, or {start_frame, end_frame"
        + (", rate}" if frames_need_rate else "[, rate]} (rate defaults to the track's)"),
        "type": "object",
        "if": {"required": ["start_frame"]},
        "then": frames,
        "else": {
            "properties": {"start": _SECONDS, "end": _SECONDS},
            "required": ["start", "end"],
            "additionalProperties": False,
        },
        X_ORDERED: [["start", "end"], ["start_frame", "end_frame"]],
    }


_BOUNDING_BOX = {
    "description": "A rectangle {x, y, w, h}; w and h are non-negative.",
    "type": "object",
    "properties": {
        "x": {"type": "number"},
        "y": {"type": "number"},
        "w": {"type": "number", "minimum": 0},
        "h": {"type": "number", "minimum": 0},
    },
    "required": ["x", "y", "w", "h"],
    "additionalProperties": False,
}

_POLYGON = {
    "description": "A closed polygon: at least three [x, y] points.",
    "type": "array",
    "minItems": 3,
    "items": {
        "type": "array",
        "prefixItems": [{"type": "number"}, {"type": "number"}],
        "minItems": 2,
        "maxItems": 2,
    },
}

STRUCTURED_TYPES: Final = ("time_range", "bounding_box", "polygon")
PROPERTY_TYPES: Final = (*SCALAR_TYPES, "enum", "list", "object", *STRUCTURED_TYPES)


def structured_defs(*, in_track: bool) -> dict[str, Any]:
    """The ``$defs`` every compiled reeldb schema carries.

    Args:
        in_track: Compile for a media document, where a time range in frames may take its
            rate from the enclosing track; elsewhere a frame range must name its rate.

    Returns:
        A fresh dict of definitions (callers may mutate it).
    """
    return {
        "time_range": _time_range(frames_need_rate=not in_track),
        "bounding_box": dict(_BOUNDING_BOX),
        "polygon": dict(_POLYGON),
        "frame_rate": dict(_FRAME_RATE),
    }


class OrderedKeyword:
    """jsonschema-rs custom keyword ``x-reeldb-ordered``: ``start <= end`` for each pair.

    JSON Schema cannot compare two values of one instance, so this one rule runs as a
    custom keyword inside the compiled validator.
    """

    def __init__(
        self, parent_schema: dict[str, Any], value: Any, schema_path: list[str | int]
    ) -> None:
        self.pairs = [(str(low), str(high)) for low, high in value]

    def validate(self, instance: Any) -> None:
        """Raise if a pair of the instance decreases.

        Args:
            instance: The value under validation.

        Raises:
            ValueError: ``low`` is greater than ``high``; jsonschema-rs reports it.
        """
        if not isinstance(instance, dict):
            return
        for low, high in self.pairs:
            start, end = instance.get(low), instance.get(high)
            if (
                isinstance(start, int | float)
                and isinstance(end, int | float)
                and not isinstance(start, bool)
                and not isinstance(end, bool)
                and start > end
            ):
                raise ValueError(f"{low} ({start}) is after {high} ({end})")


BUILTIN_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "TEMPORAL_SPATIAL_BASE": {
        "name": "TEMPORAL_SPATIAL_BASE",
        "version": 0,
        "description": "Platform base schema: an optional time range and an optional bounding box "
        "(MRK-9). Extend it to make annotations searchable by time and space.",
        "properties": {
            "temporal": {"type": "time_range", "mandatory": False},
            "spatial": {"type": "bounding_box", "mandatory": False},
        },
    },
}
"""DSL definitions compiled at start-up into namespace ``reeldb``."""
