"""Typed request and response bodies of the HTTP API: what OpenAPI publishes.

Requests reject unknown fields. Responses are built by `reeldb._wire` and must match these
models; the schemathesis test checks every response against the published schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from reeldb.model.datastore import Role
from reeldb.model.names import MAX_VERSION
from reeldb.schema.model import CompatibilityMode, SchemaKind

T = TypeVar("T")

_MID_EXAMPLE = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}
_DOC_EXAMPLE: dict[str, Any] = {
    "asset": {"title": "The Demo"},
    "tracks": [
        {
            "type": "video",
            "frame_rate": "24000/1001",
            "components": [
                {
                    "name": "faces",
                    "events": [
                        {
                            "time_range": {"start": 1.0, "end": 2.5},
                            "regions": [
                                {
                                    "bounding_box": {"x": 10, "y": 20, "w": 64, "h": 64},
                                    "person": "Ada",
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    ],
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NamespaceCreate(_Request):
    """A new namespace."""

    name: str = Field(examples=["vision"])
    description: str = ""
    admins: list[str] = Field(default_factory=list, examples=[["user:alice"]])


class RoleGrantRequest(_Request):
    """The role to give."""

    role: str = Field(examples=["writer"], description="admin, writer or reader.")


class SchemaAdd(_Request):
    """A schema definition (DSL or plain JSON Schema 2020-12)."""

    definition: Any = Field(
        examples=[
            {
                "name": "BOUNDING_BOX",
                "properties": {
                    "boundingBox": {"type": "bounding_box", "mandatory": True},
                    "boxTimeRange": {"type": "time_range", "mandatory": True},
                },
            }
        ]
    )
    name: str | None = Field(None, description="The name, if the definition has none.")
    compatibility: str | None = Field(
        None, description="Mode of a new schema (default BACKWARD).", examples=["BACKWARD"]
    )


class CompatibilityUpdate(_Request):
    """A new compatibility mode."""

    mode: str = Field(examples=["FULL_TRANSITIVE"])


class ValidateRequest(_Request):
    """A value to validate against a schema version."""

    instance: Any = Field(examples=[{"boundingBox": {"x": 0, "y": 0, "w": 5, "h": 5}}])
    version: int | None = Field(
        None, ge=0, le=MAX_VERSION, description="The version; latest when omitted."
    )


class DataStoreCreate(_Request):
    """A new DataStore in the namespace of the path."""

    analysis_type: str = Field(examples=["face_detection"])
    version: int = Field(ge=0, le=MAX_VERSION, examples=[1])
    mid_keys: Any = Field(
        examples=[["title_id", "video_stream_id"]],
        description="The MID schema: a non-empty list of key names, fixed forever.",
    )
    schema_: str = Field(alias="schema", examples=["face_detection"])
    description: str = ""


class DocumentPut(_Request):
    """One document for one MID."""

    mid: dict[str, str] = Field(examples=[_MID_EXAMPLE])
    document: dict[str, Any] = Field(examples=[_DOC_EXAMPLE])


class DocumentBatch(_Request):
    """Documents written in one transaction: all or none."""

    items: list[DocumentPut] = Field(min_length=1)


class KeyCreate(_Request):
    """A new API key."""

    principal: str = Field(examples=["app:shot-detector"])
    description: str = ""


# -- responses ----------------------------------------------------------------------------------


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[T]
    next_cursor: str | None


class NamespaceOut(BaseModel):
    """A namespace."""

    name: str
    description: str
    created_at: str


class RoleGrantOut(BaseModel):
    """A principal's role in a namespace."""

    namespace: str
    principal: str
    role: Role
    granted_at: str


class SchemaVersionOut(BaseModel):
    """One immutable schema version."""

    namespace: str
    name: str
    version: int
    kind: SchemaKind
    description: str
    definition: dict[str, Any]
    json_schema: dict[str, Any]
    resolved: dict[str, Any]
    lineage: list[str]
    created_at: str


class SchemaSubjectOut(BaseModel):
    """A schema name with its versions and compatibility mode."""

    namespace: str
    name: str
    kind: SchemaKind
    compatibility: CompatibilityMode
    latest_version: int
    versions: list[int]
    builtin: bool


