"""Metadata and access on PostgreSQL, where many processes share one database.

Each store below has its own connection pool, as separate processes would: concurrent
check-then-act operations must behave as if they ran one after the other, and a schema
move must see every document a concurrent writer committed (or make the writer fail).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from uuid_utils.compat import uuid7

from reeldb.auth.model import ApiKey
from reeldb.errors import AlreadyExistsError, ConflictError, StaleSchemaError
from reeldb.model.datastore import DataStoreRef, Role
from reeldb.schema.model import CompatibilityMode
from reeldb.store import DataStoreMove, DocumentRecord, NewDocument, Store, load_store
from reeldb.testing import NOW, stored_schema_version

T = TypeVar("T")
REF = DataStoreRef("vision", "face_detection", 1)
RACERS = 4


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[Store]]:
    """Stores on one database, each with its own pool (as separate processes)."""
    opened = [load_store(postgres_url) for _ in range(RACERS)]
    yield opened
    for store in opened:
        store.close()


def race(stores: list[Store], call: Callable[[Store, int], T]) -> list[T | Exception]:
    """Run ``call`` on every store at once; results or raised errors, in store order."""
    start = threading.Barrier(len(stores))

    def run(index: int) -> T | Exception:
        start.wait()
        try:
            return call(stores[index], index)
        except Exception as exc:  # collected for the assertions
            return exc

    with ThreadPoolExecutor(len(stores)) as pool:
        return list(pool.map(run, range(len(stores))))


def test_concurrent_creations_have_one_winner(stores: list[Store]) -> None:
    results = race(stores, lambda s, i: s.create_namespace("vision", f"by {i}", NOW, [f"u:{i}"]))
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyExistsError) for r in results if r not in winners)
    # The winner's admin, and only it, was granted.
    winner = results.index(winners[0])
    assert [g.principal for g in stores[0].list_roles("vision")] == [f"u:{winner}"]

    stores[0].add_schema_version(stored_schema_version("vision", "faces", 1), _MODE, [])
    results = race(stores, lambda s, i: s.create_datastore(REF, ("a",), "faces", 1, "", NOW))
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert sum(isinstance(r, AlreadyExistsError) for r in results) == RACERS - 1

    results = race(stores, lambda s, i: s.create_api_key(_key("k", f"app:{i}"), b"h"))
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, AlreadyExistsError) for r in results) == RACERS - 1


def test_concurrent_schema_versions_are_added_one_at_a_time(stores: list[Store]) -> None:
    stores[0].create_namespace("vision", "", NOW)
    # A new subject: created once, whichever transaction gets there first.
    results = race(
        stores,
        lambda s, i: s.add_schema_version(stored_schema_version("vision", "faces", 1), _MODE, []),
    )
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, ConflictError) for r in results) == RACERS - 1
    # Versions 2..7 at once: each is stored unless a higher one was stored first.
    results = race(
        stores,
        lambda s, i: s.add_schema_version(
            stored_schema_version("vision", "faces", i + 2), _MODE, []
        ),
    )
    stored = stores[0].get_subject("vision", "faces").versions
    assert stored[0] == 1 and list(stored) == sorted(set(stored))
    for index, result in enumerate(results):
        assert (result is None) == (index + 2 in stored), result
        assert result is None or isinstance(result, ConflictError)


def test_schema_move_sees_every_document_of_concurrent_writers(stores: list[Store]) -> None:
    """Writers keep writing on version 1 while the schema moves the DataStore to version 2:
    every version-1 document is either covered by the check or passed to ``check_new``."""
    admin = stores[0]
    admin.create_namespace("vision", "", NOW)
    admin.add_schema_version(stored_schema_version("vision", "faces", 1), _MODE, [])
    ds = admin.create_datastore(REF, ("title_id",), "faces", 1, "", NOW)
    admin.put_documents(ds.id, 1, [_doc()])
    checked_upto = admin.max_seq(ds.id)
    stop = threading.Event()
    written: list[int] = []

    def write(store: Store) -> None:
        while not stop.is_set():
            try:
                written.extend(store.put_documents(ds.id, 1, [_doc(), _doc()]))
            except StaleSchemaError:
                return

    checked: list[DocumentRecord] = []

    def check_new(record: DocumentRecord) -> None:
        checked.append(record)
        time.sleep(0.01)  # a slow check: writers must wait, not slip past it

    writers = [threading.Thread(target=write, args=(s,)) for s in stores[1:]]
    for thread in writers:
        thread.start()
    try:
        while len(written) < 20:
            time.sleep(0.01)
        admin.add_schema_version(
            stored_schema_version("vision", "faces", 2),
            _MODE,
            [DataStoreMove(ds.id, 1, checked_upto)],
            check_new,
        )
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in writers)
    stored = list(admin.iter_documents(ds.id))
    late = [doc.seq for doc in stored if doc.seq > checked_upto]
    assert late, "the writers wrote nothing during the move"
    assert {doc.schema_version for doc in stored} == {1}  # nobody wrote on version 2
    assert sorted(set(written)) == sorted(late)
    # Each late document was checked exactly once (the transaction ran once or was retried
    # from scratch: then the checks start again), in seq order.
    last_pass = checked[-len(late) :]
    assert [r.seq for r in last_pass] == late
    assert admin.get_datastore(REF).schema_version == 2


def test_access_changes_reach_every_process(stores: list[Store]) -> None:
    one, other = stores[0], stores[1]
    one.create_namespace("vision", "", NOW)
    one.create_api_key(_key("ka", "app:x"), b"h")
    seen = other.access_generation()
    assert other.key_access("ka")[2].roles == {}
    one.grant_role("vision", "app:x", Role.WRITER, NOW)
    assert other.access_generation() != seen
    assert other.key_access("ka")[2].roles == {"vision": Role.WRITER}
    seen = other.access_generation()
    one.revoke_api_key("ka", NOW)
    assert other.access_generation() != seen
    assert other.key_access("ka")[0].revoked_at == NOW
    # Metadata changes that cannot change anyone's access leave the caches alone.
    seen = other.access_generation()
    one.add_schema_version(stored_schema_version("vision", "faces", 1), _MODE, [])
    one.create_datastore(REF, ("a",), "faces", 1, "", NOW)
    one.revoke_api_key("ka", NOW)  # already revoked: nothing changes
    one.set_system_admin("app:y", False, NOW)  # not an administrator: nothing changes
    one.append_audit([])
    assert other.access_generation() == seen


@pytest.fixture
def icu_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the test server whose collation is ICU ``en-US``."""
    parts = urlsplit(postgres_url)
    name = f"reeldb_t_icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(urlunsplit((*parts[:2], "/postgres", "", "")), autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 "
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
        try:
            yield urlunsplit((*parts[:2], f"/{name}", "", ""))
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_listings_sort_by_code_point_whatever_the_collation(icu_url: str) -> None:
    """On a database whose default collation is natural-language (ICU en-US), names still
    sort as on SQLite: by code point (``a-b`` before ``a0`` before ``a_b``)."""
    names = ["ab", "a_b", "a0", "a-b", "a.b"]
    expected = sorted(names)  # Python compares code points, as SQLite's BINARY collation
    with psycopg.connect(icu_url) as conn:  # the premise: this database sorts otherwise
        rows = conn.execute("SELECT unnest(%s::text[]) ORDER BY 1", (names,)).fetchall()
        assert [row[0] for row in rows] != expected
    store = load_store(icu_url)
    try:
        _fill_with_names(store, names)
        assert [n.name for n in store.list_namespaces()] == expected
        assert [g.principal for g in store.list_roles("ab")] == expected
        assert [s.name for s in store.list_subjects("ab")] == expected
        assert [d.ref.analysis_type for d in store.list_datastores("ab")] == expected
        assert [k.key_id for k in store.list_api_keys()] == expected
        assert store.list_system_admins() == expected
    finally:
        store.close()


def _fill_with_names(store: Store, names: list[str]) -> None:
    for name in names:
        store.create_namespace(name, "", NOW)
    for name in names:
        store.grant_role("ab", name, Role.READER, NOW)
        store.add_schema_version(stored_schema_version("ab", name, 1), _MODE, [])
        store.create_datastore(DataStoreRef("ab", name, 1), ("k",), name, 1, "", NOW)
        store.create_api_key(_key(name, "app:x"), b"h")
        store.set_system_admin(name, True, NOW)


_MODE = CompatibilityMode.BACKWARD


def _key(key_id: str, principal: str) -> ApiKey:
    return ApiKey(key_id, principal, "", NOW, "user:root")


def _doc() -> NewDocument:
    return NewDocument(uuid7(), '{"title_id":"1"}', NOW, b'{"a":1}')
