"""Campaigns and their checkpoints: create, update, publish, end, read."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from eventface.domain.cursors import Listing
from eventface.domain.errors import InvalidInputError
from eventface.domain.model import (
    Campaign,
    CampaignStatus,
    Checkpoint,
    NotificationTexts,
    Page,
    check_update,
    end,
    publish,
    validate_campaign,
)
from eventface.services.deps import Deps


@dataclass(frozen=True, slots=True)
class CampaignChanges:
    """Fields to change; None leaves a field as it is."""

    name: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    checkpoints: tuple[Checkpoint, ...] | None = None
    stamps_required: int | None = None
    reward_text: str | None = None
    texts: NotificationTexts | None = None
    cooldown_seconds: int | None = None


def create_campaign(
    deps: Deps,
    tenant_id: str,
    campaign_id: str,
    name: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    checkpoints: tuple[Checkpoint, ...] = (),
    stamps_required: int = 1,
    reward_text: str = "",
    texts: NotificationTexts | None = None,
    cooldown_seconds: int | None = None,
) -> Campaign:
    """Create a draft campaign (cooldown from the policy unless given).

    AlreadyExistsError if the id is taken, InvalidInputError if invalid.
    """
    campaign = validate_campaign(
        Campaign(
            tenant_id=tenant_id,
            campaign_id=campaign_id,
            name=name,
            starts_at=starts_at,
            ends_at=ends_at,
            status=CampaignStatus.DRAFT,
            checkpoints=checkpoints,
            stamps_required=stamps_required,
            reward_text=reward_text,
            texts=texts or NotificationTexts(),
            cooldown_seconds=deps.policy.cooldown_seconds if cooldown_seconds is None else cooldown_seconds,
        )
    )
    return deps.campaigns.add(campaign)


def update_campaign(deps: Deps, tenant_id: str, campaign_id: str, changes: CampaignChanges) -> Campaign:
    """Apply ``changes`` under the status rules (see :func:`eventface.domain.model.check_update`).

    StateConflictError if the status forbids the change or the campaign changed meanwhile.
    """
    before = deps.campaigns.get(tenant_id, campaign_id)
    values = {k: getattr(changes, k) for k in CampaignChanges.__dataclass_fields__}
    after = replace(before, **{k: v for k, v in values.items() if v is not None})
    return deps.campaigns.save(check_update(before, after))


def add_checkpoint(deps: Deps, tenant_id: str, campaign_id: str, checkpoint: Checkpoint) -> Campaign:
    """Add a checkpoint (draft or live campaign); InvalidInputError if the id is taken."""
    before = deps.campaigns.get(tenant_id, campaign_id)
    if before.checkpoint(checkpoint.checkpoint_id) is not None:
        raise InvalidInputError(f"checkpoint {checkpoint.checkpoint_id} is already part of the campaign")
    after = replace(before, checkpoints=(*before.checkpoints, checkpoint))
    return deps.campaigns.save(check_update(before, after))


def remove_checkpoint(deps: Deps, tenant_id: str, campaign_id: str, checkpoint_id: str) -> Campaign:
    """Remove a checkpoint (drafts only: a live campaign's progress depends on its checkpoints)."""
    before = deps.campaigns.get(tenant_id, campaign_id)
    after = replace(
        before, checkpoints=tuple(c for c in before.checkpoints if c.checkpoint_id != checkpoint_id)
    )
    return deps.campaigns.save(check_update(before, after))


def publish_campaign(deps: Deps, tenant_id: str, campaign_id: str) -> Campaign:
    """Draft → live; StateConflictError otherwise or without enough checkpoints."""
    return deps.campaigns.save(publish(deps.campaigns.get(tenant_id, campaign_id)))


def end_campaign(deps: Deps, tenant_id: str, campaign_id: str) -> Campaign:
    """Draft or live → ended; StateConflictError if it has ended already."""
    return deps.campaigns.save(end(deps.campaigns.get(tenant_id, campaign_id)))


def get_campaign(deps: Deps, tenant_id: str, campaign_id: str) -> Campaign:
    """The campaign; NotFoundError if unknown."""
    return deps.campaigns.get(tenant_id, campaign_id)


def list_campaigns(deps: Deps, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Campaign]:
    """One page of the tenant's campaigns."""
    deps.policy.page_limit(limit)
    listing = Listing(tenant_id, "campaigns")
    return deps.cursors.page(listing, cursor, lambda at: deps.campaigns.list(tenant_id, limit, at))
