"""Blob store in an S3 bucket (AWS or any S3-compatible service).

Layout: under the store's prefix, ``meta/<uuid>.json`` is a blob's sidecar and
``data/<uuid>.<random>.blob`` its payload. The sidecar has the same content as the
filesystem adapter's (:mod:`reeldb.blobs.fs`): ``{"format": 1, "id", "payload", "size",
"sha256", "created_at", "encrypted", "key_id"}``, with the SHA-256 sealed by the key when
there is one. A sidecar object, not user metadata on the payload, because a multipart
upload fixes its metadata when it starts, before the size and digest are known.

A blob is visible exactly when its sidecar exists. ``put`` streams the payload to its
unique key: a single ``PutObject`` when it fits in one part, otherwise a multipart upload
of ``part_size`` parts (S3 wants at least 5 MiB but for the last), so memory stays around
one part whatever the blob size. Then it writes the sidecar with ``If-None-Match: *``, the
commit point: S3 creates an object conditionally and atomically, so of two racing puts of
one id exactly one sidecar is written; the loser gets ``AlreadyExistsError`` and deletes its
own payload. If ``chunks`` raises, the multipart upload is aborted (a payload sent in one
request is never sent). A crash, or an error while committing (the sidecar may have been
written), leaves at most an orphan payload or an open multipart upload, never a visible
partial blob; a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` cleans the latter.
If boto3 retries the commit after a lost answer, its condition fails on our own sidecar:
``put`` sees the sidecar names its payload and succeeds. ``delete`` removes the sidecar
first, conditionally on the ETag it read (``If-Match``), then the payload, so of concurrent
deletes one reports ``True``, and a delete never removes a newer put of the same id.

Errors from S3 become reeldb errors: an unreachable endpoint or a server error
:class:`~reeldb.errors.BackendUnavailableError`; a missing bucket, refused credentials or no
credentials :class:`~reeldb.errors.ConfigError`. Messages never hold credentials.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

import orjson
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

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
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    DatabaseClosedError,
    NotFoundError,
    ReelError,
)

__all__ = ["S3BlobStore"]

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MIN_PART_SIZE = 5 << 20
MAX_PART_SIZE = 5 << 30
DEFAULT_PART_SIZE = 8 << 20

_MISSING = {"NoSuchKey", "NotFound", "404"}
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict", "412"}
_REFUSED = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "Forbidden",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "403",
}


class S3BlobStore(BlobStore):
    """Blobs as objects in an S3 bucket, optionally encrypted with AES-256-GCM.

    Args:
        bucket: The bucket; it must exist.
        prefix: Key prefix of every object of the store (``"reel/"``); may be empty.
        key: The encryption key (raw 32 bytes or a parsed :class:`BlobKey`); ``None`` stores
            plaintext.
        chunk_size: Plaintext bytes per encrypted chunk and per chunk yielded by ``open``.
        part_size: Bytes per multipart upload part (5 MiB to 5 GiB); payloads up to this
            size are sent in one request.
        clock: Returns the current aware time (tests inject one).
        endpoint_url: An S3-compatible endpoint (``http://127.0.0.1:9000``); ``None`` is AWS.
        region_name: The region; ``None`` uses boto3's configuration.
        access_key_id: With ``secret_access_key``; ``None`` uses boto3's credential chain
            (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, then profiles and roles).
        secret_access_key: The secret key; never shown.
        client: A ready boto3 S3 client, used instead of building one (not closed by
            ``close``).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        key: bytes | BlobKey | None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
        clock: Callable[[], datetime] | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        client: Any = None,
    ) -> None:
        _check_chunk_size(chunk_size)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigError(
                f"S3 part size must be {MIN_PART_SIZE}..{MAX_PART_SIZE} bytes, got {part_size}"
            )
        if not _BUCKET_NAME.fullmatch(bucket):
            raise ConfigError(f"{bucket!r} is not a valid S3 bucket name")
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._key = BlobKey(key) if isinstance(key, bytes | bytearray) else key
        self._chunk_size = chunk_size
        self._part_size = part_size
        self._clock = clock or (lambda: datetime.now(UTC))
        self._endpoint = endpoint_url or "AWS S3"
        self._owns_client = client is None
        self._client = client or _make_client(
            endpoint_url, region_name, access_key_id, secret_access_key
        )
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key: bytes | BlobKey | None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
        clock: Callable[[], datetime] | None = None,
    ) -> S3BlobStore:
        """Open the store a URL names, with credentials from boto3's chain (env vars first).

        Args:
            url: ``s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1``;
                ``endpoint`` and ``region`` are optional.
            key: The encryption key, or ``None``.
            chunk_size: Plaintext bytes per encrypted chunk.
            part_size: Bytes per multipart upload part.
            clock: Returns the current aware time.

        Returns:
            The store.

        Raises:
            ConfigError: The URL is malformed, holds credentials or has unknown parameters.
        """
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise ConfigError(f"an S3 blob store URL starts with s3://, not {parts.scheme}://")
        if "@" in parts.netloc:
            raise ConfigError(
                "an S3 blob store URL must not hold credentials; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY instead"
            )
        if not parts.netloc:
            raise ConfigError("the S3 blob store URL names no bucket (s3://bucket/prefix)")
        try:
            params = dict(parse_qsl(parts.query, strict_parsing=bool(parts.query)))
        except ValueError:
            raise ConfigError("the S3 blob store URL has a malformed query string") from None
        unknown = sorted(set(params) - {"endpoint", "region"})
        if unknown:
            raise ConfigError(
                f"unknown S3 blob store URL parameter(s) {', '.join(map(repr, unknown))}; "
                "expected endpoint and region"
            )
        endpoint = params.get("endpoint") or None
        if endpoint is not None:
            ends = urlsplit(endpoint)
            if ends.scheme not in ("http", "https") or not ends.hostname or "@" in ends.netloc:
                raise ConfigError(
                    "the S3 endpoint must be an http:// or https:// URL without credentials"
                )
        return cls(
            parts.netloc,
            parts.path,
            key=key,
            chunk_size=chunk_size,
            part_size=part_size,
            clock=clock,
            endpoint_url=endpoint,
            region_name=params.get("region") or None,
        )

    def __repr__(self) -> str:
        return (
            f"S3BlobStore({self._bucket!r}, prefix={self._prefix!r}, "
            f"endpoint={self._endpoint!r}, key={self._key!r})"
        )

    # -- keys and calls ------------------------------------------------------------------

    def _meta_key(self, blob_id: UUID) -> str:
        return f"{self._prefix}meta/{blob_id}.json"

    def _data_key(self, name: str) -> str:
        return f"{self._prefix}data/{name}"

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"blob store s3://{self._bucket}/{self._prefix} is closed")

    def _call(self, operation: str, **params: Any) -> Any:
        """Run one S3 operation on the bucket, raising reeldb errors only.

        Raises:
            NotFoundError: The object does not exist.
            ConflictError: A condition (``If-None-Match``, ``If-Match``) failed.
            ConfigError: No such bucket, no or refused credentials.
            BackendUnavailableError: Unreachable endpoint, server error, anything else.
        """
        where = f"S3 bucket {self._bucket!r} at {self._endpoint}"
        try:
            return getattr(self._client, operation)(Bucket=self._bucket, **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or str(
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
            )
            if code in _MISSING:
                raise NotFoundError(f"{params.get('Key')} does not exist in {where}") from None
            if code in _PRECONDITION:
                raise ConflictError(f"a condition on {params.get('Key')} failed") from None
            if code == "NoSuchBucket":
                raise ConfigError(f"{where} does not exist") from None
            if code in _REFUSED:
                raise ConfigError(
                    f"{where} refused access ({code}); check the credentials and bucket policy"
                ) from None
            raise BackendUnavailableError(f"{where}: {operation} failed ({code})") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise ConfigError(
                f"no AWS credentials for {where}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        except BotoCoreError as exc:
            raise BackendUnavailableError(
                f"{where} is unreachable ({type(exc).__name__}); retry later"
            ) from None

    # -- port ----------------------------------------------------------------------------

    def put(self, blob_id: UUID, chunks: Iterable[bytes]) -> BlobInfo:  # noqa: D102
        self._check_open()
        meta_key = self._meta_key(blob_id)
        try:
            self._call("head_object", Key=meta_key)
        except NotFoundError:
            pass  # checked again when committing; this saves uploading a doomed payload
        else:
            raise AlreadyExistsError(f"blob {blob_id} already exists; blobs are immutable")
        payload, tally = sealed(chunks, self._key, blob_id, self._chunk_size)
        # A payload key unique to this put: a racing put of the same id cannot overwrite it.
        name = f"{blob_id}.{secrets.token_hex(8)}.blob"
        self._upload(self._data_key(name), payload)
        created_at = self._clock()
        info = BlobInfo(blob_id, tally.size, created_at, tally.digest.hexdigest())
        meta = make_meta(self._key, blob_id, name, info.size, info.sha256, created_at)
        try:
            # The commit point: a conditional create, so exactly one put of an id wins.
            self._call(
                "put_object",
                Key=meta_key,
                Body=orjson.dumps(meta),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ConflictError:
            if self._payload_of(blob_id) == name:
                return info  # our own write, retried by boto3 after its answer was lost
            with contextlib.suppress(ReelError):
                self._call("delete_object", Key=self._data_key(name))
            raise AlreadyExistsError(
                f"blob {blob_id} already exists; blobs are immutable"
            ) from None
        # Any other error leaves the payload alone: the commit may have happened.
        return info

    def _payload_of(self, blob_id: UUID) -> str | None:
        try:
            return str(self._read_meta(blob_id)[0]["payload"])
        except (NotFoundError, BlobIntegrityError):
            return None

    def _upload(self, data_key: str, payload: Iterable[bytes]) -> None:
        """Send a payload in one request, or as a multipart upload aborted on any error."""
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        def send_part(body: bytes) -> None:
            number = len(parts) + 1
            answer = self._call(
                "upload_part", Key=data_key, UploadId=upload_id, PartNumber=number, Body=body
            )
            parts.append({"ETag": answer["ETag"], "PartNumber": number})

        try:
            for piece in payload:
                buffer += piece
                # Strictly more than a part buffered: the part sent is not the last one.
                while len(buffer) > self._part_size:
                    if upload_id is None:
                        upload_id = self._call("create_multipart_upload", Key=data_key)["UploadId"]
                    send_part(bytes(buffer[: self._part_size]))
                    del buffer[: self._part_size]
            if upload_id is None:
                self._call("put_object", Key=data_key, Body=bytes(buffer))
                return
            send_part(bytes(buffer))
            self._call(
                "complete_multipart_upload",
                Key=data_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(ReelError):
                    self._call("abort_multipart_upload", Key=data_key, UploadId=upload_id)
            raise

    def _read_meta(self, blob_id: UUID) -> tuple[dict[str, Any], str]:
        """The sidecar and its ETag."""
        try:
            answer = self._call("get_object", Key=self._meta_key(blob_id))
            with contextlib.closing(answer["Body"]) as body:
                raw = body.read()
        except NotFoundError:
            raise NotFoundError(f"blob {blob_id} does not exist") from None
        except BotoCoreError as exc:  # the body broke off
            raise BackendUnavailableError(
                f"S3 bucket {self._bucket!r}: reading blob {blob_id} failed ({type(exc).__name__})"
            ) from None
        meta = parse_meta(raw, blob_id)
        return meta, str(answer.get("ETag", ""))

    def _info(self, meta: dict[str, Any]) -> BlobInfo:
        return info_of(meta, self._key)

    def info(self, blob_id: UUID) -> BlobInfo:  # noqa: D102
        self._check_open()
        return self._info(self._read_meta(blob_id)[0])

    def open(self, blob_id: UUID) -> Iterator[bytes]:  # noqa: D102
        self._check_open()
        meta, _ = self._read_meta(blob_id)
        info = self._info(meta)
        try:
            answer = self._call("get_object", Key=self._data_key(meta["payload"]))
        except NotFoundError:
            raise NotFoundError(f"blob {blob_id} was deleted") from None
        return self._stream(answer["Body"], blob_id, info)

    def _stream(self, body: Any, blob_id: UUID, info: BlobInfo) -> Iterator[bytes]:
        with contextlib.closing(body):
            step = self._chunk_size if self._key is None else self._chunk_size + TAG_SIZE
            raw = self._read_body(body, blob_id, step)
            # With a key configured every blob is decrypted, whatever the sidecar says, so
            # a plaintext object planted in the bucket cannot be served as if it were sealed.
            plain = raw if self._key is None else decrypt_stream(raw, self._key, blob_id)
            yield from verified(plain, info)

    def _read_body(self, body: Any, blob_id: UUID, step: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(step)
        except BotoCoreError as exc:
            raise BackendUnavailableError(
                f"S3 bucket {self._bucket!r}: reading blob {blob_id} broke off "
                f"({type(exc).__name__}); discard what was read"
            ) from None

    def delete(self, blob_id: UUID) -> bool:  # noqa: D102
        self._check_open()
        payload: str | None
        try:
            meta, etag = self._read_meta(blob_id)
            payload = meta["payload"]
        except NotFoundError:
            return False
        except BlobIntegrityError:
            payload, etag = None, ""  # corrupt sidecar: still make the blob invisible
        try:
            # Invisible first, then the payload; If-Match: a concurrent delete (or a new
            # put of the id since) keeps its sidecar and we report no deletion.
            self._call("delete_object", Key=self._meta_key(blob_id), **_if_match(etag))
        except (NotFoundError, ConflictError):
            return False
        if payload is not None:
            self._call("delete_object", Key=self._data_key(payload))
        return True

    def _list(self, created_before: datetime | None) -> Iterator[BlobInfo]:
        prefix = f"{self._prefix}meta/"
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=prefix, **token)
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                try:
                    blob_id = UUID(name.removesuffix(".json"))
                    if name != f"{blob_id}.json":
                        continue  # not ours
                    info = self._info(self._read_meta(blob_id)[0])
                except (ValueError, NotFoundError):
                    continue  # not ours, or deleted while listing
                if created_before is None or info.created_at < created_before:
                    yield info
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def close(self) -> None:  # noqa: D102
        if not self._closed and self._owns_client:
            self._client.close()
        self._closed = True


def _if_match(etag: str) -> dict[str, str]:
    return {"IfMatch": etag} if etag else {}


def _make_client(
    endpoint_url: str | None,
    region_name: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> Any:
    import boto3  # type: ignore[import-untyped]  # a slow import
    from botocore.config import Config  # type: ignore[import-untyped]

    if (access_key_id is None) != (secret_access_key is None):
        raise ConfigError("give both an S3 access key id and a secret access key, or neither")
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        # Path-style addressing for custom endpoints: most S3-compatible servers need it.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    session = boto3.session.Session()  # a session per store: sessions are not thread-safe
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )
