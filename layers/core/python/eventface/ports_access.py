"""Ports of access control: API keys, the audit log, sign-in tokens, rate counters, tenant
memberships and the identity provider's users (``Protocol``).

Kept apart from :mod:`eventface.ports` so the access-control work does not touch the scan path's
ports. Adapters: ``eventface.adapters.dynamo_access`` (DynamoDB), ``eventface.adapters.memory_access``
(in-memory fakes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol

from eventface.domain.access import ApiKey, AuditEntry, DirectoryUser, Membership
from eventface.domain.model import Page
from eventface.domain.probe_guard import ProbeWatch


class ApiKeyRepository(Protocol):
    """Management API keys, found by the hash of their secret (authentication) or by id."""

    def add(self, key: ApiKey) -> None:
        """Store a new key; AlreadyExistsError if a key with the same hash exists."""
        ...

    def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes to ``key_hash`` (strongly consistent), or None."""
        ...

    def get(self, tenant_id: str, key_id: str) -> ApiKey:
        """The tenant's key; NotFoundError if unknown or another tenant's (never says which)."""
        ...

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        """The tenant's keys by id, revoked and expired ones included."""
        ...

    def revoke(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey:
        """Mark the key revoked at ``at`` and return it; a revoked key keeps its first revocation
        time (idempotent). NotFoundError if unknown or another tenant's."""
        ...

    def touch(self, key_hash: str, at: datetime) -> None:
        """Record that the key was used at ``at``; nothing happens if the key is gone. Best effort:
        callers may ignore a DependencyError."""
        ...


class AuditLog(Protocol):
    """The append-only audit log, one partition per tenant: no update, no delete (TTL expires it)."""

    def append(self, entry: AuditEntry) -> None:
        """Add an entry; AlreadyExistsError if an entry with the same time and id exists (an entry
        is never overwritten)."""
        ...

    def list(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """The tenant's entries, newest first; ``since`` inclusive, ``until`` exclusive, ``actor`` and
        ``action`` exact matches. InvalidInputError for a bad cursor or ``since`` after ``until``."""
        ...


class VerifiedToken(Protocol):
    """What a verified OpenID Connect ID token says about the user."""

    @property
    def sub(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def groups(self) -> Collection[str]: ...
    @property
    def claims(self) -> Mapping[str, object]: ...


class TokenVerifier(Protocol):
    def verify(self, token: str) -> VerifiedToken:
        """The token's claims once its signature, issuer, audience and expiry check out;
        UnauthorizedError otherwise."""
        ...


class RateLimiter(Protocol):
    """Counts requests per key over a sliding window of ``window_seconds`` (the previous window's
    count weighs in as it fades), so a burst across a window boundary gets no second allowance."""

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """Count one request for ``key`` at ``now``.

        Returns
        -------
        int | None
            None while the sliding count (this request included) is at most ``limit``; else the
            whole seconds (at least 1) until one more request would be admitted, for
            ``Retry-After``. A key this process already saw refused is answered from memory until
            then (that request is not counted).
        """
        ...

    def peek(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """Whether one more request of ``key`` would be admitted, without counting it: None, or the
        seconds to wait (as :meth:`hit`)."""
        ...

    def blocked(self, key: str, now: datetime) -> int | None:
        """The seconds ``key`` must still wait after a refusal this process saw, from memory only
        (no I/O; None when this process knows of no refusal). For refusing before any work."""
        ...


class MembershipDirectory(Protocol):
    """Which users belong to which tenant: written only by the platform (operators' commands, the
    local stack), read on every request of a signed-in user."""

    def get(self, tenant_id: str, user_sub: str) -> Membership | None:
        """The user's membership of the tenant (strongly consistent), or None."""
        ...

    def grant(self, membership: Membership) -> Membership:
        """Store the membership unless the user holds it already; the stored one (idempotent: an
        existing membership keeps its grant time)."""
        ...

    def revoke(self, tenant_id: str, user_sub: str) -> bool:
        """Remove the membership; whether there was one."""
        ...

    def of_user(self, user_sub: str) -> tuple[Membership, ...]:
        """Every membership the user holds, by tenant id (eventually consistent)."""
        ...


class UserDirectory(Protocol):
    """The identity provider's users, administered by the platform (Cognito admin APIs)."""

    def create(
        self,
        username: str,
        *,
        tenant_id: str,
        groups: Collection[str] = (),
        email: str | None = None,
        password: str | None = None,
    ) -> DirectoryUser:
        """Create a user whose tenant attribute is ``tenant_id``, in ``groups`` (created when
        missing). Without ``password`` the provider e-mails an invitation with a temporary one;
        with it, the password is set permanently (local stack and tests). AlreadyExistsError if the
        username is taken, InvalidInputError for a value the provider refuses."""
        ...

    def get(self, username: str) -> DirectoryUser:
        """The user; NotFoundError if there is none."""
        ...

    def sign_out(self, username: str) -> None:
        """Revoke the user's refresh tokens (their ID tokens live until they expire)."""
        ...


class ProbeWatchStore(Protocol):
    """The probe guard's record of each device (:class:`ProbeWatch`), shared by every container."""

    def get(self, tenant_id: str, device_id: str) -> ProbeWatch:
        """The device's record, strongly consistent (version 0 and empty if it has none)."""
        ...

    def save(self, watch: ProbeWatch) -> bool:
        """Store ``watch`` as version ``watch.version + 1`` if the stored one is still
        ``watch.version``; False (nothing written) if another write came first."""
        ...

    def get_many(self, tenant_id: str, device_ids: Collection[str]) -> dict[str, ProbeWatch]:
        """The records of those devices that have one, by device id (for listings)."""
        ...
