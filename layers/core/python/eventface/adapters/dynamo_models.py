"""DynamoDB schema: the pynamodb models are the one source of the tables.

Design: **a few tables, one per aggregate** (``<prefix>-campaigns``, ``-participants``, ``-stamps``,
``-history``, ``-devices``, ``-cooldowns``, ``-outbox``, ``-api_keys``, ``-audit``), rather than one
single table. Why:

- pynamodb maps one model to one key schema; a single table would need one catch-all model with
  every attribute nullable, and lose the typed models that are the point of the schema source.
- Each table has its own TTL attribute and life cycle: history (non-matches expire after 72 h),
  cooldown locks (seconds) and audit entries (the retention period) expire; campaigns, devices
  and API keys never do.
- Least privilege per function: the edge function writes stamps, history and cooldowns and reads
  campaigns, participants and devices; IAM policies follow table ARNs.
- A scan's one TransactWrite spans tables anyway (history event, cooldown, stamp, progress,
  outbox jobs): transactions are not limited to one table.

Access patterns (every one a GetItem, a Query on a key or GSI, a conditional write or a
TransactWrite; never a Scan):

====================================  =====================================================
pattern                               key
====================================  =====================================================
campaign by id / tenant's campaigns   campaigns: tenant_id + campaign_id / Query tenant_id
participant by id / list (paged)      participants: ``tenant#campaign`` + participant_id
progress / stamps / erase stamps      stamps: ``tenant#campaign#participant`` + ``progress``
                                      or ``stamp#<checkpoint>`` (Query the partition)
what a scan decides on               BatchGetItem (consistent): participant, progress, cooldown
stamp once, completion exactly once   TransactWrite: history event + cooldown if absent or
                                      expired + stamp if absent + progress if its version is
                                      unchanged (progress carries completion) + outbox jobs
history of a campaign, newest first   history: ``tenant#campaign`` + ``<iso time>#<event id>``
history of a participant (erasure)    history GSI ``by_participant`` (sparse: matched only)
device by key hash (authentication)   device_credentials: secret_hash (consistent GetItem)
activation code (redeem, single use)  device_credentials: secret_hash; TransactWrite with the key
device by id / tenant's devices       devices: tenant_id + device_id / Query tenant_id
cooldown lock                         cooldowns: lock_key, put if absent or expired
outbox (jobs to queue)                outbox: message_id; its stream feeds the outbox relay
API key by hash (authentication)      api_keys: key_hash (strongly consistent GetItem)
API key by id / tenant's keys         api_keys GSI ``by_tenant``: tenant_id + key_id
audit log of a tenant, newest first   audit: tenant_id + ``<iso time>#<entry id>`` (reverse
                                      Query; since/until is a key range, actor/action filters)
append an audit entry                 audit: put if the key is absent (never overwritten)
====================================  =====================================================

Table names come from the settings (``EVENTFACE_TABLE_PREFIX``): :func:`bind` points the models
at ``<prefix>-<table>`` (one prefix per process, like one stage per Lambda). No ``Meta.host``:
pynamodb's botocore client honours ``AWS_ENDPOINT_URL``, as every other client does.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import TableError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from eventface.adapters.rate_limit import RateCounterItem  # it does not import this module

BILLING: Final = "PAY_PER_REQUEST"
DEFAULT_PREFIX: Final = "eventface"


class CampaignItem(Model):
    """A campaign with its checkpoints and texts (read in one GetItem on the hot path)."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-campaigns"
        billing_mode = BILLING

    tenant_id = UnicodeAttribute(hash_key=True)
    campaign_id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    starts_at = UTCDateTimeAttribute()
    ends_at = UTCDateTimeAttribute()
    status = UnicodeAttribute()
    #: [{"checkpoint_id", "name", "location"}...] in campaign order.
    checkpoints = JSONAttribute()
    stamps_required = NumberAttribute()
    reward_text = UnicodeAttribute(default="")
    stamp_text = UnicodeAttribute()
    completion_text = UnicodeAttribute()
    cooldown_seconds = NumberAttribute()
    #: Optimistic lock: saves are conditional on the version read.
    version = NumberAttribute()


