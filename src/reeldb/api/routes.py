"""The ``/v1`` routes: each calls one `reeldb.Database` method; no business rules here."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar
from uuid import UUID

import orjson
from fastapi import Depends, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool
from uuid_utils.compat import uuid7

from reeldb import _wire
from reeldb.annotations import MAX_BATCH, MAX_TIMELINE, Annotation
from reeldb.annotations._service import PreparedAnnotations
from reeldb.api import models as m
from reeldb.api._group_commit import GroupCommitter
from reeldb.api._job_routes import job_routes
from reeldb.api._routing import (
    Routes,
    commit_audit,
    db_of,
    json_response,
    note_audit_namespace,
    page_json,
    paginate,
    parse_mid,
    principal_of,
    restore_audit,
)
from reeldb.api._write_routes import write_routes
from reeldb.auth.model import AuditEntry, Principal
from reeldb.auth.policy import Need, authorize
from reeldb.database import Database, PreparedWrite
from reeldb.errors import NotFoundError, PermissionDeniedError, ValidationError, Violation
from reeldb.model.datastore import DataStoreRef
from reeldb.model.document import Document, DocumentInfo
from reeldb.model.names import MAX_VERSION
from reeldb.model.search import QueryRequest

__all__ = ["DOCUMENT_PATH", "build_routes", "document_response"]

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
Namespace = Annotated[str, Path(description="The namespace.", examples=["demo"])]
AnalysisType = Annotated[str, Path(examples=["face_detection"])]
Version = Annotated[int, Path(ge=0, le=MAX_VERSION, examples=[1])]
SchemaName = Annotated[str, Path(examples=["face_detection"])]
MidParam = Annotated[
    str,
    Query(
        description="The MID as a JSON object.",
        examples=['{"title_id":"80100172","video_stream_id":"vs-1080p-01"}'],
    ),
]

_IMMUTABLE = "private, max-age=31536000, immutable"
DOCUMENT_PATH = "/v1/documents/{document_id}"
"""The hottest route: the service answers it on a fast path (`document_response`)."""
INLINE_WRITE_BYTES = 1024 * 1024
INLINE_ANNOTATIONS = 64
"""Annotation writes of at most this many items are validated on the event loop."""
"""Document writes up to this many bytes of request are validated on the event loop (`_put`)."""
T = TypeVar("T")
_DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DocumentPut"}}},
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DocumentBatch"}}},
    }
}


def document_response(
    db: Database, principal: Principal, document_id: UUID, if_none_match: str | None
) -> Response:
    """``GET /v1/documents/{document_id}``: the document if the caller may read it.

    Shared by the route and the service's fast path for it (`_ServiceMiddleware`).

    Args:
        db: The database.
        principal: The authenticated caller.
        document_id: The DocumentID.
        if_none_match: The ``If-None-Match`` header, if any.

    Returns:
        The document (200) or 304.

    Raises:
        NotFoundError: No such document, or the caller has no role in its namespace.
    """
    doc = db.get_document(document_id, stream=True)
    # The namespace is known only now; without a role the document "does not exist".
    try:
        authorize(principal, Need.READER, doc.datastore.namespace)
    except (NotFoundError, PermissionDeniedError):
        raise NotFoundError(f"document {document_id} does not exist") from None
    if doc.blob is None:
        return _etag_response(if_none_match, str(doc.id), _wire.document(doc))
    # Written from a blob: streamed from there, never held whole (it may be gigabytes).
    headers = {"ETag": f'"{doc.id}"', "Cache-Control": _IMMUTABLE}
    if if_none_match is not None and (
        if_none_match.strip() == "*" or headers["ETag"] in _etags(if_none_match)
    ):
        return Response(status_code=304, headers=headers)
    head = orjson.dumps({k: v for k, v in _wire.document(doc).items() if k != "data"})
    chunks = db.open_document_body(doc)  # checks the blob exists before the answer starts

    def body() -> Iterator[bytes]:
        yield head[:-1] + b',"data":'
        yield from chunks
        yield b"}"

    return StreamingResponse(body(), media_type="application/json", headers=headers)


def _readable_info(request: Request, document_id: UUID) -> DocumentInfo:
    """A document's coordinates, if the caller may read it (else it "does not exist")."""
    info = db_of(request).get_document_info(document_id)
    try:
        authorize(principal_of(request), Need.READER, info.datastore.namespace)
    except (NotFoundError, PermissionDeniedError):
        raise NotFoundError(f"document {document_id} does not exist") from None
    return info


def _readable_query(request: Request, request_id: UUID) -> QueryRequest:
    """An asynchronous query, if the caller may read its DataStore (else it "does not exist")."""
    try:
        found = db_of(request).get_query_request(request_id)
        authorize(principal_of(request), Need.READER, found.datastore.namespace)
    except (NotFoundError, PermissionDeniedError):
        raise NotFoundError(f"no query request {request_id}") from None
    return found


def _etag_response(wanted: str | None, etag: str, body: Any) -> Response:
    tag = f'"{etag}"'
    headers = {"ETag": tag, "Cache-Control": _IMMUTABLE}
    if wanted is not None and (wanted.strip() == "*" or tag in _etags(wanted)):
        return Response(status_code=304, headers=headers)
    return json_response(body, headers=headers)


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",")}


@dataclass(frozen=True, slots=True)
class _Body:
    value: Any
    size: int


