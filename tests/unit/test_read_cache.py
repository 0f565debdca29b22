"""The scan path's read-through caches: fresh within their TTL, invalidated by their own writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from eventface.adapters.memory import InMemoryCampaignRepository
from eventface.adapters.read_cache import CachedCampaignRepository, TtlCache
from eventface.domain.model import Campaign, CampaignStatus, Checkpoint

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


class Ticker:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class CountingCampaigns(InMemoryCampaignRepository):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, tenant_id: str, campaign_id: str) -> Campaign:
        self.gets += 1
        return super().get(tenant_id, campaign_id)


def _campaign() -> Campaign:
    return Campaign(
        tenant_id="t",
        campaign_id="c",
        name="Rally",
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=2),
        status=CampaignStatus.DRAFT,
        checkpoints=(Checkpoint("gate", "Gate"),),
        stamps_required=1,
    )


@pytest.fixture
def cached():
    inner = CountingCampaigns()
    ticker = Ticker()
    repo = CachedCampaignRepository(inner, TtlCache(5.0, ticker))
    repo.add(_campaign())
    return inner, repo, ticker


def test_cached_campaigns_serve_repeat_reads_within_ttl(cached) -> None:
    # given
    inner, repo, ticker = cached
    # when
    repo.get("t", "c")
    ticker.t = 4.9
    repo.get("t", "c")
    # then
    assert inner.gets == 1


def test_cached_campaigns_reload_after_ttl(cached) -> None:
    # given
    inner, repo, ticker = cached
    repo.get("t", "c")
    # when
    ticker.t = 5.1
    repo.get("t", "c")
    # then
    assert inner.gets == 2


def test_cached_campaigns_own_write_is_visible_at_once(cached) -> None:
    # given a cached draft campaign
    _, repo, _ = cached
    draft = repo.get("t", "c")
    # when it is published through the same repository
    repo.save(replace(draft, status=CampaignStatus.LIVE))
    # then the next read sees it
    assert repo.get("t", "c").status is CampaignStatus.LIVE


def test_cached_venue_repository_serves_reads_and_forgets_its_own_writes() -> None:
    # given
    from eventface.adapters.memory_vip import InMemoryVenueRepository
    from eventface.adapters.read_cache import CachedVenueRepository
    from eventface.domain.vip import Venue

    class CountingVenues(InMemoryVenueRepository):
        gets = 0

        def get(self, tenant_id: str, venue_id: str) -> Venue:
            self.gets += 1
            return super().get(tenant_id, venue_id)

    inner, ticker = CountingVenues(), Ticker()
    venues = CachedVenueRepository(inner, TtlCache(5.0, ticker))
    stored = venues.add(Venue("t", "v", "Hotel", NOW))
    # when: read twice, changed through the wrapper, read again
    first, again = venues.get("t", "v"), venues.get("t", "v")
    changed = venues.save(replace(stored, dedupe_minutes=0))
    after = venues.get("t", "v")
    # then
    assert first == again == stored and inner.gets == 2
    assert after == changed and after.dedupe_minutes == 0
