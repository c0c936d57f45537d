"""The blob store port: large payloads stored under a UUID, streamed in and out (issue 7)."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from uuid import UUID

from reeldb.errors import ReelError, ValidationError

__all__ = ["BlobInfo", "BlobIntegrityError", "BlobStore"]


class BlobIntegrityError(ReelError):
    """A stored blob failed verification: altered, truncated, reordered or wrong key.

    Never retried and never papered over: the bytes read so far must be discarded.
    """


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What is known about a stored blob without reading it.

    Attributes:
        id: The blob id.
        size: Size of the plaintext in bytes (not of the possibly encrypted bytes at rest).
        created_at: When the blob became visible (timezone-aware, UTC).
        sha256: Hex SHA-256 of the plaintext.
    """

    id: UUID
    size: int
    created_at: datetime
    sha256: str


class BlobStore(abc.ABC):
    """Stores immutable blobs by UUID. Implementations must be safe to use from threads.

    Every adapter encrypts at rest when given a key (see :mod:`reeldb.blobs.crypto`) and
    verifies size and SHA-256 when a blob is read back.
    """

    @abc.abstractmethod
    def put(self, blob_id: UUID, chunks: Iterable[bytes]) -> BlobInfo:
        """Store a blob from a stream of chunks, atomically.

        The chunks are consumed lazily and never all held in memory. Readers see either
        no blob or the whole blob; if ``chunks`` raises, or the process dies, nothing
        becomes visible.

        Args:
            blob_id: The new blob's id.
            chunks: The payload, in pieces of any size.

        Returns:
            The stored blob's info.

        Raises:
            AlreadyExistsError: A blob with this id exists (blobs are immutable).
            DatabaseClosedError: The store was closed.
        """

    @abc.abstractmethod
    def open(self, blob_id: UUID) -> Iterator[bytes]:
        """Stream a blob's plaintext.

        Args:
            blob_id: The blob id.

        Returns:
            An iterator of plaintext chunks. Existence is checked before it is returned.

        Raises:
            NotFoundError: No such blob.
            ConfigError: The blob is encrypted and no key is configured.
            BlobIntegrityError: (while iterating) the blob fails authentication or its size
                or SHA-256 differs from its info. Discard what was read.
            DatabaseClosedError: The store was closed.
        """

    @abc.abstractmethod
    def info(self, blob_id: UUID) -> BlobInfo:
        """Return a blob's info without reading its payload.

        Args:
            blob_id: The blob id.

        Returns:
            Its size, creation time and SHA-256.

        Raises:
            NotFoundError: No such blob.
            DatabaseClosedError: The store was closed.
        """

    @abc.abstractmethod
    def delete(self, blob_id: UUID) -> bool:
        """Delete a blob; idempotent, so concurrent garbage collectors do not trip.

        Args:
            blob_id: The blob id.

        Returns:
            ``True`` if a blob was deleted, ``False`` if there was none.

        Raises:
            DatabaseClosedError: The store was closed.
        """

    def list(self, created_before: datetime | None = None) -> Iterator[BlobInfo]:
        """List visible blobs, in no particular order (for garbage collection).

        Args:
            created_before: Only blobs created strictly before this aware datetime.

        Returns:
            An iterator of blob infos; never includes partial or in-flight uploads.

        Raises:
            ValidationError: ``created_before`` is a naive datetime.
            DatabaseClosedError: The store was closed.
        """
        self._check_open()
        if created_before is not None and created_before.utcoffset() is None:
            raise ValidationError("created_before must be a timezone-aware datetime")
        return self._list(created_before)

    @abc.abstractmethod
    def _check_open(self) -> None:
        """Raise `DatabaseClosedError` if the store was closed."""

    @abc.abstractmethod
    def _list(self, created_before: datetime | None) -> Iterator[BlobInfo]:
        """`list`, its argument checked."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources; later calls raise ``DatabaseClosedError``. Idempotent."""

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
