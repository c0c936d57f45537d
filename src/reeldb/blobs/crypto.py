"""Authenticated encryption at rest for blobs: chunked AES-256-GCM (issue 7, NMDB-22).

Stream format (all integers big-endian)::

    header  = magic "REELBLOB" (8) | version u8 (=1) | key id (8) | nonce prefix (8)
              | chunk size u32                                   -- 29 bytes
    record* = AES-GCM(plaintext chunk) | tag (16)

Every plaintext chunk holds exactly ``chunk size`` bytes except the last, which holds 0 to
``chunk size`` bytes; an empty payload is one empty last chunk, so there is always at least
one record. Chunk ``i`` is sealed with

* nonce = nonce prefix (8 random bytes per blob) | ``i`` as u32, unique per key for up to
  2**32 chunks per blob and 2**32 blobs before a random-prefix collision becomes likely
  (birthday bound on 64 bits; rotate keys well before that);
* associated data = header | blob id (16) | ``i`` u32 | last flag u8.

So a chunk cannot be moved to another position (index), to another blob (blob id), or
dropped from the end (the new last chunk was sealed with last = 0), and the header cannot
be edited (it is in every chunk's associated data). Any such change, a flipped bit or a
wrong key raises :class:`~reeldb.blobs.base.BlobIntegrityError`; decryption never yields
bytes from a chunk that failed authentication. Bytes yielded before a later chunk fails
are authentic but the stream as a whole is not: callers must treat the error as fatal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import os
import secrets
import struct
from collections.abc import Iterable, Iterator
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reeldb.blobs.base import BlobIntegrityError
from reeldb.errors import ConfigError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "TAG_SIZE",
    "BlobKey",
    "decrypt_stream",
    "encrypt_stream",
    "parse_key",
]

MAGIC = b"REELBLOB"
VERSION = 1
_HEADER = struct.Struct(">8sB8s8sI")
HEADER_SIZE = _HEADER.size
TAG_SIZE = 16
KEY_SIZE = 32
DEFAULT_CHUNK_SIZE = 1 << 20
#: Upper bound accepted from a header, so a forged header cannot make a reader buffer GBs.
MAX_CHUNK_SIZE = 64 << 20
_MAX_CHUNKS = 1 << 32


class BlobKey:
    """A 32-byte AES-256 key for blobs; its ``repr`` shows only the key id, never the key.

    Attributes:
        key_id: 8 bytes derived from the key (a truncated SHA-256), written in every blob
            header so a reader can tell "wrong key" from "tampered data".
    """

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) != KEY_SIZE:
            raise ConfigError(
                f"a blob key must be {KEY_SIZE} bytes (AES-256); "
                "generate one with `python -c 'import os, base64; "
                "print(base64.b64encode(os.urandom(32)).decode())'`"
            )
        self._secret = bytes(secret)
        self.key_id = hashlib.sha256(b"reeldb-blob-key-id\x00" + self._secret).digest()[:8]

    def aead(self) -> AESGCM:
        """Return an AES-GCM cipher for this key."""
        return AESGCM(self._secret)

    def __repr__(self) -> str:
        return f"BlobKey(key_id={self.key_id.hex()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlobKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would copy the secret somewhere we do not control.
        raise TypeError("BlobKey cannot be pickled")


def parse_key(text: str) -> BlobKey:
    """Parse a blob key from base64 (standard or URL-safe alphabet, padding optional).

    Args:
        text: The base64 text of exactly 32 bytes, as set in the configuration.

    Returns:
        The key.

    Raises:
        ConfigError: The text is not base64 or does not decode to 32 bytes. The message
            never contains the text itself.
    """
    cleaned = "".join(text.split())
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            "the blob key is not valid base64; set it to the base64 of 32 random bytes"
        ) from exc
    if len(raw) != KEY_SIZE:
        raise ConfigError(
            f"the blob key decodes to {len(raw)} bytes; AES-256 needs exactly {KEY_SIZE}"
        )
    return BlobKey(raw)


_SEALED_DATA = b"reeldb-blob-metadata\x00"


def seal_value(key: BlobKey, blob_id: UUID, value: bytes) -> str:
    """A small value (a digest) encrypted for one blob's metadata, as base64 text.

    Args:
        key: The key.
        blob_id: The blob the value belongs to (bound as associated data).
        value: The plaintext.

    Returns:
        base64 of a random 12-byte nonce and the AES-GCM ciphertext with its tag.
    """
    nonce = secrets.token_bytes(12)
    sealed = key.aead().encrypt(nonce, value, _SEALED_DATA + blob_id.bytes)
    return base64.b64encode(nonce + sealed).decode()


def open_value(key: BlobKey, blob_id: UUID, text: str) -> bytes:
    """The value `seal_value` sealed.

    Raises:
        BlobIntegrityError: Wrong key, another blob's value, or tampered text.
    """
    try:
        raw = base64.b64decode(text, validate=True)
        return key.aead().decrypt(raw[:12], raw[12:], _SEALED_DATA + blob_id.bytes)
    except (binascii.Error, ValueError, InvalidTag):
        raise BlobIntegrityError(
            f"blob {blob_id}: its metadata does not open with this key (wrong key or tampered)"
        ) from None


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ConfigError(f"blob chunk size must be 1..{MAX_CHUNK_SIZE} bytes, got {chunk_size}")


def _associated_data(header: bytes, blob_id: UUID, index: int, last: bool) -> bytes:
    return header + blob_id.bytes + struct.pack(">IB", index, 1 if last else 0)


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Yield pieces of exactly ``size`` bytes, then the (possibly empty) remainder."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    yield bytes(buffer)


def encrypt_stream(
    chunks: Iterable[bytes],
    key: BlobKey,
    blob_id: UUID,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Encrypt a plaintext stream lazily, yielding the header then one record per chunk.

    Memory is bounded by about two chunks whatever the payload size: one chunk is held
    back until the next one shows whether it is the last.

    Args:
        chunks: The plaintext, in pieces of any size; consumed lazily.
        key: The blob key.
        blob_id: The blob's id, bound into every chunk.
        chunk_size: Plaintext bytes per chunk.

    Returns:
        An iterator of ciphertext pieces.

    Raises:
        ConfigError: ``chunk_size`` is out of range.
    """
    _check_chunk_size(chunk_size)
    return _encrypt(chunks, key, blob_id, chunk_size)