class ParticipantItem(Model):
    """A participant of a campaign (no photo, no template: those live in the gallery)."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-participants"
        billing_mode = BILLING

    campaign_key = UnicodeAttribute(hash_key=True)  # tenant#campaign
    participant_id = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    campaign_id = UnicodeAttribute()
    nickname = UnicodeAttribute()
    consent_given = BooleanAttribute()
    consent_at = UTCDateTimeAttribute()
    consent_text_version = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    push_endpoint = UnicodeAttribute(null=True)
    template_count = NumberAttribute(default=0)


class StampItem(Model):
    """One partition per participant: a ``progress`` item and one ``stamp#<checkpoint>`` per stamp."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-stamps"
        billing_mode = BILLING

    participant_key = UnicodeAttribute(hash_key=True)  # tenant#campaign#participant
    sk = UnicodeAttribute(range_key=True)  # "progress" | "stamp#<checkpoint>"
    at = UTCDateTimeAttribute(null=True)
    checkpoint_id = UnicodeAttribute(null=True)
    device_id = UnicodeAttribute(null=True)
    # progress only
    checkpoint_ids = UnicodeSetAttribute(null=True)
    completed_at = UTCDateTimeAttribute(null=True)
    version = NumberAttribute(null=True)


class ByParticipant(GlobalSecondaryIndex["HistoryItem"]):  # type: ignore[no-untyped-call]
    """Sparse: only events that name a participant carry ``participant_key``."""

    class Meta:
        index_name = "by_participant"
        projection = KeysOnlyProjection()

    participant_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class HistoryItem(Model):
    """One recognition event; non-matches carry ``expires`` (TTL)."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-history"
        billing_mode = BILLING

    campaign_key = UnicodeAttribute(hash_key=True)  # tenant#campaign
    sk = UnicodeAttribute(range_key=True)  # <iso at>#<event id>: newest first with a reverse Query
    event_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    device_id = UnicodeAttribute()
    checkpoint_id = UnicodeAttribute()
    outcome = UnicodeAttribute()
    participant_key = UnicodeAttribute(null=True)
    participant_id = UnicodeAttribute(null=True)
    similarity = NumberAttribute(null=True)
    threshold = NumberAttribute(null=True)
    masked = BooleanAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    expires = TTLAttribute(null=True)
    by_participant = ByParticipant()


class DeviceItem(Model):
    """An edge terminal's record (status, binding, last seen); its secrets live in
    ``device_credentials``, by hash."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-devices"
        billing_mode = BILLING

    tenant_id = UnicodeAttribute(hash_key=True)
    device_id = UnicodeAttribute(range_key=True)
    campaign_id = UnicodeAttribute()
    checkpoint_id = UnicodeAttribute()
    name = UnicodeAttribute(default="")
    created_at = UTCDateTimeAttribute()
    key_hash = UnicodeAttribute(null=True)  # the current key's hash
    key_hashes = UnicodeSetAttribute(null=True)  # every live key (current, rotated): deleted on revoke
    activated_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    last_seen_at = UTCDateTimeAttribute(null=True)


class DeviceCredentialItem(Model):
    """A device key or activation code, by the SHA-256 of the secret; carries the device's binding
    so that authenticating a request is one GetItem. ``expires`` (TTL) cleans up used codes and
    rotated keys; ``expires_at`` decides."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-device_credentials"
        billing_mode = BILLING

    secret_hash = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    device_id = UnicodeAttribute()
    campaign_id = UnicodeAttribute()
    checkpoint_id = UnicodeAttribute()
    expires_at = UTCDateTimeAttribute(null=True)
    used_at = UTCDateTimeAttribute(null=True)
    expires = TTLAttribute(null=True)


class CooldownItem(Model):
    """A cooldown lock; ``until`` decides (TTL deletion is lazy), ``expires`` cleans up."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-cooldowns"
        billing_mode = BILLING

    lock_key = UnicodeAttribute(hash_key=True)
    until = NumberAttribute()
    expires = TTLAttribute()


