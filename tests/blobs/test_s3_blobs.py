"""What only the S3 adapter does: multipart uploads, URLs, S3 errors (the contract suite
in test_blob_store.py covers the rest)."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reeldb.blobs import BlobKey, S3BlobStore
from reeldb.blobs.s3 import MIN_PART_SIZE
from reeldb.errors import AlreadyExistsError, BackendUnavailableError, ConfigError

MiB = 1 << 20
KEY = BlobKey(os.urandom(32))


class Spy:
    """Wraps a boto3 client: records each operation, optionally replaces some."""

    def __init__(self, client: Any, **overrides: Callable[..., Any]) -> None:
        self.client = client
        self.overrides = overrides
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = self.overrides.get(name) or getattr(self.client, name)

        def call(**params: Any) -> Any:
            self.calls.append(name)
            return method(**params)

        return call


def make(bucket: Any, key: BlobKey | None = None, **options: Any) -> S3BlobStore:
    options.setdefault("endpoint_url", bucket.endpoint)
    return S3BlobStore(bucket.name, "blobs", key=key, region_name="us-east-1", **options)


def client_error(code: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": "boom"}, "ResponseMetadata": {}}
    response["ResponseMetadata"]["HTTPStatusCode"] = status
    return ClientError(response, "Operation")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_large_payload_goes_up_in_parts_and_lazily(s3_bucket: Any, key: BlobKey | None) -> None:
    spy = Spy(s3_bucket.client)
    store = make(s3_bucket, key, part_size=MIN_PART_SIZE, client=spy)
    pieces = [os.urandom(MiB) for _ in range(11)]
    consumed_at_first_part: list[int] = []
    consumed = 0

    def source() -> Iterator[bytes]:
        nonlocal consumed
        for piece in pieces:
            if "upload_part" in spy.calls and not consumed_at_first_part:
                consumed_at_first_part.append(consumed)
            consumed += len(piece)
            yield piece

    blob_id = uuid.uuid4()
    info = store.put(blob_id, source())
    data = b"".join(pieces)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert spy.calls.count("create_multipart_upload") == 1
    assert spy.calls.count("upload_part") == 3  # 5 + 5 + 1 MiB (and the encryption overhead)
    assert spy.calls.count("complete_multipart_upload") == 1
    # The first part left before the payload was read to its end.
    assert consumed_at_first_part and consumed_at_first_part[0] <= MIN_PART_SIZE + 2 * MiB
    assert b"".join(store.open(blob_id)) == data
    assert s3_bucket.uploads() == []


def test_small_payload_goes_up_in_one_request(s3_bucket: Any) -> None:
    spy = Spy(s3_bucket.client)
    store = make(s3_bucket, client=spy)
    store.put(uuid.uuid4(), [b"small"])
    assert "create_multipart_upload" not in spy.calls
    assert spy.calls.count("put_object") == 2  # the payload, then the sidecar


def test_interrupted_multipart_upload_is_aborted(s3_bucket: Any) -> None:
    store = make(s3_bucket, KEY, part_size=MIN_PART_SIZE)
    blob_id = uuid.uuid4()

    def source() -> Iterator[bytes]:
        for _ in range(7):
            yield os.urandom(MiB)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        store.put(blob_id, source())
    assert s3_bucket.uploads() == []
    assert s3_bucket.names() == []
    assert list(store.list()) == []


def test_racing_put_with_a_large_payload_leaves_one_payload(s3_bucket: Any) -> None:
    first, second = make(s3_bucket, part_size=MIN_PART_SIZE), make(s3_bucket)
    blob_id = uuid.uuid4()

    def loser() -> Iterator[bytes]:
        yield os.urandom(6 * MiB)
        first.put(blob_id, [b"winner"])
        yield b"tail"

    with pytest.raises(AlreadyExistsError):
        second.put(blob_id, loser())
    assert b"".join(second.open(blob_id)) == b"winner"
    assert len([n for n in s3_bucket.names() if n.endswith(".blob")]) == 1
    assert s3_bucket.uploads() == []


def test_a_commit_retried_after_a_lost_answer_succeeds(s3_bucket: Any) -> None:
    # boto3 retried the sidecar's conditional write after the first answer was lost: the
    # retry fails its condition although the write was ours.
    def put_then_fail(**params: Any) -> Any:
        answer = s3_bucket.client.put_object(**params)
        if params["Key"].endswith(".json"):
            raise client_error("PreconditionFailed", 412)
        return answer

    store = make(s3_bucket, client=Spy(s3_bucket.client, put_object=put_then_fail))
    blob_id = uuid.uuid4()
    store.put(blob_id, [b"mine"])
    assert b"".join(store.open(blob_id)) == b"mine"


def test_a_delete_racing_a_new_put_of_the_id_keeps_the_new_blob(s3_bucket: Any) -> None:
    blob_id = uuid.uuid4()
    other = make(s3_bucket)
    other.put(blob_id, [b"old"])

    def delete_after_a_race(**params: Any) -> Any:
        if params["Key"].endswith(".json") and not raced:
            raced.append(True)  # between our read and our delete, another GC and a new put:
            other.delete(blob_id)
            other.put(blob_id, [b"new"])
        return s3_bucket.client.delete_object(**params)

    raced: list[bool] = []
    store = make(s3_bucket, client=Spy(s3_bucket.client, delete_object=delete_after_a_race))
    assert store.delete(blob_id) is False  # the sidecar it read is gone: not its deletion
    assert b"".join(store.open(blob_id)) == b"new"


def test_prefixes_keep_stores_apart(s3_bucket: Any) -> None:
    one = make(s3_bucket)
    other = S3BlobStore(s3_bucket.name, "other/", key=None, endpoint_url=s3_bucket.endpoint)
    blob_id = uuid.uuid4()
    one.put(blob_id, [b"x"])
    assert list(other.list()) == []
    assert other.delete(blob_id) is False
    assert [b.id for b in one.list()] == [blob_id]
    assert all(n.startswith("blobs/") for n in s3_bucket.names())


def test_list_follows_pages(s3_bucket: Any) -> None:
    def small_pages(**params: Any) -> Any:
        return s3_bucket.client.list_objects_v2(MaxKeys=2, **params)

    spy = Spy(s3_bucket.client, list_objects_v2=small_pages)
    store = make(s3_bucket, client=spy)
    ids = {store.put(uuid.uuid4(), [bytes([i])]).id for i in range(5)}
    assert {b.id for b in store.list()} == ids
    assert spy.calls.count("list_objects_v2") == 3


# -- URLs ---------------------------------------------------------------------------------


def test_from_url(s3_bucket: Any) -> None:
    url = f"s3://{s3_bucket.name}/some/prefix/?endpoint={s3_bucket.endpoint}&region=eu-west-1"
    store = S3BlobStore.from_url(url, key=KEY)
    assert repr(store) == (
        f"S3BlobStore({s3_bucket.name!r}, prefix='some/prefix/', "
        f"endpoint={s3_bucket.endpoint!r}, key={KEY!r})"
    )
    blob_id = uuid.uuid4()
    store.put(blob_id, [b"via url"])  # credentials from the environment
    assert b"".join(store.open(blob_id)) == b"via url"
    assert any(n.startswith("some/prefix/meta/") for n in s3_bucket.names())
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://bucket/x", "starts with s3://"),
        ("s3:///prefix", "names no bucket"),
        ("s3://AKIDSECRET:topsecret@bucket/x", "must not hold credentials"),
        ("s3://bucket?endpoint=http://h:1&colour=red", "unknown S3 blob store URL parameter"),
        ("s3://bucket?endpoint", "malformed query"),
        ("s3://bucket?endpoint=ftp://host", "http:// or https://"),
        ("s3://bucket?endpoint=http://user:pw@host", "without credentials"),
        ("s3://Not_A_Bucket/x", "not a valid S3 bucket name"),
        ("s3://ab", "not a valid S3 bucket name"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        S3BlobStore.from_url(url, key=None)
    assert "secret" not in str(caught.value) and "pw" not in str(caught.value)


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="part size"):
        S3BlobStore("bucket", key=None, part_size=MIN_PART_SIZE - 1, client=object())
    with pytest.raises(ConfigError, match="both"):
        S3BlobStore("bucket", key=None, access_key_id="id-only")


# -- errors -------------------------------------------------------------------------------


def test_unreachable_endpoint_is_a_clear_error() -> None:
    store = S3BlobStore(
        "bucket",
        key=None,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="AKIDSECRETID",
        secret_access_key="very-secret-key",
    )
    for call in (lambda: store.info(uuid.uuid4()), lambda: store.put(uuid.uuid4(), [b"x"])):
        with pytest.raises(BackendUnavailableError, match="unreachable") as caught:
            call()
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert "AKIDSECRETID" not in str(caught.value)
        assert "very-secret-key" not in str(caught.value)


def test_missing_bucket_is_a_config_error(s3_endpoint: str) -> None:
    store = S3BlobStore("no-such-bucket-here", key=None, endpoint_url=s3_endpoint)
    with pytest.raises(ConfigError, match="'no-such-bucket-here'.* does not exist"):
        store.put(uuid.uuid4(), [b"x"])
    with pytest.raises(ConfigError, match="does not exist"):
        store.info(uuid.uuid4())


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        ("AccessDenied", ConfigError, "refused access"),
        ("InvalidAccessKeyId", ConfigError, "check the credentials"),
        ("SlowDown", BackendUnavailableError, "get_object failed"),
        ("InternalError", BackendUnavailableError, "InternalError"),
    ],
)
def test_s3_errors_become_reel_errors(code: str, error: type[Exception], message: str) -> None:
    def fail(**params: Any) -> Any:
        raise client_error(code)

    store = S3BlobStore("bucket", key=None, client=Spy(None, get_object=fail))
    with pytest.raises(error, match=message):
        store.info(uuid.uuid4())


def test_repr_hides_the_secrets() -> None:
    store = S3BlobStore(
        "bucket",
        "p",
        key=BlobKey(b"K" * 32),
        endpoint_url="http://127.0.0.1:9",
        access_key_id="AKIDSECRETID",
        secret_access_key="very-secret-key",
    )
    text = repr(store)
    assert "AKIDSECRETID" not in text and "very-secret-key" not in text
    assert "KKKK" not in text and (b"K" * 32).hex() not in text
    assert text.startswith("S3BlobStore('bucket', prefix='p/'")
    store.close()
