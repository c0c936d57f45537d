"""API keys: ``rdb_<key_id>_<secret>``, stored as a SHA-256 hash of the whole key.

The secret is 32 random bytes, so a fast hash is the right tool: password hashes (argon2,
bcrypt) slow down guessing of low-entropy secrets, and no guessing of 256 random bits is
feasible, whereas a slow hash on every request would cap the service's throughput.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from reeldb.errors import UnauthenticatedError

__all__ = ["KEY_PREFIX", "hash_secret", "new_api_key", "parse_api_key"]

KEY_PREFIX: Final = "rdb_"
_KEY_ID_BYTES: Final = 8


def new_api_key() -> tuple[str, str]:
    """Make a fresh key.

    Returns:
        ``(key_id, whole_key)``.
    """
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def hash_secret(whole_key: str) -> bytes:
    """The stored form of a key.

    Args:
        whole_key: The key as given to the client.

    Returns:
        Its SHA-256 digest.
    """
    return hashlib.sha256(whole_key.encode()).digest()


def parse_api_key(whole_key: str) -> str:
    """Read the key id out of a key.

    Args:
        whole_key: The key as presented by a client.

    Returns:
        The key id.

    Raises:
        UnauthenticatedError: The text is not a reeldb API key.
    """
    body = whole_key.removeprefix(KEY_PREFIX)
    key_id, sep, secret = body.partition("_")
    if (
        not whole_key.startswith(KEY_PREFIX)
        or not sep
        or len(key_id) != 2 * _KEY_ID_BYTES
        or not secret
    ):
        raise UnauthenticatedError("the credentials are not a reeldb API key")
    return key_id
