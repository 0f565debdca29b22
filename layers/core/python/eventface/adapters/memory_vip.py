"""In-memory adapters of the VIP and messaging ports (``eventface.ports_vip``), for unit tests.

Same contracts as the DynamoDB adapters (conditional dedupe, first acknowledgement wins, outbox
jobs beside every alert and message), one lock each. Not for production.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from eventface.adapters.memory import AuditAppender, _page
from eventface.domain.errors import AlreadyExistsError, NotFoundError, StateConflictError
from eventface.domain.model import NotificationJob, Page
from eventface.domain.secrets import tenant_secret_prefix
from eventface.domain.vip import (
    AlertJob,
    CampaignMessage,
    ProfileStatus,
    SightingWrite,
    StaffDevice,
    Venue,
    VipAlert,
    VipMember,
    dedupe_key,
)


class InMemoryVenueRepository:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Venue] = {}
        self._lock = threading.Lock()

    def add(self, venue: Venue) -> Venue:
        with self._lock:
            key = (venue.tenant_id, venue.venue_id)
            if key in self._items:
                raise AlreadyExistsError(f"venue {venue.venue_id} exists already: choose another id")
            self._items[key] = stored = replace(venue, version=1)
            return stored

    def get(self, tenant_id: str, venue_id: str) -> Venue:
        found = self._items.get((tenant_id, venue_id))
        if found is None:
            raise NotFoundError(f"venue {venue_id} does not exist: check the id or create it")
        return found

    def save(self, venue: Venue) -> Venue:
        with self._lock:
            current = self._items.get((venue.tenant_id, venue.venue_id))
            if current is None:
                raise NotFoundError(f"venue {venue.venue_id} does not exist: create it first")
            if current.version != venue.version:
                raise StateConflictError(f"venue {venue.venue_id} was changed meanwhile: reload it and retry")
            self._items[(venue.tenant_id, venue.venue_id)] = stored = replace(
                venue, version=venue.version + 1
            )
            return stored

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Venue]:
        items = sorted((v for (t, _), v in self._items.items() if t == tenant_id), key=lambda v: v.venue_id)
        return _page(items, limit, cursor)


class InMemoryVipMemberRepository:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], VipMember] = {}
        self._lock = threading.Lock()

    def add(self, member: VipMember) -> None:
        with self._lock:
            key = (member.tenant_id, member.venue_id, member.member_id)
            if key in self._items:
                raise AlreadyExistsError(
                    f"member {member.member_id} exists already in venue {member.venue_id}"
                )
            self._items[key] = member

    def get(self, tenant_id: str, venue_id: str, member_id: str) -> VipMember:
        found = self.find(tenant_id, venue_id, member_id)
        if found is None:
            raise NotFoundError(f"member {member_id} is not a VIP of venue {venue_id}")
        return found

    def find(self, tenant_id: str, venue_id: str, member_id: str) -> VipMember | None:
        return self._items.get((tenant_id, venue_id, member_id))

    def find_many(self, tenant_id: str, venue_id: str, member_ids: Sequence[str]) -> dict[str, VipMember]:
        found = (self.find(tenant_id, venue_id, m) for m in set(member_ids))
        return {m.member_id: m for m in found if m is not None}

    def list(
        self, tenant_id: str, venue_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[VipMember]:
        items = sorted(
            (m for (t, v, _), m in self._items.items() if (t, v) == (tenant_id, venue_id)),
            key=lambda m: m.member_id,
        )
        return _page(items, limit, cursor)

    def delete(self, tenant_id: str, venue_id: str, member_id: str) -> bool:
        with self._lock:
            return self._items.pop((tenant_id, venue_id, member_id), None) is not None


class InMemoryStaffDeviceRepository:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], StaffDevice] = {}
        self._lock = threading.Lock()

    def add(self, device: StaffDevice) -> None:
        with self._lock:
            key = (device.tenant_id, device.venue_id, device.staff_device_id)
            if key in self._items:
                raise AlreadyExistsError(f"staff device {device.staff_device_id} is subscribed already")
            self._items[key] = device

    def list(self, tenant_id: str, venue_id: str) -> tuple[StaffDevice, ...]:
        return tuple(
            sorted(
                (d for (t, v, _), d in self._items.items() if (t, v) == (tenant_id, venue_id)),
                key=lambda d: d.staff_device_id,
            )
        )

    def delete(self, tenant_id: str, venue_id: str, staff_device_id: str) -> bool:
        with self._lock:
            return self._items.pop((tenant_id, venue_id, staff_device_id), None) is not None

    def disable(self, tenant_id: str, venue_id: str, staff_device_id: str, at: datetime) -> None:
        with self._lock:
            key = (tenant_id, venue_id, staff_device_id)
            if key in self._items and self._items[key].disabled_at is None:
                self._items[key] = replace(self._items[key], disabled_at=at)


class InMemoryAlertStore:
    """Alerts, their dedupe locks, and ``jobs`` (the outbox: what the relay would queue);
    ``audit`` receives a claimed sighting's audit entry when given."""

    def __init__(self, audit: AuditAppender | None = None) -> None:
        self._alerts: dict[tuple[str, str, str], VipAlert] = {}
        self._locks: dict[str, datetime] = {}
        self.jobs: list[AlertJob] = []
        self.audit = audit
        self._lock = threading.Lock()

    def claim(self, write: SightingWrite) -> bool:
        alert = write.alert
        key = (alert.tenant_id, alert.venue_id, alert.alert_id)
        with self._lock:
            if key in self._alerts:
                return False
            if write.dedupe_until > alert.sighted_at:  # dedupe 0: no lock, every frame alerts
                held = self._locks.get(write.dedupe_key)
                if held is not None and held > alert.sighted_at:
                    return False
                self._locks[write.dedupe_key] = write.dedupe_until
            self._alerts[key] = alert
            self.jobs.append(AlertJob(alert.tenant_id, alert.venue_id, alert.alert_id, alert.sighted_at))
            if write.audit is not None and self.audit is not None:
                self.audit.append(write.audit)
            return True

    def get(self, tenant_id: str, venue_id: str, alert_id: str) -> VipAlert:
        found = self._alerts.get((tenant_id, venue_id, alert_id))
        if found is None:
            raise NotFoundError(f"alert {alert_id} does not exist at venue {venue_id}")
        return found

    def list(
        self,
        tenant_id: str,
        venue_id: str,
        limit: int = 50,
        cursor: str | None = None,
        *,
        since: datetime | None = None,
    ) -> Page[VipAlert]:
        items = sorted(
            (
                a
                for (t, v, _), a in self._alerts.items()
                if (t, v) == (tenant_id, venue_id) and (since is None or a.sighted_at >= since)
            ),
            key=lambda a: (a.sighted_at, a.alert_id),
            reverse=True,
        )
        return _page(items, limit, cursor)

    def delete_member(self, tenant_id: str, venue_id: str, member_id: str) -> int:
        with self._lock:
            doomed = [
                key
                for key, alert in self._alerts.items()
                if key[:2] == (tenant_id, venue_id) and alert.member_id == member_id
            ]
            for key in doomed:
                del self._alerts[key]
            self._locks.pop(dedupe_key(tenant_id, venue_id, member_id), None)
            return len(doomed)

    def _update(self, tenant_id: str, venue_id: str, alert_id: str, **changes: object) -> VipAlert:
        with self._lock:
            current = self.get(tenant_id, venue_id, alert_id)
            self._alerts[(tenant_id, venue_id, alert_id)] = updated = replace(current, **changes)  # type: ignore[arg-type]
            return updated

    def enrich(
        self,
        tenant_id: str,
        venue_id: str,
        alert_id: str,
        *,
        status: ProfileStatus,
        profile: Mapping[str, str] | None,
        reason: str,
        at: datetime,
    ) -> VipAlert:
        return self._update(
            tenant_id,
            venue_id,
            alert_id,
            profile_status=status,
            profile=dict(profile) if profile is not None else None,
            profile_reason=reason,
            enriched_at=at,
        )

    def pushed(
        self, tenant_id: str, venue_id: str, alert_id: str, *, delivered: int, failed: int, at: datetime
    ) -> VipAlert:
        return self._update(tenant_id, venue_id, alert_id, pushed_at=at, delivered=delivered, failed=failed)

    def acknowledge(self, tenant_id: str, venue_id: str, alert_id: str, *, by: str, at: datetime) -> VipAlert:
        with self._lock:
            current = self.get(tenant_id, venue_id, alert_id)
            if current.acknowledged_by is not None:
                return current
            self._alerts[(tenant_id, venue_id, alert_id)] = updated = replace(
                current, acknowledged_by=by, acknowledged_at=at
            )
            return updated

    def flag_false_match(
        self, tenant_id: str, venue_id: str, alert_id: str, *, by: str, at: datetime, note: str = ""
    ) -> VipAlert:
        with self._lock:
            current = self.get(tenant_id, venue_id, alert_id)
            if current.false_match_by is not None:
                return current
            self._alerts[(tenant_id, venue_id, alert_id)] = updated = replace(
                current, false_match_by=by, false_match_at=at, false_match_note=note
            )
            return updated


