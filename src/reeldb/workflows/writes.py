"""Asynchronous document writes as durable workflows (DBOS): validate → persist → index.

A write request is accepted into reeldb's own ``write_requests`` table (durable before the
client gets its id) and run by a *worker*: `Worker` polls the table for unfinished
requests and starts one DBOS workflow per request, with the request id as the workflow id
(starting it twice returns the same workflow). DBOS checkpoints each finished step, retries
a failing step with back-off, and on a worker's restart resumes its interrupted workflows at
the step that was running, never before. Every step is itself idempotent (reserving rows,
staging batches with their checkpoint, publishing), so the step that runs again after a
crash completes the request exactly once.

Validation failures, a DataStore or blob that disappeared, are permanent: the request is
``FAILED`` with the full report, at once. Other errors (a busy database, an unreachable
object store) are retried with back-off, then fail the request.

Each worker process needs a stable, unique name (DBOS's executor id): a restarted worker
recovers the workflows it was running. Workers record a heartbeat; the writes of a worker
silent for longer than ``takeover_after`` are taken over by a live one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import httpx
from dbos import DBOS, SetWorkflowID

from reeldb import _json
from reeldb.__about__ import __version__
from reeldb.errors import (
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    ReelError,
    StaleSchemaError,
    ValidationError,
)
from reeldb.ingest import ValidatedBlob
from reeldb.model.requests import WriteState
from reeldb.store import infer_backend
from reeldb.workflows import jobs

if TYPE_CHECKING:
    from reeldb.database import Database

__all__ = ["QUEUE", "Worker", "sign", "system_database_url", "system_schema"]

log = logging.getLogger(__name__)

QUEUE: Final = "reeldb_writes"
APP_VERSION: Final = f"reeldb-{__version__}-writes-1"
"""DBOS runs a workflow only on workers of the version that enqueued it: pinned, so that
every process of one reeldb version shares the queue (DBOS hashes the code otherwise)."""
SIGNATURE_HEADER: Final = "X-Reeldb-Signature"
_PERMANENT: Final = (ValidationError, NotFoundError, AlreadyExistsError, ConfigError)

_worker_db: Database | None = None


def _db() -> Database:
    if _worker_db is None:  # pragma: no cover - steps run only inside a started Worker
        raise RuntimeError("no reeldb worker is running in this process")
    return _worker_db


def _problem(exc: ReelError, step: str) -> dict[str, Any]:
    violations = list(getattr(exc, "violations", ()))
    return {
        "title": type(exc).__name__,
        "detail": str(exc),
        "step": step,
        "violations": [{"pointer": v.pointer, "message": v.message} for v in violations],
    }


def _fail(request_id: UUID, exc: ReelError, step: str) -> None:
    _db().store.update_write_request(
        request_id, WriteState.FAILED, datetime.now(UTC), error=_problem(exc, step)
    )


# -- steps: each is retried with back-off on transient errors, checkpointed once done ------


@DBOS.step(name="reeldb.validate", retries_allowed=True, max_attempts=6, interval_seconds=0.5)
def _validate(request_id: str) -> dict[str, Any] | None:
    db, key = _db(), UUID(request_id)
    request = db.store.get_write_request(key)
    if request.finished:
        return None
    started = time.perf_counter()
    try:
        validated = db._ingest.validate(
            request.datastore, request.mid, request.blob, request_id=key
        )
    except _PERMANENT as exc:
        _fail(key, exc, "validate")
        return None
    db.store.update_write_request(
        key, WriteState.VALIDATED, datetime.now(UTC), step=("validate", _since(started))
    )
    return validated.to_json()


@DBOS.step(name="reeldb.persist", retries_allowed=True, max_attempts=6, interval_seconds=0.5)
def _persist(request_id: str, validated: dict[str, Any]) -> str | None:
    """Give the document its DocumentID and reserve its rows; None if validation is stale."""
    db, key = _db(), UUID(request_id)
    started = time.perf_counter()
    try:
        state = db._ingest.begin(key, ValidatedBlob.from_json(validated))
    except StaleSchemaError:
        return None
    except _PERMANENT as exc:
        _fail(key, exc, "persist")
        return ""
    db.store.update_write_request(
        key,
        WriteState.PERSISTED,
        datetime.now(UTC),
        document_id=state.document_id,
        step=("persist", _since(started)),
    )
    return str(state.document_id)


@DBOS.step(name="reeldb.index", retries_allowed=True, max_attempts=6, interval_seconds=0.5)
def _index(request_id: str, validated: dict[str, Any]) -> bool:
    db, key = _db(), UUID(request_id)
    request = db.store.get_write_request(key)
    started = time.perf_counter()
    try:
        db._ingest.stage(key, ValidatedBlob.from_json(validated))
        document = db._ingest.publish(key, db.write_audit(request))
    except _PERMANENT as exc:
        db._ingest.discard(key)
        _fail(key, exc, "index")
        return False
    db.store.update_write_request(
        key,
        WriteState.INDEXED,
        datetime.now(UTC),
        document_id=document.id,
        step=("index", _since(started)),
    )
    return True


@DBOS.step(name="reeldb.notify", retries_allowed=True, max_attempts=8, interval_seconds=1.0)
def _notify(request_id: str) -> None:
    db = _db()
    request = db.store.get_write_request(UUID(request_id))
    if request.webhook is None:
        return
    body = _json.dumps(db.write_request_json(request))
    signature = sign(db.webhook_secret(), body)
    response = httpx.post(
        request.webhook,
        content=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        timeout=10.0,
    )
    if response.status_code >= 300:
        # Raising makes DBOS retry with back-off; after the last attempt the failure is
        # logged and the request keeps its (final) state.
        raise RuntimeError(f"webhook answered {response.status_code}")


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 6)


@DBOS.workflow(name="reeldb.write_document")
def write_document(request_id: str) -> str:
    """The durable workflow of one write request (its id is the workflow id).

    Args:
        request_id: The request.

    Returns:
        The final state.
    """
    key = UUID(request_id)
    try:
        for _attempt in range(3):
            validated = _validate(request_id)
            if validated is None:
                break
            document = _persist(request_id, validated)
            if document is None:
                continue  # the DataStore moved to a new schema version: validate again
            if document:
                _index(request_id, validated)
            break
        else:
            _fail(key, StaleSchemaError("the DataStore kept changing schema"), "persist")
    except Exception as exc:  # retries exhausted: the request fails, it never hangs
        detail = ReelError(f"gave up after retries: {exc}")
        with contextlib.suppress(ReelError):
            _fail(key, detail, "worker")
    final = _db().store.get_write_request(key)
    if final.webhook is not None:
        try:
            _notify(request_id)
        except Exception as exc:
            log.warning("webhook of write request %s failed for good: %s", request_id, exc)
    return final.state.value


def sign(secret: bytes, body: bytes) -> str:
    """The webhook signature of a body: ``sha256=<hex HMAC-SHA256>``.

    Args:
        secret: The webhook secret (setting ``webhook_secret``).
        body: The exact bytes sent.

    Returns:
        The header value.
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def system_database_url(db: Database) -> str | None:
    """Where DBOS keeps the workflow state of a database's writes.

    Args:
        db: The database.

    Returns:
        A SQLAlchemy URL: a SQLite file beside reeldb's; reeldb's own URL on PostgreSQL (the
        state lives in its own schema, `system_schema`); None for an in-memory database
        (its worker keeps the state in a temporary file: it runs in the same process).
    """
    url = db.url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.parent.resolve() / (path.stem + '-workflows.db')}"
    if infer_backend(url) == "postgresql":
        return url
    return None


