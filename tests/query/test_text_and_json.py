"""The two forms of a query: the text form (Lark) and the JSON form, and their round trips.

Both forms read into one AST (`reeldb.query.ast`). The text parser flattens nested ``and`` in
``and`` (and ``or`` in ``or``), even when the nesting is written with brackets, so a text round
trip gives the tree back *normalised*; the JSON form keeps the tree exactly as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reeldb.errors import QueryError
from reeldb.query import from_json, parse_query, to_json, to_text
from reeldb.query.ast import (
    COMPARISONS,
    LEVELS,
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
    Span,
)
from reeldb.query.text import parse_text

# --- strategies -------------------------------------------------------------------------------

# Includes names that are keywords of the text form: after "level." only a name can follow.
NAMES = ("label", "kind", "x1", "text", "_n", "Person", "in", "not", "and", "count", "event")

names = st.sampled_from(NAMES)
fields = st.builds(Field, st.sampled_from(LEVELS), names)

# Arbitrary unicode (no lone surrogates: not representable in UTF-8 JSON), plus the characters a
# printer must escape.
strings = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.sampled_from(['"', "\\", "\x00", "\n", "\r", "\t", "\x1f", "\x7f", "\u2028", "/"]),
    ),
    max_size=12,
)
ints = st.integers(-(10**12), 10**12)


@st.composite
def decimals(draw: st.DrawFn) -> Decimal:
    """Decimals as queries hold them: the shortest decimal of a double (numbers are doubles).

    At most 12 digits, up to 6 places and exponents up to 6 before the double rounding.
    """
    mantissa = draw(st.integers(-(10**12) + 1, 10**12 - 1))
    exact = Decimal(mantissa).scaleb(draw(st.integers(-6, 6)))
    return Decimal(repr(float(exact)))


scalars = st.one_of(strings, ints, decimals(), st.booleans())
comparisons = st.sampled_from(COMPARISONS)

predicates: st.SearchStrategy[Expr] = st.one_of(
    st.builds(Compare, fields, comparisons, scalars),
    st.builds(In, fields, st.lists(scalars, min_size=1, max_size=4).map(tuple)),
    # The JSON form wants at least one non-blank character (see the xfail below).
    st.builds(Contains, fields, strings.filter(str.strip)),
    st.builds(Overlaps, fields, decimals(), decimals()),
    st.builds(
        BoxTest,
        fields,
        st.sampled_from(["intersects", "within"]),
        st.builds(Box, decimals(), decimals(), decimals(), decimals()),
    ),
    st.builds(
        Count,
        st.sampled_from(["track", "component"]),
        st.none(),
        comparisons,
        st.integers(0, 10**6),
    ),
)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    items = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(
        st.builds(And, items),
        st.builds(Or, items),
        st.builds(Not, children),
        st.builds(
            Count,
            st.sampled_from(["track", "component"]),
            children,
            comparisons,
            st.integers(0, 10**6),
        ),
    )


queries = st.recursive(predicates, _extend, max_leaves=10)


# --- helpers ----------------------------------------------------------------------------------


def normalize(expr: Expr) -> Expr:
    """The tree the text parser gives: ``and`` in ``and`` and ``or`` in ``or`` flattened."""
    if isinstance(expr, And | Or):
        items: list[Expr] = []
        for item in map(normalize, expr.items):
            if type(item) is type(expr):
                items.extend(item.items)  # type: ignore[union-attr]
            else:
                items.append(item)
        return type(expr)(tuple(items))
    if isinstance(expr, Not):
        return Not(normalize(expr.item))
    if isinstance(expr, Count) and expr.where is not None:
        return Count(expr.scope, normalize(expr.where), expr.op, expr.value)
    return expr


def typed(value: Any) -> Any:
    """A tree as nested tuples, telling apart what Python's ``==`` does not (1, 1.0 and true).

    Numbers compare by value (an int and an equal Decimal are the same number); a bool is not a
    number; spans are left out.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | Decimal):
        return ("number", Decimal(value))
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(typed(v) for v in value)
    assert dataclasses.is_dataclass(value), value
    kept = [f.name for f in dataclasses.fields(value) if f.compare]
    return (type(value).__name__, *(typed(getattr(value, name)) for name in kept))


