"""Campaign and checkpoint management: state rules, validation, optimistic locking."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventface.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError, StateConflictError
from eventface.domain.model import CampaignStatus, Checkpoint
from eventface.services.campaigns import CampaignChanges

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def test_create_campaign_starts_as_draft_with_policy_cooldown(world):
    # when
    campaign = world.services.create_campaign("acme", "c1", "Spring", START, START + timedelta(hours=1))
    # then
    assert campaign.status is CampaignStatus.DRAFT and campaign.version == 1
    assert campaign.cooldown_seconds == 30 and campaign.gallery_id == "acme/c1"


def test_create_campaign_twice_fails(world, make_campaign):
    # given
    make_campaign("c1")
    # when / then
    with pytest.raises(AlreadyExistsError):
        make_campaign("c1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ends_at": START}, "ends_at must be after"),
        ({"starts_at": datetime(2026, 5, 1)}, "timezone"),
        ({"name": " "}, "name"),
        ({"campaign_id": "bad id"}, "not a valid id"),
        ({"stamps_required": 0}, "from 1 to 100"),
        ({"stamps_required": 101}, "from 1 to 100"),
        ({"cooldown_seconds": 10**12}, "cooldown_seconds must be from 0 to 86400"),
        ({"cooldown_seconds": -1}, "cooldown_seconds must be from 0 to 86400"),
        ({"checkpoints": (Checkpoint("a", "A"), Checkpoint("a", "A2"))}, "unique"),
        ({"checkpoints": (Checkpoint("a", "A\u202eB"),)}, "printable"),
        ({"name": "Spring\x00"}, "printable"),
        ({"starts_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))}, "2000-01-01"),
        ({"ends_at": datetime(9999, 12, 31, tzinfo=timezone(timedelta(hours=-14)))}, "2100-01-01"),
    ],
    ids=[
        "empty-window",
        "naive-time",
        "blank-name",
        "bad-id",
        "zero-required",
        "too-many-required",
        "huge-cooldown",
        "negative-cooldown",
        "duplicate-checkpoint",
        "unprintable-checkpoint-name",
        "unprintable-name",
        "year-1",
        "year-9999",
    ],
)
def test_create_campaign_rejects_invalid(world, kwargs, match):
    # given
    values = {"tenant_id": "acme", "campaign_id": "c1", "name": "Spring", "starts_at": START}
    values |= {"ends_at": START + timedelta(hours=1)} | kwargs
    # when / then
    with pytest.raises(InvalidInputError, match=match):
        world.services.create_campaign(**values)


def test_publish_campaign_needs_enough_checkpoints(world, make_campaign):
    # given
    make_campaign(checkpoints=("gate",), required=2, live=False)
    # when / then
    with pytest.raises(StateConflictError, match="add checkpoints"):
        world.services.publish_campaign("acme", "rally")


@pytest.mark.parametrize("action", ["publish_campaign", "end_campaign"])
def test_campaign_state_changes_refused_after_end(world, make_campaign, action):
    # given
    make_campaign()
    world.services.end_campaign("acme", "rally")
    # when / then
    with pytest.raises(StateConflictError):
        getattr(world.services, action)("acme", "rally")


def test_update_campaign_live_keeps_checkpoints_and_required(world, make_campaign):
    # given
    make_campaign(required=2)
    # when / then
    with pytest.raises(StateConflictError, match="is live"):
        world.services.remove_checkpoint("acme", "rally", "gate")
    with pytest.raises(StateConflictError, match="is live"):
        world.services.update_campaign("acme", "rally", CampaignChanges(stamps_required=3))


def test_update_campaign_live_allows_texts_and_new_checkpoints(world, make_campaign):
    # given
    make_campaign(required=2)
    # when
    world.services.add_checkpoint("acme", "rally", Checkpoint("cafe", "Cafe"))
    updated = world.services.update_campaign("acme", "rally", CampaignChanges(reward_text="Free coffee"))
    # then
    assert updated.reward_text == "Free coffee" and updated.status is CampaignStatus.LIVE
    assert [c.checkpoint_id for c in updated.checkpoints] == ["gate", "hall", "roof", "cafe"]


def test_update_campaign_ended_is_refused(world, make_campaign):
    # given
    make_campaign()
    world.services.end_campaign("acme", "rally")
    # when / then
    with pytest.raises(StateConflictError, match="has ended"):
        world.services.update_campaign("acme", "rally", CampaignChanges(name="Late"))


def test_campaign_save_with_stale_version_conflicts(world, make_campaign):
    # given
    stale = make_campaign(live=False)
    world.services.update_campaign("acme", "rally", CampaignChanges(name="New"))
    # when / then
    with pytest.raises(StateConflictError, match="changed meanwhile"):
        world.campaigns.save(replace(stale, name="Lost update"))


def test_get_campaign_of_other_tenant_is_not_found(world, make_campaign):
    # given
    make_campaign()
    # when / then
    with pytest.raises(NotFoundError):
        world.services.get_campaign("other-tenant", "rally")


def test_list_history_pages_newest_first(world, make_campaign, scan_at):
    # given
    make_campaign()
    ids = []
    for _ in range(3):
        ids.append(scan_at(b"nobody").event_id)
        world.clock.advance(1)
    # when
    first = world.services.list_history("acme", "rally", limit=2)
    rest = world.services.list_history("acme", "rally", limit=2, cursor=first.cursor)
    # then
    assert [e.event_id for e in first.items + rest.items] == ids[::-1]
    assert rest.cursor is None


@pytest.mark.parametrize("limit", [0, 101])
def test_list_history_rejects_bad_limit(world, make_campaign, limit):
    # given
    make_campaign()
    # when / then
    with pytest.raises(InvalidInputError, match="limit"):
        world.services.list_history("acme", "rally", limit=limit)
