"""DynamoDB adapters of the repository ports (pynamodb models of :mod:`dynamo_models`).

Invariants are enforced by DynamoDB, not by reading first: conditional puts for creation and
optimistic locking, and one TransactWrite per recognised scan (history event, cooldown, stamp,
progress, outbox jobs), so that a participant gets at most one stamp per checkpoint and completes
exactly once under any concurrency. pynamodb and botocore errors are translated by error code
into domain errors.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.models import Model
from pynamodb.pagination import ResultIterator
from pynamodb.transactions import TransactWrite

from eventface.adapters.dynamo_models import (
    AuditItem,
    CampaignItem,
    CooldownItem,
    DeviceCredentialItem,
    DeviceItem,
    HistoryItem,
    OutboxItem,
    ParticipantItem,
    StampItem,
    bind,
    shared_connection,
)
from eventface.adapters.sqs_queue import job_message
from eventface.domain.access import AuditEntry
from eventface.domain.errors import (
    AlreadyExistsError,
    DependencyError,
    EventfaceError,
    InvalidInputError,
    NotFoundError,
    StateConflictError,
    UnauthorizedError,
)
from eventface.domain.limits import parse_json
from eventface.domain.model import (
    Campaign,
    CampaignStatus,
    Checkpoint,
    Consent,
    CredentialKind,
    Device,
    DeviceCredential,
    HistoryQuery,
    NotificationTexts,
    Page,
    Participant,
    Progress,
    RecognitionEvent,
    ScanOutcome,
    ScanState,
    ScanWrite,
    Stamp,
)

_M = TypeVar("_M", bound=Model)

CONDITION_FAILED: Final = "ConditionalCheckFailedException"
#: A filtered listing has DynamoDB examine at most this many items per item of the page asked
#: for, and at least MIN_EXAMINED (so that a small page of a sparse filter still moves on).
EXAMINED_PER_PAGE_ITEM: Final = 4
MIN_EXAMINED: Final = 100
_PROGRESS: Final = "progress"
_STAMP: Final = "stamp#"
#: A cooldown lock's item outlives its ``until`` by this much before TTL may delete it.
COOLDOWN_TTL_SLACK_SECONDS: Final = 60
#: A device credential's item outlives its ``expires_at`` by this much before TTL may delete it.
CREDENTIAL_TTL_SLACK: Final = timedelta(days=1)
#: Outbox items are relayed within seconds; TTL removes them after this.
OUTBOX_TTL: Final = timedelta(days=1)
_TRANSIENT_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)


def _code(exc: PynamoDBException) -> str:
    return str(getattr(exc, "cause_response_code", None) or "")


def _translate(exc: PynamoDBException, what: str) -> EventfaceError:
    """A domain error for a pynamodb/botocore failure that has no specific meaning to the caller."""
    code = _code(exc)
    if code == "ValidationException":
        return InvalidInputError(f"{what}: the request was not valid ({exc.cause_response_message})")
    if code == "ResourceNotFoundException":
        return DependencyError(f"{what}: the table does not exist; create the tables (create_tables) first")
    hint = "retry later" if code in _TRANSIENT_CODES else "retry later; if it persists, check the service"
    return DependencyError(f"{what} failed in DynamoDB ({code or type(exc).__name__}): {hint}")


def _client_error(exc: ClientError | BotoCoreError, what: str) -> DependencyError:
    """A domain error for a failed raw botocore call (the few made without pynamodb)."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    return DependencyError(f"{what} failed in DynamoDB ({code or type(exc).__name__}): retry later")


def _join(*parts: str) -> str:
    return "#".join(parts)


