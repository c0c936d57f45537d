"""A reprocessing job's definition: source → processor → sink, and its limits (TOML or JSON).

```toml
name = "add-colorspace"

[source]
namespace = "vision"
datastore = "vision/object_detection/1"   # or annotation_type = "BOX@0", or annotations = true
filter = "asset.title contains 'cat'"     # the query language (annotations: data.* fields)
catch_up = true                           # also process what is written while the job runs

[processor]
kind = "backfill"                         # reindex | backfill | migrate | export-iceberg | custom
function = "mypackage.colorspace:derive"  # or a plug-in's name (entry points reeldb.processors)

[sink]
kind = "reeldb"                           # reeldb | jsonl | parquet | iceberg | index

[limits]
rate = 5000            # items per second for the whole job (0: no limit)
concurrency = 2        # partitions processed at once, across workers
latency_budget_ms = 50 # adaptive: slow down while live p99 latency is above this
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reeldb import _json
from reeldb.errors import ValidationError, Violation
from reeldb.model.datastore import DataStoreRef
from reeldb.model.names import check_namespace

__all__ = [
    "JobSpec",
    "LimitsSpec",
    "ProcessorSpec",
    "SinkSpec",
    "SourceSpec",
    "load_spec",
]

ProcessorKind = Literal["reindex", "backfill", "migrate", "export-iceberg", "custom"]
SinkKind = Literal["reeldb", "jsonl", "parquet", "iceberg", "index"]

_DEFAULT_SINK: dict[str, SinkKind] = {
    "reindex": "index",
    "backfill": "reeldb",
    "migrate": "reeldb",
    "export-iceberg": "iceberg",
    "custom": "reeldb",
}
_SINKS: dict[str, tuple[SinkKind, ...]] = {
    "reindex": ("index",),
    "backfill": ("reeldb", "jsonl", "parquet"),
    "migrate": ("reeldb", "jsonl", "parquet"),
    "export-iceberg": ("iceberg",),
    "custom": ("reeldb", "jsonl", "parquet"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """What a job reads.

    Attributes:
        namespace: The namespace.
        datastore: The documents of a DataStore (``namespace/analysis_type/version``).
        annotation_type: The annotations of one type (``NAME``, or ``NAME@2`` for one
            version).
        annotations: Every annotation of the namespace.
        filter: A condition in the query language; an item that does not meet it is
            skipped. Documents: a DataStore-level filter. Annotations of one type: a
            condition on ``data.*`` fields, as a search's ``where``.
        catch_up: After the snapshot, also process what was written while the job ran,
            in rounds, until a round finds nothing new (or ``catch_up_rounds``).
        catch_up_rounds: At most this many catch-up rounds.
        catch_up_grace: Annotations: seconds a write may take from its timestamp (when
            it is prepared) to its commit and still be caught up.
    """

    namespace: str
    datastore: str | None = None
    annotation_type: str | None = None
    annotations: bool = False
    filter: str | None = None
    catch_up: bool = False
    catch_up_rounds: int = Field(default=5, ge=1, le=100)
    catch_up_grace: float = Field(default=5.0, ge=0, le=600)

    @model_validator(mode="after")
    def _one_source(self) -> SourceSpec:
        check_namespace(self.namespace)
        chosen = [self.datastore is not None, self.annotation_type is not None, self.annotations]
        if sum(chosen) != 1:
            raise ValueError("name exactly one of datastore, annotation_type, annotations = true")
        if self.datastore is not None:
            ref = DataStoreRef.parse(self.datastore)
            if ref.namespace != self.namespace:
                raise ValueError(f"datastore {ref} is not in namespace {self.namespace}")
        if self.filter is not None and self.annotations:
            raise ValueError(
                "filter needs a datastore or an annotation_type source: a condition on "
                "data.* fields names properties of one type"
            )
        return self

    @property
    def kind(self) -> Literal["documents", "annotations"]:
        """``documents`` or ``annotations``."""
        return "documents" if self.datastore is not None else "annotations"


class ProcessorSpec(_Strict):
    """What a job does to each item.

    Attributes:
        kind: ``reindex`` (search rows derived again; documents: a new index generation
            swapped in), ``backfill`` (a function adds or fixes fields; new versions),
            ``migrate`` (to ``target_version`` of the annotation type, or into
            ``target_datastore``, with an optional transform function), ``export-iceberg``
            (the analytics tables), ``custom`` (any function: its results go to the sink).
        function: ``module:attribute``, or the name of an installed plug-in (entry point
            group ``reeldb.processors``). Over HTTP only plug-ins may be named.
        target_version: ``migrate`` of annotations: the type version to move to.
        target_datastore: ``migrate`` of documents: the DataStore to write them into.
        options: Passed to the function as its ``options`` argument.
    """

    kind: ProcessorKind
    function: str | None = None
    target_version: int | None = Field(default=None, ge=0)
    target_datastore: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class SinkSpec(_Strict):
    """Where a job's output goes.

    Attributes:
        kind: ``reeldb`` (new versions), ``index`` (reindex), ``iceberg`` (export),
            ``jsonl`` or ``parquet`` (files under ``path``); default by processor.
        path: The directory of file sinks.
        warehouse: ``export-iceberg``: the warehouse (default: the ``warehouse`` setting).
        catalog: ``export-iceberg``: the SQL catalog URL (default: beside the warehouse).
    """

    kind: SinkKind | None = None
    path: str | None = None
    warehouse: str | None = None
    catalog: str | None = None


class LimitsSpec(_Strict):
    """How hard a job may push.

    Attributes:
        rate: Items per second for the whole job, shared by its running partitions (0: no
            limit).
        concurrency: Partitions processed at once, across all workers.
        partitions: How many partitions the snapshot is cut into.
        batch: Items per batch (one checkpoint per batch).
        max_attempts: Attempts per item before it goes to the dead-letter list.
        backoff: Seconds before the first retry; doubled at each attempt (with jitter).
        latency_budget_ms: Adaptive mode: while the live p99 latency (measured by the
            service) is above this, the job slows down; it speeds up again below it.
    """

    rate: float = Field(default=0.0, ge=0)
    concurrency: int = Field(default=2, ge=1, le=64)
    partitions: int = Field(default=8, ge=1, le=4096)
    batch: int = Field(default=500, ge=1, le=50_000)
    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff: float = Field(default=0.2, ge=0, le=60)
    latency_budget_ms: float | None = Field(default=None, gt=0)


class JobSpec(_Strict):
    """A reprocessing job: source → processor → sink, with its limits.

    Attributes:
        name: A name for people (not unique).
        source: What it reads.
        processor: What it does.
        sink: Where the output goes.
        limits: How hard it pushes.
        dry_run: Process and count, but write nothing: what would change.
    """

    name: str = Field(min_length=1, max_length=200)
    source: SourceSpec
    processor: ProcessorSpec
    sink: SinkSpec = Field(default_factory=SinkSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    dry_run: bool = False

    @model_validator(mode="after")
    def _fits(self) -> JobSpec:
        p, kind = self.processor, self.processor.kind
        sink = self.sink.kind or _DEFAULT_SINK[kind]
        if sink not in _SINKS[kind]:
            allowed = ", ".join(_SINKS[kind])
            raise ValueError(f"processor {kind} writes to sink {allowed}, not {sink}")
        if sink in ("jsonl", "parquet") and not self.sink.path:
            raise ValueError(f"sink {sink} needs a path (a directory)")
        if kind in ("backfill", "custom") and not p.function:
            raise ValueError(f"processor {kind} needs a function (module:attribute or plug-in)")
        if kind == "migrate":
            if self.source.kind == "annotations" and p.target_version is None:
                raise ValueError("migrate of annotations needs target_version")
            if self.source.kind == "documents":
                if p.target_datastore is None:
                    raise ValueError("migrate of documents needs target_datastore")
                target = DataStoreRef.parse(p.target_datastore)
                if self.source.datastore and target == DataStoreRef.parse(self.source.datastore):
                    raise ValueError("target_datastore must differ from the source DataStore")
        if kind in ("reindex", "export-iceberg") and p.function:
            raise ValueError(f"processor {kind} takes no function")
        if kind == "reindex" and self.source.filter:
            raise ValueError("reindex rebuilds the whole index: it takes no filter")
        return self

    @property
    def sink_kind(self) -> SinkKind:
        """The sink, with the processor's default filled in."""
        return self.sink.kind or _DEFAULT_SINK[self.processor.kind]

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON (what is stored and returned)."""
        return self.model_dump(mode="json")


def load_spec(spec: JobSpec | Mapping[str, Any] | str | Path, **overrides: Any) -> JobSpec:
    """Read a job spec: a `JobSpec`, a mapping, a TOML file's path, or TOML/JSON text.

    Args:
        spec: The definition.
        **overrides: Top-level fields to set (``dry_run=True``).

    Returns:
        The checked spec.

    Raises:
        ValidationError: It is malformed; every problem is listed with its place.
    """
    if isinstance(spec, JobSpec):
        data: Any = spec.to_json()
    elif isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith(".toml")):
        path = Path(spec)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read job file {path}: {exc.strerror}") from None
        data = _toml(text, str(path))
    elif isinstance(spec, str):
        stripped = spec.lstrip()
        data = (
            _json.loads(spec, what="job spec")
            if stripped.startswith("{")
            else _toml(spec, "job spec")
        )
    else:
        data = dict(spec)
    if not isinstance(data, Mapping):
        raise ValidationError("a job spec is an object (TOML table or JSON object)")
    data = {**data, **overrides}
    try:
        return JobSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        violations = [
            Violation(
                "/" + "/".join(str(part) for part in error["loc"]),
                error["msg"].removeprefix("Value error, "),
            )
            for error in exc.errors()
        ]
        raise ValidationError("invalid job spec", violations) from None


def _toml(text: str, where: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{where} is not valid TOML: {exc}") from None
