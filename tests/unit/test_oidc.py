"""OIDC token verification against a real JWKS server on loopback, with tokens signed by PyJWT.

The JWKS is served by ``http.server`` in a thread (a real HTTP endpoint, nothing of ours mocked);
the JWKS cache runs on a fake monotonic clock. Token lifetimes are checked by PyJWT against the
real clock, so the tokens here are stamped relative to it with margins of minutes to hours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from eventface.adapters.oidc import OidcConfig, OidcVerifier, TokenClaims
from eventface.domain.errors import DependencyError, UnauthorizedError
from eventface.ports_access import TokenVerifier
from eventface.services.auth import bearer_token

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool"
CLIENT_ID = "portal-client"


class Ticker:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class JwksServer(ThreadingHTTPServer):
    """Serves ``jwks`` as JSON (or ``status`` with a non-JSON body) and counts the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _JwksHandler)
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.requests = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"


class _JwksHandler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:
        self.server.requests += 1
        body = json.dumps(self.server.jwks).encode() if self.server.status == 200 else b"<html>oops</html>"
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    """The provider's current key, its next key (rotation) and an attacker's key."""
    return {
        name: rsa.generate_private_key(public_exponent=65537, key_size=2048) for name in ("k1", "k2", "evil")
    }


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@pytest.fixture
def server(keys: dict[str, rsa.RSAPrivateKey]) -> Iterator[JwksServer]:
    jwks = JwksServer()
    jwks.jwks = {"keys": [_jwk(keys["k1"], "k1")]}
    # A short poll interval: shutdown() waits for it at the end of every test.
    thread = threading.Thread(target=jwks.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield jwks
    jwks.shutdown()
    jwks.server_close()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def make_verifier(server: JwksServer, ticker: Ticker) -> Callable[..., OidcVerifier]:
    def make(token_use: str = "id", **config: Any) -> OidcVerifier:
        return OidcVerifier(
            OidcConfig(
                jwks_url=server.url, issuer=ISSUER, client_id=CLIENT_ID, token_use=token_use, **config
            ),
            fetch_timeout=2.0,
            clock=ticker,
        )

    return make


@pytest.fixture
def make_token(keys: dict[str, rsa.RSAPrivateKey]) -> Callable[..., str]:
    """A Cognito-shaped token signed with ``key`` (an ID token unless ``token_use="access"``)."""

    def make(use: str = "id", key: str = "k1", kid: str | None = "k1", **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "5f1c0e2a-user",
            "token_use": use,
            "iat": now,
            "auth_time": now,
            "exp": now + 3600,
            "cognito:groups": ["campaigns", "history"],
        }
        if use == "access":
            payload |= {"client_id": CLIENT_ID, "username": "alice", "scope": "aws.cognito.signin.user.admin"}
        else:
            payload |= {"aud": CLIENT_ID, "cognito:username": "alice", "custom:tenant_id": "acme"}
        payload |= claims
        payload = {name: value for name, value in payload.items() if value is not None}
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(payload, keys[key], algorithm="RS256", headers=headers)

    return make


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token signed by hand the way an attacker would: HMAC with ``secret``, or no signature."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_oidc_verifier_accepts_a_valid_id_token(make_verifier, make_token) -> None:
    # given
    verifier: TokenVerifier = make_verifier()
    # when
    claims = verifier.verify(make_token())
    # then
    assert isinstance(claims, TokenClaims)
    assert (claims.sub, claims.username, claims.token_use) == ("5f1c0e2a-user", "alice", "id")
    assert claims.groups == ("campaigns", "history")
    assert claims.claims["custom:tenant_id"] == "acme"


def test_oidc_verifier_accepts_a_valid_access_token(make_verifier, make_token) -> None:
    # given
    verifier = make_verifier("access")
    # when
    claims = verifier.verify(make_token("access"))
    # then
    assert (claims.username, claims.token_use, claims.groups) == ("alice", "access", ("campaigns", "history"))
    assert claims.claims["client_id"] == CLIENT_ID


def test_oidc_verifier_tolerates_clock_skew_within_the_leeway(make_verifier, make_token) -> None:
    # given: a token issued 10 s "in the future" (the issuer's clock is ahead), leeway 30 s
    token = make_token(iat=int(time.time()) + 10)
    # when
    claims = make_verifier(leeway_seconds=30).verify(token)
    # then
    assert claims.sub == "5f1c0e2a-user"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": -600}, "the token has expired: sign in again"),
        ({"iat": 600}, "not valid yet"),
        ({"nbf": 600}, "not valid yet"),
        ({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other"}, "another identity provider"),
        ({"iss": "https://evil.example.com"}, "another identity provider"),
        ({"aud": "someone-elses-client"}, "another app client"),
        ({"aud": None}, "another app client"),
        ({"aud": [CLIENT_ID, "someone-elses-client"]}, "another app client"),
        ({"exp": None}, "lacks the 'exp' claim"),
        ({"iat": None}, "lacks the 'iat' claim"),
        ({"sub": None}, "lacks the 'sub' claim"),
        ({"token_use": None}, "lacks the 'token_use' claim"),
        ({"token_use": "access"}, "this is an 'access' token but an 'id' token is required"),
        ({"token_use": "refresh"}, "this is an 'other' token but an 'id' token is required"),
    ],
)
def test_oidc_verifier_refuses_id_tokens_with_wrong_claims(
    make_verifier, make_token, claims: dict[str, Any], message: str
) -> None:
    # given: times are given relative to now
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "iat", "nbf") and v is not None else v for k, v in claims.items()}
    token = make_token(**claims)
    # when / then
    with pytest.raises(UnauthorizedError, match=message):
        make_verifier(leeway_seconds=30).verify(token)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"client_id": "someone-elses-client"}, "another app client"),
        ({"client_id": None}, "another app client"),
        ({"token_use": "id"}, "this is an 'id' token but an 'access' token is required"),
    ],
)
def test_oidc_verifier_refuses_access_tokens_of_another_client_or_use(
    make_verifier, make_token, claims: dict[str, Any], message: str
) -> None:
    # given
    token = make_token("access", **claims)
    # when / then
    with pytest.raises(UnauthorizedError, match=message):
        make_verifier("access").verify(token)


