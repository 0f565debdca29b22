"""In-memory adapters of every port (``InMemory*``): for unit tests and the offline demo.

They keep the same contracts as the real adapters (conditional writes, exactly-once completion
under threads, newest-first history with cursors), behind one lock each. Not for production.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

from eventface.domain.access import AuditEntry
from eventface.domain.cursors import CursorSeal
from eventface.domain.errors import (
    AlreadyExistsError,
    FaceNotFoundError,
    FaceQualityError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    QualityReason,
    StateConflictError,
    UnauthorizedError,
)
from eventface.domain.model import (
    Campaign,
    CredentialKind,
    Device,
    DeviceCredential,
    GallerySweep,
    HistoryQuery,
    Identification,
    NotificationJob,
    Page,
    Participant,
    Probe,
    Progress,
    RecognitionEvent,
    ScanState,
    ScanWrite,
    Stamp,
    Template,
)

T = TypeVar("T")
#: The cursor key of in-memory wiring (tests, demos): a fixed value, so never for production.
TEST_CURSOR_KEY: Final = b"in-memory cursor key (tests only)"


def _page(items: Sequence[T], limit: int, cursor: str | None) -> Page[T]:
    """Offset cursors over an already ordered list."""
    try:
        start = int(cursor) if cursor else 0
    except ValueError:
        raise InvalidInputError(
            "cursor is not valid: pass the cursor of the previous page unchanged"
        ) from None
    chunk = tuple(items[start : start + limit])
    end = start + len(chunk)
    return Page(items=chunk, cursor=str(end) if end < len(items) else None)


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


class InMemoryCampaignRepository:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Campaign] = {}
        self._lock = threading.Lock()

    def add(self, campaign: Campaign) -> Campaign:
        with self._lock:
            key = (campaign.tenant_id, campaign.campaign_id)
            if key in self._items:
                raise AlreadyExistsError(f"campaign {campaign.campaign_id} exists already: choose another id")
            stored = replace(campaign, version=1)
            self._items[key] = stored
            return stored

    def get(self, tenant_id: str, campaign_id: str) -> Campaign:
        found = self._items.get((tenant_id, campaign_id))
        if found is None:
            raise NotFoundError(f"campaign {campaign_id} does not exist: check the id or create it")
        return found

    def save(self, campaign: Campaign) -> Campaign:
        with self._lock:
            key = (campaign.tenant_id, campaign.campaign_id)
            current = self._items.get(key)
            if current is None:
                raise NotFoundError(f"campaign {campaign.campaign_id} does not exist: create it first")
            if current.version != campaign.version:
                raise StateConflictError(
                    f"campaign {campaign.campaign_id} was changed meanwhile: reload it and try again"
                )
            stored = replace(campaign, version=campaign.version + 1)
            self._items[key] = stored
            return stored

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Campaign]:
        items = sorted(
            (c for (t, _), c in self._items.items() if t == tenant_id), key=lambda c: c.campaign_id
        )
        return _page(items, limit, cursor)


class InMemoryParticipantRepository:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], Participant] = {}
        self._lock = threading.Lock()

    def add(self, participant: Participant) -> None:
        with self._lock:
            key = (participant.tenant_id, participant.campaign_id, participant.participant_id)
            if key in self._items:
                raise AlreadyExistsError(f"participant {participant.participant_id} exists already")
            self._items[key] = participant

    def get(self, tenant_id: str, campaign_id: str, participant_id: str) -> Participant:
        found = self.find(tenant_id, campaign_id, participant_id)
        if found is None:
            raise NotFoundError(f"participant {participant_id} is not registered in campaign {campaign_id}")
        return found

    def find(self, tenant_id: str, campaign_id: str, participant_id: str) -> Participant | None:
        return self._items.get((tenant_id, campaign_id, participant_id))

    def list(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[Participant]:
        items = sorted(
            (p for (t, c, _), p in self._items.items() if (t, c) == (tenant_id, campaign_id)),
            key=lambda p: p.participant_id,
        )
        return _page(items, limit, cursor)

    def delete(self, tenant_id: str, campaign_id: str, participant_id: str) -> bool:
        with self._lock:
            return self._items.pop((tenant_id, campaign_id, participant_id), None) is not None

    def forget_push_endpoint(
        self, tenant_id: str, campaign_id: str, participant_id: str, endpoint: str
    ) -> bool:
        with self._lock:
            key = (tenant_id, campaign_id, participant_id)
            current = self._items.get(key)
            if current is None or current.push_endpoint != endpoint:
                return False
            self._items[key] = replace(current, push_endpoint=None)
            return True


class InMemoryStampBook:
    def __init__(self) -> None:
        self._stamps: dict[tuple[str, str, str, str], Stamp] = {}
        self._progress: dict[tuple[str, str, str], Progress] = {}
        self._versions: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def version(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        return self._versions.get((tenant_id, campaign_id, participant_id), 0)

    def put(self, stamp: Stamp, progress: Progress, version: int) -> bool:
        """Store ``stamp`` and ``progress`` if the stamp is new and the progress at ``version``."""
        with self._lock:
            who = (stamp.tenant_id, stamp.campaign_id, stamp.participant_id)
            if (*who, stamp.checkpoint_id) in self._stamps or self._versions.get(who, 0) != version:
                return False
            self._stamps[(*who, stamp.checkpoint_id)] = stamp
            self._progress[who] = progress
            self._versions[who] = version + 1
            return True

    def progress(self, tenant_id: str, campaign_id: str, participant_id: str) -> Progress:
        who = (tenant_id, campaign_id, participant_id)
        return self._progress.get(who) or Progress(*who)

    def progress_many(
        self, tenant_id: str, campaign_id: str, participant_ids: Sequence[str]
    ) -> dict[str, Progress]:
        return {p: self.progress(tenant_id, campaign_id, p) for p in participant_ids}

    def stamps(self, tenant_id: str, campaign_id: str, participant_id: str) -> list[Stamp]:
        who = (tenant_id, campaign_id, participant_id)
        return sorted((s for k, s in self._stamps.items() if k[:3] == who), key=lambda s: s.checkpoint_id)

    def delete_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        with self._lock:
            who = (tenant_id, campaign_id, participant_id)
            keys = [k for k in self._stamps if k[:3] == who]
            for key in keys:
                del self._stamps[key]
            self._progress.pop(who, None)
            self._versions.pop(who, None)
            return len(keys)


class AuditAppender(Protocol):
    def append(self, entry: AuditEntry) -> None: ...


class InMemoryHistoryLog:
    def __init__(self, audit: AuditAppender | None = None) -> None:
        self.events: list[RecognitionEvent] = []
        self.audit = audit
        self._lock = threading.Lock()

    def record(self, event: RecognitionEvent, audit: AuditEntry | None = None) -> None:
        with self._lock:
            self.events.append(event)
            if audit is not None and self.audit is not None:
                self.audit.append(audit)

    def list(
        self,
        tenant_id: str,
        campaign_id: str,
        limit: int = 50,
        cursor: str | None = None,
        *,
        query: HistoryQuery | None = None,
    ) -> Page[RecognitionEvent]:
        wanted = query or HistoryQuery()
        mine = [
            e
            for e in self.events
            if (e.tenant_id, e.campaign_id) == (tenant_id, campaign_id) and wanted.matches(e)
        ]
        return _page(sorted(mine, key=lambda e: (e.at, e.event_id), reverse=True), limit, cursor)

    def for_participant(
        self, tenant_id: str, campaign_id: str, participant_id: str
    ) -> tuple[RecognitionEvent, ...]:
        who = (tenant_id, campaign_id, participant_id)
        return tuple(e for e in self.events if (e.tenant_id, e.campaign_id, e.participant_id) == who)

    def delete_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        with self._lock:
            doomed = self.for_participant(tenant_id, campaign_id, participant_id)
            self.events = [e for e in self.events if e not in doomed]
            return len(doomed)


class InMemoryDeviceRegistry:
    def __init__(self) -> None:
        self.devices: dict[tuple[str, str], Device] = {}
        self.credentials: dict[str, DeviceCredential] = {}
        self._lock = threading.Lock()

    def add(self, device: Device, activation: DeviceCredential) -> None:
        with self._lock:
            if (
                device.tenant_id,
                device.device_id,
            ) in self.devices or activation.secret_hash in self.credentials:
                raise AlreadyExistsError(f"device {device.device_id} exists already")
            self.devices[(device.tenant_id, device.device_id)] = device
            self.credentials[activation.secret_hash] = activation

    def credential(self, secret_hash: str) -> DeviceCredential | None:
        return self.credentials.get(secret_hash)

    def get(self, tenant_id: str, device_id: str) -> Device:
        found = self.devices.get((tenant_id, device_id))
        if found is None:
            raise NotFoundError(f"device {device_id} does not exist: check the id")
        return found

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Device]:
        mine = sorted((d for (t, _), d in self.devices.items() if t == tenant_id), key=lambda d: d.device_id)
        return _page(mine, limit, cursor)

    def _drop(self, device: Device, kind: CredentialKind, keep: str | None = None) -> None:
        """Delete the device's credentials of ``kind`` (unused ones, for codes) except ``keep``."""
        for hashed, credential in list(self.credentials.items()):
            if (
                (credential.tenant_id, credential.device_id) == (device.tenant_id, device.device_id)
                and credential.kind is kind
                and credential.used_at is None
                and hashed != keep
            ):
                del self.credentials[hashed]

    def issue_activation(self, activation: DeviceCredential) -> None:
        with self._lock:
            device = self.get(activation.tenant_id, activation.device_id)
            if device.revoked:
                raise NotFoundError(f"device {activation.device_id} was revoked: register a new device")
            self._drop(device, CredentialKind.ACTIVATION)  # the earlier unredeemed code stops working
            self.credentials[activation.secret_hash] = activation

    def activate(self, activation: DeviceCredential, key: DeviceCredential, at: datetime) -> Device:
        with self._lock:
            stored = self.credentials.get(activation.secret_hash)
            device = self.devices.get((activation.tenant_id, activation.device_id))
            if stored is None or stored.used_at is not None or device is None or device.revoked:
                raise UnauthorizedError(
                    "this activation code is no longer valid: ask the operator for a new one"
                )
            self.credentials[activation.secret_hash] = replace(stored, used_at=at)
            self._drop(device, CredentialKind.KEY)  # a replaced terminal: every old key stops now
            self.credentials[key.secret_hash] = replace(key, type_b=device.type_b)
            device = replace(device, key_hash=key.secret_hash, activated_at=at)
            self.devices[(device.tenant_id, device.device_id)] = device
            return device

    def rotate(self, old: DeviceCredential, new: DeviceCredential, grace_until: datetime) -> Device:
        with self._lock:
            device = self.get(old.tenant_id, old.device_id)
            stored = self.credentials.get(old.secret_hash)
            if device.revoked or stored is None:
                raise UnauthorizedError(
                    "this device was revoked: its keys no longer work; register a new device"
                )
            if device.key_hash != old.secret_hash:
                raise StateConflictError(
                    "this device key was rotated meanwhile by another request: use the key that "
                    "rotation returned (or ask the operator for a new activation code)"
                )
            self._drop(device, CredentialKind.KEY, keep=old.secret_hash)  # one key in grace at a time
            self.credentials[old.secret_hash] = replace(stored, expires_at=grace_until)
            self.credentials[new.secret_hash] = replace(new, type_b=device.type_b)
            device = replace(device, key_hash=new.secret_hash)
            self.devices[(device.tenant_id, device.device_id)] = device
            return device

    def revoke(self, tenant_id: str, device_id: str, at: datetime) -> Device:
        with self._lock:
            found = self.get(tenant_id, device_id)
            device = replace(found, revoked_at=found.revoked_at or at)
            self.devices[(tenant_id, device_id)] = device
            for hashed, credential in list(self.credentials.items()):
                if (credential.tenant_id, credential.device_id) == (tenant_id, device_id):
                    del self.credentials[hashed]
            return device

    def set_type_b(self, tenant_id: str, device_id: str, type_b: bool) -> Device:
        with self._lock:
            device = self.get(tenant_id, device_id)
            if device.revoked:
                raise StateConflictError(f"device {device_id} was revoked: register a new device")
            device = replace(device, type_b=type_b)
            self.devices[(tenant_id, device_id)] = device
            for hashed, credential in list(self.credentials.items()):
                if (credential.tenant_id, credential.device_id) == (tenant_id, device_id):
                    self.credentials[hashed] = replace(credential, type_b=type_b)
            return device

    def touch(self, tenant_id: str, device_id: str, at: datetime) -> None:
        with self._lock:
            device = self.devices.get((tenant_id, device_id))
            if device is not None:
                self.devices[(tenant_id, device_id)] = replace(device, last_seen_at=at)


