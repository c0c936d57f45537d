"""File sinks: a job's rows as JSON Lines or Parquet files, one file per batch.

A batch's file is named after its partition and its first item's key and written
atomically (a temporary file renamed into place). A batch redone after a crash (its
checkpoint was not recorded) therefore replaces its own file: the directory never holds a
row twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from reeldb.errors import ConfigError

__all__ = ["FileSink", "read_rows"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_STALE_SECONDS = 3600.0


class FileSink:
    """Rows to files under ``<path>/<job id>/``.

    Args:
        path: The directory (created if missing).
        kind: ``jsonl`` or ``parquet``.
        job_id: The job.
    """

    def __init__(self, path: str, kind: str, job_id: UUID) -> None:
        self.kind = kind
        self.directory = Path(path) / str(job_id)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create sink directory {self.directory}: {exc}") from None
        # A runner killed while writing a batch leaves its temporary file; one older than
        # any batch takes is removed (a live runner's, younger, is left alone).
        stale = time.time() - _STALE_SECONDS
        for temp in self.directory.glob(".part-*.tmp"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < stale:
                    temp.unlink()

    def write(self, partition: int, first_key: str, rows: Sequence[dict[str, Any]]) -> Path:
        """Write one batch's rows (replacing the file of the same batch, if any).

        Returns:
            The file.
        """
        name = f"part-{partition:05d}-{_UNSAFE.sub('', first_key)}.{self.kind}"
        target = self.directory / name
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".part-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                if self.kind == "jsonl":
                    out.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    pq.write_table(pa.Table.from_pylist(list(rows)), out)
                out.flush()
                os.fsync(out.fileno())
            Path(temp).replace(target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target


def read_rows(directory: str | Path) -> list[dict[str, Any]]:
    """Every row a file sink wrote under a directory, file by file (tests, tools).

    Args:
        directory: ``<path>/<job id>``.

    Returns:
        The rows.
    """
    rows: list[dict[str, Any]] = []
    for file in sorted(Path(directory).glob("part-*")):
        if file.suffix == ".jsonl":
            rows += [orjson.loads(line) for line in file.read_bytes().splitlines() if line]
        else:
            import pyarrow.parquet as pq

            rows += pq.read_table(file).to_pylist()
    return rows
