"""Blob store on the local filesystem (the embedded default).

Layout: under ``root/<xx>/<yy>/``, ``<uuid>.json`` is a blob's sidecar and
``<uuid>.<random>.blob`` its payload, where ``xx``/``yy`` are the *last* two bytes of the
UUID in hex: reeldb ids are UUIDv7, whose leading bytes are a timestamp and would pile
every recent blob into one directory, while the trailing bytes are random in v4 and v7.

The sidecar is ``{"format": 1, "id", "payload", "size", "sha256", "created_at",
"encrypted", "key_id"}`` (size and SHA-256 of the plaintext; ``payload`` names the payload
file). A blob is visible exactly when its sidecar exists. ``put`` streams into
``.<uuid>.<random>.tmp`` and fsyncs it, writes and fsyncs the sidecar to another temp
file, renames the payload to its unique ``.blob`` name, then ``os.link``s the sidecar
temp to ``<uuid>.json`` (the commit point: a link never replaces, so of two racing puts
of one id exactly one wins, across processes too) and fsyncs the directory. A crash
leaves at most invisible temp files or an orphan ``.blob`` (never listed; cleaning them
up is left to garbage collection). ``delete`` removes the sidecar first, then the payload.
The store needs a filesystem with hard links (any POSIX local filesystem).

With a key the payload is the :mod:`reeldb.blobs.crypto` stream; otherwise the plaintext.
With a key, the sidecar's SHA-256 is sealed with the key (AES-GCM, bound to the blob id);
the sidecar still reveals the size. Tampering with it is caught on read, since ``open``
verifies size and SHA-256 after decrypting.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from reeldb.blobs._sidecar import info_of, make_meta, parse_meta, sealed, verified
from reeldb.blobs.base import BlobInfo, BlobIntegrityError, BlobStore
from reeldb.blobs.crypto import (
    DEFAULT_CHUNK_SIZE,
    TAG_SIZE,
    BlobKey,
    _check_chunk_size,
    decrypt_stream,
)
from reeldb.errors import (
    AlreadyExistsError,
    ConfigError,
    DatabaseClosedError,
    NotFoundError,
)

__all__ = ["FileBlobStore"]


class FileBlobStore(BlobStore):
    """Blobs as files under a root directory, optionally encrypted with AES-256-GCM.

    Args:
        root: The directory; created if missing.
        key: The encryption key (raw 32 bytes or a parsed :class:`BlobKey`); ``None`` stores
            plaintext.
        chunk_size: Plaintext bytes per encrypted chunk and per chunk yielded by ``open``.
        clock: Returns the current aware time (tests inject one).
        remove_on_close: Delete the whole directory on `close` (a temporary store).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        key: bytes | BlobKey | None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        clock: Callable[[], datetime] | None = None,
        remove_on_close: bool = False,
    ) -> None:
        _check_chunk_size(chunk_size)
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._key = BlobKey(key) if isinstance(key, bytes | bytearray) else key
        self._chunk_size = chunk_size
        self._clock = clock or (lambda: datetime.now(UTC))
        self._closed = False
        self._remove_on_close = remove_on_close

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self._root)!r}, key={self._key!r})"

    # -- paths -------------------------------------------------------------------------

    def _dir(self, blob_id: UUID) -> Path:
        tail = blob_id.hex
        return self._root / tail[30:32] / tail[28:30]

    def _meta_path(self, blob_id: UUID) -> Path:
        return self._dir(blob_id) / f"{blob_id}.json"

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"blob store at {self._root} is closed")

    # -- port ----------------------------------------------------------------------------

    def put(self, blob_id: UUID, chunks: Iterable[bytes]) -> BlobInfo:  # noqa: D102
        self._check_open()
        directory = self._dir(blob_id)
        meta_path = directory / f"{blob_id}.json"
        if meta_path.exists():
            raise AlreadyExistsError(f"blob {blob_id} already exists; blobs are immutable")
        directory.mkdir(parents=True, exist_ok=True)
        payload, tally = sealed(chunks, self._key, blob_id, self._chunk_size)
        data_tmp = self._write_temp(directory, blob_id, payload)
        # A payload name unique to this put: a racing put of the same id cannot overwrite it.
        data_path = directory / f"{blob_id}.{secrets.token_hex(8)}.blob"
        created_at = self._clock()
        info = BlobInfo(blob_id, tally.size, created_at, tally.digest.hexdigest())
        meta = make_meta(self._key, blob_id, data_path.name, info.size, info.sha256, created_at)
        meta_tmp: Path | None = None
        try:
            meta_tmp = self._write_temp(directory, blob_id, [orjson.dumps(meta)])
            data_tmp.replace(data_path)
            try:
                # The commit point: link() never replaces, so exactly one put of an id wins.
                os.link(meta_tmp, meta_path)
            except FileExistsError:
                data_path.unlink(missing_ok=True)
                raise AlreadyExistsError(
                    f"blob {blob_id} already exists; blobs are immutable"
                ) from None
        finally:
            data_tmp.unlink(missing_ok=True)
            if meta_tmp is not None:
                meta_tmp.unlink(missing_ok=True)
        _fsync_dir(directory)
        return info

    def _write_temp(self, directory: Path, blob_id: UUID, pieces: Iterable[bytes]) -> Path:
        tmp = directory / f".{blob_id}.{secrets.token_hex(4)}.tmp"
        try:
            with tmp.open("xb") as handle:
                for piece in pieces:
                    handle.write(piece)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _read_meta(self, blob_id: UUID) -> dict[str, Any]:
        meta_path = self._meta_path(blob_id)
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {blob_id} does not exist") from None
        return parse_meta(raw, blob_id)

    def _info(self, meta: dict[str, Any]) -> BlobInfo:
        return info_of(meta, self._key)

    def info(self, blob_id: UUID) -> BlobInfo:  # noqa: D102
        self._check_open()
        return self._info(self._read_meta(blob_id))

    def open(self, blob_id: UUID) -> Iterator[bytes]:  # noqa: D102
        self._check_open()
        meta = self._read_meta(blob_id)
        info = self._info(meta)
        if meta["encrypted"] and self._key is None:
            raise ConfigError(
                f"blob {blob_id} is encrypted (key id {meta['key_id']}); configure the blob key"
            )
        data_path = self._dir(blob_id) / meta["payload"]
        try:
            handle = data_path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {blob_id} was deleted") from None
        return self._stream(handle, blob_id, info)

    def _stream(self, handle: Any, blob_id: UUID, info: BlobInfo) -> Iterator[bytes]:
        with handle:
            step = self._chunk_size if self._key is None else self._chunk_size + TAG_SIZE
            raw: Iterator[bytes] = iter(lambda: handle.read(step), b"")
            # With a key configured every blob is decrypted, whatever the sidecar says, so
            # a plaintext file planted in the store cannot be served as if it were sealed.
            plain = raw if self._key is None else decrypt_stream(raw, self._key, blob_id)
            yield from verified(plain, info)

    def delete(self, blob_id: UUID) -> bool:  # noqa: D102
        self._check_open()
        try:
            payload = self._read_meta(blob_id)["payload"]
        except NotFoundError:
            return False
        except BlobIntegrityError:
            payload = None  # corrupt sidecar: still make the blob invisible
        meta_path = self._meta_path(blob_id)
        try:
            meta_path.unlink()  # invisible first, then the payload
        except FileNotFoundError:
            return False  # a concurrent delete won
        if payload is not None:
            (meta_path.parent / payload).unlink(missing_ok=True)
        _fsync_dir(meta_path.parent)
        return True

    def _list(self, created_before: datetime | None) -> Iterator[BlobInfo]:
        for meta_path in self._root.glob("*/*/*.json"):
            if meta_path.name.startswith("."):
                continue
            try:
                blob_id = UUID(meta_path.stem)
                info = self._info(self._read_meta(blob_id))
            except (ValueError, NotFoundError):
                continue  # not ours, or deleted while listing
            if created_before is None or info.created_at < created_before:
                yield info

    def close(self) -> None:  # noqa: D102
        self._closed = True
        if self._remove_on_close:
            shutil.rmtree(self._root, ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    # Makes the renames durable; not supported on every platform (e.g. Windows).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
