"""The facade's caches: authentications (while access stays the same) and immutable documents."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import reeldb
from reeldb._cache import ByteLRU
from reeldb.errors import UnauthenticatedError
from reeldb.testing import FACE_DETECTION, MID, face_document


def test_lru_keeps_recent_values_within_its_byte_budget() -> None:
    cache: ByteLRU[str, str] = ByteLRU(10)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C", 4)  # over budget: b, the least recent, goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
    assert cache.size == 8 and len(cache) == 2
    cache.put("huge", "H", 11)  # larger than the whole budget: not kept, nothing evicted
    assert cache.get("huge") is None and len(cache) == 2
    cache.put("a", "A2", 2)  # replacing a value accounts its new size
    assert cache.get("a") == "A2" and cache.size == 6
    nothing: ByteLRU[str, str] = ByteLRU(0)
    nothing.put("a", "A", 0)
    nothing.put("b", "B", 1)
    assert nothing.get("b") is None


@pytest.mark.parametrize("where", ["file", "memory"])
def test_access_changes_end_cached_authentications_at_once(tmp_path: Path, where: str) -> None:
    """Two Database objects on one file stand for two processes (they share the lock file)."""
    url = f"sqlite:///{tmp_path / 'reel.db'}" if where == "file" else "memory:"
    with reeldb.connect(url) as service:
        other = reeldb.connect(url) if where == "file" else service
        try:
            service.create_namespace("vision")
            key = service.create_api_key("app:viewer")
            other.grant_role("vision", "app:viewer", "reader")
            assert service.authenticate(key.secret).roles == {"vision": reeldb.Role.READER}
            assert service.authenticate(key.secret).roles == {"vision": reeldb.Role.READER}
            other.grant_role("vision", "app:viewer", "writer")
            assert service.authenticate(key.secret).roles == {"vision": reeldb.Role.WRITER}
            other.revoke_role("vision", "app:viewer")
            assert service.authenticate(key.secret).roles == {}
            other.grant_system_admin("app:viewer")
            assert service.authenticate(key.secret).system_admin
            other.revoke_api_key(key.key.key_id)
            with pytest.raises(UnauthenticatedError):
                service.authenticate(key.secret)
        finally:
            if other is not service:
                other.close()


def test_document_writes_keep_cached_authentications(tmp_path: Path) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}") as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore("vision/face_detection/1", mid_keys=list(MID), schema="face_detection")
        key = db.create_api_key("app:writer")
        before = db.store.access_generation()
        db.authenticate(key.secret)
        db.put_document("vision/face_detection/1", MID, face_document(1))
        assert db.store.access_generation() == before


def test_a_wrong_secret_is_refused_even_when_the_key_is_cached(tmp_path: Path) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}") as db:
        key = db.create_api_key("app:x")
        db.authenticate(key.secret)
        forged = key.secret[:-2] + ("AA" if not key.secret.endswith("AA") else "BB")
        with pytest.raises(UnauthenticatedError):
            db.authenticate(forged)


def test_documents_are_read_from_the_cache_byte_identical(tmp_path: Path) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}") as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore("vision/face_detection/1", mid_keys=list(MID), schema="face_detection")
        doc = db.put_document("vision/face_detection/1", MID, face_document(1))
        first = db.get_document(doc.id)
        db.store.close()  # a cached document needs no backend
        assert db.get_document(doc.id).body == first.body == doc.body


def test_no_document_cache_when_disabled(tmp_path: Path) -> None:
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}", document_cache_bytes=0) as db:
        db.create_namespace("vision")
        db.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        db.create_datastore("vision/face_detection/1", mid_keys=list(MID), schema="face_detection")
        doc = db.put_document("vision/face_detection/1", MID, face_document(1))
        db.get_document(doc.id)
        db.store.close()
        with pytest.raises(reeldb.DatabaseClosedError):
            db.get_document(doc.id)
