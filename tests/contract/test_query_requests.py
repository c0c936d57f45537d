"""Contract: every SearchStore adapter stores and leases asynchronous queries like this.

A runner claims a request under a lease, appends results while it holds it and finishes it
(done, failed, or handed back); once its lease ran out, another runner may take it over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from uuid_utils.compat import uuid7

from reeldb.errors import NotFoundError
from reeldb.model.datastore import DataStore, DataStoreRef
from reeldb.schema.model import CompatibilityMode, SchemaVersion
from reeldb.store import Store
from reeldb.store.base import QueryRequestRecord
from reeldb.testing import NOW

LEASE = timedelta(minutes=5)
TOKYO = timezone(timedelta(hours=9))  # instants written east of UTC must compare as instants
QUERY = '{"eq": {"event.label": "face"}}'
Match = tuple[UUID, str]
Result = tuple[int, UUID, str]


@pytest.fixture
def ds(store: Store, make_schema: Callable[..., SchemaVersion]) -> DataStore:
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.BACKWARD, [])
    return store.create_datastore(DataStoreRef("vision", "faces", 1), ("id",), "faces", 1, "", NOW)


@pytest.fixture
def submit(store: Store, ds: DataStore) -> Callable[[], UUID]:
    def make() -> UUID:
        request_id = uuid7()
        record = QueryRequestRecord(request_id, ds.id, QUERY, False, "pending", created_at=NOW)
        store.add_query_request(record)
        return request_id

    return make


def matches(n: int, prefix: str = "m") -> list[Match]:
    return [(uuid4(), f"{prefix}{i}") for i in range(n)]


def claim(
    store: Store, request_id: UUID, owner: str = "a", now: datetime = NOW
) -> QueryRequestRecord | None:
    return store.claim_query_request(request_id, owner, now, now + LEASE)


def results(store: Store, request_id: UUID) -> list[Result]:
    return store.query_results(request_id, after=0, limit=1000)


def numbered(found: list[Match]) -> list[Result]:
    return [(i, doc_id, mid) for i, (doc_id, mid) in enumerate(found, 1)]


@pytest.mark.parametrize("all_versions", [False, True])
def test_add_and_get_round_trip(store: Store, ds: DataStore, all_versions: bool) -> None:
    request_id = uuid7()
    created = NOW.astimezone(timezone(timedelta(hours=-5)))
    store.add_query_request(
        QueryRequestRecord(request_id, ds.id, QUERY, all_versions, "pending", created_at=created)
    )
    got = store.get_query_request(request_id)
    assert got == QueryRequestRecord(
        request_id, ds.id, QUERY, all_versions, "pending", 0, None, None, None, NOW, None
    )
    assert results(store, request_id) == []
    with pytest.raises(NotFoundError):
        store.get_query_request(uuid7())


def test_claim_pending_request(store: Store, submit: Callable[[], UUID]) -> None:
    request_id = submit()
    pending = store.get_query_request(request_id)
    claimed = claim(store, request_id, "a")
    assert claimed == replace(pending, state="running", owner="a", lease_until=NOW + LEASE)
    assert store.get_query_request(request_id) == claimed


@pytest.mark.parametrize("later", [timedelta(0), LEASE - timedelta(seconds=1), LEASE])
def test_live_lease_cannot_be_claimed(
    store: Store, submit: Callable[[], UUID], later: timedelta
) -> None:
    request_id = submit()
    held = claim(store, request_id, "a")
    now = (NOW + later).astimezone(TOKYO)
    assert claim(store, request_id, "b", now) is None  # claimable once the lease ended *before* now
    assert store.get_query_request(request_id) == held


def test_lapsed_lease_is_taken_over_and_old_results_dropped(
    store: Store, submit: Callable[[], UUID]
) -> None:
    request_id = submit()
    pending = store.get_query_request(request_id)
    claim(store, request_id, "a")
    assert store.add_query_results(request_id, "a", matches(3), NOW + LEASE)
    later = NOW + LEASE + timedelta(seconds=1)
    taken = claim(store, request_id, "b", later)
    assert taken == replace(pending, state="running", owner="b", lease_until=later + LEASE)
    assert results(store, request_id) == []
    assert not store.add_query_results(request_id, "a", matches(1), later + LEASE)
    assert not store.finish_query_request(request_id, "a", error=None, finished_at=later)
    fresh = matches(2, "b")
    assert store.add_query_results(request_id, "b", fresh, later + LEASE)
    assert results(store, request_id) == numbered(fresh)
    assert store.get_query_request(request_id).found == 2


@pytest.mark.parametrize("error", [None, "boom"])
def test_finished_request_cannot_be_claimed(
    store: Store, submit: Callable[[], UUID], error: str | None
) -> None:
    request_id = submit()
    claim(store, request_id, "a")
    assert store.finish_query_request(request_id, "a", error=error, finished_at=NOW)
    finished = store.get_query_request(request_id)
    assert claim(store, request_id, "b", NOW + 10 * LEASE) is None
    assert claim(store, request_id, "a", NOW + 10 * LEASE) is None
    assert store.get_query_request(request_id) == finished


def test_results_append_in_order_and_renew_lease(store: Store, submit: Callable[[], UUID]) -> None:
    request_id = submit()
    claim(store, request_id, "a")
    first, second, renewed = matches(2, "x"), matches(3, "y"), NOW + 3 * LEASE
    assert store.add_query_results(request_id, "a", first, NOW + 2 * LEASE)
    assert store.add_query_results(request_id, "a", second, renewed)
    assert results(store, request_id) == numbered(first + second)
    got = store.get_query_request(request_id)
    assert (got.found, got.owner, got.lease_until) == (5, "a", renewed)
    assert claim(store, request_id, "b", NOW + 2 * LEASE + timedelta(seconds=1)) is None


def test_results_by_non_owner_are_refused(store: Store, submit: Callable[[], UUID]) -> None:
    pending, running = submit(), submit()
    assert not store.add_query_results(pending, "a", matches(1), NOW + LEASE)
    claim(store, running, "a")
    before = store.get_query_request(running)
    assert not store.add_query_results(running, "b", matches(2), NOW + 9 * LEASE)
    assert store.get_query_request(running) == before
    assert results(store, running) == results(store, pending) == []
    assert store.get_query_request(pending).state == "pending"


@pytest.mark.parametrize(("error", "state"), [(None, "done"), ("bad query", "failed")])
def test_finish_records_outcome(
    store: Store, submit: Callable[[], UUID], error: str | None, state: str
) -> None:
    request_id = submit()
    claim(store, request_id, "a")
    found, finished_at = matches(2), NOW + timedelta(minutes=1)
    store.add_query_results(request_id, "a", found, NOW + LEASE)
    assert store.finish_query_request(request_id, "a", error=error, finished_at=finished_at)
    got = store.get_query_request(request_id)
    assert (got.state, got.error, got.owner, got.finished_at) == (state, error, None, finished_at)
    if error is None:  # a failed run's partial results are not part of the contract
        assert (got.found, results(store, request_id)) == (2, numbered(found))
    assert not store.finish_query_request(request_id, "a", error="late", finished_at=NOW)
    assert store.get_query_request(request_id) == got


def test_hand_back_makes_request_pending_again(store: Store, submit: Callable[[], UUID]) -> None:
    request_id = submit()
    claim(store, request_id, "a")
    store.add_query_results(request_id, "a", matches(3), NOW + LEASE)
    assert store.finish_query_request(request_id, "a", error=None, finished_at=None)
    got = store.get_query_request(request_id)
    assert (got.state, got.found, got.owner, got.finished_at) == ("pending", 0, None, None)
    assert results(store, request_id) == []
    again = claim(store, request_id, "b")  # at once: no lease is left
    assert again is not None and (again.owner, again.found) == ("b", 0)
    fresh = matches(1, "b")
    assert store.add_query_results(request_id, "b", fresh, NOW + LEASE)
    assert results(store, request_id) == numbered(fresh)


@pytest.mark.parametrize(
    ("error", "finished_at"),
    [(None, NOW), ("boom", NOW), (None, None)],
    ids=["done", "fail", "back"],
)
def test_finish_by_non_owner_changes_nothing(
    store: Store, submit: Callable[[], UUID], error: str | None, finished_at: datetime | None
) -> None:
    request_id = submit()
    claim(store, request_id, "a")
    store.add_query_results(request_id, "a", matches(2), NOW + LEASE)
    before, stored = store.get_query_request(request_id), results(store, request_id)
    assert not store.finish_query_request(request_id, "b", error=error, finished_at=finished_at)
    assert store.get_query_request(request_id) == before
    assert results(store, request_id) == stored


def test_query_results_paging(store: Store, submit: Callable[[], UUID]) -> None:
    request_id = submit()
    claim(store, request_id, "a")
    found = matches(5)
    store.add_query_results(request_id, "a", found, NOW + LEASE)
    every = numbered(found)
    page = store.query_results
    assert page(request_id, after=0, limit=2) == every[:2]
    assert page(request_id, after=2, limit=2) == every[2:4]
    assert page(request_id, after=4, limit=2) == every[4:]
    assert page(request_id, after=5, limit=2) == []
    assert page(request_id, after=1, limit=10) == every[1:]


def test_delete_only_requests_finished_before_cut_off(
    store: Store, submit: Callable[[], UUID]
) -> None:
    cut_off = NOW + timedelta(minutes=5)
    early = (NOW + timedelta(minutes=2)).astimezone(TOKYO)
    finish_times = [NOW + timedelta(minutes=1), early, cut_off, cut_off + timedelta(minutes=1)]
    finished = [submit() for _ in finish_times]
    for i, (request_id, at) in enumerate(zip(finished, finish_times, strict=True)):
        claim(store, request_id, "a")
        store.add_query_results(request_id, "a", matches(2), NOW + LEASE)
        error = "boom" if i % 2 else None
        assert store.finish_query_request(request_id, "a", error=error, finished_at=at)
    pending, running = submit(), submit()
    claim(store, running, "a", NOW - timedelta(days=1))  # its lease ended long ago
    store.add_query_results(running, "a", matches(1), NOW - timedelta(days=1))
    kept = [*finished[2:], pending, running]
    before = [(store.get_query_request(r), results(store, r)) for r in kept]

    assert store.delete_query_requests(cut_off) == 2
    for request_id in finished[:2]:
        with pytest.raises(NotFoundError):
            store.get_query_request(request_id)
        assert results(store, request_id) == []
    assert [(store.get_query_request(r), results(store, r)) for r in kept] == before
    assert store.delete_query_requests(cut_off) == 0


def test_requests_are_isolated(store: Store, submit: Callable[[], UUID]) -> None:
    one, two = submit(), submit()
    assert claim(store, one, "a") and claim(store, two, "a")
    a1, b1, a2 = matches(2, "one"), matches(1, "two"), matches(1, "one")
    for request_id, found in [(one, a1), (two, b1), (one, a2)]:
        assert store.add_query_results(request_id, "a", found, NOW + LEASE)
    assert results(store, one) == numbered(a1 + a2)
    assert results(store, two) == numbered(b1)
    assert store.finish_query_request(one, "a", error=None, finished_at=None)
    assert claim(store, one, "b") is not None
    assert results(store, one) == []
    assert results(store, two) == numbered(b1)
    assert store.get_query_request(two).found == 1