def system_schema(db: Database) -> str | None:
    """The PostgreSQL schema of DBOS's tables.

    ``reeldb_dbos``, or ``<schema>_dbos`` when the database URL sets a ``search_path`` (one
    reeldb per schema: tests, shared servers).

    Args:
        db: The database.

    Returns:
        The schema, or None on SQLite.
    """
    if infer_backend(db.url) != "postgresql":
        return None
    options = parse_qs(urlsplit(db.url).query).get("options", [""])[0]
    found = re.search(r"search_path=([A-Za-z_][A-Za-z0-9_]*)", options)
    return f"{found.group(1)}_dbos" if found else "reeldb_dbos"


class Worker:
    """Runs write requests of one database in this process (one per process: DBOS is global).

    Args:
        db: The database.
        name: A stable name, unique among workers (DBOS's executor id): a worker restarted
            with its name resumes the requests it was running.
        concurrency: Requests run at once by this worker.
        poll: Seconds between looks for new requests.
        gc_every: Seconds between collections of blobs no write uses (older than the
            ``blob_grace`` setting).
        heartbeat: Seconds between the worker's signs of life (and its looks at others').
        takeover_after: Seconds of silence after which a worker's writes are taken over.
        job_concurrency: Reprocessing jobs run at once by this worker (each job's own
            ``concurrency`` limits its partitions across all workers).
    """

    _running: Worker | None = None
    _lock = threading.Lock()

    def __init__(
        self,
        db: Database,
        *,
        name: str | None = None,
        concurrency: int = 2,
        poll: float = 0.2,
        gc_every: float = 300.0,
        heartbeat: float = 5.0,
        takeover_after: float = 60.0,
        job_concurrency: int = 2,
    ) -> None:
        self.db = db
        self.gc_every = gc_every
        self.heartbeat = heartbeat
        self.takeover_after = takeover_after
        self.name = name or f"{os.uname().nodename}-worker"
        self.concurrency = concurrency
        self.poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started: set[UUID] = set()
        self._jobs: dict[UUID, Any] = {}  # running job -> its workflow's handle, here
        self.job_concurrency = job_concurrency
        self._temp: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> Worker:
        """Launch DBOS (resuming this worker's interrupted workflows) and start polling.

        Returns:
            The worker.

        Raises:
            ConfigError: Another worker runs in this process.
        """
        global _worker_db
        with Worker._lock:
            if Worker._running is not None:
                raise ConfigError("a reeldb worker already runs in this process")
            Worker._running = self
        _worker_db = self.db
        url = system_database_url(self.db)
        if url is None:
            self._temp = tempfile.TemporaryDirectory(prefix="reeldb-workflows-")
            url = f"sqlite:///{self._temp.name}/workflows.db"
        schema = system_schema(self.db)
        DBOS(
            config={
                "name": "reeldb",
                "system_database_url": url,
                **({"dbos_system_schema": schema} if schema else {}),
                "application_version": APP_VERSION,
                "executor_id": self.name,
                "log_level": "WARNING",
                "max_executor_threads": self.concurrency + 4,
            }
        )
        try:
            DBOS.launch()
            DBOS.register_queue(
                QUEUE, worker_concurrency=self.concurrency, polling_interval_sec=0.1
            )
            DBOS.register_queue(
                jobs.JOB_QUEUE, worker_concurrency=self.job_concurrency, polling_interval_sec=0.5
            )
        except BaseException:  # leave no DBOS threads behind a worker that did not start
            DBOS.destroy()
            _worker_db = None
            with Worker._lock:
                Worker._running = None
            raise
        jobs.set_stop(self._stop)
        self._thread = threading.Thread(target=self._loop, name="reeldb-worker", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        collected = seen = 0.0
        while not self._stop.is_set():
            try:
                self.enqueue_unfinished()
            except Exception:  # keep polling: the next look may succeed
                log.exception("reeldb worker %s could not look for write requests", self.name)
            try:
                self.enqueue_jobs()
            except Exception:
                log.exception("reeldb worker %s could not look for reprocessing jobs", self.name)
            if time.monotonic() - seen >= self.heartbeat:
                seen = time.monotonic()
                try:
                    self.db.store.worker_seen(self.name, datetime.now(UTC))
                    self.take_over_silent_workers()
                except Exception:
                    log.exception("reeldb worker %s could not check on other workers", self.name)
            if time.monotonic() - collected >= self.gc_every:
                collected = time.monotonic()
                try:  # blobs no write used within the grace period
                    self.db.blobs.collect_garbage()
                except Exception:
                    log.exception("reeldb worker %s could not collect unused blobs", self.name)
            self._stop.wait(self.poll)

    def enqueue_unfinished(self) -> int:
        """Start a workflow for each unfinished request that has none yet (idempotent).

        Returns:
            How many were started now.
        """
        started = 0
        for request in reversed(self.db.store.list_write_requests(unfinished=True, limit=500)):
            if request.id in self._started:
                continue
            with SetWorkflowID(str(request.id)):
                DBOS.enqueue_workflow(QUEUE, write_document, str(request.id))
            self._started.add(request.id)
            started += 1
        return started

    def enqueue_jobs(self) -> int:
        """Start a workflow for each running job with work to take that has none here.

        Returns:
            How many were started now.
        """
        for job_id, handle in list(self._jobs.items()):
            if handle.get_status().status in ("SUCCESS", "ERROR", "CANCELLED"):
                del self._jobs[job_id]
        started = 0
        for job_id in self.db.store.runnable_jobs(datetime.now(UTC)):
            if job_id in self._jobs:
                continue
            with SetWorkflowID(f"reprocess-{job_id}-{self.name}-{uuid4().hex[:12]}"):
                self._jobs[job_id] = DBOS.enqueue_workflow(
                    jobs.JOB_QUEUE, jobs.reprocess_job, str(job_id), self.name
                )
            started += 1
        return started

    def take_over_silent_workers(self) -> list[str]:
        """Resume the interrupted writes of workers silent for ``takeover_after`` seconds.

        A worker that died and never comes back would otherwise leave its writes waiting.
        Each silent worker is taken over by one live worker (`claim_silent_workers`); its
        workflows go back to the queue, to resume at the step that was running.

        Returns:
            The names of the workers taken over.
        """
        now = datetime.now(UTC)
        silent = self.db.store.claim_silent_workers(
            self.name, now - timedelta(seconds=self.takeover_after), now
        )
        for name in silent:
            resumed = DBOS._recover_pending_workflows([name])
            if resumed:
                log.warning(
                    "reeldb worker %s takes over %d writes of silent worker %s",
                    self.name,
                    len(resumed),
                    name,
                )
        return silent

    def stop(self) -> None:
        """Stop polling and shut DBOS down (running steps are resumed at the next start)."""
        global _worker_db
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(ReelError):  # stopped cleanly: nothing to take over
            self.db.store.worker_gone(self.name)
        DBOS.destroy()
        _worker_db = None
        if self._temp is not None:
            self._temp.cleanup()
        with Worker._lock:
            Worker._running = None

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def run_forever(self) -> None:
        """Start and serve until interrupted (``reeldb worker``)."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()
