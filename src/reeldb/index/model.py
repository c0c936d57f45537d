"""What the index reports: its generations, and the events a document-level query matched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reeldb.index.rows import Column

__all__ = ["EventHit", "Generation"]


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of a DataStore's index.

    Attributes:
        id: Its id (its tables are ``ix<id>_*``).
        name: ``g1``, ``g2``, ...
        state: ``active`` (written and read), ``building`` (a rebuild fills it),
            ``staging`` (a large streamed document fills it, alone, until it is published;
            SQLite) or ``retired``.
        columns: Its columns.
        docs: Documents indexed in it.
        rows: Rows indexed in it.
        in_alias: Whether queries read it.
        created_at: When it was opened.
    """

    id: int
    name: str
    state: str
    columns: tuple[Column, ...]
    docs: int
    rows: int
    in_alias: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventHit:
    """An event a document-level query matched.

    Attributes:
        path: ``(track, component, event)`` indexes.
        start: Start in seconds.
        end: End in seconds.
        regions: Indexes of the regions that matched.
        event: The event, as stored.
        track: Its track's attributes (without components).
        component: Its component's attributes (without events).
    """

    path: tuple[int, int, int]
    start: float
    end: float
    regions: tuple[int, ...]
    event: dict[str, Any]
    track: dict[str, Any]
    component: dict[str, Any]
