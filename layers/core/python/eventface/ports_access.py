"""Ports of access control: API keys, the audit log, sign-in tokens, rate counters (``Protocol``).

Kept apart from :mod:`eventface.ports` so the access-control work does not touch the scan path's
ports. Adapters: ``eventface.adapters.dynamo_access`` (DynamoDB), ``eventface.adapters.memory_access``
(in-memory fakes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol

from eventface.domain.access import ApiKey, AuditEntry
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
    """Counts requests per key in fixed windows of ``window_seconds``."""

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """Count one request for ``key`` in the window containing ``now``.

        Returns
        -------
        int | None
            None while the window's count (this request included) is at most ``limit``; else the
            whole seconds until the window ends (at least 1), for ``Retry-After``.
        """
        ...

    def peek(self, key: str, window_seconds: int, now: datetime) -> int:
        """The count of ``key`` in the window containing ``now``, without counting (0 if none)."""
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
