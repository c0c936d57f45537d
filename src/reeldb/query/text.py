"""The text form of a query: parsed by Lark (LALR), printed back canonically.

Grammar, informally (keywords in any case)::

    expr      := expr "or" expr | expr "and" expr | "not" expr | "(" expr ")" | predicate
    predicate := field ("=" | "!=" | "<" | "<=" | ">" | ">=") value
               | field "in" "(" value, ... ")"
               | field "contains" (WORD | "a phrase")
               | field "overlaps" "(" start "," end ")"
               | field ("intersects" | "within") "(" x "," y "," w "," h ")"
               | "count" "(" "event" ["in" ("track" | "component")] ["where" expr] ")" op INT
    field     := level "." name        level: asset | track | component | event | region
                                       (or data: an annotation's property)
    value     := "string" | number | true | false

``and`` binds tighter than ``or``; ``not`` tighter than both.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any, Final

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError
from lark.tree import Meta

from reeldb.errors import QueryError
from reeldb.query.ast import (
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
    Span,
)

__all__ = ["number", "parse_text", "to_text"]

_TOO_DEEP: Final = "the query is nested too deeply"

_GRAMMAR: Final = r"""
?start: expr

?expr: and_expr
     | expr _OR and_expr                                      -> or_
?and_expr: not_expr
     | and_expr _AND not_expr                                 -> and_
?not_expr: _NOT not_expr                                      -> not_
     | "(" expr ")"
     | predicate

?predicate: field COMPARE value                               -> compare
     | field _IN "(" value ("," value)* ")"                   -> in_
     | field _CONTAINS (STRING | NAME)                        -> contains
     | field _OVERLAPS "(" number "," number ")"              -> overlaps
     | field BOX_OP "(" number "," number "," number "," number ")"  -> box
     | _COUNT "(" _EVENT [_IN SCOPE] [_WHERE expr] ")" COMPARE INT   -> count

field: LEVEL "." NAME
?value: STRING -> string
     | number
     | TRUE -> true
     | FALSE -> false
number: SIGNED_NUMBER

_OR: /or\b/i
_AND: /and\b/i
_NOT: /not\b/i
_IN: /in\b/i
_CONTAINS: /contains\b/i
_OVERLAPS: /overlaps\b/i
_COUNT: /count\b/i
_EVENT: /event\b/i
_WHERE: /where\b/i
BOX_OP: /(intersects|within)\b/i
SCOPE: /(track|component)\b/i
TRUE: /true\b/i
FALSE: /false\b/i
LEVEL: "asset" | "track" | "component" | "event" | "region" | "data"
COMPARE: "=" | "!=" | "<=" | ">=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
INT: /[0-9]+/
STRING: /"(?:[^"\\\x00-\x1f]|\\["\\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/

%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""

_PARSER: Final = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)

# How the parser's terminals read in an error message.
_WORDS: Final = {
    "_OR": "or",
    "_AND": "and",
    "_NOT": "not",
    "_IN": "in",
    "_CONTAINS": "contains",
    "_OVERLAPS": "overlaps",
    "_COUNT": "count",
    "_EVENT": "event",
    "_WHERE": "where",
    "BOX_OP": "intersects/within",
    "SCOPE": "track/component",
    "TRUE": "true",
    "FALSE": "false",
    "LEVEL": "a level (asset, track, component, event, region) or data",
    "COMPARE": "a comparison (= != < <= > >=)",
    "NAME": "a name",
    "INT": "a whole number",
    "STRING": 'a "string"',
    "SIGNED_NUMBER": "a number",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "DOT": ".",
    "$END": "the end of the query",
}


def _span(meta: Meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.line, meta.column, meta.start_pos, meta.end_pos)


def _number(token: str) -> int | Decimal:
    return number(int(token) if not any(c in token for c in ".eE") else float(token))


