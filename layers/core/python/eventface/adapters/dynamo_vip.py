"""DynamoDB adapters of the VIP-detection and campaign-message ports (:mod:`eventface.ports_vip`).

Tables and keys are described in :mod:`eventface.adapters.dynamo_models`. As in
:mod:`eventface.adapters.dynamo_repositories`, invariants are enforced by DynamoDB rather than by
reading first:

- a sighting is one TransactWrite: the dedupe lock (in ``cooldowns``, put only if absent or expired
  at the sighting), the alert (only if new), its ``vip_enrich`` job in the outbox and the audit
  entry; a lost race or a sighting inside the window writes nothing;
- acknowledging or flagging an alert is an UpdateItem conditional on the attribute being absent,
  so the first member of staff wins and a repeat changes nothing;
- venues are saved with optimistic locking on ``version``; delivery counts are atomic ``ADD``\\ s.

pynamodb and botocore errors are translated by error code into domain errors
(``DependencyError`` for the service failing: the message says what failed and to retry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

from pynamodb.attributes import Attribute
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from eventface.adapters.dynamo_models import (
    AlertItem,
    AuditItem,
    CooldownItem,
    MessageItem,
    OutboxItem,
    StaffDeviceItem,
    VenueItem,
    VipMemberItem,
)
from eventface.adapters.dynamo_repositories import (
    BATCH_GET_LIMIT,
    CONDITION_FAILED,
    COOLDOWN_TTL_SLACK_SECONDS,
    OUTBOX_TTL,
    DynamoTables,
    _code,
    _join,
    _time_key,
    _translate,
    audit_item,
    batch_get,
    batch_put,
    decode_cursor,
    encode_cursor,
)
from eventface.adapters.sqs_queue import QueueMessage, alert_job_message, job_message
from eventface.domain.errors import AlreadyExistsError, NotFoundError, StateConflictError
from eventface.domain.model import NotificationJob, Page
from eventface.domain.vip import (
    DEFAULT_CRM_DEADLINE_MS,
    AlertJob,
    CampaignMessage,
    CrmConfig,
    CrmKind,
    ProfileStatus,
    Segment,
    SightingWrite,
    StaffDevice,
    StaffPlatform,
    Venue,
    VipAlert,
    VipMember,
    dedupe_key,
)

#: An UpdateItem's actions (named here: ``list`` is a method name inside the store classes).
_Actions: TypeAlias = list[Action]


def _outbox_item(message: QueueMessage, created_at: datetime) -> OutboxItem:
    return OutboxItem(
        message.message_id,
        queue=message.queue,
        body=message.body,
        group_id=message.group_id,
        kind=message.kind,
        created_at=created_at,
        expires=created_at + OUTBOX_TTL,
    )


def _lost_race(exc: TransactWriteError) -> bool:
    """Whether a cancelled transaction lost to a condition or a concurrent transaction."""
    reasons = [getattr(r, "code", None) for r in (exc.cancellation_reasons or [])]
    if _code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons:
        return True
    return _code(exc) == "TransactionConflictException" or "TransactionConflict" in reasons


# -------------------------------------------------------------------------------------- venues


def _crm_to_json(crm: CrmConfig) -> dict[str, Any]:
    return {
        "kind": crm.kind.value,
        "url": crm.url,
        "field_map": dict(crm.field_map),
        "auth_header": crm.auth_header,
        "secret_id": crm.secret_id,
        "deadline_ms": crm.deadline_ms,
    }


def _crm_from_json(doc: Mapping[str, Any] | None) -> CrmConfig:
    doc = doc or {}
    secret_id = doc.get("secret_id")
    return CrmConfig(
        kind=CrmKind(doc.get("kind") or CrmKind.NONE.value),
        url=str(doc.get("url") or ""),
        field_map={str(k): str(v) for k, v in (doc.get("field_map") or {}).items()},
        auth_header=str(doc.get("auth_header") or "Authorization"),
        secret_id=secret_id if isinstance(secret_id, str) else None,
        deadline_ms=int(doc.get("deadline_ms") or DEFAULT_CRM_DEADLINE_MS),
    )


def _venue_to_item(venue: Venue) -> VenueItem:
    return VenueItem(
        venue.tenant_id,
        venue.venue_id,
        name=venue.name,
        created_at=venue.created_at,
        dedupe_minutes=venue.dedupe_minutes,
        crm=_crm_to_json(venue.crm),
        version=venue.version,
    )


def _venue_from_item(item: VenueItem) -> Venue:
    return Venue(
        tenant_id=item.tenant_id,
        venue_id=item.venue_id,
        name=item.name,
        created_at=item.created_at,
        dedupe_minutes=int(item.dedupe_minutes),
        crm=_crm_from_json(item.crm),
        version=int(item.version),
    )


class DynamoVenueRepository:
    """Venues in ``<prefix>-venues``: one partition per tenant, saved with optimistic locking."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, venue: Venue) -> Venue:
        """Store a new venue at version 1; AlreadyExistsError if the id is taken."""
        stored = replace(venue, version=1)
        try:
            _venue_to_item(stored).save(condition=VenueItem.venue_id.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError(f"venue {venue.venue_id} exists already: choose another id") from exc
            raise _translate(exc, "creating the venue") from exc
        return stored

    def _find(self, tenant_id: str, venue_id: str) -> Venue | None:
        try:
            return _venue_from_item(VenueItem.get(tenant_id, venue_id, consistent_read=True))
        except VenueItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the venue") from exc

    def get(self, tenant_id: str, venue_id: str) -> Venue:
        """The venue (strongly consistent); NotFoundError if it does not exist for this tenant."""
        found = self._find(tenant_id, venue_id)
        if found is None:
            raise NotFoundError(f"venue {venue_id} does not exist: check the id or create it")
        return found

    def save(self, venue: Venue) -> Venue:
        """Replace the venue if its stored version is ``venue.version``; return it at the next one.

        StateConflictError if someone saved it meanwhile, NotFoundError if it was deleted.
        """
        stored = replace(venue, version=venue.version + 1)
        try:
            _venue_to_item(stored).save(condition=VenueItem.version == venue.version)
        except PynamoDBException as exc:
            if _code(exc) != CONDITION_FAILED:
                raise _translate(exc, "saving the venue") from exc
            if self._find(venue.tenant_id, venue.venue_id) is None:
                raise NotFoundError(f"venue {venue.venue_id} does not exist: create it first") from exc
            raise StateConflictError(
                f"venue {venue.venue_id} was changed meanwhile: reload it and retry"
            ) from exc
        return stored

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Venue]:
        """The tenant's venues by id; pass ``cursor`` back for the next page."""
        try:
            result = VenueItem.query(tenant_id, limit=limit, last_evaluated_key=decode_cursor(cursor))
            items = tuple(_venue_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing the venues") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))


# --------------------------------------------------------------------------------- VIP members


def _member_from_item(item: VipMemberItem) -> VipMember:
    return VipMember(
        tenant_id=item.tenant_id,
        venue_id=item.venue_id,
        member_id=item.member_id,
        name=item.name,
        created_at=item.created_at,
        tier=item.tier or "",
        crm_customer_id=item.crm_customer_id or "",
        notes=item.notes or "",
        template_count=int(item.template_count or 0),
    )


class DynamoVipMemberRepository:
    """VIP members in ``<prefix>-vip_members``: one partition per venue."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, member: VipMember) -> None:
        """Store a new member; AlreadyExistsError if the id is taken in the venue."""
        item = VipMemberItem(
            _join(member.tenant_id, member.venue_id),
            member.member_id,
            tenant_id=member.tenant_id,
            venue_id=member.venue_id,
            name=member.name,
            tier=member.tier,
            crm_customer_id=member.crm_customer_id,
            notes=member.notes,
            created_at=member.created_at,
            template_count=member.template_count,
        )
        try:
            item.save(condition=VipMemberItem.member_id.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError(
                    f"member {member.member_id} exists already in venue {member.venue_id}: choose another id"
                ) from exc
            raise _translate(exc, "adding the VIP member") from exc

    def get(self, tenant_id: str, venue_id: str, member_id: str) -> VipMember:
        """The member; NotFoundError if unknown."""
        found = self.find(tenant_id, venue_id, member_id)
        if found is None:
            raise NotFoundError(f"member {member_id} is not a VIP of venue {venue_id}: check the id")
        return found

    def find(self, tenant_id: str, venue_id: str, member_id: str) -> VipMember | None:
        """The member (strongly consistent), or None."""
        try:
            item = VipMemberItem.get(_join(tenant_id, venue_id), member_id, consistent_read=True)
        except VipMemberItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the VIP member") from exc
        return _member_from_item(item)

    def find_many(self, tenant_id: str, venue_id: str, member_ids: Sequence[str]) -> dict[str, VipMember]:
        """The members that exist among ``member_ids``, by id: one BatchGetItem (strongly
        consistent) per 100 distinct ids, unprocessed keys resent with backoff."""
        ids = sorted({m for m in member_ids if m})  # an empty key would be a ValidationException
        table = VipMemberItem.Meta.table_name
        venue_key = _join(tenant_id, venue_id)
        found: dict[str, VipMember] = {}
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            keys = [
                {"venue_key": {"S": venue_key}, "member_id": {"S": member_id}}
                for member_id in ids[start : start + BATCH_GET_LIMIT]
            ]
            answer = batch_get(
                self._tables, {table: {"Keys": keys, "ConsistentRead": True}}, "reading the VIP members"
            )
            for raw in answer.get(table, []):
                member = _member_from_item(VipMemberItem.from_raw_data(raw))
                found[member.member_id] = member
        return found

    def list(
        self, tenant_id: str, venue_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[VipMember]:
        """A venue's members by id; pass ``cursor`` back for the next page."""
        try:
            result = VipMemberItem.query(
                _join(tenant_id, venue_id), limit=limit, last_evaluated_key=decode_cursor(cursor)
            )
            items = tuple(_member_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing the VIP members") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))

    def delete(self, tenant_id: str, venue_id: str, member_id: str) -> bool:
        """Remove the record; True if there was one."""
        try:
            VipMemberItem(_join(tenant_id, venue_id), member_id).delete(
                condition=VipMemberItem.member_id.exists()
            )
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                return False
            raise _translate(exc, "deleting the VIP member") from exc
        return True


# ------------------------------------------------------------------------------- staff devices


def _staff_device_from_item(item: StaffDeviceItem) -> StaffDevice:
    return StaffDevice(
        tenant_id=item.tenant_id,
        venue_id=item.venue_id,
        staff_device_id=item.staff_device_id,
        name=item.name,
        platform=StaffPlatform(item.platform),
        created_at=item.created_at,
        token=item.token or "",
        locale=item.locale,
        disabled_at=item.disabled_at,
    )


class DynamoStaffDeviceRepository:
    """Staff devices subscribed to a venue's alerts, in ``<prefix>-staff_devices``."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, device: StaffDevice) -> None:
        """Subscribe a device; AlreadyExistsError if the id is taken in the venue."""
        item = StaffDeviceItem(
            _join(device.tenant_id, device.venue_id),
            device.staff_device_id,
            tenant_id=device.tenant_id,
            venue_id=device.venue_id,
            name=device.name,
            platform=device.platform.value,
            token=device.token,
            locale=device.locale,
            created_at=device.created_at,
            disabled_at=device.disabled_at,
        )
        try:
            item.save(condition=StaffDeviceItem.staff_device_id.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError(
                    f"staff device {device.staff_device_id} is subscribed already: choose another id"
                ) from exc
            raise _translate(exc, "subscribing the staff device") from exc

    def list(self, tenant_id: str, venue_id: str) -> tuple[StaffDevice, ...]:
        """Every device of the venue (disabled ones included), by id: the whole partition."""
        try:
            return tuple(
                _staff_device_from_item(i) for i in StaffDeviceItem.query(_join(tenant_id, venue_id))
            )
        except PynamoDBException as exc:
            raise _translate(exc, "listing the staff devices") from exc

    def delete(self, tenant_id: str, venue_id: str, staff_device_id: str) -> bool:
        """Unsubscribe; True if it was subscribed."""
        try:
            StaffDeviceItem(_join(tenant_id, venue_id), staff_device_id).delete(
                condition=StaffDeviceItem.staff_device_id.exists()
            )
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                return False
            raise _translate(exc, "unsubscribing the staff device") from exc
        return True

    def disable(self, tenant_id: str, venue_id: str, staff_device_id: str, at: datetime) -> None:
        """Set ``disabled_at`` (the first time only); no-op if the device is gone."""
        try:
            StaffDeviceItem(_join(tenant_id, venue_id), staff_device_id).update(
                actions=[StaffDeviceItem.disabled_at.set(at)],
                condition=StaffDeviceItem.staff_device_id.exists()
                & StaffDeviceItem.disabled_at.does_not_exist(),
            )
        except PynamoDBException as exc:
            if _code(exc) != CONDITION_FAILED:
                raise _translate(exc, "disabling the staff device") from exc


# -------------------------------------------------------------------------------------- alerts


def _alert_item(alert: VipAlert) -> AlertItem:
    return AlertItem(
        _join(alert.tenant_id, alert.venue_id),
        alert.alert_id,
        sk=f"{_time_key(alert.sighted_at)}#{alert.alert_id}",
        tenant_id=alert.tenant_id,
        venue_id=alert.venue_id,
        member_id=alert.member_id,
        name=alert.name,
        sighted_at=alert.sighted_at,
        device_id=alert.device_id,
        similarity=alert.similarity,
        tier=alert.tier,
        crm_customer_id=alert.crm_customer_id,
        profile_status=alert.profile_status.value,
        profile=dict(alert.profile) if alert.profile is not None else None,
        profile_reason=alert.profile_reason,
        enriched_at=alert.enriched_at,
        pushed_at=alert.pushed_at,
        delivered=alert.delivered,
        failed=alert.failed,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        false_match_by=alert.false_match_by,
        false_match_at=alert.false_match_at,
        false_match_note=alert.false_match_note,
        expires=alert.expires_at,
    )


def _alert_from_item(item: AlertItem) -> VipAlert:
    profile = item.profile
    return VipAlert(
        tenant_id=item.tenant_id,
        venue_id=item.venue_id,
        alert_id=item.alert_id,
        member_id=item.member_id,
        name=item.name,
        sighted_at=item.sighted_at,
        device_id=item.device_id,
        similarity=float(item.similarity),
        tier=item.tier or "",
        crm_customer_id=item.crm_customer_id or "",
        profile_status=ProfileStatus(item.profile_status),
        profile={str(k): str(v) for k, v in profile.items()} if isinstance(profile, dict) else None,
        profile_reason=item.profile_reason or "",
        enriched_at=item.enriched_at,
        pushed_at=item.pushed_at,
        delivered=int(item.delivered or 0),
        failed=int(item.failed or 0),
        acknowledged_by=item.acknowledged_by,
        acknowledged_at=item.acknowledged_at,
        false_match_by=item.false_match_by,
        false_match_at=item.false_match_at,
        false_match_note=item.false_match_note or "",
        expires_at=item.expires,
    )


def _alert_not_found(venue_id: str, alert_id: str) -> NotFoundError:
    return NotFoundError(f"alert {alert_id} does not exist at venue {venue_id}: check the id")


class DynamoAlertStore:
    """VIP alerts in ``<prefix>-alerts`` (by id; the ``by_time`` LSI lists them newest first),
    their dedupe locks in ``<prefix>-cooldowns`` and their jobs in ``<prefix>-outbox``."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def claim(self, write: SightingWrite) -> bool:
        """Write the dedupe lock, the alert, its ``vip_enrich`` job and the audit entry in one
        TransactWrite; False (nothing written) when the member was alerted inside the window or
        a concurrent sighting of the member won.

        With no window (``dedupe_until`` not after the sighting: a venue with ``dedupe_minutes``
        0) there is nothing to deduplicate, so no lock is written or checked and every sighting
        raises its own alert, concurrent ones included: a lock item in the transaction would make
        simultaneous frames conflict and drop alerts. A lock left by an earlier, longer window
        does not apply either (the venue's current setting rules).
        """
        alert = write.alert
        sighted = alert.sighted_at.timestamp()
        until = write.dedupe_until.timestamp()
        job = AlertJob(alert.tenant_id, alert.venue_id, alert.alert_id, alert.sighted_at)
        try:
            with TransactWrite(connection=self._tables.connection) as transaction:
                if until > sighted:
                    transaction.save(
                        CooldownItem(
                            write.dedupe_key,
                            until=until,
                            expires=datetime.fromtimestamp(until + COOLDOWN_TTL_SLACK_SECONDS, tz=UTC),
                        ),
                        condition=CooldownItem.lock_key.does_not_exist() | (CooldownItem.until <= sighted),
                    )
                transaction.save(_alert_item(alert), condition=AlertItem.alert_id.does_not_exist())
                transaction.save(_outbox_item(alert_job_message(job), alert.sighted_at))
                if write.audit is not None:
                    transaction.save(audit_item(write.audit), condition=AuditItem.sk.does_not_exist())
        except TransactWriteError as exc:
            if _lost_race(exc):
                return False
            raise _translate(exc, "recording the VIP alert") from exc
        return True

    def get(self, tenant_id: str, venue_id: str, alert_id: str) -> VipAlert:
        """The alert (strongly consistent); NotFoundError if unknown."""
        try:
            item = AlertItem.get(_join(tenant_id, venue_id), alert_id, consistent_read=True)
        except AlertItem.DoesNotExist:
            raise _alert_not_found(venue_id, alert_id) from None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the alert") from exc
        return _alert_from_item(item)

    def list(
        self,
        tenant_id: str,
        venue_id: str,
        limit: int = 50,
        cursor: str | None = None,
        *,
        since: datetime | None = None,
    ) -> Page[VipAlert]:
        """The venue's alerts newest first; ``since`` (inclusive) is a key range of the index."""
        # "<since>" sorts before every "<since>#<id>": alerts at exactly ``since`` are included.
        range_condition = AlertItem.sk >= _time_key(since) if since is not None else None
        try:
            result = AlertItem.by_time.query(
                _join(tenant_id, venue_id),
                range_key_condition=range_condition,
                scan_index_forward=False,
                consistent_read=True,
                limit=limit,
                last_evaluated_key=decode_cursor(cursor),
            )
            items = tuple(_alert_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing the alerts") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))

    def delete_member(self, tenant_id: str, venue_id: str, member_id: str) -> int:
        """Query the venue's alerts for the member (a filter: erasure is rare, alerts per venue
        bounded by the partition) and delete each, then the member's dedupe lock."""
        deleted = 0
        try:
            for item in AlertItem.query(
                _join(tenant_id, venue_id),
                filter_condition=AlertItem.member_id == member_id,
                consistent_read=True,
                attributes_to_get=["venue_key", "alert_id"],
            ):
                item.delete()
                deleted += 1
            CooldownItem(dedupe_key(tenant_id, venue_id, member_id)).delete()
        except PynamoDBException as exc:
            raise _translate(exc, "erasing the member's alerts") from exc
        return deleted

    def _update(
        self,
        tenant_id: str,
        venue_id: str,
        alert_id: str,
        actions: _Actions,
        what: str,
        *,
        unset: Attribute[Any] | None = None,
    ) -> VipAlert:
        """UpdateItem if the alert exists (and ``unset`` is absent); the updated alert.

        NotFoundError if the alert is unknown; when ``unset`` is set already, the stored alert
        unchanged (the first acknowledgement or flag wins).
        """
        item = AlertItem(_join(tenant_id, venue_id), alert_id)
        condition = AlertItem.alert_id.exists()
        if unset is not None:
            condition &= unset.does_not_exist()
        try:
            item.update(actions=actions, condition=condition)  # ALL_NEW: item is the stored alert
        except PynamoDBException as exc:
            if _code(exc) != CONDITION_FAILED:
                raise _translate(exc, what) from exc
            if unset is None:
                raise _alert_not_found(venue_id, alert_id) from exc
            return self.get(tenant_id, venue_id, alert_id)
        return _alert_from_item(item)

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
        actions: _Actions = [
            AlertItem.profile_status.set(status.value),
            AlertItem.profile.set(dict(profile)) if profile is not None else AlertItem.profile.remove(),
            AlertItem.profile_reason.set(reason),
            AlertItem.enriched_at.set(at),
        ]
        return self._update(tenant_id, venue_id, alert_id, actions, "storing the alert's profile")

    def pushed(
        self, tenant_id: str, venue_id: str, alert_id: str, *, delivered: int, failed: int, at: datetime
    ) -> VipAlert:
        """Store that the alert was pushed, with the counts; NotFoundError if it is gone."""
        actions: _Actions = [
            AlertItem.pushed_at.set(at),
            AlertItem.delivered.set(delivered),
            AlertItem.failed.set(failed),
        ]
        return self._update(tenant_id, venue_id, alert_id, actions, "storing the alert's push")

    def acknowledge(self, tenant_id: str, venue_id: str, alert_id: str, *, by: str, at: datetime) -> VipAlert:
        """Record that ``by`` will greet the guest; the first acknowledgement stays."""
        actions: _Actions = [AlertItem.acknowledged_by.set(by), AlertItem.acknowledged_at.set(at)]
        return self._update(
            tenant_id,
            venue_id,
            alert_id,
            actions,
            "acknowledging the alert",
            unset=AlertItem.acknowledged_by,
        )

    def flag_false_match(
        self, tenant_id: str, venue_id: str, alert_id: str, *, by: str, at: datetime, note: str = ""
    ) -> VipAlert:
        """Record that the alert named the wrong person; the first flag stays."""
        actions: _Actions = [
            AlertItem.false_match_by.set(by),
            AlertItem.false_match_at.set(at),
            AlertItem.false_match_note.set(note),
        ]
        return self._update(
            tenant_id,
            venue_id,
            alert_id,
            actions,
            "flagging the alert as a false match",
            unset=AlertItem.false_match_by,
        )


# ------------------------------------------------------------------------------------ messages


def _message_from_item(item: MessageItem) -> CampaignMessage:
    segment = item.segment if isinstance(item.segment, dict) else {}
    completed = segment.get("completed")
    return CampaignMessage(
        tenant_id=item.tenant_id,
        campaign_id=item.campaign_id,
        message_id=item.message_id,
        title={str(k): str(v) for k, v in (item.title or {}).items()},
        body={str(k): str(v) for k, v in (item.body or {}).items()},
        segment=Segment(
            min_stamps=int(segment.get("min_stamps") or 0),
            completed=completed if isinstance(completed, bool) else None,
        ),
        created_at=item.created_at,
        created_by=item.created_by,
        targeted=int(item.targeted or 0),
        delivered=int(item.delivered or 0),
        failed=int(item.failed or 0),
        no_endpoint=int(item.no_endpoint or 0),
    )


class DynamoMessageStore:
    """Campaign messages in ``<prefix>-messages`` (the ``by_created`` LSI lists them newest
    first), their per-participant jobs in ``<prefix>-outbox``."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, message: CampaignMessage, jobs: Sequence[NotificationJob]) -> None:
        """Store the message, then put its jobs in the outbox, 25 per BatchWriteItem.

        AlreadyExistsError if the message id is taken (then no job is written). The jobs are not
        in the message's transaction (a campaign can have far more participants than a
        transaction holds items); the message is written first, so every count has a record to
        land on.
        """
        item = MessageItem(
            _join(message.tenant_id, message.campaign_id),
            message.message_id,
            created_sk=f"{_time_key(message.created_at)}#{message.message_id}",
            tenant_id=message.tenant_id,
            campaign_id=message.campaign_id,
            title=dict(message.title),
            body=dict(message.body),
            segment={"min_stamps": message.segment.min_stamps, "completed": message.segment.completed},
            created_at=message.created_at,
            created_by=message.created_by,
            targeted=message.targeted,
            delivered=message.delivered,
            failed=message.failed,
            no_endpoint=message.no_endpoint,
        )
        try:
            item.save(condition=MessageItem.message_id.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError(
                    f"message {message.message_id} exists already in campaign {message.campaign_id}: "
                    "send it with another id"
                ) from exc
            raise _translate(exc, "storing the message") from exc
        self.queue(message, jobs)

    def queue(self, message: CampaignMessage, jobs: Sequence[NotificationJob]) -> None:
        """Put the jobs in the outbox, 25 per BatchWriteItem. A job already there is overwritten,
        which is a MODIFY in the table's stream (or nothing at all): the relay sends only INSERTs,
        so it is not sent twice (and push_dispatch is idempotent on the job id anyway)."""
        # One item per job id: a BatchWriteItem refuses two puts of one key, and the same job id
        # is the same job (the queue deduplicates on it too).
        outbox = {m.message_id: _outbox_item(m, j.created_at) for j in jobs for m in (job_message(j),)}
        batch_put(
            self._tables,
            OutboxItem.Meta.table_name,
            list(outbox.values()),
            f"queueing the jobs of message {message.message_id} (the message itself is stored)",
        )

    def get(self, tenant_id: str, campaign_id: str, message_id: str) -> CampaignMessage:
        """The message with its counts (strongly consistent); NotFoundError if unknown."""
        try:
            item = MessageItem.get(_join(tenant_id, campaign_id), message_id, consistent_read=True)
        except MessageItem.DoesNotExist:
            raise NotFoundError(
                f"message {message_id} does not exist in campaign {campaign_id}: check the id"
            ) from None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the message") from exc
        return _message_from_item(item)

    def list(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[CampaignMessage]:
        """A campaign's messages, newest first; pass ``cursor`` back for the next page."""
        try:
            result = MessageItem.by_created.query(
                _join(tenant_id, campaign_id),
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=decode_cursor(cursor),
            )
            items = tuple(_message_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing the messages") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))

    def count(self, tenant_id: str, campaign_id: str, message_id: str, outcome: str) -> None:
        """Add one to the ``outcome`` counter (atomic ``ADD``).

        ValueError for an outcome other than ``delivered``, ``failed`` or ``no_endpoint``;
        NotFoundError if the message is gone.
        """
        counters = {
            "delivered": MessageItem.delivered,
            "failed": MessageItem.failed,
            "no_endpoint": MessageItem.no_endpoint,
        }
        counter = counters.get(outcome)
        if counter is None:
            raise ValueError(f"unknown outcome {outcome!r}: delivered, failed or no_endpoint")
        try:
            MessageItem(_join(tenant_id, campaign_id), message_id).update(
                actions=[counter.add(1)], condition=MessageItem.message_id.exists()
            )
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise NotFoundError(
                    f"message {message_id} does not exist in campaign {campaign_id}: its count is dropped"
                ) from exc
            raise _translate(exc, "counting the message's delivery") from exc
