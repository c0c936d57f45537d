"""``reeldb export``: what reeldb stores, exported for analytics (docs/analytics.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from reeldb.cli._common import get_state, progress_bar
from reeldb.errors import ValidationError

__all__ = ["export_app"]

export_app = typer.Typer(help="Export to analytics formats: Apache Iceberg tables.")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    text = value.strip()
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValidationError(
            f"--since {value!r}: give an ISO 8601 time, e.g. 2026-12-01T00:00:00Z"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _run(db: Any, *, disable: bool, export: Any, options: dict[str, Any]) -> Any:
    """One export, with a progress bar per DataStore and namespace."""
    with progress_bar("exporting {task.description}", disable=disable) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        return export(db, progress=progress, **options)


@export_app.command("iceberg")
def iceberg(
    ctx: typer.Context,
    warehouse: Annotated[
        str | None,
        typer.Option(
            help="Directory, file:// URL or s3://bucket/prefix?endpoint=URL&region=R of the "
            "tables' files; S3 credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(default: warehouse beside the SQLite file)."
        ),
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option(
            help="SQL catalog: sqlite:///path/catalog.db or postgresql://... "
            "(default: catalog.db in the warehouse)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only data created after this ISO 8601 time (kept for later runs)."),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            "-t",
            help="Only this table: documents, events, regions, annotations (repeat).",
        ),
    ] = None,
    datastore: Annotated[
        list[str] | None,
        typer.Option("--datastore", help="Only this DataStore ns/type/version (repeat)."),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Only the annotations of this namespace (repeat)."),
    ] = None,
    batch_rows: Annotated[
        int, typer.Option(help="Rows per append (each append is one Iceberg snapshot).")
    ] = 250_000,
    every: Annotated[
        float | None,
        typer.Option(help="Keep exporting: run again this many seconds after each run."),
    ] = None,
) -> None:
    """Append what is new since the last export to the Iceberg tables of namespace reeldb.

    Tables documents, events, regions and annotations (created on first use, columns added
    when schemas gain properties); a run appends only what the previous ones did not.
    """
    from reeldb.analytics import ICEBERG_TABLES, export_iceberg

    state = get_state(ctx)
    out = state.out
    if every is not None and every <= 0:
        raise ValidationError("--every must be a positive number of seconds")
    options: dict[str, Any] = {
        "warehouse": warehouse,
        "catalog": catalog,
        "since": _since(since),
        "tables": tuple(table) if table else ICEBERG_TABLES,
        "datastores": datastore or None,
        "namespaces": namespace or None,
        "batch_rows": batch_rows,
    }
    while True:
        result = _run(state.db, disable=out.json, export=export_iceberg, options=options)
        if out.json:
            out.data(result)
        else:
            rows = ", ".join(f"{n} {name}" for name, n in result.rows.items())
            out.line(
                f"exported to {result.warehouse} (catalog {result.catalog}) in "
                f"{result.seconds:.2f} s: {rows} rows appended, {result.commits} commits"
            )
        if every is None:
            return
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            return
