"""Asynchronous write requests: what a client submitted and where it stands (NMDB-24)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from reeldb.model.datastore import DataStoreRef

__all__ = ["FINAL_STATES", "WriteRequest", "WriteState"]


class WriteState(enum.StrEnum):
    """Where a write request stands: ``PENDING → VALIDATED → PERSISTED → INDEXED`` or ``FAILED``."""

    PENDING = "PENDING"
    """Durably accepted; no worker has validated it yet."""
    VALIDATED = "VALIDATED"
    """The document matches the DataStore's schema."""
    PERSISTED = "PERSISTED"
    """The document has its DocumentID and its body is stored; not yet readable."""
    INDEXED = "INDEXED"
    """Stored and indexed: readable by DocumentID and MID and found by queries."""
    FAILED = "FAILED"
    """Nothing was stored; ``error`` says why (for validation, every violation)."""


FINAL_STATES = frozenset({WriteState.INDEXED, WriteState.FAILED})


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """An asynchronous document write.

    Attributes:
        id: The request id (UUIDv7).
        datastore: The DataStore written to.
        mid: The media ID.
        blob: The blob holding the document.
        state: Where it stands.
        document_id: The DocumentID, from ``PERSISTED`` on.
        error: Why it failed (an RFC 9457 problem: ``title``, ``detail``, ``violations``,
            ``total``), or None.
        idempotency_key: The client's key: a retried submission with it returns this
            request.
        webhook: A URL called with the final state, or None.
        created_by: Who submitted it.
        created_at: When it was accepted.
        updated_at: When its state last changed.
        steps: Seconds each finished step took (``validate``, ``persist``, ``index``).
    """

    id: UUID
    datastore: DataStoreRef
    mid: dict[str, str]
    blob: UUID
    state: WriteState
    document_id: UUID | None
    error: dict[str, Any] | None
    idempotency_key: str | None
    webhook: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the request reached a final state."""
        return self.state in FINAL_STATES
