"""VIP detection: venues, their VIP members, staff devices, sightings and the alerts they raise.

A venue (hotel, gym, golf course) keeps a gallery of VIP members. A venue camera posts a frame;
every face in it is searched, and a recognised member raises at most one alert per dedupe window
(a guest standing in the lobby is one alert, not one per frame). The alert is answered to the
camera at once and enriched afterwards by the ``vip_enrich`` consumer with the guest's CRM
profile, then pushed to the venue's staff devices. Pure values and rules (stdlib only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from eventface.domain.access import AuditEntry
from eventface.domain.errors import InvalidInputError
from eventface.domain.limits import check_name, check_range, check_text, clamp
from eventface.domain.model import MAX_CHECKPOINTS, MAX_TEXT, check_id
from eventface.domain.secrets import check_tenant_secret

DEFAULT_DEDUPE_MINUTES: Final = 30
MAX_DEDUPE_MINUTES: Final = 24 * 60
#: How long the CRM may take before the alert goes out "profile unavailable" (milliseconds).
DEFAULT_CRM_DEADLINE_MS: Final = 1500
MIN_CRM_DEADLINE_MS: Final = 50
MAX_CRM_DEADLINE_MS: Final = 10_000
MAX_NAME: Final = 100
MAX_NOTES: Final = 1000
MAX_FIELD_MAP: Final = 32
LOCALES: Final = ("ja", "en")
_URL: Final = re.compile(r"^https?://[^\s]+$")


class CrmKind(StrEnum):
    """How a venue's CRM is reached: not at all, a REST profile API, or an outbound webhook."""

    NONE = "none"
    REST = "rest"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class CrmConfig:
    """A venue's CRM connector.

    ``rest``: ``url`` is a profile URL template with ``{customer_id}``, ``field_map`` maps our
    field names (``name``, ``tier``, anything else) to dotted JSON paths of the answer, and the
    value of ``auth_header`` is read from the Secrets Manager secret ``secret_id`` (optional).
    ``webhook``: ``url`` receives every sighting as JSON signed with HMAC-SHA256, keyed by the
    secret ``secret_id`` (required). A ``secret_id`` is a secret name under the venue's tenant,
    ``eventface/tenants/<tenant_id>/<name>`` (:mod:`eventface.domain.secrets`). ``deadline_ms``
    bounds the callout: past it the alert goes out marked "profile unavailable".
    """

    kind: CrmKind = CrmKind.NONE
    url: str = ""
    field_map: Mapping[str, str] = field(default_factory=dict)
    auth_header: str = "Authorization"
    secret_id: str | None = None
    deadline_ms: int = DEFAULT_CRM_DEADLINE_MS


def validate_crm(crm: CrmConfig) -> CrmConfig:
    """Check a CRM connector's settings; return it unchanged or raise InvalidInputError."""
    check_range("crm.deadline_ms", crm.deadline_ms, MIN_CRM_DEADLINE_MS, MAX_CRM_DEADLINE_MS, " milliseconds")
    if crm.kind is CrmKind.NONE:
        return crm
    if not _URL.match(crm.url) or len(crm.url) > 2000:
        raise InvalidInputError("crm.url must be an http(s) URL (at most 2000 characters)")
    if crm.kind is CrmKind.REST:
        if "{customer_id}" not in crm.url:
            raise InvalidInputError(
                "crm.url must contain {customer_id}: e.g. https://crm.example/api/customers/{customer_id}"
            )
        if not crm.field_map or len(crm.field_map) > MAX_FIELD_MAP:
            raise InvalidInputError(
                f'crm.field_map must map 1-{MAX_FIELD_MAP} fields, e.g. {{"name": "profile.fullName"}}'
            )
        for ours, path in crm.field_map.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", ours) or not isinstance(path, str) or not path:
                raise InvalidInputError(
                    f"crm.field_map entry {ours!r}: names are lower-case identifiers, paths dotted strings"
                )
    if crm.kind is CrmKind.WEBHOOK and not crm.secret_id:
        raise InvalidInputError("crm.secret_id is required for a webhook: the HMAC key shared with the CRM")
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", crm.auth_header):
        raise InvalidInputError("crm.auth_header must be an HTTP header name")
    return crm


