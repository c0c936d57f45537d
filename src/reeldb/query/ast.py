"""The query AST: one tree for both forms of a query (text and JSON).

A query is a boolean expression over the five levels of a media document. It is evaluated
on each event *in its context* (its asset, track and component) and, when it names region
fields, on each of the event's regions: a document matches when some event (or some region of
it) does, and a document-level query returns those events with the regions that matched.

Comparisons with a missing value are false (``!=`` included); ``not`` negates whatever its
operand gives. Time ranges and boxes are closed: touching counts as overlapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _attribute
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "COMPARISONS",
    "LEVELS",
    "SCOPES",
    "And",
    "Box",
    "BoxTest",
    "Compare",
    "Contains",
    "Count",
    "Expr",
    "Field",
    "In",
    "Not",
    "Or",
    "Overlaps",
    "Scalar",
    "Span",
    "fields_of",
    "holds",
]

LEVELS: Final = ("asset", "track", "component", "event", "region")
"""The levels of a media document, outermost first."""

SCOPES: Final = (*LEVELS, "data")
"""What a field may be prefixed with: a document level, or ``data`` (an annotation's data)."""

Level: TypeAlias = Literal["asset", "track", "component", "event", "region", "data"]
Comparison: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]
COMPARISONS: Final = ("=", "!=", "<", "<=", ">", ">=")

Scalar: TypeAlias = str | int | Decimal | bool
"""A literal: numbers with a fraction are exact decimals (``0.1`` is one tenth)."""


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node is in the query text (absent for the JSON form).

    Attributes:
        line: 1-based line.
        column: 1-based column.
        start: 0-based offset of the first character.
        end: 0-based offset after the last character.
    """

    line: int
    column: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Field:
    """``level.name``: a property of a level (or ``data.name``: of an annotation's data).

    The media document model adds ``event.time_range`` and ``region.bounding_box``.
    """

    level: Level
    name: str
    span: Span | None = _attribute(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.level}.{self.name}"


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``."""

    field: Field
    op: Comparison
    value: Scalar
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class In:
    """``field in (v1, v2, ...)``: equal to one of the values."""

    field: Field
    values: tuple[Scalar, ...]
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Contains:
    """``field contains "words"``: stemmed full text; several words must appear in this order.

    Attributes:
        field: A ``text`` property.
        text: The words (one word, or a phrase).
    """

    field: Field
    text: str
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Overlaps:
    """``field overlaps(start, end)``: the time range shares at least one instant with it."""

    field: Field
    start: Decimal
    end: Decimal
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box: ``x, y`` of its top-left corner, width and height."""

    x: Decimal
    y: Decimal
    w: Decimal
    h: Decimal


@dataclass(frozen=True, slots=True)
class BoxTest:
    """``field intersects(x, y, w, h)`` or ``field within(x, y, w, h)``."""

    field: Field
    op: Literal["intersects", "within"]
    box: Box
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Count:
    """``count(event [in component] [where cond]) op n``.

    Counts the events of the current track (or, ``in component``, of the current component)
    for which ``where`` holds (all of them without it), and compares the count with ``n``.
    """

    scope: Literal["track", "component"]
    where: Expr | None
    op: Comparison
    value: int
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    """All of the operands."""

    items: tuple[Expr, ...]
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    """Any of the operands."""

    items: tuple[Expr, ...]
    span: Span | None = _attribute(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    """The negation of the operand."""

    item: Expr
    span: Span | None = _attribute(default=None, compare=False)


Expr: TypeAlias = Compare | In | Contains | Overlaps | BoxTest | Count | And | Or | Not
"""Any node of a query."""


def fields_of(expr: Expr) -> list[Field]:
    """Every field an expression names, count conditions included.

    Args:
        expr: The expression.

    Returns:
        The fields, in the order they appear.
    """
    if isinstance(expr, And | Or):
        return [f for item in expr.items for f in fields_of(item)]
    if isinstance(expr, Not):
        return fields_of(expr.item)
    if isinstance(expr, Count):
        return [] if expr.where is None else fields_of(expr.where)
    return [expr.field]


def holds(a: Any, op: str, b: Any) -> bool:
    """Whether ``a op b`` holds, for the six comparison operators.

    Args:
        a: The left value.
        op: ``=``, ``!=``, ``<``, ``<=``, ``>`` or ``>=``.
        b: The right value.

    Returns:
        The comparison's result.
    """
    if op == "=":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)