def nodes(expr: Any) -> list[Any]:
    """Every node of a tree (fields included), outermost first."""
    out = [expr]
    if isinstance(expr, And | Or):
        for item in expr.items:
            out += nodes(item)
    elif isinstance(expr, Not):
        out += nodes(expr.item)
    elif isinstance(expr, Count):
        out += [] if expr.where is None else nodes(expr.where)
    else:
        out.append(expr.field)
    return out


def q(text: str) -> Expr:
    return parse_text(text)


A = Compare(Field("event", "label"), "=", "a")
B = Compare(Field("event", "label"), "=", "b")
C = Compare(Field("event", "label"), "=", "c")
D = Compare(Field("event", "label"), "=", "d")

# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(queries)
def test_text_round_trip(expr: Expr) -> None:
    text = to_text(expr)
    back = parse_text(text)
    assert back == normalize(expr)
    assert typed(back) == typed(normalize(expr))
    # Printing is canonical: the text of the parsed tree is the text of the normalised tree.
    assert to_text(back) == to_text(normalize(expr))
    assert parse_query(text) == back


@settings(max_examples=200, deadline=None)
@given(queries)
def test_json_round_trip(expr: Expr) -> None:
    data = to_json(expr)
    # The JSON form keeps nesting as it is: it gives back the very tree.
    assert from_json(data) == expr
    assert typed(from_json(data)) == typed(expr)
    assert normalize(from_json(data)) == normalize(expr)
    # ... through real JSON text too (reeldb encodes with orjson).
    wire = orjson.loads(orjson.dumps(data))
    assert wire == data
    assert typed(from_json(wire)) == typed(expr)
    assert parse_query(wire) == expr


@settings(max_examples=100, deadline=None)
@given(queries)
def test_text_and_json_forms_agree(expr: Expr) -> None:
    from_text = parse_text(to_text(expr))
    assert typed(from_json(to_json(from_text))) == typed(from_text)
    assert typed(parse_text(to_text(from_json(to_json(expr))))) == typed(normalize(expr))


@settings(max_examples=100, deadline=None)
@given(queries)
def test_parsed_spans_point_into_the_text(expr: Expr) -> None:
    text = to_text(expr)
    offsets = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    for node in nodes(parse_text(text)):
        span = node.span
        assert isinstance(span, Span), node
        assert 0 <= span.start < span.end <= len(text)
        assert offsets[span.line - 1] + span.column - 1 == span.start
        if isinstance(node, Field):
            assert text[span.start : span.end] == str(node)


# --- parsing: examples --------------------------------------------------------------------------