def encode_cursor(last_evaluated_key: dict[str, Any] | None) -> str | None:
    """An opaque cursor for DynamoDB's LastEvaluatedKey (None when there is no next page)."""
    if not last_evaluated_key:
        return None
    raw = json.dumps(last_evaluated_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The LastEvaluatedKey of a cursor; InvalidInputError if it was not made by us."""
    if not cursor:
        return None
    try:
        value = parse_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), what="the cursor")
    except (binascii.Error, ValueError, InvalidInputError):
        value = None
    if not isinstance(value, dict):
        raise InvalidInputError("cursor is not valid: pass the cursor of the previous page unchanged")
    return value


def examine_budget(limit: int) -> int:
    """How many items one request of a filtered listing may have DynamoDB examine."""
    return max(EXAMINED_PER_PAGE_ITEM * limit, MIN_EXAMINED)


def bounded_query(
    model: type[_M], result: ResultIterator[_M], *, limit: int, budget: int
) -> tuple[tuple[_M, ...], dict[str, Any] | None]:
    """Up to ``limit`` items of a query made with ``page_size=budget`` (and no ``limit``), having
    DynamoDB examine at most ``budget`` items in all; and the position to go on from (None: the
    end was reached).

    With a filter condition DynamoDB reads items it does not return, and pynamodb's own ``limit``
    keeps querying until that many items matched: a filter that matches nothing would read the
    whole partition in one request. Here reading stops after ``budget`` items, so a page may be
    short, even empty, and still have a position to go on from.
    """
    pages = result.page_iter
    found: list[_M] = []
    examined = 0
    for page in pages:
        examined += int(page.get("ScannedCount", 0))
        raw_items = page.get("Items", [])
        for index, raw in enumerate(raw_items):
            found.append(model.from_raw_data(raw))
            if len(found) == limit:
                if index + 1 < len(raw_items):
                    # Full inside DynamoDB's page: go on right after the last item returned.
                    return tuple(found), {name: raw[name] for name in pages.key_names}
                return tuple(found), pages.last_evaluated_key
        if pages.last_evaluated_key is None or examined >= budget:
            return tuple(found), pages.last_evaluated_key
        pages.page_size = budget - examined  # DynamoDB stopped at 1 MB: examine only the rest
    return tuple(found), None


class DynamoTables:
    """Binds the models to ``<prefix>-*`` tables; shared by every Dynamo adapter of a process."""

    def __init__(self, prefix: str) -> None:
        bind(prefix)
        self.prefix = prefix

    @property
    def connection(self) -> Connection:
        """The connection the models share, also used for transactions (one botocore client)."""
        return shared_connection()


# ------------------------------------------------------------------------------------ campaigns


def _campaign_to_item(campaign: Campaign, version: int) -> CampaignItem:
    return CampaignItem(
        campaign.tenant_id,
        campaign.campaign_id,
        name=campaign.name,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        status=campaign.status.value,
        checkpoints=[
            {"checkpoint_id": c.checkpoint_id, "name": c.name, "location": c.location}
            for c in campaign.checkpoints
        ],
        stamps_required=campaign.stamps_required,
        reward_text=campaign.reward_text,
        stamp_text=campaign.texts.stamp,
        completion_text=campaign.texts.completion,
        cooldown_seconds=campaign.cooldown_seconds,
        version=version,
    )


def _campaign_from_item(item: CampaignItem) -> Campaign:
    return Campaign(
        tenant_id=item.tenant_id,
        campaign_id=item.campaign_id,
        name=item.name,
        starts_at=item.starts_at,
        ends_at=item.ends_at,
        status=CampaignStatus(item.status),
        checkpoints=tuple(
            Checkpoint(c["checkpoint_id"], c["name"], c.get("location", "")) for c in item.checkpoints
        ),
        stamps_required=int(item.stamps_required),
        reward_text=item.reward_text or "",
        texts=NotificationTexts(stamp=item.stamp_text, completion=item.completion_text),
        cooldown_seconds=int(item.cooldown_seconds),
        version=int(item.version),
    )


class DynamoCampaignRepository:
    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, campaign: Campaign) -> Campaign:
        stored = replace(campaign, version=1)
        try:
            _campaign_to_item(stored, 1).save(condition=CampaignItem.tenant_id.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError(
                    f"campaign {campaign.campaign_id} exists already: choose another id"
                ) from exc
            raise _translate(exc, "creating the campaign") from exc
        return stored

    def get(self, tenant_id: str, campaign_id: str) -> Campaign:
        try:
            item = CampaignItem.get(tenant_id, campaign_id, consistent_read=True)
        except CampaignItem.DoesNotExist:
            raise NotFoundError(f"campaign {campaign_id} does not exist: check the id or create it") from None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the campaign") from exc
        return _campaign_from_item(item)

    def save(self, campaign: Campaign) -> Campaign:
        stored = replace(campaign, version=campaign.version + 1)
        try:
            _campaign_to_item(stored, stored.version).save(condition=CampaignItem.version == campaign.version)
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise StateConflictError(
                    f"campaign {campaign.campaign_id} changed meanwhile (or was deleted): reload, retry"
                ) from exc
            raise _translate(exc, "saving the campaign") from exc
        return stored

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Campaign]:
        try:
            result = CampaignItem.query(tenant_id, limit=limit, last_evaluated_key=decode_cursor(cursor))
            items = tuple(_campaign_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing campaigns") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))


# --------------------------------------------------------------------------------- participants


def _participant_from_item(item: ParticipantItem) -> Participant:
    return Participant(
        tenant_id=item.tenant_id,
        campaign_id=item.campaign_id,
        participant_id=item.participant_id,
        nickname=item.nickname,
        consent=Consent(item.consent_given, item.consent_at, item.consent_text_version),
        created_at=item.created_at,
        push_endpoint=item.push_endpoint,
        locale=item.locale or "en",
        template_count=int(item.template_count),
    )


class DynamoParticipantRepository:
    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, participant: Participant) -> None:
        item = ParticipantItem(
            _join(participant.tenant_id, participant.campaign_id),
            participant.participant_id,
            tenant_id=participant.tenant_id,
            campaign_id=participant.campaign_id,
            nickname=participant.nickname,
            consent_given=participant.consent.given,
            consent_at=participant.consent.at,
            consent_text_version=participant.consent.text_version,
            created_at=participant.created_at,
            push_endpoint=participant.push_endpoint,
            locale=participant.locale,
            template_count=participant.template_count,
        )
        try:
            item.save(condition=ParticipantItem.participant_id.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError(f"participant {participant.participant_id} exists already") from exc
            raise _translate(exc, "registering the participant") from exc

    def get(self, tenant_id: str, campaign_id: str, participant_id: str) -> Participant:
        found = self.find(tenant_id, campaign_id, participant_id)
        if found is None:
            raise NotFoundError(f"participant {participant_id} is not registered in campaign {campaign_id}")
        return found

    def find(self, tenant_id: str, campaign_id: str, participant_id: str) -> Participant | None:
        try:
            item = ParticipantItem.get(_join(tenant_id, campaign_id), participant_id, consistent_read=True)
        except ParticipantItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the participant") from exc
        return _participant_from_item(item)

    def list(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[Participant]:
        try:
            result = ParticipantItem.query(
                _join(tenant_id, campaign_id), limit=limit, last_evaluated_key=decode_cursor(cursor)
            )
            items = tuple(_participant_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing participants") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))

    def delete(self, tenant_id: str, campaign_id: str, participant_id: str) -> bool:
        item = ParticipantItem(_join(tenant_id, campaign_id), participant_id)
        try:
            item.delete(condition=ParticipantItem.participant_id.exists())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                return False
            raise _translate(exc, "deleting the participant") from exc
        return True

    def forget_push_endpoint(
        self, tenant_id: str, campaign_id: str, participant_id: str, endpoint: str
    ) -> bool:
        item = ParticipantItem(_join(tenant_id, campaign_id), participant_id)
        try:
            item.update(
                actions=[ParticipantItem.push_endpoint.remove()],
                condition=ParticipantItem.push_endpoint == endpoint,
            )
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                return False
            raise _translate(exc, "forgetting the participant's push endpoint") from exc
        return True


# ------------------------------------------------------------------------------------- stamps


def _to_progress(tenant_id: str, campaign_id: str, participant_id: str, item: StampItem | None) -> Progress:
    if item is None:
        return Progress(tenant_id, campaign_id, participant_id)
    return Progress(
        tenant_id,
        campaign_id,
        participant_id,
        checkpoint_ids=frozenset(item.checkpoint_ids or ()),
        completed_at=item.completed_at,
    )


class DynamoStampBook:
    """Stamps and progress in one partition per participant (written by :class:`DynamoScanLedger`)."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    @staticmethod
    def _progress_item(key: str) -> StampItem | None:
        try:
            return StampItem.get(key, _PROGRESS, consistent_read=True)
        except StampItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the progress") from exc

    def progress(self, tenant_id: str, campaign_id: str, participant_id: str) -> Progress:
        key = _join(tenant_id, campaign_id, participant_id)
        return _to_progress(tenant_id, campaign_id, participant_id, self._progress_item(key))

    def progress_many(
        self, tenant_id: str, campaign_id: str, participant_ids: Sequence[str]
    ) -> dict[str, Progress]:
        """Consistent BatchGetItem, :data:`BATCH_GET_LIMIT` participants a call."""
        ids = list(dict.fromkeys(participant_ids))
        items: dict[str, StampItem] = {}
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            keys = [
                {"participant_key": {"S": _join(tenant_id, campaign_id, p)}, "sk": {"S": _PROGRESS}}
                for p in ids[start : start + BATCH_GET_LIMIT]
            ]
            wanted = {StampItem.Meta.table_name: {"Keys": keys, "ConsistentRead": True}}
            found = batch_get(self._tables, wanted, "reading the participants' progress")
            for raw in found.get(StampItem.Meta.table_name, []):
                item = StampItem.from_raw_data(raw)
                items[item.participant_key.rsplit("#", 1)[-1]] = item
        return {p: _to_progress(tenant_id, campaign_id, p, items.get(p)) for p in ids}

    def _partition(self, tenant_id: str, campaign_id: str, participant_id: str) -> list[StampItem]:
        try:
            return list(StampItem.query(_join(tenant_id, campaign_id, participant_id), consistent_read=True))
        except PynamoDBException as exc:
            raise _translate(exc, "reading the stamps") from exc

    def stamps(self, tenant_id: str, campaign_id: str, participant_id: str) -> list[Stamp]:
        return [
            Stamp(
                tenant_id,
                campaign_id,
                participant_id,
                i.checkpoint_id or "",
                i.device_id or "",
                i.at or _EPOCH,
            )
            for i in self._partition(tenant_id, campaign_id, participant_id)
            if i.sk.startswith(_STAMP)
        ]

    def delete_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        items = self._partition(tenant_id, campaign_id, participant_id)
        _batch_delete(StampItem, items, "erasing the stamps")
        return sum(1 for i in items if i.sk.startswith(_STAMP))


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _batch_delete(model: Any, items: Iterable[Any], what: str) -> None:
    try:
        with model.batch_write() as batch:
            for item in items:
                batch.delete(item)
    except PynamoDBException as exc:
        raise _translate(exc, what) from exc


# ------------------------------------------------------------------------------------ history


def _time_key(at: datetime) -> str:
    """Fixed-width UTC ISO time: sorts lexicographically as the times do (history and audit keys)."""
    if at.tzinfo is None:
        raise InvalidInputError("times must be timezone-aware (UTC): add a timezone, e.g. 'Z'")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _history_sk(event: RecognitionEvent) -> str:
    # The event id breaks ties; "<time>" sorts before every "<time>#<id>", so a bound is exact.
    return f"{_time_key(event.at)}#{event.event_id}"


def _event_from_item(item: HistoryItem) -> RecognitionEvent:
    tenant_id, campaign_id = item.campaign_key.split("#", 1)
    return RecognitionEvent(
        tenant_id=tenant_id,
        campaign_id=campaign_id,
        event_id=item.event_id,
        at=item.at,
        device_id=item.device_id,
        checkpoint_id=item.checkpoint_id,
        outcome=ScanOutcome(item.outcome),
        participant_id=item.participant_id,
        similarity=None if item.similarity is None else float(item.similarity),
        threshold=None if item.threshold is None else float(item.threshold),
        masked=item.masked,
        reason=item.reason,
        expires_at=item.expires,
    )


def audit_item(entry: AuditEntry) -> AuditItem:
    """The item of an audit entry (time-ordered sort key; written only with a not-exists condition)."""
    return AuditItem(
        entry.tenant_id,
        f"{_time_key(entry.at)}#{entry.entry_id}",
        entry_id=entry.entry_id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        outcome=entry.outcome.value,
        detail=entry.detail,
        expires=entry.expires_at,
    )


def _history_item(event: RecognitionEvent) -> HistoryItem:
    participant_key = (
        _join(event.tenant_id, event.campaign_id, event.participant_id) if event.participant_id else None
    )
    return HistoryItem(
        _join(event.tenant_id, event.campaign_id),
        _history_sk(event),
        event_id=event.event_id,
        at=event.at,
        device_id=event.device_id,
        checkpoint_id=event.checkpoint_id,
        outcome=event.outcome.value,
        participant_key=participant_key,
        participant_id=event.participant_id,
        similarity=event.similarity,
        threshold=event.threshold,
        masked=event.masked,
        reason=event.reason,
        expires=event.expires_at,
    )


class DynamoHistoryLog:
    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def record(self, event: RecognitionEvent, audit: AuditEntry | None = None) -> None:
        try:
            if audit is None:
                _history_item(event).save()
                return
            with TransactWrite(connection=self._tables.connection) as transaction:
                transaction.save(_history_item(event))
                transaction.save(audit_item(audit), condition=AuditItem.sk.does_not_exist())
        except PynamoDBException as exc:
            raise _translate(exc, "recording the scan in history") from exc

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
        since = _time_key(wanted.since) if wanted.since else None
        until = _time_key(wanted.until) if wanted.until else None
        # The sort key starts with the time: a range is a key condition, not a filter.
        if since and until:
            range_condition: Any = HistoryItem.sk.between(since, until)
        elif since:
            range_condition = HistoryItem.sk >= since
        elif until:
            range_condition = HistoryItem.sk < until
        else:
            range_condition = None
        if wanted.participant_id is not None:
            return self._list_for_participant(
                tenant_id, campaign_id, wanted, range_condition=range_condition, limit=limit, cursor=cursor
            )
        filters = [
            attribute == value
            for attribute, value in (
                (HistoryItem.device_id, wanted.device_id),
                (HistoryItem.checkpoint_id, wanted.checkpoint_id),
            )
            if value is not None
        ]
        budget = examine_budget(limit) if filters else limit
        try:
            result = HistoryItem.query(
                _join(tenant_id, campaign_id),
                range_key_condition=range_condition,
                filter_condition=functools.reduce(operator.and_, filters) if filters else None,
                scan_index_forward=False,
                page_size=budget,
                last_evaluated_key=decode_cursor(cursor),
            )
            found, position = bounded_query(HistoryItem, result, limit=limit, budget=budget)
            events = (_event_from_item(i) for i in found)
            items = tuple(e for e in events if wanted.matches(e))
        except PynamoDBException as exc:
            raise _translate(exc, "reading the history") from exc
        return Page(items, encode_cursor(position))

    def _list_for_participant(
        self,
        tenant_id: str,
        campaign_id: str,
        wanted: HistoryQuery,
        *,
        range_condition: Any,
        limit: int,
        cursor: str | None,
    ) -> Page[RecognitionEvent]:
        """The participant GSI (keys only) for the page's keys, then the events themselves."""
        try:
            keys = HistoryItem.by_participant.query(
                _join(tenant_id, campaign_id, wanted.participant_id or ""),
                range_key_condition=range_condition,
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=decode_cursor(cursor),
            )
            found = {
                i.sk: _event_from_item(i)
                for i in HistoryItem.batch_get([(k.campaign_key, k.sk) for k in keys])
            }
            ordered = sorted(found.items(), reverse=True)
        except PynamoDBException as exc:
            raise _translate(exc, "reading the participant's history") from exc
        items = tuple(e for _, e in ordered if wanted.matches(e))
        return Page(items, encode_cursor(keys.last_evaluated_key))

    def _keys_for(self, tenant_id: str, campaign_id: str, participant_id: str) -> tuple[HistoryItem, ...]:
        try:
            return tuple(HistoryItem.by_participant.query(_join(tenant_id, campaign_id, participant_id)))
        except PynamoDBException as exc:
            raise _translate(exc, "reading the participant's history") from exc

    def for_participant(
        self, tenant_id: str, campaign_id: str, participant_id: str
    ) -> tuple[RecognitionEvent, ...]:
        keys = self._keys_for(tenant_id, campaign_id, participant_id)
        try:
            found = HistoryItem.batch_get([(k.campaign_key, k.sk) for k in keys])
            return tuple(_event_from_item(i) for i in found)
        except PynamoDBException as exc:
            raise _translate(exc, "reading the participant's history") from exc

    def delete_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> int:
        keys = self._keys_for(tenant_id, campaign_id, participant_id)
        _batch_delete(HistoryItem, (HistoryItem(k.campaign_key, k.sk) for k in keys), "erasing the history")
        return len(keys)


# ------------------------------------------------------------------------------------ devices


def _device_from_item(item: DeviceItem) -> Device:
    return Device(
        tenant_id=item.tenant_id,
        device_id=item.device_id,
        campaign_id=item.campaign_id or "",
        checkpoint_id=item.checkpoint_id or "",
        venue_id=item.venue_id,
        name=item.name or "",
        created_at=item.created_at,
        key_hash=item.key_hash,
        revoked_at=item.revoked_at,
        activated_at=item.activated_at,
        last_seen_at=item.last_seen_at,
        type_b=bool(item.type_b),
    )


def _credential_item(credential: DeviceCredential) -> DeviceCredentialItem:
    expires = credential.expires_at + CREDENTIAL_TTL_SLACK if credential.expires_at else None
    return DeviceCredentialItem(
        credential.secret_hash,
        kind=credential.kind.value,
        tenant_id=credential.tenant_id,
        device_id=credential.device_id,
        campaign_id=credential.campaign_id,
        checkpoint_id=credential.checkpoint_id,
        venue_id=credential.venue_id,
        expires_at=credential.expires_at,
        used_at=credential.used_at,
        expires=expires,
        type_b=credential.type_b,
    )


def _credential_from_item(item: DeviceCredentialItem) -> DeviceCredential:
    return DeviceCredential(
        secret_hash=item.secret_hash,
        kind=CredentialKind(item.kind),
        tenant_id=item.tenant_id,
        device_id=item.device_id,
        campaign_id=item.campaign_id or "",
        checkpoint_id=item.checkpoint_id or "",
        venue_id=item.venue_id,
        expires_at=item.expires_at,
        used_at=item.used_at,
        type_b=bool(item.type_b),
    )


def _type_b_is(type_b: bool) -> Any:
    """The condition "the device's Type B permission is ``type_b``" (absent counts as False)."""
    if type_b:
        return DeviceItem.type_b == True  # noqa: E712 (a DynamoDB condition, not a comparison)
    return DeviceItem.type_b.does_not_exist() | (DeviceItem.type_b == False)  # noqa: E712


def _cancelled(exc: TransactWriteError) -> bool:
    reasons = [getattr(r, "code", None) for r in (exc.cancellation_reasons or [])]
    return _code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons


def _lost_race(exc: TransactWriteError) -> bool:
    """A transaction cancelled by a condition or by a concurrent transaction on the same items."""
    reasons = {getattr(r, "code", None) for r in (exc.cancellation_reasons or [])}
    return _code(exc) == "TransactionCanceledException" and bool(
        reasons & {"ConditionalCheckFailed", "TransactionConflict"}
    )


#: Rounds of read-then-conditional-write a device's credential or permission change may lose to
#: concurrent changes of the same device before giving up (409).
_DEVICE_ROUNDS: Final = 10
ROTATED_MEANWHILE: Final = (
    "this device key was rotated meanwhile by another request: use the key that rotation returned "
    "(or ask the operator for a new activation code)"
)
REVOKED_DEVICE: Final = "this device was revoked: its keys no longer work; register a new device"


def _same(attribute: Any, value: str | None) -> Any:
    return attribute.does_not_exist() if value is None else attribute == value


def _unchanged(item: DeviceItem) -> Any:
    """The condition that the device's key and pending code are still those of ``item``.

    Every change of the device's credentials changes ``key_hash`` (activation, rotation) or
    ``activation_hash`` (a new code) on the device item, in the same transaction: so a write made
    on this condition knows exactly which credential items are live (``key_hashes``, the code).
    """
    return (
        DeviceItem.device_id.exists()
        & _same(DeviceItem.key_hash, item.key_hash)
        & _same(DeviceItem.activation_hash, item.activation_hash)
    )


class DynamoDeviceRegistry:
    """Device records by tenant and id; their secrets (keys, activation codes) by hash.

    Authentication stays one GetItem of the credential; the device item is the lock of every
    change of its credentials. It names every live credential (``key_hashes``: the current key and
    at most the one rotated out before it; ``activation_hash``: the unredeemed code), and every
    change is one transaction conditioned on the device item being as it was read: so concurrent
    rotations serialise (one wins), a new code deletes the earlier one, and a revocation deletes
    every credential that exists, whatever rotations ran before or at the same time.
    """

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, device: Device, activation: DeviceCredential) -> None:
        item = DeviceItem(
            device.tenant_id,
            device.device_id,
            campaign_id=device.campaign_id,
            checkpoint_id=device.checkpoint_id,
            venue_id=device.venue_id,
            name=device.name,
            created_at=device.created_at,
            activation_hash=activation.secret_hash,
            type_b=device.type_b,
        )
        try:
            with TransactWrite(connection=self._tables.connection) as transaction:
                transaction.save(item, condition=DeviceItem.device_id.does_not_exist())
                transaction.save(
                    _credential_item(activation), condition=DeviceCredentialItem.secret_hash.does_not_exist()
                )
        except TransactWriteError as exc:
            if _cancelled(exc):
                raise AlreadyExistsError(
                    "this device id or code is taken: register the device again"
                ) from exc
            raise _translate(exc, "registering the device") from exc

    def credential(self, secret_hash: str) -> DeviceCredential | None:
        try:
            return _credential_from_item(DeviceCredentialItem.get(secret_hash, consistent_read=True))
        except DeviceCredentialItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "authenticating the device") from exc

    def _item(self, tenant_id: str, device_id: str) -> DeviceItem:
        try:
            return DeviceItem.get(tenant_id, device_id, consistent_read=True)
        except DeviceItem.DoesNotExist:
            raise NotFoundError(f"device {device_id} does not exist: check the id") from None
        except PynamoDBException as exc:
            raise _translate(exc, "reading the device") from exc

    def get(self, tenant_id: str, device_id: str) -> Device:
        return _device_from_item(self._item(tenant_id, device_id))

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Device]:
        try:
            result = DeviceItem.query(tenant_id, limit=limit, last_evaluated_key=decode_cursor(cursor))
            items = tuple(_device_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing the devices") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))

    def issue_activation(self, activation: DeviceCredential) -> None:
        for _ in range(_DEVICE_ROUNDS):
            item = self._item(activation.tenant_id, activation.device_id)
            if item.revoked_at is not None:
                raise NotFoundError(f"device {activation.device_id} was revoked: register a new device")
            try:
                with TransactWrite(connection=self._tables.connection) as transaction:
                    transaction.save(
                        _credential_item(activation),
                        condition=DeviceCredentialItem.secret_hash.does_not_exist(),
                    )
                    transaction.update(
                        DeviceItem(item.tenant_id, item.device_id),
                        actions=[DeviceItem.activation_hash.set(activation.secret_hash)],
                        condition=_unchanged(item) & DeviceItem.revoked_at.does_not_exist(),
                    )
                    if item.activation_hash:  # the earlier unredeemed code stops working now
                        transaction.delete(DeviceCredentialItem(item.activation_hash))
            except TransactWriteError as exc:
                if _lost_race(exc):
                    continue  # the device changed since it was read: decide again
                raise _translate(exc, "issuing the activation code") from exc
            return
        raise StateConflictError("the device changed while the code was issued: ask for a new code again")

    def activate(self, activation: DeviceCredential, key: DeviceCredential, at: datetime) -> Device:
        for _ in range(_DEVICE_ROUNDS):
            item = self._item(activation.tenant_id, activation.device_id)
            if item.revoked_at is not None or item.activation_hash != activation.secret_hash:
                raise UnauthorizedError(
                    "this activation code is no longer valid: ask the operator for a new one"
                )
            key = replace(key, type_b=bool(item.type_b))  # the permission as it is now
            try:
                with TransactWrite(connection=self._tables.connection) as transaction:
                    transaction.update(
                        DeviceCredentialItem(activation.secret_hash),
                        actions=[DeviceCredentialItem.used_at.set(at)],
                        condition=DeviceCredentialItem.secret_hash.exists()
                        & DeviceCredentialItem.used_at.does_not_exist(),
                    )
                    transaction.save(
                        _credential_item(key), condition=DeviceCredentialItem.secret_hash.does_not_exist()
                    )
                    transaction.update(
                        DeviceItem(item.tenant_id, item.device_id),
                        actions=[
                            DeviceItem.key_hash.set(key.secret_hash),
                            DeviceItem.key_hashes.set({key.secret_hash}),
                            DeviceItem.activated_at.set(at),
                            DeviceItem.activation_hash.remove(),
                        ],
                        condition=_unchanged(item)
                        & DeviceItem.revoked_at.does_not_exist()
                        & _type_b_is(key.type_b),
                    )
                    for old in item.key_hashes or ():  # a replaced terminal: its old keys stop now
                        transaction.delete(DeviceCredentialItem(old))
            except TransactWriteError as exc:
                if _lost_race(exc):
                    continue  # used, replaced, revoked or rotated meanwhile: decide again
                raise _translate(exc, "activating the device") from exc
            return self.get(activation.tenant_id, activation.device_id)
        raise StateConflictError("the device's keys kept changing during activation: try the code again")

    def rotate(self, old: DeviceCredential, new: DeviceCredential, grace_until: datetime) -> Device:
        for _ in range(_DEVICE_ROUNDS):
            item = self._item(old.tenant_id, old.device_id)
            if item.revoked_at is not None:
                raise UnauthorizedError(REVOKED_DEVICE)
            if item.key_hash != old.secret_hash:
                raise StateConflictError(ROTATED_MEANWHILE)
            new = replace(new, type_b=bool(item.type_b))  # the new key carries the device's permission
            try:
                with TransactWrite(connection=self._tables.connection) as transaction:
                    transaction.update(
                        DeviceCredentialItem(old.secret_hash),
                        actions=[
                            DeviceCredentialItem.expires_at.set(grace_until),
                            DeviceCredentialItem.expires.set(grace_until + CREDENTIAL_TTL_SLACK),
                        ],
                        condition=DeviceCredentialItem.secret_hash.exists()
                        & DeviceCredentialItem.expires_at.does_not_exist(),
                    )
                    transaction.save(
                        _credential_item(new), condition=DeviceCredentialItem.secret_hash.does_not_exist()
                    )
                    transaction.update(
                        DeviceItem(old.tenant_id, old.device_id),
                        actions=[
                            DeviceItem.key_hash.set(new.secret_hash),
                            DeviceItem.key_hashes.set({old.secret_hash, new.secret_hash}),
                        ],
                        condition=_unchanged(item)
                        & DeviceItem.revoked_at.does_not_exist()
                        & _type_b_is(new.type_b),
                    )
                    # The key rotated out before this one ends now: one key in grace at a time.
                    for earlier in (item.key_hashes or set()) - {old.secret_hash}:
                        transaction.delete(DeviceCredentialItem(earlier))
            except TransactWriteError as exc:
                if _lost_race(exc):
                    continue  # the next round says why (revoked, rotated) or tries again
                raise _translate(exc, "rotating the device key") from exc
            return self.get(old.tenant_id, old.device_id)
        raise StateConflictError(ROTATED_MEANWHILE)

    def revoke(self, tenant_id: str, device_id: str, at: datetime) -> Device:
        for _ in range(_DEVICE_ROUNDS):
            item = self._item(tenant_id, device_id)
            live = set(item.key_hashes or ()) | ({item.activation_hash} if item.activation_hash else set())
            if item.revoked_at is not None and not live:
                return _device_from_item(item)
            try:
                with TransactWrite(connection=self._tables.connection) as transaction:
                    transaction.update(
                        DeviceItem(tenant_id, device_id),
                        actions=[
                            DeviceItem.revoked_at.set(item.revoked_at or at),
                            DeviceItem.key_hashes.remove(),
                            DeviceItem.activation_hash.remove(),
                        ],
                        condition=_unchanged(item),
                    )
                    # Every credential it has goes with it: the next request with any finds nothing.
                    for secret_hash in live:
                        transaction.delete(DeviceCredentialItem(secret_hash))
            except TransactWriteError as exc:
                if _lost_race(exc):
                    continue  # a rotation or a new code committed first: revoke what exists now
                raise _translate(exc, "revoking the device") from exc
            return self.get(tenant_id, device_id)
        raise StateConflictError(
            f"the keys of device {device_id} kept changing while it was revoked: revoke it again"
        )

    def set_type_b(self, tenant_id: str, device_id: str, type_b: bool) -> Device:
        for _ in range(_DEVICE_ROUNDS):
            item = self._item(tenant_id, device_id)
            if item.revoked_at is not None:
                raise StateConflictError(f"device {device_id} was revoked: register a new device")
            # The keys that still exist (a rotated key's item may have gone by TTL) get the flag too.
            live = self._live_keys(item.key_hashes or set())
            try:
                with TransactWrite(connection=self._tables.connection) as transaction:
                    transaction.update(
                        DeviceItem(tenant_id, device_id),
                        actions=[DeviceItem.type_b.set(type_b)],
                        condition=_unchanged(item) & DeviceItem.revoked_at.does_not_exist(),
                    )
                    for key_hash in live:
                        transaction.update(
                            DeviceCredentialItem(key_hash),
                            actions=[DeviceCredentialItem.type_b.set(type_b)],
                            condition=DeviceCredentialItem.secret_hash.exists(),
                        )
            except TransactWriteError as exc:
                if _lost_race(exc):
                    continue  # a key was activated, rotated or revoked meanwhile: read again
                raise _translate(exc, "changing the device's permission") from exc
            return self.get(tenant_id, device_id)
        raise StateConflictError(
            f"device {device_id}'s keys kept changing while its permission was set: try again"
        )

    def _live_keys(self, key_hashes: set[str]) -> tuple[str, ...]:
        try:
            found = DeviceCredentialItem.batch_get(sorted(key_hashes), consistent_read=True)
            return tuple(i.secret_hash for i in found)
        except PynamoDBException as exc:
            raise _translate(exc, "reading the device's keys") from exc

    def touch(self, tenant_id: str, device_id: str, at: datetime) -> None:
        try:
            DeviceItem(tenant_id, device_id).update(
                actions=[DeviceItem.last_seen_at.set(at)], condition=DeviceItem.device_id.exists()
            )
        except PynamoDBException as exc:
            if _code(exc) != CONDITION_FAILED:
                raise _translate(exc, "recording when the device was seen") from exc


# ------------------------------------------------------------------------------------- ledger

#: BatchGetItem rounds for keys DynamoDB left unprocessed (throttling) before giving up.
_BATCH_GET_ROUNDS: Final = 5

#: DynamoDB's limits per BatchGetItem and per BatchWriteItem request.
BATCH_GET_LIMIT: Final = 100
_BATCH_WRITE_LIMIT: Final = 25
#: BatchWriteItem rounds for items DynamoDB left unprocessed (throttling) before giving up.
_BATCH_WRITE_ROUNDS: Final = 6


def _backoff(attempt: int) -> None:
    """Sleep before resending what DynamoDB left unprocessed: 20 ms, 40 ms, ... at most 1 s."""
    time.sleep(min(1.0, 0.02 * 2**attempt))


def batch_get(tables: DynamoTables, wanted: dict[str, Any], what: str) -> dict[str, list[dict[str, Any]]]:
    """Raw items by table for a BatchGetItem request, resending unprocessed keys with backoff."""
    found: dict[str, list[dict[str, Any]]] = {}
    client = tables.connection.client
    for attempt in range(_BATCH_GET_ROUNDS):
        if attempt:
            _backoff(attempt - 1)
        try:
            answer = client.batch_get_item(RequestItems=wanted)
        except (ClientError, BotoCoreError) as exc:
            raise _client_error(exc, what) from exc
        for table, items in answer.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        wanted = answer.get("UnprocessedKeys") or {}
        if not wanted:
            return found
    raise DependencyError(f"{what} was throttled by DynamoDB: retry later")


def batch_put(tables: DynamoTables, table: str, items: Sequence[Any], what: str) -> None:
    """Put ``items`` (pynamodb models of ``table``) 25 per BatchWriteItem, resending unprocessed
    items with exponential backoff; DependencyError if DynamoDB keeps refusing them."""
    client = tables.connection.client
    for start in range(0, len(items), _BATCH_WRITE_LIMIT):
        pending = [{"PutRequest": {"Item": i.serialize()}} for i in items[start : start + _BATCH_WRITE_LIMIT]]
        for attempt in range(_BATCH_WRITE_ROUNDS):
            if attempt:
                _backoff(attempt - 1)
            try:
                answer = client.batch_write_item(RequestItems={table: pending})
            except (ClientError, BotoCoreError) as exc:
                raise _client_error(exc, what) from exc
            pending = (answer.get("UnprocessedItems") or {}).get(table) or []
            if not pending:
                break
        else:
            raise DependencyError(
                f"{what} was throttled by DynamoDB ({len(pending)} item(s) not written): retry later"
            )


class DynamoScanLedger:
    """A recognised scan's one read (BatchGetItem, strongly consistent) and one TransactWrite.

    The write holds the history event, the cooldown lock (if absent or expired), and for a new
    stamp the stamp (if absent), the progress (if its version is unchanged) and the notification
    jobs as outbox items: all or nothing, so a lost race leaves no trace and a stamp never exists
    without its jobs.
    """

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def read(self, tenant_id: str, campaign_id: str, participant_id: str, cooldown_key: str) -> ScanState:
        participant_key = _join(tenant_id, campaign_id, participant_id)
        wanted: dict[str, Any] = {
            ParticipantItem.Meta.table_name: {
                "Keys": [
                    {
                        "campaign_key": {"S": _join(tenant_id, campaign_id)},
                        "participant_id": {"S": participant_id},
                    }
                ],
                "ConsistentRead": True,
            },
            StampItem.Meta.table_name: {
                "Keys": [{"participant_key": {"S": participant_key}, "sk": {"S": _PROGRESS}}],
                "ConsistentRead": True,
            },
            CooldownItem.Meta.table_name: {
                "Keys": [{"lock_key": {"S": cooldown_key}}],
                "ConsistentRead": True,
            },
        }
        found = batch_get(self._tables, wanted, "reading the participant's progress")
        participants = found.get(ParticipantItem.Meta.table_name, [])
        progress = found.get(StampItem.Meta.table_name, [])
        cooldowns = found.get(CooldownItem.Meta.table_name, [])
        progress_item = StampItem.from_raw_data(progress[0]) if progress else None
        cooldown = CooldownItem.from_raw_data(cooldowns[0]) if cooldowns else None
        return ScanState(
            participant=_participant_from_item(ParticipantItem.from_raw_data(participants[0]))
            if participants
            else None,
            progress=_to_progress(tenant_id, campaign_id, participant_id, progress_item),
            version=int(progress_item.version or 0) if progress_item is not None else 0,
            cooldown_until=datetime.fromtimestamp(float(cooldown.until), tz=UTC) if cooldown else None,
        )

    def commit(self, write: ScanWrite) -> bool:
        now = write.event.at.timestamp()
        until = write.cooldown_until.timestamp()
        try:
            with TransactWrite(connection=self._tables.connection) as transaction:
                transaction.save(_history_item(write.event))
                if write.audit is not None:
                    transaction.save(audit_item(write.audit), condition=AuditItem.sk.does_not_exist())
                transaction.save(
                    CooldownItem(
                        write.cooldown_key,
                        until=until,
                        expires=datetime.fromtimestamp(until + COOLDOWN_TTL_SLACK_SECONDS, tz=UTC),
                    ),
                    condition=CooldownItem.lock_key.does_not_exist() | (CooldownItem.until <= now),
                )
                if write.stamp is not None:
                    self._stamp(transaction, write)
        except TransactWriteError as exc:
            reasons = [getattr(r, "code", None) for r in (exc.cancellation_reasons or [])]
            if _code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons:
                return False  # another scan of this participant committed first
            if _code(exc) == "TransactionConflictException" or "TransactionConflict" in reasons:
                return False
            raise _translate(exc, "recording the scan") from exc
        return True

    @staticmethod
    def _stamp(transaction: TransactWrite, write: ScanWrite) -> None:
        stamp, after = write.stamp, write.progress
        if stamp is None or after is None:
            raise ValueError("a stamp is written with the progress it leads to")
        key = _join(stamp.tenant_id, stamp.campaign_id, stamp.participant_id)
        transaction.save(
            StampItem(
                key,
                _STAMP + stamp.checkpoint_id,
                at=stamp.at,
                checkpoint_id=stamp.checkpoint_id,
                device_id=stamp.device_id,
            ),
            condition=StampItem.sk.does_not_exist(),
        )
        transaction.save(
            StampItem(
                key,
                _PROGRESS,
                checkpoint_ids=set(after.checkpoint_ids),
                completed_at=after.completed_at,
                version=write.version + 1,
            ),
            condition=StampItem.sk.does_not_exist()
            if write.version == 0
            else StampItem.version == write.version,
        )
        for job in write.jobs:
            message = job_message(job)
            transaction.save(
                OutboxItem(
                    message.message_id,
                    queue=message.queue,
                    body=message.body,
                    group_id=message.group_id,
                    kind=message.kind,
                    created_at=job.created_at,
                    expires=job.created_at + OUTBOX_TTL,
                )
            )
