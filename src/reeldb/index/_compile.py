"""What both index backends share: the row layout's names and a query compiler's AST walk.

`QueryCompiler` turns a query into an SQL condition over one generation's rows. The walk
(``and``/``or``/``not``, counts, which item gets the index probe for a time window and a
box) is the same on every backend; a backend says how its SQL spells what differs: the
bound-parameter mark, a false condition, a comparison's literal, a full-text match and the
probes of its index of events' times and boxes. Every value is a bound parameter.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Final

import orjson

from reeldb.index.model import Generation
from reeldb.index.rows import Column, literal
from reeldb.query import ast as q
from reeldb.query.fulltext import stem, tokens

__all__ = [
    "FIRST_ROWS",
    "FIXED",
    "NODE",
    "OPS",
    "SCALAR_SKIPPED",
    "QueryCompiler",
    "column_json",
    "columns_of",
    "fts_token",
    "fts_tokens",
]

NODE: Final = {"asset": "d0", "track": "t0", "component": "c0", "event": "e0", "region": "id"}
"""The column of a level's node id (its first row's id) in a generation's rows."""
OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
"""The query's comparison operators in SQL."""
FIXED: Final = ("id", "doc", "t", "c", "e", "r", "d0", "t0", "c0", "e0", "k", "ko", "kl")
"""The columns of a generation's rows before the values (``v0``, ``v1``, ...)."""
FIRST_ROWS: Final = "r <= 0"
"""The rows that stand for their event (its first region's, or its only one) or node."""
SCALAR_SKIPPED: Final = ("text", "time_range", "bounding_box")
"""Types without a B-tree (full text, and the types the index of events serves)."""


def fts_token(stem: str) -> str:
    """A stem as one full-text token, the same at indexing and at query time.

    ASCII letters and digits stay as they are. Any other stem is spelled as a private-use
    character (a token character for FTS5's ``unicode61``, never part of a word) followed by
    the hex of its UTF-8, so that the tokenizer can neither split nor fold it.

    Args:
        stem: A stem from `reeldb.query.fulltext.stems`.

    Returns:
        The token.
    """
    if stem.isascii() and stem.isalnum():
        return stem
    return "\ue000" + stem.encode().hex()


@functools.lru_cache(maxsize=65536)
def _word_token(word: str) -> str:
    return fts_token(stem(word))


def fts_tokens(text: str) -> list[str]:
    """A text's words as full-text tokens (`fts_token` of each stem), in order.

    Each word's token is cached: the words of annotations and queries repeat.

    Args:
        text: Any text.

    Returns:
        One token per word.
    """
    return list(map(_word_token, tokens(text)))


def column_json(columns: Sequence[Column]) -> str:
    """A generation's columns as stored in ``index_generations.columns``.

    Args:
        columns: The columns.

    Returns:
        Their JSON.
    """
    return orjson.dumps([[c.level, c.name, c.type, c.index, c.width] for c in columns]).decode()


@functools.lru_cache(maxsize=256)
def columns_of(text: str) -> tuple[Column, ...]:
    """A generation's columns from their JSON (`column_json`).

    Args:
        text: The JSON.

    Returns:
        The columns.
    """
    return tuple(Column(*spec) for spec in orjson.loads(text))


