"""A reprocessing worker process for the crash and scale-out tests.

``python reprocess_worker.py URL JOB_ID WORKER THREADS [LEASE_SECONDS [GO_FILE]]``: runs the
job until it finishes, then prints, as JSON, the partitions this worker was seen holding. The
lease is shortened (default 2 s) so that the partitions of a killed worker lapse quickly.
With ``GO_FILE`` it prints ``ready`` once connected and starts when that file exists.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import reeldb
from reeldb.reprocess import Job, _service


def main() -> None:
    url, job_id, worker, threads = sys.argv[1:5]
    lease = float(sys.argv[5]) if len(sys.argv) > 5 else 2.0
    _service.LEASE = timedelta(seconds=lease)  # type: ignore[misc]
    held: set[int] = set()

    def seen(job: Job) -> None:
        held.update(
            p.number for p in job.partitions if (p.owner or "").rpartition(":")[0] == worker
        )

    with reeldb.connect(url) as db:
        if len(sys.argv) > 6:
            print("ready", flush=True)
            go = Path(sys.argv[6])
            while not go.exists():
                time.sleep(0.01)
        job = db.reprocess.run(job_id, worker=worker, threads=int(threads), progress=seen)
    print(json.dumps({"state": job.state, "held": sorted(held)}))


if __name__ == "__main__":
    main()
