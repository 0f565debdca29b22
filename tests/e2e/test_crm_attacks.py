"""Issue 11, finding 0, replayed over HTTP on the local stack: a tenant steals another tenant's CRM
secret, or reads internal services through the CRM connector.

Tenant A is the stack's demo tenant (its CRM secret ``eventface/tenants/demo/crm-api-key``); tenant
B (``rival``) is another tenant with a management key. B tries to name A's secret (or the
platform's) in a venue, to point a CRM URL or a webhook at moto's port, the metadata address, a
name that resolves to loopback or a decimal loopback literal; every attempt is a 400. Then the two
attacks are planted directly in DynamoDB (a record written before the fix), and a VIP sighting at
B's venue must neither send A's secret anywhere (the loopback listener receives nothing) nor copy
moto's JSON onto B's alert board.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface.adapters.dynamo_access import DynamoApiKeyRepository
from eventface.adapters.dynamo_repositories import DynamoTables
from eventface.adapters.dynamo_vip import DynamoVenueRepository
from eventface.domain.access import ALL_AUTHORITIES, ApiKey, secret_hash
from eventface.domain.vip import CrmConfig, CrmKind, Venue
from eventface.local.client import AdminClient, Answer, VenueCamera, expect, wait_for_pushes
from eventface.local.crm_server import SAMPLE_FIELD_MAP, CrmTestServer
from eventface.local.stack import PUSH_WEBHOOK_SECRET_NAME, LocalStack

pytestmark = pytest.mark.e2e

RIVAL = "rival"
MEMBER_PHOTO = "images/Tony_Blair/krasserm__Tony_Blair_0002.jpg"
ARRIVAL_PHOTO = "images/Tony_Blair/krasserm__Tony_Blair_0003.jpg"


def _rival(stack: LocalStack) -> AdminClient:
    """Tenant B's management key with every authority (as the platform would issue a tenant)."""
    secret = f"efk_{secrets.token_urlsafe(24)}"
    now = datetime.now(UTC)
    DynamoApiKeyRepository(DynamoTables(stack.table_prefix)).add(
        ApiKey(
            tenant_id=RIVAL,
            key_id=f"key-{uuid.uuid4().hex[:8]}",
            name="rival admin",
            prefix=secret[:12],
            key_hash=secret_hash(secret),
            authorities=frozenset(ALL_AUTHORITIES),
            created_at=now,
            created_by="platform",
            expires_at=now + timedelta(days=1),
        )
    )
    return AdminClient(stack.admin_url, api_key=secret)


@pytest.fixture(scope="module")
def rival(stack: LocalStack) -> AdminClient:
    return _rival(stack)


@pytest.fixture(scope="module")
def owner(stack: LocalStack) -> AdminClient:
    return AdminClient.signed_in(stack.admin_url, stack.user_pool, "owner", stack.users["owner"])


def _rest_venue(url: str, secret_id: str | None = None) -> dict[str, Any]:
    crm: dict[str, Any] = {"kind": "rest", "url": url, "field_map": dict(SAMPLE_FIELD_MAP)}
    if secret_id is not None:
        crm["secret_id"] = secret_id
    return {"name": "Rival Hotel", "crm": crm}


def _refused(answer: Answer, *words: str) -> str:
    assert answer.status == 400, answer
    message = str(answer.body.get("Message", ""))
    assert answer.body.get("Code") == "InvalidInputError" and all(w in message for w in words), answer
    return message


# -- saved: every attempt is a clear 400 ------------------------------------------------------------


@pytest.mark.parametrize("which", ["name", "arn"])
def test_tenant_cannot_name_another_tenants_secret(stack: LocalStack, rival: AdminClient, which: str) -> None:
    # given: tenant A's CRM secret, by name or by ARN, and a listener B controls
    secret_id = stack.crm_secret_id if which == "name" else stack.crm_secret_arn
    with CrmTestServer({}) as listener:
        # when B creates a venue whose CRM sends that secret to its listener
        answer = rival.call("POST", "/v1/venues", _rest_venue(listener.profile_url_template, secret_id))
        # then refused, naming the prefix B may use; nothing was sent
        _refused(answer, "eventface/tenants/rival/")
        assert listener.requests == []


