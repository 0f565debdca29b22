"""Short-lived read-through caches for the scan hot path, wrapped around the real repositories.

Every checkpoint scan reads its campaign before anything else: a DynamoDB round trip that returns
the same item for every scan of a warm container. The wrapper keeps each answer for ``ttl``
seconds (monotonic clock), so a change made elsewhere (a campaign published or ended) reaches a
warm container within ``ttl``; changes made through the same wrapper take effect at once. Device
keys are not cached: a revoked device is refused on its very next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from eventface.domain.model import Campaign, Page
from eventface.ports import CampaignRepository

K = TypeVar("K")
V = TypeVar("V")

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


class CachedCampaignRepository:
    """``get`` served from a short cache; writes go through and refresh it."""

    def __init__(self, inner: CampaignRepository, cache: TtlCache[tuple[str, str], Campaign]) -> None:
        self._inner = inner
        self._cache = cache

    def add(self, campaign: Campaign) -> Campaign:
        stored = self._inner.add(campaign)
        self._cache.forget((stored.tenant_id, stored.campaign_id))
        return stored

    def get(self, tenant_id: str, campaign_id: str) -> Campaign:
        return self._cache.get_or_load(
            (tenant_id, campaign_id), lambda: self._inner.get(tenant_id, campaign_id)
        )

    def save(self, campaign: Campaign) -> Campaign:
        try:
            return self._inner.save(campaign)
        finally:
            self._cache.forget((campaign.tenant_id, campaign.campaign_id))

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Campaign]:
        return self._inner.list(tenant_id, limit, cursor)