def test_docstring_example() -> None:
    expr = q('track.kind = "subtitle" and count(event where event.text contains "storm") > 3')
    assert expr == And(
        (
            Compare(Field("track", "kind"), "=", "subtitle"),
            Count("track", Contains(Field("event", "text"), "storm"), ">", 3),
        )
    )
    assert isinstance(expr, And)
    assert expr.span == Span(1, 1, 0, 78)
    assert expr.items[1].span == Span(1, 29, 28, 78)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('event.label = "face"', Compare(Field("event", "label"), "=", "face"), id="="),
        pytest.param("asset.year != 1999", Compare(Field("asset", "year"), "!=", 1999), id="!="),
        pytest.param("event.n<=3", Compare(Field("event", "n"), "<=", 3), id="no-spaces"),
        pytest.param(
            'event.label in ("face", "car")',
            In(Field("event", "label"), ("face", "car")),
            id="in",
        ),
        pytest.param(
            'event.v in (1, 2.5, true, "x")',
            In(Field("event", "v"), (1, Decimal("2.5"), True, "x")),
            id="in-mixed",
        ),
        pytest.param(
            "event.text contains storm", Contains(Field("event", "text"), "storm"), id="bare-word"
        ),
        pytest.param(
            'event.text contains "heavy storm"',
            Contains(Field("event", "text"), "heavy storm"),
            id="quoted-phrase",
        ),
        pytest.param(
            "event.text contains and", Contains(Field("event", "text"), "and"), id="keyword-word"
        ),
        pytest.param(
            "event.text contains storm_surge",
            Contains(Field("event", "text"), "storm_surge"),
            id="underscore-word",
        ),
        pytest.param(
            r'event.text contains "say \"hi\"\n\u00e9"',
            Contains(Field("event", "text"), 'say "hi"\né'),
            id="escapes",
        ),
        pytest.param(
            "event.time_range overlaps(10, 20.5)",
            Overlaps(Field("event", "time_range"), Decimal(10), Decimal("20.5")),
            id="overlaps",
        ),
        pytest.param(
            "region.bounding_box intersects(0.1, 0.2, 0.3, 0.4)",
            BoxTest(
                Field("region", "bounding_box"),
                "intersects",
                Box(Decimal("0.1"), Decimal("0.2"), Decimal("0.3"), Decimal("0.4")),
            ),
            id="intersects",
        ),
        pytest.param(
            "region.bounding_box within(0, 0, 1, 1)",
            BoxTest(Field("region", "bounding_box"), "within", Box(*map(Decimal, (0, 0, 1, 1)))),
            id="within",
        ),
        pytest.param("count(event) > 3", Count("track", None, ">", 3), id="count"),
        pytest.param(
            "count(event in component) = 0", Count("component", None, "=", 0), id="count-in"
        ),
        pytest.param(
            "count(event in track where event.x = 1) >= 2",
            Count("track", Compare(Field("event", "x"), "=", 1), ">=", 2),
            id="count-in-where",
        ),
        pytest.param("event.flag = true", Compare(Field("event", "flag"), "=", True), id="true"),
        pytest.param("event.flag != false", Compare(Field("event", "flag"), "!=", False), id="f"),
        pytest.param("event.in = 1", Compare(Field("event", "in"), "=", 1), id="keyword-name"),
        pytest.param(
            'event.label = "x"\n', Compare(Field("event", "label"), "=", "x"), id="trailing-nl"
        ),
    ],
)
def test_parses(text: str, expected: Expr) -> None:
    assert typed(q(text)) == typed(expected)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("0", 0),
        ("-5", -5),
        ("+7", 7),
        ("-2.5", Decimal("-2.5")),
        ("0.1", Decimal("0.1")),
        ("1e3", Decimal("1E+3")),
        ("-1.5E-3", Decimal("-0.0015")),
        ("2E+2", Decimal(200)),
        (".5", Decimal("0.5")),
        # Beyond 64 bits an integer is a double, as stored numbers are.
        ("123456789012345678901234567890", Decimal("1.2345678901234568E+29")),
    ],
)
def test_numbers(literal: str, expected: int | Decimal) -> None:
    expr = q(f"event.n = {literal}")
    assert isinstance(expr, Compare)
    assert expr.value == expected
    assert type(expr.value) is type(expected)  # a fraction or exponent makes an exact Decimal


def test_negative_numbers_in_overlaps_and_boxes() -> None:
    assert q("event.time_range overlaps(-1, -0.5)") == Overlaps(
        Field("event", "time_range"), Decimal(-1), Decimal("-0.5")
    )
    assert q("region.bounding_box intersects(-1e1, 2, 3, 4)") == BoxTest(
        Field("region", "bounding_box"), "intersects", Box(*map(Decimal, (-10, 2, 3, 4)))
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('event.label = "a" or event.label = "b" and event.label = "c"', Or((A, And((B, C))))),
        ('event.label = "a" and event.label = "b" or event.label = "c"', Or((And((A, B)), C))),
        ('not event.label = "a" and event.label = "b"', And((Not(A), B))),
        ('not event.label = "a" or event.label = "b"', Or((Not(A), B))),
        ('not (event.label = "a" or event.label = "b")', Not(Or((A, B)))),
        ('(event.label = "a" or event.label = "b") and event.label = "c"', And((Or((A, B)), C))),
        ('not not event.label = "a"', Not(Not(A))),
        ('((event.label = "a"))', A),
        # Nesting of one operator in itself flattens, brackets or not.
        ('event.label = "a" and (event.label = "b" and event.label = "c")', And((A, B, C))),
        ('(event.label = "a" or event.label = "b") or event.label = "c"', Or((A, B, C))),
        (
            'event.label = "a" and event.label = "b" and event.label = "c" and event.label = "d"',
            And((A, B, C, D)),
        ),
    ],
)
def test_precedence(text: str, expected: Expr) -> None:
    assert q(text) == expected


def test_printing_brackets_only_what_needs_it() -> None:
    assert to_text(Or((A, And((B, C))))) == (
        'event.label = "a" or event.label = "b" and event.label = "c"'
    )
    assert to_text(And((Or((A, B)), C))) == (
        '(event.label = "a" or event.label = "b") and event.label = "c"'
    )
    assert to_text(Not(And((A, B)))) == 'not (event.label = "a" and event.label = "b")'
    assert to_text(And((Not(A), B))) == 'not event.label = "a" and event.label = "b"'
    assert to_text(Count("component", Or((A, B)), "<", 2)) == (
        'count(event in component where event.label = "a" or event.label = "b") < 2'
    )


