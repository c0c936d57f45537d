"""Streamed writes of large media documents from blobs, in bounded memory."""

from reeldb.ingest._service import BATCH_ROWS, MAX_PARTS, Blobs, DocumentIngest, ValidatedBlob

__all__ = ["BATCH_ROWS", "MAX_PARTS", "Blobs", "DocumentIngest", "ValidatedBlob"]
