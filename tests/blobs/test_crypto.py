from __future__ import annotations

import base64
import os
import pickle
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reeldb.blobs import BlobIntegrityError, BlobKey, parse_key
from reeldb.blobs.crypto import HEADER_SIZE, TAG_SIZE, decrypt_stream, encrypt_stream
from reeldb.errors import ConfigError, ReelError

KEY = BlobKey(bytes(range(32)))
OTHER = BlobKey(bytes(range(1, 33)))
BLOB = uuid.UUID("0190f3c2-0000-7000-8000-000000000001")
SIZE = 8


def seal(data: bytes, blob_id: uuid.UUID = BLOB, key: BlobKey = KEY) -> bytes:
    return b"".join(encrypt_stream([data], key, blob_id, chunk_size=SIZE))


def unseal(data: bytes, blob_id: uuid.UUID = BLOB, key: BlobKey = KEY) -> bytes:
    return b"".join(decrypt_stream([data], key, blob_id))


def records(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER_SIZE:]
    step = SIZE + TAG_SIZE
    return sealed[:HEADER_SIZE], [body[i : i + step] for i in range(0, len(body), step)]


@pytest.mark.parametrize("size", [0, 1, SIZE - 1, SIZE, SIZE + 1, 3 * SIZE, 5 * SIZE + 3])
def test_round_trip(size: int) -> None:
    data = os.urandom(size)
    sealed = seal(data)
    assert unseal(sealed) == data
    expected_records = size // SIZE + 1
    assert len(sealed) == HEADER_SIZE + size + TAG_SIZE * expected_records
    assert len(records(sealed)[1]) == expected_records


def test_decrypt_accepts_any_piece_sizes() -> None:
    data = os.urandom(50)
    sealed = seal(data)
    pieces = [sealed[i : i + 3] for i in range(0, len(sealed), 3)]
    assert b"".join(decrypt_stream(pieces, KEY, BLOB)) == data


def test_nonces_differ_between_blobs_of_same_content() -> None:
    assert seal(b"same") != seal(b"same")


def test_encrypt_is_lazy() -> None:
    consumed = []

    def source():
        for i in range(10):
            consumed.append(i)
            yield bytes([i]) * SIZE

    stream = encrypt_stream(source(), KEY, BLOB, chunk_size=SIZE)
    next(stream)  # header
    next(stream)  # first record needs the second chunk to know it is not last
    assert len(consumed) <= 3


def test_wrong_key_raises() -> None:
    with pytest.raises(BlobIntegrityError, match="key id"):
        unseal(seal(b"secret payload"), key=OTHER)


def test_forged_key_id_still_fails_authentication() -> None:
    sealed = bytearray(seal(b"secret payload", key=OTHER))
    sealed[9:17] = KEY.key_id
    with pytest.raises(BlobIntegrityError, match="authentication"):
        unseal(bytes(sealed))


@pytest.mark.parametrize("position", [0, 5, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 20, -1])
def test_flipped_bit_raises(position: int) -> None:
    sealed = bytearray(seal(os.urandom(30)))
    sealed[position] ^= 0x01
    with pytest.raises(BlobIntegrityError):
        unseal(bytes(sealed))


def test_reordered_chunks_raise() -> None:
    header, recs = records(seal(os.urandom(4 * SIZE)))
    recs[0], recs[1] = recs[1], recs[0]
    with pytest.raises(BlobIntegrityError):
        unseal(header + b"".join(recs))


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_truncation_at_chunk_boundary_raises(keep: int) -> None:
    header, recs = records(seal(os.urandom(3 * SIZE)))
    with pytest.raises(BlobIntegrityError):
        unseal(header + b"".join(recs[:keep]))


@pytest.mark.parametrize("cut", [1, TAG_SIZE - 1, TAG_SIZE + 1])
def test_truncation_inside_a_chunk_raises(cut: int) -> None:
    sealed = seal(os.urandom(3 * SIZE + 2))
    with pytest.raises(BlobIntegrityError):
        unseal(sealed[:-cut])


def test_truncated_header_raises() -> None:
    with pytest.raises(BlobIntegrityError, match="header"):
        unseal(seal(b"x")[: HEADER_SIZE - 1])
    with pytest.raises(BlobIntegrityError, match="header"):
        unseal(b"")


def test_dropping_a_middle_chunk_raises() -> None:
    header, recs = records(seal(os.urandom(4 * SIZE)))
    with pytest.raises(BlobIntegrityError):
        unseal(header + recs[0] + b"".join(recs[2:]))


def test_appended_chunk_raises() -> None:
    header, recs = records(seal(os.urandom(2 * SIZE)))
    with pytest.raises(BlobIntegrityError):
        unseal(header + b"".join(recs) + recs[0])


def test_chunk_swapped_from_another_blob_raises() -> None:
    other_id = uuid.uuid4()
    data = os.urandom(3 * SIZE)
    header_a, recs_a = records(seal(data))
    _, recs_b = records(seal(data, blob_id=other_id))
    with pytest.raises(BlobIntegrityError):
        unseal(header_a + recs_a[0] + recs_b[1] + b"".join(recs_a[2:]))


def test_whole_blob_under_another_id_raises() -> None:
    with pytest.raises(BlobIntegrityError):
        unseal(seal(b"payload"), blob_id=uuid.uuid4())


def test_edited_chunk_size_in_header_raises() -> None:
    sealed = bytearray(seal(os.urandom(3 * SIZE)))
    sealed[HEADER_SIZE - 4 : HEADER_SIZE] = struct.pack(">I", 2 * SIZE)
    with pytest.raises(BlobIntegrityError):
        unseal(bytes(sealed))


def test_integrity_error_is_a_reel_error() -> None:
    assert issubclass(BlobIntegrityError, ReelError)


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_parse_key_accepts_both_alphabets_with_or_without_padding(encode) -> None:
    raw = bytes([0xFB, 0xFF] * 16)  # encodes with + and / (or - and _)
    text = encode(raw).decode()
    assert parse_key(text) == BlobKey(raw)
    assert parse_key(text.rstrip("=") + "\n") == BlobKey(raw)


@pytest.mark.parametrize(
    "text", ["", "not base64!!", base64.b64encode(b"short").decode(), "A" * 60]
)
def test_parse_key_rejects_bad_text_without_echoing_it(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_key(text)
    if text:
        assert text not in str(caught.value)


@pytest.mark.parametrize("raw", [b"", b"x" * 31, b"x" * 33])
def test_key_must_be_32_bytes(raw: bytes) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        BlobKey(raw)


def test_key_repr_and_str_hide_the_secret() -> None:
    raw = b"\x01SECRETKEYMATERIAL-0123456789ab\x02"
    key = BlobKey(raw)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert "SECRET" not in text
        assert raw.hex() not in text
        assert key.key_id.hex() in text
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_bad_chunk_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        encrypt_stream([b""], KEY, BLOB, chunk_size=0)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=200),
    chunk_size=st.integers(min_value=1, max_value=40),
    piece=st.integers(min_value=1, max_value=50),
)
def test_round_trip_property(data: bytes, chunk_size: int, piece: int) -> None:
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    sealed = list(encrypt_stream(pieces, KEY, BLOB, chunk_size=chunk_size))
    joined = b"".join(sealed)
    assert len(joined) == HEADER_SIZE + len(data) + TAG_SIZE * (len(data) // chunk_size + 1)
    assert b"".join(decrypt_stream(sealed, KEY, BLOB)) == data