def test_keywords_in_any_case() -> None:
    text = (
        'event.a = 1 AND event.b = 2 Or NOT event.c CONTAINS storm and event.d In ("x") '
        "and region.bounding_box Within(0, 0, 1, 1) "
        "and region.bounding_box INTERSECTS(0, 0, 1, 1) "
        "and event.time_range OverLaps(1, 2) "
        "and COUNT(EVENT IN Component WHERE event.e = TRUE) > 0 "
        "and event.f = False"
    )
    assert typed(q(text)) == typed(q(text.lower()))
    expr = q(text)
    assert isinstance(expr, Or)
    assert expr.items[0] == And(
        (Compare(Field("event", "a"), "=", 1), Compare(Field("event", "b"), "=", 2))
    )
    rest = expr.items[1]
    assert isinstance(rest, And)
    assert rest.items[0] == Not(Contains(Field("event", "c"), "storm"))
    assert rest.items[2] == BoxTest(
        Field("region", "bounding_box"), "within", Box(*map(Decimal, (0, 0, 1, 1)))
    )
    assert rest.items[5] == Count("component", Compare(Field("event", "e"), "=", True), ">", 0)
    assert typed(rest.items[6]) == typed(Compare(Field("event", "f"), "=", False))


def test_levels_and_names_are_case_sensitive() -> None:
    assert q("event.Label = 1") == Compare(Field("event", "Label"), "=", 1)
    with pytest.raises(QueryError) as info:
        q("Event.label = 1")
    assert (info.value.line, info.value.column) == (1, 1)


def test_spans_on_several_lines() -> None:
    expr = q('event.label = "a"\n  and region.person = "Bob"')
    assert isinstance(expr, And)
    first, second = expr.items
    assert first.span == Span(1, 1, 0, 17)
    assert second.span == Span(2, 7, 24, 45)
    assert isinstance(second, Compare)
    assert second.field.span == Span(2, 7, 24, 37)


def test_parse_query_reads_both_forms() -> None:
    assert parse_query('event.label = "a"') == A
    assert parse_query({"field": "event.label", "op": "=", "value": "a"}) == A


# --- syntax errors ------------------------------------------------------------------------------


