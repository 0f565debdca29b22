"""Participants: register (face + nickname + consent), read progress, list, erase."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from eventface.domain.cursors import Listing
from eventface.domain.errors import InvalidInputError, StateConflictError
from eventface.domain.model import (
    STORE_HISTORY,
    STORE_NOTIFICATION_JOBS,
    STORE_RECORD,
    STORE_STAMPS,
    CampaignStatus,
    Consent,
    ErasureReceipt,
    ErasureState,
    Page,
    Participant,
    Progress,
    StoreErasure,
    check_nickname,
    checked_erasure,
    template_erasures,
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
    deps.policy.page_limit(limit)
    listing = Listing(tenant_id, "participants", campaign_id)
    position = deps.cursors.open(listing, cursor)
    deps.campaigns.get(tenant_id, campaign_id)
    return deps.cursors.seal(listing, deps.participants.list(tenant_id, campaign_id, limit, position))


def erase_participant(deps: Deps, tenant_id: str, campaign_id: str, participant_id: str) -> ErasureReceipt:
    """Remove a participant completely (templates, stamps, history, record) and verify it.

    Idempotent: erasing an already erased participant removes nothing and still verifies. The
    record goes last, so that a failure half-way leaves something to find and erase again.

    The receipt says, per store, what is gone now and what is still pending until when: the
    person is never matched again from now on, but the bytes of their templates leave the
    gallery's stored objects only with the next sweeps (``policy.gallery_sweep_period``) and
    the readers' grace period (``policy.gallery_retired_grace``).

    Raises
    ------
    NotFoundError
        The campaign does not exist.
    """
    campaign = deps.campaigns.get(tenant_id, campaign_id)
    erased_at = deps.clock.now()
    existed = deps.participants.find(tenant_id, campaign_id, participant_id) is not None
    templates_deleted = deps.gallery.delete_participant(campaign.gallery_id, participant_id)
    stamps_deleted = deps.stamps.delete_participant(tenant_id, campaign_id, participant_id)
    history_deleted = deps.history.delete_participant(tenant_id, campaign_id, participant_id)
    record_deleted = deps.participants.delete(tenant_id, campaign_id, participant_id)
    record_gone = deps.participants.find(tenant_id, campaign_id, participant_id) is None
    stamps_gone = (
        not deps.stamps.stamps(tenant_id, campaign_id, participant_id)
        and deps.stamps.progress(tenant_id, campaign_id, participant_id).stamps == 0
    )
    history_gone = not deps.history.for_participant(tenant_id, campaign_id, participant_id)
    return ErasureReceipt(
        participant_id=participant_id,
        record_deleted=record_deleted or existed,
        templates_deleted=templates_deleted,
        stamps_deleted=stamps_deleted,
        history_deleted=history_deleted,
        verified=record_gone and stamps_gone and history_gone,
        erased_at=erased_at,
        stores=(
            checked_erasure(STORE_RECORD, record_gone),
            checked_erasure(STORE_STAMPS, stamps_gone),
            checked_erasure(STORE_HISTORY, history_gone),
            *template_erasures(
                templates_deleted,
                erased_at,
                sweep_period=deps.policy.gallery_sweep_period,
                grace=deps.policy.gallery_retired_grace,
            ),
            StoreErasure(
                STORE_NOTIFICATION_JOBS,
                ErasureState.ERASED,
                detail="queued push jobs hold ids only (no nickname, text or push endpoint); "
                "a job of an erased participant is dropped unsent",
            ),
        ),
    )
