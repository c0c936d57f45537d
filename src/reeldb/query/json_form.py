"""The JSON form of a query: the same tree as the text form, for programs.

::

    {"and": [q, ...]}   {"or": [q, ...]}   {"not": q}
    {"field": "event.label", "op": "=", "value": "face"}        (op: = != < <= > >=)
    {"field": "event.label", "in": ["face", "car"]}
    {"field": "event.text", "contains": "heavy storm"}
    {"field": "event.time_range", "overlaps": [10, 20.5]}
    {"field": "region.bounding_box", "intersects": [x, y, w, h]}   (or "within")
    {"count": {"scope": "track", "where": q}, "op": ">", "value": 3}   (scope, where optional)
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from reeldb.errors import QueryError
from reeldb.query.ast import (
    COMPARISONS,
    SCOPES,
    And,
    Box,
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
)
from reeldb.query.text import number

__all__ = ["from_json", "to_json"]

_PREDICATE_KEYS: Final = ("op", "in", "contains", "overlaps", "intersects", "within")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def from_json(value: Any) -> Expr:
    """Read the JSON form of a query.

    Args:
        value: The decoded JSON.

    Returns:
        The AST.

    Raises:
        QueryError: Not a query; the message names the JSON pointer of the problem.
    """
    try:
        return _node(value, "")
    except RecursionError:
        raise QueryError("the query is nested too deeply") from None


def _fail(pointer: str, message: str) -> QueryError:
    return QueryError(f"{message} at {pointer or '/'} of the JSON query")


def _node(value: Any, at: str) -> Expr:
    if not isinstance(value, dict):
        raise _fail(at, f"a query node is an object; got {_kind(value)}")
    keys = set(value)
    for logical in ("and", "or"):
        if logical in value:
            _only(value, {logical}, at)
            items = value[logical]
            if not isinstance(items, list) or len(items) < 2:
                raise _fail(f"{at}/{logical}", f"'{logical}' takes a list of at least two queries")
            nodes = tuple(_node(item, f"{at}/{logical}/{i}") for i, item in enumerate(items))
            return And(nodes) if logical == "and" else Or(nodes)
    if "not" in value:
        _only(value, {"not"}, at)
        return Not(_node(value["not"], f"{at}/not"))
    if "count" in value:
        return _count(value, at)
    if "field" not in value:
        raise _fail(at, "a query node has 'and', 'or', 'not', 'count' or 'field'")
    field = _field(value["field"], f"{at}/field")
    kinds = [k for k in _PREDICATE_KEYS if k in keys]
    if len(kinds) != 1:
        raise _fail(at, f"a predicate on {field} has exactly one of {', '.join(_PREDICATE_KEYS)}")
    kind = kinds[0]
    if kind == "op":
        _only(value, {"field", "op", "value"}, at)
        op = value["op"]
        if op not in COMPARISONS:
            raise _fail(f"{at}/op", f"op is one of {' '.join(COMPARISONS)}; got {op!r}")
        if "value" not in value:
            raise _fail(at, f"a comparison of {field} needs a 'value'")
        return Compare(field, op, _scalar(value["value"], f"{at}/value"))
    _only(value, {"field", kind}, at)
    arg, where = value[kind], f"{at}/{kind}"
    if kind == "in":
        if not isinstance(arg, list) or not arg:
            raise _fail(where, "'in' takes a non-empty list of values")
        return In(field, tuple(_scalar(v, f"{where}/{i}") for i, v in enumerate(arg)))
    if kind == "contains":
        if not isinstance(arg, str) or not arg.strip():
            raise _fail(where, "'contains' takes the words to find, as a string")
        return Contains(field, arg)
    numbers = _numbers(arg, 2 if kind == "overlaps" else 4, where)
    if kind == "overlaps":
        return Overlaps(field, numbers[0], numbers[1])
    return BoxTest(field, kind, Box(*numbers))  # type: ignore[arg-type]


def _count(value: dict[str, Any], at: str) -> Count:
    _only(value, {"count", "op", "value"}, at)
    spec = value["count"]
    if not isinstance(spec, dict) or not set(spec) <= {"scope", "where"}:
        raise _fail(f"{at}/count", "'count' is an object with optional 'scope' and 'where'")
    scope = spec.get("scope", "track")
    if scope not in ("track", "component"):
        raise _fail(f"{at}/count/scope", f"scope is 'track' or 'component'; got {scope!r}")
    where = spec.get("where")
    condition = None if where is None else _node(where, f"{at}/count/where")
    op = value.get("op")
    if op not in COMPARISONS:
        raise _fail(f"{at}/op", f"op is one of {' '.join(COMPARISONS)}; got {op!r}")
    n = value.get("value")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise _fail(f"{at}/value", f"a count is compared with a whole number >= 0; got {n!r}")
    return Count(scope, condition, op, n)


def _only(value: dict[str, Any], allowed: set[str], at: str) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        raise _fail(at, f"unexpected key {extra[0]!r}")


def _field(value: Any, at: str) -> Field:
    if not isinstance(value, str) or value.count(".") != 1:
        raise _fail(at, f"a field is 'level.name'; got {value!r}")
    level, name = value.split(".")
    if level not in SCOPES:
        raise _fail(at, f"the level of {value!r} is one of {', '.join(SCOPES)}")
    if not _NAME.fullmatch(name):
        raise _fail(at, f"{name!r} is not a property name (letters, digits and _)")
    return Field(level, name)  # type: ignore[arg-type]


def _scalar(value: Any, at: str) -> Scalar:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        try:
            return number(value)
        except QueryError:
            raise _fail(at, f"the number {value} is too large") from None
    if isinstance(value, float | Decimal):
        return _decimal(value, at)
    raise _fail(at, f"a value is a string, a number or a boolean; got {_kind(value)}")


def _numbers(value: Any, n: int, at: str) -> list[Decimal]:
    if not isinstance(value, list) or len(value) != n:
        raise _fail(at, f"expected a list of {n} numbers")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float | Decimal):
            raise _fail(f"{at}/{i}", f"expected a number; got {_kind(item)}")
        out.append(_decimal(item, f"{at}/{i}"))
    return out


def _decimal(value: float | int | Decimal, at: str) -> Decimal:
    # Numbers are doubles (`reeldb.query.text.number`): the shortest decimal of the double.
    try:
        finite = math.isfinite(value) if isinstance(value, float) else Decimal(value).is_finite()
    except InvalidOperation:
        finite = False
    if not finite:
        raise _fail(at, f"expected a finite number; got {value!r}")
    double = float(value)
    if not math.isfinite(double):
        raise _fail(at, f"the number {value} is too large")
    return Decimal(repr(double))


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def to_json(expr: Expr) -> dict[str, Any]:
    """The JSON form of a query (``from_json`` reads it back to an equal tree).

    Args:
        expr: The query.

    Returns:
        JSON-ready data (decimals become ints or floats).
    """
    if isinstance(expr, And):
        return {"and": [to_json(item) for item in expr.items]}
    if isinstance(expr, Or):
        return {"or": [to_json(item) for item in expr.items]}
    if isinstance(expr, Not):
        return {"not": to_json(expr.item)}
    if isinstance(expr, Count):
        spec: dict[str, Any] = {"scope": expr.scope}
        if expr.where is not None:
            spec["where"] = to_json(expr.where)
        return {"count": spec, "op": expr.op, "value": expr.value}
    field = str(expr.field)
    if isinstance(expr, Compare):
        return {"field": field, "op": expr.op, "value": _plain(expr.value)}
    if isinstance(expr, In):
        return {"field": field, "in": [_plain(v) for v in expr.values]}
    if isinstance(expr, Contains):
        return {"field": field, "contains": expr.text}
    if isinstance(expr, Overlaps):
        return {"field": field, "overlaps": [_plain(expr.start), _plain(expr.end)]}
    b = expr.box
    return {"field": field, expr.op: [_plain(b.x), _plain(b.y), _plain(b.w), _plain(b.h)]}


def _plain(value: Scalar) -> Any:
    if isinstance(value, Decimal):
        whole = value == value.to_integral_value() and -(2**63) <= value < 2**63
        return int(value) if whole else float(value)
    return value