class SchemaRefOut(BaseModel):
    """A schema version's identity."""

    namespace: str
    name: str
    version: int


class IncompatibilityOut(BaseModel):
    """One reason a schema version is incompatible."""

    path: str
    message: str
    rule: str


class CompatibilityReportOut(BaseModel):
    """The outcome of a compatibility check."""

    candidate: SchemaRefOut
    mode: CompatibilityMode
    compatible: bool
    incompatibilities: list[IncompatibilityOut]
    checked_documents: int
    datastores: list[str]


class ViolationOut(BaseModel):
    """One broken rule: JSON pointer and message."""

    pointer: str
    message: str


class ValidationOut(BaseModel):
    """The outcome of validating a value."""

    valid: bool
    violations: list[ViolationOut]


class DataStoreOut(BaseModel):
    """A DataStore."""

    datastore: str = Field(examples=["demo/face_detection/1"])
    namespace: str
    analysis_type: str
    version: int
    mid_keys: list[str]
    schema_name: str
    schema_version: int
    description: str
    created_at: str
    id: int


class CountOut(BaseModel):
    """A count."""

    count: int


class DocumentOut(BaseModel):
    """A stored document: its coordinates and its body (``data``) exactly as stored."""

    id: str
    datastore: str
    mid: dict[str, str]
    schema_version: int
    created_at: str
    data: dict[str, Any]


class DocumentInfoOut(BaseModel):
    """A document's coordinates, without its body."""

    id: str
    datastore: str
    mid: dict[str, str]
    schema_version: int
    created_at: str
    size: int


class DocumentListOut(BaseModel):
    """Documents written in one batch."""

    items: list[DocumentOut]


class ApiKeyOut(BaseModel):
    """An API key's public record."""

    key_id: str
    principal: str
    description: str
    created_at: str
    created_by: str
    revoked_at: str | None
    active: bool


class NewApiKeyOut(BaseModel):
    """A new key. ``secret`` is shown only in this response: reeldb keeps a hash."""

    key: ApiKeyOut
    secret: str


class AuditEntryOut(BaseModel):
    """One audited write or admin action."""

    seq: int
    at: str
    principal: str
    action: str
    namespace: str | None
    target: str
    request_id: str
    status: int


class PrincipalOut(BaseModel):
    """The caller: its principal, system flag and roles per namespace."""

    name: str
    system_admin: bool
    roles: dict[str, Role]
    key_id: str | None


class HealthOut(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "ready"]


class ProblemOut(BaseModel):
    """An RFC 9457 problem (``application/problem+json``)."""

    type: str = Field(examples=["urn:reeldb:problem:not-found"])
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    violations: list[ViolationOut] | None = None
    incompatibilities: list[IncompatibilityOut] | None = None
    line: int | None = None
    column: int | None = None


_QUERY_FIELD = Field(
    description="The text form of a query, or its JSON form (docs/query-language.md).",
    examples=['region.person = "Alice" and event.label = "face"'],
)


class DataStoreQuery(_Request):
    """A DataStore-level filter."""

    query: str | dict[str, Any] = _QUERY_FIELD
    all_versions: bool = Field(False, description="Also superseded versions of each MID.")
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")


class AsyncQuery(_Request):
    """A DataStore-level filter to run asynchronously."""

    query: str | dict[str, Any] = _QUERY_FIELD
    all_versions: bool = Field(False, description="Also superseded versions of each MID.")


class QueryRequestOut(BaseModel):
    """An asynchronous DataStore-level filter and where it stands."""

    id: str
    datastore: str = Field(examples=["demo/face_detection/1"])
    query: dict[str, Any] = Field(description="The query, in its JSON form.")
    all_versions: bool
    state: Literal["pending", "running", "done", "failed"]
    found: int = Field(description="Matching documents stored so far (all, once done).")
    error: str | None = Field(description="Why it failed.")
    created_at: str
    finished_at: str | None


class DocumentQuery(_Request):
    """A document-level query."""

    query: str | dict[str, Any] = _QUERY_FIELD
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")


