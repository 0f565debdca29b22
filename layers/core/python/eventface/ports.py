"""Ports: what the services need from the outside world, by role (``typing.Protocol``).

Adapters implement them technology-first (``DynamoStampBook``, ``DynamoScanLedger``); the
in-memory fakes (``eventface.adapters.memory``) implement them for tests and the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from eventface.domain.access import AuditEntry
from eventface.domain.model import (
    Campaign,
    Device,
    DeviceCredential,
    GallerySweep,
    HistoryQuery,
    Identification,
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

    def forget_push_endpoint(
        self, tenant_id: str, campaign_id: str, participant_id: str, endpoint: str
    ) -> bool:
        """Remove the participant's push endpoint if it is still ``endpoint`` (the push service
        reported it dead; a newer one is kept); True if removed."""
        ...


class StampBook(Protocol):
    """Reading and erasing stamps; they are written by :class:`ScanLedger`."""

    def progress(self, tenant_id: str, campaign_id: str, participant_id: str) -> Progress:
        """The participant's progress (empty if no stamp yet)."""
        ...

    def progress_many(
        self, tenant_id: str, campaign_id: str, participant_ids: Sequence[str]
    ) -> dict[str, Progress]:
        """Each participant's progress (empty if no stamp yet), by id, in few round trips."""
        ...

    def stamps(self, tenant_id: str, campaign_id: str, participant_id: str) -> list[Stamp]:
        """The participant's stamps."""
        ...

    def delete_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        """Remove the participant's stamps and progress; the number of stamps removed."""
        ...


class HistoryLog(Protocol):
    def record(self, event: RecognitionEvent, audit: AuditEntry | None = None) -> None:
        """Append one recognition event, and its audit entry in the same write."""
        ...

    def list(
        self,
        tenant_id: str,
        campaign_id: str,
        limit: int = 50,
        cursor: str | None = None,
        *,
        query: HistoryQuery | None = None,
    ) -> Page[RecognitionEvent]:
        """A campaign's events that match ``query``, newest first (a page may hold fewer than
        ``limit`` events when filters apply; follow the cursor until it is None)."""
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
    """Devices and their credentials (keys and activation codes, by hash)."""

    def add(self, device: Device, activation: DeviceCredential) -> None:
        """Store a new pending device with its activation code; AlreadyExistsError if taken."""
        ...

    def credential(self, secret_hash: str) -> DeviceCredential | None:
        """The credential whose secret hashes to ``secret_hash`` (strongly consistent), or None."""
        ...

    def get(self, tenant_id: str, device_id: str) -> Device:
        """The device; NotFoundError if it does not exist for this tenant."""
        ...

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Device]:
        """The tenant's devices, by id."""
        ...

    def issue_activation(self, activation: DeviceCredential) -> None:
        """Give an existing, unrevoked device a new activation code (NotFoundError if unknown or
        revoked); its earlier unredeemed code stops working at once."""
        ...

    def activate(self, activation: DeviceCredential, key: DeviceCredential, at: datetime) -> Device:
        """Use ``activation`` once and make ``key`` the device's only key (every previous key, in
        its grace period or not, is removed). UnauthorizedError if the code was used or replaced
        by a newer code meanwhile, or the device revoked."""
        ...

    def rotate(self, old: DeviceCredential, new: DeviceCredential, grace_until: datetime) -> Device:
        """Make ``new`` the device's key; ``old`` keeps working until ``grace_until`` and a key
        rotated out before ``old`` is removed (at most one key in grace). ``old`` must be the
        device's current key: StateConflictError if another rotation replaced it (of concurrent
        rotations one wins), UnauthorizedError if the device was revoked."""
        ...

    def revoke(self, tenant_id: str, device_id: str, at: datetime) -> Device:
        """Mark the device revoked and delete every credential it has (keys, the one in grace, the
        unredeemed code), whatever rotations ran before or concurrently; NotFoundError if unknown."""
        ...

    def set_type_b(self, tenant_id: str, device_id: str, type_b: bool) -> Device:
        """Allow (or stop) the device sending templates: the device and every key it holds carry
        the flag (keys made later inherit it). NotFoundError if unknown, StateConflictError if
        revoked."""
        ...

    def touch(self, tenant_id: str, device_id: str, at: datetime) -> None:
        """Record that the device was seen at ``at`` (best effort)."""
        ...


class GalleryPort(Protocol):
    def add(self, gallery_id: str, participant_id: str, templates: tuple[Template, ...]) -> None:
        """Add a participant's templates; they are searchable on the next identify."""
        ...

    def delete_participant(self, gallery_id: str, participant_id: str) -> bool:
        """Remove every template of the participant from the searches (at once) and from storage
        (by the next sweeps, see :meth:`sweep_erasures`); True if the gallery existed."""
        ...

    def sweep_erasures(self, grace: timedelta) -> GallerySweep:
        """Make pending erasures physical (the scheduled job): compact the galleries that have
        erased people waiting, and delete the objects retired more than ``grace`` ago. A gallery
        that fails is reported in ``failed`` and retried by the next sweep."""
        ...

    def prefetch(self, gallery_id: str) -> None:
        """Start bringing the gallery up to date in the background (the next identify of it
        waits for that instead of revalidating again); failures surface in identify."""
        ...

    def identify(self, gallery_id: str, probe: Probe, fmr_per_scan: float) -> Identification:
        """The participant whose templates best match ``probe``, if above the open-set threshold
        for this gallery's size; InvalidInputError if the probe's model differs."""
        ...


class ScanLedger(Protocol):
    """The hot path's persistence: one read and one atomic write per recognised scan."""

    def read(self, tenant_id: str, campaign_id: str, participant_id: str, cooldown_key: str) -> ScanState:
        """The participant, their progress and version, and the cooldown of ``cooldown_key``, in
        one strongly consistent round trip."""
        ...

    def commit(self, write: ScanWrite) -> bool:
        """Write all of ``write`` or nothing.

        False (nothing written) when a scan that read the same state committed first: the
        cooldown was taken, the stamp exists or the progress moved past ``write.version``. The
        caller reads again and decides again.
        """
        ...


class FaceAnalyzer(Protocol):
    def probe(self, photo: bytes) -> Probe:
        """The main face of a photo as a probe: PayloadTooLargeError, InvalidInputError (not an
        image) or FaceNotFoundError."""
        ...

    def probes(self, photo: bytes, max_faces: int) -> tuple[Probe, ...]:
        """Every face of a frame as probes, largest first (at most ``max_faces``):
        FaceNotFoundError when there is none, else as :meth:`probe`."""
        ...

    def enrol(self, photo: bytes) -> tuple[Template, ...]:
        """Registration templates (plain first) of the one face in ``photo``; FaceQualityError with
        reasons, FaceNotFoundError, InvalidInputError or PayloadTooLargeError."""
        ...

    @property
    def model_id(self) -> str:
        """The recogniser whose embeddings this analyzer makes."""
        ...
