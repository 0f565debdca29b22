"""Venues: create and configure (dedupe window, CRM connector), VIP members (face + profile
pointers), and the staff devices subscribed to a venue's alerts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from eventface.domain.cursors import Listing
from eventface.domain.errors import InvalidInputError
from eventface.domain.model import (
    STORE_ALERTS,
    STORE_NOTIFICATION_JOBS,
    STORE_RECORD,
    ErasureState,
    Page,
    StoreErasure,
    checked_erasure,
    template_erasures,
)
from eventface.domain.secrets import tenant_secret_prefix
from eventface.domain.vip import (
    DEFAULT_DEDUPE_MINUTES,
    CrmConfig,
    CrmKind,
    StaffDevice,
    StaffPlatform,
    Venue,
    VipMember,
    validate_member,
    validate_staff_device,
    validate_venue,
)
from eventface.services.deps import Deps

#: Staff devices one venue may have (every alert is pushed to each of them).
MAX_STAFF_DEVICES = 200


def create_venue(
    deps: Deps,
    tenant_id: str,
    name: str,
    *,
    dedupe_minutes: int | None = None,
    crm: CrmConfig | None = None,
) -> Venue:
    """A new venue with an empty VIP gallery; InvalidInputError for bad settings."""
    venue = Venue(
        tenant_id=tenant_id,
        venue_id=uuid.uuid4().hex,
        name=name.strip() if isinstance(name, str) else name,
        created_at=deps.clock.now(),
        dedupe_minutes=DEFAULT_DEDUPE_MINUTES if dedupe_minutes is None else dedupe_minutes,
        crm=crm or CrmConfig(),
    )
    return deps.venues.add(_checked(deps, validate_venue(venue)))


@dataclass(frozen=True, slots=True)
class VenueChanges:
    """Fields to change (None: keep)."""

    name: str | None = None
    dedupe_minutes: int | None = None
    crm: CrmConfig | None = None


def update_venue(deps: Deps, tenant_id: str, venue_id: str, changes: VenueChanges) -> Venue:
    """Change a venue's name, dedupe window or CRM connector (optimistic locking: a concurrent
    change is StateConflictError, reload and retry)."""
    venue = deps.venues.get(tenant_id, venue_id)
    updated = replace(
        venue,
        name=changes.name.strip() if changes.name is not None else venue.name,
        dedupe_minutes=venue.dedupe_minutes if changes.dedupe_minutes is None else changes.dedupe_minutes,
        crm=changes.crm or venue.crm,
    )
    return deps.venues.save(_checked(deps, validate_venue(updated)))


def _checked(deps: Deps, venue: Venue) -> Venue:
    """``venue`` if the platform may call its CRM URL (the egress policy: public addresses only,
    https outside the local stack), else InvalidInputError. Its ``secret_id`` was checked against
    the tenant's prefix by ``validate_venue``."""
    if venue.crm.kind is not CrmKind.NONE:
        deps.egress.check_url(venue.crm.url, what="crm.url")
    return venue


def crm_secrets(deps: Deps, tenant_id: str) -> tuple[str, tuple[str, ...]]:
    """The prefix the tenant's CRM secrets are named under, and the names it holds there (for a
    tenant admin choosing a venue's ``crm.secret_id``; never the values)."""
    return tenant_secret_prefix(tenant_id), deps.secrets.names(tenant_id)


def get_venue(deps: Deps, tenant_id: str, venue_id: str) -> Venue:
    return deps.venues.get(tenant_id, venue_id)


def list_venues(deps: Deps, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Venue]:
    deps.policy.page_limit(limit)
    listing = Listing(tenant_id, "venues")
    return deps.cursors.page(listing, cursor, lambda at: deps.venues.list(tenant_id, limit, at))


# -- VIP members --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberRegistration:
    """A VIP to recognise: the face photo (not kept), the greeting name, tier, CRM id, notes."""

    tenant_id: str
    venue_id: str
    photo: bytes
    name: str
    tier: str = ""
    crm_customer_id: str = ""
    notes: str = ""


def add_member(deps: Deps, registration: MemberRegistration) -> VipMember:
    """Enrol the face into the venue's VIP gallery and store the member.

    Raises
    ------
    NotFoundError
        Unknown venue.
    InvalidInputError, FaceQualityError, FaceNotFoundError, PayloadTooLargeError
        Bad fields; the photo fails the quality gate, has no face or is too large.
    """
    venue = deps.venues.get(registration.tenant_id, registration.venue_id)
    member = validate_member(
        VipMember(
            tenant_id=venue.tenant_id,
            venue_id=venue.venue_id,
            member_id=uuid.uuid4().hex,
            name=registration.name.strip() if isinstance(registration.name, str) else "",
            created_at=deps.clock.now(),
            tier=registration.tier.strip(),
            crm_customer_id=registration.crm_customer_id.strip(),
            notes=registration.notes.strip(),
        )
    )
    templates = deps.faces.enrol(registration.photo)
    member = replace(member, template_count=len(templates))
    # Record first, gallery second (as for participants): a template without a record is never
    # alerted, and a failed gallery write takes the record back.
    deps.vip_members.add(member)
    try:
        deps.gallery.add(venue.gallery_id, member.member_id, templates)
    except Exception:
        deps.vip_members.delete(member.tenant_id, member.venue_id, member.member_id)
        raise
    return member