def _exact(value: int | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def number(value: int | float) -> int | Decimal:
    """A numeric literal as queries compare it: an integer of 64 bits, or a double.

    Stored numbers are compared the same way (`reeldb.index.rows.scalar`), so a literal
    that no double holds exactly means the double nearest to it.

    Args:
        value: The literal's value.

    Returns:
        The integer, or the double as its shortest exact decimal.

    Raises:
        QueryError: The number is too large for a double.
    """
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    try:
        double = float(value)
    except OverflowError:
        double = math.inf
    if not math.isfinite(double):
        raise QueryError(f"the number {value} is too large")
    return Decimal(repr(double))


class _Refused(Exception):
    """A well-formed query with a value the language refuses, and where it is."""

    def __init__(self, message: str, meta: Meta) -> None:
        super().__init__(message)
        self.meta = meta


@v_args(meta=True)
class _ToAst(Transformer[Token, Expr]):
    def field(self, meta: Meta, children: list[Token]) -> Field:
        level, name = children
        return Field(str(level), str(name), _span(meta))  # type: ignore[arg-type]

    def number(self, meta: Meta, children: list[Token]) -> int | Decimal:
        try:
            return _number(str(children[0]))
        except QueryError as exc:
            raise _Refused(str(exc), meta) from None

    def string(self, meta: Meta, children: list[Token]) -> str:
        text: str = json.loads(str(children[0]))
        return text

    def true(self, meta: Meta, children: list[Token]) -> bool:
        return True

    def false(self, meta: Meta, children: list[Token]) -> bool:
        return False

    def compare(self, meta: Meta, children: list[Any]) -> Compare:
        field, op, value = children
        return Compare(field, str(op), value, _span(meta))  # type: ignore[arg-type]

    def in_(self, meta: Meta, children: list[Any]) -> In:
        return In(children[0], tuple(children[1:]), _span(meta))

    def contains(self, meta: Meta, children: list[Any]) -> Contains:
        field, words = children
        text = json.loads(str(words)) if words.type == "STRING" else str(words)
        if not text.strip():
            raise _Refused("contains needs the words to find", meta)
        return Contains(field, text, _span(meta))

    def overlaps(self, meta: Meta, children: list[Any]) -> Overlaps:
        field, start, end = children
        return Overlaps(field, _exact(start), _exact(end), _span(meta))

    def box(self, meta: Meta, children: list[Any]) -> BoxTest:
        field, op, x, y, w, h = children
        box = Box(_exact(x), _exact(y), _exact(w), _exact(h))
        return BoxTest(field, str(op).lower(), box, _span(meta))  # type: ignore[arg-type]

    def count(self, meta: Meta, children: list[Any]) -> Count:
        scope, where, op, value = children
        scope_name = "track" if scope is None else str(scope).lower()
        return Count(scope_name, where, str(op), int(value), _span(meta))  # type: ignore[arg-type]

    def and_(self, meta: Meta, children: list[Expr]) -> And:
        return And(_flatten(And, children), _span(meta))

    def or_(self, meta: Meta, children: list[Expr]) -> Or:
        return Or(_flatten(Or, children), _span(meta))

    def not_(self, meta: Meta, children: list[Expr]) -> Not:
        return Not(children[0], _span(meta))


def _flatten(kind: type[And] | type[Or], children: list[Expr]) -> tuple[Expr, ...]:
    out: list[Expr] = []
    for child in children:
        if isinstance(child, kind):
            out.extend(child.items)
        else:
            out.append(child)
    return tuple(out)


def parse_text(text: str) -> Expr:
    """Parse the text form of a query.

    Args:
        text: E.g. ``track.kind = "subtitle" and event.text contains storm``.

    Returns:
        The AST (with the position of each node).

    Raises:
        QueryError: The text is not a query; the message says where and what was expected.
    """
    if not isinstance(text, str):
        raise QueryError(f"a query is text; got {type(text).__name__}")
    if not text.strip():
        raise QueryError("the query is empty")
    try:
        tree = _PARSER.parse(text)
        expr: Expr = _ToAst().transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    except VisitError as exc:
        cause = exc.orig_exc
        if isinstance(cause, _Refused):
            raise QueryError(str(cause), line=cause.meta.line, column=cause.meta.column) from None
        if isinstance(cause, RecursionError):
            raise QueryError(_TOO_DEEP) from None
        raise
    except RecursionError:
        raise QueryError(_TOO_DEEP) from None
    return expr


def _syntax_error(text: str, exc: UnexpectedInput) -> QueryError:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedEOF) or line in (None, -1):
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
        found = "the end of the query"
        expected = getattr(exc, "expected", ())
    elif isinstance(exc, UnexpectedCharacters):
        found = repr(text[exc.pos_in_stream or 0])
        expected = exc.allowed or ()
    else:
        token = getattr(exc, "token", None)
        at_end = token is None or token.type == "$END"
        found = "the end of the query" if at_end else repr(str(token))
        expected = getattr(exc, "expected", ()) or getattr(exc, "accepts", ())
        if at_end:
            lines = text.split("\n")
            line, column = len(lines), len(lines[-1]) + 1
    words = sorted({_WORDS.get(name, name.lower().strip("_")) for name in expected})
    hint = f"; expected {', '.join(words)}" if words else ""
    return QueryError(f"unexpected {found}{hint}", line=line, column=column)


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def to_text(expr: Expr) -> str:
    """Print a query in its text form (``parse_text`` reads it back to an equal tree).

    Args:
        expr: The query.

    Returns:
        The text.
    """
    return _print(expr, 0)


def _print(expr: Expr, parent: int) -> str:
    # Precedence: or 1, and 2, not 3, predicates 4; parenthesise a weaker child.
    if isinstance(expr, Or):
        out, own = " or ".join(_print(item, 1) for item in expr.items), 1
    elif isinstance(expr, And):
        out, own = " and ".join(_print(item, 2) for item in expr.items), 2
    elif isinstance(expr, Not):
        out, own = f"not {_print(expr.item, 3)}", 3
    else:
        out, own = _predicate(expr), 4
    # A nested or inside or (or and inside and) keeps its brackets: the tree stays the same.
    return f"({out})" if own < parent or (own == parent and own in (1, 2)) else out


def _predicate(expr: Expr) -> str:
    if isinstance(expr, Compare):
        return f"{expr.field} {expr.op} {_literal(expr.value)}"
    if isinstance(expr, In):
        return f"{expr.field} in ({', '.join(_literal(v) for v in expr.values)})"
    if isinstance(expr, Contains):
        return f"{expr.field} contains {json.dumps(expr.text, ensure_ascii=False)}"
    if isinstance(expr, Overlaps):
        return f"{expr.field} overlaps({expr.start}, {expr.end})"
    if isinstance(expr, BoxTest):
        b = expr.box
        return f"{expr.field} {expr.op}({b.x}, {b.y}, {b.w}, {b.h})"
    if isinstance(expr, Count):
        scope = " in component" if expr.scope == "component" else ""
        where = "" if expr.where is None else f" where {_print(expr.where, 0)}"
        return f"count(event{scope}{where}) {expr.op} {expr.value}"
    raise TypeError(f"not a query node: {expr!r}")
