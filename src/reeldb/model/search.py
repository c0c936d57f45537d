"""What queries return: documents of a DataStore, and events of one document in context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from reeldb.model.timing import TimeRange

__all__ = ["DocumentMatch", "EventMatch"]


@dataclass(frozen=True, slots=True)
class DocumentMatch:
    """A document a DataStore-level filter selected: its coordinates only.

    Attributes:
        id: The DocumentID.
        mid: Its media ID.
    """

    id: UUID
    mid: dict[str, str]


@dataclass(frozen=True, slots=True)
class EventMatch:
    """An event a document-level query selected, with its context.

    Attributes:
        path: JSON pointer of the event (``/tracks/0/components/1/events/7``).
        time: The event's exact time range in seconds.
        event: The event's own attributes (without its regions).
        track: Its track's attributes (without components).
        component: Its component's attributes (without events).
        regions: The event's regions that matched (every region when the query names no
            region field).
        region_indexes: The position of each of `regions` in the event.
    """

    path: str
    time: TimeRange
    event: dict[str, Any]
    track: dict[str, Any]
    component: dict[str, Any]
    regions: tuple[dict[str, Any], ...]
    region_indexes: tuple[int, ...]
