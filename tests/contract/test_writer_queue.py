"""The writers' queue of SQLite files: turns are handed over fairly between processes.

Open-file-description locks belong to an open file, not to a process, so two queues in one
test process contend exactly as two service workers do.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from reeldb.errors import BackendUnavailableError
from reeldb.store.sqlite._queue import WriterQueue

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the fair queue is Linux's")


def test_a_writer_that_just_wrote_queues_behind_a_waiting_one(tmp_path: Path) -> None:
    first, second = WriterQueue(tmp_path / "db", 5), WriterQueue(tmp_path / "db", 5)
    order: list[str] = []
    first.enter()

    def write_second() -> None:
        second.enter()
        order.append("second")
        time.sleep(0.02)
        order.append("second done")
        second.leave()

    waiting = threading.Thread(target=write_second)
    waiting.start()
    time.sleep(0.05)  # the second writer now holds the entry and waits for the turn
    assert order == []
    first.leave()
    first.enter()  # at once again: must not overtake the waiting writer
    order.append("first")
    waiting.join()
    assert order == ["second", "second done", "first"]
    first.leave()
    first.close()
    second.close()


def test_waiting_past_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    holder, impatient = WriterQueue(tmp_path / "db", 5), WriterQueue(tmp_path / "db", 0.05)
    holder.enter()
    with pytest.raises(BackendUnavailableError, match="busy_timeout"):
        impatient.enter()
    holder.leave()
    impatient.enter()  # the failed attempt left nothing behind
    impatient.leave()
    holder.close()
    impatient.close()
