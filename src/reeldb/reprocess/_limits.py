"""How fast a job may go: a rate limit, and an adaptive limit driven by live latency.

The service records the duration of every request it answers in `LIVE` (a sliding window
per process), and each serving process publishes the window's p99 in the database twice a
second (`LatencyPublisher`). A job with a latency budget reads the p99 after each batch:
its own process's if that serves requests, else the highest one published in the last
seconds (a worker process, `reeldb worker`s, any host of a PostgreSQL deployment). It
starts at a tenth of full speed (`START_DUTY`). Above the budget it halves its duty cycle
(it sleeps as long as it worked, then three times as long, ...); below it, it gives back a
tenth at a time (additive increase, multiplicative decrease, as TCP does). With no live
traffic anywhere, a job times a small read of its own instead: the latency its own load
adds to the database is what live requests would feel.

While a job runs, the interpreter hands the GIL over every `SWITCH_INTERVAL` seconds (0.1 ms)
instead of every 5 ms (`quick_handoff`): a request that needs the GIL while a batch holds it waits
that long at each handoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from reeldb.store.base import JobStore

log = logging.getLogger(__name__)

__all__ = [
    "LIVE",
    "PUBLISH_EVERY",
    "START_DUTY",
    "SWITCH_INTERVAL",
    "AdaptiveLimit",
    "LatencyPublisher",
    "LatencyWindow",
    "RateLimit",
    "published_latency",
    "quick_handoff",
]

SWITCH_INTERVAL: Final = 0.0001
"""Seconds a thread holds the GIL while another waits for it, as long as a job runs here.

Python's default is 5 ms. A job's batch is pure Python for most of its time, and a live
request beside it in the same process (the service's embedded worker) waits for the GIL up
to the interval each time it needs it back. The interval only matters while a thread waits:
a job alone runs as fast either way. Measured with `benchmarks/reprocess_bench.py` (SQLite),
the live read p99 beside an unlimited backfill: 32-38 ms at 5 ms, 10 ms at 0.5 ms (50k
annotations, 4,449-4,599 items/s either way); 13.3-14.0 ms at 0.5 ms and 8.2-8.3 ms at 0.1 ms
(20k annotations, 20 s windows, two runs each interleaved on a slower VM, 825-875 items/s
either way).
"""

_WINDOW_SECONDS: Final = 5.0
_MIN_SAMPLES: Final = 20
_MIN_DUTY: Final = 0.02

START_DUTY: Final = 0.1
"""The duty cycle a job with a latency budget starts at: it takes a tenth more after each batch
that finds the live p99 within budget. Starting at full speed, its first batches (until the
p99 window showed them) slowed the live reads before it backed off: on PostgreSQL, five
batches in 3.5 s, within the 10 s a p99 is measured over, cost it +40 % (reprocess_bench)."""


class LatencyWindow:
    """The durations of recent requests in this process, for their p99.

    Args:
        seconds: How far back the window reaches.
        size: At most this many samples are kept.
    """

    def __init__(self, seconds: float = _WINDOW_SECONDS, size: int = 4096) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, float]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, duration: float) -> None:
        """Add a request's duration (seconds)."""
        self._samples.append((time.monotonic(), duration))  # deque.append is atomic

    def p99(self) -> float | None:
        """The p99 of the window's durations, in seconds (None: too few requests)."""
        return self.stats()[0]

    def stats(self) -> tuple[float | None, int]:
        """The p99 of the window's durations (None: too few requests) and their count."""
        horizon = time.monotonic() - self.seconds
        with self._lock:
            recent = sorted(d for t, d in list(self._samples) if t >= horizon)
        if len(recent) < _MIN_SAMPLES:
            return None, len(recent)
        return recent[min(len(recent) - 1, int(len(recent) * 0.99))], len(recent)


LIVE: Final = LatencyWindow()
"""The request durations of this process (the HTTP service records every request)."""

PUBLISH_EVERY: Final = 0.5
"""Seconds between two publications of a serving process's live p99 (`LatencyPublisher`)."""

_FRESH: Final = timedelta(seconds=4 * PUBLISH_EVERY)
"""A published p99 older than this is stale: its process stopped, or serves nothing now."""


class LatencyPublisher:
    """Publishes this process's live p99 (`LIVE`) in the database, for jobs elsewhere.

    A job running in another process (the service's worker process, a ``reeldb worker``)
    cannot read this process's window: every `PUBLISH_EVERY` seconds in which it holds
    enough requests, its p99 is written (one small upsert; nothing while idle).

    Args:
        store: The database's store.
        window: The window published.
        every: Seconds between publications.
    """

    def __init__(
        self, store: JobStore, window: LatencyWindow = LIVE, every: float = PUBLISH_EVERY
    ) -> None:
        self.store = store
        self.window = window
        self.every = every
        self.source = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> bool:
        """Publish the window's p99 now, if it holds enough requests; whether it did."""
        p99, samples = self.window.stats()
        if p99 is None:
            return False
        self.store.publish_live_latency(self.source, p99, samples, datetime.now(UTC))
        return True

    def start(self) -> LatencyPublisher:
        """Publish in a daemon thread until `stop`."""
        self._thread = threading.Thread(target=self._run, name="reeldb-live-latency", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.publish()
            except Exception:  # the database is busy or closing: the next round tries again
                log.debug("could not publish the live latency", exc_info=True)


def published_latency(store: JobStore) -> Callable[[], float | None]:
    """Reads the highest live p99 published lately by serving processes (`LatencyPublisher`)."""

    def read() -> float | None:
        return store.live_latency(datetime.now(UTC) - _FRESH)

    return read


_handoff_lock = threading.Lock()
_handoff_users = 0
_handoff_saved = 0.0


@contextlib.contextmanager
def quick_handoff() -> Iterator[None]:
    """Shorten the interpreter's switch interval to `SWITCH_INTERVAL` while inside.

    Process-wide (`sys.setswitchinterval`): runs in several threads nest, and the first
    interval comes back when the last one leaves. A shorter interval set by the application
    is kept.
    """
    global _handoff_users, _handoff_saved
    with _handoff_lock:
        if _handoff_users == 0:
            _handoff_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_handoff_saved, SWITCH_INTERVAL))
        _handoff_users += 1
    try:
        yield
    finally:
        with _handoff_lock:
            _handoff_users -= 1
            if _handoff_users == 0:
                sys.setswitchinterval(_handoff_saved)


