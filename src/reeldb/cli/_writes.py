"""``reeldb blob``, ``reeldb request``, ``reeldb worker``: large payloads, asynchronous writes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from reeldb import _wire
from reeldb.cli._common import get_state, progress_bar
from reeldb.cli._output import Output
from reeldb.database import Database
from reeldb.errors import ReelError, ValidationError
from reeldb.model.requests import WriteRequest, WriteState
from reeldb.store import redact_url
from reeldb.store.base import BlobRecord

__all__ = [
    "WorkerProcess",
    "blob_app",
    "file_chunks",
    "request_app",
    "stream_document",
    "worker",
]

blob_app = typer.Typer(help="Blobs: large payloads uploaded before the writes that use them.")
request_app = typer.Typer(help="Asynchronous writes: where they stand (reeldb doc put --async).")

NamespaceArg = Annotated[str, typer.Argument(help="The namespace the blob belongs to.")]
_READ = 1024 * 1024


def file_chunks(path: Path, advance: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """A file's bytes in 1 MiB chunks (never the whole file in memory).

    Args:
        path: The file.
        advance: Called with each chunk's size (a progress bar).

    Yields:
        The chunks.

    Raises:
        ValidationError: The file cannot be read.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        while chunk := handle.read(_READ):
            if advance is not None:
                advance(len(chunk))
            yield chunk


def upload_file(db: Database, namespace: str, path: Path, out: Output) -> BlobRecord:
    """Upload a file as a blob with a progress bar (bytes).

    Args:
        db: The database.
        namespace: The blob's namespace.
        path: The file.
        out: Where the bar and messages go.

    Returns:
        The stored blob.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    record = db.blobs.create(namespace, size=size)
    with progress_bar(f"uploading {path.name}", disable=out.json) as bar:
        task = bar.add_task("upload", total=size)
        return db.blobs.upload(
            record.id,
            file_chunks(path, lambda n: bar.advance(task, n)),
            namespace=namespace,
        )


def stream_document(
    db: Database, datastore: str, mid: dict[str, str], path: Path, out: Output
) -> Any:
    """``reeldb doc put --stream``: upload a file, then validate and index it in this process.

    Args:
        db: The database.
        datastore: ``namespace/analysis_type/version``.
        mid: The media ID.
        path: The document file.
        out: Where progress goes.

    Returns:
        The stored document.
    """
    namespace = datastore.split("/", 1)[0]
    record = upload_file(db, namespace, path, out)
    with progress_bar("validating, then indexing", disable=out.json) as bar:
        task = bar.add_task("write", total=record.size or 0)
        phase = {"total": record.size or 0}

        def progress(done: int, total: int) -> None:
            if total != phase["total"]:  # the second pass counts rows, not bytes
                phase["total"] = total
                bar.reset(task, total=total)
            bar.update(task, completed=done)

        return db.put_document_from_blob(datastore, mid, record.id, progress=progress)


def show_request(out: Output, found: WriteRequest) -> None:
    """Print a write request: its JSON, or a line (and the violations if it failed)."""
    if out.json:
        out.data(_wire.write_request(found))
        return
    where = f" → document {found.document_id}" if found.document_id else ""
    out.line(f"write request {found.id}: {found.state.value}{where}")
    if found.error is not None:
        out.line(f"  {found.error.get('detail', '')}")
        for violation in found.error.get("violations", [])[:20]:
            out.line(f"  {violation['pointer'] or '/'}: {violation['message']}")


@blob_app.command("put")
def blob_put(
    ctx: typer.Context,
    namespace: NamespaceArg,
    source: Annotated[Path, typer.Argument(help="The file to upload.")],
) -> None:
    """Upload a file as a blob (streamed, encrypted at rest); print its id."""
    state = get_state(ctx)
    record = upload_file(state.db, namespace, source, state.out)
    if state.out.json:
        state.out.data(_wire.blob_record(record))
    else:
        state.out.line(f"blob {record.id}: {record.size} bytes, sha256 {record.sha256}")


@blob_app.command("gc")
def blob_gc(ctx: typer.Context) -> None:
    """Delete blobs no document uses, older than the blob_grace setting."""
    state = get_state(ctx)
    total = 0
    while count := state.db.blobs.collect_garbage():
        total += count
    if state.out.json:
        state.out.data({"deleted": total})
    else:
        state.out.line(f"deleted {total} unused blob{'s' if total != 1 else ''}")


@request_app.command("status")
def request_status(
    ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="The request id.")]
) -> None:
    """Where an asynchronous write stands."""
    state = get_state(ctx)
    show_request(state.out, state.db.get_write_request(request_id))


@request_app.command("wait")
def request_wait(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 600.0,
) -> None:
    """Wait until an asynchronous write is INDEXED or FAILED; exit 1 if it failed."""
    state = get_state(ctx)
    found = state.db.wait_write_request(request_id, timeout=timeout)
    show_request(state.out, found)
    if found.state is WriteState.FAILED:
        raise typer.Exit(1)
    if not found.finished:
        raise ReelError(f"write request {request_id} is still {found.state.value}")


@request_app.command("list")
def request_list(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="The namespace.")],
    unfinished: Annotated[bool, typer.Option(help="Only those still running.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 50,
) -> None:
    """A namespace's asynchronous writes, newest first."""
    state = get_state(ctx)
    found = state.db.list_write_requests(namespace, unfinished=unfinished, limit=limit)
    if state.out.json:
        state.out.data([_wire.write_request(f) for f in found])
        return
    state.out.table(
        f"Write requests of {namespace} (newest first)",
        ["request id", "state", "datastore", "document id", "created"],
        [
            (f.id, f.state.value, f.datastore, f.document_id or "", f.created_at.isoformat())
            for f in found
        ],
        found,
    )


