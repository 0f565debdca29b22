"""In-memory adapters of the access-control ports: for unit tests and the offline demo.

Same contracts as :mod:`eventface.adapters.dynamo_access` (a duplicate hash or audit key is
refused, foreign ids are not found, the audit log lists newest first and is append-only), behind
one lock each. Not for production.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from eventface.adapters.memory import _page
from eventface.domain.access import ApiKey, AuditEntry
from eventface.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError, UnauthorizedError
from eventface.domain.model import Page


def _not_found(key_id: str) -> NotFoundError:
    return NotFoundError(f"API key {key_id} does not exist: check the id (list the keys to find it)")


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise InvalidInputError("times must be timezone-aware (UTC): add a timezone, e.g. 'Z'")
    return at.astimezone(UTC)


class InMemoryApiKeyRepository:
    def __init__(self) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def add(self, key: ApiKey) -> None:
        if not key.authorities:
            raise InvalidInputError("an API key must grant at least one authority")
        with self._lock:
            if key.key_hash in self._by_hash:
                raise AlreadyExistsError("this API key secret is taken: create the key again")
            self._by_hash[key.key_hash] = key

    def by_hash(self, key_hash: str) -> ApiKey | None:
        with self._lock:
            return self._by_hash.get(key_hash)

    def _find(self, tenant_id: str, key_id: str) -> ApiKey:
        found = next(
            (k for k in self._by_hash.values() if (k.tenant_id, k.key_id) == (tenant_id, key_id)), None
        )
        if found is None:
            raise _not_found(key_id)
        return found

    def get(self, tenant_id: str, key_id: str) -> ApiKey:
        with self._lock:
            return self._find(tenant_id, key_id)

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        with self._lock:
            items = sorted(
                (k for k in self._by_hash.values() if k.tenant_id == tenant_id), key=lambda k: k.key_id
            )
        return _page(items, limit, cursor)

    def revoke(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey:
        with self._lock:
            key = self._find(tenant_id, key_id)
            if key.revoked_at is not None:
                return key
            revoked = replace(key, revoked_at=at)
            self._by_hash[key.key_hash] = revoked
            return revoked

    def touch(self, key_hash: str, at: datetime) -> None:
        with self._lock:
            key = self._by_hash.get(key_hash)
            if key is not None:
                self._by_hash[key_hash] = replace(key, last_used_at=at)


class InMemoryAuditLog:
    """Append-only: there is no way to change or remove an entry."""

    def __init__(self) -> None:
        # Keyed like the DynamoDB table: (tenant, UTC time, entry id).
        self._entries: dict[tuple[str, datetime, str], AuditEntry] = {}
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> None:
        key = (entry.tenant_id, _utc(entry.at), entry.entry_id)
        with self._lock:
            if key in self._entries:
                raise AlreadyExistsError(
                    f"audit entry {entry.entry_id} exists already: audit entries are never overwritten"
                )
            self._entries[key] = entry

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
        low = _utc(since) if since is not None else None
        high = _utc(until) if until is not None else None
        if low is not None and high is not None and low > high:
            raise InvalidInputError("since must not be after until: swap them or widen the range")
        with self._lock:
            matching = [
                (key, entry)
                for key, entry in self._entries.items()
                if key[0] == tenant_id
                and (low is None or key[1] >= low)
                and (high is None or key[1] < high)
                and (actor is None or entry.actor == actor)
                and (action is None or entry.action == action)
            ]
        newest_first = [entry for _, entry in sorted(matching, key=lambda pair: pair[0], reverse=True)]
        return _page(newest_first, limit, cursor)


@dataclass(frozen=True, slots=True)
class StaticClaims:
    """What a fake identity provider says about a token."""

    sub: str
    username: str
    groups: tuple[str, ...] = ()
    claims: dict[str, object] = field(default_factory=dict)


class StaticTokenVerifier:
    """A fake identity provider: known token strings map to claims; any other is refused."""

    def __init__(self, tokens: dict[str, StaticClaims] | None = None) -> None:
        self.tokens = dict(tokens or {})

    def verify(self, token: str) -> StaticClaims:
        claims = self.tokens.get(token)
        if claims is None:
            raise UnauthorizedError("the token is not valid: sign in again")
        return claims
