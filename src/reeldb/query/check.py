"""Checking a query against a DataStore's document schema, before it runs.

Each field must exist at its level, be indexed, and be used with an operator and values its
type supports; a problem is reported with its position in the query text.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from reeldb.errors import QueryError
from reeldb.query.ast import (
    LEVELS,
    And,
    BoxTest,
    Compare,
    Contains,
    Count,
    Expr,
    Field,
    In,
    Not,
    Or,
    Overlaps,
    Scalar,
    Span,
)
from reeldb.query.fulltext import tokens
from reeldb.schema.builtins import X_INDEXED

__all__ = ["FieldInfo", "check_query", "searchable_fields"]

_ORDERED: Final = frozenset({"int", "float", "keyword", "string", "enum", "timestamp"})
_STRINGS: Final = frozenset({"text", "keyword", "string", "enum", "timestamp"})
_SCALARS: Final = _STRINGS | {"int", "float", "bool"}
STRUCTURAL: Final = {
    ("event", "time_range"): "time_range",
    ("region", "bounding_box"): "bounding_box",
    ("region", "time_range"): "time_range",
}
"""Fields of the media document model itself, searchable in every DataStore."""


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What search knows of one field.

    Attributes:
        type: The reeldb type (``text``, ``keyword``, ``int``, ``time_range``, ...).
        indexed: False when the schema says ``indexed: false``.
        values: The allowed values of an ``enum`` (strings or numbers).
    """

    type: str
    indexed: bool = True
    values: tuple[Any, ...] = ()

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> FieldInfo:
        """What search knows of a resolved property (`SchemaVersion.resolved` entry).

        Args:
            spec: ``{type, mandatory, schema, origin}``.

        Returns:
            Its type, whether it is indexed and, for an ``enum``, its values.
        """
        schema = spec.get("schema", {})
        values = tuple(schema.get("enum", ())) if spec["type"] == "enum" else ()
        return cls(spec["type"], bool(schema.get(X_INDEXED, True)), values)


def searchable_fields(resolved: Mapping[str, Any]) -> dict[tuple[str, str], FieldInfo]:
    """The fields of a document schema, by ``(level, name)``.

    Args:
        resolved: `SchemaVersion.resolved` of a document schema (``{level: {name: spec}}``);
            empty for a plain JSON Schema, whose documents offer only the structural fields.

    Returns:
        Every field, the structural ones (``event.time_range``, ``region.bounding_box``,
        ``region.time_range``) included.
    """
    out = {key: FieldInfo(kind) for key, kind in STRUCTURAL.items()}
    for level in LEVELS:
        for name, spec in resolved.get(level, {}).items():
            out[level, name] = FieldInfo.of(spec)
    return out


def check_query(
    expr: Expr, fields: Mapping[tuple[str, str], FieldInfo], *, what: str = "this DataStore"
) -> None:
    """Check that a query fits the fields of a DataStore.

    Args:
        expr: The query.
        fields: From `searchable_fields`.
        what: Names the DataStore in messages.

    Raises:
        QueryError: The first problem, with its line and column when the query was text.
    """
    _Checker(fields, what).expr(expr, in_count=False)