def syntax_error(text: Any) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse_text(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "line", "column", "found", "expected"),
    [
        pytest.param(
            'event.label = "x"\nand event.y = @',
            2,
            15,
            "'@'",
            ['a "string"', "a number", "true", "false"],
            id="line-2",
        ),
        pytest.param(
            'event.label = "x" & event.y = 1', 1, 19, "'&'", ["and", "or"], id="unknown-char"
        ),
        pytest.param(
            'event.label == "x"', 1, 14, "'='", ['a "string"', "a number"], id="double-equals"
        ),
        pytest.param(
            'event.label = "x"\n\tor event.y ~ 1',
            2,
            13,
            "'~'",
            ["a comparison (= != < <= > >=)", "in", "contains", "overlaps", "intersects/within"],
            id="bad-operator",
        ),
        pytest.param("event.x = 1 event.y = 2", 1, 13, "'event'", ["and", "or"], id="missing-and"),
        pytest.param(
            "Event.label = 1",
            1,
            1,
            "'Event'",
            ["a level (asset, track, component, event, region) or data", "count", "not", "("],
            id="capital-level",
        ),
        pytest.param("scene.label = 1", 1, 1, "'scene'", ["a level"], id="unknown-level"),
        pytest.param("event.é = 1", 1, 7, "'é'", ["a name"], id="non-ascii-name"),
        pytest.param('event.x = "abc', 1, 11, "'\"'", ['a "string"'], id="unterminated-string"),
        pytest.param('event.x = "a\tb"', 1, 11, "'\"'", ['a "string"'], id="raw-tab-in-string"),
        pytest.param("count(event) > -1", 1, 16, "'-1'", ["a whole number"], id="negative-count"),
        pytest.param("count(event) > 1.5", 1, 17, "'.5'", [], id="fraction-count"),
        pytest.param("count(region) > 1", 1, 7, "'region'", ["event"], id="count-region"),
        pytest.param("event.x overlaps(1)", 1, 19, "')'", [","], id="overlaps-one"),
        pytest.param("region.bounding_box within(1, 2, 3)", 1, 35, "')'", [","], id="within-three"),
        pytest.param("event.x in ()", 1, 13, "')'", ["a number"], id="empty-in"),
        pytest.param(
            "event.text contains 42", 1, 21, "'42'", ['a "string"', "a name"], id="contains-int"
        ),
    ],
)
def test_syntax_error_position_and_message(
    text: str, line: int, column: int, found: str, expected: list[str]
) -> None:
    error = syntax_error(text)
    assert (error.line, error.column) == (line, column)
    message = str(error)
    assert message.startswith(f"unexpected {found}")
    assert f"(line {line}, column {column})" in message
    for word in expected:
        assert word in message.split("; expected ", 1)[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("event.label =", ['a "string"', "a number", "true", "false"], id="after-op"),
        pytest.param('event.label = "x" and', ["a level", "not", "count", "("], id="after-and"),
        pytest.param('(event.label = "x"', [")", "or"], id="missing-paren"),
        pytest.param('count(event where event.x = "x"', [")"], id="count-paren"),
        pytest.param("event.label", ["a comparison", "in", "contains"], id="field-only"),
        pytest.param("not", ["a level", "count"], id="not-only"),
        pytest.param("event.x = 1\n  and (event.y = 2\n", [")"], id="multi-line"),
    ],
)
def test_unexpected_end(text: str, expected: list[str]) -> None:
    error = syntax_error(text)
    message = str(error)
    assert message.startswith("unexpected the end of the query; expected ")
    for word in expected:
        assert word in message
    assert error.line is not None
    assert error.column is not None


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        pytest.param("event.label =", 1, 14, id="after-op"),
        pytest.param('(event.label = "x"', 1, 19, id="missing-paren"),
        pytest.param("event.x = 1\n  and (event.y = 2", 2, 19, id="multi-line"),
    ],
)
def test_unexpected_end_is_reported_at_the_end(text: str, line: int, column: int) -> None:
    error = syntax_error(text)
    assert (error.line, error.column) == (line, column)


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n"])
def test_empty_query(text: str) -> None:
    error = syntax_error(text)
    assert str(error) == "the query is empty"
    assert error.line is None
    assert error.column is None


@pytest.mark.parametrize(
    ("value", "kind"), [(42, "int"), (None, "NoneType"), (b"event.x = 1", "bytes")]
)
def test_a_text_query_is_a_string(value: Any, kind: str) -> None:
    error = syntax_error(value)
    assert str(error) == f"a query is text; got {kind}"
    assert error.line is None


def test_parse_query_of_neither_form() -> None:
    with pytest.raises(QueryError, match="a query node is an object; got int at / of the JSON"):
        parse_query(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ['notevent.label = "x"', "event.x = 1andevent.y = 2", "event.x = 1orevent.y = 2"]
)
def test_keywords_need_a_word_boundary(text: str) -> None:
    syntax_error(text)


@pytest.mark.parametrize("depth", [2000])
def test_deep_nesting_is_a_query_error(depth: int) -> None:
    text = "not " * depth + "event.x = 1"
    try:
        expr = parse_text(text)
    except QueryError as error:
        assert "cannot read a value" not in str(error)  # "maximum recursion depth exceeded"
    else:
        assert to_text(expr) == text


# --- the JSON form ------------------------------------------------------------------------------


def test_json_form_examples() -> None:
    assert from_json({"field": "event.label", "op": "=", "value": "face"}) == Compare(
        Field("event", "label"), "=", "face"
    )
    assert from_json({"field": "event.label", "in": ["face", "car"]}) == In(
        Field("event", "label"), ("face", "car")
    )
    assert from_json({"field": "event.text", "contains": "heavy storm"}) == Contains(
        Field("event", "text"), "heavy storm"
    )
    assert from_json({"field": "event.time_range", "overlaps": [10, 20.5]}) == Overlaps(
        Field("event", "time_range"), Decimal(10), Decimal("20.5")
    )
    assert from_json({"field": "region.bounding_box", "within": [0, 0.5, 1, 0.25]}) == BoxTest(
        Field("region", "bounding_box"),
        "within",
        Box(Decimal(0), Decimal("0.5"), Decimal(1), Decimal("0.25")),
    )
    assert from_json({"count": {}, "op": ">", "value": 3}) == Count("track", None, ">", 3)
    assert from_json(
        {
            "count": {"scope": "component", "where": {"field": "event.x", "op": "<", "value": 1}},
            "op": "=",
            "value": 0,
        }
    ) == Count("component", Compare(Field("event", "x"), "<", 1), "=", 0)
    assert from_json({"not": {"or": [to_json(A), to_json(B)]}}) == Not(Or((A, B)))


