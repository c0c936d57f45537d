"""Contract: every MetadataStore adapter behaves like this."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from uuid_utils.compat import uuid7

from reeldb.auth.model import ApiKey, AuditEntry, Principal
from reeldb.errors import AlreadyExistsError, ConflictError, NotFoundError, StaleSchemaError
from reeldb.model.datastore import DataStoreRef, Role
from reeldb.model.names import MAX_VERSION
from reeldb.schema.model import CompatibilityMode, SchemaKind, SchemaVersion
from reeldb.store import DataStoreMove, DocumentRecord, NewDocument, Store
from reeldb.testing import NOW

REF = DataStoreRef("vision", "face_detection", 1)


def test_namespaces(store: Store) -> None:
    created = store.create_namespace("vision", "computer vision", NOW)
    assert created.name == "vision"
    assert store.get_namespace("vision") == created
    store.create_namespace("audio", "", NOW)
    assert [n.name for n in store.list_namespaces()] == ["audio", "vision"]
    with pytest.raises(AlreadyExistsError, match="vision"):
        store.create_namespace("vision", "", NOW)
    with pytest.raises(NotFoundError, match="nope"):
        store.get_namespace("nope")


def test_namespace_and_first_admins_are_created_together(store: Store) -> None:
    store.create_namespace("vision", "", NOW, ["user:alice", "user:bob"])
    assert [(g.principal, g.role) for g in store.list_roles("vision")] == [
        ("user:alice", Role.ADMIN),
        ("user:bob", Role.ADMIN),
    ]
    with pytest.raises(AlreadyExistsError):
        store.create_namespace("vision", "", NOW, ["user:carol"])
    assert len(store.list_roles("vision")) == 2


def test_roles_are_one_per_principal_and_namespace(store: Store) -> None:
    store.create_namespace("vision", "", NOW)
    store.grant_role("vision", "user:alice", Role.ADMIN, NOW)
    store.grant_role("vision", "app:x", Role.READER, NOW)
    store.grant_role("vision", "app:x", Role.WRITER, NOW + timedelta(seconds=1))
    grants = store.list_roles("vision")
    assert [(g.principal, g.role) for g in grants] == [
        ("app:x", Role.WRITER),
        ("user:alice", Role.ADMIN),
    ]
    store.revoke_role("vision", "app:x")
    assert [g.principal for g in store.list_roles("vision")] == ["user:alice"]
    with pytest.raises(NotFoundError):
        store.revoke_role("vision", "app:x")
    with pytest.raises(NotFoundError):
        store.grant_role("missing", "user:alice", Role.ADMIN, NOW)


def test_schema_versions_are_ordered_and_immutable(
    store: Store, make_schema: Callable[..., SchemaVersion]
) -> None:
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.FULL, [])
    store.add_schema_version(make_schema("vision", "faces", 2), CompatibilityMode.NONE, [])
    subject = store.get_subject("vision", "faces")
    assert subject.versions == (1, 2)
    assert subject.latest_version == 2
    assert subject.compatibility is CompatibilityMode.FULL  # set by the first version only
    assert subject.kind is SchemaKind.DOCUMENT
    assert store.get_schema_version("vision", "faces", None).version == 2
    assert store.get_schema_version("vision", "faces", 1) == make_schema("vision", "faces", 1)
    assert [v.version for v in store.list_schema_versions("vision", "faces")] == [1, 2]
    with pytest.raises(ConflictError):
        store.add_schema_version(make_schema("vision", "faces", 2), CompatibilityMode.NONE, [])
    with pytest.raises(ConflictError):
        store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.NONE, [])
    with pytest.raises(NotFoundError, match="latest is 2"):
        store.get_schema_version("vision", "faces", 7)
    with pytest.raises(NotFoundError):
        store.get_schema_version("vision", "other", None)
    assert store.list_schema_versions("vision", "other") == []
    store.set_compatibility("vision", "faces", CompatibilityMode.BACKWARD_TRANSITIVE)
    assert (
        store.get_subject("vision", "faces").compatibility is CompatibilityMode.BACKWARD_TRANSITIVE
    )
    with pytest.raises(NotFoundError):
        store.set_compatibility("vision", "other", CompatibilityMode.NONE)
    with pytest.raises(NotFoundError):
        store.add_schema_version(make_schema("nope", "faces", 1), CompatibilityMode.NONE, [])
    assert [s.name for s in store.list_subjects("vision")] == ["faces"]


def test_datastores(store: Store, make_schema: Callable[..., SchemaVersion]) -> None:
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.BACKWARD, [])
    ds = store.create_datastore(REF, ("title_id", "stream"), "faces", 1, "demo", NOW)
    assert ds.ref == REF
    assert ds.mid_keys == ("title_id", "stream")
    assert store.get_datastore(REF) == ds
    assert store.get_datastore_by_id(ds.id) == ds
    v2 = DataStoreRef("vision", "face_detection", 2)
    store.create_datastore(v2, ("title_id",), "faces", 1, "", NOW)
    assert [d.ref for d in store.list_datastores("vision")] == [REF, v2]
    assert [d.ref for d in store.list_datastores()] == [REF, v2]
    assert store.list_datastores("other") == []
    assert [d.ref for d in store.datastores_using("vision", "faces")] == [REF, v2]
    with pytest.raises(AlreadyExistsError):
        store.create_datastore(REF, ("title_id",), "faces", 1, "", NOW)
    with pytest.raises(NotFoundError):
        store.create_datastore(DataStoreRef("vision", "x", 1), ("a",), "faces", 9, "", NOW)
    with pytest.raises(NotFoundError):
        store.get_datastore(DataStoreRef("vision", "x", 1))
    with pytest.raises(NotFoundError):
        store.get_datastore_by_id(10_000)


def test_versions_are_64_bit(store: Store, make_schema: Callable[..., SchemaVersion]) -> None:
    top = MAX_VERSION
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", top - 1), CompatibilityMode.FULL, [])
    ref = DataStoreRef("vision", "face_detection", top)
    ds = store.create_datastore(ref, ("title_id",), "faces", top - 1, "", NOW)
    store.add_schema_version(
        make_schema("vision", "faces", top),
        CompatibilityMode.FULL,
        [DataStoreMove(ds.id, top - 1, store.max_seq(ds.id))],
    )
    assert store.get_subject("vision", "faces").versions == (top - 1, top)
    assert store.get_schema_version("vision", "faces", top) == make_schema("vision", "faces", top)
    assert store.get_datastore(ref).schema_version == top
    assert [d.ref for d in store.list_datastores()] == [ref]


def test_schema_moves_datastores_atomically(
    store: Store, make_schema: Callable[..., SchemaVersion]
) -> None:
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.BACKWARD, [])
    ds = store.create_datastore(REF, ("title_id",), "faces", 1, "", NOW)
    store.put_documents(ds.id, 1, [_doc(b'{"a":1}')])
    seen = store.max_seq(ds.id)

    # A document arrived after the check: refused, and nothing changed.
    store.put_documents(ds.id, 1, [_doc(b'{"a":2}')])
    with pytest.raises(StaleSchemaError):
        store.add_schema_version(
            make_schema("vision", "faces", 2),
            CompatibilityMode.BACKWARD,
            [DataStoreMove(ds.id, 1, seen)],
        )
    assert store.get_subject("vision", "faces").versions == (1,)
    assert store.get_datastore(REF).schema_version == 1

    # Moves must name every DataStore on the schema.
    with pytest.raises(StaleSchemaError):
        store.add_schema_version(make_schema("vision", "faces", 2), CompatibilityMode.BACKWARD, [])

    store.add_schema_version(
        make_schema("vision", "faces", 2),
        CompatibilityMode.BACKWARD,
        [DataStoreMove(ds.id, 1, store.max_seq(ds.id))],
    )
    assert store.get_datastore(REF).schema_version == 2
    with pytest.raises(StaleSchemaError):  # validated against v1, the DataStore is on v2 now
        store.put_documents(ds.id, 1, [_doc(b"{}")])


def test_check_new_sees_documents_written_after_the_check(
    store: Store, make_schema: Callable[..., SchemaVersion]
) -> None:
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.BACKWARD, [])
    ds = store.create_datastore(REF, ("title_id",), "faces", 1, "", NOW)
    other = store.create_datastore(
        DataStoreRef("vision", "face_detection", 2), ("title_id",), "faces", 1, "", NOW
    )
    store.put_documents(ds.id, 1, [_doc(b'{"a":1}')])
    seen = store.max_seq(ds.id)
    late = [_doc(b'{"a":2}'), _doc(b'{"a":3}', '{"title_id":"2"}')]
    store.put_documents(ds.id, 1, late)
    store.put_documents(other.id, 1, [_doc(b'{"b":1}')])
    moves = [DataStoreMove(ds.id, 1, seen), DataStoreMove(other.id, 1, store.max_seq(other.id))]

    def refuse(record: DocumentRecord) -> None:
        raise ValueError(record.mid_key)

    with pytest.raises(ValueError, match="title_id"):  # whatever check_new raises
        store.add_schema_version(
            make_schema("vision", "faces", 2), CompatibilityMode.BACKWARD, moves, refuse
        )
    assert store.get_subject("vision", "faces").versions == (1,)
    assert [d.schema_version for d in store.datastores_using("vision", "faces")] == [1, 1]

    checked: list[DocumentRecord] = []
    store.add_schema_version(
        make_schema("vision", "faces", 2), CompatibilityMode.BACKWARD, moves, checked.append
    )
    assert [(r.id, r.datastore_id, r.mid_key, r.body) for r in checked] == [
        (d.id, ds.id, d.mid_key, d.body) for d in late
    ]
    assert all(r.schema_version == 1 and r.size == len(r.body) for r in checked)
    assert [d.schema_version for d in store.datastores_using("vision", "faces")] == [2, 2]
    with pytest.raises(StaleSchemaError):  # the DataStore is no longer on version 1
        store.add_schema_version(
            make_schema("vision", "faces", 3), CompatibilityMode.BACKWARD, moves, checked.append
        )


def test_api_keys_and_principal_access(store: Store) -> None:
    later = NOW + timedelta(minutes=1)
    store.create_namespace("vision", "", NOW, ["app:x"])
    store.create_namespace("audio", "", NOW)
    store.grant_role("audio", "app:x", Role.READER, NOW)
    store.grant_role("audio", "user:bob", Role.WRITER, NOW)
    key_b = ApiKey("kb", "app:x", "second", later, "user:root")
    key_a = ApiKey("ka", "app:x", "first", NOW, "user:root")
    key_c = ApiKey("kc", "user:bob", "", NOW, "user:root")
    for key in (key_b, key_a, key_c):
        store.create_api_key(key, key.key_id.encode() * 4)
    with pytest.raises(AlreadyExistsError, match="ka"):
        store.create_api_key(key_a, b"other")
    assert store.list_api_keys() == [key_a, key_c, key_b]  # oldest first, then by id
    assert store.list_api_keys("app:x") == [key_a, key_b]
    assert store.list_api_keys("nobody") == []

    key, secret_hash, principal = store.key_access("ka")
    assert (key, secret_hash) == (key_a, b"kakakaka")
    assert principal == Principal(
        "app:x", False, {"vision": Role.ADMIN, "audio": Role.READER}, "ka"
    )
    with pytest.raises(NotFoundError, match="nope"):
        store.key_access("nope")

    store.set_system_admin("user:bob", True, NOW)
    store.set_system_admin("user:bob", True, later)  # granting twice is harmless
    store.set_system_admin("user:alice", True, NOW)
    assert store.list_system_admins() == ["user:alice", "user:bob"]
    assert store.key_access("kc")[2] == Principal("user:bob", True, {"audio": Role.WRITER}, "kc")
    assert store.principal_access("user:bob") == Principal("user:bob", True, {"audio": Role.WRITER})
    assert store.principal_access("nobody") == Principal("nobody", False, {})
    store.set_system_admin("user:bob", False, later)
    store.set_system_admin("user:bob", False, later)  # revoking twice is harmless
    assert store.list_system_admins() == ["user:alice"]
    assert not store.principal_access("user:bob").system_admin

    revoked = store.revoke_api_key("ka", later)
    assert revoked.revoked_at == later and not revoked.active
    assert store.revoke_api_key("ka", later + timedelta(hours=1)) == revoked  # unchanged
    assert store.key_access("ka")[0] == revoked
    assert store.list_api_keys("app:x") == [revoked, key_b]  # revoked keys are listed
    with pytest.raises(NotFoundError, match="nope"):
        store.revoke_api_key("nope", later)


def test_access_generation_moves_on_every_access_change(store: Store) -> None:
    if store.access_generation() is None:
        pytest.skip("the backend does not tell")
    store.create_namespace("vision", "", NOW)
    store.create_api_key(ApiKey("ka", "app:x", "", NOW, "user:root"), b"h")
    changes: list[Callable[[], object]] = [
        lambda: store.grant_role("vision", "app:x", Role.READER, NOW),
        lambda: store.grant_role("vision", "app:x", Role.WRITER, NOW),
        lambda: store.revoke_role("vision", "app:x"),
        lambda: store.create_api_key(ApiKey("kb", "app:x", "", NOW, "user:root"), b"h"),
        lambda: store.revoke_api_key("ka", NOW),
        lambda: store.set_system_admin("app:x", True, NOW),
        lambda: store.set_system_admin("app:x", False, NOW),
        lambda: store.create_namespace("audio", "", NOW, ["app:x"]),
    ]
    for change in changes:
        before = store.access_generation()
        change()
        assert store.access_generation() != before, change


def test_audit_log_is_listed_newest_first(store: Store) -> None:
    def entry(n: int, namespace: str | None) -> AuditEntry:
        at = NOW + timedelta(seconds=n)
        return AuditEntry(0, at, "user:a", "document.put", namespace, f"/t{n}", f"r{n}", 201)

    store.append_audit([entry(1, "vision"), entry(2, None), entry(3, "audio")])
    store.append_audit([entry(4, "vision"), entry(5, "vision")])
    store.append_audit([])
    every = store.list_audit(None, limit=10, before_seq=None)
    assert [e.request_id for e in every] == ["r5", "r4", "r3", "r2", "r1"]
    assert every[0].seq > every[1].seq > every[-1].seq > 0
    assert every[0] == AuditEntry(every[0].seq, *dataclasses.astuple(entry(5, "vision"))[1:])
    vision = store.list_audit("vision", limit=2, before_seq=None)
    assert [e.request_id for e in vision] == ["r5", "r4"]
    rest = store.list_audit("vision", limit=2, before_seq=vision[-1].seq)
    assert [e.request_id for e in rest] == ["r1"]
    assert store.list_audit("nope", limit=10, before_seq=None) == []
    older = store.list_audit(None, limit=2, before_seq=every[2].seq)
    assert [(e.request_id, e.namespace) for e in older] == [("r2", None), ("r1", "vision")]


def _doc(body: bytes, mid: str = '{"title_id":"1"}') -> NewDocument:
    return NewDocument(uuid7(), mid, NOW, body)