class InMemoryGallery:
    """Exact cosine search with a fixed threshold (the real port's threshold grows with N)."""

    def __init__(self, model_id: str = "fake-model", threshold: float = 0.5) -> None:
        self.model_id = model_id
        self.threshold = threshold
        self.templates: dict[str, dict[str, tuple[Template, ...]]] = {}
        self._lock = threading.Lock()

    def add(self, gallery_id: str, participant_id: str, templates: tuple[Template, ...]) -> None:
        with self._lock:
            people = self.templates.setdefault(gallery_id, {})
            people[participant_id] = people.get(participant_id, ()) + templates

    def delete_participant(self, gallery_id: str, participant_id: str) -> bool:
        with self._lock:
            people = self.templates.get(gallery_id)
            if people is None:
                return False
            people.pop(participant_id, None)
            return True

    def prefetch(self, gallery_id: str) -> None:
        return None

    def sweep_erasures(self, grace: timedelta) -> GallerySweep:
        """Nothing to sweep: a deletion here removes the templates at once."""
        return GallerySweep()

    def identify(self, gallery_id: str, probe: Probe, fmr_per_scan: float) -> Identification:
        if probe.model_id != self.model_id:
            raise InvalidInputError(
                f"the template was made by {probe.model_id}, the gallery holds {self.model_id} templates: "
                "update the device's model"
            )
        best: tuple[float, str] | None = None
        for person, templates in self.templates.get(gallery_id, {}).items():
            for template in templates:
                if template.kind != "plain":
                    continue
                score = sum(a * b for a, b in zip(probe.vector, template.vector, strict=True))
                if best is None or score > best[0]:
                    best = (score, person)
        if best is None:
            return Identification(participant_id=None, similarity=None, threshold=self.threshold)
        matched = best[1] if best[0] >= self.threshold else None
        return Identification(participant_id=matched, similarity=best[0], threshold=self.threshold)


