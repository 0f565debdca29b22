"""The probe guard's per-device record: in DynamoDB (``<prefix>-probe_watch``) and in memory.

One item per device, read with one consistent GetItem while the gallery is prefetched and written
with one conditional PutItem (``version``), only after a Type B probe that matched nobody: every
Lambda container sees the same record, and two containers that race write one after the other
(the loser reads again). The item is bounded (16 quantised templates of 128 bytes plus a few
numbers: about 2.3 KB). ``expires`` (TTL) removes the record of a device that has not probed for
two days, unless it is flagged: a flag stays until an admin clears it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from pynamodb.attributes import (
    BinaryAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import PutError, PynamoDBException
from pynamodb.models import Model

from eventface.domain.errors import EventfaceError
from eventface.domain.probe_guard import ProbeWatch, decode_chains, encode_chains

if TYPE_CHECKING:
    from eventface.adapters.dynamo_repositories import DynamoTables

#: The model's table in ``dynamo_models.MODELS`` (``<prefix>-probe_watch``).
TABLE: Final = "probe_watch"
# As in rate_limit.py: dynamo_models registers this model, so it cannot be imported from there.
_DEFAULT_PREFIX: Final = "eventface"
_BILLING: Final = "PAY_PER_REQUEST"
#: An unflagged record is kept this long after its last write (every bucket has drained by then).
KEEP: Final = timedelta(days=2)
#: BatchGetItem takes at most this many keys.
_BATCH: Final = 100


class ProbeWatchItem(Model):
    """One device's :class:`ProbeWatch`."""

    class Meta:
        table_name = f"{_DEFAULT_PREFIX}-{TABLE}"
        billing_mode = _BILLING

    device_key = UnicodeAttribute(hash_key=True)  # <tenant>#<device>
    tenant_id = UnicodeAttribute()
    device_id = UnicodeAttribute()
    chains = BinaryAttribute(legacy_encoding=False, null=True)
    faces = NumberAttribute(default=0)
    repeats = NumberAttribute(default=0)
    gains = NumberAttribute(default=0)
    updated_at = UTCDateTimeAttribute(null=True)
    throttled_until = UTCDateTimeAttribute(null=True)
    trips = ListAttribute(of=NumberAttribute, null=True)  # epoch seconds
    quarantined_at = UTCDateTimeAttribute(null=True)
    flagged_at = UTCDateTimeAttribute(null=True)
    flags = NumberAttribute(default=0)
    reason = UnicodeAttribute(null=True)
    version = NumberAttribute(default=0)
    expires = TTLAttribute(null=True)


def bind_probe_watch(prefix: str) -> None:
    """Point :class:`ProbeWatchItem` at ``<prefix>-probe_watch``."""
    if not prefix:
        raise ValueError("the table prefix must be a non-empty string (EVENTFACE_TABLE_PREFIX)")
    meta: Any = ProbeWatchItem.Meta
    meta.table_name = f"{prefix}-{TABLE}"


def _key(tenant_id: str, device_id: str) -> str:
    return f"{tenant_id}#{device_id}"


def _to_item(watch: ProbeWatch) -> ProbeWatchItem:
    kept_until = None if watch.flags or watch.updated_at is None else watch.updated_at + KEEP
    return ProbeWatchItem(
        _key(watch.tenant_id, watch.device_id),
        tenant_id=watch.tenant_id,
        device_id=watch.device_id,
        chains=encode_chains(watch.chains) or None,
        faces=watch.faces,
        repeats=watch.repeats,
        gains=watch.gains,
        updated_at=watch.updated_at,
        throttled_until=watch.throttled_until,
        trips=[t.timestamp() for t in watch.trips] or None,
        quarantined_at=watch.quarantined_at,
        flagged_at=watch.flagged_at,
        flags=watch.flags,
        reason=watch.reason,
        version=watch.version + 1,
        expires=kept_until,
    )


def _from_item(item: ProbeWatchItem) -> ProbeWatch:
    return ProbeWatch(
        tenant_id=item.tenant_id,
        device_id=item.device_id,
        chains=decode_chains(bytes(item.chains or b"")),
        faces=float(item.faces or 0),
        repeats=float(item.repeats or 0),
        gains=float(item.gains or 0),
        updated_at=item.updated_at,
        throttled_until=item.throttled_until,
        trips=tuple(datetime.fromtimestamp(t, tz=UTC) for t in cast(list[float], item.trips or [])),
        quarantined_at=item.quarantined_at,
        flagged_at=item.flagged_at,
        flags=int(item.flags or 0),
        reason=item.reason,
        version=int(item.version or 0),
    )


def _translate(exc: PynamoDBException, what: str) -> EventfaceError:
    # Imported on use: dynamo_models imports this module (MODELS), dynamo_repositories imports it.
    from eventface.adapters.dynamo_repositories import _translate as translate

    return translate(exc, what)


class DynamoProbeWatchStore:
    """:class:`ProbeWatchStore` on DynamoDB: a consistent GetItem, a conditional PutItem."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables
        bind_probe_watch(tables.prefix)

    def get(self, tenant_id: str, device_id: str) -> ProbeWatch:
        try:
            return _from_item(ProbeWatchItem.get(_key(tenant_id, device_id), consistent_read=True))
        except ProbeWatchItem.DoesNotExist:
            return ProbeWatch(tenant_id=tenant_id, device_id=device_id)
        except PynamoDBException as exc:
            raise _translate(exc, "reading the device's probe record") from exc

    def save(self, watch: ProbeWatch) -> bool:
        condition = (
            ProbeWatchItem.device_key.does_not_exist()
            if watch.version == 0
            else ProbeWatchItem.version == watch.version
        )
        try:
            _to_item(watch).save(condition=condition)
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise _translate(exc, "writing the device's probe record") from exc
        except PynamoDBException as exc:
            raise _translate(exc, "writing the device's probe record") from exc
        return True

    def get_many(self, tenant_id: str, device_ids: Collection[str]) -> dict[str, ProbeWatch]:
        keys = sorted({_key(tenant_id, d) for d in device_ids})
        found: dict[str, ProbeWatch] = {}
        try:
            for start in range(0, len(keys), _BATCH):
                for item in ProbeWatchItem.batch_get(keys[start : start + _BATCH]):
                    found[item.device_id] = _from_item(item)
        except PynamoDBException as exc:
            raise _translate(exc, "reading the devices' probe records") from exc
        return found


class InMemoryProbeWatchStore:
    """:class:`ProbeWatchStore` in memory (tests, the offline demo); same versioning, one lock."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], ProbeWatch] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, device_id: str) -> ProbeWatch:
        with self._lock:
            stored = self.records.get((tenant_id, device_id))
        return stored or ProbeWatch(tenant_id=tenant_id, device_id=device_id)

    def save(self, watch: ProbeWatch) -> bool:
        key = (watch.tenant_id, watch.device_id)
        with self._lock:
            stored = self.records.get(key)
            if (stored.version if stored else 0) != watch.version:
                return False
            self.records[key] = replace(watch, version=watch.version + 1)
            return True

    def get_many(self, tenant_id: str, device_ids: Collection[str]) -> dict[str, ProbeWatch]:
        with self._lock:
            return {d: self.records[(tenant_id, d)] for d in device_ids if (tenant_id, d) in self.records}
