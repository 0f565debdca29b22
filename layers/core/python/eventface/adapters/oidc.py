"""OpenID Connect token verification for the management API (Cognito user pools, moto's locally).

:class:`OidcVerifier` checks a JWT the way AWS documents for Cognito: an RS256 signature by a key of
the pool's JWKS, ``iss`` equal to the pool's issuer, ``exp``/``iat``/``nbf`` (with a small leeway),
``token_use`` (``id`` or ``access``) and the app client (``aud`` in ID tokens, ``client_id`` in access
tokens). Signatures are checked by PyJWT, never by hand; only RS256 is accepted, so neither ``none``
nor an HMAC "signed" with the public key (algorithm confusion) gets through.

The JWKS is fetched lazily, kept for ``jwks_cache_seconds`` and fetched again early when a token
names a key id we do not know (key rotation), at most once per ``jwks_refetch_cooldown_seconds``,
so a flood of tokens with made-up key ids cannot turn into a flood of requests to the identity
provider. If a scheduled refresh fails, the keys we have keep working until the provider is back
(an outage of the JWKS endpoint must not sign everybody out).

Tokens are never logged, and no message repeats a token or its claims.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt

from eventface.domain.errors import DependencyError, UnauthorizedError

#: The one signature algorithm accepted (Cognito signs with RS256).
ALGORITHM: Final = "RS256"
#: Longer strings are refused before parsing (Cognito tokens are a few KiB, even with many groups).
MAX_TOKEN_LENGTH: Final = 16 * 1024
TOKEN_USES: Final = ("id", "access")

_SIGN_IN_AGAIN = "sign in again"
_KEYS_UNAVAILABLE = "the identity provider's keys could not be fetched: retry later"


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """Which tokens an :class:`OidcVerifier` accepts.

    Parameters
    ----------
    jwks_url
        The provider's JSON Web Key Set (Cognito: ``<issuer>/.well-known/jwks.json``; moto server:
        ``<endpoint>/<pool id>/.well-known/jwks.json``).
    issuer
        The exact ``iss`` of valid tokens (Cognito: ``https://cognito-idp.<region>.amazonaws.com/<pool id>``).
    client_id
        The app client the tokens must have been issued to.
    token_use
        ``"id"`` (ID tokens, ``aud`` is checked) or ``"access"`` (``client_id`` is checked).
    leeway_seconds
        Clock skew tolerated on ``exp``, ``iat`` and ``nbf``.
    jwks_cache_seconds
        How long a fetched JWKS is used before it is fetched again.
    jwks_refetch_cooldown_seconds
        Least time between two fetches of the JWKS caused by unknown key ids.
    """

    jwks_url: str
    issuer: str
    client_id: str
    token_use: str = "id"
    leeway_seconds: int = 30
    jwks_cache_seconds: int = 3600
    jwks_refetch_cooldown_seconds: int = 30

    def __post_init__(self) -> None:
        if not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError(f"jwks_url must be an http(s) URL, not {self.jwks_url!r}: set the JWKS URL")
        if not self.issuer or not self.client_id:
            raise ValueError(
                "issuer and client_id are required: set the user pool's issuer and app client id"
            )
        if self.token_use not in TOKEN_USES:
            raise ValueError(f"token_use must be 'id' or 'access', not {self.token_use!r}")
        if self.leeway_seconds < 0 or self.jwks_cache_seconds <= 0 or self.jwks_refetch_cooldown_seconds < 0:
            raise ValueError(
                "leeway_seconds and jwks_refetch_cooldown_seconds must be >= 0 and jwks_cache_seconds > 0"
            )


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """A verified token: who signed in, their groups and every claim of the token."""

    sub: str
    username: str
    token_use: str
    groups: tuple[str, ...]
    claims: dict[str, Any]


class OidcVerifier:
    """Verifies the provider's RS256 JWTs against its JWKS (fetched lazily, cached, rotated).

    Parameters
    ----------
    config
        The issuer, app client and token use to accept.
    fetch_timeout
        Seconds to wait for the JWKS endpoint.
    clock
        Monotonic seconds for the JWKS cache (tests pass a fake clock).
    """

    def __init__(
        self,
        config: OidcConfig,
        *,
        fetch_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._clock = clock
        # PyJWT fetches and parses the JWKS; the caching (lifespan, unknown-kid refetch with a
        # cooldown, stale keys on an outage) is ours so that it runs on an injectable clock.
        self._jwks_client = jwt.PyJWKClient(config.jwks_url, cache_jwk_set=False, timeout=fetch_timeout)
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None

    @property
    def config(self) -> OidcConfig:
        return self._config

    def verify(self, token: str | None) -> TokenClaims:
        """The claims of ``token`` once its signature, issuer, client, use and lifetime check out.

        Raises
        ------
        UnauthorizedError
            The token is missing, malformed, expired, not yet valid, wrongly signed, or issued by
            another provider, to another client or for another use (the message says which).
        DependencyError
            The provider's keys could not be fetched.
        """
        config = self._config
        if not token:
            raise UnauthorizedError("no token was sent: sign in and send 'Authorization: Bearer <token>'")
        if len(token) > MAX_TOKEN_LENGTH:
            raise UnauthorizedError(f"the token is not a well-formed JWT (too long): {_SIGN_IN_AGAIN}")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(
                f"the token is not a well-formed JWT: {_SIGN_IN_AGAIN} and send the token unchanged"
            ) from exc
        if header.get("alg") != ALGORITHM:
            raise UnauthorizedError(
                f"the token is not signed with {ALGORITHM}: sign in through this application's "
                "identity provider"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise UnauthorizedError(f"the token names no signing key (kid): {_SIGN_IN_AGAIN}")
        key = self._signing_key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={
                    "require": ["exp", "iat", "iss", "sub", "token_use"],
                    # The client is checked after token_use (ID tokens name it in aud, access tokens
                    # in client_id), so that an access token sent for an ID token is called that.
                    "verify_aud": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(_reason(exc)) from exc
        return self._claims(claims)

    def _claims(self, claims: dict[str, Any]) -> TokenClaims:
        config = self._config
        token_use = claims["token_use"]
        if token_use != config.token_use:
            shown = token_use if token_use in TOKEN_USES else "other"
            raise UnauthorizedError(
                f"this is an '{shown}' token but an '{config.token_use}' token is required: "
                f"send the {config.token_use} token you received when signing in"
            )
        client = claims.get("aud") if config.token_use == "id" else claims.get("client_id")
        if client != config.client_id:
            raise UnauthorizedError(
                f"the token was issued to another app client: {_SIGN_IN_AGAIN} through this application"
            )
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise UnauthorizedError(f"the token names no user (sub): {_SIGN_IN_AGAIN}")
        # Cognito names the user in cognito:username (ID tokens) or username (access tokens); pools
        # that sign in by email use the sub as the username, so the sub is the natural fallback.
        username = claims.get("cognito:username", claims.get("username", sub))
        groups = claims.get("cognito:groups", [])
        if not isinstance(username, str) or not isinstance(groups, list):
            raise UnauthorizedError(f"the token's username or groups are malformed: {_SIGN_IN_AGAIN}")
        return TokenClaims(
            sub=sub,
            username=username,
            token_use=token_use,
            groups=tuple(str(group) for group in groups),
            claims=claims,
        )

    def _signing_key(self, kid: str) -> Any:
        """The public key ``kid`` names, fetching the JWKS when stale or when ``kid`` is new."""
        config = self._config
        with self._lock:
            now = self._clock()
            expired = self._fetched_at is None or now - self._fetched_at >= config.jwks_cache_seconds
            if expired and self._may_fetch(now):
                self._fetch(now)
            key = self._keys.get(kid)
            if key is None and self._may_fetch(now):
                self._fetch(now)
                key = self._keys.get(kid)
            have_keys = bool(self._keys)
        if not have_keys:
            # Still cooling down after a failed first fetch: nothing to verify with yet.
            raise DependencyError(_KEYS_UNAVAILABLE)
        if key is None:
            raise UnauthorizedError(
                f"the token was signed by a key the identity provider does not publish: {_SIGN_IN_AGAIN}"
            )
        return key

    def _may_fetch(self, now: float) -> bool:
        cooldown = self._config.jwks_refetch_cooldown_seconds
        return self._attempted_at is None or now - self._attempted_at >= cooldown

    def _fetch(self, now: float) -> None:
        self._attempted_at = now
        try:
            jwk_set = self._jwks_client.get_jwk_set(refresh=True)
        except (jwt.PyJWTError, ValueError) as exc:
            if self._keys:
                return  # keep verifying with the keys we have until the provider is back
            raise DependencyError(_KEYS_UNAVAILABLE) from exc
        self._keys = {
            k.key_id: k.key
            for k in jwk_set.keys
            if k.key_id and k.key_type == "RSA" and k.public_key_use in ("sig", None)
        }
        self._fetched_at = now


def _reason(exc: jwt.PyJWTError) -> str:
    """What was wrong with a token PyJWT refused, and what to do about it."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return f"the token has expired: {_SIGN_IN_AGAIN}"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet: check the clock of the signing-in device and sign in again"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the token was issued by another identity provider or user pool: sign in to this application"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the '{exc.claim}' claim: {_SIGN_IN_AGAIN}"
    if isinstance(exc, jwt.InvalidSignatureError):
        return f"the token's signature is not valid: {_SIGN_IN_AGAIN}"
    return f"the token is not valid ({type(exc).__name__}): {_SIGN_IN_AGAIN}"
