"""Versioned PostgreSQL schema migrations: named, applied in order, recorded, transactional.

Append new migrations at the end; never edit one that has shipped. Each runs in its own
transaction together with its row in ``reeldb_migrations`` (PostgreSQL's DDL is
transactional), so a crash leaves either the whole migration or none of it. Processes that
start at once serialise on an advisory lock: one migrates, the others find it done.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from reeldb.store import _jobs
from reeldb.store.postgres import (
    _annotations,
    _base,
    _documents,
    _ingest,
    _metadata,
    _queries,
    _search,
    _staging,
)
from reeldb.store.postgres._connection import PostgresConnections

__all__ = ["MIGRATIONS", "migrate"]

_LOCK: Final = 0x7265656C_6462  # "reeldb": the advisory lock of the migration runner

MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "0001_initial",
        (
            *_base.DDL,
            *_metadata.DDL,
            *_documents.DDL,
            *_ingest.DDL,
            *_annotations.DDL,
            *_search.DDL,
            *_staging.DDL,
            *_queries.DDL,
        ),
    ),
    # Reprocessing jobs, their partitions and dead letters (reeldb.reprocess).
    ("0002_reprocess_jobs", _jobs.DDL),
    ("0003_annotation_head_room", _annotations.HEAD_ROOM),
    # Live request latency published by serving processes, for jobs elsewhere (reeldb.reprocess).
    ("0004_live_latency", _jobs.LIVE_DDL),
)


def migrate(connections: PostgresConnections) -> list[str]:
    """Apply every migration not yet recorded.

    Args:
        connections: The pool.

    Returns:
        The names of the migrations applied now.
    """
    applied: list[str] = []
    with connections.connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS reeldb_migrations "
                "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM reeldb_migrations")}
            for name, statements in MIGRATIONS:
                if name in done:
                    continue
                with conn.transaction():
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO reeldb_migrations (name, applied_at) VALUES (%s, %s)",
                        (name, datetime.now(UTC)),
                    )
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    return applied
