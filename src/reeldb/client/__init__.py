"""`Client`: the `reeldb.Database` API over HTTP, method for method.

Same method names, same arguments, same return types, same exceptions: code written against
``reeldb.connect(...)`` runs against a reeldb service by changing that one line::

    db = reeldb.client.Client("http://127.0.0.1:8000", api_key="rdb_...")

Listing methods that return whole lists follow the service's pages for you.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
import orjson

from reeldb import _json, _wire
from reeldb._ids import ANNOTATION_ID_ERROR, parse_uuid
from reeldb._problems import error_from_problem
from reeldb.annotations import (
    MAX_BATCH,
    MAX_TIMELINE,
    Annotation,
    AnnotationHit,
    Association,
    NewAnnotation,
    TypeRef,
)
from reeldb.annotations.model import parse_associations
from reeldb.auth.model import ApiKey, AuditEntry, NewApiKey, Principal
from reeldb.database import (
    check_document_id,
    check_limit,
    check_request_id,
    poll_query,
    poll_until,
)
from reeldb.errors import (
    BackendUnavailableError,
    DatabaseClosedError,
    NotFoundError,
    ValidationError,
    Violation,
)
from reeldb.index.model import Generation
from reeldb.model.datastore import DataStore, DataStoreRef, Namespace, Role, RoleGrant
from reeldb.model.document import Document, DocumentInfo, Page
from reeldb.model.mid import check_mid_keys
from reeldb.model.names import (
    check_namespace,
    check_principal,
    check_schema_name,
    check_version,
)
from reeldb.model.requests import WriteRequest
from reeldb.model.search import DocumentMatch, EventMatch, QueryRequest
from reeldb.query import to_json
from reeldb.query.ast import Expr
from reeldb.reprocess import Job, load_spec
from reeldb.reprocess._service import job_from_json
from reeldb.schema.model import CompatibilityMode, SchemaSubject, SchemaVersion
from reeldb.schema.registry import CompatibilityReport
from reeldb.store.base import BlobPart, BlobRecord, DeadLetter

__all__ = ["DEFAULT_URL", "Client", "RemoteAnnotations", "RemoteReprocessing"]

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
_PAGE = 1000

DocumentInput = Mapping[str, Any] | bytes | str


def _seg(value: object) -> str:
    return quote(str(value), safe="")


# Arguments are checked here with the facade's own checks, so that a bad one raises exactly
# what `Database` raises (and never turns into another URL).
def _ns(name: str) -> str:
    return _seg(check_namespace(name))


def _name(name: str) -> str:
    return _seg(check_schema_name(name))


def _mid(mid: object) -> Any:
    return dict(mid) if isinstance(mid, Mapping) else mid


class Client:
    """A reeldb service, used like a `reeldb.Database`.

    Args:
        base_url: The service, e.g. ``http://127.0.0.1:8000`` (default: ``$REELDB_URL``).
        api_key: An API key (default: ``$REELDB_API_KEY``).
        timeout: Seconds to wait for an answer.
        transport: An httpx transport to use instead of the network (tests, proxies).

    Raises:
        UnauthenticatedError: (from calls) no key, or a bad or revoked key.
        BackendUnavailableError: (from calls) the service cannot be reached.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("REELDB_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("REELDB_API_KEY")
        headers = {"Accept": "application/json", "User-Agent": "reeldb-client"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport or httpx.HTTPTransport(retries=3),
        )
        self.annotations = RemoteAnnotations(self)
        """Annotations, as `reeldb.Database.annotations` (`RemoteAnnotations`)."""
        self.blobs = RemoteBlobs(self)
        self.reprocess = RemoteReprocessing(self)
        """Reprocessing jobs (`RemoteReprocessing`)."""
        """Blobs, as `reeldb.Database.blobs` (`RemoteBlobs`)."""

    @property
    def url(self) -> str:
        """The service URL."""
        return self.base_url

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<reeldb.client.Client {self.base_url}>"

    # -- transport ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        if self._http.is_closed:
            raise DatabaseClosedError(f"the client of {self.base_url} is closed")
        content = None if json is None else orjson.dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, "/v1" + path, content=content, params=query, headers=headers
            )
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"cannot reach reeldb at {self.base_url}: {exc}") from exc
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        if not 200 <= response.status_code < 300:
            raise error_from_problem(response.status_code, body)
        if body is None and response.status_code != 204:
            raise BackendUnavailableError(
                f"{self.base_url} answered {method} {path} with no JSON: is it a reeldb service?"
            )
        return body

    def _pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        cursor = None
        while True:
            page = self._call(
                "GET", path, params={**(params or {}), "limit": _PAGE, "cursor": cursor}
            )
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def _all(self, path: str, decode: Callable[[Any], T], **params: Any) -> list[T]:
        return [decode(item) for item in self._pages(path, params)]

    # -- namespaces and roles -----------------------------------------------------------------

    def create_namespace(
        self, name: str, *, description: str = "", admins: Sequence[str] = ()
    ) -> Namespace:
        """See `reeldb.Database.create_namespace` (needs a system administrator's key)."""
        body = {"name": name, "description": description, "admins": list(admins)}
        return _wire.namespace_from(self._call("POST", "/namespaces", json=body))

    def get_namespace(self, name: str) -> Namespace:
        """See `reeldb.Database.get_namespace`."""
        return _wire.namespace_from(self._call("GET", f"/namespaces/{_ns(name)}"))

    def list_namespaces(self) -> list[Namespace]:
        """See `reeldb.Database.list_namespaces`; only namespaces where the key has a role."""
        return self._all("/namespaces", _wire.namespace_from)

    def grant_role(self, namespace: str, principal: str, role: str | Role) -> RoleGrant:
        """See `reeldb.Database.grant_role`."""
        body = {"role": Role.parse(role).value}
        path = self._role_path(namespace, principal)
        return _wire.role_grant_from(self._call("PUT", path, json=body))

    def revoke_role(self, namespace: str, principal: str) -> None:
        """See `reeldb.Database.revoke_role`."""
        self._call("DELETE", self._role_path(namespace, principal))

    @staticmethod
    def _role_path(namespace: str, principal: str) -> str:
        return f"/namespaces/{_ns(namespace)}/roles/{_seg(check_principal(principal))}"

    def list_roles(self, namespace: str) -> list[RoleGrant]:
        """See `reeldb.Database.list_roles`."""
        return self._all(f"/namespaces/{_ns(namespace)}/roles", _wire.role_grant_from)

    # -- schemas ------------------------------------------------------------------------------

    @staticmethod
    def _schema_body(
        definition: Mapping[str, Any] | str | bytes,
        name: str | None,
        compatibility: str | CompatibilityMode | None,
    ) -> dict[str, Any]:
        decoded = (
            _json.loads(definition, what="schema definition")
            if isinstance(definition, str | bytes)
            else definition
        )
        mode = None if compatibility is None else CompatibilityMode.parse(compatibility).value
        return {"definition": decoded, "name": name, "compatibility": mode}

    def add_schema(
        self,
        namespace: str,
        definition: Mapping[str, Any] | str | bytes,
        *,
        name: str | None = None,
        compatibility: str | CompatibilityMode | None = None,
    ) -> SchemaVersion:
        """See `reeldb.Database.add_schema`."""
        body = self._schema_body(definition, name, compatibility)
        found = self._call("POST", f"/namespaces/{_ns(namespace)}/schemas", json=body)
        return _wire.schema_version_from(found)

    def check_schema(
        self,
        namespace: str,
        definition: Mapping[str, Any] | str | bytes,
        *,
        name: str | None = None,
        compatibility: str | CompatibilityMode | None = None,
    ) -> CompatibilityReport:
        """See `reeldb.Database.check_schema`."""
        body = self._schema_body(definition, name, compatibility)
        found = self._call("POST", f"/namespaces/{_ns(namespace)}/schemas/check", json=body)
        return _wire.report_from(found)

    def get_schema(self, namespace: str, name: str, version: int | None = None) -> SchemaVersion:
        """See `reeldb.Database.get_schema`."""
        path = f"/namespaces/{_ns(namespace)}/schemas/{_name(name)}"
        if version is not None:
            path += f"/versions/{check_version(version, 'schema version')}"
        return _wire.schema_version_from(self._call("GET", path))

    def list_schemas(self, namespace: str) -> list[SchemaSubject]:
        """See `reeldb.Database.list_schemas`."""
        return self._all(f"/namespaces/{_ns(namespace)}/schemas", _wire.schema_subject_from)

    def list_schema_versions(self, namespace: str, name: str) -> list[SchemaVersion]:
        """See `reeldb.Database.list_schema_versions`."""
        path = f"/namespaces/{_ns(namespace)}/schemas/{_name(name)}/versions"
        return self._all(path, _wire.schema_version_from)

    def set_compatibility(
        self, namespace: str, name: str, mode: str | CompatibilityMode
    ) -> SchemaSubject:
        """See `reeldb.Database.set_compatibility`."""
        path = f"/namespaces/{_ns(namespace)}/schemas/{_name(name)}/compatibility"
        body = {"mode": CompatibilityMode.parse(mode).value}
        return _wire.schema_subject_from(self._call("PUT", path, json=body))

    def validate(
        self, namespace: str, schema: str, instance: Any, *, version: int | None = None
    ) -> list[Violation]:
        """See `reeldb.Database.validate`."""
        path = f"/namespaces/{_ns(namespace)}/schemas/{_name(schema)}/validate"
        found = self._call("POST", path, json={"instance": instance, "version": version})
        return [_wire.violation_from(v) for v in found["violations"]]

    # -- DataStores ---------------------------------------------------------------------------

    @staticmethod
    def _ds_path(datastore: str | DataStoreRef) -> str:
        ref = DataStoreRef.parse(datastore)
        return (
            f"/namespaces/{_ns(ref.namespace)}/datastores/{_seg(ref.analysis_type)}/{ref.version}"
        )

    def create_datastore(
        self,
        datastore: str | DataStoreRef,
        *,
        mid_keys: Sequence[str],
        schema: str,
        description: str = "",
    ) -> DataStore:
        """See `reeldb.Database.create_datastore`."""
        ref = DataStoreRef.parse(datastore)
        body = {
            "analysis_type": ref.analysis_type,
            "version": ref.version,
            "mid_keys": list(check_mid_keys(mid_keys)),
            "schema": schema,
            "description": description,
        }
        found = self._call("POST", f"/namespaces/{_ns(ref.namespace)}/datastores", json=body)
        return _wire.datastore_from(found)

    def get_datastore(self, datastore: str | DataStoreRef) -> DataStore:
        """See `reeldb.Database.get_datastore`."""
        return _wire.datastore_from(self._call("GET", self._ds_path(datastore)))

    def list_datastores(self, namespace: str | None = None) -> list[DataStore]:
        """See `reeldb.Database.list_datastores`; with no namespace, those the key can read."""
        names = [namespace] if namespace is not None else [n.name for n in self.list_namespaces()]
        found: list[DataStore] = []
        for name in names:
            found += self._all(f"/namespaces/{_seg(name)}/datastores", _wire.datastore_from)
        return sorted(found, key=lambda ds: ds.ref)

    def count_documents(self, datastore: str | DataStoreRef) -> int:
        """See `reeldb.Database.count_documents`."""
        count: int = self._call("GET", self._ds_path(datastore) + "/count")["count"]
        return count

    # -- documents ----------------------------------------------------------------------------

    @staticmethod
    def _item(mid: Mapping[str, str], document: DocumentInput) -> tuple[dict[str, Any], bytes]:
        if isinstance(document, bytes | bytearray | memoryview | str):
            data = _json.loads(document, what="document")
        else:
            data = document
        body = _json.dumps(data)
        return {"mid": _mid(mid), "document": orjson.Fragment(body)}, body

    def put_document(
        self, datastore: str | DataStoreRef, mid: Mapping[str, str], document: DocumentInput
    ) -> Document:
        """See `reeldb.Database.put_document`."""
        item, body = self._item(mid, document)
        info = self._call("POST", self._ds_path(datastore) + "/documents", json=item)
        return self._stored(info, body)

    def put_documents(
        self,
        datastore: str | DataStoreRef,
        items: Iterable[tuple[Mapping[str, str], DocumentInput]],
    ) -> list[Document]:
        """See `reeldb.Database.put_documents`."""
        prepared = []
        for index, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValidationError(f"item {index} is not a (mid, document) pair")
            prepared.append(self._item(*item))
        if not prepared:
            raise ValidationError("no documents to write")
        found = self._call(
            "POST",
            self._ds_path(datastore) + "/documents/batch",
            json={"items": [item for item, _ in prepared]},
        )
        return [
            self._stored(info, body)
            for info, (_, body) in zip(found["items"], prepared, strict=True)
        ]

    @staticmethod
    def _stored(info: dict[str, Any], body: bytes) -> Document:
        stored = _wire.document_info_from(info)
        return Document(
            stored.id, stored.datastore, stored.mid, stored.schema_version, stored.created_at, body
        )

    def get_document(
        self, document_id: UUID | str, *, datastore: str | DataStoreRef | None = None
    ) -> Document:
        """See `reeldb.Database.get_document`."""
        checked = check_document_id(document_id)
        if datastore is None:
            return _wire.document_from(self._call("GET", f"/documents/{checked}"))
        path = self._ds_path(datastore) + f"/documents/{checked}"
        return _wire.document_from(self._call("GET", path))

    def latest_document(self, datastore: str | DataStoreRef, mid: Mapping[str, str]) -> Document:
        """See `reeldb.Database.latest_document`."""
        params = {"mid": _json.dumps(_mid(mid)).decode()}
        found = self._call("GET", self._ds_path(datastore) + "/documents/latest", params=params)
        return _wire.document_from(found)

    def get_document_info(self, document_id: UUID | str) -> DocumentInfo:
        """See `reeldb.Database.get_document_info`."""
        checked = check_document_id(document_id)
        return _wire.document_info_from(self._call("GET", f"/documents/{checked}/info"))

    def list_documents(
        self,
        datastore: str | DataStoreRef,
        mid: Mapping[str, str],
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DocumentInfo]:
        """See `reeldb.Database.list_documents`."""
        check_limit(limit)
        params = {"mid": _json.dumps(_mid(mid)).decode(), "limit": limit, "cursor": cursor}
        found = self._call("GET", self._ds_path(datastore) + "/documents", params=params)
        return Page(
            tuple(_wire.document_info_from(d) for d in found["items"]), found["next_cursor"]
        )

    # -- queries and the index ----------------------------------------------------------------

    def query_datastore(
        self,
        datastore: str | DataStoreRef,
        query: str | Mapping[str, Any] | Expr,
        *,
        all_versions: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DocumentMatch]:
        """See `reeldb.Database.query_datastore`."""
        check_limit(limit)
        body = {
            "query": _query_json(query),
            "all_versions": all_versions,
            "limit": limit,
            "cursor": cursor,
        }
        found = self._call("POST", self._ds_path(datastore) + "/query", json=body)
        items = tuple(_wire.document_match_from(d) for d in found["items"])
        return Page(items, found["next_cursor"], found.get("total"))

    def submit_query(
        self,
        datastore: str | DataStoreRef,
        query: str | Mapping[str, Any] | Expr,
        *,
        all_versions: bool = False,
    ) -> QueryRequest:
        """See `reeldb.Database.submit_query`."""
        body = {"query": _query_json(query), "all_versions": all_versions}
        found = self._call("POST", self._ds_path(datastore) + "/queries", json=body)
        return _wire.query_request_from(found)

    def submit_write(
        self,
        datastore: str | DataStoreRef,
        mid: Mapping[str, str],
        *,
        blob: UUID | str | None = None,
        document: DocumentInput | None = None,
        idempotency_key: str | None = None,
        webhook: str | None = None,
    ) -> tuple[WriteRequest, bool]:
        """See `reeldb.Database.submit_write` (``document`` is sent inline)."""
        body: dict[str, Any] = {"mid": _mid(mid)}
        if blob is not None:
            body["blob"] = str(blob)
        if document is not None:
            raw = document if isinstance(document, bytes | str) else orjson.dumps(document)
            body["document"] = orjson.Fragment(raw)
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if webhook is not None:
            body["webhook"] = webhook
        response = self._response("POST", self._ds_path(datastore) + "/documents/async", body)
        return _wire.write_request_from(orjson.loads(response.content)), response.status_code == 202

    def get_write_request(self, request_id: UUID | str) -> WriteRequest:
        """See `reeldb.Database.get_write_request`."""
        return _wire.write_request_from(self._call("GET", f"/requests/{_seg(request_id)}"))

    def wait_write_request(
        self, request_id: UUID | str, *, timeout: float = 60.0, poll: float = 0.2
    ) -> WriteRequest:
        """See `reeldb.Database.wait_write_request`."""
        return poll_until(
            lambda: self.get_write_request(request_id), lambda r: r.finished, timeout, poll
        )

    def list_write_requests(
        self, namespace: str, *, unfinished: bool = False, limit: int = 100
    ) -> list[WriteRequest]:
        """See `reeldb.Database.list_write_requests` (the first page)."""
        page = self._call(
            "GET",
            f"/namespaces/{_ns(namespace)}/requests",
            params={"unfinished": str(unfinished).lower(), "limit": limit},
        )
        return [_wire.write_request_from(item) for item in page["items"]]

    def put_document_from_file(
        self,
        datastore: str | DataStoreRef,
        mid: Mapping[str, str],
        path: str | os.PathLike[str],
        *,
        timeout: float = 3600.0,
    ) -> WriteRequest:
        """Upload a document file of any size as a blob, write it asynchronously, wait.

        Args:
            datastore: ``namespace/analysis_type/version``.
            mid: The media ID.
            path: The JSON file (streamed, never read whole).
            timeout: Seconds to wait for the write to finish.

        Returns:
            The finished request (``INDEXED``, or ``FAILED`` with every violation).
        """
        namespace = str(datastore).split("/", 1)[0]
        file = Path(path)
        record = self.blobs.create(namespace, size=file.stat().st_size)
        with file.open("rb") as handle:
            self.blobs.upload(namespace, record.id, iter(lambda: handle.read(1 << 20), b""))
        request, _ = self.submit_write(datastore, mid, blob=record.id)
        return self.wait_write_request(request.id, timeout=timeout)

    def _response(self, method: str, path: str, json: Any) -> httpx.Response:
        """Send JSON; the response (raising the error a problem answer stands for)."""
        if self._http.is_closed:
            raise DatabaseClosedError(f"the client of {self.base_url} is closed")
        try:
            response = self._http.request(
                method,
                "/v1" + path,
                content=orjson.dumps(json),
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"cannot reach reeldb at {self.base_url}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            try:
                problem = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                problem = None
            raise error_from_problem(response.status_code, problem)
        return response

    def get_query_request(self, request_id: UUID | str) -> QueryRequest:
        """See `reeldb.Database.get_query_request`."""
        found = self._call("GET", f"/queries/{check_request_id(request_id)}")
        return _wire.query_request_from(found)

    def wait_query(
        self, request_id: UUID | str, *, timeout: float | None = None, poll: float = 0.2
    ) -> QueryRequest:
        """See `reeldb.Database.wait_query`."""
        return poll_query(self.get_query_request, request_id, timeout, poll)

    def query_results(
        self, request_id: UUID | str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[DocumentMatch]:
        """See `reeldb.Database.query_results`."""
        check_limit(limit)
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        found = self._call("GET", f"/queries/{check_request_id(request_id)}/results", params=params)
        items = tuple(_wire.document_match_from(d) for d in found["items"])
        return Page(items, found["next_cursor"], found.get("total"))

    def query_document(
        self,
        document_id: UUID | str,
        query: str | Mapping[str, Any] | Expr,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventMatch]:
        """See `reeldb.Database.query_document`."""
        check_limit(limit)
        checked = check_document_id(document_id)
        body = {"query": _query_json(query), "limit": limit, "cursor": cursor}
        found = self._call("POST", f"/documents/{checked}/query", json=body)
        return Page(tuple(_wire.event_match_from(d) for d in found["items"]), found["next_cursor"])

    def index_status(self, datastore: str | DataStoreRef) -> list[Generation]:
        """See `reeldb.Database.index_status`."""
        found = self._call("GET", self._ds_path(datastore) + "/index")
        return [_wire.generation_from(g) for g in found]

    def rebuild_index(
        self,
        datastore: str | DataStoreRef,
        *,
        batch_size: int = 500,
        progress: Callable[[int, int], None] | None = None,
    ) -> Generation:
        """See `reeldb.Database.rebuild_index` (``progress`` is called once, at the end)."""
        found = self._call(
            "POST", self._ds_path(datastore) + "/index/rebuild", json={"batch_size": batch_size}
        )
        generation = _wire.generation_from(found)
        if progress is not None:
            progress(generation.docs, generation.docs)
        return generation

    # -- access -------------------------------------------------------------------------------

    def whoami(self) -> Principal:
        """The principal this client's key stands for, with its roles.

        Returns:
            The principal.
        """
        return _wire.principal_from(self._call("GET", "/whoami"))

    def create_api_key(self, principal: str, *, description: str = "") -> NewApiKey:
        """See `reeldb.Database.create_api_key` (needs a system administrator's key)."""
        body = {"principal": principal, "description": description}
        return _wire.new_api_key_from(self._call("POST", "/keys", json=body))

    def list_api_keys(self, principal: str | None = None) -> list[ApiKey]:
        """See `reeldb.Database.list_api_keys`."""
        return self._all("/keys", _wire.api_key_from, principal=principal)

    def revoke_api_key(self, key_id: str) -> ApiKey:
        """See `reeldb.Database.revoke_api_key`."""
        if not key_id or not str(key_id).isalnum():
            raise NotFoundError(f"API key {key_id} does not exist")
        return _wire.api_key_from(self._call("DELETE", f"/keys/{_seg(key_id)}"))

    def list_audit(
        self, namespace: str | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page[AuditEntry]:
        """See `reeldb.Database.list_audit` (a namespace's admin; all: a system admin)."""
        check_limit(limit)
        path = "/audit" if namespace is None else f"/namespaces/{_ns(namespace)}/audit"
        found = self._call("GET", path, params={"limit": limit, "cursor": cursor})
        return Page(tuple(_wire.audit_entry_from(e) for e in found["items"]), found["next_cursor"])


def _query_json(query: str | Mapping[str, Any] | Expr) -> Any:
    if isinstance(query, str):
        return query
    if isinstance(query, Mapping):
        return dict(query)
    return to_json(query)


# -- annotations -------------------------------------------------------------------------------

AssociationInput = Association | Mapping[str, str]
TypeInput = str | TypeRef | Mapping[str, Any]


class RemoteBlobs:
    """`reeldb.ingest.Blobs` over HTTP: announce, upload (streamed), look up."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"RemoteBlobs({self._client.base_url!r})"

    def create(self, namespace: str, *, size: int | None = None) -> BlobRecord:
        """See `reeldb.ingest.Blobs.create`."""
        found = self._client._call(
            "POST", f"/namespaces/{_ns(namespace)}/blobs", json={"size": size}
        )
        return _wire.blob_record_from(found)

    def upload(self, namespace: str, blob_id: UUID | str, chunks: Iterable[bytes]) -> BlobRecord:
        """See `reeldb.ingest.Blobs.upload`: the chunks are streamed, never held whole."""
        path = f"/namespaces/{_ns(namespace)}/blobs/{_seg(blob_id)}"
        return _wire.blob_record_from(self._stream(path, chunks))

    def upload_part(
        self, namespace: str, blob_id: UUID | str, number: int, chunks: Iterable[bytes]
    ) -> BlobPart:
        """See `reeldb.ingest.Blobs.upload_part` (the ``payload`` is not shown: nil UUID)."""
        path = f"/namespaces/{_ns(namespace)}/blobs/{_seg(blob_id)}/parts/{number}"
        found = self._stream(path, chunks)
        return BlobPart(found["number"], found["size"], found["sha256"], UUID(int=0))

    def parts(self, namespace: str, blob_id: UUID | str) -> list[BlobPart]:
        """See `reeldb.ingest.Blobs.parts`."""
        page = self._client._call(
            "GET", f"/namespaces/{_ns(namespace)}/blobs/{_seg(blob_id)}/parts"
        )
        return [BlobPart(p["number"], p["size"], p["sha256"], UUID(int=0)) for p in page["items"]]

    def complete(self, namespace: str, blob_id: UUID | str) -> BlobRecord:
        """See `reeldb.ingest.Blobs.complete`."""
        path = f"/namespaces/{_ns(namespace)}/blobs/{_seg(blob_id)}/complete"
        return _wire.blob_record_from(self._client._call("POST", path, json={}))

    def upload_file(
        self,
        namespace: str,
        path: str | os.PathLike[str],
        *,
        blob_id: UUID | str | None = None,
        part_size: int = 32 * 1024 * 1024,
    ) -> BlobRecord:
        """Upload a file of any size in parts, resumably.

        With the ``blob_id`` of an upload that stopped, the parts already there (same size
        and SHA-256) are not sent again.

        Args:
            namespace: The namespace.
            path: The file (read part by part, never whole).
            blob_id: Resume this upload (default: announce a new blob).
            part_size: Bytes per part.

        Returns:
            The stored blob.
        """
        file = Path(path)
        size = file.stat().st_size
        if blob_id is None:
            blob_id = self.create(namespace, size=size).id
        have = {p.number: p for p in self.parts(namespace, blob_id)}
        with file.open("rb") as handle:
            number = 0
            while True:
                number += 1
                piece = handle.read(part_size)
                if not piece and number > 1:
                    break
                known = have.get(number)
                if known is None or (known.size, known.sha256) != (
                    len(piece),
                    hashlib.sha256(piece).hexdigest(),
                ):
                    self.upload_part(namespace, blob_id, number, [piece])
                if len(piece) < part_size:
                    break
        return self.complete(namespace, blob_id)

    def _stream(self, path: str, chunks: Iterable[bytes]) -> Any:
        client = self._client
        try:
            response = client._http.request(
                "PUT",
                "/v1" + path,
                content=iter(chunks),
                headers={"Content-Type": "application/octet-stream"},
                timeout=None,
            )
        except httpx.TransportError as exc:
            where = client.base_url
            raise BackendUnavailableError(f"cannot reach reeldb at {where}: {exc}") from exc
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if not 200 <= response.status_code < 300:
            raise error_from_problem(response.status_code, body)
        return body

    def put(self, namespace: str, chunks: Iterable[bytes]) -> BlobRecord:
        """See `reeldb.ingest.Blobs.put`."""
        record = self.create(namespace)
        return self.upload(namespace, record.id, chunks)

    def get(self, blob_id: UUID | str, *, namespace: str) -> BlobRecord:
        """See `reeldb.ingest.Blobs.get`."""
        found = self._client._call("GET", f"/namespaces/{_ns(namespace)}/blobs/{_seg(blob_id)}")
        return _wire.blob_record_from(found)


class RemoteReprocessing:
    """`reeldb.reprocess.Reprocessing` over HTTP: ``client.reprocess``.

    Submitting, watching and steering jobs; the service's workers run them (there is no
    ``run`` over HTTP). Functions may only name plug-ins installed on the service.

    Args:
        client: The client whose service it calls.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<reeldb.client.RemoteReprocessing {self._client.base_url}>"

    def _path(self, job_id: UUID | str) -> str:
        job = self.get(job_id)
        return f"/namespaces/{_ns(job.namespace)}/jobs/{job.id}"

    def submit(self, spec: Mapping[str, Any] | Any, **overrides: Any) -> Job:
        """See `reeldb.reprocess.Reprocessing.submit` (writer role)."""
        checked = load_spec(spec, **overrides)
        path = f"/namespaces/{_ns(checked.source.namespace)}/jobs"
        return job_from_json(self._client._call("POST", path, json=checked.to_json()))

    def get(self, job_id: UUID | str) -> Job:
        """See `reeldb.reprocess.Reprocessing.get` (reader role)."""
        return job_from_json(self._client._call("GET", f"/jobs/{job_id}"))

    def list_jobs(self, namespace: str, *, limit: int = 100) -> list[Job]:
        """See `reeldb.reprocess.Reprocessing.list_jobs` (one namespace; reader role)."""
        found = self._client._call(
            "GET", f"/namespaces/{_ns(namespace)}/jobs", params={"limit": limit}
        )
        return [job_from_json(item) for item in found["items"]]

    def pause(self, job_id: UUID | str) -> Job:
        """See `reeldb.reprocess.Reprocessing.pause` (writer role)."""
        return job_from_json(self._client._call("POST", self._path(job_id) + "/pause"))

    def resume(self, job_id: UUID | str) -> Job:
        """See `reeldb.reprocess.Reprocessing.resume` (writer role)."""
        return job_from_json(self._client._call("POST", self._path(job_id) + "/resume"))

    def cancel(self, job_id: UUID | str) -> Job:
        """See `reeldb.reprocess.Reprocessing.cancel` (writer role)."""
        return job_from_json(self._client._call("POST", self._path(job_id) + "/cancel"))

    def dead_letters(
        self, job_id: UUID | str, *, after: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """See `reeldb.reprocess.Reprocessing.dead_letters` (reader role)."""
        found = self._client._call(
            "GET",
            self._path(job_id) + "/dead-letters",
            params={"cursor": after, "limit": limit},
        )
        job = UUID(str(job_id))
        return [
            DeadLetter(
                job,
                d["item"],
                d["partition"],
                d["error"],
                d["attempts"],
                datetime.fromisoformat(d["at"]),
                d["state"],
            )
            for d in found["items"]
        ]

    def retry(self, job_id: UUID | str) -> int:
        """See `reeldb.reprocess.Reprocessing.retry` (writer role)."""
        found = self._client._call("POST", self._path(job_id) + "/retry")
        return int(found["retried"])


class RemoteAnnotations:
    """`reeldb.annotations.Annotations` over HTTP: ``client.annotations``.

    The same methods, arguments, values and exceptions as ``db.annotations``, without the
    ``audit`` argument: the service records who wrote (``created_by`` is the key's principal).

    Args:
        client: The client whose service it calls.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<reeldb.client.RemoteAnnotations {self._client.base_url}>"

    @staticmethod
    def _path(namespace: str, annotation_id: UUID | str | None = None) -> str:
        path = f"/namespaces/{_ns(namespace)}/annotations"
        return path if annotation_id is None else f"{path}/{annotation_id}"

    # -- namespace settings ---------------------------------------------------------------

    def association_types(self, namespace: str) -> tuple[str, ...] | None:
        """See `reeldb.annotations.Annotations.association_types`."""
        found = self._client._call("GET", f"/namespaces/{_ns(namespace)}/association-types")
        return None if found["types"] is None else tuple(found["types"])

    def restrict_association_types(self, namespace: str, types: Sequence[str] | None) -> None:
        """See `reeldb.annotations.Annotations.restrict_association_types` (admin role)."""
        body = {"types": None if types is None else list(types)}
        self._client._call("PUT", f"/namespaces/{_ns(namespace)}/association-types", json=body)

    # -- writes ---------------------------------------------------------------------------

    def create(
        self,
        namespace: str,
        type: TypeInput,
        associations: Iterable[AssociationInput],
        data: Mapping[str, Any],
        *,
        id: UUID | str | None = None,
    ) -> Annotation:
        """See `reeldb.annotations.Annotations.create`."""
        ident = None if id is None else _annotation_id(id)
        body = {
            "type": _type_json(type),
            "associations": [a.to_json() for a in parse_associations(list(associations))],
            "data": _data_json(data),
            "id": None if ident is None else str(ident),
        }
        return _annotation_from(self._client._call("POST", self._path(namespace), json=body))

    def create_many(
        self, namespace: str, items: Iterable[NewAnnotation | Mapping[str, Any]]
    ) -> list[Annotation]:
        """See `reeldb.annotations.Annotations.create_many`.

        Violations point into the item as embedded (``/3/data/boundingBox``); an item that is
        not ``{type, associations, data[, id]}`` of the right JSON types is refused by the
        service's request model instead (``/body/items/3/...``).
        """
        body: list[Any] = []
        for item in items:
            if len(body) == MAX_BATCH:
                raise ValidationError(f"a batch holds at most {MAX_BATCH} annotations")
            body.append(_new_json(item))
        found = self._client._call("POST", self._path(namespace) + "/batch", json={"items": body})
        return [_annotation_from(a) for a in found["items"]]

    def update(
        self,
        namespace: str,
        annotation_id: UUID | str,
        *,
        expected_version: int,
        data: Mapping[str, Any] | None = None,
        associations: Iterable[AssociationInput] | None = None,
        type: TypeInput | None = None,
    ) -> Annotation:
        """See `reeldb.annotations.Annotations.update`."""
        path = self._path(namespace, _annotation_id(annotation_id))
        body = {
            "expected_version": expected_version,
            "data": None if data is None else _data_json(data),
            "associations": None if associations is None else _associations_json(associations),
            "type": None if type is None else _type_json(type),
        }
        return _annotation_from(self._client._call("PATCH", path, json=body))

    def delete(
        self, namespace: str, annotation_id: UUID | str, *, expected_version: int | None = None
    ) -> Annotation:
        """See `reeldb.annotations.Annotations.delete`."""
        path = self._path(namespace, _annotation_id(annotation_id))
        params = {"expected_version": expected_version}
        return _annotation_from(self._client._call("DELETE", path, params=params))

    # -- reads ----------------------------------------------------------------------------

    def get(
        self, namespace: str, annotation_id: UUID | str, version: int | None = None
    ) -> Annotation:
        """See `reeldb.annotations.Annotations.get`."""
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise ValidationError("an annotation version is a whole number from 1")
        path = self._path(namespace, _annotation_id(annotation_id))
        return _annotation_from(self._client._call("GET", path, params={"version": version}))

    def versions(self, namespace: str, annotation_id: UUID | str) -> list[Annotation]:
        """See `reeldb.annotations.Annotations.versions`."""
        path = self._path(namespace, _annotation_id(annotation_id)) + "/versions"
        return self._client._all(path, _annotation_from)

    def count(self, namespace: str) -> int:
        """See `reeldb.annotations.Annotations.count`."""
        count: int = self._client._call("GET", self._path(namespace) + "/count")["count"]
        return count

    def search(
        self,
        namespace: str,
        *,
        type: TypeInput | None = None,
        subtypes: bool = True,
        associations: Iterable[AssociationInput] = (),
        time: tuple[float, float] | Sequence[float] | None = None,
        time_op: str = "overlaps",
        box: Sequence[float] | Mapping[str, float] | None = None,
        box_op: str = "intersects",
        text: str | None = None,
        text_fields: Sequence[str] | None = None,
        where: str | Mapping[str, Any] | Expr | None = None,
        sort: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AnnotationHit]:
        """See `reeldb.annotations.Annotations.search`."""
        check_limit(limit)
        body = {
            "type": None if type is None else _type_json(type),
            "subtypes": subtypes,
            "associations": _associations_json(associations),
            "time": _sequence_json(time),
            "time_op": time_op,
            "box": dict(box) if isinstance(box, Mapping) else _sequence_json(box),
            "box_op": box_op,
            "text": text,
            "text_fields": None if text_fields is None else list(text_fields),
            "where": None if where is None else _query_json(where),
            "sort": sort,
            "limit": limit,
            "cursor": cursor,
        }
        found = self._client._call("POST", self._path(namespace) + "/search", json=body)
        hits = (
            AnnotationHit(_annotation_from(d), d["score"], d["highlights"]) for d in found["items"]
        )
        return Page(tuple(hits), found["next_cursor"])

    def timeline(
        self,
        namespace: str,
        association: AssociationInput,
        start: float | None = None,
        end: float | None = None,
        *,
        type: TypeInput | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[Annotation]:
        """See `reeldb.annotations.Annotations.timeline`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TIMELINE:
            raise ValidationError(f"limit must be an integer from 1 to {MAX_TIMELINE}")
        [link] = parse_associations([association], at="/association")
        # Dots too: a client would drop a "." or ".." segment from the path.
        ident = _seg(link.id).replace(".", "%2E")
        path = f"/namespaces/{_ns(namespace)}/associations/{_seg(link.type)}/{ident}/timeline"
        params = {
            "start": start,
            "end": end,
            "type": None if type is None else _type_param(type),
            "limit": limit,
            "cursor": cursor,
        }
        found = self._client._call("GET", path, params=params)
        return Page(tuple(_annotation_from(d) for d in found["items"]), found["next_cursor"])


def _annotation_from(d: dict[str, Any]) -> Annotation:
    """Rebuild an `Annotation` from its JSON (`Annotation.to_json`)."""
    return Annotation(
        UUID(d["id"]),
        d["version"],
        d["namespace"],
        TypeRef(d["type"]["name"], d["type"]["version"]),
        tuple(Association(a["type"], a["id"]) for a in d["associations"]),
        d["data"],
        d["deleted"],
        datetime.fromisoformat(d["created_at"]),
        d["created_by"],
    )


def _annotation_id(value: UUID | str) -> UUID:
    # The check and message of `Annotations`: the same error, and never another URL.
    return parse_uuid(value, "annotation id", message=ANNOTATION_ID_ERROR)


def _type_json(value: Any) -> Any:
    if isinstance(value, TypeRef):
        return value.to_json()
    return dict(value) if isinstance(value, Mapping) else value


def _type_param(value: Any) -> Any:
    """A type as a query parameter: ``NAME`` or ``NAME@VERSION``."""
    if isinstance(value, TypeRef):
        return f"{value.name}@{value.version}"
    if isinstance(value, Mapping):
        version = value.get("version")
        return value.get("name") if version is None else f"{value.get('name')}@{version}"
    return value


def _association_json(value: Any) -> Any:
    if isinstance(value, Association):
        return value.to_json()
    return dict(value) if isinstance(value, Mapping) else value


def _associations_json(values: Iterable[Any]) -> list[Any]:
    return [_association_json(a) for a in values]


def _data_json(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _sequence_json(value: Any) -> Any:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return value


def _new_json(item: Any) -> Any:
    """An item of a bulk create as the service reads it: ``{type, associations, data, id}``."""
    if isinstance(item, NewAnnotation):
        return {
            "type": _type_json(item.type),
            "associations": _associations_json(item.associations),
            "data": _data_json(item.data),
            "id": None if item.id is None else str(item.id),
        }
    if not isinstance(item, Mapping):
        return item
    found = dict(item)
    if "type" in found:
        found["type"] = _type_json(found["type"])
    if isinstance(found.get("associations"), list | tuple):
        found["associations"] = _associations_json(found["associations"])
    if isinstance(found.get("id"), UUID):
        found["id"] = str(found["id"])
    return found
