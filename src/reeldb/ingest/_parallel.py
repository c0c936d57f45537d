"""Cutting a document into rows in a second process, while this one writes the rows.

A streamed write's second pass is two jobs of about the same size: parsing and cutting the
document (Python) and inserting the rows (SQLite). Threads cannot share them out (both hold
the GIL most of the time), so for a large document a child process cuts: this process
reads the blob (decrypting it) on a thread and feeds the plaintext to the child's standard
input; the child walks it, cuts rows and writes the batches to its standard output,
pickled; this process writes them to the database.

The child is a fresh interpreter running this module (``python -m``), not a fork and not
`multiprocessing`: it shares nothing (no key, no database, no threads) and never re-runs the
caller's main script. It ends when its input closes, so it cannot outlive a killed parent.
Messages on both pipes are framed: 8 bytes of length, then the bytes.
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any, Final

from reeldb.index.rows import Column, DocumentRows, RowCutter
from reeldb.ingest import stream
from reeldb.ingest.plan import Heads

__all__ = ["Batch", "cut_in_child"]

Batch = tuple[int, int, DocumentRows, int]
"""``(row offset, chunk offset, rows, events cut so far)``."""

_LENGTH: Final = struct.Struct(">Q")
_BATCH, _ERROR = b"b", b"e"


def _write(out: IO[bytes], payload: bytes) -> None:
    out.write(_LENGTH.pack(len(payload)))
    out.write(payload)


def _read(source: IO[bytes]) -> bytes | None:
    """One framed message, or None at the end of the stream."""
    head = source.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = source.read(length)
    if len(payload) < length:
        return None
    return payload


def _main() -> None:  # pragma: no cover - runs in the child (covered by the tests' children)
    from reeldb.ingest._service import batches_of

    source, out = sys.stdin.buffer, sys.stdout.buffer
    job = _read(source)
    if job is None:
        return
    heads_json, columns, chunk_bytes, batch_rows = pickle.loads(job)

    def received() -> Iterator[bytes]:
        while (chunk := _read(source)) is not None and chunk:
            yield chunk

    try:
        cutter = RowCutter(columns, chunk_bytes)
        heads = Heads.from_json(heads_json)
        for batch in batches_of(stream.walk(received()), cutter, heads, batch_rows):
            _write(out, _BATCH + pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    except BrokenPipeError:
        return
    except Exception as exc:  # handed to the parent, which raises it
        _write(out, _ERROR + pickle.dumps(exc))
    out.flush()


def cut_in_child(
    chunks: Iterator[bytes],
    heads: Heads,
    columns: Sequence[Column],
    chunk_bytes: int,
    batch_rows: int,
) -> Iterator[Batch]:
    """A document's batches of rows, cut by a child process from the given plaintext.

    Args:
        chunks: The document's bytes (read on a thread of this process).
        heads: From the first pass.
        columns: The columns to cut.
        chunk_bytes: The index's chunk size.
        batch_rows: Rows per batch.

    Yields:
        The batches, as `reeldb.ingest._service.batches_of` gives them.

    Raises:
        Exception: Whatever the read of the blob or the child raised.
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "reeldb.ingest._parallel"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    child_in, child_out, child_err = child.stdin, child.stdout, child.stderr
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            _write(
                child_in, pickle.dumps((heads.to_json(), list(columns), chunk_bytes, batch_rows))
            )
            for chunk in chunks:
                if chunk:
                    _write(child_in, chunk)
            _write(child_in, b"")
        except (BrokenPipeError, OSError):
            pass  # the child stopped; it says why
        except BaseException as exc:  # a read that failed (a missing or altered blob)
            failure.append(exc)
        finally:
            with contextlib.suppress(OSError):
                child_in.close()

    feeder = threading.Thread(target=feed, name="reeldb-feed", daemon=True)
    feeder.start()
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(child_err.read()), daemon=True)
    drain.start()
    try:
        while (message := _read(child_out)) is not None:
            item: Any = pickle.loads(message[1:])
            if message[:1] == _ERROR:
                feeder.join()
                raise failure[0] if failure else item
            yield item
        feeder.join()
        if failure:
            raise failure[0]
        if child.wait() != 0:
            drain.join(timeout=5)
            detail = b"".join(errors).decode(errors="replace").strip().splitlines()
            raise RuntimeError(
                "the process cutting the document failed"
                + (f": {detail[-1]}" if detail else f" (exit {child.returncode})")
            )
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child_out.close()
        feeder.join(timeout=5)
        drain.join(timeout=5)
        child_err.close()


if __name__ == "__main__":  # pragma: no cover - the child
    _main()
