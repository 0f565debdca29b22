"""Every listing of the admin API under attack, on the real DynamoDB adapters (moto in-process).

- Bounded work: a filter that matches nothing in a log of thousands of entries answers after
  reading a bounded number of items (a short or empty page with a cursor to go on), and paging
  on with the cursors returns every match exactly once. Work is measured as the items DynamoDB
  examined per request (a botocore hook on the tables' client), never by timing.
- Cursors: a forged, tampered, truncated, foreign-tenant or other-listing cursor is a 400 that
  says to start again, on every listing route; the cursor key comes from Secrets Manager through
  ``EVENTFACE_CURSOR_SECRET_ID``, as deployed.

One world per module (tables, secret, two seeded tenants and a tenant with a large log): the
cases only read it.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from eventface import aws
from eventface import bootstrap as bootstrap_module
from eventface.adapters.dynamo_models import AuditItem, create_tables, shared_connection
from eventface.adapters.dynamo_repositories import DynamoTables, audit_item
from eventface.adapters.memory import FixedClock, InMemoryFaceAnalyzer, InMemoryGallery, unit_vector
from eventface.adapters.platform_secrets import read_secret_bytes
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import ALL_AUTHORITIES, ApiKey, AuditEntry, AuditOutcome, secret_hash
from eventface.domain.errors import DependencyError
from eventface.domain.model import RecognitionEvent, ScanOutcome
from eventface.domain.vip import SightingWrite, VipAlert
from eventface.local.apps import ADMIN_PROJECT, load_app
from eventface.local.moto_patches import patch_moto
from eventface.local.stack import FAKE_AWS
from eventface.settings import Settings

admin = load_app(ADMIN_PROJECT, "eventface_admin_app")
NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MODEL = "sface-2021dec"
FACES = {
    b"\xff\xd8face-1": unit_vector(1.0, *([0.0] * 127)),
    b"\xff\xd8face-2": unit_vector(0.0, 1.0, *([0.0] * 126)),
}
#: As in conftest: Streams ARNs would otherwise go to an endpoint in-process moto does not serve.
ENVIRONMENT = {**FAKE_AWS, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}
REFUSED = "this cursor was not issued for this listing: start again without cursor"
#: The large log: audit entries (every BOB_EVERY-th by user:bob) and history events (devices
#: cam-0..cam-{DEVICES-1} in turn).
AUDIT_ENTRIES = 2000
BOB_EVERY = 50
HISTORY_EVENTS = 240
DEVICES = 8
CAMPAIGN = {
    "name": "Spring rally",
    "starts_at": (NOW - timedelta(hours=1)).isoformat(),
    "ends_at": (NOW + timedelta(hours=8)).isoformat(),
    "stamps_required": 1,
}
#: Every listing route; {x} is the tenant's campaign, {v} its venue.
LISTINGS = {
    "campaigns": "/v1/campaigns",
    "participants": "/v1/campaigns/{x}/participants",
    "devices": "/v1/devices",
    "history": "/v1/campaigns/{x}/history",
    "api-keys": "/v1/api-keys",
    "audit": "/v1/audit",
    "venues": "/v1/venues",
    "members": "/v1/venues/{v}/members",
    "staff-devices": "/v1/venues/{v}/staff-devices",
    "alerts": "/v1/venues/{v}/alerts",
    "messages": "/v1/campaigns/{x}/messages",
}
#: Listings that never issue a cursor (one page holds them all).
UNPAGED = {"staff-devices"}


def bound(limit: int) -> int:
    """Items one request of a filtered listing may have DynamoDB examine."""
    return max(4 * limit, 100)


class DynamoReads:
    """Items DynamoDB examined since the last reset: ScannedCount of each Query and Scan, and
    the items of each BatchGetItem (point reads by key are not counted)."""

    def __init__(self) -> None:
        self.examined = 0

    def __call__(self, *, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name in ("Query", "Scan"):
            self.examined += int(parsed.get("ScannedCount", 0))
        elif model.name == "BatchGetItem":
            self.examined += sum(len(items) for items in parsed.get("Responses", {}).values())


@dataclass
class Tenant:
    """A tenant with a key holding every authority, and the ids of what it holds."""

    tenant_id: str
    key: str
    client: Client
    reads: DynamoReads
    ids: dict[str, str] = field(default_factory=dict)
    issued: dict[tuple[str, str], str] = field(default_factory=dict)  # (listing, query) -> cursor

    def get(self, path: str) -> tuple[Any, int]:
        """GET ``path``: the response and the items DynamoDB examined for it."""
        self.reads.examined = 0
        response = self.client.http.get(path, headers={"x-api-key": self.key})
        return response, self.reads.examined

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        headers = {"x-api-key": self.key, "content-type": "application/json"}
        response = self.client.http.request(
            method, path, headers=headers, body=json.dumps(body or {}).encode()
        )
        assert response.status_code == status, (path, response.body)
        return response.json_body

    def path(self, listing: str) -> str:
        return LISTINGS[listing].format(x=self.ids.get("x", ""), v=self.ids.get("v", ""))


@dataclass
class World:
    services: Services
    acme: Tenant
    globex: Tenant
    big: Tenant
    bob_entries: list[str]
    events_by_device: dict[str, list[str]]


def _seed_key(services: Services, tenant_id: str) -> str:
    secret = f"efk_{tenant_id}-{uuid.uuid4().hex}"
    services.deps.api_keys.add(
        ApiKey(
            tenant_id=tenant_id,
            key_id=f"key-{secret_hash(secret)[:8]}",
            name="test",
            prefix=secret[:12],
            key_hash=secret_hash(secret),
            authorities=frozenset(ALL_AUTHORITIES),
            created_at=NOW - timedelta(days=1),
            created_by="test",
            expires_at=NOW + timedelta(days=30),
        )
    )
    return secret


def _event(tenant_id: str, campaign_id: str, i: int, device_id: str) -> RecognitionEvent:
    return RecognitionEvent(
        tenant_id,
        campaign_id,
        f"e{i:05d}",
        NOW - timedelta(seconds=i),
        device_id,
        "gate",
        ScanOutcome.UNKNOWN,
    )


def _seed_listings(tenant: Tenant, services: Services) -> None:
    """At least two items in every paged listing of ``tenant`` (so that limit=1 gives a cursor)."""
    photo = [base64.b64encode(face).decode() for face in FACES]
    campaign_id = tenant.ok("POST", "/v1/campaigns", CAMPAIGN, 201)["campaign_id"]
    tenant.ids["x2"] = tenant.ok("POST", "/v1/campaigns", CAMPAIGN, 201)["campaign_id"]
    checkpoint_id = tenant.ok("POST", f"/v1/campaigns/{campaign_id}/checkpoints", {"name": "Gate"}, 201)[
        "checkpoint_id"
    ]
    tenant.ok("POST", f"/v1/campaigns/{campaign_id}/publish")
    venue_id = tenant.ok("POST", "/v1/venues", {"name": "Grand Hotel"}, 201)["venue_id"]
    tenant.ok("POST", "/v1/venues", {"name": "Annex"}, 201)
    _seed_key(services, tenant.tenant_id)  # a second key (keys cannot mint keys over the API)
    for i in range(2):
        body = {"nickname": f"P{i}", "consent": True, "photo": photo[i], "push_token": "fcm:tok"}
        tenant.ok("POST", f"/v1/campaigns/{campaign_id}/participants", body, 201)
        tenant.ok("POST", f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices", {}, 201)
        tenant.ok("POST", f"/v1/venues/{venue_id}/members", {"name": f"M{i}", "photo": photo[i]}, 201)
        tenant.ok("POST", f"/v1/campaigns/{campaign_id}/messages", {"body": {"en": f"Hi {i}"}}, 201)
        services.deps.history.record(_event(tenant.tenant_id, campaign_id, i, "cam-1"))
        alert = VipAlert(
            tenant.tenant_id, venue_id, f"a{i}", "m", "M", NOW - timedelta(minutes=i), "cam-1", 0.7
        )
        lock = f"lock-{tenant.tenant_id}-{i}"
        assert services.deps.alerts.claim(SightingWrite(alert, lock, NOW + timedelta(minutes=30)))
    tenant.ids.update(x=campaign_id, v=venue_id)


def _seed_large_log(tenant: Tenant, services: Services) -> tuple[list[str], dict[str, list[str]]]:
    """AUDIT_ENTRIES audit entries in batch writes, HISTORY_EVENTS history events; the ids of
    bob's entries and of each device's events, newest first."""
    entries = [
        AuditEntry(
            tenant_id=tenant.tenant_id,
            entry_id=f"seed-{i:05d}",
            at=NOW - timedelta(hours=1, seconds=i),
            actor="user:bob" if i % BOB_EVERY == 7 else "user:alice",
            action="campaigns.list",
            target="/v1/campaigns",
            outcome=AuditOutcome.OK,
        )
        for i in range(AUDIT_ENTRIES)
    ]
    with AuditItem.batch_write() as batch:
        for entry in entries:
            batch.save(audit_item(entry))
    campaign_id = tenant.ok("POST", "/v1/campaigns", CAMPAIGN, 201)["campaign_id"]
    tenant.ids["x"] = campaign_id
    by_device: dict[str, list[str]] = {}
    for i in range(HISTORY_EVENTS):
        event = _event(tenant.tenant_id, campaign_id, i, f"cam-{i % DEVICES}")
        services.deps.history.record(event)
        by_device.setdefault(event.device_id, []).append(event.event_id)
    return [e.entry_id for e in entries if e.actor == "user:bob"], by_device


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            patch.delenv(name, raising=False)
        patch_moto()
        aws.client.cache_clear()
        try:
            prefix = f"t{uuid.uuid4().hex[:12]}"
            create_tables(prefix, wait=False)
            secret = aws.client("secretsmanager").create_secret(
                Name=f"{prefix}/cursor-key", SecretString=secrets.token_urlsafe(32)
            )
            settings = {
                "EVENTFACE_TABLE_PREFIX": prefix,
                "EVENTFACE_CURSOR_SECRET_ID": secret["ARN"],
                "EVENTFACE_KEY_REQUESTS_PER_MINUTE": "1000000",
            }
            services = bootstrap(
                Settings(settings),
                gallery=InMemoryGallery(model_id=MODEL),
                faces=InMemoryFaceAnalyzer(model_id=MODEL, faces=dict(FACES)),
                clock=FixedClock(NOW),
            )
            DynamoTables(prefix)
            reads = DynamoReads()
            shared_connection().client.meta.events.register("after-call.dynamodb", reads)
            patch.setattr(bootstrap_module, "services", lambda: services)
            client = Client(admin.app, stage_name="local", project_dir=str(ADMIN_PROJECT))
            acme, globex, big = (
                Tenant(name, _seed_key(services, name), client, reads) for name in ("acme", "globex", "big")
            )
            for tenant in (acme, globex):
                _seed_listings(tenant, services)
            bob_entries, events_by_device = _seed_large_log(big, services)
            yield World(services, acme, globex, big, bob_entries, events_by_device)
        finally:
            aws.client.cache_clear()


# -- bounded work -------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 50])
def test_audit_filter_matching_nothing_examines_a_bounded_number_of_entries(world, limit):
    # when
    response, examined = world.big.get(f"/v1/audit?actor=nobody&limit={limit}")
    # then: a short (empty) page with a cursor to go on, after reading a bounded part of the log
    assert response.status_code == 200, response.body
    assert response.json_body["items"] == [] and response.json_body["cursor"]
    assert examined <= bound(limit) < AUDIT_ENTRIES


def test_history_filter_matching_nothing_examines_a_bounded_number_of_events(world):
    # given
    since = quote((NOW - timedelta(days=1)).isoformat())
    # when
    response, examined = world.big.get(
        f"/v1/campaigns/{world.big.ids['x']}/history?device_id=nobody&since={since}&limit=1"
    )
    # then
    assert response.status_code == 200, response.body
    assert response.json_body["items"] == [] and response.json_body["cursor"]
    assert examined <= bound(1) < HISTORY_EVENTS


@pytest.mark.parametrize("path", ["/v1/audit?limit=10", "/v1/campaigns/{x}/history?limit=10"])
def test_unfiltered_listing_examines_no_more_than_its_page(world, path):
    # when
    response, examined = world.big.get(path.format(x=world.big.ids["x"]))
    # then
    assert response.status_code == 200 and len(response.json_body["items"]) == 10
    assert examined <= 10


def _follow(tenant: Tenant, path: str, limit: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Every item of a listing, following its cursors; and what each request examined."""
    items: list[dict[str, Any]] = []
    examined: list[int] = []
    cursor: str | None = None
    while True:
        query = f"&cursor={cursor}" if cursor else ""
        response, reads = tenant.get(f"{path}&limit={limit}{query}")
        assert response.status_code == 200, response.body
        items += response.json_body["items"]
        examined.append(reads)
        cursor = response.json_body["cursor"]
        if cursor is None:
            return items, examined


