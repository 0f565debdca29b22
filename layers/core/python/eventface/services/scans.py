"""record_scan: the hot path of a checkpoint camera (the device is already authenticated)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from eventface.domain.errors import FaceNotFoundError, ForbiddenError, InvalidInputError
from eventface.domain.model import (
    REFUSAL_MESSAGES,
    Campaign,
    Device,
    Identification,
    JobKind,
    NotificationJob,
    Participant,
    Probe,
    RecognitionEvent,
    ScanOutcome,
    ScanResult,
    Stamp,
    StampOutcome,
    event_expiry,
    job_id_for,
)
from eventface.services.deps import Deps

_MESSAGES = {
    ScanOutcome.UNKNOWN: "Face not recognised: register at the info desk to join the rally.",
    ScanOutcome.NO_FACE: "No face found: look at the camera and try again.",
    ScanOutcome.COOLDOWN: "Just scanned: this stamp is being processed.",
    ScanOutcome.ALREADY_STAMPED: "Already stamped at this checkpoint.",
}


@dataclass(frozen=True, slots=True)
class Scan:
    """A photo (Type A) or a template computed on the device (Type B) sent to a checkpoint."""

    device: Device
    checkpoint_id: str
    photo: bytes | None = None
    template: Probe | None = None


def record_scan(deps: Deps, scan: Scan) -> ScanResult:
    """Identify the face of a scan in the campaign's gallery and apply the stamp rules.

    Every scan is written to history, matched or not. A live campaign inside its window awards at
    most one stamp per participant and checkpoint; the stamp that reaches the required count
    completes the rally, exactly once. A stamp and a completion each put a notification job on
    the queue. Refusals (window, status, foreign checkpoint) and unknown faces are answers, not
    errors.

    Raises
    ------
    ForbiddenError
        The device is bound to another checkpoint.
    InvalidInputError, PayloadTooLargeError
        Neither or both of photo and template, an unreadable photo, a template of another model.
    """
    device = scan.device
    if scan.checkpoint_id != device.checkpoint_id:
        raise ForbiddenError(
            f"device {device.device_id} is bound to checkpoint {device.checkpoint_id}, not "
            f"{scan.checkpoint_id}: send scans to the device's own checkpoint"
        )
    if (scan.photo is None) == (scan.template is None):
        raise InvalidInputError("send either a photo or a template, not both and not neither")
    campaign = deps.campaigns.get(device.tenant_id, device.campaign_id)
    now = deps.clock.now()
    recorder = _Recorder(deps, campaign, device, now)

    refusal = campaign.refusal_reason(scan.checkpoint_id, now)
    if refusal is not None:
        return recorder.answer(
            ScanOutcome.REFUSED,
            ScanResult(recognised=False, reason=refusal.value, message=REFUSAL_MESSAGES[refusal]),
        )

    try:
        probe = scan.template if scan.template is not None else deps.faces.probe(scan.photo or b"")
    except FaceNotFoundError:
        return recorder.answer(ScanOutcome.NO_FACE, _plain(ScanOutcome.NO_FACE, campaign))
    identification = deps.gallery.identify(campaign.gallery_id, probe, deps.policy.fmr_per_scan)
    scored = _plain(ScanOutcome.UNKNOWN, campaign, identification, probe)
    participant = (
        deps.participants.find(campaign.tenant_id, campaign.campaign_id, identification.participant_id)
        if identification.participant_id is not None
        else None
    )
    if participant is None:
        # Unknown face, or a participant erased after the gallery was read: nobody to stamp.
        return recorder.answer(ScanOutcome.UNKNOWN, scored)

    recognised = replace(scored, recognised=True, reason=None, message=None, nickname=participant.nickname)
    cooldown_key = "#".join(
        (campaign.tenant_id, campaign.campaign_id, participant.participant_id, device.checkpoint_id)
    )
    if not deps.cooldown.acquire(cooldown_key, now, campaign.cooldown_seconds):
        progress = deps.stamps.progress(campaign.tenant_id, campaign.campaign_id, participant.participant_id)
        result = replace(
            recognised,
            already_stamped=device.checkpoint_id in progress.checkpoint_ids,
            stamps=progress.stamps,
            completed=progress.completed_at is not None,
            reason=ScanOutcome.COOLDOWN.value,
            message=_MESSAGES[ScanOutcome.COOLDOWN],
        )
        return recorder.answer(ScanOutcome.COOLDOWN, result, participant)

    stamp = Stamp(
        tenant_id=campaign.tenant_id,
        campaign_id=campaign.campaign_id,
        participant_id=participant.participant_id,
        checkpoint_id=device.checkpoint_id,
        device_id=device.device_id,
        at=now,
    )
    outcome = deps.stamps.record(stamp, campaign.stamps_required)
    result = replace(
        recognised,
        new_stamp=outcome.new_stamp,
        already_stamped=not outcome.new_stamp,
        stamps=outcome.progress.stamps,
        completed=outcome.progress.completed_at is not None,
        message=None if outcome.new_stamp else _MESSAGES[ScanOutcome.ALREADY_STAMPED],
    )
    kind = ScanOutcome.STAMPED if outcome.new_stamp else ScanOutcome.ALREADY_STAMPED
    answer = recorder.answer(kind, result, participant)
    _queue_jobs(deps, campaign, participant, stamp, outcome)
    return answer


def _plain(
    outcome: ScanOutcome,
    campaign: Campaign,
    identification: Identification | None = None,
    probe: Probe | None = None,
) -> ScanResult:
    return ScanResult(
        recognised=False,
        required=campaign.stamps_required,
        reason=outcome.value,
        message=_MESSAGES.get(outcome),
        similarity=identification.similarity if identification else None,
        threshold=identification.threshold if identification else None,
        masked=probe.masked if probe else None,
    )


class _Recorder:
    """Writes the one history event of a scan and stamps its id on the answer."""

    def __init__(self, deps: Deps, campaign: Campaign, device: Device, now: datetime) -> None:
        self._deps = deps
        self._campaign = campaign
        self._device = device
        self._now = now

    def answer(
        self, outcome: ScanOutcome, result: ScanResult, participant: Participant | None = None
    ) -> ScanResult:
        event_id = uuid.uuid4().hex
        self._deps.history.record(
            RecognitionEvent(
                tenant_id=self._campaign.tenant_id,
                campaign_id=self._campaign.campaign_id,
                event_id=event_id,
                at=self._now,
                device_id=self._device.device_id,
                checkpoint_id=self._device.checkpoint_id,
                outcome=outcome,
                participant_id=participant.participant_id if participant else None,
                similarity=result.similarity,
                threshold=result.threshold,
                masked=result.masked,
                reason=result.reason,
                expires_at=event_expiry(outcome, self._now, self._deps.policy.history_ttl),
            )
        )
        return replace(result, required=self._campaign.stamps_required, event_id=event_id)


def _queue_jobs(
    deps: Deps, campaign: Campaign, participant: Participant, stamp: Stamp, outcome: StampOutcome
) -> None:
    kinds = ([JobKind.STAMP] if outcome.new_stamp else []) + (
        [JobKind.COMPLETION] if outcome.completed_now else []
    )
    for kind in kinds:
        text = campaign.texts.render(
            kind,
            nickname=participant.nickname,
            stamps=outcome.progress.stamps,
            required=campaign.stamps_required,
            reward=campaign.reward_text,
        )
        deps.queue.put(
            NotificationJob(
                job_id=job_id_for(kind, stamp),
                kind=kind,
                tenant_id=campaign.tenant_id,
                campaign_id=campaign.campaign_id,
                participant_id=participant.participant_id,
                checkpoint_id=stamp.checkpoint_id,
                stamps=outcome.progress.stamps,
                required=campaign.stamps_required,
                text=text,
                push_endpoint=participant.push_endpoint,
                created_at=stamp.at,
            )
        )