def get_member(deps: Deps, tenant_id: str, venue_id: str, member_id: str) -> VipMember:
    deps.venues.get(tenant_id, venue_id)
    return deps.vip_members.get(tenant_id, venue_id, member_id)


def list_members(
    deps: Deps, tenant_id: str, venue_id: str, limit: int = 50, cursor: str | None = None
) -> Page[VipMember]:
    deps.policy.page_limit(limit)
    listing = Listing(tenant_id, "members", venue_id)
    position = deps.cursors.open(listing, cursor)
    deps.venues.get(tenant_id, venue_id)
    return deps.cursors.seal(listing, deps.vip_members.list(tenant_id, venue_id, limit, position))


@dataclass(frozen=True, slots=True)
class MemberErasure:
    """What erasing a VIP member removed (idempotent: a second erasure removes nothing), and per
    store whether the data is gone or until when it is pending (``stores``)."""

    member_id: str
    record_deleted: bool
    templates_deleted: bool
    alerts_deleted: int
    erased_at: datetime | None = None
    stores: tuple[StoreErasure, ...] = ()


def erase_member(deps: Deps, tenant_id: str, venue_id: str, member_id: str) -> MemberErasure:
    """Erase a member completely: templates, the alerts that name them (with their profile
    copies), the record. NotFoundError for an unknown venue. The receipt says what is gone and
    until when the templates' bytes stay in storage (see ``erase_participant``)."""
    venue = deps.venues.get(tenant_id, venue_id)
    erased_at = deps.clock.now()
    templates_deleted = deps.gallery.delete_participant(venue.gallery_id, member_id)
    alerts_deleted = deps.alerts.delete_member(tenant_id, venue_id, member_id)
    record_deleted = deps.vip_members.delete(tenant_id, venue_id, member_id)
    record_gone = deps.vip_members.find(tenant_id, venue_id, member_id) is None
    stores = (
        checked_erasure(STORE_RECORD, record_gone),
        StoreErasure(STORE_ALERTS, ErasureState.ERASED, detail="with the CRM profile copies they held"),
        *template_erasures(
            templates_deleted,
            erased_at,
            sweep_period=deps.policy.gallery_sweep_period,
            grace=deps.policy.gallery_retired_grace,
        ),
        StoreErasure(
            STORE_NOTIFICATION_JOBS,
            ErasureState.ERASED,
            detail="queued alert jobs hold ids only; the alerts they name are deleted",
        ),
    )
    return MemberErasure(member_id, record_deleted, templates_deleted, alerts_deleted, erased_at, stores)


# -- staff devices ------------------------------------------------------------------------------


def subscribe_staff_device(
    deps: Deps,
    tenant_id: str,
    venue_id: str,
    *,
    name: str,
    platform: str,
    token: str = "",
    locale: str = "ja",
) -> StaffDevice:
    """Subscribe a staff member's device to the venue's VIP alerts.

    Raises
    ------
    NotFoundError
        Unknown venue.
    InvalidInputError
        Unknown platform, a missing token, an unsupported locale, too many devices.
    """
    venue = deps.venues.get(tenant_id, venue_id)
    try:
        kind = StaffPlatform(platform)
    except ValueError:
        known = ", ".join(p.value for p in StaffPlatform)
        raise InvalidInputError(f"platform {platform!r} is not supported: use one of {known}") from None
    if len(deps.staff_devices.list(tenant_id, venue_id)) >= MAX_STAFF_DEVICES:
        raise InvalidInputError(
            f"venue {venue_id} has {MAX_STAFF_DEVICES} staff devices: unsubscribe one first"
        )
    device = validate_staff_device(
        StaffDevice(
            tenant_id=venue.tenant_id,
            venue_id=venue.venue_id,
            staff_device_id=uuid.uuid4().hex,
            name=name.strip() if isinstance(name, str) else "",
            platform=kind,
            created_at=deps.clock.now(),
            token=token.strip() if isinstance(token, str) else "",
            locale=locale,
        )
    )
    if device.platform is StaffPlatform.WEBHOOK:
        deps.egress.check_url(device.token, what="token")
    deps.staff_devices.add(device)
    return device


def list_staff_devices(
    deps: Deps, tenant_id: str, venue_id: str, cursor: str | None = None
) -> tuple[StaffDevice, ...]:
    """Every staff device of the venue (at most MAX_STAFF_DEVICES: one page, no cursor is ever
    issued, so any ``cursor`` is refused)."""
    deps.cursors.open(Listing(tenant_id, "staff_devices", venue_id), cursor)
    deps.venues.get(tenant_id, venue_id)
    return deps.staff_devices.list(tenant_id, venue_id)


def unsubscribe_staff_device(deps: Deps, tenant_id: str, venue_id: str, staff_device_id: str) -> bool:
    deps.venues.get(tenant_id, venue_id)
    return deps.staff_devices.delete(tenant_id, venue_id, staff_device_id)