def _encrypt(chunks: Iterable[bytes], key: BlobKey, blob_id: UUID, size: int) -> Iterator[bytes]:
    aead = key.aead()
    prefix = os.urandom(8)
    header = _HEADER.pack(MAGIC, VERSION, key.key_id, prefix, size)
    yield header
    pieces = _rechunk(chunks, size)
    pending = next(pieces)
    index = 0
    for piece in pieces:
        # ``pending`` is full-sized and something follows it, so it is not the last chunk.
        yield _seal(aead, header, prefix, blob_id, index, pending, last=False)
        pending = piece
        index += 1
    yield _seal(aead, header, prefix, blob_id, index, pending, last=True)


def _seal(
    aead: AESGCM, header: bytes, prefix: bytes, blob_id: UUID, index: int, data: bytes, last: bool
) -> bytes:
    if index >= _MAX_CHUNKS:
        raise ConfigError("blob too large for its chunk size (more than 2**32 chunks)")
    nonce = prefix + struct.pack(">I", index)
    return aead.encrypt(nonce, data, _associated_data(header, blob_id, index, last))


def decrypt_stream(chunks: Iterable[bytes], key: BlobKey, blob_id: UUID) -> Iterator[bytes]:
    """Decrypt and authenticate a stream written by :func:`encrypt_stream`, lazily.

    Args:
        chunks: The ciphertext, in pieces of any size.
        key: The blob key.
        blob_id: The id the blob was written under.

    Returns:
        An iterator of authenticated plaintext chunks.

    Raises:
        BlobIntegrityError: (while iterating) bad header, wrong key, altered, reordered,
            swapped or missing chunk, or truncated stream.
    """
    aead = key.aead()
    buffer = bytearray()
    source = iter(chunks)
    for chunk in source:
        buffer += chunk
        if len(buffer) >= HEADER_SIZE:
            break
    header = bytes(buffer[:HEADER_SIZE])
    del buffer[:HEADER_SIZE]
    prefix, size = _parse_header(header, key, blob_id)
    record = size + TAG_SIZE
    index = 0
    for chunk in itertools.chain([b""], source):
        buffer += chunk
        # Strictly more than one record buffered: the first one cannot be the last.
        while len(buffer) > record:
            yield _open(aead, header, prefix, blob_id, index, bytes(buffer[:record]), last=False)
            del buffer[:record]
            index += 1
    if len(buffer) < TAG_SIZE:
        raise BlobIntegrityError(f"blob {blob_id} is truncated (last chunk is incomplete)")
    yield _open(aead, header, prefix, blob_id, index, bytes(buffer), last=True)


def _parse_header(header: bytes, key: BlobKey, blob_id: UUID) -> tuple[bytes, int]:
    if len(header) < HEADER_SIZE:
        raise BlobIntegrityError(f"blob {blob_id} is truncated (no complete header)")
    magic, version, key_id, prefix, size = _HEADER.unpack(header)
    if magic != MAGIC:
        raise BlobIntegrityError(f"blob {blob_id} is not an encrypted reeldb blob (bad magic)")
    if version != VERSION:
        raise BlobIntegrityError(f"blob {blob_id} has unknown encryption format {version}")
    if not hmac.compare_digest(key_id, key.key_id):
        raise BlobIntegrityError(
            f"blob {blob_id} was encrypted with key id {key_id.hex()}, but the configured "
            f"key has id {key.key_id.hex()}; configure the key it was written with"
        )
    if not 1 <= size <= MAX_CHUNK_SIZE:
        raise BlobIntegrityError(f"blob {blob_id} has an invalid chunk size {size}")
    return prefix, size


def _open(
    aead: AESGCM, header: bytes, prefix: bytes, blob_id: UUID, index: int, data: bytes, last: bool
) -> bytes:
    if index >= _MAX_CHUNKS:
        raise BlobIntegrityError(f"blob {blob_id} has too many chunks")
    nonce = prefix + struct.pack(">I", index)
    try:
        return aead.decrypt(nonce, data, _associated_data(header, blob_id, index, last))
    except InvalidTag as exc:
        where = "last chunk" if last else f"chunk {index}"
        raise BlobIntegrityError(
            f"blob {blob_id} failed authentication at {where}: it was altered, truncated, "
            "reordered, copied from another blob, or encrypted with another key"
        ) from exc
