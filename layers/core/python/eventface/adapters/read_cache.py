"""Short-lived read-through caches for the scan hot path, wrapped around the real repositories.

Every checkpoint scan reads its campaign, and every VIP sighting and alert enrichment its venue,
before anything else: a DynamoDB round trip that returns the same item for every request of a warm
container. The wrapper keeps each answer for ``ttl``
seconds (monotonic clock), so a change made elsewhere (a campaign published or ended) reaches a
warm container within ``ttl``; changes made through the same wrapper take effect at once. Device
keys are not cached: a revoked device is refused on its very next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from eventface.domain.model import Campaign, Page
from eventface.domain.vip import Venue
from eventface.ports import CampaignRepository
from eventface.ports_vip import VenueRepository

K = TypeVar("K")
V = TypeVar("V")
E = TypeVar("E")

DEFAULT_TTL_SECONDS = 5.0
_MAX_ENTRIES = 10_000


class TtlCache(Generic[K, V]):
    """A bounded map whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + self._ttl, value)
        return value

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _Repository(Protocol[E]):
    """The shape shared by the campaign and venue repositories (entities keyed by tenant and id)."""

    def add(self, entity: E, /) -> E: ...
    def get(self, tenant_id: str, entity_id: str, /) -> E: ...
    def save(self, entity: E, /) -> E: ...
    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None, /) -> Page[E]: ...


class CachedRepository(Generic[E]):
    """``get`` served from a short cache; writes go through and refresh it.

    Parameters
    ----------
    inner
        The repository (campaigns, venues).
    cache
        Keyed by ``key(entity)``: (tenant id, entity id).
    key
        An entity's (tenant id, id).
    """

    def __init__(
        self, inner: _Repository[E], cache: TtlCache[tuple[str, str], E], key: Callable[[E], tuple[str, str]]
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._key = key

    def add(self, entity: E) -> E:
        stored = self._inner.add(entity)
        self._cache.forget(self._key(stored))
        return stored

    def get(self, tenant_id: str, entity_id: str) -> E:
        return self._cache.get_or_load((tenant_id, entity_id), lambda: self._inner.get(tenant_id, entity_id))

    def save(self, entity: E) -> E:
        try:
            return self._inner.save(entity)
        finally:
            self._cache.forget(self._key(entity))

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[E]:
        return self._inner.list(tenant_id, limit, cursor)


def CachedCampaignRepository(  # noqa: N802 - a constructor by use
    inner: CampaignRepository, cache: TtlCache[tuple[str, str], Campaign]
) -> CachedRepository[Campaign]:
    """Campaign reads of the scan path, cached."""
    return CachedRepository(inner, cache, lambda c: (c.tenant_id, c.campaign_id))


def CachedVenueRepository(  # noqa: N802 - a constructor by use
    inner: VenueRepository, cache: TtlCache[tuple[str, str], Venue]
) -> CachedRepository[Venue]:
    """Venue reads of the sighting path and of vip_enrich, cached."""
    return CachedRepository(inner, cache, lambda v: (v.tenant_id, v.venue_id))
