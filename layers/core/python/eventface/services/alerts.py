"""VIP alerts: enrichment by the venue's CRM and the push to staff (the ``vip_enrich`` consumer),
then the staff board's reads and actions (acknowledge, flag a false match).

``enrich_alert`` runs once per alert job. The alert goes out whatever the CRM does: the profile
lookup has what is left of the venue's ``crm.deadline_ms`` counted from the sighting (see
:func:`crm_budget_s`) and, past it, the alert is pushed marked "profile unavailable". The
connector keeps to the deadline itself (per-attempt timeouts, no backoff pause past it); the
call also runs on a worker thread that is waited for only until the deadline plus
:data:`DEADLINE_GRACE_S`, so that a connector stuck where its timeouts do not reach (DNS, a bug)
cannot hold the alert either. A webhook CRM is told about the sighting on a worker thread while
the staff are pushed to; its failure is logged and changes nothing else.

Logs carry ids, statuses and timings: never a profile's contents, an image or a template.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from eventface.domain.cursors import Listing
from eventface.domain.errors import InvalidInputError
from eventface.domain.limits import check_text
from eventface.domain.model import MAX_TEXT, Page
from eventface.domain.vip import (
    AlertJob,
    CrmKind,
    ProfileLookup,
    ProfileStatus,
    StaffDevice,
    Venue,
    VipAlert,
)
from eventface.observability import logger
from eventface.ports_vip import CrmGateway
from eventface.services.deps import Deps
from eventface.services.push_messages import VIP_ALERT, recipient, template, vip_alert_variables

#: How long past the CRM deadline the callout's thread is waited for before the alert goes out
#: without it (thread start and scheduling; the connector itself answers by the deadline).
DEADLINE_GRACE_S: Final = 0.25
#: The least of the CRM deadline a lookup gets, however long its job waited in the queue.
MIN_CRM_SHARE: Final = 0.25
#: Longest note on a false-match flag.
MAX_NOTE: Final = MAX_TEXT
#: CRM callouts and webhook notifications run here, so that waiting for them can be bounded.
#: Threads start on first use, not at import.
_CRM_CALLS: Final = ThreadPoolExecutor(max_workers=8, thread_name_prefix="crm-callout")
#: Reads that overlap the alert's read and the CRM callout.
_READS: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="alert-reads")


@dataclass(frozen=True, slots=True)
class _Enrichment:
    status: ProfileStatus
    profile: Mapping[str, str] | None = None
    reason: str = ""


def enrich_alert(deps: Deps, job: AlertJob) -> VipAlert:
    """Ask the venue's CRM for the guest's profile, store it, and push the alert to the staff.

    Steps: read the alert and its venue; look the member's ``crm_customer_id`` up within the venue's
    CRM deadline (status ``ok``, ``not_found``, ``unavailable`` with the reason, or ``none`` when the
    venue has no CRM, a webhook CRM, or the member no CRM id); store it; push ``vip_alert`` to every
    staff device of the venue that is not disabled, each in its own locale; mark devices the push
    service reports dead as disabled; store the delivery counts. A webhook CRM is notified of the
    sighting meanwhile (a failure is logged, never raised).

    An alert already pushed is returned as it is, and one already enriched is only pushed, so a job
    delivered again after a partial failure neither asks the CRM nor pushes twice.

    Returns
    -------
    VipAlert
        The alert with its profile status and delivery counts.

    Raises
    ------
    NotFoundError
        The alert or the venue does not exist (the job is retried, then dead-lettered).
    """
    started = time.monotonic()
    # The venue and the staff devices are read while the alert is (and the CRM is asked).
    venue_read = _READS.submit(deps.venues.get, job.tenant_id, job.venue_id)
    devices_read = _READS.submit(deps.staff_devices.list, job.tenant_id, job.venue_id)
    alert = deps.alerts.get(job.tenant_id, job.venue_id, job.alert_id)
    if alert.pushed_at is not None:
        logger.info("alert already pushed: nothing to do", extra=_ids(alert))
        return alert
    venue = venue_read.result()
    gateway = _gateway(deps, venue, alert)
    notified = _notify(gateway, venue, alert) if venue.crm.kind is CrmKind.WEBHOOK else None
    if alert.profile_status is ProfileStatus.PENDING:
        enrichment = _enrichment(gateway, venue, alert, crm_budget_s(venue, alert, deps.clock.now()))
        alert = deps.alerts.enrich(
            alert.tenant_id,
            alert.venue_id,
            alert.alert_id,
            status=enrichment.status,
            profile=enrichment.profile,
            reason=enrichment.reason,
            at=deps.clock.now(),
        )
        logger.info(
            "alert enriched",
            extra={
                **_ids(alert),
                "profile_status": alert.profile_status.value,
                "profile_reason": alert.profile_reason,
                "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
    delivered, failed = _push(deps, alert, devices_read.result())
    alert = deps.alerts.pushed(
        alert.tenant_id,
        alert.venue_id,
        alert.alert_id,
        delivered=delivered,
        failed=failed,
        at=deps.clock.now(),
    )
    if notified is not None:
        _await_notification(notified, venue, alert, started)
    logger.info(
        "alert pushed",
        extra={
            **_ids(alert),
            "delivered": delivered,
            "failed": failed,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
        },
    )
    return alert


def _ids(alert: VipAlert) -> dict[str, str]:
    return {"tenant_id": alert.tenant_id, "venue_id": alert.venue_id, "alert_id": alert.alert_id}


def _gateway(deps: Deps, venue: Venue, alert: VipAlert) -> CrmGateway | None:
    if venue.crm.kind is CrmKind.NONE:
        return None
    try:
        return deps.crm.gateway(venue)
    except Exception as exc:
        # A broken connector config must not hold the alert: it goes out "profile unavailable".
        logger.warning(
            "the venue's CRM connector could not be built",
            extra={**_ids(alert), "error": type(exc).__name__},
        )
        return None


def crm_budget_s(venue: Venue, alert: VipAlert, now: datetime) -> float:
    """What is left of the venue's CRM deadline, counted from the sighting (not from when the job
    reached the consumer): staff get the alert within the deadline of the guest's arrival,
    profile or not. A job that waited in the queue still gives the CRM
    :data:`MIN_CRM_SHARE` of the deadline, so that a backlog does not strip every profile."""
    deadline_s = venue.crm.deadline_ms / 1000.0
    waited_s = max(0.0, (now - alert.sighted_at).total_seconds())
    return max(deadline_s * MIN_CRM_SHARE, deadline_s - waited_s)


def _enrichment(gateway: CrmGateway | None, venue: Venue, alert: VipAlert, budget_s: float) -> _Enrichment:
    kind = venue.crm.kind
    if kind is CrmKind.NONE:
        return _Enrichment(ProfileStatus.NONE, reason="the venue has no CRM connector")
    if kind is CrmKind.WEBHOOK:
        return _Enrichment(
            ProfileStatus.NONE,
            reason="the venue's CRM is a webhook: it is told of sightings, it has no profiles",
        )
    if not alert.crm_customer_id:
        return _Enrichment(
            ProfileStatus.NONE, reason="the member has no crm_customer_id: set it to show the CRM profile"
        )
    if gateway is None:
        return _Enrichment(
            ProfileStatus.UNAVAILABLE,
            reason="the venue's CRM connector is misconfigured: check the venue's crm settings",
        )
    future = _CRM_CALLS.submit(gateway.lookup, alert.crm_customer_id, deadline_s=budget_s)
    try:
        lookup = future.result(timeout=budget_s + DEADLINE_GRACE_S)
    except FutureTimeoutError:
        future.cancel()
        return _Enrichment(
            ProfileStatus.UNAVAILABLE,
            reason=f"the CRM did not answer within the {venue.crm.deadline_ms} ms deadline",
        )
    except Exception as exc:
        # The gateway contract is "never raises for CRM trouble"; a bug must not hold the alert.
        logger.warning("the CRM lookup failed", extra={**_ids(alert), "error": type(exc).__name__})
        return _Enrichment(ProfileStatus.UNAVAILABLE, reason=f"the CRM lookup failed ({type(exc).__name__})")
    return _from_lookup(lookup)


def _from_lookup(lookup: ProfileLookup) -> _Enrichment:
    if lookup.status == "ok" and lookup.profile is not None:
        profile = lookup.profile
        fields = {"name": profile.name, "tier": profile.tier, **profile.fields}
        return _Enrichment(
            ProfileStatus.OK, {key: value for key, value in fields.items() if value}, lookup.reason
        )
    if lookup.status == "not_found":
        return _Enrichment(
            ProfileStatus.NOT_FOUND, reason=lookup.reason or "the CRM does not know this customer"
        )
    return _Enrichment(ProfileStatus.UNAVAILABLE, reason=lookup.reason or "the CRM gave no profile")


def _notify(gateway: CrmGateway | None, venue: Venue, alert: VipAlert) -> Future[None] | None:
    if gateway is None:
        return None
    sighting: dict[str, object] = {
        "event": "vip_sighting",
        "tenant_id": alert.tenant_id,
        "venue_id": alert.venue_id,
        "alert_id": alert.alert_id,
        "member_id": alert.member_id,
        "crm_customer_id": alert.crm_customer_id,
        "sighted_at": alert.sighted_at.isoformat(),
        "device_id": alert.device_id,
        "similarity": round(alert.similarity, 4),
    }
    return _CRM_CALLS.submit(gateway.notify, sighting)


def _await_notification(notified: Future[None], venue: Venue, alert: VipAlert, started: float) -> None:
    left = started + venue.crm.deadline_ms / 1000.0 + DEADLINE_GRACE_S - time.monotonic()
    try:
        notified.result(timeout=max(0.0, left))
    except FutureTimeoutError:
        logger.warning(
            "the CRM webhook did not answer within the deadline: the sighting may not have reached it",
            extra={**_ids(alert), "deadline_ms": venue.crm.deadline_ms},
        )
    except Exception as exc:
        logger.warning(
            "the CRM webhook was not notified of the sighting",
            extra={**_ids(alert), "error": type(exc).__name__, "reason": str(exc)},
        )
    else:
        logger.info("the CRM webhook was notified of the sighting", extra=_ids(alert))


def _push(deps: Deps, alert: VipAlert, subscribed: tuple[StaffDevice, ...]) -> tuple[int, int]:
    devices = [d for d in subscribed if d.disabled_at is None]
    if not devices:
        logger.info("no staff device to push the alert to", extra=_ids(alert))
        return 0, 0
    recipients = [
        recipient(
            d.staff_device_id, (d.platform.value, d.token), d.locale, vip_alert_variables(alert, d.locale)
        )
        for d in devices
    ]
    receipts = deps.push.send(template(VIP_ALERT), recipients)
    now = deps.clock.now()
    for receipt in receipts:
        if receipt.status == "disabled":
            deps.staff_devices.disable(alert.tenant_id, alert.venue_id, receipt.recipient_id, now)
            logger.info(
                "staff device disabled: the push service reports its endpoint dead",
                extra={**_ids(alert), "staff_device_id": receipt.recipient_id},
            )
        elif receipt.status == "failed":
            logger.warning(
                "alert push failed",
                extra={
                    **_ids(alert),
                    "staff_device_id": receipt.recipient_id,
                    "provider": receipt.provider,
                    "reason": receipt.reason,
                },
            )
    delivered = sum(r.status == "delivered" for r in receipts)
    return delivered, len(receipts) - delivered


# -- the staff board -------------------------------------------------------------------------------


def list_alerts(
    deps: Deps,
    tenant_id: str,
    venue_id: str,
    limit: int = 50,
    cursor: str | None = None,
    *,
    since: datetime | None = None,
) -> Page[VipAlert]:
    """A venue's alerts, newest first (sighted at or after ``since``).

    Raises
    ------
    NotFoundError
        Unknown venue.
    InvalidInputError
        ``limit`` outside 1..max_page, or ``since`` without a timezone.
    """
    deps.policy.page_limit(limit)
    if since is not None and since.tzinfo is None:
        raise InvalidInputError("since must include a timezone (e.g. 2026-05-01T09:00:00+00:00)")
    listing = Listing(tenant_id, "alerts", venue_id, {"since": since})
    position = deps.cursors.open(listing, cursor)
    deps.venues.get(tenant_id, venue_id)
    return deps.cursors.seal(listing, deps.alerts.list(tenant_id, venue_id, limit, position, since=since))


def get_alert(deps: Deps, tenant_id: str, venue_id: str, alert_id: str) -> VipAlert:
    """One alert; NotFoundError if the venue or the alert is unknown."""
    deps.venues.get(tenant_id, venue_id)
    return deps.alerts.get(tenant_id, venue_id, alert_id)


def acknowledge_alert(
    deps: Deps, principal_actor: str, tenant_id: str, venue_id: str, alert_id: str
) -> VipAlert:
    """Record that ``principal_actor`` will greet the guest (the first acknowledgement stays).

    Raises
    ------
    NotFoundError
        Unknown venue or alert.
    """
    deps.venues.get(tenant_id, venue_id)
    alert = deps.alerts.acknowledge(tenant_id, venue_id, alert_id, by=principal_actor, at=deps.clock.now())
    logger.info("alert acknowledged", extra={**_ids(alert), "by": alert.acknowledged_by})
    return alert


def flag_false_match(
    deps: Deps,
    principal_actor: str,
    tenant_id: str,
    venue_id: str,
    alert_id: str,
    *,
    note: str = "",
) -> VipAlert:
    """Record that the alert named the wrong person (the first flag stays), with an optional note.

    Raises
    ------
    InvalidInputError
        ``note`` over 500 characters or not printable.
    NotFoundError
        Unknown venue or alert.
    """
    text = check_text("note", note, MAX_NOTE, required=False)
    deps.venues.get(tenant_id, venue_id)
    alert = deps.alerts.flag_false_match(
        tenant_id, venue_id, alert_id, by=principal_actor, at=deps.clock.now(), note=text
    )
    logger.info("alert flagged as a false match", extra={**_ids(alert), "by": alert.false_match_by})
    return alert
