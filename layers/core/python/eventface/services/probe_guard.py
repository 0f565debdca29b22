"""The probe guard on the scan and sighting paths (rules: :mod:`eventface.domain.probe_guard`).

A device may send templates (Type B) only if a terminal manager allowed it. For such a request the
device's record is read on a background thread while the gallery is brought up to date; a device
that is paused (429) or blocked (403) is refused before any search. A template that matched nobody
is accounted for *before* the answer leaves: the record is written (conditionally: containers that
race write one after the other), and a probe that trips the guard gets a refusal instead of its
answer. A trip is audited (action ``devices.probe_abuse``) and flags the device on
``GET /v1/devices`` until a tenant admin clears it.
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from eventface.domain.access import AuditEntry, AuditOutcome, PrincipalKind
from eventface.domain.errors import ForbiddenError, TooManyRequestsError
from eventface.domain.model import Device, DeviceCredential, Identification, Page, Probe
from eventface.domain.probe_guard import (
    ProbeWatch,
    RefusalKind,
    cleared,
    observe,
    refusal,
    status,
)
from eventface.services.deps import Deps

#: The audit action of a trip (filter ``GET /v1/audit?action=devices.probe_abuse``).
ACTION: Final = "devices.probe_abuse"
#: Rounds of read-observe-write lost to concurrent probes of one device before refusing this one.
MAX_ATTEMPTS: Final = 5
#: Where the records are read (threads start on first use).
_BACKGROUND: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe-watch")


def require_type_b(device: DeviceCredential, template: Probe | None) -> None:
    """ForbiddenError if ``device`` sends a template without the Type B permission."""
    if template is not None and not device.type_b:
        raise ForbiddenError(
            f"device {device.device_id} is not allowed to send templates (Type B): send photos, or "
            f'have a terminal manager allow it with PATCH /v1/devices/{device.device_id} {{"type_b": true}}'
        )


class ProbeWatcher:
    """One request's part of the guard; does nothing for a photo (Type A)."""

    def __init__(self, deps: Deps, device: DeviceCredential, template: Probe | None) -> None:
        self._deps = deps
        self._device = device
        self._pending: Future[ProbeWatch] | None = None
        if template is not None:
            self._pending = _BACKGROUND.submit(deps.probe_watch.get, device.tenant_id, device.device_id)
        self._watch: ProbeWatch | None = None

    def admit(self) -> None:
        """Wait for the device's record; 429 while it is paused, 403 while it is blocked."""
        if self._pending is None:
            return
        self._watch = self._pending.result()
        _refuse(self._watch, self._deps.clock.now())

    def unmatched(self, probe: Probe, identification: Identification) -> None:
        """Account for a template that matched nobody; a refusal if it trips the guard (or if the
        device is paused or blocked by a concurrent probe)."""
        if self._pending is None:
            return
        watch = self._watch if self._watch is not None else self._pending.result()
        store, policy = self._deps.probe_watch, self._deps.policy.probe_guard
        for _ in range(MAX_ATTEMPTS):
            now = self._deps.clock.now()
            seen = observe(watch, probe.vector, identification.similarity, now, policy)
            if store.save(seen.watch):
                break
            watch = store.get(self._device.tenant_id, self._device.device_id)
            _refuse(watch, now)
        else:
            raise TooManyRequestsError(
                "too many templates from this device at once: send them one after the other", 1
            )
        if seen.trip is not None:
            self._audit(seen.watch, now)
            _refuse(seen.watch, now)

    def _audit(self, watch: ProbeWatch, now: datetime) -> None:
        device = self._device
        blocked = watch.quarantined_at is not None
        outcome = (
            "Type B blocked until a tenant admin clears it"
            if blocked
            else f"Type B paused until {watch.throttled_until.isoformat() if watch.throttled_until else '-'}"
        )
        self._deps.audit.append(
            AuditEntry(
                tenant_id=device.tenant_id,
                entry_id=uuid.uuid4().hex,
                at=now,
                actor=f"{PrincipalKind.DEVICE.value}:{device.device_id}",
                action=ACTION,
                target=f"/v1/devices/{device.device_id}",
                outcome=AuditOutcome.DENIED,
                detail=f"trip {watch.flags}: {watch.reason}; {outcome}",
                expires_at=now + timedelta(days=self._deps.policy.audit_retention_days),
            )
        )


def _refuse(watch: ProbeWatch, now: datetime) -> None:
    # The device is told what to do, not which limit it hit (that would help a search tune itself).
    found = refusal(watch, now)
    if found is None:
        return
    if found.kind is RefusalKind.QUARANTINED:
        raise ForbiddenError(
            f"device {watch.device_id} is blocked from sending templates (Type B) after repeated "
            "probe abuse: a tenant admin must review it and clear it with "
            f"DELETE /v1/devices/{watch.device_id}/probe-abuse; photos are still accepted"
        )
    raise TooManyRequestsError(
        f"device {watch.device_id} sent too many templates that matched nobody: templates (Type B) "
        f"are paused, wait {found.retry_after} s and retry; photos are still accepted",
        found.retry_after,
    )


def with_status(deps: Deps, page: Page[Device]) -> Page[Device]:
    """The devices of ``page`` with what the guard knows of each (one batch read)."""
    if not page.items:
        return page
    tenant_id = page.items[0].tenant_id
    watches = deps.probe_watch.get_many(tenant_id, [d.device_id for d in page.items])
    now = deps.clock.now()
    items = tuple(replace(d, probe_status=status(watches.get(d.device_id), now)) for d in page.items)
    return replace(page, items=items)


def status_of(deps: Deps, device: Device) -> Device:
    """``device`` with what the guard knows of it."""
    watch = deps.probe_watch.get(device.tenant_id, device.device_id)
    return replace(device, probe_status=status(watch, deps.clock.now()))


def clear(deps: Deps, tenant_id: str, device_id: str) -> Device:
    """A tenant admin reviewed the device: lift its pause or block and clear its flag.

    Raises
    ------
    NotFoundError
        The device does not exist (in this tenant).
    """
    device = deps.devices.get(tenant_id, device_id)
    for _ in range(MAX_ATTEMPTS):
        watch = deps.probe_watch.get(tenant_id, device_id)
        if deps.probe_watch.save(cleared(watch, deps.clock.now())):
            break
    else:
        raise TooManyRequestsError("the device is probing right now: clear it again in a moment", 1)
    return status_of(deps, device)
