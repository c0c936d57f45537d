"""OIDC/JWT bearer tokens: accepted only when configured, checked thoroughly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import reeldb
from reeldb.errors import ConfigError, UnauthenticatedError
from reeldb.testing import running_service

ISSUER = "https://idp.example.com"
AUDIENCE = "reeldb"


@pytest.fixture(scope="module")
def issuer_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: Any) -> bytes:
    data: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


@pytest.fixture
def db(tmp_path: Path, issuer_key: rsa.RSAPrivateKey) -> Iterator[reeldb.Database]:
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(_pem(issuer_key))
    with reeldb.connect(
        "memory:", jwt_public_key=str(key_file), jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    ) as database:
        database.create_namespace("vision", admins=["user:alice"])
        yield database


def token(key: Any, algorithm: str = "RS256", **claims: Any) -> str:
    body = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


def test_a_valid_token_names_a_principal_with_its_roles(
    db: reeldb.Database, issuer_key: rsa.RSAPrivateKey
) -> None:
    principal = db.authenticate(token(issuer_key))
    assert (principal.name, dict(principal.roles), principal.key_id) == (
        "user:alice",
        {"vision": reeldb.Role.ADMIN},
        None,
    )
    assert db.authenticate(token(issuer_key, sub="app:tagger")).name == "app:tagger"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"iss": "https://evil.example.com"}, "issuer"),
        ({"aud": "another-service"}, "audience"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"sub": "not a principal!"}, "principal"),
    ],
)
def test_bad_claims_are_refused(
    db: reeldb.Database, issuer_key: rsa.RSAPrivateKey, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UnauthenticatedError, match="invalid bearer token"):
        db.authenticate(token(issuer_key, **claims))


def test_other_keys_and_algorithms_are_refused(db: reeldb.Database) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for forged in (
        token(stranger),  # signed by another key
        token(ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
        token("a-shared-secret-of-at-least-32-bytes!", algorithm="HS256"),  # not a public key
        jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none"),
        "not.a.token",
    ):
        with pytest.raises(UnauthenticatedError):
            db.authenticate(forged)


def test_tokens_are_refused_unless_configured(issuer_key: rsa.RSAPrivateKey) -> None:
    with reeldb.connect("memory:") as plain, pytest.raises(UnauthenticatedError, match="API key"):
        plain.authenticate(token(issuer_key))


def test_a_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with reeldb.connect("memory:", jwt_public_key=str(tmp_path / "missing.pem")) as db:
        with pytest.raises(ConfigError, match="cannot read jwt_public_key"):
            db.authenticate("a.b.c")
        api_key = db.bootstrap()
        assert api_key is not None
        assert db.authenticate(api_key.secret).name == "user:admin"  # keys still work


def test_the_service_accepts_tokens(db: reeldb.Database, issuer_key: rsa.RSAPrivateKey) -> None:
    with running_service(db) as url:
        headers = {"Authorization": f"Bearer {token(issuer_key)}"}
        me = httpx.get(url + "/v1/whoami", headers=headers)
        assert me.json()["name"] == "user:alice"
        assert httpx.get(url + "/v1/namespaces/vision/roles", headers=headers).status_code == 200
        expired = {"Authorization": f"Bearer {token(issuer_key, exp=int(time.time()) - 5)}"}
        refused = httpx.get(url + "/v1/whoami", headers=expired)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
