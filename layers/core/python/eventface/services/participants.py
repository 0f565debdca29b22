"""Participants: register (face + nickname + consent), read progress, list, erase."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from eventface.domain.errors import InvalidInputError, StateConflictError
from eventface.domain.model import (
    CampaignStatus,
    Consent,
    ErasureReceipt,
    Page,
    Participant,
    Progress,
    check_nickname,
)
from eventface.domain.vip import LOCALES, StaffPlatform, check_push_endpoint
from eventface.services.deps import Deps


@dataclass(frozen=True, slots=True)
class Registration:
    """A registration request: the face photo, a nickname, the consent flag, an optional push token."""

    tenant_id: str
    campaign_id: str
    photo: bytes
    nickname: str
    consent: bool
    push_endpoint: str | None = None
    consent_text_version: str = "v1"
    locale: str = "en"


def register_participant(deps: Deps, registration: Registration) -> Participant:
    """Enrol the face, add its templates to the campaign's gallery, store the participant.

    Raises
    ------
    InvalidInputError
        No consent, a bad nickname or push endpoint, an unreadable photo.
    FaceQualityError
        The photo fails the quality gate; ``reasons`` says what to fix.
    FaceNotFoundError, PayloadTooLargeError, NotFoundError, StateConflictError
        No face; photo too large; unknown campaign; campaign ended.
    """
    if registration.consent is not True:
        raise InvalidInputError(
            "consent is required: the participant must agree to face recognition before registering"
        )
    nickname = check_nickname(registration.nickname)
    if registration.push_endpoint is not None:
        check_push_endpoint(registration.push_endpoint)
        platform, _, address = registration.push_endpoint.partition(":")
        if platform == StaffPlatform.WEBHOOK:
            deps.egress.check_url(address, what="push_token")
    if registration.locale not in LOCALES:
        raise InvalidInputError(f"locale must be one of {', '.join(LOCALES)}")
    campaign = deps.campaigns.get(registration.tenant_id, registration.campaign_id)
    if campaign.status is CampaignStatus.ENDED:
        raise StateConflictError(f"campaign {campaign.campaign_id} has ended: registration is closed")
    templates = deps.faces.enrol(registration.photo)
    now = deps.clock.now()
    participant = Participant(
        tenant_id=campaign.tenant_id,
        campaign_id=campaign.campaign_id,
        participant_id=uuid.uuid4().hex,
        nickname=nickname,
        consent=Consent(given=True, at=now, text_version=registration.consent_text_version),
        created_at=now,
        push_endpoint=registration.push_endpoint,
        template_count=len(templates),
        locale=registration.locale,
    )
    # Record first, gallery second: a template without a record is never matched (record_scan
    # treats it as unknown). A failed gallery write takes the record back, so a retried
    # registration does not leave a faceless participant behind (if that fails too, the record
    # is listed and erasure removes it).
    deps.participants.add(participant)
    try:
        deps.gallery.add(campaign.gallery_id, participant.participant_id, templates)
    except Exception:
        deps.participants.delete(participant.tenant_id, participant.campaign_id, participant.participant_id)
        raise
    return participant


def get_progress(
    deps: Deps, tenant_id: str, campaign_id: str, participant_id: str
) -> tuple[Participant, Progress]:
    """The participant and their stamps; NotFoundError if not registered."""
    participant = deps.participants.get(tenant_id, campaign_id, participant_id)
    return participant, deps.stamps.progress(tenant_id, campaign_id, participant_id)


def list_participants(
    deps: Deps, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
) -> Page[Participant]:
    """One page of a campaign's participants."""
    deps.campaigns.get(tenant_id, campaign_id)
    return deps.participants.list(tenant_id, campaign_id, deps.policy.page_limit(limit), cursor)


def erase_participant(deps: Deps, tenant_id: str, campaign_id: str, participant_id: str) -> ErasureReceipt:
    """Remove a participant completely (templates, stamps, history, record) and verify it.

    Idempotent: erasing an already erased participant removes nothing and still verifies. The
    record goes last, so that a failure half-way leaves something to find and erase again.

    Raises
    ------
    NotFoundError
        The campaign does not exist.
    """
    campaign = deps.campaigns.get(tenant_id, campaign_id)
    existed = deps.participants.find(tenant_id, campaign_id, participant_id) is not None
    templates_deleted = deps.gallery.delete_participant(campaign.gallery_id, participant_id)
    stamps_deleted = deps.stamps.delete_participant(tenant_id, campaign_id, participant_id)
    history_deleted = deps.history.delete_participant(tenant_id, campaign_id, participant_id)
    record_deleted = deps.participants.delete(tenant_id, campaign_id, participant_id)
    verified = (
        deps.participants.find(tenant_id, campaign_id, participant_id) is None
        and not deps.stamps.stamps(tenant_id, campaign_id, participant_id)
        and deps.stamps.progress(tenant_id, campaign_id, participant_id).stamps == 0
        and not deps.history.for_participant(tenant_id, campaign_id, participant_id)
    )
    return ErasureReceipt(
        participant_id=participant_id,
        record_deleted=record_deleted or existed,
        templates_deleted=templates_deleted,
        stamps_deleted=stamps_deleted,
        history_deleted=history_deleted,
        verified=verified,
    )