class RateLimit:
    """At most ``rate`` items per second (0: unlimited), shared by the threads that use it.

    Args:
        rate: Items per second.
        clock: The clock (tests).
        sleep: The sleep (tests).
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._lock = threading.Lock()

    def acquire(self, items: int) -> float:
        """Wait until ``items`` more items fit in the rate.

        Returns:
            Seconds waited.
        """
        if self.rate <= 0 or items <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + items / self.rate
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)


class AdaptiveLimit:
    """A duty cycle that shrinks while live p99 latency is above a budget.

    It starts at `START_DUTY` and grows while the latency stays within the budget.

    Args:
        budget: The p99 latency budget, in seconds (None: never slow down).
        window: Where live latency is read.
        published: Reads the p99 other processes published (`published_latency`), when the
            window has too few requests (None: none).
        probe: Times a small read when nothing else measures live latency (None: no probe).
        sleep: The sleep (tests).
    """

    def __init__(
        self,
        budget: float | None,
        *,
        window: LatencyWindow = LIVE,
        published: Callable[[], float | None] | None = None,
        probe: Callable[[], float] | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.budget = budget
        self.window = window
        self.published = published
        self.probe = probe
        self.duty = START_DUTY if budget is not None else 1.0
        self._sleep = sleep
        self._probes: deque[float] = deque(maxlen=200)

    def observed(self) -> float | None:
        """The live p99 latency now (seconds), or None if nothing measures it."""
        p99 = self.window.p99()
        if p99 is None and self.published is not None:
            p99 = self.published()
        if p99 is not None or self.probe is None:
            return p99
        self._probes.append(self.probe())
        if len(self._probes) < 5:
            return None
        ordered = sorted(self._probes)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def after_batch(self, worked: float) -> float:
        """Adjust to the live latency after a batch that took ``worked`` seconds; pause.

        Returns:
            Seconds paused.
        """
        if self.budget is None:
            return 0.0
        p99 = self.observed()
        if p99 is not None and p99 > self.budget:
            self.duty = max(_MIN_DUTY, self.duty / 2)
        else:
            self.duty = min(1.0, self.duty + 0.1)
        pause = worked * (1 / self.duty - 1)
        if pause > 0:
            self._sleep(pause)
        return pause
