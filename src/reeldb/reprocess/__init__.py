"""Reprocessing: jobs that extract what reeldb stores and process it beside live traffic.

A job is *source → processor → sink* (`JobSpec`): the documents of a DataStore or the
annotations of a namespace (or of one type), seen as of a snapshot and optionally caught
up with what is written meanwhile; a processor (``reindex``, ``backfill``, ``migrate``,
``export-iceberg``, or a user's function); and a sink (reeldb itself, an index
generation, Iceberg tables, JSON Lines or Parquet files). Jobs are cut into partitions
that workers take under leases and checkpoint batch by batch, so a job resumes where it
stopped, several workers share one job, and failed items end in a dead-letter list that
can be retried. docs/reprocessing.md explains it all.

```python
job = db.reprocess.submit("add-colorspace.toml")
db.reprocess.run(job.id)          # or let `reeldb worker` run it
```
"""

from reeldb.reprocess._files import read_rows
from reeldb.reprocess._limits import (
    LIVE,
    AdaptiveLimit,
    LatencyPublisher,
    LatencyWindow,
    RateLimit,
)
from reeldb.reprocess._processors import PLUGIN_GROUP, load_function
from reeldb.reprocess._service import Job, JobProgress, Reprocessing
from reeldb.reprocess._spec import (
    JobSpec,
    LimitsSpec,
    ProcessorSpec,
    SinkSpec,
    SourceSpec,
    load_spec,
)

__all__ = [
    "LIVE",
    "PLUGIN_GROUP",
    "AdaptiveLimit",
    "Job",
    "JobProgress",
    "JobSpec",
    "LatencyPublisher",
    "LatencyWindow",
    "LimitsSpec",
    "ProcessorSpec",
    "RateLimit",
    "Reprocessing",
    "SinkSpec",
    "SourceSpec",
    "load_function",
    "load_spec",
    "read_rows",
]