async def _json_body(request: Request) -> _Body:
    raw = await request.body()
    try:
        return _Body(orjson.loads(raw), len(raw))
    except orjson.JSONDecodeError as exc:
        raise HTTPException(
            400, f"the request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None


async def _put(request: Request, size: int, prepare: Callable[[], PreparedWrite]) -> list[Document]:
    """Validate a document write, then commit it with concurrent ones (group commit).

    A small write (most documents) is validated on the event loop: that takes less time
    than handing it to a thread and back, which costs about 100-200 µs of CPU. A large one
    is validated in the thread pool, where it does not hold up this worker's other
    requests. The audit entry is committed with the write, or handed back to the
    middleware if the write is refused.
    """
    try:
        write = prepare() if size <= INLINE_WRITE_BYTES else await run_in_threadpool(prepare)
        committer: GroupCommitter = request.app.state.committer
        return await committer.commit(db_of(request), write)
    except BaseException:
        restore_audit(request)
        raise


RawBody = Annotated[_Body, Depends(_json_body)]


def _document_item(value: Any, where: str = "") -> tuple[dict[str, str], Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{where or 'the body'} must be an object with 'mid' and 'document'")
    unknown = sorted(set(value) - {"mid", "document"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r} in {where or 'the body'}")
    if "mid" not in value or "document" not in value:
        raise ValidationError(f"{where or 'the body'} needs both 'mid' and 'document'")
    return value["mid"], value["document"]


def build_routes() -> Routes:  # noqa: C901 - one flat list of routes reads best
    """Declare every ``/v1`` route.

    Returns:
        The routes.
    """
    r = Routes("/v1")
    ds_path = "/namespaces/{namespace}/datastores/{analysis_type}/{version}"

    # The hottest routes come first: the router tries routes in declaration order.

    @r.route(
        "GET",
        DOCUMENT_PATH.removeprefix("/v1"),
        need=Need.AUTHENTICATED,
        response_model=m.DocumentOut,
        tags=["documents"],
        summary="A document by DocumentID (reader role in its namespace; ETag)",
        openapi_extra={"x-reeldb-role": "reader"},
        responses={304: {"description": "Not modified"}},
        direct=True,
    )
    async def get_document(request: Request, document_id: UUID) -> Response:
        return document_response(
            db_of(request), principal_of(request), document_id, request.headers.get("if-none-match")
        )

    _annotation_routes(r)
    write_routes(r)
    job_routes(r)

    # -- who am I ---------------------------------------------------------------------------

    # -- documents ---------------------------------------------------------------------------

    @r.route(
        "POST",
        ds_path + "/documents",
        need=Need.WRITER,
        audit="document.put",
        status_code=201,
        response_model=m.DocumentInfoOut,
        tags=["documents"],
        summary="Validate and store a document for a MID",
        openapi_extra=_DOCUMENT_BODY,
        direct=True,
    )
    async def put_document(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        body: RawBody,
    ) -> Response:
        db = db_of(request)
        mid, document = _document_item(body.value)
        ref = DataStoreRef(namespace, analysis_type, version)
        audit = commit_audit(request, 201)
        [doc] = await _put(
            request, body.size, lambda: db.prepare_documents(ref, [(mid, document)], audit=audit)
        )
        headers = {"Location": f"/v1/documents/{doc.id}"}
        return json_response(_wire.written(doc), 201, headers=headers)

    @r.route(
        "POST",
        ds_path + "/documents/batch",
        need=Need.WRITER,
        audit="document.put_batch",
        status_code=201,
        response_model=m.Page[m.DocumentInfoOut],
        tags=["documents"],
        summary="Store many documents in one transaction: all or none",
        openapi_extra=_BATCH_BODY,
    )
    async def put_documents(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        body: RawBody,
    ) -> Response:
        db = db_of(request)
        value = body.value
        if (
            not isinstance(value, dict)
            or set(value) != {"items"}
            or not isinstance(value["items"], list)
        ):
            raise ValidationError('the body must be {"items": [{"mid": ..., "document": ...}]}')
        items = [_document_item(item, f"/items/{i}") for i, item in enumerate(value["items"])]
        ref = DataStoreRef(namespace, analysis_type, version)
        audit = commit_audit(request, 201)
        docs = await _put(request, body.size, lambda: db.prepare_documents(ref, items, audit=audit))
        items_out = [_wire.written(doc) for doc in docs]
        return json_response({"items": items_out, "next_cursor": None}, 201)

    # -- queries and the index ---------------------------------------------------------------

    @r.route(
        "POST",
        ds_path + "/query",
        need=Need.READER,
        response_model=m.FilterPage,
        tags=["search"],
        summary="Documents of the DataStore that match a query (their coordinates)",
    )
    def query_datastore(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        body: m.DataStoreQuery,
    ) -> Response:
        page = db_of(request).query_datastore(
            DataStoreRef(namespace, analysis_type, version),
            body.query,
            all_versions=body.all_versions,
            limit=body.limit,
            cursor=body.cursor,
        )
        return json_response({**page_json(page, _wire.document_match), "total": page.total})

    @r.route(
        "POST",
        ds_path + "/queries",
        need=Need.READER,
        status_code=202,
        response_model=m.QueryRequestOut,
        tags=["search"],
        summary="Run a DataStore-level filter asynchronously: poll it, then page its results",
    )
    def submit_query(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        body: m.AsyncQuery,
    ) -> Response:
        submitted = db_of(request).submit_query(
            DataStoreRef(namespace, analysis_type, version),
            body.query,
            all_versions=body.all_versions,
        )
        return json_response(
            _wire.query_request(submitted),
            202,
            headers={"Location": f"/v1/queries/{submitted.id}"},
        )

    @r.route(
        "GET",
        "/queries/{request_id}",
        need=Need.AUTHENTICATED,
        response_model=m.QueryRequestOut,
        tags=["search"],
        summary="Where an asynchronous query stands (reader role in its namespace)",
        openapi_extra={"x-reeldb-role": "reader"},
    )
    def get_query_request(request: Request, request_id: UUID) -> Response:
        return json_response(_wire.query_request(_readable_query(request, request_id)))

    @r.route(
        "GET",
        "/queries/{request_id}/results",
        need=Need.AUTHENTICATED,
        response_model=m.FilterPage,
        tags=["search"],
        summary="A page of a finished asynchronous query's documents (reader role)",
        openapi_extra={"x-reeldb-role": "reader"},
    )
    def query_results(
        request: Request, request_id: UUID, limit: Limit = 50, cursor: Cursor = None
    ) -> Response:
        _readable_query(request, request_id)
        page = db_of(request).query_results(request_id, limit=limit, cursor=cursor)
        return json_response({**page_json(page, _wire.document_match), "total": page.total})

    @r.route(
        "POST",
        "/documents/{document_id}/query",
        need=Need.AUTHENTICATED,
        response_model=m.Page[m.EventMatchOut],
        tags=["search"],
        summary="Events of a document that match a query (reader role in its namespace)",
        openapi_extra={"x-reeldb-role": "reader"},
    )
    def query_document(request: Request, document_id: UUID, body: m.DocumentQuery) -> Response:
        db = db_of(request)
        _readable_info(request, document_id)
        page = db.query_document(document_id, body.query, limit=body.limit, cursor=body.cursor)
        return json_response(page_json(page, _wire.event_match))

    @r.route(
        "GET",
        "/documents/{document_id}/info",
        need=Need.AUTHENTICATED,
        response_model=m.DocumentInfoOut,
        tags=["documents"],
        summary="A document's coordinates and size, without its body (reader role)",
        openapi_extra={"x-reeldb-role": "reader"},
    )
    def get_document_info(request: Request, document_id: UUID) -> Response:
        return json_response(_wire.document_info(_readable_info(request, document_id)))

    @r.route(
        "GET",
        ds_path + "/index",
        need=Need.READER,
        response_model=list[m.GenerationOut],
        tags=["search"],
        summary="The DataStore's index generations, and which ones queries read",
    )
    def index_status(
        request: Request, namespace: Namespace, analysis_type: AnalysisType, version: Version
    ) -> Response:
        ref = DataStoreRef(namespace, analysis_type, version)
        return json_response([_wire.generation(g) for g in db_of(request).index_status(ref)])

    @r.route(
        "POST",
        ds_path + "/index/rebuild",
        need=Need.ADMIN,
        audit="index.rebuild",
        response_model=m.GenerationOut,
        tags=["search"],
        summary="Rebuild the DataStore's index from its documents (queries go on meanwhile)",
    )
    def rebuild_index(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        body: m.RebuildRequest,
    ) -> Response:
        ref = DataStoreRef(namespace, analysis_type, version)
        generation = db_of(request).rebuild_index(ref, batch_size=body.batch_size)
        return json_response(_wire.generation(generation))

    @r.route(
        "GET",
        ds_path + "/documents",
        need=Need.READER,
        response_model=m.Page[m.DocumentInfoOut],
        tags=["documents"],
        summary="Every document for a MID, newest first (no bodies)",
    )
    async def list_documents(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        mid: MidParam,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response:
        db = db_of(request)
        page = db.list_documents(
            DataStoreRef(namespace, analysis_type, version),
            parse_mid(mid),
            limit=limit,
            cursor=cursor,
        )
        return json_response(page_json(page, _wire.document_info))

    @r.route(
        "GET",
        ds_path + "/documents/latest",
        need=Need.READER,
        response_model=m.DocumentOut,
        tags=["documents"],
        summary="The latest document for a MID",
    )
    async def latest_document(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        mid: MidParam,
    ) -> Response:
        db = db_of(request)
        doc = db.latest_document(DataStoreRef(namespace, analysis_type, version), parse_mid(mid))
        return json_response(_wire.document(doc))

    @r.route(
        "GET",
        ds_path + "/documents/{document_id}",
        need=Need.READER,
        response_model=m.DocumentOut,
        tags=["documents"],
        summary="A document of this DataStore by DocumentID (immutable: ETag)",
        responses={304: {"description": "Not modified"}},
    )
    async def get_datastore_document(
        request: Request,
        namespace: Namespace,
        analysis_type: AnalysisType,
        version: Version,
        document_id: UUID,
    ) -> Response:
        db = db_of(request)
        ref = DataStoreRef(namespace, analysis_type, version)
        doc = db.get_document(document_id, datastore=ref)
        return _etag_response(
            request.headers.get("if-none-match"), str(doc.id), _wire.document(doc)
        )

    @r.route(
        "GET",
        "/whoami",
        need=Need.AUTHENTICATED,
        response_model=m.PrincipalOut,
        tags=["access"],
        summary="The caller's principal and roles",
    )
    async def whoami(request: Request) -> Response:
        principal = principal_of(request)
        return json_response(_wire.principal(principal))

    # -- namespaces and roles ----------------------------------------------------------------

    @r.route(
        "POST",
        "/namespaces",
        need=Need.SYSTEM,
        audit="namespace.create",
        status_code=201,
        response_model=m.NamespaceOut,
        tags=["namespaces"],
        summary="Create a namespace",
    )
    def create_namespace(request: Request, body: m.NamespaceCreate) -> Response:
        db = db_of(request)
        note_audit_namespace(request, body.name)
        ns = db.create_namespace(body.name, description=body.description, admins=body.admins)
        return json_response(_wire.namespace(ns), 201)

    @r.route(
        "GET",
        "/namespaces",
        need=Need.AUTHENTICATED,
        response_model=m.Page[m.NamespaceOut],
        tags=["namespaces"],
        summary="The namespaces the caller has a role in",
    )
    async def list_namespaces(
        request: Request, limit: Limit = 100, cursor: Cursor = None
    ) -> Response:
        db = db_of(request)
        principal = principal_of(request)
        visible = [
            ns
            for ns in db.list_namespaces()
            if principal.system_admin or ns.name in principal.roles
        ]
        page = paginate(visible, lambda ns: (ns.name,), limit=limit, cursor=cursor)
        return json_response(page_json(page, _wire.namespace))

    @r.route(
        "GET",
        "/namespaces/{namespace}",
        need=Need.READER,
        response_model=m.NamespaceOut,
        tags=["namespaces"],
        summary="Read a namespace",
    )
    async def get_namespace(request: Request, namespace: Namespace) -> Response:
        db = db_of(request)
        return json_response(_wire.namespace(db.get_namespace(namespace)))

    @r.route(
        "GET",
        "/namespaces/{namespace}/roles",
        need=Need.ADMIN,
        response_model=m.Page[m.RoleGrantOut],
        tags=["namespaces"],
        summary="Role grants in a namespace",
    )
    async def list_roles(
        request: Request, namespace: Namespace, limit: Limit = 100, cursor: Cursor = None
    ) -> Response:
        db = db_of(request)
        page = paginate(
            db.list_roles(namespace), lambda g: (g.principal,), limit=limit, cursor=cursor
        )
        return json_response(page_json(page, _wire.role_grant))

    @r.route(
        "PUT",
        "/namespaces/{namespace}/roles/{principal:path}",
        need=Need.ADMIN,
        audit="role.grant",
        response_model=m.RoleGrantOut,
        tags=["namespaces"],
        summary="Give a principal a role (replacing its previous role)",
    )
    def grant_role(
        request: Request, namespace: Namespace, principal: str, body: m.RoleGrantRequest
    ) -> Response:
        db = db_of(request)
        return json_response(_wire.role_grant(db.grant_role(namespace, principal, body.role)))

    @r.route(
        "DELETE",
        "/namespaces/{namespace}/roles/{principal:path}",
        need=Need.ADMIN,
        audit="role.revoke",
        status_code=204,
        tags=["namespaces"],
        summary="Remove a principal's role",
    )
    def revoke_role(request: Request, namespace: Namespace, principal: str) -> Response:
        db = db_of(request)
        db.revoke_role(namespace, principal)
        return Response(status_code=204)

    @r.route(
        "GET",
        "/namespaces/{namespace}/audit",
        need=Need.ADMIN,
        response_model=m.Page[m.AuditEntryOut],
        tags=["access"],
        summary="The namespace's audit log, newest first",
    )
    async def namespace_audit(
        request: Request, namespace: Namespace, limit: Limit = 50, cursor: Cursor = None
    ) -> Response:
        db = db_of(request)
        page = db.list_audit(namespace, limit=limit, cursor=cursor)
        return json_response(page_json(page, _wire.audit_entry))

    # -- schemas -----------------------------------------------------------------------------

    @r.route(
        "GET",
        "/namespaces/{namespace}/schemas",
        need=Need.READER,
        response_model=m.Page[m.SchemaSubjectOut],
        tags=["schemas"],
        summary="The namespace's schemas, then the built-ins",
    )
    async def list_schemas(
        request: Request, namespace: Namespace, limit: Limit = 100, cursor: Cursor = None
    ) -> Response:
        db = db_of(request)
        subjects = db.list_schemas(namespace)
        page = paginate(subjects, lambda s: (int(s.builtin), s.name), limit=limit, cursor=cursor)
        return json_response(page_json(page, _wire.schema_subject))

    @r.route(
        "POST",
        "/namespaces/{namespace}/schemas",
        need=Need.ADMIN,
        audit="schema.add",
        status_code=201,
        response_model=m.SchemaVersionOut,
        tags=["schemas"],
        summary="Add a schema version after checking it",
        responses={409: {"model": m.ProblemOut, "description": "Incompatible"}},
    )
    def add_schema(request: Request, namespace: Namespace, body: m.SchemaAdd) -> Response:
        db = db_of(request)
        version = db.add_schema(
            namespace, body.definition, name=body.name, compatibility=body.compatibility
        )
        return json_response(_wire.schema_version(version), 201)

    @r.route(
        "POST",
        "/namespaces/{namespace}/schemas/check",
        need=Need.ADMIN,
        response_model=m.CompatibilityReportOut,
        tags=["schemas"],
        summary="Check a candidate schema version without storing it",
    )
    def check_schema(request: Request, namespace: Namespace, body: m.SchemaAdd) -> Response:
        db = db_of(request)
        report = db.check_schema(
            namespace, body.definition, name=body.name, compatibility=body.compatibility
        )
        return json_response(_wire.report(report))

    @r.route(
        "GET",
        "/namespaces/{namespace}/schemas/{name}",
        need=Need.READER,
        response_model=m.SchemaVersionOut,
        tags=["schemas"],
        summary="The latest version of a schema",
    )
    async def get_schema(request: Request, namespace: Namespace, name: SchemaName) -> Response:
        db = db_of(request)
        return json_response(_wire.schema_version(db.get_schema(namespace, name)))

    @r.route(
        "GET",
        "/namespaces/{namespace}/schemas/{name}/versions",
        need=Need.READER,
        response_model=m.Page[m.SchemaVersionOut],
        tags=["schemas"],
        summary="Every version of a schema, oldest first",
    )
    async def list_schema_versions(
        request: Request,
        namespace: Namespace,
        name: SchemaName,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Response:
        db = db_of(request)
        versions = db.list_schema_versions(namespace, name)
        page = paginate(versions, lambda v: (v.version,), limit=limit, cursor=cursor)
        return json_response(page_json(page, _wire.schema_version))

    @r.route(
        "GET",
        "/namespaces/{namespace}/schemas/{name}/versions/{version}",
        need=Need.READER,
        response_model=m.SchemaVersionOut,
        tags=["schemas"],
        summary="One schema version (immutable: ETag, If-None-Match)",
        responses={304: {"description": "Not modified"}},
    )
    async def get_schema_version(
        request: Request, namespace: Namespace, name: SchemaName, version: Version
    ) -> Response:
        db = db_of(request)
        found = db.get_schema(namespace, name, version)
        etag = f"schema:{found.namespace}/{found.name}/{found.version}"
        return _etag_response(
            request.headers.get("if-none-match"), etag, _wire.schema_version(found)
        )

    @r.route(
        "PUT",
        "/namespaces/{namespace}/schemas/{name}/compatibility",
        need=Need.ADMIN,
        audit="schema.set_compatibility",
        response_model=m.SchemaSubjectOut,
        tags=["schemas"],
        summary="Change a schema's compatibility mode",
    )
    def set_compatibility(
        request: Request, namespace: Namespace, name: SchemaName, body: m.CompatibilityUpdate
    ) -> Response:
        db = db_of(request)
        return json_response(_wire.schema_subject(db.set_compatibility(namespace, name, body.mode)))

    @r.route(
        "POST",
        "/namespaces/{namespace}/schemas/{name}/validate",
        need=Need.READER,
        response_model=m.ValidationOut,
        tags=["schemas"],
        summary="Validate a value against a schema version; stores nothing",
    )
    def validate(
        request: Request, namespace: Namespace, name: SchemaName, body: m.ValidateRequest
    ) -> Response:
        db = db_of(request)
        found = db.validate(namespace, name, body.instance, version=body.version)
        return json_response(
            {"valid": not found, "violations": [_wire.violation(v) for v in found]}
        )

    # -- DataStores --------------------------------------------------------------------------

    @r.route(
        "POST",
        "/namespaces/{namespace}/datastores",
        need=Need.ADMIN,
        audit="datastore.create",
        status_code=201,
        response_model=m.DataStoreOut,
        tags=["datastores"],
        summary="Create a DataStore",
    )
    def create_datastore(
        request: Request, namespace: Namespace, body: m.DataStoreCreate
    ) -> Response:
        db = db_of(request)
        ref = DataStoreRef(namespace, body.analysis_type, body.version)
        ds = db.create_datastore(
            ref, mid_keys=body.mid_keys, schema=body.schema_, description=body.description
        )
        return json_response(_wire.datastore(ds), 201)

    @r.route(
        "GET",
        "/namespaces/{namespace}/datastores",
        need=Need.READER,
        response_model=m.Page[m.DataStoreOut],
        tags=["datastores"],
        summary="The namespace's DataStores",
    )
    async def list_datastores(
        request: Request, namespace: Namespace, limit: Limit = 100, cursor: Cursor = None
    ) -> Response:
        db = db_of(request)
        page = paginate(
            db.list_datastores(namespace),
            lambda ds: (ds.ref.analysis_type, ds.ref.version),
            limit=limit,
            cursor=cursor,
        )
        return json_response(page_json(page, _wire.datastore))

    @r.route(
        "GET",
        ds_path,
        need=Need.READER,
        response_model=m.DataStoreOut,
        tags=["datastores"],
        summary="Read a DataStore",
    )
    async def get_datastore(
        request: Request, namespace: Namespace, analysis_type: AnalysisType, version: Version
    ) -> Response:
        db = db_of(request)
        ds = db.get_datastore(DataStoreRef(namespace, analysis_type, version))
        return json_response(_wire.datastore(ds))

    @r.route(
        "GET",
        ds_path + "/count",
        need=Need.READER,
        response_model=m.CountOut,
        tags=["datastores"],
        summary="How many documents the DataStore holds",
    )
    async def count_documents(
        request: Request, namespace: Namespace, analysis_type: AnalysisType, version: Version
    ) -> Response:
        db = db_of(request)
        count = db.count_documents(DataStoreRef(namespace, analysis_type, version))
        return json_response({"count": count})

    # -- access: keys and audit --------------------------------------------------------------

    @r.route(
        "POST",
        "/keys",
        need=Need.SYSTEM,
        audit="key.create",
        status_code=201,
        response_model=m.NewApiKeyOut,
        tags=["access"],
        summary="Create an API key (its secret is shown only in this response)",
    )
    def create_api_key(request: Request, body: m.KeyCreate) -> Response:
        db = db_of(request)
        principal = principal_of(request)
        new = db.create_api_key(
            body.principal, description=body.description, created_by=principal.name
        )
        return json_response(_wire.new_api_key(new), 201)

    @r.route(
        "GET",
        "/keys",
        need=Need.SYSTEM,
        response_model=m.Page[m.ApiKeyOut],
        tags=["access"],
        summary="API keys (never their secrets)",
    )
    async def list_api_keys(
        request: Request,
        principal_filter: Annotated[str | None, Query(alias="principal")] = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Response:
        db = db_of(request)
        keys = db.list_api_keys(principal_filter)
        page = paginate(
            keys, lambda k: (k.created_at.isoformat(), k.key_id), limit=limit, cursor=cursor
        )
        return json_response(page_json(page, _wire.api_key))

    @r.route(
        "DELETE",
        "/keys/{key_id}",
        need=Need.SYSTEM,
        audit="key.revoke",
        response_model=m.ApiKeyOut,
        tags=["access"],
        summary="Revoke an API key",
    )
    def revoke_api_key(request: Request, key_id: str) -> Response:
        db = db_of(request)
        return json_response(_wire.api_key(db.revoke_api_key(key_id)))

    @r.route(
        "GET",
        "/audit",
        need=Need.SYSTEM,
        response_model=m.Page[m.AuditEntryOut],
        tags=["access"],
        summary="The whole audit log, newest first",
    )
    async def audit(
        request: Request,
        namespace: Annotated[str | None, Query()] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response:
        db = db_of(request)
        page = db.list_audit(namespace, limit=limit, cursor=cursor)
        return json_response(page_json(page, _wire.audit_entry))

    return r


# -- annotations -----------------------------------------------------------------------------

ANNOTATIONS_PATH: Final = "/namespaces/{namespace}/annotations"
AnnotationId = Annotated[
    UUID, Path(description="The annotation id.", examples=["01932c07-2f4d-7b6e-9a3c-5d1e8f0a4b21"])
]
TypeParam = Annotated[
    str | None,
    Query(
        pattern=r"^[^@]+(@[0-9]{1,18})?$",
        description="Only this annotation type (`NAME` or `NAME@VERSION`) and its subtypes.",
        examples=["BOUNDING_BOX"],
    ),
]
IfMatch = Annotated[
    str | None,
    Header(description='The version you read, as its ETag: `If-Match: "3"`.', examples=['"1"']),
]
_VERSION_PARAM: Final = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_VERSION)])
_VERSION_QUERY: Final[dict[str, Any]] = {
    "name": "version",
    "in": "query",
    "required": False,
    "description": "A version number (immutable: ETag, If-None-Match); default the current one.",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
}
_IF_MATCH: Final = re.compile(r'\s*"([0-9]{1,18})"\s*')
_GONE: Final[dict[int | str, dict[str, Any]]] = {
    304: {"description": "Not modified"},
    410: {"model": m.ProblemOut, "description": "Deleted: its versions stay readable by number"},
}


def _annotation_path(namespace: str, annotation_id: object) -> str:
    return f"/v1/namespaces/{namespace}/annotations/{annotation_id}"


def _annotation_json(found: Annotation, status: int = 200, **headers: str) -> Response:
    return json_response(found.to_json(), status, {"ETag": f'"{found.version}"', **headers})


def _annotation_response(found: Annotation, if_none_match: str | None, pinned: bool) -> Response:
    """One version: immutable when asked for by number; the current one revalidates."""
    if pinned:
        return _etag_response(if_none_match, str(found.version), found.to_json())
    tag = f'"{found.version}"'
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if if_none_match is not None and (if_none_match.strip() == "*" or tag in _etags(if_none_match)):
        return Response(status_code=304, headers=headers)
    return json_response(found.to_json(), headers=headers)


def _version_param(request: Request) -> int | None:
    """``?version=N`` of a direct route (which reads no query parameters by itself)."""
    raw = request.query_params.get("version")
    if raw is None:
        return None
    try:
        version: int = _VERSION_PARAM.validate_python(raw)
    except PydanticValidationError as exc:
        errors = [{**e, "loc": ("query", "version", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None
    return version


def _if_match(header: str | None) -> int | None:
    """The version an ``If-Match`` header names; None when there is none (or ``*``)."""
    if header is None or header.strip() == "*":
        return None
    found = _IF_MATCH.fullmatch(header)
    if found is None:
        message = f'If-Match names one annotation version, e.g. If-Match: "3", not {header!r}'
        raise ValidationError(message, [Violation("/header/if-match", message)])
    return int(found.group(1))


def _expected_version(given: int | None, header: str | None) -> int | None:
    """The expected version from the body (or query) and ``If-Match``, which must agree."""
    matched = _if_match(header)
    if given is not None and matched is not None and given != matched:
        raise ValidationError(
            f"expected_version {given} and If-Match {header} disagree: send one of them"
        )
    return given if given is not None else matched


def _type_arg(value: str | m.TypeRefIn | None) -> Any:
    return value.model_dump() if isinstance(value, m.TypeRefIn) else value


def _association_params(values: list[str]) -> list[dict[str, str]]:
    """``TYPE:ID`` query parameters as associations (a type has no ``:``; an id may)."""
    out = []
    for index, text in enumerate(values):
        kind, colon, ident = text.partition(":")
        if not colon:
            message = f"an association is TYPE:ID, e.g. MOVIE_ID:81234567, not {text!r}"
            raise ValidationError(message, [Violation(f"/query/association/{index}", message)])
        out.append({"type": kind, "id": ident})
    return out


@contextmanager
def _audited(
    request: Request, status: int, target: str | None = None
) -> Iterator[AuditEntry | None]:
    """The request's audit entry, committed with the write; handed back if the write fails."""
    entry = commit_audit(request, status)
    if entry is not None and target is not None:
        entry = dataclasses.replace(entry, target=target)
    try:
        yield entry
    except BaseException:
        restore_audit(request)
        raise


async def _commit_annotations(
    request: Request, count: int, prepare: Callable[[], PreparedAnnotations]
) -> list[Annotation]:
    """Validate an annotation write, then commit it with concurrent ones (group commit).

    A few annotations are validated on the event loop (as small documents are, see
    `_put`); a large batch in the thread pool.
    """
    prepared = prepare() if count <= INLINE_ANNOTATIONS else await run_in_threadpool(prepare)
    committer: GroupCommitter = request.app.state.committer
    return await committer.commit_annotations(db_of(request), prepared)


def _annotation_routes(r: Routes) -> None:  # noqa: C901 - one flat list of routes reads best
    """Declare the annotation routes (`reeldb.annotations.Annotations` over HTTP)."""
    base = ANNOTATIONS_PATH
    tags = ["annotations"]

    # Before `{annotation_id}`, which would match "count" too.
    @r.route(
        "GET",
        base + "/count",
        need=Need.READER,
        response_model=m.CountOut,
        tags=tags,
        summary="How many live (not deleted) annotations the namespace holds",
    )
    async def count_annotations(request: Request, namespace: Namespace) -> Response:
        return json_response({"count": db_of(request).annotations.count(namespace)})

    @r.route(
        "GET",
        base + "/{annotation_id}",
        need=Need.READER,
        response_model=m.AnnotationOut,
        tags=tags,
        summary="An annotation: its current version, or `?version=N` (immutable: ETag)",
        openapi_extra={"parameters": [_VERSION_QUERY]},
        responses=_GONE,
        direct=True,
    )
    async def get_annotation(
        request: Request, namespace: Namespace, annotation_id: AnnotationId
    ) -> Response:
        version = _version_param(request)
        found = db_of(request).annotations.get(namespace, annotation_id, version)
        return _annotation_response(
            found, request.headers.get("if-none-match"), version is not None
        )

    @r.route(
        "GET",
        base + "/{annotation_id}/versions",
        need=Need.READER,
        response_model=m.Page[m.AnnotationOut],
        tags=tags,
        summary="Every version of an annotation, oldest first (a tombstone last if deleted)",
    )
    async def annotation_versions(
        request: Request,
        namespace: Namespace,
        annotation_id: AnnotationId,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Response:
        versions = db_of(request).annotations.versions(namespace, annotation_id)
        page = paginate(versions, lambda a: (a.version,), limit=limit, cursor=cursor)
        return json_response(page_json(page, Annotation.to_json))

    @r.route(
        "POST",
        base,
        need=Need.WRITER,
        audit="annotation.create",
        status_code=201,
        response_model=m.AnnotationOut,
        tags=tags,
        summary="Validate and store a new annotation (version 1)",
    )
    async def create_annotation(
        request: Request, namespace: Namespace, body: m.AnnotationCreate
    ) -> Response:
        # The id is chosen here so that the audit entry names what was created.
        ident: UUID | str = uuid7() if body.id is None else body.id
        with contextlib.suppress(ValueError):  # else `create` says what is wrong with it
            ident = UUID(str(ident))
        target = _annotation_path(namespace, ident)
        db = db_of(request)
        with _audited(request, 201, target) as audit:
            [found] = await _commit_annotations(
                request,
                1,
                lambda: db.annotations.prepare_create(
                    namespace,
                    [
                        {
                            "type": _type_arg(body.type),
                            "associations": body.associations,
                            "data": body.data,
                            "id": str(ident),
                        }
                    ],
                    audit=audit,
                ),
            )
        return _annotation_json(found, 201, Location=_annotation_path(namespace, found.id))

    @r.route(
        "POST",
        base + "/batch",
        need=Need.WRITER,
        audit="annotation.create_batch",
        status_code=201,
        response_model=m.Page[m.AnnotationOut],
        tags=tags,
        summary=f"Store up to {MAX_BATCH:,} annotations in one transaction: all or none",
    )
    async def create_annotations(
        request: Request, namespace: Namespace, body: m.AnnotationBatch
    ) -> Response:
        items = [item.model_dump() for item in body.items]
        db = db_of(request)
        with _audited(request, 201) as audit:
            found = await _commit_annotations(
                request,
                len(items),
                lambda: db.annotations.prepare_create(namespace, items, audit=audit),
            )
        return json_response({"items": [a.to_json() for a in found], "next_cursor": None}, 201)

    @r.route(
        "POST",
        base + "/search",
        need=Need.READER,
        response_model=m.Page[m.AnnotationHitOut],
        tags=tags,
        summary="Find annotations by type, entity, time, box, words and data conditions",
    )
    def search_annotations(
        request: Request, namespace: Namespace, body: m.AnnotationSearch
    ) -> Response:
        page = db_of(request).annotations.search(
            namespace,
            type=_type_arg(body.type),
            subtypes=body.subtypes,
            associations=body.associations,
            time=body.time,
            time_op=body.time_op,
            box=body.box,
            box_op=body.box_op,
            text=body.text,
            text_fields=body.text_fields,
            where=body.where,
            sort=body.sort,
            limit=body.limit,
            cursor=body.cursor,
        )
        return json_response(page_json(page, lambda hit: hit.to_json()))

    @r.route(
        "GET",
        base,
        need=Need.READER,
        response_model=m.Page[m.AnnotationOut],
        tags=tags,
        summary="The annotations of entities (`?association=MOVIE_ID:81234567`), by time",
    )
    def list_annotations(
        request: Request,
        namespace: Namespace,
        association: Annotated[
            list[str] | None,
            Query(
                description="`TYPE:ID` of an entity; repeat it: the annotations of all of them.",
                examples=["MOVIE_ID:81234567"],
            ),
        ] = None,
        type: TypeParam = None,
        sort: Annotated[
            str | None,
            Query(description="time (default), -time, created or -created.", examples=["time"]),
        ] = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Response:
        page = db_of(request).annotations.search(
            namespace,
            type=type,
            associations=_association_params(association or []),
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
        return json_response(page_json(page, lambda hit: hit.annotation.to_json()))

    @r.route(
        "PATCH",
        base + "/{annotation_id}",
        need=Need.WRITER,
        audit="annotation.update",
        response_model=m.AnnotationOut,
        tags=tags,
        summary="Store a new version of an annotation, if it is still at the version you read",
    )
    async def update_annotation(
        request: Request,
        namespace: Namespace,
        annotation_id: AnnotationId,
        body: m.AnnotationUpdate,
        if_match: IfMatch = None,
    ) -> Response:
        expected = _expected_version(body.expected_version, if_match)
        if expected is None:
            raise ValidationError(
                'the version you read is required: send "expected_version" in the body '
                'or an If-Match header such as If-Match: "3" (the ETag of a read)'
            )
        db = db_of(request)
        with _audited(request, 200) as audit:
            [found] = await _commit_annotations(
                request,
                1,
                lambda: db.annotations.prepare_update(
                    namespace,
                    annotation_id,
                    expected_version=expected,
                    data=body.data,
                    associations=body.associations,
                    type=_type_arg(body.type),
                    audit=audit,
                ),
            )
        return _annotation_json(found)

    @r.route(
        "DELETE",
        base + "/{annotation_id}",
        need=Need.WRITER,
        audit="annotation.delete",
        response_model=m.AnnotationOut,
        tags=tags,
        summary="Delete an annotation (a tombstone version); its history stays readable",
    )
    async def delete_annotation(
        request: Request,
        namespace: Namespace,
        annotation_id: AnnotationId,
        expected_version: Annotated[
            int | None,
            Query(description='Fail unless it is at this version (or send `If-Match: "3"`).'),
        ] = None,
        if_match: IfMatch = None,
    ) -> Response:
        expected = _expected_version(expected_version, if_match)
        db = db_of(request)
        with _audited(request, 200) as audit:
            [found] = await _commit_annotations(
                request,
                1,
                lambda: db.annotations.prepare_delete(
                    namespace, annotation_id, expected_version=expected, audit=audit
                ),
            )
        return _annotation_json(found)

    @r.route(
        "GET",
        "/namespaces/{namespace}/associations/{association_type}/{association_id:path}/timeline",
        need=Need.READER,
        response_model=m.Page[m.AnnotationOut],
        tags=tags,
        summary="The timed annotations of an entity that overlap a window, by start time",
    )
    def timeline(
        request: Request,
        namespace: Namespace,
        association_type: Annotated[str, Path(examples=["MOVIE_ID"])],
        association_id: Annotated[str, Path(examples=["81234567"])],
        start: Annotated[float | None, Query(description="Seconds; default 0.")] = None,
        end: Annotated[float | None, Query(description="Seconds; default no end.")] = None,
        type: TypeParam = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TIMELINE, description="Page size.")] = 1000,
        cursor: Cursor = None,
    ) -> Response:
        page = db_of(request).annotations.timeline(
            namespace,
            {"type": association_type, "id": association_id},
            start,
            end,
            type=type,
            limit=limit,
            cursor=cursor,
        )
        return json_response(page_json(page, Annotation.to_json))

    @r.route(
        "GET",
        "/namespaces/{namespace}/association-types",
        need=Need.READER,
        response_model=m.AssociationTypesOut,
        tags=tags,
        summary="The association types the namespace's annotations may use (null: any)",
    )
    async def association_types(request: Request, namespace: Namespace) -> Response:
        found = db_of(request).annotations.association_types(namespace)
        return json_response({"types": None if found is None else list(found)})

    @r.route(
        "PUT",
        "/namespaces/{namespace}/association-types",
        need=Need.ADMIN,
        audit="annotation.restrict_association_types",
        response_model=m.AssociationTypesOut,
        tags=tags,
        summary="Allow only these association types in the namespace (null: any)",
    )
    def restrict_association_types(
        request: Request, namespace: Namespace, body: m.AssociationTypes
    ) -> Response:
        annotations = db_of(request).annotations
        annotations.restrict_association_types(namespace, body.types)
        found = annotations.association_types(namespace)
        return json_response({"types": None if found is None else list(found)})
