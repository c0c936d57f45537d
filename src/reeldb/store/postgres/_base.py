"""What every part of `PostgresStore` shares: the pool, the index and small helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import psycopg

    from reeldb.auth.model import AuditEntry
    from reeldb.index.postgres import PostgresIndex
    from reeldb.store.postgres._connection import PostgresConnections

__all__ = ["DDL", "PostgresBase", "append_audit", "bump_access"]

DDL: Final[tuple[str, ...]] = (
    # The access generation: moved on by every change of keys, roles or system
    # administrators, read by every process before it trusts its cache.
    "CREATE TABLE reeldb_access (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), "
    "generation BIGINT NOT NULL)",
    "INSERT INTO reeldb_access (generation) VALUES (0)",
    # Every write and admin action, allowed or refused.
    """CREATE TABLE audit_log (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL,
        principal TEXT NOT NULL,
        action TEXT NOT NULL,
        namespace TEXT,
        target TEXT NOT NULL,
        request_id TEXT NOT NULL,
        status INTEGER NOT NULL
    )""",
    "CREATE INDEX audit_by_namespace ON audit_log (namespace, seq)",
)
"""Tables every part uses, created first by migration 0001_initial."""


class PostgresBase:
    """Attributes the mixins of `PostgresStore` rely on (set by its ``__init__``)."""

    _pg: PostgresConnections
    _index: PostgresIndex


def bump_access(conn: psycopg.Connection[Any]) -> None:
    """Move the access generation on: every process's authentication cache reads again.

    Call it in every transaction that changes keys, roles or system administrators.
    """
    conn.execute("UPDATE reeldb_access SET generation = generation + 1")


def append_audit(conn: psycopg.Connection[Any], entries: Sequence[AuditEntry]) -> None:
    """Append audit entries (in the caller's transaction; their ``seq`` is ignored)."""
    if not entries:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO audit_log (at, principal, action, namespace, target, request_id, "
            "status) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (e.at, e.principal, e.action, e.namespace, e.target, e.request_id, e.status)
                for e in entries
            ],
        )