class InMemoryScanLedger:
    """The scan's read and atomic write over the in-memory participants, stamps and history;
    ``jobs`` is the outbox (what the relay would put on the queue)."""

    def __init__(
        self,
        participants: InMemoryParticipantRepository,
        stamps: InMemoryStampBook,
        history: InMemoryHistoryLog,
    ) -> None:
        self._participants = participants
        self._stamps = stamps
        self._history = history
        self._cooldowns: dict[str, datetime] = {}
        self.jobs: list[NotificationJob] = []
        self._lock = threading.Lock()

    def read(self, tenant_id: str, campaign_id: str, participant_id: str, cooldown_key: str) -> ScanState:
        with self._lock:
            who = (tenant_id, campaign_id, participant_id)
            return ScanState(
                participant=self._participants.find(*who),
                progress=self._stamps.progress(*who),
                version=self._stamps.version(*who),
                cooldown_until=self._cooldowns.get(cooldown_key),
            )

    def commit(self, write: ScanWrite) -> bool:
        with self._lock:
            held = self._cooldowns.get(write.cooldown_key)
            if held is not None and held > write.event.at:
                return False
            stamp, progress = write.stamp, write.progress
            if stamp is not None and (
                progress is None or not self._stamps.put(stamp, progress, write.version)
            ):
                return False
            self._cooldowns[write.cooldown_key] = write.cooldown_until
            self._history.record(write.event, write.audit)
            self.jobs.extend(write.jobs)
            return True