class QueryCompiler(ABC):
    """A query as an SQL condition over one generation's rows (true or false, never NULL).

    Args:
        gen: The generation.
        span: The row ids of one document, for document-level queries.
        space: Whether the generation's index of events also covers its regions' boxes.
    """

    MARK: ClassVar[str]
    """The bound-parameter mark (``?`` or ``%s``)."""
    FALSE: ClassVar[str]
    """A condition that never holds."""

    def __init__(
        self, gen: Generation, span: tuple[int, int] | None = None, *, space: bool = False
    ) -> None:
        self.gen = gen
        self.columns = {(c.level, c.name): c for c in gen.columns}
        self.span = span
        self.space = space

    def compile(self, expr: q.Expr, alias: str) -> tuple[str, list[Any]]:
        """The condition of a query and its parameters.

        Args:
            expr: The query (checked).
            alias: The alias of the generation's rows table in the statement.

        Returns:
            The SQL condition and its bound parameters, in order.
        """
        params: list[Any] = []
        items = expr.items if isinstance(expr, q.And) else (expr,)
        return self._and(items, alias, params), params

    # -- what each dialect spells its own way --------------------------------------------

    def _literal(self, column: Column, value: Any) -> Any:
        """A query's value as a parameter compared with a column's values."""
        return literal(column.type, value)

    def _compare(self, expr: q.Compare | q.In, column: Column, a: str, params: list[Any]) -> str:
        """A comparison or membership test of a scalar column (false where it is missing)."""
        v, m = f"{a}.v{column.index}", self.MARK
        if isinstance(expr, q.Compare):
            params.append(self._literal(column, expr.value))
            return f"({v} IS NOT NULL AND {v} {OPS[expr.op]} {m})"
        params.extend(self._literal(column, value) for value in expr.values)
        return f"({v} IS NOT NULL AND {v} IN ({', '.join([m] * len(expr.values))}))"

    @abstractmethod
    def _match(self, node: str, column: Column, tokens: list[str], params: list[Any]) -> str:
        """Whether a node's text field holds a phrase (its tokens, at least one)."""

    @abstractmethod
    def _time_window(self, expr: q.Overlaps, params: list[Any]) -> str:
        """The probe of the events' index for the events whose time overlaps a window."""

    @abstractmethod
    def _space_window(self, expr: q.BoxTest, params: list[Any]) -> str:
        """The probe of the events' index for the events whose regions may match a box test."""

    # -- the walk ------------------------------------------------------------------------

    def _expr(self, expr: q.Expr, a: str, params: list[Any], *, probe: bool = True) -> str:
        if isinstance(expr, q.And):
            return self._and(expr.items, a, params)
        if isinstance(expr, q.Or):  # each branch may lead on its own (SQLite's OR plans)
            branches = (i.items if isinstance(i, q.And) else (i,) for i in expr.items)
            return "(" + " OR ".join(self._and(items, a, params) for items in branches) + ")"
        if isinstance(expr, q.Not):
            return f"(NOT {self._expr(expr.item, a, params)})"
        if isinstance(expr, q.Count):
            return self._count(expr, a, params)
        column = self.columns.get((expr.field.level, expr.field.name))
        if column is None:
            return self.FALSE  # this generation has no such field: missing
        if isinstance(expr, q.Compare | q.In):
            return self._compare(expr, column, a, params)
        if isinstance(expr, q.Contains):
            return self._contains(expr.field, column, expr.text, a, params)
        if isinstance(expr, q.Overlaps):
            v, hi, m = f"{a}.v{column.index}", f"{a}.v{column.index + 1}", self.MARK
            params += [float(expr.end), float(expr.start)]
            exact = f"({v} IS NOT NULL AND {v} <= {m} AND {m} <= {hi})"
            if not probe or not self._is_time(expr):
                return exact
            # The index of events finds candidate events; the exact test decides.
            window = self._time_window(expr, params)
            return f"({exact} AND {a}.e0 IN (SELECT id FROM ix{self.gen.id}_time WHERE {window}))"
        return self._box(expr, column, a, params)

    def _and(self, items: Sequence[q.Expr], a: str, params: list[Any]) -> str:
        """Items that must all hold, with one probe of the events' index for a time and a box.

        The probe only narrows the candidates (the exact tests decide), so it is used where
        it should lead: for a box, together with a time window of the same group, or where
        no B-tree could lead (no equality on a region field, no full-text test).
        """
        time = next((i for i in items if self._is_time(i)), None)
        box = next((i for i in items if self._is_space_box(i)), None)
        if (
            box is not None
            and time is None
            and (self.span is not None or any(self._leads(i) for i in items))
        ):
            box = None  # a B-tree (or the document's rows) leads; no probe for the box
        parts = [
            self._expr(item, a, params, probe=box is None or item is not time) for item in items
        ]
        if box is not None:
            assert isinstance(box, q.BoxTest)
            where: list[str] = []
            if time is not None:
                assert isinstance(time, q.Overlaps)
                where.append(self._time_window(time, params))
            where.append(self._space_window(box, params))
            parts.append(
                f"{a}.e0 IN (SELECT id FROM ix{self.gen.id}_time WHERE {' AND '.join(where)})"
            )
        return "(" + " AND ".join(parts) + ")"

    def _is_time(self, expr: q.Expr) -> bool:
        return (
            isinstance(expr, q.Overlaps)
            and (expr.field.level, expr.field.name) == ("event", "time_range")
            and ("event", "time_range") in self.columns
        )

    def _is_space_box(self, expr: q.Expr) -> bool:
        if not self.space or not isinstance(expr, q.BoxTest):
            return False
        return (expr.field.level, expr.field.name) == ("region", "bounding_box")

    def _leads(self, expr: q.Expr) -> bool:
        """Whether a B-tree or the full-text index could lead instead of the box probe."""
        if isinstance(expr, q.Contains):
            return True
        if isinstance(expr, q.Compare | q.In) and (isinstance(expr, q.In) or expr.op == "="):
            column = self.columns.get((expr.field.level, expr.field.name))
            return (
                column is not None
                and column.level == "region"
                and column.type not in SCALAR_SKIPPED
            )
        return False

    def _contains(
        self, field: q.Field, column: Column, text: str, a: str, params: list[Any]
    ) -> str:
        tokens = fts_tokens(text)
        if not tokens:
            return self.FALSE
        return self._match(f"{a}.{NODE[field.level]}", column, tokens, params)

    def _box(self, expr: q.BoxTest, column: Column, a: str, params: list[Any]) -> str:
        x0, y0, x1, y1 = (f"{a}.v{column.index + i}" for i in range(4))
        qx, qy, qw, qh = (float(v) for v in (expr.box.x, expr.box.y, expr.box.w, expr.box.h))
        m = self.MARK
        if expr.op == "intersects":
            params += [qx + qw, qx, qy + qh, qy]
            test = f"{x0} <= {m} AND {m} <= {x1} AND {y0} <= {m} AND {m} <= {y1}"
        else:
            params += [qx, qx + qw, qy, qy + qh]
            test = f"{m} <= {x0} AND {x1} <= {m} AND {m} <= {y0} AND {y1} <= {m}"
        return f"({x0} IS NOT NULL AND {test})"

    def _count(self, expr: q.Count, a: str, params: list[Any]) -> str:
        # Counted once per track (or component) by one grouped subquery, not per row. Nodes
        # with no counted event are absent from the groups: their count is 0.
        x, key, m = a + "x", "t0" if expr.scope == "track" else "c0", self.MARK
        where = "" if expr.where is None else f" AND {self._expr(expr.where, x, params)}"
        span = ""
        if self.span is not None:
            span = f" AND {x}.id BETWEEN {m} AND {m}"
            params.extend(self.span)
        params.append(expr.value)
        test = f"count(DISTINCT {x}.e0) {OPS[expr.op]} {m}"
        zero_passes = q.holds(0, expr.op, expr.value)
        groups = (
            f"SELECT {x}.{key} FROM ix{self.gen.id}_rows {x} WHERE {x}.e >= 0{where}{span} "
            f"GROUP BY {x}.{key} HAVING {'NOT ' if zero_passes else ''}({test})"
        )
        if zero_passes:
            return f"({a}.{key} IS NULL OR {a}.{key} NOT IN ({groups}))"
        return f"({a}.{key} IS NOT NULL AND {a}.{key} IN ({groups}))"
