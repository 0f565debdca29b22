"""record_sighting: a venue camera's frame, searched for VIP members (the device is authenticated).

The answer is fast and never waits for the CRM: every face of the frame is searched in the
venue's VIP gallery; a recognised member raises an alert unless one was raised inside the venue's
dedupe window. The alert and its ``vip_enrich`` job are written in one transaction with the dedupe
lock; the consumer asks the CRM and pushes to the staff afterwards.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from eventface.domain.access import AuditEntry, AuditOutcome, PrincipalKind
from eventface.domain.errors import FaceNotFoundError, ForbiddenError, InvalidInputError
from eventface.domain.model import DeviceCredential, Identification, Probe
from eventface.domain.vip import (
    SightedFace,
    SightingResult,
    SightingWrite,
    Venue,
    VipAlert,
    VipMember,
    dedupe_key,
)
from eventface.services import probe_guard
from eventface.services.deps import Deps


@dataclass(frozen=True, slots=True)
class Sighting:
    """A frame (Type A) or one face's template computed on the device (Type B) from a venue."""

    device: DeviceCredential
    venue_id: str
    photo: bytes | None = None
    template: Probe | None = None


def record_sighting(deps: Deps, sighting: Sighting) -> SightingResult:
    """Search every face of the frame in the venue's VIP gallery; alert once per member and window.

    A frame without a face, or with nobody known, is an answer (``faces`` empty or all
    ``vip: false``), not an error. Every sighting is audited (which device searched, how many faces,
    which alerts); no image or template is kept.

    Raises
    ------
    ForbiddenError
        The device belongs to another venue (or is a checkpoint camera), sends a template without
        the Type B permission, or is blocked from sending templates by the probe guard.
    InvalidInputError, PayloadTooLargeError
        Neither or both of photo and template, an unreadable photo, a template of another model.
    TooManyRequestsError
        The device's templates are paused by the probe guard (nothing is written). The device's
        rate limit was decided by the API before the body was read.
    """
    device = sighting.device
    if device.venue_id != sighting.venue_id:
        raise ForbiddenError(
            f"device {device.device_id} is not a camera of venue {sighting.venue_id}: "
            "register it for this venue, or send its frames to its own venue"
        )
    if (sighting.photo is None) == (sighting.template is None):
        raise InvalidInputError("send either a photo or a template, not both and not neither")
    # The device's rate limit was decided by the API before the body was read (auth.limit).
    probe_guard.require_type_b(device, sighting.template)
    watcher = probe_guard.ProbeWatcher(deps, device, sighting.template)  # reads in the background
    venue = deps.venues.get(device.tenant_id, sighting.venue_id)
    deps.gallery.prefetch(venue.gallery_id)
    watcher.admit()  # a paused or blocked Type B device is refused before the search
    try:
        probes = (
            (sighting.template,)
            if sighting.template is not None
            else deps.faces.probes(sighting.photo or b"", deps.policy.max_faces_per_frame)
        )
    except FaceNotFoundError:
        probes = ()
    found = [deps.gallery.identify(venue.gallery_id, p, deps.policy.fmr_per_scan) for p in probes]
    matched = [i.participant_id for i in found if i.participant_id is not None]
    for probe, identification in zip(probes, found, strict=True):
        if identification.participant_id is None:
            watcher.unmatched(probe, identification)  # before the answer leaves (Type B only)
    members = deps.vip_members.find_many(venue.tenant_id, venue.venue_id, matched) if matched else {}
    now = deps.clock.now()
    audit = _audit(deps, device, venue, now, len(probes))
    faces: list[SightedFace] = []
    #: Member id -> the alert this frame raised for them (None: inside the window); a member seen
    #: twice in one frame is claimed once.
    raised: dict[str, str | None] = {}
    for probe, identification in zip(probes, found, strict=True):
        member = members.get(identification.participant_id or "")
        if member is None:
            faces.append(_stranger(probe))
            continue
        alert_id = None
        if member.member_id not in raised:
            alert = _alert(
                venue,
                member,
                device,
                identification,
                now=now,
                retention_days=deps.policy.alert_retention_days,
            )
            claimed = deps.alerts.claim(
                SightingWrite(
                    alert=alert,
                    dedupe_key=dedupe_key(venue.tenant_id, venue.venue_id, member.member_id),
                    dedupe_until=now + venue.dedupe_window,
                    # the first alert's transaction carries the sighting's audit entry
                    audit=None if any(raised.values()) else audit,
                )
            )
            alert_id = raised[member.member_id] = alert.alert_id if claimed else None
        faces.append(
            SightedFace(
                vip=True,
                member_id=member.member_id,
                name=member.name,
                tier=member.tier or None,
                alerted=alert_id is not None,
                alert_id=alert_id,
                masked=probe.masked,
            )
        )
    if not any(raised.values()):  # no transaction carried the audit entry
        deps.audit.append(audit)
    return SightingResult(faces=tuple(faces))


def _stranger(probe: Probe) -> SightedFace:
    return SightedFace(vip=False, masked=probe.masked)


def _alert(
    venue: Venue,
    member: VipMember,
    device: DeviceCredential,
    identification: Identification,
    *,
    now: datetime,
    retention_days: int,
) -> VipAlert:
    return VipAlert(
        tenant_id=venue.tenant_id,
        venue_id=venue.venue_id,
        alert_id=uuid.uuid4().hex,
        member_id=member.member_id,
        name=member.name,
        sighted_at=now,
        device_id=device.device_id,
        similarity=identification.similarity or 0.0,
        tier=member.tier,
        crm_customer_id=member.crm_customer_id,
        expires_at=now + timedelta(days=retention_days),
    )


def _audit(deps: Deps, device: DeviceCredential, venue: Venue, now: datetime, faces: int) -> AuditEntry:
    """Every search leaves a trace: which device searched which venue's VIPs, and when."""
    return AuditEntry(
        tenant_id=venue.tenant_id,
        entry_id=uuid.uuid4().hex,
        at=now,
        actor=f"{PrincipalKind.DEVICE.value}:{device.device_id}",
        action="sighting",
        target=f"/v1/venues/{venue.venue_id}/sightings",
        outcome=AuditOutcome.OK,
        detail=f"{faces} face(s) searched",
        expires_at=now + timedelta(days=deps.policy.audit_retention_days),
    )
