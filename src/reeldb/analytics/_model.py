"""What an Iceberg export needs before pyiceberg is imported: names, locations, the result."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from reeldb.errors import ConfigError

if TYPE_CHECKING:
    from reeldb.database import Database

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "ICEBERG_NAMESPACE",
    "ICEBERG_TABLES",
    "IcebergExport",
    "catalog_uri",
    "resolve_warehouse",
    "warehouse_io",
]

ICEBERG_NAMESPACE: Final = "reeldb"
"""The Iceberg namespace of the four tables."""
ICEBERG_TABLES: Final = ("documents", "events", "regions", "annotations")
"""The tables, in the order an export writes them."""
DEFAULT_BATCH_ROWS: Final = 250_000
"""Rows per append: each append is one Iceberg snapshot (and at least one Parquet file)."""


@dataclass(frozen=True, slots=True)
class IcebergExport:
    """What one export appended.

    Attributes:
        warehouse: The warehouse URL.
        catalog: The catalog URL (without its password).
        rows: Rows appended per table.
        documents: Documents exported per DataStore.
        annotations: Annotation versions exported per namespace.
        commits: Iceberg commits made (appends with their watermarks).
        seconds: How long it took.
    """

    warehouse: str
    catalog: str
    rows: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    annotations: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    seconds: float = 0.0


def resolve_warehouse(db: Database, warehouse: str | None) -> str:
    """The warehouse URL, its directory created and checked writable when it is local.

    Args:
        db: The database (its data directory is the default's parent).
        warehouse: A directory, a ``file://`` URL, an ``s3://`` URL, or None.

    Returns:
        ``file:///abs/path`` or the ``s3://`` URL as given.

    Raises:
        ConfigError: No default (an in-memory database), an unknown scheme, or a local
            directory that cannot be created or written.
    """
    if warehouse is None:
        from reeldb.database import _data_dir

        data_dir = _data_dir(db.settings.database, db.url)
        if data_dir is None:
            raise ConfigError(
                "an in-memory database has no data directory: give the warehouse "
                "(--warehouse DIR or s3://bucket/prefix)"
            )
        warehouse = str(data_dir / "warehouse")
    if warehouse.startswith("s3://"):
        warehouse_io(warehouse)  # checked now: a bad URL is a ConfigError before any work
        return warehouse
    if warehouse.startswith("file://"):
        path = Path(unquote(urlsplit(warehouse).path))
    elif "://" in warehouse:
        raise ConfigError(
            f"warehouse {warehouse!r}: give a directory, a file:// URL or an s3:// URL"
        )
    else:
        path = Path(warehouse)
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".reeldb-probe-", dir=path)
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"warehouse {path} is not a writable directory: {reason}") from None
    return path.as_uri()


def catalog_uri(catalog: str | None, warehouse: str) -> str:
    """The SQLAlchemy URI of the SQL catalog.

    Args:
        catalog: ``sqlite:///path``, ``postgresql://...`` (psycopg 3 is used), or None for
            ``catalog.db`` in a local warehouse.
        warehouse: The warehouse URL (from `resolve_warehouse`).

    Returns:
        The URI.

    Raises:
        ConfigError: No default (an S3 warehouse) or an unsupported scheme.
    """
    if catalog is None:
        if not warehouse.startswith("file://"):
            raise ConfigError(
                "a warehouse on S3 needs a catalog: --catalog postgresql://... or sqlite:///..."
            )
        return f"sqlite:///{Path(unquote(urlsplit(warehouse).path)) / 'catalog.db'}"
    scheme, sep, rest = catalog.partition("://")
    if not sep:
        raise ConfigError(
            f"catalog {catalog!r}: give a URL, sqlite:///path/catalog.db or postgresql://..."
        )
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        if rest.startswith("/") and rest not in ("/", "/:memory:"):
            directory = Path(rest[1:]).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"catalog {catalog}: cannot create {directory}: {exc.strerror or exc}"
                ) from None
        return catalog
    raise ConfigError(
        f"catalog {catalog!r}: the catalog is a SQL database, sqlite:///... or postgresql://..."
    )


def warehouse_io(warehouse: str) -> tuple[str, dict[str, str]]:
    """The location pyiceberg is given for a warehouse URL, and its FileIO properties.

    An S3 warehouse is named as S3 blob stores are (`reeldb.blobs.s3.S3BlobStore.from_url`):
    ``s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1``, both parameters
    optional; credentials come from the environment (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, else the AWS SDK's chain), never from
    the URL. The region defaults to ``AWS_REGION`` or ``AWS_DEFAULT_REGION``.

    Args:
        warehouse: The warehouse URL (from `resolve_warehouse`).

    Returns:
        ``(location, properties)``: ``s3://bucket/prefix`` and pyiceberg's ``s3.*``
        properties; a local warehouse as it is, with none.

    Raises:
        ConfigError: A malformed S3 URL, one holding credentials, or unknown parameters.
    """
    if not warehouse.startswith("s3://"):
        return warehouse, {}
    parts = urlsplit(warehouse)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "an S3 warehouse URL must not hold credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY instead"
        )
    if not parts.hostname:
        raise ConfigError(f"warehouse {warehouse!r}: give s3://bucket/prefix")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - {"endpoint", "region"})
    if unknown:
        raise ConfigError(
            f"warehouse {parts.scheme}://{parts.netloc}{parts.path}: unknown parameter "
            f"{', '.join(unknown)}; expected endpoint and region"
        )
    properties: dict[str, str] = {}
    endpoint = params.get("endpoint")
    if endpoint:
        ends = urlsplit(endpoint)
        if ends.scheme not in ("http", "https") or not ends.hostname or ends.username:
            raise ConfigError(
                "the S3 endpoint must be an http:// or https:// URL without credentials"
            )
        properties["s3.endpoint"] = endpoint
    region = params.get("region") or os.environ.get("AWS_REGION")
    region = region or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        properties["s3.region"] = region
    return f"s3://{parts.netloc}{parts.path.rstrip('/')}", properties