class RebuildRequest(_Request):
    """Options of an index rebuild."""

    batch_size: int = Field(500, ge=1, le=100_000, description="Documents per transaction.")


class DocumentMatchOut(BaseModel):
    """A document that matched: its coordinates."""

    id: str
    mid: dict[str, str]


class FilterPage(Page[DocumentMatchOut]):
    """One page of a DataStore-level filter's documents."""

    total: int | None = Field(
        None,
        description="On the first page, the number of matching documents on all pages when "
        "it is cheap to know; otherwise null.",
    )


class TimeOut(BaseModel):
    """A time range in seconds, as doubles and exactly (``"1001/24000"``)."""

    start: float
    end: float
    exact: list[str]


class EventMatchOut(BaseModel):
    """An event that matched, with its context and the regions that matched."""

    path: str
    time: TimeOut
    event: dict[str, Any]
    track: dict[str, Any]
    component: dict[str, Any]
    regions: list[dict[str, Any]]
    region_indexes: list[int]


class ColumnOut(BaseModel):
    """A searchable field of an index generation."""

    level: str
    name: str
    type: str


class GenerationOut(BaseModel):
    """An index generation."""

    id: int
    name: str
    state: str
    in_alias: bool
    docs: int
    rows: int
    created_at: str
    columns: list[ColumnOut]


# -- annotations --------------------------------------------------------------------------------

_TYPE_NAME = r"^[^@]+(@[0-9]{1,18})?$"
"""``NAME`` or ``NAME@VERSION``: versions are bounded here, before any lookup."""


class AssociationIn(_Request):
    """An entity an annotation is attached to."""

    type: str = Field(
        examples=["MOVIE_ID"],
        description="A letter, then letters, digits, `_ . -` (64 at most).",
    )
    id: str = Field(examples=["81234567"], description="1 to 512 characters.")


class TypeRefIn(_Request):
    """An annotation type as an object; no version means the latest."""

    name: str = Field(examples=["BOUNDING_BOX"])
    version: int | None = Field(None, ge=0, le=MAX_VERSION, examples=[0])


TypeName = Annotated[
    str,
    Field(
        pattern=_TYPE_NAME,
        examples=["BOUNDING_BOX", "BOUNDING_BOX@0"],
        description="`NAME` (latest version) or `NAME@VERSION`.",
    ),
]
TypeIn = TypeName | TypeRefIn


def _associations(**options: Any) -> Any:
    # Read by the library, whose violations then point into the body as they do embedded
    # (``/associations/0/type``); it refuses whatever the published item schema refuses.
    return Field(
        json_schema_extra={"items": AssociationIn.model_json_schema()},
        description="Each an `AssociationIn`: `{type, id}`.",
        **options,
    )


class AnnotationCreate(_Request):
    """A new annotation: its type, the entities it annotates and the type's properties."""

    type: TypeIn
    associations: list[Any] = _associations(examples=[[{"type": "MOVIE_ID", "id": "81234567"}]])
    data: dict[str, Any] = Field(
        default_factory=dict,
        examples=[
            {
                "boundingBox": {"x": 10, "y": 20, "w": 64, "h": 64},
                "boxTimeRange": {"start": 1.0, "end": 2.5},
            }
        ],
    )
    id: str | None = Field(
        None,
        json_schema_extra={"format": "uuid"},
        description="Keep this id (imports); by default a new UUIDv7.",
    )


class AnnotationBatch(_Request):
    """Annotations created in one transaction: all or none."""

    items: list[AnnotationCreate] = Field(description="At most 10,000.")


class AnnotationUpdate(_Request):
    """A new version of an annotation; what is not given is kept (``data`` is replaced whole)."""

    expected_version: int | None = Field(
        None,
        examples=[1],
        description='The version you read; or send it as `If-Match: "1"`.',
    )
    data: dict[str, Any] | None = None
    associations: list[Any] | None = _associations(default=None)
    type: TypeIn | None = Field(None, description="Validate against another type (or version).")


