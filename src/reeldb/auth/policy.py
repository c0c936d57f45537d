"""The policy: which principal may do what, where (actions x resources, as datasette does).

Every service route declares a `Need`; `authorize` decides. A principal with no role in a
namespace gets the same `NotFoundError` as for a namespace that does not exist, so nobody
learns the names of other tenants' namespaces, DataStores, schemas or documents.
"""

from __future__ import annotations

import enum

from reeldb.auth.model import Principal
from reeldb.errors import NotFoundError, PermissionDeniedError
from reeldb.model.datastore import Role
from reeldb.schema.builtins import BUILTIN_NAMESPACE

__all__ = ["Need", "authorize"]

_RANK = {Role.READER: 1, Role.WRITER: 2, Role.ADMIN: 3}


class Need(enum.StrEnum):
    """What a route needs of its caller."""

    PUBLIC = "public"
    """Nothing: health checks and metrics, which reveal no tenant data."""
    AUTHENTICATED = "authenticated"
    """Any valid credentials (the route filters what it shows by role)."""
    READER = "reader"
    """At least the reader role in the route's namespace."""
    WRITER = "writer"
    """At least the writer role in the route's namespace."""
    ADMIN = "admin"
    """The admin role in the route's namespace."""
    SYSTEM = "system"
    """A system administrator (creates namespaces and API keys)."""

    @property
    def role(self) -> Role | None:
        """The namespace role this need asks for, if it is one."""
        return {"reader": Role.READER, "writer": Role.WRITER, "admin": Role.ADMIN}.get(self.value)


def authorize(principal: Principal, need: Need, namespace: str | None = None) -> None:
    """Allow the action or raise.

    Args:
        principal: The caller.
        need: What the action needs.
        namespace: The namespace acted on, for namespace roles.

    Raises:
        NotFoundError: The principal has no role in the namespace (hides its existence).
        PermissionDeniedError: The principal's role is too weak, or a system action.
    """
    if principal.system_admin or need in (Need.PUBLIC, Need.AUTHENTICATED):
        return
    if need is Need.SYSTEM:
        raise PermissionDeniedError(f"{principal.name} is not a system administrator")
    wanted = need.role
    assert wanted is not None and namespace is not None
    if namespace == BUILTIN_NAMESPACE and wanted is Role.READER:
        return  # built-in schemas are readable by everyone
    held = principal.roles.get(namespace)
    if held is None:
        raise NotFoundError(f"namespace {namespace} does not exist")
    if _RANK[held] < _RANK[wanted]:
        raise PermissionDeniedError(
            f"{principal.name} is {held} in namespace {namespace}; this needs {wanted}"
        )
