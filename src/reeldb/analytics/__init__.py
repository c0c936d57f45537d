"""Analytics: what reeldb stores, exported as Apache Iceberg tables (docs/analytics.md).

`export_iceberg` writes four tables in the Iceberg namespace ``reeldb`` -- ``documents``,
``events``, ``regions`` and ``annotations`` -- through a SQL catalog (SQLite or PostgreSQL)
into a warehouse (local files by default), incrementally: a second run appends only what is
new. Any Iceberg or Parquet reader (DuckDB, Spark, Trino, pyarrow) reads them.

pyiceberg and pyarrow are imported on first use, not with ``reeldb``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from reeldb.analytics._model import (
    DEFAULT_BATCH_ROWS,
    ICEBERG_NAMESPACE,
    ICEBERG_TABLES,
    IcebergExport,
    catalog_uri,
    resolve_warehouse,
    warehouse_io,
)
from reeldb.errors import MissingDependencyError

if TYPE_CHECKING:
    from reeldb.database import Database

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "ICEBERG_NAMESPACE",
    "ICEBERG_TABLES",
    "IcebergExport",
    "catalog_uri",
    "export_iceberg",
    "resolve_warehouse",
    "warehouse_io",
]


def export_iceberg(
    db: Database,
    *,
    warehouse: str | None = None,
    catalog: str | None = None,
    since: datetime | None = None,
    tables: Sequence[str] = ICEBERG_TABLES,
    datastores: Sequence[str] | None = None,
    namespaces: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> IcebergExport:
    """Export what is new since the last export to the Iceberg tables (creating them).

    Documents (every version), their events and regions, and every annotation version
    (deletions included) are appended to ``reeldb.documents``, ``reeldb.events``,
    ``reeldb.regions`` and ``reeldb.annotations``. Each append commits, in the same Iceberg
    transaction, the watermarks that say what it holds (table properties), so an export
    killed at any point and run again neither skips nor repeats a row. A reeldb schema that
    gained a property adds a column (schema evolution). docs/analytics.md has the schemas.

    Args:
        db: The database to export.
        warehouse: Where the tables' files go: a directory, a ``file://`` URL, or
            ``s3://bucket/prefix?endpoint=...&region=...`` (both parameters optional;
            credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, as S3 blob
            stores). Default: ``warehouse`` beside the SQLite file, as blobs.
        catalog: The catalog's database: ``sqlite:///path`` or ``postgresql://...``
            (default: ``sqlite:///<warehouse>/catalog.db``).
        since: Only data created after this instant (timezone-aware; naive means UTC).
            Older data is passed over for good: later exports do not go back for it.
        tables: Which of the four tables to write.
        datastores: Only these DataStores (``ns/type/version``; default all).
        namespaces: Only the annotations of these namespaces (default all).
        batch_rows: Rows per append (each append is one Iceberg snapshot).
        progress: Called as ``progress(step, done, total)`` as the export goes on.

    Returns:
        What was appended.

    Raises:
        ConfigError: A bad warehouse or catalog (unwritable, unknown scheme, unreachable).
        ValidationError: A bad table name, batch size or ``since``.
        NotFoundError: An unknown DataStore or namespace.
        ConflictError: Another export committed to a table meanwhile (run it again).
        MissingDependencyError: pyiceberg or pyarrow is not installed.
    """
    try:
        from reeldb.analytics import _iceberg
    except ImportError as exc:  # pragma: no cover - they are dependencies of reeldb
        raise MissingDependencyError(
            f"Iceberg export needs pyiceberg and pyarrow ({exc.name} is missing): "
            "pip install 'pyiceberg[sql-sqlite,pyarrow,pyiceberg-core]'"
        ) from None
    return _iceberg.export(
        db,
        warehouse=warehouse,
        catalog=catalog,
        since=since,
        tables=tables,
        datastores=datastores,
        namespaces=namespaces,
        batch_rows=batch_rows,
        progress=progress,
    )
