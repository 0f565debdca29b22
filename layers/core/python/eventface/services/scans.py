"""record_scan: the hot path of a checkpoint camera (the device is already authenticated)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from eventface.domain.access import AuditEntry, AuditOutcome, PrincipalKind
from eventface.domain.errors import FaceNotFoundError, ForbiddenError, InvalidInputError, StateConflictError
from eventface.domain.model import (
    REFUSAL_MESSAGES,
    Campaign,
    DeviceCredential,
    Identification,
    JobKind,
    NotificationJob,
    Participant,
    Probe,
    RecognitionEvent,
    ScanOutcome,
    ScanResult,
    ScanWrite,
    Stamp,
    StampOutcome,
    event_expiry,
    job_id_for,
)
from eventface.services import probe_guard
from eventface.services.deps import Deps

#: Rounds of read-decide-write lost to concurrent scans of one participant before giving up (two
#: checkpoints at the same instant lose at most once each; the bound is for pathological load).
MAX_ATTEMPTS: Final = 25
_MESSAGES = {
    ScanOutcome.UNKNOWN: "Face not recognised: register at the info desk to join the rally.",
    ScanOutcome.NO_FACE: "No face found: look at the camera and try again.",
    ScanOutcome.COOLDOWN: "Just scanned: this stamp is being processed.",
    ScanOutcome.ALREADY_STAMPED: "Already stamped at this checkpoint.",
}


@dataclass(frozen=True, slots=True)
class Scan:
    """A photo (Type A) or a template computed on the device (Type B) sent to a checkpoint."""

    device: DeviceCredential
    checkpoint_id: str
    photo: bytes | None = None
    template: Probe | None = None


def record_scan(deps: Deps, scan: Scan) -> ScanResult:
    """Identify the face of a scan in the campaign's gallery and apply the stamp rules.

    Every scan is written to history, matched or not. A live campaign inside its window awards
    at most one stamp per participant and checkpoint; the stamp that reaches the required count
    completes the rally, exactly once. A stamp and a completion each put a notification job in
    the outbox, in the same atomic write as the stamp (a relay moves it to the queue). Refusals
    (window, status, foreign checkpoint) and unknown faces are answers, not errors.

    Raises
    ------
    ForbiddenError
        The device is bound to another checkpoint, sends a template without the Type B permission,
        or is blocked from sending templates by the probe guard.
    TooManyRequestsError
        Over its rate limit, or its templates are paused by the probe guard.
    InvalidInputError, PayloadTooLargeError
        Neither or both of photo and template, an unreadable photo, a template of another model.
    StateConflictError
        The participant was scanned concurrently so often that no round could commit.
    """
    device = scan.device
    if device.venue_id is not None:
        raise ForbiddenError(
            f"device {device.device_id} is a camera of venue {device.venue_id}: send its frames to "
            f"/v1/venues/{device.venue_id}/sightings"
        )
    if scan.checkpoint_id != device.checkpoint_id:
        raise ForbiddenError(
            f"device {device.device_id} is bound to checkpoint {device.checkpoint_id}, not "
            f"{scan.checkpoint_id}: send scans to the device's own checkpoint"
        )
    if (scan.photo is None) == (scan.template is None):
        raise InvalidInputError("send either a photo or a template, not both and not neither")
    # The device's rate limit was decided by the API before the body was read (auth.limit).
    probe_guard.require_type_b(device, scan.template)
    watcher = probe_guard.ProbeWatcher(deps, device, scan.template)  # reads in the background
    campaign = deps.campaigns.get(device.tenant_id, device.campaign_id)
    now = deps.clock.now()
    recorder = _Recorder(deps, campaign, device, now)

    refusal = campaign.refusal_reason(scan.checkpoint_id, now)
    if refusal is not None:
        return recorder.answer(
            ScanOutcome.REFUSED,
            ScanResult(recognised=False, reason=refusal.value, message=REFUSAL_MESSAGES[refusal]),
        )

    # The gallery's revalidation (a conditional GET) runs while the engine computes the probe.
    deps.gallery.prefetch(campaign.gallery_id)
    watcher.admit()  # a paused or blocked Type B device is refused before the search
    try:
        probe = scan.template if scan.template is not None else deps.faces.probe(scan.photo or b"")
    except FaceNotFoundError:
        return recorder.answer(ScanOutcome.NO_FACE, _plain(ScanOutcome.NO_FACE, campaign))
    identification = deps.gallery.identify(campaign.gallery_id, probe, deps.policy.fmr_per_scan)
    recorder.identification = identification  # the history keeps the score; the answer does not
    scored = _plain(ScanOutcome.UNKNOWN, campaign, probe)
    if identification.participant_id is None:
        watcher.unmatched(probe, identification)  # before the answer leaves
        return recorder.answer(ScanOutcome.UNKNOWN, scored)
    return _apply_stamp_rules(deps, recorder, identification.participant_id, scored)


def _apply_stamp_rules(
    deps: Deps, recorder: _Recorder, participant_id: str, scored: ScanResult
) -> ScanResult:
    """Cooldown, one stamp per checkpoint, completion once: decided on one read, written at once.

    A lost race (another scan of the same participant committed between our read and our write)
    writes nothing; the next round reads what that scan wrote and decides again.
    """
    campaign, device, now = recorder.campaign, recorder.device, recorder.now
    cooldown_key = "#".join((campaign.tenant_id, campaign.campaign_id, participant_id, device.checkpoint_id))
    for _ in range(MAX_ATTEMPTS):
        state = deps.ledger.read(campaign.tenant_id, campaign.campaign_id, participant_id, cooldown_key)
        participant, progress = state.participant, state.progress
        if participant is None:
            # Erased after the gallery was read: nobody to stamp.
            return recorder.answer(ScanOutcome.UNKNOWN, scored)
        recognised = replace(
            scored, recognised=True, reason=None, message=None, nickname=participant.nickname
        )
        if state.cooling(now):
            result = replace(
                recognised,
                already_stamped=device.checkpoint_id in progress.checkpoint_ids,
                stamps=progress.stamps,
                completed=progress.completed_at is not None,
                reason=ScanOutcome.COOLDOWN.value,
                message=_MESSAGES[ScanOutcome.COOLDOWN],
            )
            return recorder.answer(ScanOutcome.COOLDOWN, result, participant)
        outcome = progress.with_stamp(device.checkpoint_id, now, campaign.stamps_required)
        result = replace(
            recognised,
            new_stamp=outcome.new_stamp,
            already_stamped=not outcome.new_stamp,
            stamps=outcome.progress.stamps,
            completed=outcome.progress.completed_at is not None,
            message=None if outcome.new_stamp else _MESSAGES[ScanOutcome.ALREADY_STAMPED],
        )
        kind = ScanOutcome.STAMPED if outcome.new_stamp else ScanOutcome.ALREADY_STAMPED
        event = recorder.event(kind, result, participant)
        stamp = Stamp(
            tenant_id=campaign.tenant_id,
            campaign_id=campaign.campaign_id,
            participant_id=participant_id,
            checkpoint_id=device.checkpoint_id,
            device_id=device.device_id,
            at=now,
        )
        write = ScanWrite(
            event=event,
            audit=recorder.audit_for(event),
            cooldown_key=cooldown_key,
            cooldown_until=now + campaign.cooldown,
            version=state.version,
        )
        if outcome.new_stamp:
            jobs = _jobs(campaign, participant, stamp, outcome)
            write = replace(write, stamp=stamp, progress=outcome.progress, jobs=jobs)
        if deps.ledger.commit(write):
            return recorder.finish(result, event)
    raise StateConflictError(
        f"too many concurrent scans for participant {participant_id}: scan again in a moment"
    )


def _plain(outcome: ScanOutcome, campaign: Campaign, probe: Probe | None = None) -> ScanResult:
    return ScanResult(
        recognised=False,
        required=campaign.stamps_required,
        reason=outcome.value,
        message=_MESSAGES.get(outcome),
        masked=probe.masked if probe else None,
    )


class _Recorder:
    """Makes the one history event of a scan (and its audit entry) and stamps its id on the answer."""

    def __init__(self, deps: Deps, campaign: Campaign, device: DeviceCredential, now: datetime) -> None:
        self._deps = deps
        self.campaign = campaign
        self.device = device
        self.now = now
        #: The gallery's answer, once searched: its score goes to history, never to the device.
        self.identification: Identification | None = None

    def event(
        self, outcome: ScanOutcome, result: ScanResult, participant: Participant | None = None
    ) -> RecognitionEvent:
        return RecognitionEvent(
            tenant_id=self.campaign.tenant_id,
            campaign_id=self.campaign.campaign_id,
            event_id=uuid.uuid4().hex,
            at=self.now,
            device_id=self.device.device_id,
            checkpoint_id=self.device.checkpoint_id,
            outcome=outcome,
            participant_id=participant.participant_id if participant else None,
            similarity=self.identification.similarity if self.identification else None,
            threshold=self.identification.threshold if self.identification else None,
            masked=result.masked,
            reason=result.reason,
            expires_at=event_expiry(outcome, self.now, self._deps.policy.history_ttl),
        )

    def audit_for(self, event: RecognitionEvent) -> AuditEntry:
        """Every search leaves a trace: which device searched, when, and how it ended (no face)."""
        return AuditEntry(
            tenant_id=event.tenant_id,
            entry_id=uuid.uuid4().hex,
            at=event.at,
            actor=f"{PrincipalKind.DEVICE.value}:{event.device_id}",
            action="scan",
            target=f"/v1/checkpoints/{event.checkpoint_id}/scans",
            outcome=AuditOutcome.OK,
            detail=f"event {event.event_id}: {event.outcome.value}",
            expires_at=event.at + timedelta(days=self._deps.policy.audit_retention_days),
        )

    def finish(self, result: ScanResult, event: RecognitionEvent) -> ScanResult:
        return replace(result, required=self.campaign.stamps_required, event_id=event.event_id)

    def answer(
        self, outcome: ScanOutcome, result: ScanResult, participant: Participant | None = None
    ) -> ScanResult:
        """Record the event (with its audit entry) on its own, for a scan that writes nothing else."""
        event = self.event(outcome, result, participant)
        self._deps.history.record(event, self.audit_for(event))
        return self.finish(result, event)


def _jobs(
    campaign: Campaign, participant: Participant, stamp: Stamp, outcome: StampOutcome
) -> tuple[NotificationJob, ...]:
    kinds = [JobKind.STAMP] + ([JobKind.COMPLETION] if outcome.completed_now else [])
    return tuple(
        NotificationJob(
            job_id=job_id_for(kind, stamp),
            kind=kind,
            tenant_id=campaign.tenant_id,
            campaign_id=campaign.campaign_id,
            participant_id=participant.participant_id,
            checkpoint_id=stamp.checkpoint_id,
            stamps=outcome.progress.stamps,
            required=campaign.stamps_required,
            created_at=stamp.at,
        )
        for kind in kinds
    )