def test_filtered_audit_pages_return_every_match_exactly_once(world):
    # when
    items, examined = _follow(world.big, "/v1/audit?actor=user%3Abob", limit=7)
    # then
    assert [e["entry_id"] for e in items] == world.bob_entries
    assert max(examined) <= bound(7)
    assert len(examined) <= AUDIT_ENTRIES // bound(7) + len(world.bob_entries) // 7 + 2


@pytest.mark.parametrize(("device", "limit"), [("cam-3", 7), ("cam-0", 1), ("cam-5", 100)])
def test_filtered_history_pages_return_every_match_exactly_once(world, device, limit):
    # when
    items, examined = _follow(
        world.big, f"/v1/campaigns/{world.big.ids['x']}/history?device_id={device}", limit
    )
    # then
    assert [e["event_id"] for e in items] == world.events_by_device[device]
    assert all(e["device_id"] == device for e in items)
    assert max(examined) <= bound(limit)


# -- cursors --------------------------------------------------------------------------------------


def _cursor(tenant: Tenant, listing: str, query: str = "") -> str:
    """A cursor ``tenant`` got from ``listing`` (its first page of one item)."""
    if (listing, query) not in tenant.issued:
        response, _ = tenant.get(f"{tenant.path(listing)}?limit=1{query}")
        assert response.status_code == 200 and response.json_body["cursor"], (listing, response.body)
        tenant.issued[listing, query] = str(response.json_body["cursor"])
    return tenant.issued[listing, query]


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def _forged_json(_: World, __: str) -> str:
    # What the attacker sent: a plausible DynamoDB key as base64 JSON (503 "DynamoDB failed" before).
    key = {"tenant_id": {"S": "globex"}, "campaign_id": {"S": "zzz"}, "sk": {"S": "9999"}}
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _own(world: World, listing: str) -> str:
    # A listing that issues no cursor has none to damage: damage another listing's instead.
    return _cursor(world.acme, "campaigns" if listing in UNPAGED else listing)