@pytest.mark.parametrize(("sent", "required"), [("id", "access"), ("access", "id")])
def test_oidc_verifier_names_the_token_use_it_requires(
    make_verifier, make_token, sent: str, required: str
) -> None:
    with pytest.raises(
        UnauthorizedError, match=f"this is an '{sent}' token but an '{required}' token is required"
    ):
        make_verifier(required).verify(make_token(sent))


def test_oidc_verifier_refuses_a_token_signed_by_another_key_under_a_published_kid(
    make_verifier, make_token
) -> None:
    # given: the attacker's key, the provider's key id
    token = make_token(key="evil", kid="k1")
    # when / then
    with pytest.raises(UnauthorizedError, match="the token's signature is not valid: sign in again"):
        make_verifier().verify(token)


def test_oidc_verifier_refuses_a_token_whose_signature_was_altered(make_verifier, make_token) -> None:
    # given: a valid token with its payload swapped for one that claims another user
    header, _, signature = make_token().split(".")
    payload = _b64(json.dumps({**_claims_of(make_token()), "sub": "admin"}).encode())
    # when / then
    with pytest.raises(UnauthorizedError, match="signature is not valid"):
        make_verifier().verify(f"{header}.{payload}.{signature}")


def test_oidc_verifier_refuses_a_token_signed_by_an_unpublished_key(make_verifier, make_token) -> None:
    with pytest.raises(UnauthorizedError, match="a key the identity provider does not publish"):
        make_verifier().verify(make_token(key="evil", kid="evil"))


def test_oidc_verifier_refuses_a_token_without_a_kid(make_verifier, make_token) -> None:
    with pytest.raises(UnauthorizedError, match="names no signing key"):
        make_verifier().verify(make_token(kid=None))


