"""Media documents: the stored value, its listing form, pages, and the exact timeline.

A media document has five levels (NMDB-3)::

    {"asset": {...},
     "tracks": [{"frame_rate": "24000/1001", ...,
                 "components": [{...,
                                 "events": [{"time_range": {"start": 1.0, "end": 1.5}, ...,
                                             "regions": [{"bounding_box": {...}, ...}]}]}]}]}

Event (and optional region) time ranges are ``{start, end}`` in seconds or
``{start_frame, end_frame}`` in frames of the track's ``frame_rate``; `iter_events` gives
every event's exact time as rationals.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar
from uuid import UUID

from reeldb import _json
from reeldb.errors import ValidationError, Violation
from reeldb.model.datastore import DataStoreRef
from reeldb.model.timing import FrameRate, TimeRange

__all__ = [
    "Document",
    "DocumentInfo",
    "EventView",
    "Page",
    "check_timeline",
    "decode_cursor",
    "encode_cursor",
    "iter_events",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Document:
    """An immutable, validated media document.

    Attributes:
        id: The DocumentID (UUIDv7: time-ordered, unique across reeldb).
        datastore: The DataStore holding it.
        mid: The media ID it is keyed by.
        schema_version: The document schema version it was validated against.
        created_at: When it was written (UTC).
        body: The stored JSON, byte for byte what every read returns (empty when read with
            ``stream=True`` from a blob: see ``blob``).
        blob: The blob holding the body, for a document written from a blob.
    """

    id: UUID
    datastore: DataStoreRef
    mid: dict[str, str]
    schema_version: int
    created_at: datetime
    body: bytes = field(repr=False)
    blob: UUID | None = field(default=None, repr=False)

    @cached_property
    def data(self) -> dict[str, Any]:
        """The decoded document."""
        if not self.body and self.blob is not None:
            raise ValidationError(
                f"document {self.id} was read without its body, which is in blob {self.blob}: "
                "read it with get_document, or stream it with open_document_body"
            )
        value: dict[str, Any] = _json.loads(self.body, what="stored document")
        return value

    def events(self) -> Iterator[EventView]:
        """Every event with its exact time range and its track and component context.

        Yields:
            One view per event, in document order.
        """
        return iter_events(self.data)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document's coordinates and metadata, without its body."""

    id: UUID
    datastore: DataStoreRef
    mid: dict[str, str]
    schema_version: int
    created_at: datetime
    size: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing.

    Attributes:
        items: The items on this page.
        next_cursor: Pass it back to get the next page; None on the last page.
        total: How many items all pages hold, where the listing tells (None: unknown).
    """

    items: tuple[T, ...]
    next_cursor: str | None
    total: int | None = None


_CURSOR_PREFIX = "rdb1:"


def encode_cursor(position: int) -> str:
    """An opaque cursor for a listing position.

    Args:
        position: The backend's position (a sequence number).

    Returns:
        The cursor text.
    """
    raw = f"{_CURSOR_PREFIX}{position}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Read a cursor made by `encode_cursor`.

    Args:
        cursor: The cursor text.

    Returns:
        The position.

    Raises:
        ValidationError: The cursor was not made by reeldb.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith(_CURSOR_PREFIX) and raw[len(_CURSOR_PREFIX) :].isdigit():
            return int(raw[len(_CURSOR_PREFIX) :])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationError(f"invalid cursor {cursor!r}: pass the next_cursor of a previous page")


@dataclass(frozen=True, slots=True)
class EventView:
    """An event in context.

    Attributes:
        path: JSON pointer of the event (``/tracks/0/components/1/events/7``).
        time: The event's exact time range in seconds.
        event: The event object.
        track: Its track object.
        component: Its component object.
    """

    path: str
    time: TimeRange
    event: dict[str, Any]
    track: dict[str, Any]
    component: dict[str, Any]


def _rate(track: dict[str, Any]) -> FrameRate | None:
    spec = track.get("frame_rate")
    return None if spec is None else FrameRate.parse(spec)


def iter_events(data: dict[str, Any]) -> Iterator[EventView]:
    """Every event of a valid document with its exact time.

    Args:
        data: A document that passed validation.

    Yields:
        One view per event, in document order.
    """
    for t, track in enumerate(data.get("tracks", ())):
        rate = _rate(track)
        for c, component in enumerate(track.get("components", ())):
            for e, event in enumerate(component.get("events", ())):
                yield EventView(
                    f"/tracks/{t}/components/{c}/events/{e}",
                    TimeRange.from_json(event["time_range"], rate),
                    event,
                    track,
                    component,
                )


def check_timeline(data: dict[str, Any], *, frames: bool = True) -> list[Violation]:
    """The timing rules JSON Schema cannot express, for a schema-valid document.

    Each track's ``frame_rate`` must parse; a time range given in frames needs a rate, its own
    or its track's.

    Args:
        data: A document that passed schema validation.
        frames: Whether the document may hold frame-based time ranges; False skips the walk
            over events (the schema already checked ranges in seconds).

    Returns:
        Every violation found.
    """
    violations: list[Violation] = []
    for t, track in enumerate(data.get("tracks", ())):
        try:
            rate = _rate(track)
        except ValidationError as exc:
            violations += _nested(f"/tracks/{t}/frame_rate", exc)
            continue
        if not frames:
            continue
        for c, component in enumerate(track.get("components", ())):
            for e, event in enumerate(component.get("events", ())):
                base = f"/tracks/{t}/components/{c}/events/{e}"
                spans = [(f"{base}/time_range", event["time_range"])]
                spans += [
                    (f"{base}/regions/{r}/time_range", region["time_range"])
                    for r, region in enumerate(event.get("regions", ()))
                    if "time_range" in region
                ]
                for pointer, span in spans:
                    if "start_frame" not in span or ("rate" not in span and rate is not None):
                        # Seconds, or frames at the track's (valid) rate: the schema checked
                        # the keys, the integers and their order; nothing is left to check.
                        continue
                    try:
                        TimeRange.from_json(span, rate)
                    except ValidationError as exc:
                        violations += _nested(pointer, exc)
    return violations


def _nested(pointer: str, exc: ValidationError) -> list[Violation]:
    if not exc.violations:
        return [Violation(pointer, exc.summary)]
    return [Violation(pointer + v.pointer.rstrip("/"), v.message) for v in exc.violations]
