"""Routes of reprocessing jobs: submit, list, watch, pause, resume, cancel, dead letters.

Jobs live in a namespace: readers watch them, writers submit and steer them. A job
submitted over HTTP may only name installed processor plug-ins as functions (entry point
group ``reeldb.processors``), never an arbitrary ``module:attribute``: a writer must not
be able to run code the operator did not install. Workers (``reeldb worker``, the
service's embedded worker) run the jobs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from reeldb.api._routing import Routes, db_of, json_response, principal_of
from reeldb.auth.policy import Need, authorize
from reeldb.errors import NotFoundError, PermissionDeniedError, ValidationError
from reeldb.reprocess import Job, JobProgress, JobSpec
from reeldb.reprocess._service import dead_letter_json

__all__ = ["job_routes"]

Namespace = Annotated[str, Path(description="The namespace.", examples=["demo"])]
JobId = Annotated[str, Path(description="The job id.")]


class JobOut(BaseModel):
    """A reprocessing job (``partitions`` only when asked for one job)."""

    id: str
    namespace: str
    name: str
    state: str
    round: int
    dry_run: bool
    processor: str
    sink: str
    progress: JobProgress
    error: str | None
    created_by: str
    created_at: str
    updated_at: str
    spec: dict[str, Any]
    partitions: list[dict[str, Any]] | None = None


class JobPage(BaseModel):
    """One page of jobs; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[JobOut]
    next_cursor: str | None


class DeadLetterOut(BaseModel):
    """An item a job gave up on."""

    item: str
    partition: int
    attempts: int
    state: str
    at: str
    error: str


class DeadLetterPage(BaseModel):
    """One page of dead letters; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[DeadLetterOut]
    next_cursor: str | None


class RetryOut(BaseModel):
    """Dead letters sent back, and the job."""

    retried: int
    job: JobOut


def _own(request: Request, namespace: str, job_id: str) -> Job:
    """The job, if it is this namespace's (another namespace's job does not exist here)."""
    job = db_of(request).reprocess.get(job_id)
    if job.namespace != namespace:
        raise NotFoundError(f"no reprocessing job {job_id} in namespace {namespace}")
    return job


def job_routes(r: Routes) -> None:
    """Declare the reprocessing job routes."""
    jobs = "/namespaces/{namespace}/jobs"

    @r.route(
        "POST",
        jobs,
        need=Need.WRITER,
        audit="job.submit",
        status_code=201,
        response_model=JobOut,
        tags=["reprocessing"],
        summary="Submit a reprocessing job (workers run it)",
    )
    def submit_job(request: Request, namespace: Namespace, body: JobSpec) -> Response:
        if body.source.namespace != namespace:
            raise ValidationError(
                f"the job's source namespace {body.source.namespace!r} is not {namespace!r}"
            )
        db = db_of(request)
        job = db.reprocess.submit(body, by=principal_of(request).name, plugins_only=True)
        headers = {"Location": f"/v1/namespaces/{namespace}/jobs/{job.id}"}
        return json_response(job.to_json(), 201, headers=headers)

    @r.route(
        "GET",
        jobs,
        need=Need.READER,
        response_model=JobPage,
        tags=["reprocessing"],
        summary="A namespace's reprocessing jobs, newest first",
    )
    def list_jobs(
        request: Request,
        namespace: Namespace,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
    ) -> Response:
        found = db_of(request).reprocess.list_jobs(namespace, before=cursor, limit=limit + 1)
        items = [job.to_json() for job in found[:limit]]
        next_cursor = str(found[limit - 1].id) if len(found) > limit else None
        return json_response({"items": items, "next_cursor": next_cursor})

    @r.route(
        "GET",
        jobs + "/{job_id}",
        need=Need.READER,
        response_model=JobOut,
        tags=["reprocessing"],
        summary="Where a job stands, with its partitions",
    )
    def get_job(request: Request, namespace: Namespace, job_id: JobId) -> Response:
        return json_response(_own(request, namespace, job_id).to_json(partitions=True))

    @r.route(
        "GET",
        "/jobs/{job_id}",
        need=Need.AUTHENTICATED,
        response_model=JobOut,
        tags=["reprocessing"],
        summary="A job by its id alone (reader role in its namespace)",
        openapi_extra={"x-reeldb-role": "reader"},
    )
    def find_job(request: Request, job_id: JobId) -> Response:
        job = db_of(request).reprocess.get(job_id)
        try:
            authorize(principal_of(request), Need.READER, job.namespace)
        except (NotFoundError, PermissionDeniedError):
            raise NotFoundError(f"no reprocessing job {job_id}") from None
        return json_response(job.to_json(partitions=True))

    def steer(action: str, summary: str) -> None:
        @r.route(
            "POST",
            jobs + "/{job_id}/" + action,
            need=Need.WRITER,
            audit=f"job.{action}",
            response_model=JobOut,
            tags=["reprocessing"],
            summary=summary,
        )
        def endpoint(request: Request, namespace: Namespace, job_id: JobId) -> Response:
            job = _own(request, namespace, job_id)
            moved = getattr(db_of(request).reprocess, action)(job.id)
            return json_response(moved.to_json())

        endpoint.__name__ = f"{action}_job"

    steer("pause", "Pause a running job (its runners stop at their next checkpoint)")
    steer("resume", "Resume a paused job where it stopped")
    steer("cancel", "Cancel a job for good (what it wrote stays)")

    @r.route(
        "GET",
        jobs + "/{job_id}/dead-letters",
        need=Need.READER,
        response_model=DeadLetterPage,
        tags=["reprocessing"],
        summary="The items a job gave up on, with their last error",
    )
    def list_dead_letters(
        request: Request,
        namespace: Namespace,
        job_id: JobId,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
    ) -> Response:
        job = _own(request, namespace, job_id)
        found = db_of(request).reprocess.dead_letters(job.id, after=cursor, limit=limit + 1)
        items = [dead_letter_json(d) for d in found[:limit]]
        next_cursor = found[limit - 1].item if len(found) > limit else None
        return json_response({"items": items, "next_cursor": next_cursor})

    @r.route(
        "POST",
        jobs + "/{job_id}/retry",
        need=Need.WRITER,
        audit="job.retry",
        response_model=RetryOut,
        tags=["reprocessing"],
        summary="Send a job's dead letters back to be processed again",
    )
    def retry_job(request: Request, namespace: Namespace, job_id: JobId) -> Response:
        job = _own(request, namespace, job_id)
        db = db_of(request)
        count = db.reprocess.retry(job.id)
        return json_response({"retried": count, "job": db.reprocess.get(job.id).to_json()})
