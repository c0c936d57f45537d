"""Contract suite for the BlobStore port: add an adapter by adding a parameter to ADAPTERS."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reeldb.blobs import (
    BlobInfo,
    BlobIntegrityError,
    BlobKey,
    BlobStore,
    FileBlobStore,
    S3BlobStore,
)
from reeldb.errors import (
    AlreadyExistsError,
    ConfigError,
    DatabaseClosedError,
    NotFoundError,
    ValidationError,
)

CHUNK = 16
KEY = BlobKey(os.urandom(32))
MARKER = b"PLAINTEXT-MARKER-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


MakeStore = Callable[..., BlobStore]


class AtRest(Protocol):
    """Raw access to what an adapter stored, by name (a file path or an object key)."""

    def names(self) -> list[str]: ...
    def read(self, name: str) -> bytes: ...
    def write(self, name: str, data: bytes) -> None: ...


@dataclass
class Backend:
    make: Callable[[BlobKey | None, Clock], BlobStore]
    at_rest: AtRest


@dataclass
class Files:
    root: Path

    def names(self) -> list[str]:
        return [str(p) for p in self.root.rglob("*") if p.is_file()]

    def read(self, name: str) -> bytes:
        return Path(name).read_bytes()

    def write(self, name: str, data: bytes) -> None:
        Path(name).write_bytes(data)


def _fs(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    def make(key: BlobKey | None, clock: Clock) -> BlobStore:
        return FileBlobStore(tmp_path / "blobs", key=key, chunk_size=CHUNK, clock=clock)

    return Backend(make, Files(tmp_path))


def _s3(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    bucket = request.getfixturevalue("s3_bucket")  # see conftest.py

    def make(key: BlobKey | None, clock: Clock) -> BlobStore:
        return S3BlobStore(
            bucket.name,
            "reel/blobs",
            key=key,
            chunk_size=CHUNK,
            clock=clock,
            endpoint_url=bucket.endpoint,
            region_name="us-east-1",
        )

    return Backend(make, bucket)


ADAPTERS = [pytest.param(_fs, id="fs"), pytest.param(_s3, id="s3")]


@pytest.fixture(params=ADAPTERS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return request.param(request, tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
def at_rest(backend: Backend) -> AtRest:
    return backend.at_rest


@pytest.fixture(params=[pytest.param(None, id="plain"), pytest.param(KEY, id="encrypted")])
def key(request: pytest.FixtureRequest) -> BlobKey | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(backend: Backend, clock: Clock) -> Iterator[MakeStore]:
    opened: list[BlobStore] = []

    def make(key: BlobKey | None) -> BlobStore:
        store = backend.make(key, clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: MakeStore, key: BlobKey | None) -> BlobStore:
    return make_store(key)


def read(store: BlobStore, blob_id: uuid.UUID) -> bytes:
    return b"".join(store.open(blob_id))


def everything_at_rest(at_rest: AtRest) -> bytes:
    return b"".join(at_rest.read(name) for name in at_rest.names())


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK, CHUNK + 1, 10 * CHUNK, 10 * CHUNK + 7], ids=lambda s: f"{s}B"
)
def test_round_trip(store: BlobStore, size: int) -> None:
    data = os.urandom(size)
    blob_id = uuid.uuid4()
    info = store.put(blob_id, [data[i : i + 5] for i in range(0, size, 5)])
    assert info.id == blob_id
    assert info.size == size
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.created_at.tzinfo is not None
    assert store.info(blob_id) == info
    assert read(store, blob_id) == data


def test_open_streams_in_bounded_chunks(store: BlobStore) -> None:
    blob_id = uuid.uuid4()
    store.put(blob_id, [os.urandom(CHUNK * 20)])
    pieces = list(store.open(blob_id))
    assert len(pieces) >= 10
    assert max(len(p) for p in pieces) <= CHUNK * 5


def test_put_consumes_lazily(store: BlobStore) -> None:
    consumed: list[int] = []
    seen_by_open: list[bool] = []
    blob_id = uuid.uuid4()

    def source() -> Iterator[bytes]:
        for i in range(50):
            consumed.append(i)
            if i == 25:
                # Halfway through, the store has pulled only what it needed so far ...
                assert len(consumed) == 26
                # ... and nothing is visible yet.
                with pytest.raises(NotFoundError):
                    store.info(blob_id)
                seen_by_open.append(any(b.id == blob_id for b in store.list()))
            yield bytes([i]) * CHUNK

    store.put(blob_id, source())
    assert consumed == list(range(50))
    assert seen_by_open == [False]
    assert read(store, blob_id) == b"".join(bytes([i]) * CHUNK for i in range(50))


def test_interrupted_put_leaves_nothing(store: BlobStore, at_rest: AtRest) -> None:
    blob_id = uuid.uuid4()

    def source() -> Iterator[bytes]:
        yield MARKER * 10
        yield MARKER * 10
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        store.put(blob_id, source())
    with pytest.raises(NotFoundError):
        store.info(blob_id)
    with pytest.raises(NotFoundError):
        store.open(blob_id)
    assert list(store.list()) == []
    assert at_rest.names() == []
    # The id is still free.
    store.put(blob_id, [b"second try"])
    assert read(store, blob_id) == b"second try"


def test_put_existing_id_is_refused(store: BlobStore) -> None:
    blob_id = uuid.uuid4()
    store.put(blob_id, [b"first"])
    with pytest.raises(AlreadyExistsError):
        store.put(blob_id, [b"second"])
    assert read(store, blob_id) == b"first"


def test_list_and_created_before(store: BlobStore) -> None:
    infos = [store.put(uuid.uuid4(), [bytes([i])]) for i in range(4)]
    assert sorted(b.id for b in store.list()) == sorted(b.id for b in infos)
    older = list(store.list(created_before=infos[2].created_at))
    assert sorted(b.id for b in older) == sorted(b.id for b in infos[:2])
    assert all(isinstance(b, BlobInfo) for b in older)
    assert list(store.list(created_before=infos[0].created_at)) == []
    with pytest.raises(ValidationError):
        store.list(created_before=datetime(2030, 1, 1))  # naive


def test_delete_is_idempotent(store: BlobStore) -> None:
    keep, gone = uuid.uuid4(), uuid.uuid4()
    store.put(keep, [b"keep"])
    store.put(gone, [b"gone"])
    assert store.delete(gone) is True
    assert store.delete(gone) is False
    assert store.delete(uuid.uuid4()) is False
    with pytest.raises(NotFoundError):
        store.info(gone)
    with pytest.raises(NotFoundError):
        store.open(gone)
    assert [b.id for b in store.list()] == [keep]
    assert read(store, keep) == b"keep"


def test_missing_blob(store: BlobStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError, match=str(missing)):
        store.info(missing)
    with pytest.raises(NotFoundError, match=str(missing)):
        store.open(missing)


def test_closed_store_refuses_use(store: BlobStore) -> None:
    blob_id = uuid.uuid4()
    store.put(blob_id, [b"x"])
    store.close()
    store.close()
    for call in (
        lambda: store.put(uuid.uuid4(), [b"x"]),
        lambda: store.open(blob_id),
        lambda: store.info(blob_id),
        lambda: store.delete(blob_id),
        lambda: store.list(),
    ):
        with pytest.raises(DatabaseClosedError):
            call()


def test_racing_puts_of_one_id_have_one_winner(
    make_store: MakeStore, key: BlobKey | None, at_rest: AtRest
) -> None:
    # Two stores (as two processes would) start a put of the same id; the second one to
    # commit loses, and the winner's bytes stay intact.
    first, second = make_store(key), make_store(key)
    blob_id = uuid.uuid4()
    winner_data = os.urandom(CHUNK * 3)

    def slow_loser() -> Iterator[bytes]:
        yield b"loser"
        first.put(blob_id, [winner_data])  # commits while the loser is mid-stream
        yield b"loser again"

    with pytest.raises(AlreadyExistsError):
        second.put(blob_id, slow_loser())
    assert read(first, blob_id) == winner_data
    assert read(second, blob_id) == winner_data
    assert len([n for n in at_rest.names() if n.endswith(".blob")]) == 1
    assert [n for n in at_rest.names() if n.endswith(".tmp")] == []


def test_blobs_survive_reopening(make_store: MakeStore, key: BlobKey | None) -> None:
    blob_id = uuid.uuid4()
    make_store(key).put(blob_id, [MARKER])
    assert read(make_store(key), blob_id) == MARKER


# -- encryption at rest -------------------------------------------------------------------


def test_encrypted_bytes_at_rest_hide_the_plaintext(make_store: MakeStore, at_rest: AtRest) -> None:
    store = make_store(KEY)
    info = store.put(blob_id := uuid.uuid4(), [MARKER * 20])
    contents = everything_at_rest(at_rest)
    assert MARKER not in contents
    assert MARKER[:CHUNK] not in contents
    # Nor its digest (which would confirm a guess of the content); the store still tells it.
    digest = hashlib.sha256(MARKER * 20).hexdigest()
    assert digest.encode() not in contents and bytes.fromhex(digest) not in contents
    assert info.sha256 == store.info(blob_id).sha256 == digest


def test_plain_bytes_at_rest_contain_the_plaintext(make_store: MakeStore, at_rest: AtRest) -> None:
    # Guards the test above: the marker search does find plaintext when there is some.
    make_store(None).put(uuid.uuid4(), [MARKER * 20])
    assert MARKER in everything_at_rest(at_rest)


def test_wrong_key_raises(make_store: MakeStore) -> None:
    blob_id = uuid.uuid4()
    make_store(KEY).put(blob_id, [MARKER])
    with pytest.raises(BlobIntegrityError, match="key id"):
        read(make_store(BlobKey(os.urandom(32))), blob_id)


def test_encrypted_blob_without_key_is_a_config_error(make_store: MakeStore) -> None:
    blob_id = uuid.uuid4()
    make_store(KEY).put(blob_id, [MARKER])
    with pytest.raises(ConfigError, match="encrypted"):
        make_store(None).open(blob_id)


def test_plaintext_blob_is_refused_when_a_key_is_configured(make_store: MakeStore) -> None:
    blob_id = uuid.uuid4()
    make_store(None).put(blob_id, [MARKER])
    with pytest.raises(BlobIntegrityError):
        read(make_store(KEY), blob_id)


def payload_name(at_rest: AtRest, blob_id: uuid.UUID) -> str:
    (found,) = [
        name
        for name in at_rest.names()
        if name.rpartition("/")[2].startswith(f"{blob_id}.") and name.endswith(".blob")
    ]
    return found


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_tampered_payload_raises(store: BlobStore, at_rest: AtRest, where: str) -> None:
    blob_id = uuid.uuid4()
    store.put(blob_id, [os.urandom(CHUNK * 6 + 3)])
    name = payload_name(at_rest, blob_id)
    data = bytearray(at_rest.read(name))
    index = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    data[index] ^= 0x80
    at_rest.write(name, bytes(data))
    with pytest.raises(BlobIntegrityError):
        read(store, blob_id)


@pytest.mark.parametrize("cut", [1, CHUNK, CHUNK + 16])
def test_truncated_payload_raises(store: BlobStore, at_rest: AtRest, cut: int) -> None:
    blob_id = uuid.uuid4()
    store.put(blob_id, [os.urandom(CHUNK * 6)])
    name = payload_name(at_rest, blob_id)
    at_rest.write(name, at_rest.read(name)[:-cut])
    with pytest.raises(BlobIntegrityError):
        read(store, blob_id)


def test_appended_payload_raises(store: BlobStore, at_rest: AtRest) -> None:
    blob_id = uuid.uuid4()
    store.put(blob_id, [os.urandom(CHUNK * 2)])
    name = payload_name(at_rest, blob_id)
    at_rest.write(name, at_rest.read(name) + b"extra")
    with pytest.raises(BlobIntegrityError):
        read(store, blob_id)


def test_encrypted_payload_swapped_between_blobs_raises(
    make_store: MakeStore, at_rest: AtRest
) -> None:
    store = make_store(KEY)
    a, b = uuid.uuid4(), uuid.uuid4()
    data = os.urandom(CHUNK * 3)
    store.put(a, [data])
    store.put(b, [data])  # same plaintext, so only the binding to the id can catch it
    at_rest.write(payload_name(at_rest, a), at_rest.read(payload_name(at_rest, b)))
    with pytest.raises(BlobIntegrityError, match="authentication"):
        read(store, a)


def test_encrypted_reordered_chunks_raise(make_store: MakeStore, at_rest: AtRest) -> None:
    from reeldb.blobs.crypto import HEADER_SIZE, TAG_SIZE

    store = make_store(KEY)
    blob_id = uuid.uuid4()
    store.put(blob_id, [os.urandom(CHUNK * 4)])
    name = payload_name(at_rest, blob_id)
    raw = at_rest.read(name)
    step = CHUNK + TAG_SIZE
    header, body = raw[:HEADER_SIZE], raw[HEADER_SIZE:]
    recs = [body[i : i + step] for i in range(0, len(body), step)]
    recs[1], recs[2] = recs[2], recs[1]
    at_rest.write(name, header + b"".join(recs))
    with pytest.raises(BlobIntegrityError):
        read(store, blob_id)


def test_store_repr_hides_the_key(make_store: MakeStore) -> None:
    raw = b"K" * 32
    store = make_store(BlobKey(raw))
    assert "KKKK" not in repr(store)
    assert raw.hex() not in repr(store)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=300),
    piece=st.integers(min_value=1, max_value=64),
    chunk_size=st.integers(min_value=1, max_value=48),
    encrypted=st.booleans(),
)
def test_round_trip_property(
    tmp_path: Path, data: bytes, piece: int, chunk_size: int, encrypted: bool
) -> None:
    root = tmp_path / uuid.uuid4().hex
    store = FileBlobStore(root, key=KEY if encrypted else None, chunk_size=chunk_size)
    blob_id = uuid.uuid4()
    info = store.put(blob_id, (data[i : i + piece] for i in range(0, len(data), piece)))
    assert info.size == len(data)
    assert b"".join(store.open(blob_id)) == data
    store.close()
