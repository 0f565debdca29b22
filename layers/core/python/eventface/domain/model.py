"""Entities, value objects and the rules of the stamp rally, as pure functions (stdlib only).

Times are timezone-aware UTC ``datetime`` values; ids are opaque strings. Nothing here does I/O
or logs: the services apply these rules, the adapters persist the results.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Generic, TypeVar

from eventface.domain.access import AuditEntry
from eventface.domain.errors import InvalidInputError, StateConflictError
from eventface.domain.limits import check_instant, check_name, check_range, check_text, clamp
from eventface.domain.probe_guard import ProbeStatus

T = TypeVar("T")
_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_NICKNAME: Final = 40
MAX_TEXT: Final = 500
MAX_CHECKPOINTS: Final = 100
#: Non-matching recognition events expire after this long (DESIGN.md, privacy by design).
DEFAULT_HISTORY_TTL: Final = timedelta(hours=72)
DEFAULT_COOLDOWN_SECONDS: Final = 30
#: Longest cooldown at a checkpoint (a day): longer is a typo, and any value must fit in a date.
MAX_COOLDOWN_SECONDS: Final = 86_400
#: Longest checkpoint name and location.
MAX_CHECKPOINT_NAME: Final = 100


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid id (1-64 of letters, digits, ``_ . -``), else raise.

    Ids end up in keys (``#``-joined) and S3 prefixes, so the alphabet is deliberately small.
    """
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInputError(
            f"{kind} {value!r} is not a valid id: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


class CampaignStatus(StrEnum):
    """Life cycle of a campaign: draft → live → ended."""

    DRAFT = "draft"
    LIVE = "live"
    ENDED = "ended"


class RefusalReason(StrEnum):
    """Why a scan cannot award a stamp, whoever the face is."""

    CAMPAIGN_NOT_LIVE = "campaign_not_live"
    CAMPAIGN_ENDED = "campaign_ended"
    BEFORE_START = "before_start"
    AFTER_END = "after_end"
    CHECKPOINT_NOT_IN_CAMPAIGN = "checkpoint_not_in_campaign"


REFUSAL_MESSAGES: Final[dict[RefusalReason, str]] = {
    RefusalReason.CAMPAIGN_NOT_LIVE: "The campaign is not published yet: publish it to collect stamps.",
    RefusalReason.CAMPAIGN_ENDED: "The campaign has ended: no more stamps are awarded.",
    RefusalReason.BEFORE_START: "The campaign has not started yet: scans count from its start time.",
    RefusalReason.AFTER_END: "The campaign's time window is over: no more stamps are awarded.",
    RefusalReason.CHECKPOINT_NOT_IN_CAMPAIGN: (
        "This checkpoint is not part of the campaign: bind the device to one of its checkpoints."
    ),
}


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer of the platform; every key and prefix is scoped by ``tenant_id``."""

    tenant_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A place of a campaign where a camera awards one stamp."""

    checkpoint_id: str
    name: str
    location: str = ""


@dataclass(frozen=True, slots=True)
class NotificationTexts:
    """Templates of the push texts; ``{nickname}``, ``{stamps}``, ``{required}``, ``{reward}``."""

    stamp: str = "{nickname}, you have {stamps} of {required} stamps!"
    completion: str = "Rally complete, {nickname}! {reward}"

    def render(self, kind: JobKind, *, nickname: str, stamps: int, required: int, reward: str) -> str:
        """The text for a job of ``kind``; unknown placeholders are left as they are."""
        template = self.completion if kind is JobKind.COMPLETION else self.stamp
        values = {"nickname": nickname, "stamps": str(stamps), "required": str(required), "reward": reward}
        return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


@dataclass(frozen=True, slots=True)
class Campaign:
    """A stamp rally: where (checkpoints), when (window), how many stamps make a completion."""

    tenant_id: str
    campaign_id: str
    name: str
    starts_at: datetime
    ends_at: datetime
    status: CampaignStatus = CampaignStatus.DRAFT
    checkpoints: tuple[Checkpoint, ...] = ()
    stamps_required: int = 1
    reward_text: str = ""
    texts: NotificationTexts = field(default_factory=NotificationTexts)
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS
    #: Optimistic-locking version: the repository refuses a save whose version is stale.
    version: int = 0

    @property
    def gallery_id(self) -> str:
        """The campaign's gallery of templates: ``<tenant>/<campaign>``."""
        return f"{self.tenant_id}/{self.campaign_id}"

    @property
    def cooldown(self) -> timedelta:
        """The cooldown at a checkpoint, held to 0..MAX_COOLDOWN_SECONDS (a value stored before
        that bound existed must not make every scan fail)."""
        return timedelta(seconds=clamp(self.cooldown_seconds, 0, MAX_COOLDOWN_SECONDS))

    def checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        """The checkpoint with this id, or None if it is not part of the campaign."""
        return next((c for c in self.checkpoints if c.checkpoint_id == checkpoint_id), None)

    def refusal_reason(self, checkpoint_id: str, now: datetime) -> RefusalReason | None:
        """Why a scan at ``checkpoint_id`` at ``now`` cannot award a stamp, or None if it can."""
        if self.status is CampaignStatus.DRAFT:
            return RefusalReason.CAMPAIGN_NOT_LIVE
        if self.status is CampaignStatus.ENDED:
            return RefusalReason.CAMPAIGN_ENDED
        if self.checkpoint(checkpoint_id) is None:
            return RefusalReason.CHECKPOINT_NOT_IN_CAMPAIGN
        if now < self.starts_at:
            return RefusalReason.BEFORE_START
        if now >= self.ends_at:
            return RefusalReason.AFTER_END
        return None


def validate_campaign(campaign: Campaign) -> Campaign:
    """Check a campaign's own content (any status); return it unchanged or raise InvalidInputError."""
    check_id("tenant_id", campaign.tenant_id)
    check_id("campaign_id", campaign.campaign_id)
    check_name("name", campaign.name, MAX_TEXT)
    check_instant("starts_at", campaign.starts_at)
    check_instant("ends_at", campaign.ends_at)
    if campaign.ends_at <= campaign.starts_at:
        raise InvalidInputError("ends_at must be after starts_at: give the campaign a time window")
    if len(campaign.checkpoints) > MAX_CHECKPOINTS:
        raise InvalidInputError(f"a campaign has at most {MAX_CHECKPOINTS} checkpoints")
    ids = [c.checkpoint_id for c in campaign.checkpoints]
    for checkpoint in campaign.checkpoints:
        check_checkpoint(checkpoint)
    if len(set(ids)) != len(ids):
        raise InvalidInputError("checkpoint ids must be unique within a campaign")
    check_range("stamps_required", campaign.stamps_required, 1, MAX_CHECKPOINTS)
    check_range("cooldown_seconds", campaign.cooldown_seconds, 0, MAX_COOLDOWN_SECONDS, " seconds")
    texts = (
        ("reward_text", campaign.reward_text),
        ("notification_texts.stamp", campaign.texts.stamp),
        ("notification_texts.complete", campaign.texts.completion),
    )
    for name, text in texts:
        check_text(name, text, MAX_TEXT, required=False)
    return campaign


def check_checkpoint(checkpoint: Checkpoint) -> Checkpoint:
    """A checkpoint's id, name (1-100 printable characters) and location (0-100)."""
    check_id("checkpoint_id", checkpoint.checkpoint_id)
    check_name("name", checkpoint.name, MAX_CHECKPOINT_NAME)
    check_name("location", checkpoint.location, MAX_CHECKPOINT_NAME, required=False)
    return checkpoint


def publish(campaign: Campaign) -> Campaign:
    """Draft → live; the campaign needs checkpoints enough for its required stamps."""
    if campaign.status is not CampaignStatus.DRAFT:
        raise StateConflictError(
            f"campaign {campaign.campaign_id} is {campaign.status}: only a draft can be published"
        )
    if campaign.stamps_required > len(campaign.checkpoints):
        raise StateConflictError(
            f"campaign {campaign.campaign_id} requires {campaign.stamps_required} stamps but has "
            f"{len(campaign.checkpoints)} checkpoints: add checkpoints or lower stamps_required"
        )
    return replace(campaign, status=CampaignStatus.LIVE)


def end(campaign: Campaign) -> Campaign:
    """Draft or live → ended (final)."""
    if campaign.status is CampaignStatus.ENDED:
        raise StateConflictError(f"campaign {campaign.campaign_id} has already ended")
    return replace(campaign, status=CampaignStatus.ENDED)


def check_update(before: Campaign, after: Campaign) -> Campaign:
    """Which changes each status allows: drafts anything; live campaigns keep their checkpoints
    and required stamps (participants' progress depends on them); ended campaigns nothing."""
    if before.status is CampaignStatus.ENDED:
        raise StateConflictError(f"campaign {before.campaign_id} has ended and can no longer be changed")
    if before.status is CampaignStatus.LIVE:
        kept = {c.checkpoint_id for c in after.checkpoints}
        removed = [c.checkpoint_id for c in before.checkpoints if c.checkpoint_id not in kept]
        if removed or after.stamps_required != before.stamps_required:
            raise StateConflictError(
                f"campaign {before.campaign_id} is live: checkpoints can be added but not removed, and "
                "stamps_required cannot change; end it and create a new campaign instead"
            )
    return validate_campaign(replace(after, status=before.status, version=before.version))


@dataclass(frozen=True, slots=True)
class Consent:
    """What the participant agreed to, and when."""

    given: bool
    at: datetime
    text_version: str = "v1"


@dataclass(frozen=True, slots=True)
class Participant:
    """An attendee registered in a campaign; their templates live in the campaign's gallery."""

    tenant_id: str
    campaign_id: str
    participant_id: str
    nickname: str
    consent: Consent
    created_at: datetime
    push_endpoint: str | None = None
    template_count: int = 0
    locale: str = "en"


def check_nickname(nickname: str) -> str:
    """A trimmed nickname of 1-40 printable characters."""
    return check_name("nickname", nickname, MAX_NICKNAME)


@dataclass(frozen=True, slots=True)
class Stamp:
    """One checkpoint visited by one participant (at most one per participant and checkpoint)."""

    tenant_id: str
    campaign_id: str
    participant_id: str
    checkpoint_id: str
    device_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """A participant's stamps in a campaign; ``completed_at`` is set exactly once."""

    tenant_id: str
    campaign_id: str
    participant_id: str
    checkpoint_ids: frozenset[str] = frozenset()
    completed_at: datetime | None = None

    @property
    def stamps(self) -> int:
        return len(self.checkpoint_ids)

    def with_stamp(self, checkpoint_id: str, at: datetime, required: int) -> StampOutcome:
        """What a stamp at ``checkpoint_id`` would do to this progress (nothing is written).

        A checkpoint already stamped changes nothing; the stamp that reaches ``required`` sets
        ``completed_at``, which is never set twice.
        """
        if checkpoint_id in self.checkpoint_ids:
            return StampOutcome(new_stamp=False, completed_now=False, progress=self)
        checkpoints = self.checkpoint_ids | {checkpoint_id}
        completes = self.completed_at is None and len(checkpoints) >= required
        after = replace(self, checkpoint_ids=checkpoints, completed_at=at if completes else self.completed_at)
        return StampOutcome(new_stamp=True, completed_now=completes, progress=after)


@dataclass(frozen=True, slots=True)
class StampOutcome:
    """What recording a stamp did: a new stamp or not, and whether this stamp completed the rally."""

    new_stamp: bool
    completed_now: bool
    progress: Progress


class ScanOutcome(StrEnum):
    """How a scan ended, as recorded in history."""

    STAMPED = "stamped"
    ALREADY_STAMPED = "already_stamped"
    COOLDOWN = "cooldown"
    UNKNOWN = "unknown"
    NO_FACE = "no_face"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class RecognitionEvent:
    """One scan, matched or not: who (or unknown), how similar, where, when, masked or not."""

    tenant_id: str
    campaign_id: str
    event_id: str
    at: datetime
    device_id: str
    checkpoint_id: str
    outcome: ScanOutcome
    participant_id: str | None = None
    similarity: float | None = None
    threshold: float | None = None
    masked: bool | None = None
    reason: str | None = None
    #: When the event may be deleted (non-matches); None keeps it until erasure.
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which events to list: a time range (``since`` inclusive, ``until`` exclusive) and exact
    matches on device, checkpoint and participant; every field optional."""

    since: datetime | None = None
    until: datetime | None = None
    device_id: str | None = None
    checkpoint_id: str | None = None
    participant_id: str | None = None

    def matches(self, event: RecognitionEvent) -> bool:
        return (
            (self.since is None or event.at >= self.since)
            and (self.until is None or event.at < self.until)
            and (self.device_id is None or event.device_id == self.device_id)
            and (self.checkpoint_id is None or event.checkpoint_id == self.checkpoint_id)
            and (self.participant_id is None or event.participant_id == self.participant_id)
        )


def event_expiry(outcome: ScanOutcome, at: datetime, ttl: timedelta = DEFAULT_HISTORY_TTL) -> datetime | None:
    """Events that identify nobody expire after ``ttl``; matched ones stay until erasure."""
    matched = outcome in (ScanOutcome.STAMPED, ScanOutcome.ALREADY_STAMPED, ScanOutcome.COOLDOWN)
    return None if matched else at + ttl


@dataclass(frozen=True, slots=True)
class Device:
    """An edge terminal bound to one checkpoint of a campaign, or to a venue (``venue_id``; then
    campaign and checkpoint are ""): pending until it redeems its activation code, then active
    with a key (only hashes are stored), until revoked."""

    tenant_id: str
    device_id: str
    campaign_id: str
    checkpoint_id: str
    name: str
    created_at: datetime
    key_hash: str | None = None
    revoked_at: datetime | None = None
    activated_at: datetime | None = None
    last_seen_at: datetime | None = None
    venue_id: str | None = None
    #: May send templates it computed itself (Type B); off unless a terminal manager allows it.
    type_b: bool = False
    #: What the probe guard knows of the device (read for listings only; None elsewhere).
    probe_status: ProbeStatus | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def status(self) -> str:
        """``pending``, ``active`` or ``revoked``."""
        if self.revoked:
            return "revoked"
        return "active" if self.key_hash else "pending"


class CredentialKind(StrEnum):
    KEY = "key"
    ACTIVATION = "activation"


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """A secret that names a device, stored by its hash: the device's key (also a rotated key in
    its grace period) or a one-time activation code. Carries what a request needs, so a device
    is authenticated with one read."""

    secret_hash: str
    kind: CredentialKind
    tenant_id: str
    device_id: str
    campaign_id: str
    checkpoint_id: str
    expires_at: datetime | None = None  # None: until rotated or revoked
    used_at: datetime | None = None
    venue_id: str | None = None  # a venue device's venue (campaign and checkpoint are "")
    type_b: bool = False  # the device may send templates (Type B); copied from the device

    def valid(self, now: datetime) -> bool:
        return self.used_at is None and (self.expires_at is None or now < self.expires_at)


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a device key (keys are random 256-bit tokens: no salt needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Probe:
    """A face to identify: an L2-normalised embedding, the model that made it, mask status."""

    vector: tuple[float, ...]
    model_id: str
    masked: bool = False


@dataclass(frozen=True, slots=True)
class Template:
    """A stored embedding of a registered face (``kind`` is ``"plain"`` or ``"masked"``)."""

    vector: tuple[float, ...]
    model_id: str
    kind: str = "plain"


@dataclass(frozen=True, slots=True)
class Identification:
    """The answer of a gallery search: the participant (or None), best similarity, threshold used."""

    participant_id: str | None
    similarity: float | None
    threshold: float | None


class JobKind(StrEnum):
    """What a notification job announces."""

    STAMP = "stamp"
    COMPLETION = "completion"
    MESSAGE = "message"  # a marketer's campaign message to a segment


@dataclass(frozen=True, slots=True)
class NotificationJob:
    """A push to send later, by reference; ``job_id`` is the same for the same fact (queue
    deduplication).

    Ids and counts only: the push consumer reads the participant (nickname, locale, push endpoint)
    and the texts when it sends. So the outbox, its stream, the queue and its dead-letter queue
    never hold a nickname, a push text or a push endpoint, and the jobs of a participant who is
    erased meanwhile send nothing.
    """

    job_id: str
    kind: JobKind
    tenant_id: str
    campaign_id: str
    participant_id: str
    checkpoint_id: str
    stamps: int
    required: int
    created_at: datetime
    #: The campaign message a ``message`` job delivers.
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class ScanState:
    """What a recognised scan decides on, read together: the participant (None once erased), the
    progress with its version (the condition of the write), and the cooldown at the checkpoint."""

    participant: Participant | None
    progress: Progress
    version: int = 0
    cooldown_until: datetime | None = None

    def cooling(self, now: datetime) -> bool:
        """True while an earlier scan's cooldown at this checkpoint holds."""
        return self.cooldown_until is not None and self.cooldown_until > now