def test_json_floats_are_read_as_the_decimal_they_print_as() -> None:
    expr = from_json({"field": "event.x", "op": "=", "value": 0.1})
    assert isinstance(expr, Compare)
    assert expr.value == Decimal("0.1")
    expr = from_json({"field": "event.x", "in": [1e-7, 2.5, 3]})
    assert isinstance(expr, In)
    assert expr.values == (Decimal("1E-7"), Decimal("2.5"), 3)
    assert from_json({"field": "event.x", "op": "=", "value": Decimal("1.25")}) == Compare(
        Field("event", "x"), "=", Decimal("1.25")
    )


def test_json_does_not_flatten() -> None:
    nested = {"and": [to_json(A), {"and": [to_json(B), to_json(C)]}]}
    assert from_json(nested) == And((A, And((B, C))))
    assert to_json(from_json(nested)) == nested


def test_to_json_numbers() -> None:
    expr = q("event.time_range overlaps(1.0, 2.5) and event.n in (1E+2, 0.25, 7)")
    assert to_json(expr) == {
        "and": [
            {"field": "event.time_range", "overlaps": [1, 2.5]},
            {"field": "event.n", "in": [100, 0.25, 7]},
        ]
    }
    data = to_json(q("event.n = 1e3"))
    assert type(data["value"]) is int


def pointer_error(value: Any, pointer: str, *words: str) -> None:
    with pytest.raises(QueryError) as info:
        from_json(value)
    message = str(info.value)
    assert f" at {pointer} of the JSON query" in message, message
    for word in words:
        assert word in message, message
    assert info.value.line is None


OK = {"field": "event.x", "op": "=", "value": 1}


