"""The JobStore port (reprocessing jobs) on every backend: jobs, leased partitions, dead letters.

What the runner relies on: a checkpoint is accepted only from the partition's holder while
the job runs (so work after a lost lease or a pause is never counted), a lapsed lease can be
taken over, the concurrency limit holds, a round is closed exactly once, and dead letters
are replaced, resolved and sent back as the port says.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from uuid_utils.compat import uuid7

from reeldb.errors import NotFoundError
from reeldb.store import Store, load_store
from reeldb.store.base import DeadLetter, JobRecord, PartitionRecord, Progress

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
SOME = Progress(5, 3, 2, 0)


def _job(namespace: str = "vision", *, name: str = "job", state: str = "running") -> JobRecord:
    return JobRecord(
        uuid7(),
        namespace,
        name,
        '{"name": "job"}',
        state,
        0,
        '{"seq": 10}',
        10,
        None,
        "user:alice",
        T0,
        T0,
    )


def _parts(job: JobRecord, count: int, *, first: int = 0, round: int = 0) -> list[PartitionRecord]:
    return [
        PartitionRecord(job.id, first + n, round, "range", str(n * 10), str(n * 10 + 10))
        for n in range(count)
    ]


def _add(store: Store, partitions: int = 3, **kwargs: str) -> JobRecord:
    job = _job(**kwargs)
    store.add_job(job, _parts(job, partitions))
    return job


def _letter(job: JobRecord, item: str, partition: int = 0, error: str = "boom") -> DeadLetter:
    return DeadLetter(job.id, item, partition, error, 3, T0)


def _part(store: Store, job_id: UUID, number: int) -> PartitionRecord:
    [found] = [p for p in store.job_partitions(job_id) if p.number == number]
    return found


def _claim(
    store: Store, job: JobRecord, owner: str, now: datetime = T0, limit: int = 10
) -> PartitionRecord | None:
    return store.claim_partition(job.id, owner, now, now + LEASE, limit)


def _checkpoint(
    store: Store,
    job: JobRecord,
    number: int,
    owner: str,
    *,
    cursor: str | None = "5",
    progress: Progress = SOME,
    dead: Sequence[DeadLetter] = (),
    resolved: Sequence[str] = (),
    finished: bool = False,
    now: datetime = T0,
) -> bool:
    return store.checkpoint_partition(
        job.id,
        number,
        owner,
        cursor=cursor,
        progress=progress,
        lease_until=now + LEASE,
        dead=dead,
        resolved=resolved,
        finished=finished,
    )


def _finish_all(store: Store, job: JobRecord) -> None:
    while (claimed := _claim(store, job, "w")) is not None:
        assert _checkpoint(store, job, claimed.number, "w", finished=True)


# -- jobs -----------------------------------------------------------------------------------


def _a_job_is_stored_with_its_partitions(store: Store) -> None:
    job = _add(store, 3)
    assert store.get_job(job.id) == job
    parts = store.job_partitions(job.id)
    assert parts == _parts(job, 3)
    assert all(p.state == "pending" and p.owner is None and p.attempts == 0 for p in parts)
    with pytest.raises(NotFoundError):
        store.get_job(uuid7())
    assert store.job_partitions(uuid7()) == []


def _jobs_are_listed_newest_first_by_id_in_pages(store: Store) -> None:
    jobs = [_add(store, 1, name=f"j{n}") for n in range(7)]
    other = _add(store, 1, namespace="audio")
    newest_first = sorted(jobs, key=lambda j: j.id, reverse=True)
    pages: list[JobRecord] = []
    before = None
    while True:
        page = store.list_jobs("vision", before=before, limit=3)
        assert len(page) <= 3
        pages += page
        if len(page) < 3:
            break
        before = page[-1].id
    assert [j.id for j in pages] == [j.id for j in newest_first]
    everything = store.list_jobs(None, limit=100)
    assert [j.id for j in everything] == sorted([j.id for j in [*jobs, other]], reverse=True)
    assert [j.id for j in store.list_jobs("audio")] == [other.id]
    assert store.list_jobs("nobody") == []


def _set_job_state_checks_the_expected_state(store: Store) -> None:
    job = _add(store, 2)
    later = T0 + timedelta(minutes=1)
    assert store.set_job_state(job.id, "running", later, expect=("paused",)) is None
    assert store.get_job(job.id).state == "running"
    paused = store.set_job_state(job.id, "paused", later, expect=("running",))
    assert paused is not None and paused.state == "paused" and paused.updated_at == later
    failed = store.set_job_state(job.id, "failed", later, expect=("paused",), error="broken")
    assert failed is not None and (failed.state, failed.error) == ("failed", "broken")
    with pytest.raises(NotFoundError):
        store.set_job_state(uuid7(), "paused", later, expect=("running",))


def _pausing_hands_running_partitions_back_and_refuses_their_checkpoints(store: Store) -> None:
    job = _add(store, 3)
    first = _claim(store, job, "a")
    second = _claim(store, job, "b")
    assert first is not None and second is not None
    assert _checkpoint(store, job, first.number, "a", finished=True)
    assert store.set_job_state(job.id, "paused", T0, expect=("running",)) is not None
    parts = store.job_partitions(job.id)
    assert [(p.state, p.owner) for p in parts] == [("done", None), ("pending", None)] + [
        ("pending", None)
    ]
    assert parts[1].lease_until is None
    # The runner that held partition 1 learns it lost it: its work is not counted.
    assert not _checkpoint(store, job, second.number, "b")
    assert _part(store, job.id, second.number).done == 0
    # Nothing is claimed from a paused job; resumed, the partition is taken again.
    assert _claim(store, job, "c") is None
    assert store.set_job_state(job.id, "running", T0, expect=("paused",)) is not None
    again = _claim(store, job, "c")
    assert again is not None and again.number == 1 and again.attempts == 2


def _cancelling_hands_running_partitions_back_too(store: Store) -> None:
    job = _add(store, 2)
    held = _claim(store, job, "a")
    assert held is not None
    assert store.set_job_state(job.id, "cancelled", T0, expect=("running", "paused"))
    assert not _checkpoint(store, job, held.number, "a")
    assert _claim(store, job, "b") is None
    assert job.id not in store.runnable_jobs(T0)


# -- partitions -----------------------------------------------------------------------------


def _claim_takes_pending_partitions_in_order_under_a_lease(store: Store) -> None:
    job = _add(store, 3)
    claimed = [_claim(store, job, f"w{n}") for n in range(3)]
    assert [c.number for c in claimed if c] == [0, 1, 2]
    for n, c in enumerate(claimed):
        assert c is not None
        assert (c.state, c.owner, c.attempts) == ("running", f"w{n}", 1)
        assert c.lease_until == T0 + LEASE
    assert _claim(store, job, "late") is None  # all held, none lapsed


def _a_lapsed_lease_is_taken_over_and_the_old_holder_is_refused(store: Store) -> None:
    job = _add(store, 1)
    held = _claim(store, job, "slow")
    assert held is not None
    assert _claim(store, job, "fast", now=T0 + LEASE - timedelta(seconds=1)) is None
    after = T0 + LEASE + timedelta(seconds=1)
    taken = _claim(store, job, "fast", now=after)
    assert taken is not None
    assert (taken.number, taken.owner, taken.attempts) == (0, "fast", 2)
    assert not _checkpoint(store, job, 0, "slow", now=after)
    assert _checkpoint(store, job, 0, "fast", cursor="7", progress=Progress(7, 7), now=after)
    part = _part(store, job.id, 0)
    assert (part.cursor, part.done, part.changed, part.owner) == ("7", 7, 7, "fast")


def _the_concurrency_limit_counts_live_leases_only(store: Store) -> None:
    job = _add(store, 4)
    assert _claim(store, job, "a", limit=2) is not None
    assert _claim(store, job, "b", limit=2) is not None
    assert _claim(store, job, "c", limit=2) is None
    # Once a holder finishes, another partition may start.
    assert _checkpoint(store, job, 0, "a", finished=True)
    third = _claim(store, job, "c", limit=2)
    assert third is not None and third.number == 2
    # A lapsed lease does not count against the limit: it is taken over.
    later = T0 + LEASE + timedelta(seconds=1)
    over = _claim(store, job, "d", now=later, limit=2)
    assert over is not None and over.number == 1  # the lowest lapsed or pending one


def _claims_racing_from_threads_respect_the_limit(store_url: str) -> None:
    # Separate connections (each thread its own store on files/servers) or a shared one.
    stores = [load_store(store_url) for _ in range(4)] if "memory" not in store_url else []
    try:
        shared = stores or [load_store(store_url)]
        job = _add(shared[0], 8)
        got: list[PartitionRecord | None] = []
        lock = threading.Lock()

        def claim(n: int) -> None:
            s = shared[n % len(shared)]
            result = s.claim_partition(job.id, f"w{n}", T0, T0 + LEASE, 3)
            with lock:
                got.append(result)

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        taken = [p for p in got if p is not None]
        assert len(taken) == 3
        assert len({p.number for p in taken}) == 3
        running = [p for p in shared[0].job_partitions(job.id) if p.state == "running"]
        assert len(running) == 3
    finally:
        for s in stores or shared:
            s.close()


def _checkpoints_add_up_and_finish(store: Store) -> None:
    job = _add(store, 1)
    assert _claim(store, job, "w") is not None
    assert _checkpoint(store, job, 0, "w", cursor="3", progress=Progress(3, 1, 1, 1))
    assert _checkpoint(store, job, 0, "w", cursor="9", progress=Progress(6, 6, 0, 0))
    part = _part(store, job.id, 0)
    assert (part.state, part.cursor, part.owner) == ("running", "9", "w")
    assert (part.done, part.changed, part.skipped, part.failed) == (9, 7, 1, 1)
    assert _checkpoint(store, job, 0, "w", cursor="10", progress=Progress(1, 0, 1), finished=True)
    part = _part(store, job.id, 0)
    assert (part.state, part.cursor, part.owner, part.done) == ("done", "10", None, 10)
    # A finished partition takes no more checkpoints, and is not claimed again.
    assert not _checkpoint(store, job, 0, "w")
    assert _claim(store, job, "w") is None


def _a_checkpoint_of_another_job_or_partition_is_refused(store: Store) -> None:
    job, other = _add(store, 2), _add(store, 2)
    assert _claim(store, job, "w") is not None
    assert not _checkpoint(store, other, 0, "w")
    assert not _checkpoint(store, job, 1, "w")
    assert not _checkpoint(store, job, 7, "w")


# -- dead letters ---------------------------------------------------------------------------


def _dead_letters_come_with_their_checkpoint_and_are_paged_by_item(store: Store) -> None:
    job = _add(store, 2)
    assert _claim(store, job, "a") is not None
    keys = [f"k{n:02d}" for n in range(7)]
    assert _checkpoint(
        store,
        job,
        0,
        "a",
        progress=Progress(7, 0, 0, 7),
        dead=[_letter(job, k) for k in reversed(keys)],
    )
    page1 = store.dead_letters(job.id, limit=4)
    page2 = store.dead_letters(job.id, after=page1[-1].item, limit=4)
    assert [d.item for d in page1 + page2] == keys
    assert page1[0] == DeadLetter(job.id, "k00", 0, "boom", 3, T0, "dead")
    # A refused checkpoint stores none of its letters.
    assert _claim(store, job, "b") is not None
    assert not _checkpoint(store, job, 1, "nobody", dead=[_letter(job, "zz")])
    assert [d.item for d in store.dead_letters(job.id, after="k06")] == []
    assert store.dead_letters(uuid7()) == []


def _an_item_failing_again_replaces_its_letter_and_resolved_ones_go(store: Store) -> None:
    job = _add(store, 1)
    assert _claim(store, job, "w") is not None
    dead = [_letter(job, k, error="first") for k in ("a", "b", "c")]
    assert _checkpoint(store, job, 0, "w", dead=dead)
    assert _checkpoint(
        store, job, 0, "w", dead=[_letter(job, "b", error="second")], resolved=["a", "zz"]
    )
    letters = store.dead_letters(job.id)
    assert [(d.item, d.error) for d in letters] == [("b", "second"), ("c", "first")]


def _retry_sends_letters_back_in_a_partition_of_their_own(store: Store) -> None:
    job = _add(store, 1)
    assert _claim(store, job, "w") is not None
    dead = [_letter(job, k) for k in ("a", "b", "c")]
    assert _checkpoint(store, job, 0, "w", dead=dead, finished=True)
    assert store.next_round(job.id, 0, [], job.snapshot, T0)
    assert store.get_job(job.id).state == "done"
    retry = PartitionRecord(job.id, 1, 0, "retry", "", "")
    assert store.retry_dead_letters(job.id, retry, T0) == 3
    assert store.get_job(job.id).state == "running"  # a finished job runs again
    assert {d.state for d in store.dead_letters(job.id)} == {"retrying"}
    assert [d.item for d in store.retrying_letters(job.id, after=None, limit=2)] == ["a", "b"]
    assert [d.item for d in store.retrying_letters(job.id, after="b", limit=2)] == ["c"]
    # Nothing left to send back: nothing is added.
    again = PartitionRecord(job.id, 2, 0, "retry", "", "")
    assert store.retry_dead_letters(job.id, again, T0) == 0
    assert [p.number for p in store.job_partitions(job.id)] == [0, 1]
    # The retry partition resolves two letters; the third fails again (a fresh letter).
    claimed = _claim(store, job, "w")
    assert claimed is not None and (claimed.number, claimed.kind) == (1, "retry")
    assert _checkpoint(
        store,
        job,
        1,
        "w",
        dead=[_letter(job, "c", partition=1, error="again")],
        resolved=["a", "b"],
        finished=True,
    )
    assert [(d.item, d.state, d.partition) for d in store.dead_letters(job.id)] == [
        ("c", "dead", 1)
    ]


def _retry_of_a_paused_job_waits_for_resume(store: Store) -> None:
    job = _add(store, 1)
    assert _claim(store, job, "w") is not None
    assert _checkpoint(store, job, 0, "w", dead=[_letter(job, "a")])
    assert store.set_job_state(job.id, "paused", T0, expect=("running",))
    assert store.retry_dead_letters(job.id, PartitionRecord(job.id, 1, 0, "retry", "", ""), T0)
    assert store.get_job(job.id).state == "paused"


# -- rounds ---------------------------------------------------------------------------------


def _next_round_waits_for_every_partition(store: Store) -> None:
    job = _add(store, 2)
    assert _claim(store, job, "w") is not None
    assert _checkpoint(store, job, 0, "w", finished=True)
    assert not store.next_round(job.id, 0, [], "{}", T0)
    assert store.get_job(job.id).state == "running"


def _next_round_happens_exactly_once(store: Store) -> None:
    job = _add(store, 2)
    _finish_all(store, job)
    more = _parts(job, 1, first=2, round=1)
    assert store.next_round(job.id, 0, more, '{"seq": 20}', T0 + timedelta(seconds=1))
    # A second worker closing the same round changes nothing.
    assert not store.next_round(job.id, 0, _parts(job, 1, first=3, round=1), "{}", T0)
    advanced = store.get_job(job.id)
    assert (advanced.round, advanced.state, advanced.snapshot) == (1, "running", '{"seq": 20}')
    assert [p.number for p in store.job_partitions(job.id)] == [0, 1, 2]
    assert store.job_partitions(job.id)[2].round == 1
    # The last round adds nothing: the job is done.
    _finish_all(store, job)
    assert not store.next_round(job.id, 0, [], "{}", T0)
    assert store.next_round(job.id, 1, [], '{"seq": 20}', T0)
    assert store.get_job(job.id).state == "done"
    assert not store.next_round(job.id, 1, [], '{"seq": 20}', T0)


def _next_round_of_a_paused_job_is_refused(store: Store) -> None:
    job = _add(store, 1)
    _finish_all(store, job)
    assert store.set_job_state(job.id, "paused", T0, expect=("running",))
    assert not store.next_round(job.id, 0, [], "{}", T0)
    assert store.get_job(job.id).state == "paused"


def _next_round_racing_from_threads_is_won_once(store_url: str) -> None:
    stores = [load_store(store_url) for _ in range(3)] if "memory" not in store_url else []
    try:
        shared = stores or [load_store(store_url)]
        job = _add(shared[0], 1)
        _finish_all(shared[0], job)
        wins: list[bool] = []

        def close(n: int) -> None:
            s = shared[n % len(shared)]
            parts = _parts(job, 1, first=1 + n, round=1)
            wins.append(s.next_round(job.id, 0, parts, "{}", T0))

        threads = [threading.Thread(target=close, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wins.count(True) == 1
        assert len(shared[0].job_partitions(job.id)) == 2
    finally:
        for s in stores or shared:
            s.close()


def _runnable_jobs(store: Store) -> None:
    fresh = _add(store, 2)  # pending partitions
    held = _add(store, 1)
    assert _claim(store, held, "w") is not None  # held under a live lease: not runnable
    closing = _add(store, 1)
    _finish_all(store, closing)  # every partition done: a round to close
    paused = _add(store, 1)
    assert store.set_job_state(paused.id, "paused", T0, expect=("running",))
    finished = _add(store, 1)
    _finish_all(store, finished)
    assert store.next_round(finished.id, 0, [], "{}", T0)
    assert store.runnable_jobs(T0) == sorted([fresh.id, closing.id])
    # Once the lease lapses, the held job is runnable again.
    later = T0 + LEASE + timedelta(seconds=1)
    assert store.runnable_jobs(later) == sorted([fresh.id, held.id, closing.id])


# -- the suite, grouped (each group on one fresh store: fewer databases to create) ------------


def test_jobs_and_their_states(store: Store) -> None:
    _jobs_are_listed_newest_first_by_id_in_pages(store)  # first: it lists every job
    _a_job_is_stored_with_its_partitions(store)
    _set_job_state_checks_the_expected_state(store)
    _pausing_hands_running_partitions_back_and_refuses_their_checkpoints(store)
    _cancelling_hands_running_partitions_back_too(store)


def test_claims_and_checkpoints(store: Store) -> None:
    _claim_takes_pending_partitions_in_order_under_a_lease(store)
    _a_lapsed_lease_is_taken_over_and_the_old_holder_is_refused(store)
    _the_concurrency_limit_counts_live_leases_only(store)
    _checkpoints_add_up_and_finish(store)
    _a_checkpoint_of_another_job_or_partition_is_refused(store)


def test_dead_letters_and_retry(store: Store) -> None:
    _dead_letters_come_with_their_checkpoint_and_are_paged_by_item(store)
    _an_item_failing_again_replaces_its_letter_and_resolved_ones_go(store)
    _retry_sends_letters_back_in_a_partition_of_their_own(store)
    _retry_of_a_paused_job_waits_for_resume(store)


def test_rounds_and_runnable_jobs(store: Store) -> None:
    _runnable_jobs(store)  # first: it lists every runnable job
    _next_round_waits_for_every_partition(store)
    _next_round_happens_exactly_once(store)
    _next_round_of_a_paused_job_is_refused(store)


def test_races_between_workers(store_url: str) -> None:
    """Claims and round closings from several connections at once."""
    _claims_racing_from_threads_respect_the_limit(store_url)
    _next_round_racing_from_threads_is_won_once(store_url)


def test_live_latency_is_the_highest_fresh_one_published(store: Store) -> None:
    assert store.live_latency(T0) is None  # nothing published
    store.publish_live_latency("host:1", 0.004, 120, T0)
    store.publish_live_latency("host:2", 0.0125, 80, T0 + timedelta(seconds=1))
    assert store.live_latency(T0) == pytest.approx(0.0125)
    assert store.live_latency(T0 + timedelta(seconds=2)) is None  # both stale by then
    store.publish_live_latency("host:2", 0.002, 90, T0 + timedelta(seconds=3))  # replaced
    assert store.live_latency(T0) == pytest.approx(0.004)
    assert store.live_latency(T0 + timedelta(seconds=3)) == pytest.approx(0.002)
    # A source silent for an hour is forgotten when another one publishes.
    store.publish_live_latency("host:3", 0.001, 30, T0 + timedelta(hours=1, seconds=2))
    assert store.live_latency(T0) == pytest.approx(0.002)  # host:1 went, host:2 stays
