"""What queries return: documents of a DataStore, and events of one document in context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from reeldb.model.datastore import DataStoreRef
from reeldb.model.timing import TimeRange

__all__ = ["DocumentMatch", "EventMatch", "QueryRequest", "QueryState"]

QueryState = Literal["pending", "running", "done", "failed"]


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


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """A DataStore-level filter run asynchronously, and where it stands.

    Attributes:
        id: The request id (a UUIDv7).
        datastore: The DataStore queried.
        query: The query, in its JSON form.
        all_versions: Whether superseded versions of each MID count.
        state: ``pending`` (not started), ``running``, ``done`` (the results can be paged)
            or ``failed`` (see ``error``).
        found: How many matching documents are stored so far (all of them once ``done``).
        error: Why it failed, or None.
        created_at: When it was submitted.
        finished_at: When it finished, or None.
    """

    id: UUID
    datastore: DataStoreRef
    query: dict[str, Any]
    all_versions: bool
    state: QueryState
    found: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