class _Checker:
    def __init__(self, fields: Mapping[tuple[str, str], FieldInfo], what: str) -> None:
        self.fields = fields
        self.what = what

    def fail(self, span: Span | None, message: str) -> QueryError:
        if span is None:
            return QueryError(message)
        return QueryError(message, line=span.line, column=span.column)

    def expr(self, expr: Expr, *, in_count: bool) -> None:
        if isinstance(expr, And | Or):
            for item in expr.items:
                self.expr(item, in_count=in_count)
        elif isinstance(expr, Not):
            self.expr(expr.item, in_count=in_count)
        elif isinstance(expr, Count):
            if in_count:
                raise self.fail(expr.span, "count(...) cannot be nested in another count")
            if expr.where is not None:
                self.expr(expr.where, in_count=True)
        else:
            self.predicate(expr, in_count=in_count)

    def info(self, field: Field, *, in_count: bool) -> FieldInfo:
        if in_count and field.level not in ("event", "region"):
            raise self.fail(
                field.span,
                f"inside count(event where ...) the condition is on each counted event: use "
                f"event.* and region.* fields, not {field}",
            )
        found = self.fields.get((field.level, field.name))
        if found is None:
            names = [name for level, name in self.fields if level == field.level]
            close = difflib.get_close_matches(field.name, names, n=1)
            hint = f"; did you mean {field.level}.{close[0]}?" if close else ""
            known = ", ".join(sorted(names)) or "none"
            raise self.fail(
                field.span,
                f"{self.what} has no field {field}{hint} ({field.level} fields: {known})",
            )
        if not found.indexed:
            raise self.fail(field.span, f"{field} is not indexed (the schema says indexed: false)")
        return found

    def predicate(
        self, expr: Compare | In | Contains | Overlaps | BoxTest, *, in_count: bool
    ) -> None:
        info = self.info(expr.field, in_count=in_count)
        kind, name = info.type, str(expr.field)
        span = expr.span or expr.field.span
        if isinstance(expr, Contains):
            if kind != "text":
                raise self.fail(span, f"contains needs a text field; {name} is {kind}")
            if not tokens(expr.text):
                raise self.fail(span, f"contains {expr.text!r} has no word to search for")
            return
        if isinstance(expr, Overlaps):
            if kind != "time_range":
                raise self.fail(span, f"overlaps needs a time range; {name} is {kind}")
            if expr.start < 0 or expr.end < expr.start:
                raise self.fail(span, "overlaps(start, end) needs 0 <= start <= end (seconds)")
            return
        if isinstance(expr, BoxTest):
            if kind != "bounding_box":
                raise self.fail(span, f"{expr.op} needs a bounding box; {name} is {kind}")
            if expr.box.w < 0 or expr.box.h < 0:
                raise self.fail(span, f"{expr.op}(x, y, w, h) needs w >= 0 and h >= 0")
            return
        if kind not in _SCALARS:
            raise self.fail(span, f"{name} is {kind}: it cannot be compared")
        if isinstance(expr, Compare):
            if expr.op not in ("=", "!=") and kind not in _ORDERED:
                raise self.fail(span, f"{expr.op} does not apply to {name} ({kind})")
            self.value(expr.value, info, name, span)
        else:
            for value in expr.values:
                self.value(value, info, name, span)

    def value(self, value: Scalar, info: FieldInfo, name: str, span: Span | None) -> None:
        kind = info.type
        if kind == "enum":
            if not any(_same(value, allowed) for allowed in info.values):
                shown = ", ".join(_show(v) for v in info.values)
                raise self.fail(span, f"{_show(value)} is not a value of {name} ({shown})")
        elif kind in _STRINGS:
            if not isinstance(value, str):
                raise self.fail(
                    span, f'{name} is {kind}: compare it with a "string", not {value!r}'
                )
            if kind == "timestamp" and parse_timestamp(value) is None:
                raise self.fail(span, f"{value!r} is not an RFC 3339 timestamp ({name})")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(span, f"{name} is bool: compare it with true or false")
        elif isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise self.fail(span, f"{name} is {kind}: compare it with a number, not {value!r}")


def _same(value: Scalar, allowed: Any) -> bool:
    if isinstance(value, bool) or isinstance(allowed, bool):
        return isinstance(value, bool) and isinstance(allowed, bool) and value == allowed
    if isinstance(value, str) or isinstance(allowed, str):
        return isinstance(value, str) and isinstance(allowed, str) and value == allowed
    return isinstance(allowed, int | float) and float(value) == float(allowed)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def parse_timestamp(text: str) -> datetime | None:
    """Read an RFC 3339 timestamp with its offset (``Z`` or ``+hh:mm``).

    Args:
        text: E.g. ``2026-11-23T12:00:00Z``.

    Returns:
        An aware datetime, or None if the text is not one.
    """
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