def worker(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Option(
            help="A stable name, unique among workers: restarted with it, a worker resumes "
            "the writes it was running (default: the host name)."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Writes run at once.")] = 2,
    takeover_after: Annotated[
        float,
        typer.Option(help="Seconds of silence after which another worker's writes are resumed."),
    ] = 60.0,
    jobs: Annotated[
        int, typer.Option(min=1, help="Reprocessing jobs run at once (reeldb reprocess).")
    ] = 2,
) -> None:
    """Run asynchronous writes and reprocessing jobs until interrupted."""
    from reeldb.workflows.writes import Worker

    state = get_state(ctx)
    runner = Worker(
        state.db,
        name=name,
        concurrency=concurrency,
        heartbeat=min(5.0, takeover_after / 4),
        takeover_after=takeover_after,
        job_concurrency=jobs,
    )
    state.out.line(f"reeldb worker {runner.name} on {redact_url(state.db.url)}; Ctrl-C stops it")
    with contextlib.suppress(KeyboardInterrupt):
        runner.run_forever()


_PR_SET_PDEATHSIG = 1


class WorkerProcess:
    """``reeldb worker`` in a child process: the worker `reeldb serve` runs by default.

    Asynchronous writes and reprocessing jobs run there, not in the serving process: a
    batch in the same interpreter holds the GIL, and every request that overlaps it waits.
    Measured with ``benchmarks/reprocess_bench.py`` (300k annotations, 15 s windows, SQLite,
    two runs): beside an unlimited backfill in the serving process, the live read p99 rose
    +419 % and +485 % (6.8-7.7k items/s); beside the same job in a process of its own, +4 %
    and +23 % (10.1-10.4k items/s). With the adaptive limit: +23 % and +41 % at 433-600
    items/s in the serving process; -8 % and +13 % at 6.3-6.9k items/s beside it.

    The database URL goes by the environment, not the command line (which any local user
    can read). On Linux the worker dies with the service (``PR_SET_PDEATHSIG``: a ``kill -9``
    of the service stops both, as when the worker was a thread of it); a stopped service
    interrupts it, and it finishes cleanly (its running steps resume at the next start). It
    has a process group of its own, so signals sent to the service's group (a Ctrl-C at the
    terminal) reach it only through the service.

    Args:
        database: The service's database URL.
        name: The worker's stable name.
    """

    def __init__(self, database: str, name: str) -> None:
        parent = os.getpid()

        def die_with_parent() -> None:  # in the child, before it runs Python
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the service died before the line above
                os._exit(1)

        self.process = subprocess.Popen(
            [sys.executable, "-m", "reeldb", "worker", "--name", name],
            env={**os.environ, "REELDB_DATABASE": database},
            stdout=subprocess.DEVNULL,
            # Its own process group: a Ctrl-C at the terminal reaches the service alone,
            # which then stops the worker once (a second interrupt would cut its shutdown).
            process_group=0,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Interrupt the worker and wait for it (killed if it takes over ``timeout`` s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
