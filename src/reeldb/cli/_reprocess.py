"""``reeldb reprocess``: jobs that reindex, backfill, migrate or export what is stored.

docs/reprocessing.md explains jobs; this module only turns commands into `db.reprocess`
calls and shows the results.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from reeldb.cli._common import get_state, progress_bar
from reeldb.cli._output import Output
from reeldb.errors import ConfigError
from reeldb.reprocess import Job
from reeldb.reprocess._service import dead_letter_json

__all__ = ["reprocess_app"]

reprocess_app = typer.Typer(
    help="Reprocessing jobs: reindex, backfill, migrate, export beside live traffic."
)

JobArg = Annotated[str, typer.Argument(help="The job id.")]
WorkerOpt = Annotated[
    str | None,
    typer.Option(help="This runner's name (default: host and process id)."),
]
ProcessesOpt = Annotated[
    int,
    typer.Option(
        min=1,
        max=64,
        help="Processes working on the job from here, this one included (one partition at "
        "a time each; the job's limits.concurrency caps how many work at once).",
    ),
]


def _summary(job: Job) -> str:
    p = job.progress
    dry = " (dry run: nothing written)" if job.spec.dry_run else ""
    error = f": {job.error}" if job.error else ""
    return (
        f"job {job.id} ({job.name}) is {job.state}{error}{dry}: {p.done}/{p.total} done, "
        f"{p.changed} changed, {p.skipped} skipped, {p.failed} failed; "
        f"{p.partitions_done}/{p.partitions} partitions, round {job.round}"
    )


def _show(out: Output, job: Job, *, partitions: bool = False) -> None:
    if out.json:
        out.data(job.to_json(partitions=partitions))
        return
    out.line(_summary(job))
    if partitions:
        out.table(
            f"Partitions of job {job.id}",
            ["#", "round", "kind", "state", "done", "changed", "skipped", "failed", "owner"],
            [
                (
                    p.number,
                    p.round,
                    p.kind,
                    p.state,
                    p.done,
                    p.changed,
                    p.skipped,
                    p.failed,
                    p.owner or "",
                )
                for p in job.partitions
            ],
            None,
        )


@contextlib.contextmanager
def _helpers(ctx: typer.Context, job: Job, worker: str | None, processes: int) -> Iterator[str]:
    """Start ``processes - 1`` more ``reeldb reprocess work`` processes on the job.

    Yields this process's runner name; on the way out, waits for the others (they stop when
    the job is done, or at a checkpoint after Ctrl-C, which reaches them too).
    """
    state = get_state(ctx)
    name = worker or f"{os.uname().nodename}-{os.getpid()}"
    if processes == 1:
        yield name
        return
    if job.spec.limits.concurrency < processes:
        state.out.line(
            f"note: the job's limits.concurrency is {job.spec.limits.concurrency}: at most "
            "that many of the processes work at once"
        )
    # The URL goes by environment, not argv: a password in it stays out of process lists.
    env = {**os.environ, "REELDB_DATABASE": state.db.url}
    others = [
        subprocess.Popen(
            [sys.executable, "-m", "reeldb", "-o", "json", "reprocess", "work", str(job.id)]
            + ["--threads", "1", "--worker", f"{name}-p{n}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(1, processes)
    ]
    try:
        yield name
    finally:
        failed = []
        for other in others:
            _, err = other.communicate()
            if other.returncode not in (0, 130):
                failed.append((err.strip().splitlines() or ["no message"])[-1])
        if failed:
            state.out.line(f"{len(failed)} helper process(es) failed: {failed[0]}")


def _check_processes(ctx: typer.Context, processes: int) -> None:
    """Refuse more processes on a database only this one can open."""
    state = get_state(ctx)
    if processes > 1 and state.db.url.startswith("memory:"):
        raise ConfigError(
            "--processes needs a database other processes can open (a file or a server)"
        )


def _work(
    ctx: typer.Context, job: Job, worker: str | None, threads: int | None, processes: int = 1
) -> Job:
    """Run a job here with a progress bar (rate and time left); Ctrl-C stops at a checkpoint."""
    with _helpers(ctx, job, worker, processes) as name:
        return _run_here(ctx, job, name, 1 if processes > 1 and threads is None else threads)


def _run_here(ctx: typer.Context, job: Job, worker: str, threads: int | None) -> Job:
    state = get_state(ctx)
    stop = threading.Event()
    started, first = time.monotonic(), job.progress.done
    with progress_bar("{task.description}", disable=state.out.json) as bar:
        task = bar.add_task(job.spec.processor.kind, total=job.progress.total or None)

        def report(current: Job) -> None:
            p = current.progress
            rate = (p.done - first) / max(time.monotonic() - started, 1e-6)
            bar.update(
                task,
                completed=p.done,
                total=max(p.total, p.done) or None,
                description=f"{job.spec.processor.kind} {rate:,.0f} items/s, {p.failed} failed",
            )

        try:
            return state.db.reprocess.run(
                job.id, worker=worker, threads=threads, progress=report, stop=stop
            )
        except KeyboardInterrupt:
            stop.set()
            state.out.line(
                f"stopped; job {job.id} stays {state.db.reprocess.get(job.id).state}: "
                f"reeldb reprocess work {job.id} picks it up where it stopped"
            )
            raise typer.Exit(130) from None


def _finish(ctx: typer.Context, job: Job) -> None:
    state = get_state(ctx)
    _show(state.out, job)
    if job.state == "failed":
        raise typer.Exit(1)


@reprocess_app.command("run")
def run(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="The job: a TOML file (docs/reprocessing.md).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Process and count, write nothing.")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Only submit it: workers (reeldb worker / serve) run it."),
    ] = False,
    worker: WorkerOpt = None,
    threads: Annotated[
        int | None,
        typer.Option(help="Partitions processed at once here (default: the job's concurrency)."),
    ] = None,
    processes: ProcessesOpt = 1,
) -> None:
    """Submit a job and run it here with a progress bar (or only submit it: --detach)."""
    state = get_state(ctx)
    _check_processes(ctx, processes)
    overrides: dict[str, Any] = {"dry_run": True} if dry_run else {}
    job = state.db.reprocess.submit(spec, **overrides)
    if detach:
        _show(state.out, job)
        return
    state.out.line(
        f"job {job.id} submitted: {job.progress.total} items, {job.progress.partitions} partitions"
    )
    _finish(ctx, _work(ctx, job, worker, threads, processes))


@reprocess_app.command("work")
def work(
    ctx: typer.Context,
    job_id: JobArg,
    worker: WorkerOpt = None,
    threads: Annotated[int | None, typer.Option(help="Partitions processed at once here.")] = None,
    processes: ProcessesOpt = 1,
) -> None:
    """Join a running job: process its partitions no one else holds, until it finishes."""
    state = get_state(ctx)
    _check_processes(ctx, processes)
    _finish(ctx, _work(ctx, state.db.reprocess.get(job_id), worker, threads, processes))


@reprocess_app.command("status")
def status(ctx: typer.Context, job_id: JobArg) -> None:
    """Where a job stands, partition by partition."""
    state = get_state(ctx)
    _show(state.out, state.db.reprocess.get(job_id), partitions=True)


@reprocess_app.command("list")
def list_jobs(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Argument(help="Only this namespace's jobs (default: all).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 50,
) -> None:
    """Jobs, newest first."""
    state = get_state(ctx)
    found = state.db.reprocess.list_jobs(namespace, limit=limit)
    if state.out.json:
        state.out.data([job.to_json() for job in found])
        return
    state.out.table(
        "Reprocessing jobs (newest first)",
        ["job id", "name", "namespace", "processor", "state", "done", "total", "failed"],
        [
            (
                j.id,
                j.name,
                j.namespace,
                j.spec.processor.kind,
                j.state,
                j.progress.done,
                j.progress.total,
                j.progress.failed,
            )
            for j in found
        ],
        None,
        shrink=["name", "namespace"],
    )


@reprocess_app.command("pause")
def pause(ctx: typer.Context, job_id: JobArg) -> None:
    """Pause a running job: its runners stop at their next checkpoint."""
    state = get_state(ctx)
    _show(state.out, state.db.reprocess.pause(job_id))


@reprocess_app.command("resume")
def resume(ctx: typer.Context, job_id: JobArg) -> None:
    """Resume a paused job (workers pick it up; or: reeldb reprocess work JOB)."""
    state = get_state(ctx)
    _show(state.out, state.db.reprocess.resume(job_id))


@reprocess_app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobArg) -> None:
    """Cancel a job for good (what it already wrote stays)."""
    state = get_state(ctx)
    _show(state.out, state.db.reprocess.cancel(job_id))


@reprocess_app.command("dead")
def dead(
    ctx: typer.Context,
    job_id: JobArg,
    after: Annotated[str | None, typer.Option(help="Start after this item (paging).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
) -> None:
    """The items a job gave up on, with their last error."""
    state = get_state(ctx)
    letters = state.db.reprocess.dead_letters(job_id, after=after, limit=limit)
    records = [dead_letter_json(d) for d in letters]
    state.out.table(
        f"Dead letters of job {job_id}",
        ["item", "attempts", "state", "error"],
        [(d.item, d.attempts, d.state, d.error) for d in letters],
        records,
        shrink=["error"],
    )


@reprocess_app.command("retry")
def retry(
    ctx: typer.Context,
    job_id: JobArg,
    run_here: Annotated[
        bool,
        typer.Option(
            "--run/--detach", help="Run the retries here (default) or leave them to workers."
        ),
    ] = True,
    worker: WorkerOpt = None,
) -> None:
    """Send a job's dead letters back to be processed again."""
    state = get_state(ctx)
    count = state.db.reprocess.retry(job_id)
    state.out.line(f"{count} dead letters of job {job_id} sent back")
    job = state.db.reprocess.get(job_id)
    if run_here and count and job.state == "running":
        job = _work(ctx, job, worker, None)
    _show(state.out, job)