@dataclass(frozen=True, slots=True)
class Venue:
    """A place that recognises its VIP members (a hotel, a gym, a golf course)."""

    tenant_id: str
    venue_id: str
    name: str
    created_at: datetime
    dedupe_minutes: int = DEFAULT_DEDUPE_MINUTES
    crm: CrmConfig = field(default_factory=CrmConfig)
    #: Optimistic-locking version: the repository refuses a save whose version is stale.
    version: int = 0

    @property
    def gallery_id(self) -> str:
        """The venue's VIP gallery (``<tenant>/venues/<venue>``: apart from campaign galleries)."""
        return f"{self.tenant_id}/venues/{self.venue_id}"

    @property
    def dedupe_window(self) -> timedelta:
        """The dedupe window, held to 0..MAX_DEDUPE_MINUTES (whatever was stored)."""
        return timedelta(minutes=clamp(self.dedupe_minutes, 0, MAX_DEDUPE_MINUTES))


def validate_venue(venue: Venue) -> Venue:
    """Check a venue's content; return it unchanged or raise InvalidInputError."""
    check_id("tenant_id", venue.tenant_id)
    check_id("venue_id", venue.venue_id)
    check_name("name", venue.name, MAX_NAME)
    check_range(
        "dedupe_minutes", venue.dedupe_minutes, 0, MAX_DEDUPE_MINUTES, " minutes (0: alert on every frame)"
    )
    validate_crm(venue.crm)
    if venue.crm.kind is not CrmKind.NONE and venue.crm.secret_id is not None:
        check_tenant_secret(venue.tenant_id, venue.crm.secret_id)
    return venue


@dataclass(frozen=True, slots=True)
class VipMember:
    """A venue's VIP: the greeting name and tier staff see, and the CRM's id of the customer."""

    tenant_id: str
    venue_id: str
    member_id: str
    name: str
    created_at: datetime
    tier: str = ""
    crm_customer_id: str = ""
    notes: str = ""
    template_count: int = 0


def validate_member(member: VipMember) -> VipMember:
    check_id("member_id", member.member_id)
    check_name("name", member.name, MAX_NAME)
    check_name("tier", member.tier, 40, required=False)
    check_text("notes", member.notes, MAX_NOTES, required=False)
    if member.crm_customer_id and not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,128}", member.crm_customer_id):
        raise InvalidInputError("crm_customer_id must be 1-128 letters, digits or _ . : @ -")
    return member


class StaffPlatform(StrEnum):
    """Where a staff device receives alerts: a phone (APNs/FCM through SNS), a webhook, an inbox."""

    APNS = "apns"
    FCM = "fcm"
    WEBHOOK = "webhook"
    INBOX = "inbox"


@dataclass(frozen=True, slots=True)
class StaffDevice:
    """A staff member's device subscribed to a venue's alerts (``token``: the device token, the
    webhook URL, or nothing for the local inbox). ``disabled_at`` is set when the push service
    reports the endpoint dead; it is then skipped."""

    tenant_id: str
    venue_id: str
    staff_device_id: str
    name: str
    platform: StaffPlatform
    created_at: datetime
    token: str = ""
    locale: str = "ja"
    disabled_at: datetime | None = None


def validate_staff_device(device: StaffDevice) -> StaffDevice:
    check_name("name", device.name, MAX_NAME)
    if device.locale not in LOCALES:
        raise InvalidInputError(f"locale must be one of {', '.join(LOCALES)}")
    if device.platform is StaffPlatform.WEBHOOK and not _URL.match(device.token):
        raise InvalidInputError("a webhook staff device needs token = the http(s) URL to post alerts to")
    if device.platform in (StaffPlatform.APNS, StaffPlatform.FCM) and not (
        0 < len(device.token) <= 4096 and device.token.isprintable()
    ):
        raise InvalidInputError("an apns or fcm staff device needs token = the device's push token")
    return device


