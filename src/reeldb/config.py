"""Settings: one frozen object merged from ``reeldb.toml`` < ``REELDB_*`` environment < flags.

`SETTINGS` is the single table of ``(name, default, help)`` that drives loading, the CLI's
``--help-settings`` and docs/operations.md. Unknown keys are rejected, and an error names every
place the value can be set.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from reeldb.errors import ConfigError

__all__ = ["DEFAULT_DATABASE", "SETTINGS", "Settings", "load_settings"]

DEFAULT_DATABASE: Final = "sqlite:///./reeldb-data/reel.db"
CONFIG_FILE: Final = "reeldb.toml"


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: Any
    help: str


SETTINGS: Final = (
    Setting(
        "database",
        DEFAULT_DATABASE,
        "Database URL: sqlite:///path/to/reel.db, memory: or "
        "postgresql://user[:password]@host[:port]/dbname.",
    ),
    Setting(
        "sqlite_synchronous",
        "full",
        "SQLite synchronous mode: full (fsync each commit; survives power loss) or normal "
        "(survives process crashes; faster).",
    ),
    Setting(
        "busy_timeout",
        30.0,
        "Seconds a write waits for another process's lock (PostgreSQL: for a connection).",
    ),
    Setting("read_timeout", None, "Seconds a read may run before it is interrupted (none)."),
    Setting(
        "statement_timeout",
        60.0,
        "PostgreSQL: seconds a statement may run on the server before it is cancelled.",
    ),
    Setting("pool_size", 10, "PostgreSQL: connections each process keeps open at most."),
    Setting(
        "max_document_bytes",
        64 * 1024 * 1024,
        "Largest document accepted by a synchronous write, in bytes.",
    ),
    Setting(
        "max_request_bytes",
        80 * 1024 * 1024,
        "Largest HTTP request body the service accepts, in bytes (larger: 413).",
    ),
    Setting(
        "document_cache_bytes",
        32 * 1024 * 1024,
        "Recently read documents kept in memory per process, in bytes (0: none).",
    ),
    Setting(
        "index_rollover_rows",
        1_000_000,
        "Rows in a DataStore's newest index generation before a new one is opened (smaller "
        "generations keep writes fast; queries read every generation).",
    ),
    Setting(
        "index_chunk_bytes",
        4 * 1024 * 1024,
        "Largest chunk of a document's events kept by the index for document-level queries.",
    ),
    Setting(
        "query_result_ttl",
        86_400.0,
        "Seconds an asynchronous query's results are kept after it finishes.",
    ),
    Setting(
        "blobs",
        None,
        "Blob store URL: file:///path/to/dir or s3://bucket/prefix?endpoint=...&region=... "
        "(default: a blobs directory beside the database file).",
    ),
    Setting(
        "blob_key",
        None,
        "Base64 of the 32-byte AES-256 key blobs are encrypted with at rest (default: a key "
        "file beside the database, blob.key, created on first use; keep a copy elsewhere).",
    ),
    Setting(
        "blob_grace",
        86_400.0,
        "Seconds an uploaded blob no document uses is kept before garbage collection.",
    ),
    Setting(
        "webhook_secret",
        None,
        "Secret the webhooks of asynchronous writes are signed with (HMAC-SHA256; default: "
        "a key file beside the database, webhook.key, created on first use).",
    ),
    Setting("host", "127.0.0.1", "Address `reeldb serve` listens on."),
    Setting("port", 8000, "Port `reeldb serve` listens on."),
    Setting("workers", 1, "Worker processes of `reeldb serve` (they share the database)."),
    Setting(
        "jwt_public_key",
        None,
        "PEM file of an OIDC issuer's public key: also accept its JWT bearer tokens (none).",
    ),
    Setting("jwt_issuer", None, "The iss claim JWT bearer tokens must carry (not checked)."),
    Setting("jwt_audience", None, "The aud claim JWT bearer tokens must carry (not checked)."),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Effective settings (see `SETTINGS` for meanings)."""

    database: str = DEFAULT_DATABASE
    sqlite_synchronous: str = "full"
    busy_timeout: float = 30.0
    read_timeout: float | None = None
    statement_timeout: float = 60.0
    pool_size: int = 10
    max_document_bytes: int = 64 * 1024 * 1024
    max_request_bytes: int = 80 * 1024 * 1024
    document_cache_bytes: int = 32 * 1024 * 1024
    index_rollover_rows: int = 1_000_000
    index_chunk_bytes: int = 4 * 1024 * 1024
    query_result_ttl: float = 86_400.0
    blobs: str | None = None
    blob_key: str | None = field(default=None, repr=False)
    blob_grace: float = 86_400.0
    webhook_secret: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    def __post_init__(self) -> None:
        if self.sqlite_synchronous not in ("full", "normal"):
            raise ConfigError(
                f"sqlite_synchronous must be 'full' or 'normal', not {self.sqlite_synchronous!r}"
                f"{_WHERE.format(name='sqlite_synchronous', env='REELDB_SQLITE_SYNCHRONOUS')}"
            )
        cache = self.document_cache_bytes
        if isinstance(cache, bool) or not isinstance(cache, int) or cache < 0:
            raise ConfigError(
                f"document_cache_bytes must be a number of bytes (0 or more), not {cache!r}"
                f"{_WHERE.format(name='document_cache_bytes', env='REELDB_DOCUMENT_CACHE_BYTES')}"
            )
        if isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise ConfigError(
                f"port must be from 0 to 65535, not {self.port!r}"
                f"{_WHERE.format(name='port', env='REELDB_PORT')}"
            )
        for name in (
            "busy_timeout",
            "read_timeout",
            "statement_timeout",
            "pool_size",
            "max_document_bytes",
            "max_request_bytes",
            "index_rollover_rows",
            "index_chunk_bytes",
            "query_result_ttl",
            "blob_grace",
            "workers",
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value <= 0):
                env = f"REELDB_{name.upper()}"
                raise ConfigError(
                    f"{name} must be a positive number, not {value!r}"
                    f"{_WHERE.format(name=name, env=env)}"
                )


