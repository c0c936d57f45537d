"""What every blob adapter shares: the metadata sidecar and the verified read of a payload.

The sidecar is ``{"format": 1, "id", "payload", "size", "sha256", "created_at",
"encrypted", "key_id"}``; with a key, ``sha256`` is sealed (`reeldb.blobs.crypto.seal_value`)
so that the stored metadata cannot confirm a guess of the content.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from reeldb.blobs.base import BlobInfo, BlobIntegrityError
from reeldb.blobs.crypto import BlobKey, encrypt_stream, open_value, seal_value
from reeldb.errors import ConfigError

__all__ = [
    "FORMAT",
    "PAYLOAD_NAME",
    "Tally",
    "info_of",
    "make_meta",
    "parse_meta",
    "sealed",
    "verified",
]

FORMAT: Final = 1
PAYLOAD_NAME: Final = re.compile(r"[0-9a-f-]{36}\.[0-9a-f]{16}\.blob")


class Tally:
    """The size and SHA-256 of the plaintext that went by (`sealed`)."""

    __slots__ = ("digest", "size")

    def __init__(self) -> None:
        self.size = 0
        self.digest = hashlib.sha256()


def sealed(
    chunks: Iterable[bytes], key: BlobKey | None, blob_id: UUID, chunk_size: int
) -> tuple[Iterator[bytes], Tally]:
    """A payload to store: the plaintext counted as it goes by, encrypted if there is a key.

    Args:
        chunks: The plaintext.
        key: The store's key (None: stored as it is).
        blob_id: The blob (bound into each encrypted chunk).
        chunk_size: Plaintext bytes per encrypted chunk.

    Returns:
        The bytes to store, and the tally (complete once they are consumed).
    """
    tally = Tally()

    def counted() -> Iterator[bytes]:
        for chunk in chunks:
            tally.digest.update(chunk)
            tally.size += len(chunk)
            yield chunk

    payload = counted()
    if key is not None:
        payload = encrypt_stream(payload, key, blob_id, chunk_size=chunk_size)
    return payload, tally


def make_meta(
    key: BlobKey | None, blob_id: UUID, payload: str, size: int, sha256: str, at: datetime
) -> dict[str, Any]:
    """The sidecar of a stored payload.

    Args:
        key: The store's key (None: plaintext).
        blob_id: The blob.
        payload: The payload's name (`PAYLOAD_NAME`).
        size: The plaintext size.
        sha256: The plaintext's hex SHA-256.
        at: When it was stored.

    Returns:
        The sidecar.
    """
    return {
        "format": FORMAT,
        "id": str(blob_id),
        "payload": payload,
        "size": size,
        "sha256": sha256 if key is None else seal_value(key, blob_id, bytes.fromhex(sha256)),
        "created_at": at.isoformat(),
        "encrypted": key is not None,
        "key_id": None if key is None else key.key_id.hex(),
    }


def parse_meta(raw: bytes, blob_id: UUID) -> dict[str, Any]:
    """A sidecar read back, checked.

    Args:
        raw: Its bytes.
        blob_id: The blob it must describe.

    Returns:
        The sidecar.

    Raises:
        BlobIntegrityError: It is not a sidecar of this blob.
    """
    try:
        meta: dict[str, Any] = orjson.loads(raw)
        if meta["format"] != FORMAT or meta["id"] != str(blob_id):
            raise ValueError("unexpected format or id")
        if not PAYLOAD_NAME.fullmatch(meta["payload"]):
            raise ValueError("bad payload name")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BlobIntegrityError(f"blob {blob_id} has corrupt metadata: {exc}") from exc
    return meta


def info_of(meta: dict[str, Any], key: BlobKey | None) -> BlobInfo:
    """A sidecar's `BlobInfo`, its digest unsealed with the store's key.

    Args:
        meta: From `parse_meta`.
        key: The store's key.

    Returns:
        The info.

    Raises:
        ConfigError: The blob is encrypted and no key is configured.
        BlobIntegrityError: It was encrypted with another key.
    """
    blob_id = UUID(meta["id"])
    digest = str(meta["sha256"])
    if meta.get("encrypted"):
        if key is None:
            raise ConfigError(
                f"blob {blob_id} is encrypted (key id {meta.get('key_id')}); configure the blob key"
            )
        if meta.get("key_id") != key.key_id.hex():
            raise BlobIntegrityError(
                f"blob {blob_id} was encrypted with key id {meta.get('key_id')}, not with "
                f"the configured key (key id {key.key_id.hex()})"
            )
        digest = open_value(key, blob_id, digest).hex()
    return BlobInfo(
        id=blob_id,
        size=int(meta["size"]),
        created_at=datetime.fromisoformat(meta["created_at"]),
        sha256=digest,
    )


def verified(plain: Iterator[bytes], info: BlobInfo) -> Iterator[bytes]:
    """A payload's plaintext, checked against its recorded size and SHA-256 as it goes.

    Args:
        plain: The plaintext chunks.
        info: The blob's info.

    Yields:
        The chunks.

    Raises:
        BlobIntegrityError: Longer than recorded (at once), or not matching at the end.
    """
    digest = hashlib.sha256()
    size = 0
    for chunk in plain:
        size += len(chunk)
        if size > info.size:
            raise BlobIntegrityError(f"blob {info.id} is longer than its recorded size")
        digest.update(chunk)
        yield chunk
    if size != info.size or digest.hexdigest() != info.sha256:
        raise BlobIntegrityError(
            f"blob {info.id} does not match its recorded size and SHA-256 (altered or "
            "truncated); discard what was read"
        )
