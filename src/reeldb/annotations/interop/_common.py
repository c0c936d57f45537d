"""What the W3C, COCO and CVAT conversions share: frame rates, numbers, associations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from reeldb.annotations.model import (
    ASSOCIATION_TYPE,
    Association,
    TypeRef,
    parse_associations,
    parse_type,
)
from reeldb.errors import ValidationError, Violation
from reeldb.model.timing import FrameRate


def _json_number(value: Fraction | Decimal) -> int | float:
    """An exact number as JSON: an int when whole, else the nearest float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return int(value) if value.denominator == 1 else float(value)


def _exact(value: object) -> Fraction | None:
    """An int or finite float as an exact Fraction; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float) and math.isfinite(value):
        return Fraction(repr(value))
    return None


def _check_target_type(kind: str | TypeRef | Mapping[str, Any], association_type: str) -> None:
    """Check the caller's annotation type and association type once, before any item."""
    parse_type(kind)  # raises ValidationError for a malformed reference
    if not ASSOCIATION_TYPE.match(association_type):
        raise ValidationError(
            f"association type {association_type!r} is malformed: a letter, then letters, "
            "digits, _ . - (64 at most)"
        )


def _frame_rate(
    time_property: str | None, frame_rate: str | float | Fraction | None
) -> FrameRate | None:
    """The frame rate needed to give boxes on frame n the time range [n, n+1)."""
    if time_property is None:
        return None
    if frame_rate is None:
        raise ValidationError(
            "time_property needs frame_rate",
            [Violation("", f"pass frame_rate to turn frame numbers into {time_property}")],
        )
    try:
        return FrameRate.parse(frame_rate)
    except ValidationError as exc:
        raise ValidationError("bad frame_rate", [Violation("", exc.summary)]) from exc


def _frame_range(frame: int, rate: FrameRate) -> dict[str, Any]:
    """Frame ``n`` as the time range ``[n, n + 1)`` in frames, with its exact rate."""
    value = rate.value
    exact: int | str = int(value) if value.denominator == 1 else str(value)
    return {"start_frame": frame, "end_frame": frame + 1, "rate": exact}


def _associations(extra: Sequence[Association]) -> tuple[Association, ...]:
    return parse_associations(list(extra), at="/associations") if extra else ()


def _with(first: Association, extra: tuple[Association, ...]) -> tuple[Association, ...]:
    return tuple(dict.fromkeys((first, *extra)))


def _check_association(kind: str, ident: str, at: str) -> list[Violation]:
    try:
        parse_associations([{"type": kind, "id": ident}], at=at)
    except ValidationError as exc:
        # parse_associations points at item 0 of its list; here the list is implicit.
        return [Violation(at, v.message) for v in exc.violations]
    return []
