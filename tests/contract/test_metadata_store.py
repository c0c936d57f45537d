"""Contract: every MetadataStore adapter behaves like this."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from uuid_utils.compat import uuid7

from reeldb.errors import AlreadyExistsError, ConflictError, NotFoundError, StaleSchemaError
from reeldb.model.datastore import DataStoreRef, Role
from reeldb.schema.model import CompatibilityMode, SchemaKind, SchemaVersion
from reeldb.store import DataStoreMove, NewDocument, Store
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


def _doc(body: bytes, mid: str = '{"title_id":"1"}') -> NewDocument:
    return NewDocument(uuid7(), mid, NOW, body)