@dataclass(frozen=True, slots=True)
class ScanWrite:
    """Everything a recognised scan writes, in one atomic write.

    The history event, its audit entry and the cooldown always; with a new stamp also the stamp,
    the progress it leads to (written only if the progress is still at ``version``) and the
    notification jobs, which go to the outbox in the same write, so a stamp never exists without
    its jobs.
    """

    event: RecognitionEvent
    cooldown_key: str
    cooldown_until: datetime
    stamp: Stamp | None = None
    progress: Progress | None = None
    version: int = 0
    jobs: tuple[NotificationJob, ...] = ()
    audit: AuditEntry | None = None


def job_id_for(kind: JobKind, stamp: Stamp) -> str:
    """A stable id per fact (a stamp at a checkpoint, a completion), so retries deduplicate."""
    checkpoint = stamp.checkpoint_id if kind is JobKind.STAMP else "-"
    natural = "#".join((kind.value, stamp.tenant_id, stamp.campaign_id, stamp.participant_id, checkpoint))
    return hashlib.sha256(natural.encode("utf-8")).hexdigest()[:64]


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What the device is told: who (nickname only), stamps n/m, new stamp, completion, why not.

    Never a similarity, a threshold or anything derived from them: a score, even of a face that
    matched nobody, lets a device that sends its own templates climb towards a registered face
    (the score stays in the history, which only the tenant's people read).
    """

    recognised: bool
    nickname: str | None = None
    new_stamp: bool = False
    already_stamped: bool = False
    stamps: int = 0
    required: int = 0
    completed: bool = False
    reason: str | None = None
    message: str | None = None
    masked: bool | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``cursor`` back to get the next one (None: no more)."""

    items: tuple[T, ...]
    cursor: str | None = None


class ErasureState(StrEnum):
    """Whether a store still holds a copy of an erased person's data."""

    ERASED = "erased"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class StoreErasure:
    """One place a person's data was kept, and its state after the erasure: ``erased``, or
    ``pending`` until ``pending_until`` (None: until the event that ``detail`` names)."""

    store: str
    state: ErasureState
    pending_until: datetime | None = None
    detail: str = ""


#: Store names used in erasure receipts.
STORE_RECORD: Final = "record"
STORE_STAMPS: Final = "stamps"
STORE_HISTORY: Final = "history"
STORE_ALERTS: Final = "alerts"
STORE_GALLERY_OBJECTS: Final = "gallery_objects"
STORE_SCANNER_MEMORY: Final = "scanner_memory"
STORE_NOTIFICATION_JOBS: Final = "notification_jobs"
#: Sweeps that may pass between an erasure and the deletion of the objects that held its vectors.
_SWEEPS_IN_BOUND: Final = 4


def template_purge_deadline(erased_at: datetime, *, sweep_period: timedelta, grace: timedelta) -> datetime:
    """The latest time an erased person's template bytes can still be in the gallery's stored
    objects, when the erasure sweep starts every ``sweep_period`` and each run ends within one.

    The first sweep that starts after the erasure (within one period) compacts the gallery by the
    end of its run (two periods): the objects holding the vectors are retired then. The first sweep
    that starts more than ``grace`` after that (within one more period) deletes them by the end of
    its run: ``erased_at + grace + 4 periods``.
    """
    return erased_at + grace + _SWEEPS_IN_BOUND * sweep_period


def checked_erasure(store: str, gone: bool) -> StoreErasure:
    """The receipt line of a store that the erasure deleted from and then re-read."""
    if gone:
        return StoreErasure(store, ErasureState.ERASED)
    return StoreErasure(store, ErasureState.PENDING, detail="still found on re-reading it: erase again")


def template_erasures(
    gallery_existed: bool, erased_at: datetime, *, sweep_period: timedelta, grace: timedelta
) -> tuple[StoreErasure, ...]:
    """The receipt lines of a person's templates once their tombstone is published."""
    if not gallery_existed:
        nothing = "the gallery was never written: no template was stored"
        return (
            StoreErasure(STORE_GALLERY_OBJECTS, ErasureState.ERASED, detail=nothing),
            StoreErasure(STORE_SCANNER_MEMORY, ErasureState.ERASED, detail=nothing),
        )
    minutes = int(sweep_period.total_seconds() // 60)
    grace_s = int(grace.total_seconds())
    return (
        StoreErasure(
            STORE_GALLERY_OBJECTS,
            ErasureState.PENDING,
            template_purge_deadline(erased_at, sweep_period=sweep_period, grace=grace),
            "never matched again from now on; the erasure sweep (every "
            f"{minutes} min) compacts the gallery's objects and deletes the ones that held the "
            f"templates, every version, {grace_s} s later (what scanners still reading need)",
        ),
        StoreErasure(
            STORE_SCANNER_MEMORY,
            ErasureState.PENDING,
            None,
            "each running scanner overwrites the templates in its index (memory and spill file) "
            "at its next scan of this gallery, and drops its copy of the gallery's objects at its "
            "first scan after the compaction; a scanner that gets no scan keeps them until its "
            "container stops",
        ),
    )


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """What an erasure removed, whether a re-read found nothing left (``verified``), and per store
    whether the data is gone or until when it is pending (``stores``)."""

    participant_id: str
    record_deleted: bool
    templates_deleted: bool
    stamps_deleted: int
    history_deleted: int
    verified: bool
    erased_at: datetime | None = None
    stores: tuple[StoreErasure, ...] = ()


@dataclass(frozen=True, slots=True)
class GallerySweep:
    """What one erasure sweep of the galleries did (see ``GalleryPort.sweep_erasures``)."""

    galleries: int = 0
    compacted: int = 0
    purged: int = 0
    pending: int = 0
    failed: tuple[str, ...] = ()
