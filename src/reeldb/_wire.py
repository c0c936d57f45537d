"""The JSON forms of reeldb's value objects, both ways: one contract for service and client.

``to_*`` functions build what the service sends; ``*_from`` functions rebuild the same value
objects in `reeldb.client`. Times are ISO 8601 strings, IDs are strings.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any
from uuid import UUID

import orjson

from reeldb.auth.model import ApiKey, AuditEntry, NewApiKey, Principal
from reeldb.errors import Incompatibility, Violation
from reeldb.index.model import Generation
from reeldb.index.rows import Column, column_width
from reeldb.model.datastore import DataStore, DataStoreRef, Namespace, Role, RoleGrant
from reeldb.model.document import Document, DocumentInfo
from reeldb.model.requests import WriteRequest, WriteState
from reeldb.model.search import DocumentMatch, EventMatch, QueryRequest
from reeldb.model.timing import TimeRange
from reeldb.schema.model import (
    CompatibilityMode,
    SchemaKind,
    SchemaRef,
    SchemaSubject,
    SchemaVersion,
)
from reeldb.schema.registry import CompatibilityReport
from reeldb.store.base import BlobRecord

Json = dict[str, Any]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def namespace(ns: Namespace) -> Json:
    return {"name": ns.name, "description": ns.description, "created_at": _ts(ns.created_at)}


def namespace_from(d: Json) -> Namespace:
    return Namespace(d["name"], d["description"], _dt(d["created_at"]))


def role_grant(g: RoleGrant) -> Json:
    return {
        "namespace": g.namespace,
        "principal": g.principal,
        "role": g.role.value,
        "granted_at": _ts(g.granted_at),
    }


def role_grant_from(d: Json) -> RoleGrant:
    return RoleGrant(d["namespace"], d["principal"], Role(d["role"]), _dt(d["granted_at"]))


def schema_version(s: SchemaVersion) -> Json:
    return {
        "namespace": s.namespace,
        "name": s.name,
        "version": s.version,
        "kind": s.kind.value,
        "description": s.description,
        "definition": s.definition,
        "json_schema": s.json_schema,
        "resolved": s.resolved,
        "lineage": list(s.lineage),
        "created_at": _ts(s.created_at),
    }


def schema_version_from(d: Json) -> SchemaVersion:
    return SchemaVersion(
        ref=SchemaRef(d["namespace"], d["name"], d["version"]),
        kind=SchemaKind(d["kind"]),
        description=d["description"],
        definition=d["definition"],
        json_schema=d["json_schema"],
        resolved=d["resolved"],
        lineage=tuple(d["lineage"]),
        created_at=_dt(d["created_at"]),
    )


def schema_subject(s: SchemaSubject) -> Json:
    return {
        "namespace": s.namespace,
        "name": s.name,
        "kind": s.kind.value,
        "compatibility": s.compatibility.value,
        "latest_version": s.latest_version,
        "versions": list(s.versions),
        "builtin": s.builtin,
    }


def schema_subject_from(d: Json) -> SchemaSubject:
    return SchemaSubject(
        d["namespace"],
        d["name"],
        SchemaKind(d["kind"]),
        CompatibilityMode(d["compatibility"]),
        d["latest_version"],
        tuple(d["versions"]),
        d["builtin"],
    )


def incompatibility(i: Incompatibility) -> Json:
    return {"path": i.path, "message": i.message, "rule": i.rule}


def violation(v: Violation) -> Json:
    return {"pointer": v.pointer, "message": v.message}


def violation_from(d: Json) -> Violation:
    return Violation(d["pointer"], d["message"])


def report(r: CompatibilityReport) -> Json:
    return {
        "candidate": {
            "namespace": r.candidate.namespace,
            "name": r.candidate.name,
            "version": r.candidate.version,
        },
        "mode": r.mode.value,
        "compatible": r.compatible,
        "incompatibilities": [incompatibility(i) for i in r.incompatibilities],
        "checked_documents": r.checked_documents,
        "datastores": list(r.datastores),
    }


def report_from(d: Json) -> CompatibilityReport:
    c = d["candidate"]
    return CompatibilityReport(
        SchemaRef(c["namespace"], c["name"], c["version"]),
        CompatibilityMode(d["mode"]),
        tuple(Incompatibility(i["path"], i["message"], i["rule"]) for i in d["incompatibilities"]),
        d["checked_documents"],
        tuple(d["datastores"]),
    )


def datastore(ds: DataStore) -> Json:
    return {
        "datastore": str(ds.ref),
        "namespace": ds.ref.namespace,
        "analysis_type": ds.ref.analysis_type,
        "version": ds.ref.version,
        "mid_keys": list(ds.mid_keys),
        "schema_name": ds.schema_name,
        "schema_version": ds.schema_version,
        "description": ds.description,
        "created_at": _ts(ds.created_at),
        "id": ds.id,
    }


def datastore_from(d: Json) -> DataStore:
    return DataStore(
        ref=DataStoreRef(d["namespace"], d["analysis_type"], d["version"]),
        mid_keys=tuple(d["mid_keys"]),
        schema_name=d["schema_name"],
        schema_version=d["schema_version"],
        description=d["description"],
        created_at=_dt(d["created_at"]),
        id=d["id"],
    )


def _coordinates(doc: Document | DocumentInfo) -> Json:
    return {
        "id": str(doc.id),
        "datastore": str(doc.datastore),
        "mid": doc.mid,
        "schema_version": doc.schema_version,
        "created_at": _ts(doc.created_at),
    }


def document(doc: Document) -> Json:
    """The envelope of a document; the stored body is embedded verbatim, never re-encoded."""
    return {**_coordinates(doc), "data": orjson.Fragment(doc.body)}


def written(doc: Document) -> Json:
    """What a write answers for a document: its coordinates and size, not its body."""
    return {**_coordinates(doc), "size": len(doc.body)}


def document_from(d: Json) -> Document:
    return Document(
        UUID(d["id"]),
        DataStoreRef.parse(d["datastore"]),
        d["mid"],
        d["schema_version"],
        _dt(d["created_at"]),
        orjson.dumps(d["data"]),
    )


def document_info(info: DocumentInfo) -> Json:
    return {**_coordinates(info), "size": info.size}


def document_info_from(d: Json) -> DocumentInfo:
    return DocumentInfo(
        UUID(d["id"]),
        DataStoreRef.parse(d["datastore"]),
        d["mid"],
        d["schema_version"],
        _dt(d["created_at"]),
        d["size"],
    )


def api_key(k: ApiKey) -> Json:
    return {
        "key_id": k.key_id,
        "principal": k.principal,
        "description": k.description,
        "created_at": _ts(k.created_at),
        "created_by": k.created_by,
        "revoked_at": _ts(k.revoked_at),
        "active": k.active,
    }


def api_key_from(d: Json) -> ApiKey:
    revoked = d.get("revoked_at")
    return ApiKey(
        d["key_id"],
        d["principal"],
        d["description"],
        _dt(d["created_at"]),
        d["created_by"],
        _dt(revoked) if revoked else None,
    )


def new_api_key(k: NewApiKey) -> Json:
    return {"key": api_key(k.key), "secret": k.secret}


def new_api_key_from(d: Json) -> NewApiKey:
    return NewApiKey(api_key_from(d["key"]), d["secret"])


def audit_entry(e: AuditEntry) -> Json:
    return {
        "seq": e.seq,
        "at": _ts(e.at),
        "principal": e.principal,
        "action": e.action,
        "namespace": e.namespace,
        "target": e.target,
        "request_id": e.request_id,
        "status": e.status,
    }


def audit_entry_from(d: Json) -> AuditEntry:
    return AuditEntry(
        d["seq"],
        _dt(d["at"]),
        d["principal"],
        d["action"],
        d["namespace"],
        d["target"],
        d["request_id"],
        d["status"],
    )


def principal(p: Principal) -> Json:
    return {
        "name": p.name,
        "system_admin": p.system_admin,
        "roles": {ns: role.value for ns, role in sorted(p.roles.items())},
        "key_id": p.key_id,
    }


def principal_from(d: Json) -> Principal:
    roles = {ns: Role(role) for ns, role in d["roles"].items()}
    return Principal(d["name"], d["system_admin"], roles, d.get("key_id"))


def document_match(m: DocumentMatch) -> Json:
    return {"id": str(m.id), "mid": m.mid}


def document_match_from(d: Json) -> DocumentMatch:
    return DocumentMatch(UUID(d["id"]), d["mid"])


def event_match(m: EventMatch) -> Json:
    span = m.time
    return {
        "path": m.path,
        "time": {
            "start": float(span.start),
            "end": float(span.end),
            "exact": [str(span.start), str(span.end)],
        },
        "event": m.event,
        "track": m.track,
        "component": m.component,
        "regions": list(m.regions),
        "region_indexes": list(m.region_indexes),
    }


def event_match_from(d: Json) -> EventMatch:
    start, end = (Fraction(v) for v in d["time"]["exact"])
    return EventMatch(
        d["path"],
        TimeRange(start, end),
        d["event"],
        d["track"],
        d["component"],
        tuple(d["regions"]),
        tuple(d["region_indexes"]),
    )


def query_request(q: QueryRequest) -> Json:
    return {
        "id": str(q.id),
        "datastore": str(q.datastore),
        "query": q.query,
        "all_versions": q.all_versions,
        "state": q.state,
        "found": q.found,
        "error": q.error,
        "created_at": _ts(q.created_at),
        "finished_at": None if q.finished_at is None else _ts(q.finished_at),
    }


def query_request_from(d: Json) -> QueryRequest:
    return QueryRequest(
        UUID(d["id"]),
        DataStoreRef.parse(d["datastore"]),
        d["query"],
        d["all_versions"],
        d["state"],
        d["found"],
        d["error"],
        _dt(d["created_at"]),
        None if d["finished_at"] is None else _dt(d["finished_at"]),
    )


def generation(g: Generation) -> Json:
    return {
        "id": g.id,
        "name": g.name,
        "state": g.state,
        "in_alias": g.in_alias,
        "docs": g.docs,
        "rows": g.rows,
        "created_at": _ts(g.created_at),
        "columns": [{"level": c.level, "name": c.name, "type": c.type} for c in g.columns],
    }


def generation_from(d: Json) -> Generation:
    columns, index = [], 0
    for c in d["columns"]:
        width = column_width(c["type"])
        columns.append(Column(c["level"], c["name"], c["type"], index, width))
        index += width
    return Generation(
        d["id"],
        d["name"],
        d["state"],
        tuple(columns),
        d["docs"],
        d["rows"],
        d["in_alias"],
        _dt(d["created_at"]),
    )


def write_request(r: WriteRequest) -> Json:
    return {
        "id": str(r.id),
        "datastore": str(r.datastore),
        "mid": r.mid,
        "blob": str(r.blob),
        "state": r.state.value,
        "document_id": None if r.document_id is None else str(r.document_id),
        "error": r.error,
        "idempotency_key": r.idempotency_key,
        "webhook": r.webhook,
        "created_by": r.created_by,
        "created_at": _ts(r.created_at),
        "updated_at": _ts(r.updated_at),
        "steps": r.steps,
    }


def write_request_from(d: Json) -> WriteRequest:
    return WriteRequest(
        UUID(d["id"]),
        DataStoreRef.parse(d["datastore"]),
        d["mid"],
        UUID(d["blob"]),
        WriteState(d["state"]),
        None if d["document_id"] is None else UUID(d["document_id"]),
        d["error"],
        d["idempotency_key"],
        d["webhook"],
        d["created_by"],
        _dt(d["created_at"]),
        _dt(d["updated_at"]),
        d["steps"],
    )


def blob_record(b: BlobRecord) -> Json:
    return {
        "id": str(b.id),
        "namespace": b.namespace,
        "declared_size": b.declared_size,
        "size": b.size,
        "sha256": b.sha256,
        "state": b.state,
        "created_at": _ts(b.created_at),
        "created_by": b.created_by,
    }


def blob_record_from(d: Json) -> BlobRecord:
    return BlobRecord(
        UUID(d["id"]),
        d["namespace"],
        d["declared_size"],
        d["size"],
        d["sha256"],
        d["state"],
        _dt(d["created_at"]),
        d["created_by"],
    )
