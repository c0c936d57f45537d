"""Versioned SQLite schema migrations: named, applied in order, recorded, transactional.

Append new migrations at the end; never edit one that has shipped. Each runs in its own
``BEGIN IMMEDIATE`` transaction together with its row in ``reeldb_migrations``, so a crash
leaves either the whole migration or none of it.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Final

from reeldb.store import _jobs

__all__ = ["MIGRATIONS", "migrate"]

MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "0001_core",
        (
            """CREATE TABLE namespaces (
                name TEXT PRIMARY KEY,
                description TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE role_grants (
                namespace TEXT NOT NULL REFERENCES namespaces(name),
                principal TEXT NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('admin', 'writer', 'reader')),
                granted_at TEXT NOT NULL,
                PRIMARY KEY (namespace, principal)
            )""",
            """CREATE TABLE schema_subjects (
                namespace TEXT NOT NULL REFERENCES namespaces(name),
                name TEXT NOT NULL,
                kind TEXT NOT NULL,
                compatibility TEXT NOT NULL,
                PRIMARY KEY (namespace, name)
            )""",
            """CREATE TABLE schema_versions (
                namespace TEXT NOT NULL,
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                kind TEXT NOT NULL,
                description TEXT NOT NULL,
                definition TEXT NOT NULL,
                json_schema TEXT NOT NULL,
                resolved TEXT NOT NULL,
                lineage TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (namespace, name, version),
                FOREIGN KEY (namespace, name) REFERENCES schema_subjects(namespace, name)
            )""",
            """CREATE TABLE datastores (
                id INTEGER PRIMARY KEY,
                namespace TEXT NOT NULL REFERENCES namespaces(name),
                analysis_type TEXT NOT NULL,
                version INTEGER NOT NULL,
                mid_keys TEXT NOT NULL,
                schema_name TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                description TEXT NOT NULL,
                created_at TEXT NOT NULL,
                UNIQUE (namespace, analysis_type, version),
                FOREIGN KEY (namespace, schema_name, schema_version)
                    REFERENCES schema_versions(namespace, name, version)
            )""",
            """CREATE TABLE documents (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id BLOB NOT NULL UNIQUE,
                datastore_id INTEGER NOT NULL REFERENCES datastores(id),
                mid_key TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                size INTEGER NOT NULL,
                body BLOB NOT NULL
            )""",
            "CREATE INDEX documents_by_mid ON documents (datastore_id, mid_key, seq)",
            "CREATE INDEX documents_by_datastore ON documents (datastore_id, seq)",
        ),
    ),
    (
        "0002_access",
        (
            """CREATE TABLE api_keys (
                key_id TEXT PRIMARY KEY,
                principal TEXT NOT NULL,
                secret_hash BLOB NOT NULL,
                description TEXT NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL,
                revoked_at TEXT
            )""",
            "CREATE INDEX api_keys_by_principal ON api_keys (principal)",
            """CREATE TABLE system_admins (
                principal TEXT PRIMARY KEY,
                granted_at TEXT NOT NULL
            )""",
            "CREATE INDEX role_grants_by_principal ON role_grants (principal)",
            """CREATE TABLE audit_log (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                principal TEXT NOT NULL,
                action TEXT NOT NULL,
                namespace TEXT,
                target TEXT NOT NULL,
                request_id TEXT NOT NULL,
                status INTEGER NOT NULL
            )""",
            "CREATE INDEX audit_by_namespace ON audit_log (namespace, seq)",
        ),
    ),
    (
        "0003_index",
        (
            # Generations of a DataStore's search index; each has its own tables ix<id>_*.
            """CREATE TABLE index_generations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                datastore_id INTEGER NOT NULL REFERENCES datastores (id),
                name TEXT NOT NULL,
                state TEXT NOT NULL,
                columns TEXT NOT NULL,
                created_at TEXT NOT NULL,
                docs INTEGER NOT NULL DEFAULT 0,
                rows INTEGER NOT NULL DEFAULT 0,
                UNIQUE (datastore_id, name)
            )""",
            # The generations queries read (and the newest of them takes new documents).
            """CREATE TABLE index_alias (
                datastore_id INTEGER NOT NULL REFERENCES datastores (id),
                generation_id INTEGER NOT NULL REFERENCES index_generations (id),
                PRIMARY KEY (datastore_id, generation_id)
            )""",
            """CREATE TABLE index_docs (
                generation_id INTEGER NOT NULL REFERENCES index_generations (id),
                doc_seq INTEGER NOT NULL,
                first_row INTEGER NOT NULL,
                last_row INTEGER NOT NULL,
                PRIMARY KEY (generation_id, doc_seq)
            ) WITHOUT ROWID""",
            "CREATE INDEX index_docs_by_seq ON index_docs (doc_seq)",
        ),
    ),
    (
        "0004_query_requests",
        (
            # DataStore-level filters run asynchronously; a runner holds a request by a lease.
            """CREATE TABLE query_requests (
                id BLOB PRIMARY KEY,
                datastore_id INTEGER NOT NULL REFERENCES datastores (id),
                query TEXT NOT NULL,
                all_versions INTEGER NOT NULL,
                state TEXT NOT NULL
                    CHECK (state IN ('pending', 'running', 'done', 'failed')),
                found INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                owner TEXT,
                lease_until TEXT,
                created_at TEXT NOT NULL,
                finished_at TEXT
            ) WITHOUT ROWID""",
            "CREATE INDEX query_requests_by_finish ON query_requests (finished_at)",
            """CREATE TABLE query_results (
                request_id BLOB NOT NULL REFERENCES query_requests (id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                document_id BLOB NOT NULL,
                mid_key TEXT NOT NULL,
                PRIMARY KEY (request_id, position)
            ) WITHOUT ROWID""",
        ),
    ),
    (
        "0005_annotations",
        (
            # Annotation types in use, each with its lineage (is-a) and live count.
            """CREATE TABLE annotation_types (
                id INTEGER PRIMARY KEY,
                namespace TEXT NOT NULL REFERENCES namespaces (name),
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                lineage TEXT NOT NULL,
                live INTEGER NOT NULL DEFAULT 0,
                UNIQUE (namespace, name, version)
            )""",
            # Associations in use, interned; `span` bounds the length of their annotations'
            # time ranges, so a time window is one range of `annotation_links`.
            """CREATE TABLE annotation_keys (
                id INTEGER PRIMARY KEY,
                namespace TEXT NOT NULL,
                type TEXT NOT NULL,
                value TEXT NOT NULL,
                live INTEGER NOT NULL DEFAULT 0,
                span REAL NOT NULL DEFAULT 0,
                UNIQUE (namespace, type, value)
            )""",
            # Text field names, interned: a full-text row's id is (annotation << 12) | field.
            """CREATE TABLE annotation_fields (
                id INTEGER PRIMARY KEY CHECK (id < 4096),
                name TEXT NOT NULL UNIQUE
            )""",
            # One row per annotation: its current version, and what search reads of it.
            """CREATE TABLE annotations (
                pk INTEGER PRIMARY KEY,
                id BLOB NOT NULL UNIQUE,
                namespace TEXT NOT NULL REFERENCES namespaces (name),
                version INTEGER NOT NULL,
                deleted INTEGER NOT NULL,
                type_id INTEGER NOT NULL REFERENCES annotation_types (id),
                t0 REAL NOT NULL,
                t1 REAL,
                x0 REAL, y0 REAL, x1 REAL, y1 REAL,
                facets TEXT NOT NULL,
                words TEXT
            )""",
            "CREATE INDEX annotations_live ON annotations (namespace, t0, pk) WHERE deleted = 0",
            "CREATE INDEX annotations_by_type ON annotations (type_id, t0, pk) WHERE deleted = 0",
            # Every version, as stored: the source of truth.
            """CREATE TABLE annotation_versions (
                pk INTEGER NOT NULL REFERENCES annotations (pk),
                version INTEGER NOT NULL,
                type_id INTEGER NOT NULL REFERENCES annotation_types (id),
                deleted INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT,
                body BLOB NOT NULL,
                PRIMARY KEY (pk, version)
            ) WITHOUT ROWID""",
            # The associations of live annotations, by association and start time.
            """CREATE TABLE annotation_links (
                key INTEGER NOT NULL,
                t0 REAL NOT NULL,
                pk INTEGER NOT NULL,
                t1 REAL,
                PRIMARY KEY (key, t0, pk)
            ) WITHOUT ROWID""",
            # Time and box of live annotations that have either (a missing one lies beyond
            # any query's window).
            "CREATE VIRTUAL TABLE annotation_space USING rtree(pk, t0, t1, x0, x1, y0, y1)",
            # Porter stems of live annotations' text fields, one row per field.
            "CREATE VIRTUAL TABLE annotation_text USING fts5(body)",
            "CREATE VIRTUAL TABLE annotation_terms USING fts5vocab(annotation_text, row)",
            # Per namespace: which association types annotations may use (NULL: any).
            """CREATE TABLE annotation_settings (
                namespace TEXT PRIMARY KEY REFERENCES namespaces (name),
                association_types TEXT
            )""",
        ),
    ),
    (
        "0006_blobs_and_ingests",
        (
            # A document written from a blob keeps its body there (body is empty).
            "ALTER TABLE documents ADD COLUMN blob BLOB",
            "CREATE INDEX documents_by_blob ON documents (blob) WHERE blob IS NOT NULL",
            # Blobs announced by `POST /v1/blobs`: whose they are and whether they arrived.
            """CREATE TABLE blobs (
                id BLOB PRIMARY KEY,
                namespace TEXT NOT NULL REFERENCES namespaces (name),
                declared_size INTEGER,
                size INTEGER,
                sha256 TEXT,
                state TEXT NOT NULL,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL,
                stored_at TEXT,
                claimed_at TEXT
            )""",
            "CREATE INDEX blobs_by_age ON blobs (created_at)",
            # A document streamed from a blob, indexed over several transactions: its
            # sequence number and its index rows are reserved first, staged in batches
            # (each with its checkpoint) and published at once.
            """CREATE TABLE ingests (
                id BLOB PRIMARY KEY,
                datastore_id INTEGER NOT NULL REFERENCES datastores (id),
                schema_version INTEGER NOT NULL,
                document_id BLOB NOT NULL UNIQUE,
                doc_seq INTEGER NOT NULL,
                mid_key TEXT NOT NULL,
                created_at TEXT NOT NULL,
                blob BLOB NOT NULL,
                size INTEGER NOT NULL,
                generation_id INTEGER NOT NULL,
                row_base INTEGER NOT NULL,
                rows INTEGER NOT NULL,
                chunk_base INTEGER NOT NULL,
                chunks INTEGER NOT NULL,
                rows_done INTEGER NOT NULL DEFAULT 0,
                chunks_done INTEGER NOT NULL DEFAULT 0,
                events_done INTEGER NOT NULL DEFAULT 0,
                state TEXT NOT NULL
            )""",
            "CREATE INDEX ingests_by_blob ON ingests (blob)",
        ),
    ),
    (
        "0007_write_requests",
        (
            # Asynchronous writes: accepted durably, run by workers (reeldb.workflows).
            """CREATE TABLE write_requests (
                id BLOB PRIMARY KEY,
                namespace TEXT NOT NULL REFERENCES namespaces (name),
                datastore TEXT NOT NULL,
                mid TEXT NOT NULL,
                blob BLOB NOT NULL,
                state TEXT NOT NULL,
                document_id BLOB,
                error TEXT,
                idempotency_key TEXT,
                webhook TEXT,
                created_by TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                steps TEXT NOT NULL DEFAULT '{}',
                UNIQUE (namespace, idempotency_key)
            )""",
            "CREATE INDEX write_requests_by_state ON write_requests (state) "
            "WHERE state NOT IN ('INDEXED', 'FAILED')",
        ),
    ),
    (
        "0008_blob_parts",
        (
            # Parts of a blob uploaded piece by piece (resumable); each is a blob of its own
            # (`payload`) until the upload is completed.
            """CREATE TABLE blob_parts (
                blob BLOB NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
                number INTEGER NOT NULL,
                payload BLOB NOT NULL,
                size INTEGER NOT NULL,
                sha256 TEXT NOT NULL,
                PRIMARY KEY (blob, number)
            ) WITHOUT ROWID""",
        ),
    ),
    (
        "0009_workers",
        (
            # Workers of asynchronous writes and when each was last seen: a worker silent for
            # too long is taken over (its interrupted writes resumed by a live one).
            """CREATE TABLE workers (
                name TEXT PRIMARY KEY,
                seen_at TEXT NOT NULL,
                taken_over_by TEXT
            )""",
        ),
    ),
    # Reprocessing jobs, their partitions and dead letters (reeldb.reprocess).
    ("0010_reprocess_jobs", _jobs.DDL),
    # Live request latency published by serving processes, for jobs elsewhere (reeldb.reprocess).
    ("0011_live_latency", _jobs.LIVE_DDL),
)


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded.

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).

    Returns:
        The names of the migrations applied now.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS reeldb_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
    )
    applied: list[str] = []
    for name, statements in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM reeldb_migrations WHERE name = ?", (name,))
            if done.fetchone() is None:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO reeldb_migrations (name, applied_at) VALUES (?, ?)",
                    (name, datetime.now(UTC).isoformat()),
                )
                applied.append(name)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return applied
