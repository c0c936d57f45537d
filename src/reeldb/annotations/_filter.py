"""A ``where`` condition on ``data.*`` fields, tested on one annotation in Python.

The stores test the same condition in SQL over an annotation's facets (its comparable
properties, as `Annotations` derives them on write) and its full-text rows; this is the same
test on the facets and text tokens of a version in hand, for a reprocessing job that reads
annotations one batch at a time. The rules are the stores': a test of a missing value is
false (``!=`` too) and ``not`` negates; ``contains`` is a phrase of stems, one after the
other, in an indexed text field.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from reeldb.index._compile import fts_tokens
from reeldb.index.rows import literal
from reeldb.query.ast import And, BoxTest, Compare, Contains, Expr, In, Not, Or, Overlaps

__all__ = ["holds"]

_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def holds(
    expr: Expr,
    kinds: Mapping[str, str],
    facets: Mapping[str, Any],
    texts: Mapping[str, str],
) -> bool:
    """Whether an annotation meets a condition.

    Args:
        expr: The condition (checked against the type: `Annotations` does it).
        kinds: The reeldb type of each field the condition names.
        facets: The annotation's comparable values by field (a time range as ``[start,
            end]``, a box as ``[x0, y0, x1, y1]``).
        texts: Its indexed text fields' FTS tokens, space-separated, by field.

    Returns:
        True if it does.
    """
    if isinstance(expr, And):
        return all(holds(e, kinds, facets, texts) for e in expr.items)
    if isinstance(expr, Or):
        return any(holds(e, kinds, facets, texts) for e in expr.items)
    if isinstance(expr, Not):
        return not holds(expr.item, kinds, facets, texts)
    if isinstance(expr, Contains):
        return _contains(texts.get(expr.field.name), expr.text)
    name = expr.field.name  # type: ignore[union-attr]
    value = facets.get(name)
    if value is None:
        return False
    if isinstance(expr, Overlaps):
        return bool(value[0] <= float(expr.end) and value[1] >= float(expr.start))
    if isinstance(expr, BoxTest):
        x, y = float(expr.box.x), float(expr.box.y)
        x1, y1 = x + float(expr.box.w), y + float(expr.box.h)
        if expr.op == "intersects":
            return bool(value[0] <= x1 and value[1] <= y1 and value[2] >= x and value[3] >= y)
        return bool(value[0] >= x and value[1] >= y and value[2] <= x1 and value[3] <= y1)
    kind = kinds.get(name, "string")
    if isinstance(expr, Compare):
        return _OPS[expr.op](value, literal(kind, expr.value))
    assert isinstance(expr, In)
    return any(value == literal(kind, v) for v in expr.values)


def _contains(tokens: str | None, text: str) -> bool:
    wanted = fts_tokens(text)
    if not tokens or not wanted:
        return False
    return f" {' '.join(wanted)} " in f" {tokens} "