def test_tenant_cannot_name_the_platforms_secret(
    stack: LocalStack, rival: AdminClient, owner: AdminClient
) -> None:
    venue = _rest_venue(stack.crm.profile_url_template, PUSH_WEBHOOK_SECRET_NAME)
    _refused(rival.call("POST", "/v1/venues", venue), "eventface/tenants/rival/")
    _refused(owner.call("POST", "/v1/venues", venue), "eventface/tenants/demo/")


def test_tenant_cannot_move_a_venue_onto_another_tenants_secret(
    stack: LocalStack, rival: AdminClient
) -> None:
    venue_id = expect(rival.call("POST", "/v1/venues", {"name": "Rival Inn"}), 201, what="venue")["venue_id"]
    changes = {"crm": _rest_venue(stack.crm.profile_url_template, stack.crm_secret_id)["crm"]}
    _refused(rival.call("PATCH", f"/v1/venues/{venue_id}", changes), "eventface/tenants/rival/")


def test_tenant_admin_lists_only_its_own_secret_names(rival: AdminClient, owner: AdminClient) -> None:
    ours = expect(owner.call("GET", "/v1/crm/secrets"), 200, what="demo's secrets")
    theirs = expect(rival.call("GET", "/v1/crm/secrets"), 200, what="rival's secrets")
    assert ours == {"prefix": "eventface/tenants/demo/", "secret_ids": ["eventface/tenants/demo/crm-api-key"]}
    assert theirs == {"prefix": "eventface/tenants/rival/", "secret_ids": []}


def _internal_urls(stack: LocalStack) -> dict[str, str]:
    moto_port = stack.aws_endpoint.rsplit(":", 1)[1]
    return {
        "moto": f"{stack.aws_endpoint}/{{customer_id}}",
        "metadata": "http://169.254.169.254/latest/meta-data/{customer_id}",
        "name-to-loopback": f"http://localhost:{moto_port}/{{customer_id}}",
        "decimal-loopback": f"http://2130706433:{moto_port}/{{customer_id}}",
        "mapped-loopback": f"http://[::ffff:127.0.0.1]:{moto_port}/{{customer_id}}",
        "ipv6-metadata": "http://[fd00:ec2::254]/latest/meta-data/{customer_id}",
    }


@pytest.mark.parametrize(
    "target", ["moto", "metadata", "name-to-loopback", "decimal-loopback", "mapped-loopback", "ipv6-metadata"]
)
def test_crm_url_to_an_internal_address_is_refused(
    stack: LocalStack, owner: AdminClient, target: str
) -> None:
    url = _internal_urls(stack)[target]
    _refused(owner.call("POST", "/v1/venues", _rest_venue(url, stack.crm_secret_id)), "crm.url", "address")


def test_webhooks_to_an_internal_address_are_refused(stack: LocalStack, owner: AdminClient) -> None:
    # given a venue (no CRM) and moto's own port
    venue_id = expect(owner.call("POST", "/v1/venues", {"name": "Hook Hotel"}), 201, what="venue")["venue_id"]
    moto = f"{stack.aws_endpoint}/hook"
    # when a CRM webhook, a staff webhook and a participant's webhook push point at moto
    crm = {"crm": {"kind": "webhook", "url": moto, "secret_id": stack.crm_secret_id}}
    staff = {"name": "Spy", "platform": "webhook", "token": moto}
    participant = {"nickname": "Eve", "consent": True, "photo": "AAAA", "push_token": f"webhook:{moto}"}
    # then each is refused
    _refused(owner.call("PATCH", f"/v1/venues/{venue_id}", crm), "crm.url", "loopback")
    _refused(owner.call("POST", f"/v1/venues/{venue_id}/staff-devices", staff), "token", "loopback")
    _refused(owner.call("POST", "/v1/campaigns/any/participants", participant), "push_token", "loopback")


