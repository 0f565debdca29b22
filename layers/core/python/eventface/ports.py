"""Ports: what the services need from the outside world, by role (``typing.Protocol``).

Adapters implement them technology-first (``DynamoStampBook``, ``SqsNotificationQueue``); the
in-memory fakes (``eventface.adapters.memory``) implement them for tests and the demo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from eventface.domain.model import (
    Campaign,
    Device,
    Identification,
    NotificationJob,
    Page,
    Participant,
    Probe,
    Progress,
    RecognitionEvent,
    Stamp,
    StampOutcome,
    Template,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class CampaignRepository(Protocol):
    def add(self, campaign: Campaign) -> Campaign:
        """Store a new campaign; AlreadyExistsError if the id is taken."""
        ...

    def get(self, tenant_id: str, campaign_id: str) -> Campaign:
        """The campaign; NotFoundError if it does not exist for this tenant."""
        ...

    def save(self, campaign: Campaign) -> Campaign:
        """Replace a campaign whose stored version is ``campaign.version``; return it with the next
        version. StateConflictError if someone saved it meanwhile."""
        ...

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Campaign]:
        """The tenant's campaigns, by id."""
        ...


class ParticipantRepository(Protocol):
    def add(self, participant: Participant) -> None:
        """Store a new participant; AlreadyExistsError if the id is taken."""
        ...

    def get(self, tenant_id: str, campaign_id: str, participant_id: str) -> Participant:
        """The participant; NotFoundError if not registered."""
        ...

    def find(self, tenant_id: str, campaign_id: str, participant_id: str) -> Participant | None:
        """The participant, or None."""
        ...

    def list(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[Participant]:
        """A campaign's participants, by id."""
        ...

    def delete(self, tenant_id: str, campaign_id: str, participant_id: str) -> bool:
        """Remove the record; True if there was one."""
        ...


class StampBook(Protocol):
    def record(self, stamp: Stamp, required: int) -> StampOutcome:
        """Record a stamp and update the progress atomically.

        At most one stamp per participant and checkpoint (a repeat is ``new_stamp=False``, not an
        error); ``completed_now`` is True for exactly one stamp per participant, the one that
        reaches ``required``, even under concurrent calls.
        """
        ...

    def progress(self, tenant_id: str, campaign_id: str, participant_id: str) -> Progress:
        """The participant's progress (empty if no stamp yet)."""
        ...

    def stamps(self, tenant_id: str, campaign_id: str, participant_id: str) -> list[Stamp]:
        """The participant's stamps."""
        ...

    def delete_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        """Remove the participant's stamps and progress; the number of stamps removed."""
        ...


class HistoryLog(Protocol):
    def record(self, event: RecognitionEvent) -> None:
        """Append one recognition event."""
        ...

    def list(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[RecognitionEvent]:
        """A campaign's events, newest first."""
        ...

    def for_participant(
        self, tenant_id: str, campaign_id: str, participant_id: str
    ) -> tuple[RecognitionEvent, ...]:
        """Every event that names the participant."""
        ...

    def delete_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        """Remove every event that names the participant; how many."""
        ...


class DeviceRegistry(Protocol):
    def add(self, device: Device) -> None:
        """Store a new device; AlreadyExistsError if the id is taken."""
        ...

    def by_key_hash(self, key_hash: str) -> Device | None:
        """The device whose key hashes to ``key_hash``, or None (the hot-path lookup)."""
        ...

    def get(self, tenant_id: str, device_id: str) -> Device:
        """The device; NotFoundError if it does not exist for this tenant."""
        ...

    def revoke(self, tenant_id: str, device_id: str, at: datetime) -> Device:
        """Mark the device's key revoked; NotFoundError if unknown."""
        ...


class GalleryPort(Protocol):
    def add(self, gallery_id: str, participant_id: str, templates: tuple[Template, ...]) -> None:
        """Add a participant's templates; they are searchable on the next identify."""
        ...

    def delete_participant(self, gallery_id: str, participant_id: str) -> bool:
        """Remove every template of the participant; True if the gallery existed."""
        ...

    def identify(self, gallery_id: str, probe: Probe, fmr_per_scan: float) -> Identification:
        """The participant whose templates best match ``probe``, if above the open-set threshold
        for this gallery's size; InvalidInputError if the probe's model differs."""
        ...


class NotificationQueue(Protocol):
    def put(self, job: NotificationJob) -> None:
        """Enqueue a job for the push sender."""
        ...


class CooldownLock(Protocol):
    def acquire(self, key: str, now: datetime, seconds: int) -> bool:
        """True (and hold ``key`` for ``seconds``) unless it is held already.

        Locks hold only ids and expire by themselves (TTL), so erasure does not need to remove them.
        """
        ...


class FaceAnalyzer(Protocol):
    def probe(self, photo: bytes) -> Probe:
        """The main face of a photo as a probe: PayloadTooLargeError, InvalidInputError (not an
        image) or FaceNotFoundError."""
        ...

    def enrol(self, photo: bytes) -> tuple[Template, ...]:
        """Registration templates (plain first) of the one face in ``photo``; FaceQualityError with
        reasons, FaceNotFoundError, InvalidInputError or PayloadTooLargeError."""
        ...

    @property
    def model_id(self) -> str:
        """The recogniser whose embeddings this analyzer makes."""
        ...
