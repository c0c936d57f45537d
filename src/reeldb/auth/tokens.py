"""OIDC/JWT bearer tokens from a configured issuer, as an alternative to API keys.

With the ``jwt_public_key`` setting (a PEM file of the issuer's public key), the service also
accepts ``Authorization: Bearer <JWT>``: the signature (RS256, ES256 or EdDSA; never ``none``
or a shared secret), the expiry, and the ``iss`` and ``aud`` claims when ``jwt_issuer`` and
``jwt_audience`` are set, are all checked by PyJWT. The ``sub`` claim names the principal
(``alice`` becomes ``user:alice``; a ``sub`` with a ``:`` is taken as it is); its roles are
reeldb's own role grants, like any principal's. Needs the ``jwt`` extra
(``pip install 'reeldb[jwt]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from reeldb.errors import ConfigError, MissingDependencyError, UnauthenticatedError, ValidationError
from reeldb.model.names import check_principal

__all__ = ["ALGORITHMS", "TokenVerifier"]

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA")
"""Public-key algorithms only: a token signed with a shared secret or ``none`` is refused."""


class TokenVerifier:
    """Checks JWT bearer tokens against one issuer's public key.

    Args:
        public_key_file: PEM file with the issuer's public key.
        issuer: The required ``iss`` claim, if any.
        audience: The required ``aud`` claim, if any.

    Raises:
        MissingDependencyError: PyJWT (with cryptography) is not installed.
        ConfigError: The key file cannot be read.
    """

    def __init__(self, public_key_file: str, *, issuer: str | None, audience: str | None) -> None:
        try:
            import jwt
        except ImportError:
            raise MissingDependencyError(
                "JWT bearer tokens need PyJWT: pip install 'reeldb[jwt]'"
            ) from None
        self._jwt = jwt
        try:
            self._key = Path(public_key_file).read_text()
        except OSError as exc:
            raise ConfigError(
                f"cannot read jwt_public_key {public_key_file}: {exc.strerror}"
            ) from None
        self._issuer = issuer
        self._audience = audience

    def principal(self, token: str) -> str:
        """The principal a valid token stands for.

        Args:
            token: The encoded JWT.

        Returns:
            The principal, e.g. ``user:alice``.

        Raises:
            UnauthenticatedError: A bad signature, an expired token, a wrong issuer or
                audience, or a missing or malformed ``sub``.
        """
        required = (
            ["exp", "sub"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        )
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                self._key,
                algorithms=list(ALGORITHMS),
                issuer=self._issuer,
                audience=self._audience,
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except self._jwt.PyJWTError as exc:  # InvalidKeyError (wrong algorithm family) too
            raise UnauthenticatedError(f"invalid bearer token: {exc}") from None
        subject = claims["sub"]
        name = subject if isinstance(subject, str) and ":" in subject else f"user:{subject}"
        try:
            return check_principal(name)
        except ValidationError:
            raise UnauthenticatedError(
                "invalid bearer token: its sub claim is not a principal name"
            ) from None
