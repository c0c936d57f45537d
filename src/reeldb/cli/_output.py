"""CLI output: rich tables for people, JSON for machines, one line per error."""

from __future__ import annotations

import dataclasses
import enum
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any
from uuid import UUID

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reeldb import _json
from reeldb.annotations.model import Annotation, AnnotationHit
from reeldb.errors import IncompatibleSchemaError, ReelError, ValidationError
from reeldb.model.document import Page

__all__ = ["Output", "OutputFormat", "highlighted", "plain", "summary"]

_EM = re.compile(r"<em>(.*?)</em>", re.DOTALL)


class OutputFormat(enum.StrEnum):
    """How commands print results."""

    TEXT = "text"
    JSON = "json"


def plain(value: Any) -> Any:
    """Turn reeldb values (dataclasses, enums, UUIDs, datetimes) into JSON-ready values.

    Args:
        value: Any value a command returns.

    Returns:
        The same information as dicts, lists, strings and numbers.
    """
    if isinstance(value, Page) and value.total is None:  # as over HTTP: no total, no key
        return {"items": plain(value.items), "next_cursor": value.next_cursor}
    if isinstance(value, Annotation | AnnotationHit):  # their own JSON form, as every face
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, UUID | Fraction):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return orjson.loads(value) if value[:1] in (b"{", b"[") else value.decode()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def summary(value: Any, width: int = 60) -> str:
    """Compact JSON of a value, cut to ``width`` characters (for a table cell).

    Args:
        value: A JSON value (an annotation's ``data``).
        width: The most characters to show; a cut value ends with ``…``.

    Returns:
        The text.
    """
    text = _json.dumps(plain(value)).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def highlighted(text: str) -> Text:
    """A search highlight (matching words wrapped in ``<em>``/``</em>``) with the words in bold.

    Args:
        text: The highlight, as search returns it.

    Returns:
        Rich text; the user's own text is never read as markup.
    """
    out = Text()
    position = 0
    for match in _EM.finditer(text):
        out.append(text[position : match.start()])
        out.append(match.group(1), style="bold")
        position = match.end()
    out.append(text[position:])
    return out


class Output:
    """Prints a command's results in the chosen format.

    Args:
        fmt: Text or JSON.
    """

    def __init__(self, fmt: OutputFormat) -> None:
        self.format = fmt
        self.console = Console(soft_wrap=True)
        self.errors = Console(stderr=True, soft_wrap=True)

    @property
    def json(self) -> bool:
        """Whether output is JSON."""
        return self.format is OutputFormat.JSON

    def data(self, value: Any) -> None:
        """Print a value as JSON (indented), whatever the format.

        Args:
            value: The value.
        """
        sys.stdout.write(orjson.dumps(plain(value), option=orjson.OPT_INDENT_2).decode() + "\n")

    def line(self, text: str, *, markup: bool = False) -> None:
        """Print a line of text in text mode, literally unless ``markup`` is set.

        Args:
            text: The line.
            markup: Interpret rich markup; only for text built from constants and
                `rich.markup.escape`-d values, never raw user data.
        """
        if not self.json:
            self.console.print(text, highlight=False, markup=markup)

    def table(
        self,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        records: Any,
        *,
        shrink: Sequence[str] = (),
    ) -> None:
        """Print rows as a table in text mode, or ``records`` as JSON.

        Args:
            title: Table title.
            columns: Column headings.
            rows: Cell values, one sequence per row: `rich.text.Text` as it is, anything
                else as its ``str`` (never markup).
            records: What JSON mode prints.
            shrink: The columns that narrow (wrap) on a narrow terminal, so that the others
                keep whole ids to copy; by default rich narrows any column.
        """
        if self.json:
            self.data(records)
            return
        cells = [[c if isinstance(c, Text) else Text(str(c)) for c in row] for row in rows]
        table = Table(title=Text(title), title_justify="left")
        for i, column in enumerate(columns):
            if not shrink or column in shrink:
                table.add_column(column)
            else:
                widest = max((row[i].cell_len for row in cells), default=0)
                table.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
        for row in cells:
            table.add_row(*row)
        self.console.print(table)

    def error(self, exc: ReelError, *, verbose: bool) -> None:
        """Print an error: one line in text mode, an object with every detail in JSON mode.

        Args:
            exc: The error.
            verbose: Also print every violation or incompatibility, one per line.
        """
        if self.json:
            detail: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, ValidationError):
                detail["violations"] = plain(list(exc.violations))
            if isinstance(exc, IncompatibleSchemaError):
                detail["incompatibilities"] = plain(list(exc.incompatibilities))
            sys.stderr.write(orjson.dumps(detail).decode() + "\n")
            return
        self.errors.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        if verbose:
            items: Sequence[Any] = ()
            if isinstance(exc, ValidationError):
                items = exc.violations
            elif isinstance(exc, IncompatibleSchemaError):
                items = exc.incompatibilities
            for item in items:
                self.errors.print(f"  {item}", highlight=False, markup=False)
