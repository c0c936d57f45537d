"""Reprocessing jobs run by workers, as durable workflows (DBOS) beside the writes.

A worker looks for running jobs with work to take (`JobStore.runnable_jobs`) and starts
one workflow per job on the ``reeldb_reprocess`` queue. The workflow's single step runs
the job's partition loop (`Reprocessing.run`) until nothing is left to take: the
partitions' leases and checkpoints in reeldb's own tables say who does what, so any
number of workers (on one machine, or several sharing PostgreSQL) share a job, and a
workflow interrupted by a crash is resumed by DBOS when its worker comes back, at the
partition checkpoints. A job paused, cancelled or finished ends its workflows.
"""

from __future__ import annotations

import threading
from typing import Final

from dbos import DBOS

__all__ = ["JOB_QUEUE", "reprocess_job", "set_stop"]

JOB_QUEUE: Final = "reeldb_reprocess"

_stop = threading.Event()


def set_stop(event: threading.Event) -> None:
    """The event that stops the jobs of this process at their next checkpoint (a worker's)."""
    global _stop
    _stop = event


@DBOS.step(name="reeldb.reprocess.run", retries_allowed=True, max_attempts=3, interval_seconds=2.0)
def _run(job_id: str, worker: str) -> str:
    from reeldb.workflows.writes import _db

    return _db().reprocess.run(job_id, worker=worker, stop=_stop, wait=False).state


@DBOS.workflow(name="reeldb.reprocess_job")
def reprocess_job(job_id: str, worker: str) -> str:
    """Take and process a job's partitions until none is left to take.

    Args:
        job_id: The job.
        worker: The worker's name (partition owner prefix).

    Returns:
        The job's state when this worker stopped.
    """
    return _run(job_id, worker)
