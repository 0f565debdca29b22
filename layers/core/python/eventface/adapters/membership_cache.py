"""The membership check's per-container cache, wrapped around the real directory.

Every request of a signed-in user checks their membership of the tenant their token names. The
answer (a membership, or none) is kept for ``ttl`` seconds (``EVENTFACE_MEMBERSHIP_CACHE_SECONDS``,
60 by default, monotonic clock), so a warm container reads DynamoDB about once a minute per user
and tenant. The bound this gives: **a membership revoked or granted elsewhere applies within
``ttl`` seconds** in every container; grants and revocations made through this wrapper apply at
once in its own container.
"""

from __future__ import annotations

from eventface.adapters.read_cache import TtlCache
from eventface.domain.access import Membership
from eventface.ports_access import MembershipDirectory


class CachedMembershipDirectory:
    """``get`` served from a short cache (misses too); writes go through and forget the entry."""

    def __init__(
        self, inner: MembershipDirectory, cache: TtlCache[tuple[str, str], Membership | None]
    ) -> None:
        self._inner = inner
        self._cache = cache

    def get(self, tenant_id: str, user_sub: str) -> Membership | None:
        return self._cache.get_or_load((tenant_id, user_sub), lambda: self._inner.get(tenant_id, user_sub))

    def grant(self, membership: Membership) -> Membership:
        try:
            return self._inner.grant(membership)
        finally:
            self._cache.forget((membership.tenant_id, membership.user_sub))

    def revoke(self, tenant_id: str, user_sub: str) -> bool:
        try:
            return self._inner.revoke(tenant_id, user_sub)
        finally:
            self._cache.forget((tenant_id, user_sub))

    def of_user(self, user_sub: str) -> tuple[Membership, ...]:
        return self._inner.of_user(user_sub)
