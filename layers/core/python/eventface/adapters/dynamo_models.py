"""DynamoDB schema: the pynamodb models are the one source of the tables.

Design: **a few tables, one per aggregate** (``<prefix>-campaigns``, ``-participants``, ``-stamps``,
``-history``, ``-devices``, ``-cooldowns``, ``-outbox``, ``-api_keys``, ``-audit``, and for VIP
detection and campaign messages ``-venues``, ``-vip_members``, ``-staff_devices``, ``-alerts``,
``-messages``, plus ``-idempotency`` for the queue consumers and ``-memberships`` for the users of
each tenant), rather than one single table. Why:

- pynamodb maps one model to one key schema; a single table would need one catch-all model with
  every attribute nullable, and lose the typed models that are the point of the schema source.
- Each table has its own TTL attribute and life cycle: history (non-matches expire after 72 h),
  cooldown locks (seconds), audit entries (the retention period) and idempotency records (a day)
  expire; campaigns, devices, API keys, venues and alerts never do (unless ``expires`` is set).
- Least privilege per function: the edge function writes stamps, history and cooldowns and reads
  campaigns, participants and devices; IAM policies follow table ARNs.
- A scan's one TransactWrite spans tables anyway (history event, cooldown, stamp, progress,
  outbox jobs): transactions are not limited to one table.

Access patterns (every one a GetItem, a Query on a key or an index, a conditional write or a
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
user's membership of a tenant         memberships: tenant_id + user_sub (consistent GetItem on
                                      every signed-in request; written only by the platform)
a user's tenants (operators)          memberships GSI ``by_user``: user_sub + tenant_id
venue by id / tenant's venues         venues: tenant_id + venue_id / Query tenant_id
VIP member by id / a venue's members  vip_members: ``tenant#venue`` + member_id / Query
members a frame matched               vip_members: one BatchGetItem (consistent)
a venue's staff devices               staff_devices: ``tenant#venue`` + staff_device_id / Query
VIP alert by id (enrich, push, ack)   alerts: ``tenant#venue`` + alert_id (GetItem, UpdateItem)
a venue's alerts, newest first        alerts LSI ``by_time``: ``tenant#venue`` +
                                      ``<iso sighted at>#<alert id>`` (reverse Query; since is a
                                      key range)
a sighting: alert once per window     TransactWrite: dedupe lock in cooldowns if absent or
                                      expired + alert if absent + its job in the outbox (+ audit)
campaign message by id / count        messages: ``tenant#campaign`` + message_id (ADD a counter)
a campaign's messages, newest first   messages LSI ``by_created``: ``tenant#campaign`` +
                                      ``<iso created at>#<message id>``
consumer idempotency records          idempotency: id (Powertools' DynamoDBPersistenceLayer)
====================================  =====================================================

**Alerts and messages are keyed by their id, with a local secondary index for time order.** An
alert is reached by id (enrich, push, acknowledge, flag) and listed newest first; a sort key that
starts with the time would need the time to find the alert, and a pointer item per alert would
double every write and leave two items to keep consistent. An LSI shares the table's partition
key, is written atomically with the item, and can be read strongly consistently, so a listing
right after a claim shows the alert. Its cost: an LSI caps a partition (one venue's alerts, one
campaign's messages) at 10 GB, about ten million alerts of a venue; set ``expires`` (TTL) on
alerts if a venue could ever come near that, or to enforce a retention period. An LSI can only be
created with its table, which is the case here: the models are the schema source.

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
from pynamodb.connection import Connection
from pynamodb.exceptions import TableError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection, LocalSecondaryIndex
from pynamodb.models import Model

from eventface.adapters.probe_watch import ProbeWatchItem  # it does not import this module
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
    locale = UnicodeAttribute(default="en")
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
    campaign_id = UnicodeAttribute(default="")  # "" for a venue device
    checkpoint_id = UnicodeAttribute(default="")
    venue_id = UnicodeAttribute(null=True)  # set for a venue device (VIP sightings)
    name = UnicodeAttribute(default="")
    created_at = UTCDateTimeAttribute()
    key_hash = UnicodeAttribute(null=True)  # the current key's hash
    key_hashes = UnicodeSetAttribute(null=True)  # every live key (current, rotated): deleted on revoke
    activation_hash = UnicodeAttribute(null=True)  # the unredeemed activation code: one at a time
    activated_at = UTCDateTimeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    last_seen_at = UTCDateTimeAttribute(null=True)
    type_b = BooleanAttribute(null=True)  # may send templates (Type B); absent: no


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
    campaign_id = UnicodeAttribute(default="")
    checkpoint_id = UnicodeAttribute(default="")
    venue_id = UnicodeAttribute(null=True)
    expires_at = UTCDateTimeAttribute(null=True)
    used_at = UTCDateTimeAttribute(null=True)
    expires = TTLAttribute(null=True)
    type_b = BooleanAttribute(null=True)  # the device's Type B permission, for a one-read check


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


class MembershipsByUser(GlobalSecondaryIndex["MembershipItem"]):  # type: ignore[no-untyped-call]
    """A user's memberships, for operators (which tenant is this user in?)."""

    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_sub = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute(range_key=True)


