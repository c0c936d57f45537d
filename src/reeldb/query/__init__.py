"""Queries over media documents: one AST, a text form and a JSON form.

* `parse_query` reads either form; `to_text` and `to_json` print them.
* `check_query` checks a query against a DataStore's fields (`searchable_fields`) before it
  runs, with the position of any problem in the query text.
* `reeldb.query.oracle` evaluates a query over a decoded document: the reference every
  index backend is tested against.
"""

from __future__ import annotations

from typing import Any

from reeldb.query.ast import Expr
from reeldb.query.check import FieldInfo, check_query, searchable_fields
from reeldb.query.json_form import from_json, to_json
from reeldb.query.text import parse_text, to_text

__all__ = [
    "Expr",
    "FieldInfo",
    "check_query",
    "from_json",
    "parse_query",
    "searchable_fields",
    "to_json",
    "to_text",
]


def parse_query(query: str | dict[str, Any]) -> Expr:
    """Read a query in its text form (a string) or its JSON form (a decoded object).

    Args:
        query: ``'event.label = "face"'`` or ``{"field": "event.label", "op": "=", "value":
            "face"}``.

    Returns:
        The AST.

    Raises:
        QueryError: Not a query (with the line and column, for text).
    """
    if isinstance(query, str):
        return parse_text(query)
    return from_json(query)