def in_memory_ports(**overrides: Any) -> dict[str, Any]:
    """A fake for every port, the ledger wired to the same participants, stamps and history;
    ``overrides`` (port name -> fake) replace the defaults and are wired in too."""
    from eventface.adapters import memory_access  # it builds on this module

    audit = overrides.get("audit") or memory_access.InMemoryAuditLog()
    ports: dict[str, Any] = {
        "clock": FixedClock(),
        "campaigns": InMemoryCampaignRepository(),
        "participants": InMemoryParticipantRepository(),
        "stamps": InMemoryStampBook(),
        "history": InMemoryHistoryLog(audit),
        "audit": audit,
        "devices": InMemoryDeviceRegistry(),
        "gallery": InMemoryGallery(),
        "faces": InMemoryFaceAnalyzer(),
        **overrides,
    }
    ports.setdefault("ledger", InMemoryScanLedger(ports["participants"], ports["stamps"], ports["history"]))
    ports.setdefault("api_keys", memory_access.InMemoryApiKeyRepository())
    ports.setdefault("tokens", memory_access.StaticTokenVerifier())
    from eventface.adapters import memory_memberships

    ports.setdefault("memberships", memory_memberships.InMemoryMembershipDirectory())
    ports.setdefault("users", memory_memberships.InMemoryUserDirectory())
    from eventface.adapters.rate_limit import InMemoryRateLimiter

    ports.setdefault("limiter", InMemoryRateLimiter())
    from eventface.adapters.probe_watch import InMemoryProbeWatchStore

    ports.setdefault("probe_watch", InMemoryProbeWatchStore())
    from eventface.adapters import memory_vip

    ports.setdefault("venues", memory_vip.InMemoryVenueRepository())
    ports.setdefault("vip_members", memory_vip.InMemoryVipMemberRepository())
    ports.setdefault("staff_devices", memory_vip.InMemoryStaffDeviceRepository())
    ports.setdefault("alerts", memory_vip.InMemoryAlertStore(audit))
    ports.setdefault("messages", memory_vip.InMemoryMessageStore())
    ports.setdefault("cursors", CursorSeal(TEST_CURSOR_KEY))
    ports.setdefault("secrets", memory_vip.InMemorySecretCatalog())
    from eventface.adapters.egress import EgressGuard, StaticResolver
    from eventface.domain.egress import EgressRules

    # The real rules with a resolver that knows no names (no DNS in unit tests).
    ports.setdefault("egress", EgressGuard(EgressRules(), resolver=StaticResolver()))
    return ports


