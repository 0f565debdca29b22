"""Cognito sign-in on the moto server, and its tokens verified by OidcVerifier against moto's JWKS."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventface import aws
from eventface.adapters.oidc import OidcConfig, OidcVerifier
from eventface.domain.errors import UnauthorizedError
from eventface.local.cognito import UserPool, create_user, create_user_pool, sign_in

PASSWORD = "Corr3ct-horse!"


def _verifier(pool: UserPool, token_use: str) -> OidcVerifier:
    return OidcVerifier(
        OidcConfig(jwks_url=pool.jwks_url, issuer=pool.issuer, client_id=pool.client_id, token_use=token_use)
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def pool(moto_endpoint: str) -> UserPool:
    return create_user_pool(f"p{uuid.uuid4().hex[:8]}")


@pytest.fixture
def tokens(pool: UserPool) -> dict[str, Any]:
    """A signed-in user of ``pool``: a tenant, an e-mail address and two groups."""
    create_user(
        pool,
        "alice",
        PASSWORD,
        attributes={"email": "alice@example.com", "custom:tenant_id": "acme"},
        groups=("campaigns", "history"),
    )
    return sign_in(pool, "alice", PASSWORD)


def test_create_user_pool_names_moto_jwks_and_the_aws_issuer(moto_endpoint: str, pool: UserPool) -> None:
    # when: moto's OpenID discovery document for the pool is read
    discovery = _get_json(f"{moto_endpoint}/{pool.pool_id}/.well-known/openid-configuration")
    # then: the pool's issuer and JWKS URL are the ones it advertises, and the JWKS has an RS256 key
    assert pool.issuer == discovery["issuer"] == f"https://cognito-idp.us-east-1.amazonaws.com/{pool.pool_id}"
    assert pool.jwks_url == discovery["jwks_uri"] == f"{moto_endpoint}/{pool.pool_id}/.well-known/jwks.json"
    assert [key["alg"] for key in _get_json(pool.jwks_url)["keys"]] == ["RS256"]


def test_cognito_id_token_verifies_with_tenant_email_and_groups(
    pool: UserPool, tokens: dict[str, Any]
) -> None:
    # when
    claims = _verifier(pool, "id").verify(tokens["IdToken"])
    # then
    # (moto keeps a user's groups in a set: their order varies)
    assert (claims.username, claims.token_use, sorted(claims.groups)) == (
        "alice",
        "id",
        ["campaigns", "history"],
    )
    assert claims.claims["custom:tenant_id"] == "acme"
    assert claims.claims["email"] == "alice@example.com"
    assert claims.claims["aud"] == pool.client_id


def test_cognito_access_token_verifies_with_groups(pool: UserPool, tokens: dict[str, Any]) -> None:
    # when
    claims = _verifier(pool, "access").verify(tokens["AccessToken"])
    # then: the same user, by sub and name; access tokens carry no user attributes
    assert claims.sub == _verifier(pool, "id").verify(tokens["IdToken"]).sub
    assert (claims.username, claims.token_use, sorted(claims.groups)) == (
        "alice",
        "access",
        ["campaigns", "history"],
    )
    assert claims.claims["client_id"] == pool.client_id
    assert "custom:tenant_id" not in claims.claims


@pytest.mark.parametrize(("token", "token_use"), [("AccessToken", "id"), ("IdToken", "access")])
def test_cognito_token_of_the_other_use_is_refused(
    pool: UserPool, tokens: dict[str, Any], token: str, token_use: str
) -> None:
    with pytest.raises(UnauthorizedError, match=f"token is required: send the {token_use} token"):
        _verifier(pool, token_use).verify(tokens[token])


def test_cognito_refuses_a_wrong_password(pool: UserPool, tokens: dict[str, Any]) -> None:
    # when / then
    with pytest.raises(ClientError) as refused:
        sign_in(pool, "alice", "Wr0ng-password!")
    assert refused.value.response["Error"]["Code"] == "NotAuthorizedException"


@pytest.mark.parametrize("token", ["IdToken", "AccessToken"])
def test_cognito_token_of_another_pool_is_refused(pool: UserPool, token: str) -> None:
    # given: a user of another pool (moto signs every pool's tokens with the same key, so only the
    # issuer tells them apart), verified against this pool's settings but the other pool's JWKS
    other = create_user_pool(f"p{uuid.uuid4().hex[:8]}")
    create_user(other, "mallory", PASSWORD, attributes={"custom:tenant_id": "acme"})
    foreign = sign_in(other, "mallory", PASSWORD)[token]
    verifier = _verifier(pool, "id" if token == "IdToken" else "access")
    # when / then
    with pytest.raises(UnauthorizedError, match="another identity provider or user pool"):
        verifier.verify(foreign)


def test_cognito_token_of_another_client_of_the_same_pool_is_refused(
    pool: UserPool, tokens: dict[str, Any]
) -> None:
    # given: a verifier for another app client of the same pool
    other_client = OidcConfig(
        jwks_url=pool.jwks_url, issuer=pool.issuer, client_id="another-app-client", token_use="id"
    )
    # when / then
    with pytest.raises(UnauthorizedError, match="another app client"):
        OidcVerifier(other_client).verify(tokens["IdToken"])


def test_create_user_pool_makes_the_tenant_immutable_and_writable_by_no_app_client(pool: UserPool) -> None:
    # when: the pool and its client are described (what AWS enforces; moto stores but does not
    # enforce either, see tests/e2e/test_tenant_binding.py)
    cognito = aws.client("cognito-idp")
    schema = cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]["SchemaAttributes"]
    client = cognito.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=pool.client_id)[
        "UserPoolClient"
    ]
    # then
    tenant = next(a for a in schema if a["Name"] == "custom:tenant_id")
    assert tenant["Mutable"] is False
    assert client["WriteAttributes"] == ["name"]
    assert "custom:tenant_id" in client["ReadAttributes"]
