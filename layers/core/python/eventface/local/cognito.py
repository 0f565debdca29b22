"""Cognito on the local stack: a user pool, users and sign-in on the moto server.

moto's Cognito issues real RS256 tokens and serves their JWKS, so the management API verifies
local tokens with the same :class:`~eventface.adapters.oidc.OidcVerifier` as in AWS. What moto
serves (checked by tests/integration/test_cognito_oidc.py):

- the JWKS at ``<AWS_ENDPOINT_URL>/<pool id>/.well-known/jwks.json`` (and the discovery document
  at ``.../.well-known/openid-configuration``); every pool shares moto's one key (``kid`` "dummy"),
  so locally only ``iss`` and the client tell pools apart;
- the real AWS issuer, ``https://cognito-idp.<region>.amazonaws.com/<pool id>``, in ``iss``;
- custom attributes (``custom:*``) and ``cognito:groups`` in ID tokens, standard attributes only
  when the app client may read them (hence ``ReadAttributes`` below), and ``cognito:groups`` in
  access tokens.

The pool is configured as the deployment's must be: ``custom:tenant_id`` is immutable (set once,
by the platform, when it creates the user) and no app client may write it (``WriteAttributes``
names only :data:`STANDARD_WRITE_ATTRIBUTES`). moto stores both settings but enforces neither (a
user can still rewrite the attribute with ``UpdateUserAttributes``), which is why the management
API never trusts the claim alone: it cross-checks the platform's membership record
(:mod:`eventface.services.memberships`), and tests/e2e/test_tenant_binding.py replays that attack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eventface import aws

#: Standard attributes the app client may read, so that they appear in ID tokens as in AWS (where an
#: app client without ReadAttributes reads them all; moto's reads none).
STANDARD_READ_ATTRIBUTES: Final = ("email", "email_verified", "name")
#: The only standard attribute a user may change through the app client (their display name).
#: Custom attributes are never client-writable: the platform sets them.
STANDARD_WRITE_ATTRIBUTES: Final = ("name",)
#: The custom attribute that names a user's tenant (``custom:tenant_id`` in ID tokens).
DEFAULT_CUSTOM_ATTRIBUTES: Final = ("tenant_id",)


@dataclass(frozen=True, slots=True)
class UserPool:
    """A user pool and its app client, with what a verifier needs to accept their tokens."""

    pool_id: str
    client_id: str
    issuer: str
    jwks_url: str


def create_user_pool(
    prefix: str,
    *,
    custom_attributes: Sequence[str] = DEFAULT_CUSTOM_ATTRIBUTES,
    cognito: Any | None = None,
) -> UserPool:
    """Create a user pool and an app client that signs in with a user name and password.

    Parameters
    ----------
    prefix
        Names the pool (``<prefix>-users``) and its client (``<prefix>-portal``).
    custom_attributes
        Custom attributes of the pool (without ``custom:``): immutable (set when a user is created)
        and readable, never writable, by the client.
    cognito
        A ``cognito-idp`` client; the process-wide one by default (its endpoint is the moto server).

    Returns
    -------
    UserPool
        The ids, the issuer of the pool's tokens and the URL of its JWKS on the endpoint.
    """
    client = cognito or aws.client("cognito-idp")
    pool = client.create_user_pool(
        PoolName=f"{prefix}-users",
        # Immutable: set once, when the platform creates the user; nobody changes it afterwards.
        Schema=[{"Name": n, "AttributeDataType": "String", "Mutable": False} for n in custom_attributes],
    )["UserPool"]
    pool_id = pool["Id"]
    app = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=f"{prefix}-portal",
        # A browser app holds no secret (InitiateAuth would then need a SECRET_HASH).
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        ReadAttributes=[*STANDARD_READ_ATTRIBUTES, *(f"custom:{name}" for name in custom_attributes)],
        # Explicit: a client without WriteAttributes may write every mutable attribute in AWS.
        WriteAttributes=list(STANDARD_WRITE_ATTRIBUTES),
    )["UserPoolClient"]
    endpoint = str(client.meta.endpoint_url).rstrip("/")
    return UserPool(
        pool_id=pool_id,
        client_id=app["ClientId"],
        issuer=f"https://cognito-idp.{client.meta.region_name}.amazonaws.com/{pool_id}",
        jwks_url=f"{endpoint}/{pool_id}/.well-known/jwks.json",
    )


def create_user(
    pool: UserPool,
    username: str,
    password: str,
    *,
    attributes: Mapping[str, str] | None = None,
    groups: Iterable[str] = (),
    cognito: Any | None = None,
) -> None:
    """Create a confirmed user with a permanent password, in ``groups`` (created when missing).

    A Cognito user only: it records no tenant membership, so the management API refuses it. Users
    of the platform are created with :func:`eventface.services.memberships.add_user` (what
    :meth:`eventface.local.stack.LocalStack.add_user` and ``eventface users add`` do).

    Parameters
    ----------
    pool
        The pool made by :func:`create_user_pool`.
    username, password
        The sign-in credentials (the password must meet the pool's policy: 8+ characters with
        upper and lower case letters, a digit and a symbol).
    attributes
        User attributes by name, e.g. ``{"email": ..., "custom:tenant_id": ...}``.
    groups
        Cognito groups to add the user to (``cognito:groups`` in the tokens).
    cognito
        A ``cognito-idp`` client; the process-wide one by default.
    """
    client = cognito or aws.client("cognito-idp")
    client.admin_create_user(
        UserPoolId=pool.pool_id,
        Username=username,
        UserAttributes=[{"Name": name, "Value": value} for name, value in (attributes or {}).items()],
        MessageAction="SUPPRESS",  # no invitation e-mail
    )
    client.admin_set_user_password(
        UserPoolId=pool.pool_id, Username=username, Password=password, Permanent=True
    )
    for group in groups:
        with contextlib.suppress(client.exceptions.GroupExistsException):
            client.create_group(UserPoolId=pool.pool_id, GroupName=group)
        client.admin_add_user_to_group(UserPoolId=pool.pool_id, Username=username, GroupName=group)


def sign_in(pool: UserPool, username: str, password: str, *, cognito: Any | None = None) -> dict[str, Any]:
    """Sign in with a user name and password (``USER_PASSWORD_AUTH``).

    Returns
    -------
    dict[str, Any]
        Cognito's ``AuthenticationResult``: ``IdToken``, ``AccessToken``, ``RefreshToken``,
        ``ExpiresIn`` and ``TokenType``.

    Raises
    ------
    botocore.exceptions.ClientError
        ``NotAuthorizedException`` for a wrong password, ``UserNotFoundException`` for an unknown user.
    RuntimeError
        Cognito asked for a challenge (e.g. a new password) instead of issuing tokens.
    """
    client = cognito or aws.client("cognito-idp")
    response = client.initiate_auth(
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    if "AuthenticationResult" not in response:
        raise RuntimeError(
            f"Cognito answered the sign-in with the challenge {response.get('ChallengeName')!r}: "
            "create the user with create_user(), which sets a permanent password"
        )
    result: dict[str, Any] = response["AuthenticationResult"]
    return result