class PushProvider(StrEnum):
    """The providers of the deployment's push sender (what a push address maps to)."""

    INBOX = "inbox"
    SNS = "sns"  # SNS mobile push: APNs and FCM
    WEBHOOK = "webhook"


#: Address platforms that go through SNS mobile push.
SNS_PLATFORMS: Final = ("apns", "fcm")


class ProfileStatus(StrEnum):
    """Where an alert's CRM profile stands."""

    PENDING = "pending"  # not enriched yet
    OK = "ok"
    NOT_FOUND = "not_found"  # the CRM does not know the customer
    UNAVAILABLE = "unavailable"  # the CRM was down, slow or refused: "profile unavailable"
    NONE = "none"  # the venue has no CRM, or the member no CRM id


@dataclass(frozen=True, slots=True)
class VipAlert:
    """One VIP arrival at a venue, as the staff board shows it.

    Written when the sighting is answered (profile ``pending``), enriched by ``vip_enrich`` (the
    profile, or why there is none), pushed to the staff devices (counts), then acknowledged or
    flagged as a false match by staff.
    """

    tenant_id: str
    venue_id: str
    alert_id: str
    member_id: str
    name: str
    sighted_at: datetime
    device_id: str
    similarity: float
    tier: str = ""
    crm_customer_id: str = ""
    profile_status: ProfileStatus = ProfileStatus.PENDING
    profile: Mapping[str, str] | None = None
    profile_reason: str = ""
    enriched_at: datetime | None = None
    pushed_at: datetime | None = None
    delivered: int = 0
    failed: int = 0
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    false_match_by: str | None = None
    false_match_at: datetime | None = None
    false_match_note: str = ""
    #: When the alert (and its copy of the CRM profile) is deleted: the venue's records are kept for
    #: the tenant's alert retention, not forever.
    expires_at: datetime | None = None


def dedupe_key(tenant_id: str, venue_id: str, member_id: str) -> str:
    """The lock that keeps a member to one alert per dedupe window at a venue."""
    return "#".join(("vip", tenant_id, venue_id, member_id))


@dataclass(frozen=True, slots=True)
class SightingWrite:
    """What a recognised VIP writes, at once: the dedupe lock (only if absent or expired), the
    alert, and the alert's job in the outbox (so an alert never exists without its job)."""

    alert: VipAlert
    dedupe_key: str
    dedupe_until: datetime
    audit: AuditEntry | None = None


@dataclass(frozen=True, slots=True)
class SightedFace:
    """One face of a frame: a VIP (greeting name, tier) or not; ``alerted`` is False for a VIP
    already alerted inside the dedupe window."""

    vip: bool
    member_id: str | None = None
    name: str | None = None
    tier: str | None = None
    alerted: bool = False
    alert_id: str | None = None
    masked: bool | None = None


@dataclass(frozen=True, slots=True)
class SightingResult:
    """What the venue camera is told, at once (the CRM is asked afterwards); never a similarity or a
    threshold (see :class:`eventface.domain.model.ScanResult`)."""

    faces: tuple[SightedFace, ...]

    @property
    def vip(self) -> bool:
        return any(face.vip for face in self.faces)


@dataclass(frozen=True, slots=True)
class AlertJob:
    """The ``vip_enrich`` job of an alert (queue ``sightings``; the message id is the alert id)."""

    tenant_id: str
    venue_id: str
    alert_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Segment:
    """Which participants of a campaign a message goes to: at least ``min_stamps`` stamps, and
    completed or not (None: either)."""

    min_stamps: int = 0
    completed: bool | None = None

    def matches(self, stamps: int, completed: bool) -> bool:
        return stamps >= self.min_stamps and (self.completed is None or self.completed == completed)


