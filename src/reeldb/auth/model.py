"""Value objects of authentication and auditing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from reeldb.model.datastore import Role

__all__ = ["ApiKey", "AuditEntry", "NewApiKey", "Principal"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public record; the secret is never stored, only its hash.

    Attributes:
        key_id: The public part of the key, shown in listings and audit entries.
        principal: Who the key authenticates as, e.g. ``app:shot-detector``.
        description: Free text.
        created_at: When the key was created.
        created_by: The principal that created it.
        revoked_at: When it was revoked; None while it is valid.
    """

    key_id: str
    principal: str
    description: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the key still authenticates."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: the only time its secret is available.

    Attributes:
        key: The stored record.
        secret: The whole key to give to the client (``rdb_<key_id>_<secret>``); reeldb keeps
            only its hash, so it cannot be shown again.
    """

    key: ApiKey
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller and its access.

    Attributes:
        name: The principal, e.g. ``user:alice``.
        system_admin: May do everything, including creating namespaces and API keys.
        roles: The principal's role in each namespace where it has one.
        key_id: The API key it authenticated with, if any.
    """

    name: str
    system_admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited action: a write or an admin action, allowed or refused.

    Attributes:
        seq: Position in the audit log (the pagination key).
        at: When the action was answered (UTC).
        principal: Who acted.
        action: What was asked, e.g. ``document.put`` or ``role.grant``.
        namespace: The namespace acted on; None for system actions (keys, new namespaces).
        target: What was acted on, e.g. the DataStore or the principal granted a role.
        request_id: The request's ``X-Request-ID``.
        status: The HTTP status of the answer (``201``, ``403``, ``422``...).
    """

    seq: int
    at: datetime
    principal: str
    action: str
    namespace: str | None
    target: str
    request_id: str
    status: int