class MembershipItem(Model):
    """A user's membership of a tenant: only the platform writes it (``eventface users``, the local
    stack), and the management API admits a signed-in user only to a tenant they are a member of."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-memberships"
        billing_mode = BILLING

    tenant_id = UnicodeAttribute(hash_key=True)
    user_sub = UnicodeAttribute(range_key=True)  # the identity provider's user id (token ``sub``)
    username = UnicodeAttribute(default="")
    granted_at = UTCDateTimeAttribute()
    granted_by = UnicodeAttribute(default="")
    by_user = MembershipsByUser()


# ------------------------------------------------------------------------------ VIP detection


class VenueItem(Model):
    """A venue (hotel, gym, golf course) with its dedupe window and CRM connector."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-venues"
        billing_mode = BILLING

    tenant_id = UnicodeAttribute(hash_key=True)
    venue_id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    dedupe_minutes = NumberAttribute()
    #: {"kind", "url", "field_map", "auth_header", "secret_id", "deadline_ms"} (no secret values).
    crm = JSONAttribute()
    #: Optimistic lock: saves are conditional on the version read.
    version = NumberAttribute()


class VipMemberItem(Model):
    """A venue's VIP member (no photo, no template: those live in the venue's gallery)."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-vip_members"
        billing_mode = BILLING

    venue_key = UnicodeAttribute(hash_key=True)  # tenant#venue
    member_id = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    venue_id = UnicodeAttribute()
    name = UnicodeAttribute()
    tier = UnicodeAttribute(default="")
    crm_customer_id = UnicodeAttribute(default="")
    notes = UnicodeAttribute(default="")
    created_at = UTCDateTimeAttribute()
    template_count = NumberAttribute(default=0)


class StaffDeviceItem(Model):
    """A staff device subscribed to a venue's alerts; ``disabled_at`` once its endpoint is dead."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-staff_devices"
        billing_mode = BILLING

    venue_key = UnicodeAttribute(hash_key=True)  # tenant#venue
    staff_device_id = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    venue_id = UnicodeAttribute()
    name = UnicodeAttribute()
    platform = UnicodeAttribute()
    token = UnicodeAttribute(default="")
    locale = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    disabled_at = UTCDateTimeAttribute(null=True)


class AlertsByTime(LocalSecondaryIndex["AlertItem"]):  # type: ignore[no-untyped-call]
    """A venue's alerts in sighting order (newest first with a reverse Query)."""

    class Meta:
        index_name = "by_time"
        projection = AllProjection()

    venue_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class AlertItem(Model):
    """One VIP alert: written by a sighting, enriched, pushed, then handled by staff.

    Keyed by id (every update names the alert); ``sk`` orders the ``by_time`` index. The ``*_by``
    and ``*_at`` attributes of acknowledgement and false-match flags are absent until set, so
    "the first one wins" is ``attribute_not_exists``.
    """

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-alerts"
        billing_mode = BILLING

    venue_key = UnicodeAttribute(hash_key=True)  # tenant#venue
    alert_id = UnicodeAttribute(range_key=True)
    sk = UnicodeAttribute()  # <fixed-width UTC iso sighted_at>#<alert id>
    tenant_id = UnicodeAttribute()
    venue_id = UnicodeAttribute()
    member_id = UnicodeAttribute()
    name = UnicodeAttribute()
    sighted_at = UTCDateTimeAttribute()
    device_id = UnicodeAttribute()
    similarity = NumberAttribute()
    tier = UnicodeAttribute(default="")
    crm_customer_id = UnicodeAttribute(default="")
    profile_status = UnicodeAttribute()
    #: The CRM profile (field -> text), absent until enriched with one.
    profile = JSONAttribute(null=True)
    profile_reason = UnicodeAttribute(default="")
    enriched_at = UTCDateTimeAttribute(null=True)
    pushed_at = UTCDateTimeAttribute(null=True)
    delivered = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    acknowledged_by = UnicodeAttribute(null=True)
    acknowledged_at = UTCDateTimeAttribute(null=True)
    false_match_by = UnicodeAttribute(null=True)
    false_match_at = UTCDateTimeAttribute(null=True)
    false_match_note = UnicodeAttribute(default="")
    #: Unset: alerts are kept. A retention policy may set it (TTL is enabled on the table).
    expires = TTLAttribute(null=True)
    by_time = AlertsByTime()


