"""The limits a job runs under beside live traffic: the latency window, the adaptive duty cycle,
the rate limit, and the short GIL handoff while a job runs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest
from reprocess_support import NS, add_tags

import reeldb
from reeldb.reprocess import Job, LatencyWindow
from reeldb.reprocess._limits import (
    START_DUTY,
    SWITCH_INTERVAL,
    AdaptiveLimit,
    LatencyPublisher,
    RateLimit,
    published_latency,
    quick_handoff,
)


@pytest.fixture
def default_interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(before)


def test_the_window_reports_p99_of_recent_requests_once_it_has_enough() -> None:
    window = LatencyWindow(seconds=0.2)
    for _ in range(19):
        window.record(0.001)
    assert window.p99() is None  # too few to tell
    window.record(0.001)
    assert window.p99() == 0.001
    for n in range(100):
        window.record(0.5 if n >= 98 else 0.002)
    assert window.p99() == 0.5  # the second slowest of 120 is the p99
    time.sleep(0.25)
    assert window.p99() is None  # all of them too old now


def test_the_adaptive_limit_starts_gently_and_speeds_up_within_budget() -> None:
    fast = LatencyWindow()
    for _ in range(50):
        fast.record(0.001)
    limit = AdaptiveLimit(0.010, window=fast, sleep=id)
    assert limit.duty == START_DUTY == 0.1
    assert limit.after_batch(0.1) == pytest.approx(0.1 * (1 / 0.2 - 1))  # a tenth more
    for _ in range(20):
        limit.after_batch(0.1)
    assert limit.duty == 1.0 and limit.after_batch(0.1) == 0.0  # full speed, no rest
    assert AdaptiveLimit(None, window=fast, sleep=id).duty == 1.0  # no budget: no limit


def test_the_adaptive_limit_halves_its_duty_over_budget_and_recovers_slowly() -> None:
    window = LatencyWindow()
    pauses: list[float] = []
    limit = AdaptiveLimit(0.010, window=window, sleep=pauses.append)
    limit.duty = 1.0  # as after a while within budget
    for _ in range(50):
        window.record(0.050)  # p99 50 ms, over the 10 ms budget
    assert limit.after_batch(0.1) == pytest.approx(0.1)  # duty 1/2: rest as long as it worked
    assert limit.after_batch(0.1) == pytest.approx(0.3)  # 1/4
    for _ in range(10):
        limit.after_batch(0.1)
    assert limit.duty == 0.02  # the floor: it never stops
    fast = LatencyWindow()
    for _ in range(50):
        fast.record(0.001)
    limit.window = fast
    limit.after_batch(0.1)
    assert limit.duty == pytest.approx(0.12)  # a tenth at a time
    assert AdaptiveLimit(None, window=window, sleep=pauses.append).after_batch(1.0) == 0.0


def test_the_adaptive_limit_probes_when_no_request_is_measured() -> None:
    probes = iter([0.001] * 4 + [0.2] * 10)
    limit = AdaptiveLimit(0.01, window=LatencyWindow(), probe=lambda: next(probes), sleep=id)
    assert limit.observed() is None  # fewer than five probes
    for _ in range(3):
        limit.observed()
    assert limit.observed() == 0.2
    limit.after_batch(0.1)
    assert limit.duty == START_DUTY / 2


def test_the_adaptive_limit_reads_what_serving_processes_publish(
    mdb: reeldb.Database,
) -> None:
    window = LatencyWindow()
    publisher = LatencyPublisher(mdb.store, window)
    assert not publisher.publish()  # too few requests: nothing to publish
    for _ in range(50):
        window.record(0.040)
    assert publisher.publish()
    probes: list[float] = []
    limit = AdaptiveLimit(
        0.010,
        window=LatencyWindow(),  # this process serves nothing
        published=published_latency(mdb.store),
        probe=lambda: probes.append(0.0) or 0.0,
        sleep=id,
    )
    assert limit.observed() == pytest.approx(0.040)
    limit.after_batch(0.1)
    assert limit.duty == START_DUTY / 2 and probes == []  # the published p99, not a probe
    own = LatencyWindow()
    for _ in range(50):
        own.record(0.001)
    limit.window = own  # a process that serves requests reads its own first
    assert limit.observed() == pytest.approx(0.001)


def test_the_publisher_publishes_in_the_background_until_stopped(mdb: reeldb.Database) -> None:
    window = LatencyWindow()
    for _ in range(30):
        window.record(0.003)
    publisher = LatencyPublisher(mdb.store, window, every=0.01).start()
    deadline = time.monotonic() + 10
    while published_latency(mdb.store)() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    publisher.stop()
    assert published_latency(mdb.store)() == pytest.approx(0.003)


def test_the_rate_limit_spaces_batches_out() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    rate = RateLimit(100, clock=lambda: now[0], sleep=sleep)
    assert rate.acquire(50) == 0.0
    assert rate.acquire(50) == pytest.approx(0.5)
    assert rate.acquire(100) == pytest.approx(0.5)
    assert RateLimit(0).acquire(10**6) == 0.0


def test_quick_handoff_nests_and_gives_the_interval_back(default_interval: float) -> None:
    with quick_handoff():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        with quick_handoff():
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)  # still one inside
    assert sys.getswitchinterval() == pytest.approx(default_interval)
    shorter = SWITCH_INTERVAL / 2
    sys.setswitchinterval(shorter)  # an application's shorter one is kept
    with quick_handoff():
        assert sys.getswitchinterval() == pytest.approx(shorter, rel=0.05)
    assert sys.getswitchinterval() == pytest.approx(shorter, rel=0.05)


def test_a_running_job_shortens_the_gil_handoff_until_it_ends(
    mdb: reeldb.Database, default_interval: float
) -> None:
    add_tags(mdb, [f"h{n}" for n in range(8)])
    seen: list[float] = []

    def during(job: Job) -> None:
        seen.append(sys.getswitchinterval())

    spec = {
        "name": "handoff",
        "source": {"namespace": NS, "annotation_type": "TAG"},
        "processor": {"kind": "backfill", "function": "reprocess_functions:add_source"},
        "limits": {"partitions": 2, "batch": 2, "concurrency": 2},
    }
    done = mdb.reprocess.run(mdb.reprocess.submit(spec).id, progress=during)
    assert done.state == "done"
    assert seen and all(s == pytest.approx(SWITCH_INTERVAL) for s in seen)
    assert sys.getswitchinterval() == pytest.approx(default_interval)
    # Two jobs at once in two threads: the interval comes back when the last one ends.
    other = mdb.reprocess.submit({**spec, "name": "other"})
    thread = threading.Thread(target=mdb.reprocess.run, args=(other.id,))
    thread.start()
    thread.join()
    assert sys.getswitchinterval() == pytest.approx(default_interval)
