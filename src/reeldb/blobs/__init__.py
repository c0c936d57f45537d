"""Blob storage: the :class:`BlobStore` port, its adapters and encryption at rest."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from reeldb.blobs.base import BlobInfo, BlobIntegrityError, BlobStore
from reeldb.blobs.crypto import KEY_SIZE, BlobKey, parse_key
from reeldb.blobs.fs import FileBlobStore
from reeldb.blobs.s3 import S3BlobStore
from reeldb.errors import ConfigError

if TYPE_CHECKING:
    from reeldb.config import Settings

__all__ = [
    "BlobInfo",
    "BlobIntegrityError",
    "BlobKey",
    "BlobStore",
    "FileBlobStore",
    "S3BlobStore",
    "key_file",
    "load_blobs",
    "parse_key",
]

KEY_FILE = "blob.key"


def key_file(path: Path) -> bytes:
    """The 32-byte secret in a key file (base64), created (mode 0600, atomically) if missing.

    Args:
        path: The file.

    Returns:
        The secret.

    Raises:
        ConfigError: The file cannot be read or holds no valid key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = base64.b64encode(os.urandom(KEY_SIZE))
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secret + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # another process may have won: its key is the key
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from None
    cleaned = "".join(text.split())
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != KEY_SIZE:
        raise ConfigError(f"the key file {path} does not hold the base64 of 32 bytes")
    return raw


def load_blobs(settings: Settings, data_dir: Path | None) -> BlobStore:
    """Open the blob store the settings name.

    Args:
        settings: ``blobs`` (URL) and ``blob_key``.
        data_dir: The database file's directory, where the default store and key file live
            (None for an in-memory database: a temporary directory and key, gone at exit).

    Returns:
        The store, encrypting at rest.

    Raises:
        ConfigError: A malformed URL or key.
    """
    url = settings.blobs
    if settings.blob_key is not None:
        key = parse_key(settings.blob_key)
    elif data_dir is not None:
        key = BlobKey(key_file(data_dir / KEY_FILE))
    else:
        key = BlobKey(os.urandom(KEY_SIZE))
    if url is None:
        if data_dir is None:
            root = Path(tempfile.mkdtemp(prefix="reeldb-blobs-"))
            return FileBlobStore(root, key=key, remove_on_close=True)
        return FileBlobStore(data_dir / "blobs", key=key)
    if url.startswith("s3://"):
        return S3BlobStore.from_url(url, key=key)
    if url.startswith("file://"):
        return FileBlobStore(Path(url.removeprefix("file://")), key=key)
    raise ConfigError(
        f"unsupported blob store URL {url!r}: use file:///path/to/dir or s3://bucket/prefix "
        "(set it with REELDB_BLOBS or 'blobs' in reeldb.toml)"
    )
