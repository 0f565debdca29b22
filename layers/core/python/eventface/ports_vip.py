"""Ports of VIP detection and of push notifications (see :mod:`eventface.ports` for the style).

Adapters: ``eventface.adapters.dynamo_vip`` (DynamoDB) and ``eventface.adapters.memory_vip``
(in-memory fakes with the same contracts, for unit tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from eventface.domain.model import NotificationJob, Page
from eventface.domain.vip import (
    CampaignMessage,
    ProfileLookup,
    ProfileStatus,
    SightingWrite,
    StaffDevice,
    Venue,
    VipAlert,
    VipMember,
)


class VenueRepository(Protocol):
    def add(self, venue: Venue) -> Venue:
        """Store a new venue; AlreadyExistsError if the id is taken."""
        ...

    def get(self, tenant_id: str, venue_id: str) -> Venue:
        """The venue; NotFoundError if it does not exist for this tenant."""
        ...

    def save(self, venue: Venue) -> Venue:
        """Replace a venue whose stored version is ``venue.version``; return it with the next
        version. StateConflictError if someone saved it meanwhile, NotFoundError if it is gone."""
        ...

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Venue]:
        """The tenant's venues, by id."""
        ...


class VipMemberRepository(Protocol):
    def add(self, member: VipMember) -> None:
        """Store a new member; AlreadyExistsError if the id is taken in the venue."""
        ...

    def get(self, tenant_id: str, venue_id: str, member_id: str) -> VipMember:
        """The member; NotFoundError if unknown."""
        ...

    def find(self, tenant_id: str, venue_id: str, member_id: str) -> VipMember | None:
        """The member, or None."""
        ...

    def find_many(self, tenant_id: str, venue_id: str, member_ids: Sequence[str]) -> dict[str, VipMember]:
        """The members that exist among ``member_ids`` (one round trip), by id."""
        ...

    def list(
        self, tenant_id: str, venue_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[VipMember]:
        """A venue's members, by id."""
        ...

    def delete(self, tenant_id: str, venue_id: str, member_id: str) -> bool:
        """Remove the record; True if there was one."""
        ...


class StaffDeviceRepository(Protocol):
    def add(self, device: StaffDevice) -> None:
        """Subscribe a device to its venue's alerts; AlreadyExistsError if the id is taken."""
        ...

    def list(self, tenant_id: str, venue_id: str) -> tuple[StaffDevice, ...]:
        """Every device subscribed to the venue (disabled ones included), by id."""
        ...

    def delete(self, tenant_id: str, venue_id: str, staff_device_id: str) -> bool:
        """Unsubscribe; True if it was subscribed."""
        ...

    def disable(self, tenant_id: str, venue_id: str, staff_device_id: str, at: datetime) -> None:
        """Mark the device's endpoint dead (the push service said so); no-op if it is gone."""
        ...


class AlertStore(Protocol):
    """VIP alerts: written by a sighting with its dedupe lock and job, then enriched, pushed and
    handled by staff."""

    def claim(self, write: SightingWrite) -> bool:
        """Write the dedupe lock (only if absent or expired at ``write.alert.sighted_at``), the
        alert and its ``vip_enrich`` job in the outbox, all or nothing. False (nothing written)
        when the member was alerted inside the window."""
        ...

    def get(self, tenant_id: str, venue_id: str, alert_id: str) -> VipAlert:
        """The alert; NotFoundError if unknown."""
        ...

    def list(
        self,
        tenant_id: str,
        venue_id: str,
        limit: int = 50,
        cursor: str | None = None,
        *,
        since: datetime | None = None,
    ) -> Page[VipAlert]:
        """The venue's alerts, newest first (sighted at or after ``since``)."""
        ...

    def delete_member(self, tenant_id: str, venue_id: str, member_id: str) -> int:
        """Erase every alert that names the member (and their dedupe lock); how many alerts."""
        ...

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
        """Store the outcome of the CRM callout; NotFoundError if the alert is gone."""
        ...

    def pushed(
        self, tenant_id: str, venue_id: str, alert_id: str, *, delivered: int, failed: int, at: datetime
    ) -> VipAlert:
        """Store that the alert was pushed to the staff devices, with the counts."""
        ...

    def acknowledge(self, tenant_id: str, venue_id: str, alert_id: str, *, by: str, at: datetime) -> VipAlert:
        """Record that ``by`` will greet the guest (the first acknowledgement stays; repeating it
        returns the alert unchanged). NotFoundError if unknown."""
        ...

    def flag_false_match(
        self, tenant_id: str, venue_id: str, alert_id: str, *, by: str, at: datetime, note: str = ""
    ) -> VipAlert:
        """Record that the alert named the wrong person (the first flag stays). NotFoundError if
        unknown."""
        ...


class MessageStore(Protocol):
    """Campaign messages, their per-participant jobs (through the outbox) and delivery counts."""

    def add(self, message: CampaignMessage, jobs: Sequence[NotificationJob]) -> None:
        """Store the message and put its jobs in the outbox (in batches: the message record is
        written first, so counts always have a record to land on); AlreadyExistsError if taken."""
        ...

    def queue(self, message: CampaignMessage, jobs: Sequence[NotificationJob]) -> None:
        """Put ``jobs`` of a stored message in the outbox again (a retried send after a partial
        failure): a job already there is not sent twice (job ids are stable)."""
        ...

    def get(self, tenant_id: str, campaign_id: str, message_id: str) -> CampaignMessage:
        """The message with its counts; NotFoundError if unknown."""
        ...

    def list(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[CampaignMessage]:
        """A campaign's messages, newest first."""
        ...

    def count(self, tenant_id: str, campaign_id: str, message_id: str, outcome: str) -> None:
        """Add one to the message's ``outcome`` counter (``delivered``, ``failed`` or
        ``no_endpoint``); the caller counts each job once (idempotent consumer)."""
        ...


class CrmGateway(Protocol):
    """A venue's CRM, as the VIP enrichment consumer sees it."""

    def lookup(self, customer_id: str, *, deadline_s: float) -> ProfileLookup:
        """Return the customer's profile, answering within ``deadline_s`` seconds.

        Never raises for CRM trouble: a CRM that is down, slow or refusing is ``"unavailable"``.
        """
        ...

    def notify(self, sighting: dict[str, object]) -> None:
        """Tell the CRM that a VIP was seen; raises ``DependencyError`` when that fails."""
        ...


class CrmDirectory(Protocol):
    """The CRM connector of each venue (built from its ``CrmConfig`` and kept warm, so that the
    breaker and the profile cache live across invocations)."""

    def gateway(self, venue: Venue) -> CrmGateway | None:
        """The venue's connector; None when the venue has no CRM."""
        ...


class EgressPolicy(Protocol):
    """Where the platform may send requests on a tenant's behalf (CRM URLs, webhooks)."""

    def check_url(self, url: str, *, what: str) -> None:
        """Raise ``InvalidInputError`` (naming the field ``what``) when ``url`` may not be called:
        a refused scheme, or a host that is or resolves to a non-public address."""
        ...


class TenantSecretCatalog(Protocol):
    """The names of the secrets a tenant may give its CRM connectors (never their values)."""

    def names(self, tenant_id: str) -> tuple[str, ...]:
        """The tenant's secret names (under ``eventface/tenants/<tenant_id>/``), sorted; raises
        ``DependencyError`` when the secret store cannot be read."""
        ...
