"""Routes of large payloads: blobs (announce, upload streamed), asynchronous writes, requests."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Final, TypeVar
from uuid import UUID

from fastapi import Header, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from reeldb import _wire
from reeldb.api import models as m
from reeldb.api._routing import Routes, db_of, json_response, principal_of
from reeldb.auth.policy import Need, authorize
from reeldb.errors import NotFoundError, PermissionDeniedError, ValidationError
from reeldb.ingest import MAX_PARTS
from reeldb.model.datastore import DataStoreRef
from reeldb.model.names import MAX_VERSION
from reeldb.model.requests import WriteRequest
from reeldb.store.base import BlobPart, BlobRecord

__all__ = ["BLOB_UPLOAD", "write_routes"]

BLOB_UPLOAD: Final = "/v1/namespaces/{namespace}/blobs/{blob_id}"
"""The upload route: any content type, no request size limit beyond the declared size."""
_OCTETS: Final = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
    }
}
"""The request body of the upload routes, for OpenAPI: any bytes."""
_QUEUED: Final = 8  # request chunks buffered between the event loop and the store's thread

Namespace = Annotated[str, Path(description="The namespace.", examples=["demo"])]
BlobId = Annotated[str, Path(description="The blob id.")]
T = TypeVar("T")


def _blob_json(record: BlobRecord) -> dict[str, Any]:
    value = _wire.blob_record(record)
    if record.state == "open":
        value["upload_url"] = f"/v1/namespaces/{record.namespace}/blobs/{record.id}"
    return value


def _part_json(part: BlobPart) -> dict[str, Any]:
    return {"number": part.number, "size": part.size, "sha256": part.sha256}


def _request_json(found: WriteRequest, status: int = 200, *, created: bool = False) -> Response:
    headers = {"Location": f"/v1/requests/{found.id}"} if created else None
    return json_response(_wire.write_request(found), status, headers=headers)


async def _consume(request: Request, sink: Callable[[Iterator[bytes]], T]) -> T:
    """Feed a request body, as it arrives, to a blocking consumer on a worker thread.

    The body is never held whole: at most a few chunks wait between the event loop and
    the consumer. If the consumer stops early (it refused the upload), the rest of the
    body is read and dropped. If the body breaks off (the client went away), the consumer
    gets an error instead of its end, so it stores nothing and its thread is freed.
    """
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_QUEUED)
    stopped = threading.Event()  # the consumer returned or raised

    def produced() -> Iterator[bytes]:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def run() -> T:
        try:
            return sink(produced())
        finally:
            stopped.set()
            while True:  # unblock a producer waiting on a full queue
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    break

    async def offer(item: bytes | BaseException | None) -> None:
        while not stopped.is_set():
            try:
                chunks.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.001)

    task = asyncio.ensure_future(run_in_threadpool(run))
    try:
        async for chunk in request.stream():
            if chunk:
                await offer(chunk)
    except BaseException:
        await offer(ValidationError("the upload broke off before its end; nothing was stored"))
        with contextlib.suppress(Exception):
            await task
        raise
    await offer(None)
    return await task


def write_routes(r: Routes) -> None:  # noqa: C901 - one flat list of routes reads best
    """Declare the blob, asynchronous write and write request routes."""
    blobs = "/namespaces/{namespace}/blobs"

    @r.route(
        "POST",
        blobs,
        need=Need.WRITER,
        audit="blob.create",
        status_code=201,
        response_model=m.BlobOut,
        tags=["blobs"],
        summary="Announce a blob: its id and where to upload it",
    )
    def create_blob(request: Request, namespace: Namespace, body: m.BlobCreate) -> Response:
        db = db_of(request)
        record = db.blobs.create(namespace, size=body.size, created_by=principal_of(request).name)
        headers = {"Location": f"/v1/namespaces/{namespace}/blobs/{record.id}"}
        return json_response(_blob_json(record), 201, headers=headers)

    @r.route(
        "PUT",
        BLOB_UPLOAD.removeprefix("/v1"),
        need=Need.WRITER,
        audit="blob.upload",
        response_model=m.BlobOut,
        tags=["blobs"],
        summary="Upload a blob's bytes (streamed; any content type; all or nothing)",
        openapi_extra=_OCTETS,
    )
    async def upload_blob(request: Request, namespace: Namespace, blob_id: BlobId) -> Response:
        db = db_of(request)
        record = await run_in_threadpool(db.blobs.get, blob_id, namespace=namespace)
        stored = await _consume(
            request, lambda chunks: db.blobs.upload(record.id, chunks, namespace=namespace)
        )
        return json_response(_blob_json(stored))

    @r.route(
        "PUT",
        BLOB_UPLOAD.removeprefix("/v1") + "/parts/{number}",
        need=Need.WRITER,
        audit="blob.upload_part",
        response_model=m.BlobPartOut,
        tags=["blobs"],
        summary="Upload one part of a blob (resumable uploads; again to replace it)",
        openapi_extra=_OCTETS,
    )
    async def upload_blob_part(
        request: Request,
        namespace: Namespace,
        blob_id: BlobId,
        number: Annotated[int, Path(ge=1, le=MAX_PARTS, description="From 1.")],
    ) -> Response:
        db = db_of(request)
        record = await run_in_threadpool(db.blobs.get, blob_id, namespace=namespace)
        part = await _consume(
            request,
            lambda chunks: db.blobs.upload_part(record.id, number, chunks, namespace=namespace),
        )
        return json_response(_part_json(part))

    @r.route(
        "GET",
        blobs + "/{blob_id}/parts",
        need=Need.READER,
        response_model=m.Page[m.BlobPartOut],
        tags=["blobs"],
        summary="The parts of a blob uploaded so far (to resume an upload)",
    )
    def list_blob_parts(request: Request, namespace: Namespace, blob_id: BlobId) -> Response:
        parts = db_of(request).blobs.parts(blob_id, namespace=namespace)
        return json_response({"items": [_part_json(p) for p in parts], "next_cursor": None})

    @r.route(
        "POST",
        blobs + "/{blob_id}/complete",
        need=Need.WRITER,
        audit="blob.complete",
        response_model=m.BlobOut,
        tags=["blobs"],
        summary="Join a blob's parts, in order, into the blob (all or nothing)",
    )
    def complete_blob(request: Request, namespace: Namespace, blob_id: BlobId) -> Response:
        return json_response(
            _blob_json(db_of(request).blobs.complete(blob_id, namespace=namespace))
        )

    @r.route(
        "GET",
        blobs + "/{blob_id}",
        need=Need.READER,
        response_model=m.BlobOut,
        tags=["blobs"],
        summary="A blob's state, size and SHA-256",
    )
    def get_blob(request: Request, namespace: Namespace, blob_id: BlobId) -> Response:
        return json_response(_blob_json(db_of(request).blobs.get(blob_id, namespace=namespace)))

    @r.route(
        "POST",
        "/namespaces/{namespace}/datastores/{analysis_type}/{version}/documents/async",
        need=Need.WRITER,
        audit="document.submit",
        status_code=202,
        response_model=m.WriteRequestOut,
        tags=["documents"],
        summary="Accept a document write to run asynchronously (inline, or from a blob)",
    )
    def submit_write(
        request: Request,
        namespace: Namespace,
        analysis_type: Annotated[str, Path(examples=["face_detection"])],
        version: Annotated[int, Path(ge=0, le=MAX_VERSION, examples=[1])],
        body: m.AsyncWrite,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> Response:
        db = db_of(request)
        key = body.idempotency_key or idempotency_key
        if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
            raise ValidationError("the Idempotency-Key header and idempotency_key differ")
        found, created = db.submit_write(
            DataStoreRef(namespace, analysis_type, version),
            body.mid,
            blob=body.blob,
            document=body.document,
            idempotency_key=key,
            webhook=body.webhook,
            created_by=principal_of(request).name,
        )
        return _request_json(found, 202, created=True) if created else _request_json(found)

    @r.route(
        "GET",
        "/requests/{request_id}",
        need=Need.AUTHENTICATED,
        response_model=m.WriteRequestOut,
        tags=["documents"],
        summary="Where an asynchronous write stands (reader role in its namespace)",
        openapi_extra={"x-reeldb-role": "reader"},
    )
    def get_write_request(request: Request, request_id: str) -> Response:
        db = db_of(request)
        found = db.get_write_request(request_id)
        try:
            authorize(principal_of(request), Need.READER, found.datastore.namespace)
        except (NotFoundError, PermissionDeniedError):
            raise NotFoundError(f"write request {request_id} does not exist") from None
        return _request_json(found)

    @r.route(
        "GET",
        "/namespaces/{namespace}/requests",
        need=Need.READER,
        response_model=m.Page[m.WriteRequestOut],
        tags=["documents"],
        summary="A namespace's asynchronous writes, newest first",
    )
    def list_write_requests(
        request: Request,
        namespace: Namespace,
        unfinished: Annotated[bool, Query(description="Only those still running.")] = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
    ) -> Response:
        before = None
        if cursor is not None:
            try:
                before = UUID(cursor)
            except ValueError:
                raise ValidationError(f"cursor {cursor!r} is not from this listing") from None
        found = db_of(request).list_write_requests(
            namespace, unfinished=unfinished, limit=limit + 1, before=before
        )
        items = [_wire.write_request(f) for f in found[:limit]]
        next_cursor = str(found[limit - 1].id) if len(found) > limit else None
        return json_response({"items": items, "next_cursor": next_cursor})