class InMemoryMessageStore:
    """Campaign messages with their counts; ``jobs`` is the outbox of their per-participant jobs."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], CampaignMessage] = {}
        self.jobs: list[NotificationJob] = []
        self._lock = threading.Lock()

    def add(self, message: CampaignMessage, jobs: Sequence[NotificationJob]) -> None:
        with self._lock:
            key = (message.tenant_id, message.campaign_id, message.message_id)
            if key in self._items:
                raise AlreadyExistsError(f"message {message.message_id} exists already")
            self._items[key] = message
        self.queue(message, jobs)

    def queue(self, message: CampaignMessage, jobs: Sequence[NotificationJob]) -> None:
        with self._lock:
            queued = {job.job_id for job in self.jobs}
            self.jobs.extend(job for job in jobs if job.job_id not in queued)

    def get(self, tenant_id: str, campaign_id: str, message_id: str) -> CampaignMessage:
        found = self._items.get((tenant_id, campaign_id, message_id))
        if found is None:
            raise NotFoundError(f"message {message_id} does not exist in campaign {campaign_id}")
        return found

    def list(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[CampaignMessage]:
        items = sorted(
            (m for (t, c, _), m in self._items.items() if (t, c) == (tenant_id, campaign_id)),
            key=lambda m: (m.created_at, m.message_id),
            reverse=True,
        )
        return _page(items, limit, cursor)

    def count(self, tenant_id: str, campaign_id: str, message_id: str, outcome: str) -> None:
        if outcome not in ("delivered", "failed", "no_endpoint"):
            raise ValueError(f"unknown outcome {outcome!r}: delivered, failed or no_endpoint")
        with self._lock:
            current = self.get(tenant_id, campaign_id, message_id)
            counted = {outcome: getattr(current, outcome) + 1}
            self._items[(tenant_id, campaign_id, message_id)] = replace(current, **counted)


class InMemorySecretCatalog:
    """Secret names held in a set; a tenant sees those under its prefix."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.secret_names = set(names)

    def names(self, tenant_id: str) -> tuple[str, ...]:
        prefix = tenant_secret_prefix(tenant_id)
        return tuple(sorted(n for n in self.secret_names if n.startswith(prefix)))