class AnnotationSearch(_Request):
    """Conditions on current, live annotations; every condition given must hold."""

    type: TypeIn | None = Field(
        None, description="This type and, with `subtypes`, every type that extends it."
    )
    subtypes: bool = True
    associations: list[Any] = _associations(default_factory=list)
    time: list[float] | None = Field(
        None,
        json_schema_extra={"minItems": 2, "maxItems": 2},
        examples=[[70.0, 75.5]],
        description="`[start, end]` in seconds.",
    )
    time_op: str = Field(
        "overlaps",
        json_schema_extra={"enum": ["overlaps", "within"]},
        description="overlaps or within.",
    )
    box: list[float] | dict[str, float] | None = Field(
        None,
        examples=[[0.0, 0.0, 0.5, 0.5]],
        description="`[x, y, w, h]` or `{x, y, w, h}`.",
    )
    box_op: str = Field(
        "intersects",
        json_schema_extra={"enum": ["intersects", "within"]},
        description="intersects or within.",
    )
    text: str | None = Field(None, examples=["gloves"], description="Words, stemmed.")
    text_fields: list[str] | None = Field(None, description="Search only these text fields.")
    where: str | dict[str, Any] | None = Field(
        None,
        examples=['data.label = "car"'],
        description="A condition on `data.*` fields of `type` (text or JSON form).",
    )
    sort: str | None = Field(
        None,
        json_schema_extra={"enum": ["time", "-time", "created", "-created", "relevance", None]},
        description="Default: relevance with `text`, else time.",
    )
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")


class AssociationTypes(_Request):
    """The association types a namespace allows (null: any)."""

    types: list[str] | None = Field(examples=[["MOVIE_ID", "SHOT_ID"]])


class AssociationOut(BaseModel):
    """An entity an annotation is attached to."""

    type: str
    id: str


class TypeRefOut(BaseModel):
    """An annotation type and the version the data was validated against."""

    name: str
    version: int


class AnnotationOut(BaseModel):
    """One version of an annotation (a tombstone when ``deleted``)."""

    id: str
    version: int
    namespace: str
    type: TypeRefOut
    associations: list[AssociationOut]
    data: dict[str, Any]
    deleted: bool
    created_at: str
    created_by: str | None


class AnnotationHitOut(AnnotationOut):
    """An annotation a search found, with its relevance and highlighted text fields."""

    score: float | None
    highlights: dict[str, str]


class AssociationTypesOut(BaseModel):
    """The association types a namespace allows (null: any)."""

    types: list[str] | None


# -- blobs and asynchronous writes -------------------------------------------------------


class BlobCreate(_Request):
    """Announce a blob; upload its bytes to ``upload_url`` next."""

    size: int | None = Field(
        default=None, ge=0, description="The payload's size: a longer or shorter upload fails."
    )


class BlobOut(BaseModel):
    """A blob: ``open`` until uploaded, then ``stored``, ``claimed`` once a write uses it."""

    id: str
    namespace: str
    declared_size: int | None
    size: int | None
    sha256: str | None
    state: str
    created_at: str
    created_by: str
    upload_url: str | None = None


class BlobPartOut(BaseModel):
    """A part of a blob uploaded piece by piece."""

    number: int
    size: int
    sha256: str


class AsyncWrite(_Request):
    """A document write to run asynchronously: the document inline, or a blob holding it."""

    mid: dict[str, str]
    document: dict[str, Any] | None = None
    blob: str | None = Field(default=None, json_schema_extra={"format": "uuid"})
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    webhook: str | None = Field(
        default=None, description="An http(s) URL called with the final state, signed."
    )


class WriteRequestOut(BaseModel):
    """An asynchronous write and where it stands."""

    id: str
    datastore: str
    mid: dict[str, str]
    blob: str
    state: str = Field(json_schema_extra={"enum": ["PENDING", "VALIDATED", "PERSISTED",
                                                   "INDEXED", "FAILED"]})  # fmt: skip
    document_id: str | None
    error: dict[str, Any] | None
    idempotency_key: str | None
    webhook: str | None
    created_by: str
    created_at: str
    updated_at: str
    steps: dict[str, float]