@pytest.mark.parametrize(
    ("value", "pointer", "words"),
    [
        # not an object
        pytest.param([], "/", ["object", "got list"], id="root-list"),
        pytest.param(None, "/", ["got null"], id="root-null"),
        pytest.param("event.x = 1", "/", ["got str"], id="root-text"),
        pytest.param({"and": [OK, 5]}, "/and/1", ["got int"], id="and-item"),
        pytest.param({"not": [OK]}, "/not", ["got list"], id="not-list"),
        # and / or
        pytest.param({"and": [OK]}, "/and", ["at least two"], id="and-one"),
        pytest.param({"or": []}, "/or", ["at least two"], id="or-empty"),
        pytest.param({"and": OK}, "/and", ["list"], id="and-object"),
        pytest.param({"or": [OK, {"and": [OK]}]}, "/or/1/and", ["'and'"], id="nested-and-one"),
        # keys
        pytest.param({**OK, "extra": 1}, "/", ["unexpected key 'extra'"], id="unknown-key"),
        pytest.param({"not": OK, "and": [OK, OK]}, "/", ["unexpected key"], id="not-and-and"),
        pytest.param({"and": [OK, OK], "or": [OK, OK]}, "/", ["'or'"], id="and-and-or"),
        pytest.param({"not": {**OK, "bogus": 2}}, "/not", ["'bogus'"], id="nested-unknown"),
        pytest.param({"value": 1}, "/", ["'field'"], id="no-field"),
        pytest.param({}, "/", ["'field'"], id="empty-object"),
        pytest.param({"field": "event.x"}, "/", ["exactly one of"], id="no-predicate"),
        pytest.param({**OK, "in": [1]}, "/", ["exactly one of", "event.x"], id="op-and-in"),
        pytest.param(
            {"and": [OK, {"field": "event.t", "contains": "a", "overlaps": [1, 2]}]},
            "/and/1",
            ["exactly one of"],
            id="contains-and-overlaps",
        ),
        pytest.param(
            {"field": "event.x", "in": [1], "value": 1}, "/", ["'value'"], id="in-with-value"
        ),
        # comparisons
        pytest.param({**OK, "op": "=="}, "/op", ["'=='", "= != < <= > >="], id="bad-op"),
        pytest.param({**OK, "op": None}, "/op", ["None"], id="null-op"),
        pytest.param(
            {"or": [OK, {"and": [OK, {"not": {**OK, "op": "~"}}]}]},
            "/or/1/and/1/not/op",
            ["'~'"],
            id="deep-op",
        ),
        pytest.param({"field": "event.x", "op": "="}, "/", ["needs a 'value'"], id="no-value"),
        pytest.param({**OK, "value": None}, "/value", ["got null"], id="null-value"),
        pytest.param({**OK, "value": [1]}, "/value", ["got list"], id="list-value"),
        pytest.param({**OK, "value": {"a": 1}}, "/value", ["got dict"], id="object-value"),
        pytest.param({**OK, "value": float("nan")}, "/value", ["finite"], id="nan-value"),
        pytest.param({**OK, "value": float("-inf")}, "/value", ["finite"], id="inf-value"),
        pytest.param({**OK, "value": Decimal("NaN")}, "/value", [], id="decimal-nan-value"),
        pytest.param({**OK, "value": Decimal("Infinity")}, "/value", [], id="decimal-inf"),
        # fields
        pytest.param({**OK, "field": "eventx"}, "/field", ["level.name"], id="no-dot"),
        pytest.param({**OK, "field": "event.a.b"}, "/field", ["level.name"], id="two-dots"),
        pytest.param({**OK, "field": 5}, "/field", ["level.name", "5"], id="field-number"),
        pytest.param({**OK, "field": "event."}, "/field", ["property name"], id="empty-name"),
        pytest.param({**OK, "field": "event.1x"}, "/field", ["property name"], id="digit-name"),
        pytest.param({**OK, "field": "event.a b"}, "/field", ["property name"], id="space"),
        pytest.param({**OK, "field": "scene.x"}, "/field", ["asset, track"], id="unknown-level"),
        pytest.param({**OK, "field": "Event.x"}, "/field", ["level"], id="capital-level"),
        pytest.param({"field": None, "in": [1]}, "/field", ["None"], id="null-field"),
        # in
        pytest.param({"field": "event.x", "in": "a"}, "/in", ["non-empty list"], id="in-str"),
        pytest.param({"field": "event.x", "in": []}, "/in", ["non-empty list"], id="in-empty"),
        pytest.param({"field": "event.x", "in": [1, None]}, "/in/1", ["null"], id="in-null"),
        pytest.param({"field": "event.x", "in": [[1]]}, "/in/0", ["list"], id="in-nested"),
        pytest.param(
            {"field": "event.x", "in": [1, float("nan")]}, "/in/1", ["finite"], id="in-nan"
        ),
        # contains
        pytest.param({"field": "event.t", "contains": 5}, "/contains", ["string"], id="c-int"),
        pytest.param({"field": "event.t", "contains": ["a"]}, "/contains", [], id="c-list"),
        pytest.param({"field": "event.t", "contains": " \t"}, "/contains", [], id="c-blank"),
        # number lists
        pytest.param({"field": "event.t", "overlaps": [1]}, "/overlaps", ["2 numbers"], id="o1"),
        pytest.param({"field": "event.t", "overlaps": [1, 2, 3]}, "/overlaps", ["2"], id="o3"),
        pytest.param({"field": "event.t", "overlaps": "1,2"}, "/overlaps", ["2"], id="o-str"),
        pytest.param({"field": "event.t", "overlaps": {"start": 1}}, "/overlaps", [], id="o-obj"),
        pytest.param(
            {"field": "region.b", "intersects": [1, 2, 3]}, "/intersects", ["4 numbers"], id="i3"
        ),
        pytest.param(
            {"field": "region.b", "within": [1, 2, 3, 4, 5]}, "/within", ["4 numbers"], id="w5"
        ),
        pytest.param(
            {"field": "event.t", "overlaps": [True, 2]}, "/overlaps/0", ["got bool"], id="o-bool"
        ),
        pytest.param(
            {"field": "region.b", "within": [0, 0, 1, False]},
            "/within/3",
            ["got bool"],
            id="w-bool",
        ),
        pytest.param(
            {"field": "event.t", "overlaps": ["1", 2]}, "/overlaps/0", ["got str"], id="o-str-n"
        ),
        pytest.param(
            {"field": "event.t", "overlaps": [1, None]}, "/overlaps/1", ["null"], id="o-null"
        ),
        pytest.param(
            {"field": "event.t", "overlaps": [float("nan"), 1]},
            "/overlaps/0",
            ["finite"],
            id="o-nan",
        ),
        pytest.param(
            {"field": "region.b", "intersects": [0, 0, float("inf"), 1]},
            "/intersects/2",
            ["finite"],
            id="i-inf",
        ),
        pytest.param(
            {"field": "region.b", "intersects": [0, 0, 1, Decimal("-Infinity")]},
            "/intersects/3",
            ["finite"],
            id="i-decimal-inf",
        ),
        # count
        pytest.param({"count": 3, "op": ">", "value": 1}, "/count", ["object"], id="count-int"),
        pytest.param(
            {"count": {"scope": "asset"}, "op": ">", "value": 1},
            "/count/scope",
            ["'track' or 'component'", "'asset'"],
            id="count-scope",
        ),
        pytest.param(
            {"count": {"scope": None}, "op": ">", "value": 1}, "/count/scope", [], id="scope-null"
        ),
        pytest.param(
            {"count": {"limit": 3}, "op": ">", "value": 1}, "/count", ["optional"], id="c-key"
        ),
        pytest.param({"count": {}, "op": ">", "value": -1}, "/value", [">= 0"], id="c-neg"),
        pytest.param({"count": {}, "op": ">", "value": True}, "/value", ["True"], id="c-bool"),
        pytest.param({"count": {}, "op": ">", "value": 1.0}, "/value", ["1.0"], id="c-float"),
        pytest.param({"count": {}, "op": ">", "value": "3"}, "/value", ["'3'"], id="c-str"),
        pytest.param({"count": {}, "op": ">"}, "/value", ["None"], id="c-no-value"),
        pytest.param({"count": {}, "value": 1}, "/op", ["None"], id="c-no-op"),
        pytest.param({"count": {}, "op": "=>", "value": 1}, "/op", ["'=>'"], id="c-bad-op"),
        pytest.param(
            {"count": {}, "op": ">", "value": 1, "field": "event.x"},
            "/",
            ["unexpected key 'field'"],
            id="c-extra-key",
        ),
        pytest.param(
            {"count": {"where": {"field": "event.x"}}, "op": ">", "value": 1},
            "/count/where",
            ["exactly one of"],
            id="c-bad-where",
        ),
        pytest.param(
            {"not": {"count": {"where": {"and": [OK, {**OK, "op": "!"}]}}, "op": ">", "value": 1}},
            "/not/count/where/and/1/op",
            [],
            id="c-deep",
        ),
    ],
)
def test_json_errors_name_the_pointer(value: Any, pointer: str, words: list[str]) -> None:
    pointer_error(value, pointer, *words)