_WHERE = " (set it in reeldb.toml as {name} = ..., with {env}, or with a flag)"
_NAMES: Final = {f.name for f in fields(Settings)}


def _coerce(name: str, value: Any, origin: str) -> Any:
    default = next(s.default for s in SETTINGS if s.name == name)
    if value is None or isinstance(value, str) and value.lower() in ("", "none"):
        return None if default is None else default
    try:
        if name in (
            "busy_timeout",
            "read_timeout",
            "statement_timeout",
            "query_result_ttl",
            "blob_grace",
        ):
            return float(value)
        if name in (
            "max_document_bytes",
            "max_request_bytes",
            "document_cache_bytes",
            "index_rollover_rows",
            "index_chunk_bytes",
            "pool_size",
            "port",
            "workers",
        ):
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} from {origin} must be a number, not {value!r}"
            f"{_WHERE.format(name=name, env='REELDB_' + name.upper())}"
        ) from None
    return str(value)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge settings from the config file, the environment and explicit overrides.

    Args:
        overrides: Highest precedence (CLI flags, ``connect()`` keywords); None values are
            ignored.
        config_file: A TOML file; defaults to ``$REELDB_CONFIG`` or ``./reeldb.toml`` if present.
        environ: The environment (defaults to ``os.environ``).

    Returns:
        The settings.

    Raises:
        ConfigError: An unknown key, a bad value, or an unreadable file.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (Path(env["REELDB_CONFIG"]) if "REELDB_CONFIG" in env else None)
    if path is None and Path(CONFIG_FILE).is_file():
        path = Path(CONFIG_FILE)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        data = data.get("reeldb", data)
        for key, value in data.items():
            if key not in _NAMES:
                raise ConfigError(f"unknown setting {key!r} in {path}; known: {sorted(_NAMES)}")
            values[key] = _coerce(key, value, str(path))
    for key, value in env.items():
        if key.startswith("REELDB_") and key != "REELDB_CONFIG":
            name = key.removeprefix("REELDB_").lower()
            if name in _NAMES:
                values[name] = _coerce(name, value, f"${key}")
    for key, value in (overrides or {}).items():
        if key not in _NAMES:
            raise ConfigError(f"unknown setting {key!r}; known: {sorted(_NAMES)}")
        if value is not None:
            values[key] = _coerce(key, value, "arguments")
    return Settings(**values)
