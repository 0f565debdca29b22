"""Campaign messages: a marketer's push to a segment of a campaign's participants; read them back.

:func:`send_campaign_message` decides who gets the message and writes one notification job per
participant through the message store's outbox; delivery (and the ``delivered`` / ``failed`` /
``no_endpoint`` counts) happens later, in the push consumer.

Cost of targeting
-----------------
The participants are listed a page at a time (``max_page`` of them), and each page's progress is
one batch read (``StampBook.progress_many``: on DynamoDB a strongly consistent BatchGetItem, 100
keys a call): about ``2 N / 100`` round trips for ``N`` participants.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import replace

from eventface.domain.cursors import Listing
from eventface.domain.errors import InvalidInputError, NotFoundError, StateConflictError
from eventface.domain.model import (
    Campaign,
    CampaignStatus,
    JobKind,
    NotificationJob,
    Page,
    Participant,
    Progress,
)
from eventface.domain.vip import CampaignMessage, Segment, validate_message
from eventface.services.deps import Deps


def message_job_id(tenant_id: str, campaign_id: str, message_id: str, participant_id: str) -> str:
    """The job id of one participant's copy of a message: the same for the same pair, so a retried
    enqueue of the message's jobs is deduplicated by the queue."""
    natural = "#".join((JobKind.MESSAGE.value, tenant_id, campaign_id, message_id, participant_id))
    return hashlib.sha256(natural.encode("utf-8")).hexdigest()[:64]


#: Longest client idempotency key.
MAX_IDEMPOTENCY_KEY = 128


def send_campaign_message(
    deps: Deps,
    *,
    tenant_id: str,
    campaign_id: str,
    title: Mapping[str, str],
    body: Mapping[str, str],
    segment: Segment,
    created_by: str,
    idempotency_key: str | None = None,
) -> CampaignMessage:
    """Send a message to the participants of a campaign that match ``segment``.

    Every participant is read with their progress (one progress read each; see the module's notes
    on cost), and each match gets one job; the push consumer picks the text in the participant's
    locale (else English, else the first locale given) when it sends. Participants without a push
    endpoint are targeted too: delivery counts them as ``no_endpoint``, so the marketer sees how
    many could not be reached.

    Live and ended campaigns can be messaged (thanking completers after the end is a common use);
    drafts cannot.

    Parameters
    ----------
    deps
        The ports.
    tenant_id, campaign_id
        The campaign.
    title, body
        Locale (``ja``, ``en``) → text; ``body`` needs at least one locale, ``title`` may be empty.
    segment
        Who gets it: at least ``min_stamps`` stamps, completed or not (``None``: either).
    created_by
        The user who sends it (for the record).
    idempotency_key
        The client's key for this send (e.g. the ``Idempotency-Key`` header): the same key sends
        one message, so a retry after a timeout or a partial failure queues only what is missing.

    Returns
    -------
    CampaignMessage
        The stored message, with ``targeted`` set and the delivery counts at zero.

    Raises
    ------
    NotFoundError
        The campaign does not exist.
    StateConflictError
        The campaign is a draft, or ``idempotency_key`` was used for a different message.
    InvalidInputError
        An empty body, an unsupported locale, a text too long or empty, a segment nobody can match,
        no ``created_by``.
    """
    campaign = deps.campaigns.get(tenant_id, campaign_id)
    if campaign.status is CampaignStatus.DRAFT:
        raise StateConflictError(
            f"campaign {campaign_id} is a draft: publish it before sending messages to its participants"
        )
    if not isinstance(created_by, str) or not created_by.strip():
        raise InvalidInputError("created_by is empty: pass the id of the user who sends the message")
    if segment.min_stamps > len(campaign.checkpoints):
        raise InvalidInputError(
            f"segment.min_stamps is {segment.min_stamps} but campaign {campaign_id} has only "
            f"{len(campaign.checkpoints)} checkpoints: nobody could match; lower min_stamps"
        )
    now = deps.clock.now()
    message = validate_message(
        CampaignMessage(
            tenant_id=tenant_id,
            campaign_id=campaign_id,
            message_id=_message_id(tenant_id, campaign_id, idempotency_key),
            title=dict(title),
            body=dict(body),
            segment=segment,
            created_at=now,
            created_by=created_by.strip(),
        )
    )
    # Stored trimmed, as validated (validate_message checks the trimmed texts).
    message = replace(
        message,
        title={locale: text.strip() for locale, text in message.title.items()},
        body={locale: text.strip() for locale, text in message.body.items()},
    )
    jobs: list[NotificationJob] = []
    for participant, progress in _participants_with_progress(deps, campaign):
        if not segment.matches(progress.stamps, progress.completed_at is not None):
            continue
        jobs.append(
            NotificationJob(
                job_id=message_job_id(tenant_id, campaign_id, message.message_id, participant.participant_id),
                kind=JobKind.MESSAGE,
                tenant_id=tenant_id,
                campaign_id=campaign_id,
                participant_id=participant.participant_id,
                checkpoint_id="",
                stamps=progress.stamps,
                required=campaign.stamps_required,
                created_at=now,
                message_id=message.message_id,
            )
        )
    earlier = _earlier_send(deps, message) if idempotency_key is not None else None
    if earlier is not None:
        deps.messages.queue(earlier, jobs)  # what a failed first attempt did not queue
        return earlier
    stored = replace(message, targeted=len(jobs))
    deps.messages.add(stored, jobs)
    return stored


