"""Who is calling and what they may do: API keys, principals, the policy and the audit log.

The core never checks roles: embedded library use runs as the local owner. The service wraps
the `reeldb.Database` facade with `reeldb.auth.policy` at its boundary (DESIGN.md section 6).
"""

from __future__ import annotations

from reeldb.auth.keys import KEY_PREFIX, hash_secret, new_api_key, parse_api_key
from reeldb.auth.model import ApiKey, AuditEntry, NewApiKey, Principal
from reeldb.auth.policy import Need, authorize

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "AuditEntry",
    "NewApiKey",
    "Need",
    "Principal",
    "authorize",
    "hash_secret",
    "new_api_key",
    "parse_api_key",
]