def test_oidc_verifier_refuses_hs256_signed_with_the_public_key(
    make_verifier, make_token, keys, server: JwksServer
) -> None:
    # given: algorithm confusion, an HMAC keyed with the provider's public key (which is public)
    public_pem = (
        keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = _forged({"alg": "HS256", "typ": "JWT", "kid": "k1"}, _claims_of(make_token()), public_pem)
    # when / then
    with pytest.raises(UnauthorizedError, match="not signed with RS256"):
        make_verifier().verify(token)
    assert server.requests == 0, "an unacceptable algorithm must be refused before any key is fetched"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_oidc_verifier_refuses_unsigned_tokens(make_verifier, make_token, alg: str) -> None:
    # given
    token = _forged({"alg": alg, "typ": "JWT", "kid": "k1"}, _claims_of(make_token()), None)
    # when / then
    with pytest.raises(UnauthorizedError, match="not signed with RS256"):
        make_verifier().verify(token)


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "eyJ.eyJ.sig", "....", "x" * 20_000],
)
def test_oidc_verifier_refuses_malformed_tokens(make_verifier, token: str) -> None:
    with pytest.raises(UnauthorizedError, match="not a well-formed JWT"):
        make_verifier().verify(token)


def test_oidc_verifier_refuses_a_garbled_payload_under_a_good_header(make_verifier, make_token) -> None:
    # given: a real header and signature around a payload that is not JSON
    header, _, signature = make_token().split(".")
    # when / then
    with pytest.raises(UnauthorizedError, match="sign in again"):
        make_verifier().verify(f"{header}.{_b64(b'not json')}.{signature}")


@pytest.mark.parametrize("token", [None, ""])
def test_oidc_verifier_refuses_a_missing_token(make_verifier, token: str | None) -> None:
    with pytest.raises(
        UnauthorizedError, match=r"no token was sent: sign in and send 'Authorization: Bearer"
    ):
        make_verifier().verify(token)


def test_oidc_verifier_never_repeats_or_logs_the_token(make_verifier, make_token, caplog) -> None:
    # given
    caplog.set_level(logging.DEBUG)
    token = make_token(exp=int(time.time()) - 600)
    # when
    with pytest.raises(UnauthorizedError) as refused:
        make_verifier().verify(token)
    # then
    signature = token.rsplit(".", 1)[1]
    assert signature not in str(refused.value)
    assert signature not in caplog.text


def test_oidc_verifier_caches_the_jwks(make_verifier, make_token, server: JwksServer, ticker: Ticker) -> None:
    # given
    verifier = make_verifier(jwks_cache_seconds=3600)
    # when: three verifications within the cache's lifetime
    for at in (0.0, 100.0, 3599.0):
        ticker.t = at
        verifier.verify(make_token())
    # then
    assert server.requests == 1


def test_oidc_verifier_fetches_the_jwks_again_when_it_is_stale(
    make_verifier, make_token, keys, server: JwksServer, ticker: Ticker
) -> None:
    # given: a verified token, then the provider withdraws the key
    verifier = make_verifier(jwks_cache_seconds=3600)
    verifier.verify(make_token())
    server.jwks = {"keys": [_jwk(keys["k2"], "k2")]}
    # when: the cache expires
    ticker.t = 3600.0
    # then: the withdrawn key no longer verifies anything
    with pytest.raises(UnauthorizedError, match="does not publish"):
        verifier.verify(make_token())
    assert server.requests == 2


def test_oidc_verifier_picks_up_a_rotated_key(
    make_verifier, make_token, keys, server: JwksServer, ticker: Ticker
) -> None:
    # given: the JWKS cached with k1, then the provider publishes k2 and signs with it
    verifier = make_verifier(jwks_refetch_cooldown_seconds=30)
    verifier.verify(make_token())
    server.jwks = {"keys": [_jwk(keys["k1"], "k1"), _jwk(keys["k2"], "k2")]}
    ticker.t = 31.0
    # when: a token names the unknown kid k2
    claims = verifier.verify(make_token(key="k2", kid="k2"))
    # then: the JWKS was fetched again at once (long before it went stale) and k2 verified it
    assert claims.username == "alice"
    assert server.requests == 2


