"""Blob storage: the :class:`BlobStore` port, its adapters and encryption at rest."""

from __future__ import annotations

from reeldb.blobs.base import BlobInfo, BlobIntegrityError, BlobStore
from reeldb.blobs.crypto import BlobKey, parse_key
from reeldb.blobs.fs import FileBlobStore
from reeldb.blobs.s3 import S3BlobStore

__all__ = [
    "BlobInfo",
    "BlobIntegrityError",
    "BlobKey",
    "BlobStore",
    "FileBlobStore",
    "S3BlobStore",
    "parse_key",
]