@dataclass(frozen=True, slots=True)
class CampaignMessage:
    """A marketer's message to a segment of a campaign's participants, with its delivery counts.

    ``title`` and ``body`` are per locale (``ja``, ``en``; a participant gets their own locale, else
    English, else the first given). ``targeted`` participants matched the segment; each one ends
    ``delivered``, ``failed`` or ``no_endpoint`` (no push token), counted once per participant.
    """

    tenant_id: str
    campaign_id: str
    message_id: str
    title: Mapping[str, str]
    body: Mapping[str, str]
    segment: Segment
    created_at: datetime
    created_by: str
    targeted: int = 0
    delivered: int = 0
    failed: int = 0
    no_endpoint: int = 0

    def text_for(self, locale: str) -> tuple[str, str]:
        """(title, body) in ``locale``, else English, else the first locale given."""
        for choice in (locale, "en", *self.body):
            if choice in self.body:
                return self.title.get(choice, next(iter(self.title.values()), "")), self.body[choice]
        return "", ""


def validate_message(message: CampaignMessage) -> CampaignMessage:
    if not message.body:
        raise InvalidInputError('body must give the text per locale, e.g. {"ja": "...", "en": "..."}')
    for texts, limit, check in ((message.title, MAX_NAME, check_name), (message.body, MAX_TEXT, check_text)):
        for locale, text in texts.items():
            if locale not in LOCALES:
                raise InvalidInputError(f"locale {locale!r} is not supported: use {', '.join(LOCALES)}")
            check(f"text ({locale})", text, limit)
    check_range("segment.min_stamps", message.segment.min_stamps, 0, MAX_CHECKPOINTS)
    return message


def check_push_endpoint(value: str) -> str:
    """A participant's push address ``<platform>:<token>`` (platform apns, fcm, webhook or inbox;
    ``inbox:`` needs no token); InvalidInputError otherwise."""
    platform, sep, token = value.partition(":") if isinstance(value, str) else ("", "", "")
    platforms = ", ".join(p.value for p in StaffPlatform)
    if not sep or platform not in {p.value for p in StaffPlatform} or len(value) > 2048:
        raise InvalidInputError(
            f"push_token must be '<platform>:<token>' with platform one of {platforms} "
            "(e.g. 'fcm:<registration token>', or 'inbox:' on the local stack), at most 2048 characters"
        )
    validate_staff_device(
        StaffDevice("t", "v", "d", "participant", StaffPlatform(platform), datetime.min, token=token)
    )
    return value


LookupStatus = Literal["ok", "not_found", "unavailable"]


@dataclass(frozen=True, slots=True)
class CrmProfile:
    """A guest's profile as the venue's CRM knows it, mapped to our field names.

    Parameters
    ----------
    customer_id
        The CRM's id of the customer (the VIP member's external id).
    name, tier
        The mapped ``name`` and ``tier`` fields; ``None`` when the CRM answer lacks them.
    fields
        Every other mapped field found in the answer, as text; missing fields are absent.
    """

    customer_id: str
    name: str | None
    tier: str | None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProfileLookup:
    """The outcome of one profile lookup.

    Parameters
    ----------
    profile
        The profile when ``status`` is ``"ok"``, else ``None``.
    status
        ``"ok"``, ``"not_found"`` (the CRM does not know the customer) or ``"unavailable"`` (the
        CRM could not be asked or did not answer in time: alert without a profile).
    reason
        Why, in words a person can act on (empty when all went well).
    elapsed_ms
        Time the lookup took, cache hits included.
    from_cache
        Whether the answer came from the profile cache without calling the CRM.
    """

    profile: CrmProfile | None
    status: LookupStatus
    reason: str = ""
    elapsed_ms: float = 0.0
    from_cache: bool = False