def test_oidc_verifier_refetches_for_unknown_kids_at_most_once_per_cooldown(
    make_verifier, make_token, server: JwksServer, ticker: Ticker
) -> None:
    # given: a JWKS fetched at t=0
    verifier = make_verifier(jwks_refetch_cooldown_seconds=30)
    verifier.verify(make_token())
    # when: a flood of tokens with made-up kids within the cooldown
    for n in range(5):
        ticker.t = float(n)
        with pytest.raises(UnauthorizedError, match="does not publish"):
            verifier.verify(make_token(key="evil", kid=f"made-up-{n}"))
    # then: no extra request; after the cooldown, one more
    assert server.requests == 1
    ticker.t = 30.0
    with pytest.raises(UnauthorizedError, match="does not publish"):
        verifier.verify(make_token(key="evil", kid="made-up-again"))
    assert server.requests == 2


def test_oidc_verifier_reports_an_unreachable_jwks_as_a_dependency_error(
    make_verifier, make_token, server: JwksServer
) -> None:
    # given: the JWKS server is down
    verifier = make_verifier()
    server.shutdown()
    server.server_close()
    # when / then
    with pytest.raises(
        DependencyError, match="the identity provider's keys could not be fetched: retry later"
    ):
        verifier.verify(make_token())


@pytest.mark.parametrize(
    ("status", "jwks"), [(500, None), (200, {"keys": []}), (200, ["not", "an", "object"])]
)
def test_oidc_verifier_reports_a_broken_jwks_as_a_dependency_error(
    make_verifier, make_token, server: JwksServer, status: int, jwks: Any
) -> None:
    # given
    server.status = status
    if jwks is not None:
        server.jwks = jwks
    # when / then
    with pytest.raises(DependencyError, match="could not be fetched"):
        make_verifier().verify(make_token())


def test_oidc_verifier_keeps_its_keys_while_the_provider_is_down(
    make_verifier, make_token, server: JwksServer, ticker: Ticker
) -> None:
    # given: keys fetched, then the provider fails
    verifier = make_verifier(jwks_cache_seconds=3600, jwks_refetch_cooldown_seconds=30)
    verifier.verify(make_token())
    server.status = 500
    # when: the cache is stale and the refresh fails
    ticker.t = 4000.0
    claims = verifier.verify(make_token())
    # then: the known key still verifies; the next attempt waits for the cooldown
    assert claims.sub == "5f1c0e2a-user"
    ticker.t = 4010.0
    verifier.verify(make_token())
    assert server.requests == 2


def test_oidc_verifier_does_not_retry_a_failed_first_fetch_within_the_cooldown(
    make_verifier, make_token, server: JwksServer, ticker: Ticker
) -> None:
    # given: the first fetch fails
    server.status = 500
    verifier = make_verifier(jwks_refetch_cooldown_seconds=30)
    with pytest.raises(DependencyError):
        verifier.verify(make_token())
    # when: the provider recovers, but within the cooldown
    server.status = 200
    ticker.t = 10.0
    # then: still a dependency error (not "unknown key"), without a new request; then recovery
    with pytest.raises(DependencyError):
        verifier.verify(make_token())
    assert server.requests == 1
    ticker.t = 30.0
    assert verifier.verify(make_token()).username == "alice"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("BEARER   abc.def.ghi  ", "abc.def.ghi"),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_bearer_token_reads_the_authorization_header(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc.def.ghi", "Bearer a b"])
def test_bearer_token_refuses_other_schemes_and_shapes(header: str) -> None:
    with pytest.raises(UnauthorizedError, match="must be 'Bearer <token>'"):
        bearer_token(header)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token_use": "refresh"}, "token_use must be 'id' or 'access'"),
        ({"jwks_url": "file:///etc/passwd"}, "must be an http"),
        ({"issuer": ""}, "issuer and client_id are required"),
        ({"jwks_cache_seconds": 0}, "jwks_cache_seconds > 0"),
    ],
)
def test_oidc_config_refuses_bad_settings(changes: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"jwks_url": "https://idp/jwks.json", "issuer": ISSUER, "client_id": CLIENT_ID}
    with pytest.raises(ValueError, match=message):
        OidcConfig(**(values | changes))