class OutboxItem(Model):
    """A queue message waiting for the relay, written in the same transaction as the fact it
    announces (a stamp, a completion). The table's stream (new images) feeds the outbox relay,
    which sends the message to its queue; ``expires`` removes the item a day later."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-outbox"
        billing_mode = BILLING
        stream_view_type = "NEW_IMAGE"

    message_id = UnicodeAttribute(hash_key=True)  # the job id: one item per fact
    queue = UnicodeAttribute()  # logical queue name, e.g. "notifications"
    body = UnicodeAttribute()
    group_id = UnicodeAttribute()  # FIFO message group (per participant: pushes stay in order)
    kind = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires = TTLAttribute()


class ApiKeysByTenant(GlobalSecondaryIndex["ApiKeyItem"]):  # type: ignore[no-untyped-call]
    """A tenant's keys by id: listings, and reaching a key by id to read or revoke it."""

    class Meta:
        index_name = "by_tenant"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute(range_key=True)


class ApiKeyItem(Model):
    """A management API key, keyed by the SHA-256 of its secret (the secret itself is never stored)."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-api_keys"
        billing_mode = BILLING

    key_hash = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    key_id = UnicodeAttribute()
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()  # the first characters of the secret, shown in listings
    authorities = UnicodeSetAttribute()  # never empty: a key grants at least one authority
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()  # Principal.actor of the creator
    expires_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)
    last_used_at = UTCDateTimeAttribute(null=True)
    by_tenant = ApiKeysByTenant()


class AuditItem(Model):
    """One audit log entry; append-only (conditional put), removed by TTL after the retention."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-audit"
        billing_mode = BILLING

    tenant_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # <fixed-width UTC iso at>#<entry id>: newest first reversed
    entry_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    target = UnicodeAttribute()
    outcome = UnicodeAttribute()
    detail = UnicodeAttribute(default="")
    expires = TTLAttribute(null=True)


MODELS: Final[dict[str, type[Model]]] = {
    "campaigns": CampaignItem,
    "participants": ParticipantItem,
    "stamps": StampItem,
    "history": HistoryItem,
    "devices": DeviceItem,
    "device_credentials": DeviceCredentialItem,
    "cooldowns": CooldownItem,
    "outbox": OutboxItem,
    "rate_limits": RateCounterItem,
    "api_keys": ApiKeyItem,
    "audit": AuditItem,
}
#: Tables whose items expire (TTL enabled on creation).
TTL_TABLES: Final = frozenset(
    {"rate_limits", "device_credentials", "history", "cooldowns", "outbox", "audit"}
)
_bind_lock = threading.Lock()


def table_name(prefix: str, table: str) -> str:
    """``<prefix>-<table>``."""
    return f"{prefix}-{table}"


def bind(prefix: str) -> None:
    """Point every model at the tables of ``prefix`` (pynamodb reconnects on a name change)."""
    if not prefix:
        raise ValueError("the table prefix must be a non-empty string (EVENTFACE_TABLE_PREFIX)")
    with _bind_lock:
        for table, model in MODELS.items():
            meta: Any = model.Meta
            meta.table_name = table_name(prefix, table)


def create_tables(prefix: str = DEFAULT_PREFIX, *, wait: bool = True) -> list[str]:
    """Create the missing tables of ``prefix`` (on-demand billing, GSIs, TTL); their names.

    The local stack and the tests call this; the infrastructure code derives its tables from the
    same models.
    """
    bind(prefix)
    created = []
    for table, model in MODELS.items():
        try:
            model.create_table(wait=wait, billing_mode=BILLING)
        except TableError as exc:
            # Creating and catching "exists" is one call; asking first (DescribeTable) is two.
            if getattr(exc, "cause_response_code", None) == "ResourceInUseException":
                continue
            raise
        created.append(table_name(prefix, table))
        if table in TTL_TABLES:
            model.update_ttl(ignore_update_ttl_errors=False)
    return created


def delete_tables(prefix: str = DEFAULT_PREFIX) -> None:
    """Delete the tables of ``prefix`` that exist (tests and local resets only)."""
    bind(prefix)
    for model in MODELS.values():
        if model.exists():
            model.delete_table()