def unit_vector(*values: float) -> tuple[float, ...]:
    """``values`` scaled to unit length (handy for fake faces)."""
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


@dataclass
class InMemoryFaceAnalyzer:
    """Photos are looked up, not analysed: ``faces[photo] = vector`` says what a photo shows.

    A photo not in ``faces`` has no face; ``quality_reasons[photo]`` makes its enrolment fail;
    ``masked`` lists photos whose face wears a mask; ``groups[photo]`` lists the photos whose
    faces a group frame shows (largest first).
    """

    model_id: str = "fake-model"
    faces: dict[bytes, tuple[float, ...]] = field(default_factory=dict)
    quality_reasons: dict[bytes, tuple[QualityReason, ...]] = field(default_factory=dict)
    masked: set[bytes] = field(default_factory=set)
    groups: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    max_bytes: int = 6 * 1024 * 1024

    def _vector(self, photo: bytes) -> tuple[float, ...]:
        if len(photo) > self.max_bytes:
            raise PayloadTooLargeError(f"the photo is over {self.max_bytes} bytes: send a smaller JPEG")
        vector = self.faces.get(photo)
        if vector is None:
            raise FaceNotFoundError("no face found: look at the camera, in good light, and try again")
        return vector

    def probe(self, photo: bytes) -> Probe:
        return Probe(vector=self._vector(photo), model_id=self.model_id, masked=photo in self.masked)

    def probes(self, photo: bytes, max_faces: int) -> tuple[Probe, ...]:
        members = self.groups.get(photo, (photo,))
        if len(photo) > self.max_bytes:
            raise PayloadTooLargeError(f"the photo is over {self.max_bytes} bytes: send a smaller JPEG")
        return tuple(self.probe(member) for member in members[:max_faces])

    def enrol(self, photo: bytes) -> tuple[Template, ...]:
        vector = self._vector(photo)
        reasons = self.quality_reasons.get(photo, ())
        if reasons:
            raise FaceQualityError("; ".join(r.message for r in reasons), reasons=reasons)
        return (Template(vector, self.model_id, "plain"), Template(vector, self.model_id, "masked"))
