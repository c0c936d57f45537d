"""The PostgreSQL backend: every storage port on one PostgreSQL 15+ database."""

from __future__ import annotations

from reeldb.store.postgres._connection import is_postgres_url
from reeldb.store.postgres._store import PostgresStore

__all__ = ["PostgresStore", "is_postgres_url"]
