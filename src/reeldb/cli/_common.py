"""What every command module of the CLI shares: the root state, input files, progress bars."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from reeldb import _json
from reeldb.cli._output import Output, OutputFormat
from reeldb.database import Database, connect
from reeldb.errors import ValidationError

__all__ = ["State", "get_state", "progress_bar", "read_bytes", "read_json"]


class State:
    """What the root options set up for every command."""

    def __init__(self, database: str | None, output: OutputFormat, verbose: bool) -> None:
        self.database = database
        self.out = Output(output)
        self.verbose = verbose
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        """The database, opened on first use."""
        if self._db is None:
            self._db = connect(self.database)
        return self._db

    def close(self) -> None:
        """Close the database if it was opened."""
        if self._db is not None:
            self._db.close()


def get_state(ctx: typer.Context) -> State:
    """The `State` the root callback set up.

    Args:
        ctx: The command's context.

    Returns:
        The state.
    """
    state: State = ctx.ensure_object(State)
    return state


def read_bytes(source: str, what: str) -> bytes:
    """Read a file whole, or standard input when the path is ``-``.

    Args:
        source: A path, or ``-``.
        what: Names the input in error messages ("schema", "COCO").

    Returns:
        The bytes.

    Raises:
        ValidationError: The file cannot be read.
    """
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {what} file {source}: {exc.strerror}") from None


def read_json(source: str, what: str) -> Any:
    """Read JSON from a file path, or from standard input when the path is ``-``.

    Args:
        source: A path, or ``-``.
        what: Names the input in error messages ("schema", "document").

    Returns:
        The decoded value.

    Raises:
        ValidationError: The file cannot be read or is not JSON.
    """
    data = read_bytes(source, what)
    where = f"{what} from standard input" if source == "-" else f"{what} file {source}"
    return _json.loads(data, what=where)


def progress_bar(label: str, *, disable: bool) -> Progress:
    """A progress bar on standard error: ``label``, the bar, done/total, time left.

    Args:
        label: What is counted ("storing annotations").
        disable: Show nothing (JSON output, standard error not a terminal, small jobs).

    Returns:
        The bar, to use as a context manager.
    """
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=disable or not sys.stderr.isatty(),
    )