def _message_id(tenant_id: str, campaign_id: str, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return uuid.uuid4().hex
    if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise InvalidInputError(
            f"the idempotency key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters (e.g. a UUID)"
        )
    natural = "#".join(("message", tenant_id, campaign_id, idempotency_key))
    return hashlib.sha256(natural.encode("utf-8")).hexdigest()[:32]


def _earlier_send(deps: Deps, message: CampaignMessage) -> CampaignMessage | None:
    """The message stored under the same idempotency key, if the same message; None if none."""
    try:
        earlier = deps.messages.get(message.tenant_id, message.campaign_id, message.message_id)
    except NotFoundError:
        return None
    same = (earlier.title, earlier.body, earlier.segment) == (message.title, message.body, message.segment)
    if not same:
        raise StateConflictError(
            "this idempotency key was used for another message: use a new key for a new message"
        )
    return earlier


def get_campaign_message(deps: Deps, tenant_id: str, campaign_id: str, message_id: str) -> CampaignMessage:
    """The message with its delivery counts; NotFoundError if the campaign or message is unknown."""
    deps.campaigns.get(tenant_id, campaign_id)
    return deps.messages.get(tenant_id, campaign_id, message_id)


def list_campaign_messages(
    deps: Deps, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
) -> Page[CampaignMessage]:
    """One page of a campaign's messages, newest first.

    Raises
    ------
    NotFoundError
        The campaign does not exist.
    InvalidInputError
        ``limit`` is outside 1 to the policy's page size.
    """
    deps.policy.page_limit(limit)
    listing = Listing(tenant_id, "messages", campaign_id)
    position = deps.cursors.open(listing, cursor)
    deps.campaigns.get(tenant_id, campaign_id)
    return deps.cursors.seal(listing, deps.messages.list(tenant_id, campaign_id, limit, position))


def _participants_with_progress(deps: Deps, campaign: Campaign) -> list[tuple[Participant, Progress]]:
    """Every participant of the campaign with their progress, in listing order: one listing query
    and one batch progress read per page (a store error fails the whole send before anything is
    written, so the marketer can simply retry)."""
    tenant_id, campaign_id = campaign.tenant_id, campaign.campaign_id
    found: list[tuple[Participant, Progress]] = []
    cursor: str | None = None
    while True:
        page = deps.participants.list(tenant_id, campaign_id, deps.policy.max_page, cursor)
        progress = deps.stamps.progress_many(tenant_id, campaign_id, [p.participant_id for p in page.items])
        found.extend((p, progress[p.participant_id]) for p in page.items)
        if page.cursor is None:
            return found
        cursor = page.cursor