# --- bugs: the two forms disagree ---------------------------------------------------------------


@pytest.mark.parametrize("literal", ["0.10000000000000000001", "1e-400", "123456789.123456789"])
def test_to_json_keeps_exact_decimals(literal: str) -> None:
    expr = q(f"event.x = {literal}")
    assert from_json(to_json(expr)) == expr


@pytest.mark.parametrize("literal", ["1e30", "-1e19", "99999999999999999999"])
def test_to_json_output_encodes_as_json(literal: str) -> None:
    expr = q(f"event.x = {literal}")
    assert from_json(orjson.loads(orjson.dumps(to_json(expr)))) == expr


def test_both_forms_refuse_a_blank_contains() -> None:
    with pytest.raises(QueryError, match="contains needs the words to find"):
        q('event.text contains ""')
    with pytest.raises(QueryError, match="'contains' takes the words to find"):
        from_json({"field": "event.text", "contains": "  "})


def test_both_forms_take_the_same_field_names() -> None:
    with pytest.raises(QueryError, match="not a property name"):
        from_json({"field": "event.é", "op": "=", "value": 1})
    with pytest.raises(QueryError):
        parse_text("event.é = 1")
    expr = from_json({"field": "event._x9", "op": "=", "value": 1})
    assert parse_text(to_text(expr)) == expr


def test_deep_json_nesting_is_a_query_error() -> None:
    value: Any = OK
    for _ in range(1010):  # orjson.loads accepts up to 1024 levels
        value = {"not": value}
    with contextlib.suppress(QueryError):
        from_json(value)
