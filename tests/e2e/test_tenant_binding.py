"""Tenant binding on the local stack, over HTTP: a signed-in user cannot move into another tenant.

The attack (issue 11, finding 2): a ``history`` user of tenant "acme" rewrites their own
``custom:tenant_id`` to the demo tenant with their access token (cognito-idp UpdateUserAttributes),
signs in again and reads the demo tenant's history. The pool declares the attribute immutable and
writable by no app client, which AWS enforces; moto stores both settings but enforces neither, so
here the forged claim does reach the management API, which must refuse it because the platform's
membership record says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from eventface import aws
from eventface.domain.access import Authority
from eventface.local.client import AdminClient, expect
from eventface.local.cognito import sign_in
from eventface.local.stack import LocalStack

pytestmark = pytest.mark.e2e


def _user(stack: LocalStack, name: str) -> AdminClient:
    return AdminClient.signed_in(stack.admin_url, stack.user_pool, name, stack.users[name])


@pytest.fixture(scope="module")
def victim_campaign(stack: LocalStack) -> str:
    """A campaign of the demo tenant (the victim), whose history the demo history user can read."""
    now = datetime.now(UTC)
    body = {
        "name": "Victim rally",
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "stamps_required": 1,
    }
    created = expect(_user(stack, "owner").call("POST", "/v1/campaigns", body), 201, what="campaign")
    campaign_id = str(created["campaign_id"])
    expect(_user(stack, "history").call("GET", f"/v1/campaigns/{campaign_id}/history"), 200, what="own read")
    return campaign_id


def test_tenant_binding_a_user_who_rewrites_their_tenant_claim_cannot_read_another_tenants_history(
    stack: LocalStack, victim_campaign: str
) -> None:
    # given: a history user of tenant "acme", created by the platform (Cognito user + membership)
    password = stack.add_user("acme", "mallory", (Authority.HISTORY,))
    honest = sign_in(stack.user_pool, "mallory", password)
    me = expect(AdminClient(stack.admin_url, token=honest["IdToken"]).call("GET", "/v1/me"), 200, what="me")
    assert (me["tenant_id"], me["authorities"]) == ("acme", ["history"])
    # when: the user rewrites their tenant with their own access token, signs in again, and reads
    # the demo tenant's history
    aws.client("cognito-idp").update_user_attributes(
        AccessToken=honest["AccessToken"],
        UserAttributes=[{"Name": "custom:tenant_id", "Value": stack.tenant_id}],
    )
    forged = sign_in(stack.user_pool, "mallory", password)["IdToken"]
    claim = jwt.decode(forged, options={"verify_signature": False}).get("custom:tenant_id")
    read = AdminClient(stack.admin_url, token=forged).call("GET", f"/v1/campaigns/{victim_campaign}/history")
    # then: the token really claims the demo tenant (moto did not refuse the update; if it now
    # does, the pool's settings are enforced locally too and this precondition needs updating) ...
    assert claim == stack.tenant_id, f"moto refused to rewrite custom:tenant_id (claim {claim!r})"
    # ... and the API refuses it: the platform's membership record, not the claim, decides
    assert read.status == 403, read
    assert f"not a member of tenant '{stack.tenant_id}'" in read.body["Message"], read
    # and: the demo tenant's admin sees the attempt in the audit log, under the user's sub
    audit = expect(_user(stack, "tenant-admin").call("GET", "/v1/audit?limit=20"), 200, what="audit")
    attempts = [
        e for e in audit["items"] if e["actor"] == f"user:{me['id']}" and e["action"] == "history.read"
    ]
    assert [(e["outcome"], e["target"]) for e in attempts] == [
        ("denied", f"/v1/campaigns/{victim_campaign}/history")
    ], audit["items"]


def test_tenant_binding_the_platforms_users_of_each_tenant_are_admitted(stack: LocalStack) -> None:
    # given: a user the platform created for another tenant
    password = stack.add_user("globex", "grace", (Authority.CAMPAIGNS,))
    grace = AdminClient.signed_in(stack.admin_url, stack.user_pool, "grace", password)
    # when
    me = expect(grace.call("GET", "/v1/me"), 200, what="me")
    listing = expect(grace.call("GET", "/v1/campaigns"), 200, what="campaigns")
    # then: her own tenant, which sees none of the demo tenant's campaigns
    assert me["tenant_id"] == "globex"
    assert listing["items"] == []