ATTACKS = {
    "forged-json": _forged_json,
    "forged-signed-look": lambda w, name: _forged_json(w, name) + "." + "A" * 22,
    "garbage": lambda w, name: "not-a-cursor!",
    "tampered": lambda w, name: _flip(_own(w, name), 2),
    "signature-tampered": lambda w, name: _flip(_own(w, name), len(_own(w, name)) - 2),
    "truncated": lambda w, name: _own(w, name)[:-4],
    "foreign-tenant": lambda w, name: _cursor(w.globex, "campaigns" if name in UNPAGED else name),
    "other-listing": lambda w, name: _cursor(w.acme, "devices" if name == "campaigns" else "campaigns"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_cursor_not_issued_for_the_listing_is_400_on_every_route(world, listing, attack):
    # given
    cursor = ATTACKS[attack](world, listing)
    # when
    response, examined = world.acme.get(f"{world.acme.path(listing)}?limit=1&cursor={quote(cursor)}")
    # then: refused before any listing is read
    assert response.status_code == 400, response.body
    assert response.json_body == {"Code": "InvalidInputError", "Message": REFUSED}
    assert examined == 0


@pytest.mark.parametrize(
    ("listing", "issued_with", "used_with"),
    [
        ("audit", "&actor=user%3Abob", "&actor=user%3Aalice"),
        ("audit", "&actor=user%3Abob", ""),
        ("audit", "&action=campaigns.list", "&action=campaigns.list&actor=user%3Abob"),
        ("history", "&device_id=cam-1", "&device_id=cam-2"),
        ("history", "", "&since=2026-04-01T00%3A00%3A00%2B00%3A00"),
        ("alerts", "", "&since=2026-04-01T00%3A00%3A00%2B00%3A00"),
    ],
    ids=[
        "audit-actor",
        "audit-filter-dropped",
        "audit-filter-added",
        "history-device",
        "history-since",
        "alerts-since",
    ],
)
def test_cursor_of_the_same_listing_with_other_filters_is_400(world, listing, issued_with, used_with):
    # given
    cursor = _cursor(world.acme, listing, issued_with)
    # when
    response, _ = world.acme.get(f"{world.acme.path(listing)}?limit=1{used_with}&cursor={quote(cursor)}")
    # then
    assert response.status_code == 400 and response.json_body["Message"] == REFUSED


def test_cursor_of_another_campaign_is_400(world):
    # given: a cursor of the history of the tenant's first campaign
    cursor = _cursor(world.acme, "history")
    # when: used on its second campaign
    response, _ = world.acme.get(
        f"/v1/campaigns/{world.acme.ids['x2']}/history?limit=1&cursor={quote(cursor)}"
    )
    # then
    assert response.status_code == 400 and response.json_body["Message"] == REFUSED


@pytest.mark.parametrize("listing", sorted(set(LISTINGS) - UNPAGED))
def test_cursor_issued_for_the_listing_pages_on(world, listing):
    # given
    path = world.acme.path(listing)
    first, _ = world.acme.get(f"{path}?limit=1")
    # when
    second, _ = world.acme.get(f"{path}?limit=1&cursor={quote(first.json_body['cursor'])}")
    # then
    assert second.status_code == 200, second.body
    assert second.json_body["items"] and second.json_body["items"] != first.json_body["items"]


# -- the cursor key -------------------------------------------------------------------------------


def test_platform_secret_that_is_missing_or_short_is_a_dependency_error(world):
    # given
    short = aws.client("secretsmanager").create_secret(Name=f"short-{uuid.uuid4().hex}", SecretString="abc")
    # when / then
    with pytest.raises(DependencyError, match="could not be read"):
        read_secret_bytes(f"missing-{uuid.uuid4().hex}")
    with pytest.raises(DependencyError, match="at least 16"):
        read_secret_bytes(short["ARN"], min_bytes=16)