def test_the_stacks_own_crm_and_push_webhook_are_allowed(stack: LocalStack, owner: AdminClient) -> None:
    venue = _rest_venue(stack.crm.profile_url_template, stack.crm_secret_id)
    venue_id = expect(owner.call("POST", "/v1/venues", venue), 201, what="venue on the stack's CRM")[
        "venue_id"
    ]
    staff = {"name": "Desk hook", "platform": "webhook", "token": stack.push_webhook.webhook_url}
    expect(
        owner.call("POST", f"/v1/venues/{venue_id}/staff-devices", staff), 201, what="webhook staff device"
    )


# -- planted: a record written around the service (before the fix) -----------------------------------


def _plant_and_sight(
    stack: LocalStack, rival: AdminClient, crm: CrmConfig, photo_bytes: Callable[[str], bytes]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """B's venue with ``crm`` written straight to DynamoDB, a VIP member, an inbox staff device, a
    camera; the member arrives. The alert as B's board shows it, and the staff pushes."""
    venue = Venue(RIVAL, uuid.uuid4().hex, "Planted Hotel", datetime.now(UTC), crm=crm, dedupe_minutes=0)
    DynamoVenueRepository(DynamoTables(stack.table_prefix)).add(venue)
    base = f"/v1/venues/{venue.venue_id}"
    member = {
        "name": "Blair",
        "photo": base64.b64encode(photo_bytes(MEMBER_PHOTO)).decode(),
        "crm_customer_id": "hotel-1002",
    }
    expect(rival.call("POST", f"{base}/members", member), 201, what="member")
    desk = expect(
        rival.call("POST", f"{base}/staff-devices", {"name": "desk", "platform": "inbox"}), 201, what="desk"
    )
    code = expect(rival.call("POST", f"{base}/devices", {"name": "Lobby"}), 201, what="camera")[
        "activation_code"
    ]
    camera = VenueCamera.activated(stack.edge_url, code)
    (face,) = expect(camera.sight(photo_bytes(ARRIVAL_PHOTO)), 200, what="sighting")["faces"]
    assert face["vip"] and face["alerted"], face
    pushes = wait_for_pushes(stack.inbox_dir, desk["staff_device_id"], expected=1, wait_seconds=15)
    alert = expect(rival.call("GET", f"{base}/alerts/{face['alert_id']}"), 200, what="alert")
    return alert, pushes


def test_planted_foreign_secret_is_never_read_or_sent(
    stack: LocalStack, rival: AdminClient, photo_bytes: Callable[[str], bytes]
) -> None:
    # given: B's venue record names A's secret, its URL the stack's allow-listed loopback CRM (a
    # listener the egress policy lets through: only the secret check can stop the leak)
    stack.crm.clear()
    crm = CrmConfig(
        CrmKind.REST, stack.crm.profile_url_template, dict(SAMPLE_FIELD_MAP), secret_id=stack.crm_secret_id
    )
    # when a VIP arrives at B's venue
    alert, pushes = _plant_and_sight(stack, rival, crm, photo_bytes)
    # then the alert went out without a profile, saying why, and the listener received nothing
    assert alert["profile_status"] == "unavailable" and alert["profile"] is None, alert
    assert "not one of this tenant's secrets" in alert["profile_reason"], alert
    assert len(pushes) == 1
    assert stack.crm.requests == []


def test_planted_internal_url_copies_nothing_onto_the_alert_board(
    stack: LocalStack, rival: AdminClient, photo_bytes: Callable[[str], bytes]
) -> None:
    # given: B's venue record points the CRM at moto's port with a field map over its JSON
    crm = CrmConfig(CrmKind.REST, f"{stack.aws_endpoint}/moto-api/data.json?{{customer_id}}", {"name": "s3"})
    # when a VIP arrives at B's venue
    alert, _ = _plant_and_sight(stack, rival, crm, photo_bytes)
    # then moto was not called for B: no profile, the egress policy named as the reason
    assert alert["profile_status"] == "unavailable" and alert["profile"] is None, alert
    assert "egress policy refuses" in alert["profile_reason"] and "loopback" in alert["profile_reason"], alert
