"""CLI output: rich tables for people, JSON for machines, one line per error."""

from __future__ import annotations

import dataclasses
import enum
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

from reeldb.errors import IncompatibleSchemaError, ReelError, ValidationError
from reeldb.model.document import Page

__all__ = ["Output", "OutputFormat", "plain"]


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
    ) -> None:
        """Print rows as a table in text mode, or ``records`` as JSON.

        Args:
            title: Table title.
            columns: Column headings.
            rows: Cell values, one sequence per row.
            records: What JSON mode prints.
        """
        if self.json:
            self.data(records)
            return
        table = Table(title=Text(title), title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(Text(str(cell)) for cell in row))  # user data: never markup
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
