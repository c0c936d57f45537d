"""The first pass of a streamed ingest: validate a document node by node, and plan its index.

`scan` reads the walk of `reeldb.ingest.stream` once. It validates the document level by
level and event by event against the DataStore's compiled schema (the same JSON Schema as a
synchronous write, cut at its ``$defs``), checks the timing rules, and keeps only what the
second pass needs and is small: the attributes of the asset, tracks and components (their
*heads*), and the counts that size the index (rows and event chunks), so the rows can be
given their ids before they are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from reeldb.errors import ValidationError, Violation
from reeldb.index.rows import ChunkPacker
from reeldb.ingest import stream
from reeldb.model.timing import FrameRate, TimeRange
from reeldb.schema.validator import MAX_VIOLATIONS, SchemaValidator

__all__ = ["Heads", "IngestPlan", "LevelValidators", "Scanner", "scan"]

_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True, slots=True)
class LevelValidators:
    """A document schema cut at its levels: the whole (for the top) and one per level."""

    document: SchemaValidator
    track: SchemaValidator
    component: SchemaValidator
    event: SchemaValidator

    @classmethod
    def of(cls, json_schema: Mapping[str, Any]) -> LevelValidators:
        """Compile the validators of a DSL document schema.

        Args:
            json_schema: The compiled schema (with ``$defs`` ``track``, ``component`` and
                ``event``).

        Returns:
            The validators.
        """
        defs = json_schema["$defs"]

        def level(name: str) -> SchemaValidator:
            schema = {"$schema": _DIALECT, "$ref": f"#/$defs/{name}", "$defs": defs}
            return SchemaValidator(schema, reeldb_keywords=True)

        return cls(
            SchemaValidator(dict(json_schema), reeldb_keywords=True),
            level("track"),
            level("component"),
            level("event"),
        )


@dataclass(slots=True)
class Heads:
    """The document without its events: top-level members, track and component attributes.

    Attributes:
        top: Top-level members other than ``tracks`` (``asset`` among them).
        tracks: Each track's members other than ``components``.
        components: Each track's components' members other than ``events``.
    """

    top: dict[str, Any] = field(default_factory=dict)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    components: list[list[dict[str, Any]]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As JSON (for a workflow step's output)."""
        return {"top": self.top, "tracks": self.tracks, "components": self.components}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Heads:
        """From `to_json`'s output."""
        return cls(value["top"], value["tracks"], value["components"])


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """What the first pass learned.

    Attributes:
        heads: The document without its events.
        rows: How many index rows the document cuts into.
        chunks: How many chunks of events it stores.
        events: Its events.
        regions: Its regions.
    """

    heads: Heads
    rows: int
    chunks: int
    events: int
    regions: int

    def to_json(self) -> dict[str, Any]:
        """As JSON (for a workflow step's output)."""
        return {
            "heads": self.heads.to_json(),
            "rows": self.rows,
            "chunks": self.chunks,
            "events": self.events,
            "regions": self.regions,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> IngestPlan:
        """From `to_json`'s output."""
        return cls(
            Heads.from_json(value["heads"]),
            value["rows"],
            value["chunks"],
            value["events"],
            value["regions"],
        )


class _Report:
    """Violations, the first ``limit`` kept and the rest counted."""

    __slots__ = ("found", "limit", "total")

    def __init__(self, limit: int) -> None:
        self.found: list[Violation] = []
        self.limit = limit
        self.total = 0

    def add(self, prefix: str, violations: Iterable[Violation]) -> None:
        for violation in violations:
            self.total += 1
            if len(self.found) < self.limit:
                self.found.append(Violation(prefix + violation.pointer, violation.message))

    def check(self, validator: SchemaValidator, value: Any, prefix: str) -> None:
        if not validator.is_valid(value):
            self.add(prefix, validator.violations(value, self.limit))

    def violations(self) -> list[Violation]:
        more = self.total - len(self.found)
        if more > 0:
            return [*self.found, Violation("", f"... and {more} more violations not listed")]
        return self.found


def _spans(event: Mapping[str, Any], base: str) -> list[tuple[str, Any]]:
    """An event's time ranges given in frames (the ones the schema cannot fully check)."""
    found = []
    span = event.get("time_range")
    if isinstance(span, dict) and "start_frame" in span:
        found.append((f"{base}/time_range", span))
    regions = event.get("regions")
    if isinstance(regions, list):
        for r, region in enumerate(regions):
            if isinstance(region, dict):
                span = region.get("time_range")
                if isinstance(span, dict) and "start_frame" in span:
                    found.append((f"{base}/regions/{r}/time_range", span))
    return found


def _span_problems(pointer: str, span: Any, rate: FrameRate | None) -> list[Violation]:
    try:
        TimeRange.from_json(span, rate)
    except ValidationError as exc:
        if not exc.violations:
            return [Violation(pointer, exc.summary)]
        return [Violation(pointer + v.pointer.rstrip("/"), v.message) for v in exc.violations]
    return []


_UNKNOWN: Final = object()
"""A track's rate before its ``frame_rate`` member was read (it may come after its events)."""
_INVALID: Final = object()


class _Timing:
    """The timing rules of one track (`reeldb.model.document.check_timeline`), streamed.

    They apply only to what the schema accepts, and a track with an invalid rate has only
    that violation: so a track's findings wait for its end (bounded, with a count).
    """

    __slots__ = ("more", "pending", "pending_more", "problems", "rate", "rate_problem")

    def __init__(self) -> None:
        self.rate: Any = _UNKNOWN
        self.rate_problem: list[Violation] = []
        self.problems: list[Violation] = []  # from ranges with their own rate
        self.pending: list[tuple[str, Any]] = []  # ranges in frames that need the track's
        self.pending_more = 0
        self.more = 0

    def frame_rate(self, spec: Any, prefix: str) -> None:
        try:
            self.rate = None if spec is None else FrameRate.parse(spec)
        except ValidationError as exc:
            self.rate = _INVALID
            self.rate_problem = [
                Violation(f"{prefix}/frame_rate" + v.pointer.rstrip("/"), v.message)
                for v in exc.violations
            ] or [Violation(f"{prefix}/frame_rate", exc.summary)]

    def event(self, event: Mapping[str, Any], base: str, limit: int) -> None:
        for pointer, span in _spans(event, base):
            # A range's own rate wins over the track's; a range without one needs the
            # track's, which may not be known yet (frame_rate after the components).
            if "rate" not in span and self.rate is _UNKNOWN:
                if len(self.pending) < limit:
                    self.pending.append((pointer, span))
                else:
                    self.pending_more += 1
            elif "rate" in span or self.rate is None:
                found = _span_problems(pointer, span, None)
                keep = max(0, limit - len(self.problems))
                self.problems += found[:keep]
                self.more += max(0, len(found) - keep)

    def end(self, report: _Report) -> None:
        """Report the track's findings (the rate's alone if it is invalid)."""
        if self.rate is _INVALID:
            report.add("", self.rate_problem)
            return
        report.add("", self.problems)
        report.total += self.more
        if self.rate is _UNKNOWN:  # the track has no frame_rate: ranges in frames need one
            for pointer, span in self.pending:
                report.add("", _span_problems(pointer, span, None))
            report.total += self.pending_more


def scan(
    nodes: Iterable[tuple[int, Any, Any]],
    validators: LevelValidators,
    *,
    chunk_bytes: int,
    what: str,
    max_violations: int = MAX_VIOLATIONS,
) -> IngestPlan:
    """Validate a walked document and plan its index (the first pass).

    The violations are those a synchronous write reports: the schema's, or if there are
    none, the timing rules'.

    Args:
        nodes: From `reeldb.ingest.stream.walk`.
        validators: The DataStore schema's, from `LevelValidators.of`.
        chunk_bytes: The index's chunk size (`Settings.index_chunk_bytes`).
        what: Names the document in the error ("document of MID ... for DataStore ...").
        max_violations: List at most this many violations (the rest are counted).

    Returns:
        The plan.

    Raises:
        ValidationError: The document is not valid JSON or does not match the schema:
            every violation, up to ``max_violations``, with the total.
    """
    return Scanner(validators, chunk_bytes=chunk_bytes, max_violations=max_violations).run(
        nodes, what
    )


class Scanner:
    """The first pass as an object, so that a one-pass write can watch it as it goes.

    `run` reads the nodes once. Meanwhile `invalid` tells whether a schema violation was
    found so far, and `event_json` holds the JSON of the latest event (as stored).

    Args:
        validators: The DataStore schema's, from `LevelValidators.of`.
        chunk_bytes: The index's chunk size (`Settings.index_chunk_bytes`).
        max_violations: List at most this many violations (the rest are counted).
    """

    __slots__ = ("_chunk_bytes", "_validators", "event_json", "limit", "report")

    def __init__(
        self,
        validators: LevelValidators,
        *,
        chunk_bytes: int,
        max_violations: int = MAX_VIOLATIONS,
    ) -> None:
        self._validators = validators
        self._chunk_bytes = chunk_bytes
        self.limit = max_violations
        self.report = _Report(max_violations)
        self.event_json: bytes | None = None

    @property
    def invalid(self) -> bool:
        """Whether a schema violation was found so far (timing rules are checked later)."""
        return self.report.total > 0

    def run(  # noqa: C901 - one pass, one state machine
        self, nodes: Iterable[tuple[int, Any, Any]], what: str
    ) -> IngestPlan:
        """Read the nodes: see `scan`.

        Args:
            nodes: From `reeldb.ingest.stream.walk`.
            what: Names the document in the error.

        Returns:
            The plan.

        Raises:
            ValidationError: As `scan`.
        """
        validators, max_violations = self._validators, self.limit
        report = self.report
        timing_report = _Report(max_violations)
        heads = Heads()
        rows = events = regions = 0
        chunks = ChunkPacker(self._chunk_bytes)
        tracks_value: list[Any] = []
        track: dict[str, Any] = {}
        component: dict[str, Any] = {}
        t = c = 0
        timing = _Timing()
        component_events = 0
        dumps, event_check = orjson.dumps, validators.event
        for kind, a, b in nodes:
            if kind == stream.EVENT:
                if not event_check.is_valid(b):
                    report.add(
                        f"/tracks/{t}/components/{c}/events/{a}",
                        event_check.violations(b, max_violations),
                    )
                events += 1
                component_events += 1
                found = b.get("regions") if isinstance(b, dict) else None
                n = len(found) if isinstance(found, list) else 0
                regions += n
                rows += n or 1
                part: bytes | None
                try:
                    part = dumps(b)
                except orjson.JSONEncodeError as exc:
                    part = None
                    report.add(
                        f"/tracks/{t}/components/{c}/events/{a}",
                        [Violation("", f"cannot be stored as JSON: {exc}")],
                    )
                else:
                    chunks.add(len(part))
                self.event_json = part
                # Only ranges in frames have timing rules left: an event whose JSON has no
                # "start_frame" has none (most events: skip looking through its regions).
                if isinstance(b, dict) and (part is None or b'"start_frame"' in part):
                    timing.event(b, f"/tracks/{t}/components/{c}/events/{a}", max_violations)
            elif kind == stream.COMPONENT:
                component, component_events, c = {}, 0, a
            elif kind == stream.COMPONENT_ATTR:
                component[a] = b
            elif kind == stream.COMPONENT_END:
                report.check(validators.component, component, f"/tracks/{t}/components/{c}")
                heads.components[-1].append(component)
                chunks.close()
                if not component_events:
                    rows += 1
            elif kind == stream.COMPONENT_VALUE:
                report.check(validators.component, b, f"/tracks/{t}/components/{a}")
                heads.components[-1].append({})
            elif kind == stream.TRACK:
                track, t, timing = {}, a, _Timing()
                heads.components.append([])
            elif kind == stream.TRACK_ATTR:
                track[a] = b
                if a == "frame_rate":
                    timing.frame_rate(b, f"/tracks/{t}")
            elif kind == stream.TRACK_END:
                report.check(validators.track, track, f"/tracks/{t}")
                heads.tracks.append(track)
                timing.end(timing_report)
                if not a:  # a track without components is one row
                    rows += 1
            elif kind == stream.TRACK_VALUE:
                report.check(validators.track, b, f"/tracks/{a}")
                heads.tracks.append({})
                heads.components.append([])
            elif kind == stream.TOP:
                heads.top[a] = b
            elif kind == stream.TRACKS_VALUE:
                tracks_value.append(b)
        top = dict(heads.top)
        if tracks_value:
            top["tracks"] = tracks_value[0]
        report.check(validators.document, top, "")
        if not heads.tracks:
            rows = 1
        if report.total:
            raise ValidationError(f"{what} is invalid; nothing was stored", report.violations())
        if timing_report.total:
            raise ValidationError(
                f"{what} is invalid; nothing was stored", timing_report.violations()
            )
        return IngestPlan(heads, rows, chunks.closed, events, regions)