class MessagesByCreated(LocalSecondaryIndex["MessageItem"]):  # type: ignore[no-untyped-call]
    """A campaign's messages in creation order (newest first with a reverse Query)."""

    class Meta:
        index_name = "by_created"
        projection = AllProjection()

    campaign_key = UnicodeAttribute(hash_key=True)
    created_sk = UnicodeAttribute(range_key=True)


class MessageItem(Model):
    """A campaign message with its delivery counters (``ADD`` on each outcome)."""

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-messages"
        billing_mode = BILLING

    campaign_key = UnicodeAttribute(hash_key=True)  # tenant#campaign
    message_id = UnicodeAttribute(range_key=True)
    created_sk = UnicodeAttribute()  # <fixed-width UTC iso created_at>#<message id>
    tenant_id = UnicodeAttribute()
    campaign_id = UnicodeAttribute()
    title = JSONAttribute()  # locale -> text
    body = JSONAttribute()  # locale -> text
    segment = JSONAttribute()  # {"min_stamps", "completed"}
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    targeted = NumberAttribute(default=0)
    delivered = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    no_endpoint = NumberAttribute(default=0)
    by_created = MessagesByCreated()


class IdempotencyItem(Model):
    """A queue consumer's idempotency record, written by Powertools' ``DynamoDBPersistenceLayer``.

    Only the key and the TTL attribute are declared, with Powertools' default names (``id``,
    ``expiration``: epoch seconds); Powertools writes ``status``, ``data``, ``validation`` and
    ``in_progress_expiration`` itself. This code never reads or writes the table through the model.
    """

    class Meta:
        table_name = f"{DEFAULT_PREFIX}-idempotency"
        billing_mode = BILLING

    id = UnicodeAttribute(hash_key=True)
    expiration = TTLAttribute()


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
    "venues": VenueItem,
    "vip_members": VipMemberItem,
    "staff_devices": StaffDeviceItem,
    "alerts": AlertItem,
    "messages": MessageItem,
    "idempotency": IdempotencyItem,
    "memberships": MembershipItem,
    "probe_watch": ProbeWatchItem,
}
#: Tables whose items expire (TTL enabled on creation).
TTL_TABLES: Final = frozenset(
    {"rate_limits", "device_credentials", "history", "cooldowns", "outbox", "audit", "alerts", "idempotency"}
    | {"probe_watch"}
)
_bind_lock = threading.Lock()
#: The connection of the bound prefix (see :func:`bind`).
_shared: dict[str, Connection] = {}


def table_name(prefix: str, table: str) -> str:
    """``<prefix>-<table>``."""
    return f"{prefix}-{table}"


def bind(prefix: str) -> None:
    """Point every model at the tables of ``prefix``, all through one shared connection.

    pynamodb gives each model a connection of its own, hence a botocore session and client of
    its own: with 18 tables that is 18 clients to build (0.1-0.2 s each on a 2-vCPU box, most of
    it parsing botocore's JSON models) on a cold start, or whenever a model is first used. The
    models of a prefix share one connection instead (botocore clients are thread-safe); its
    client is created on first use, with the environment of that moment (``AWS_ENDPOINT_URL``).
    Binding the bound prefix again keeps the connection, unless a model's was reset meanwhile
    (``model._connection = None``, as the local stack does when the environment changes).
    """
    if not prefix:
        raise ValueError("the table prefix must be a non-empty string (EVENTFACE_TABLE_PREFIX)")
    with _bind_lock:
        names = {model: table_name(prefix, table) for table, model in MODELS.items()}
        current = _shared.get("connection")
        if current is not None and all(
            model._connection is not None
            and model._connection.connection is current
            and model._connection.table_name == name
            for model, name in names.items()
        ):
            return  # bound already, and nothing reset a model's connection since
        shared = Connection()
        for table, model in MODELS.items():
            meta: Any = model.Meta
            meta.table_name = table_name(prefix, table)
            model._connection = None  # rebuilt below for the new name, with its table's key schema
            table_connection = model._get_connection()
            shared.add_meta_table(table_connection.get_meta_table())
            table_connection.connection = shared
        _shared["connection"] = shared


def shared_connection() -> Connection:
    """The connection the models share since the last :func:`bind` (for TransactWrite and raw
    batch calls: one botocore client per process rather than one more)."""
    with _bind_lock:
        if "connection" not in _shared:
            raise RuntimeError("no table prefix is bound: call bind(prefix) (DynamoTables does) first")
        return _shared["connection"]


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
