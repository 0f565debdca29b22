"""The local stack end to end: an operator and checkpoint cameras over HTTP, real face photos.

One journey runs once per module (a 2-stamp campaign, two registered people, scans at two
checkpoints, a repeat, a stranger) and each test checks one thing it must have produced.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from eventface.domain.model import JobKind, Stamp, job_id_for
from eventface.local.client import AdminClient, Camera, expect, request, wait_for_pushes
from eventface.local.stack import LocalStack

pytestmark = pytest.mark.e2e

ALICE = "images/Colin_Powell/krasserm__Colin_Powell_0001.jpg"
ALICE_AT_GATE = "images/Colin_Powell/krasserm__Colin_Powell_0002.jpg"
ALICE_AT_STAGE = "images/Colin_Powell/krasserm__Colin_Powell_0003.jpg"
ALICE_AGAIN = "images/Colin_Powell/krasserm__Colin_Powell_0004.jpg"
BOB = "images/Gerhard_Schroeder/krasserm__Gerhard_Schroeder_0001.jpg"
STRANGER = "images/Hugo_Chavez/krasserm__Hugo_Chavez_0001.jpg"


@dataclass
class Journey:
    """What the operator and the cameras got back."""

    campaign_id: str = ""
    participants: dict[str, str] = field(default_factory=dict)
    scans: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def journey(stack: LocalStack, photo_bytes: Callable[[str], bytes]) -> Journey:
    # given: a published 2-stamp campaign with a camera at each of two checkpoints
    admin = _user(stack, "owner")
    now = datetime.now(UTC)
    campaign = expect(
        admin.call(
            "POST",
            "/v1/campaigns",
            {
                "name": "E2E rally",
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(days=1)).isoformat(),
                "stamps_required": 2,
                "reward_text": "Free coffee",
                "notification_texts": {"stamp": "{stamps} of {required}", "complete": "Done! {reward}"},
            },
        ),
        201,
        what="create campaign",
    )
    done = Journey(campaign_id=campaign["campaign_id"])
    cameras = []
    for name in ("Gate", "Stage"):
        body = expect(
            admin.call("POST", f"/v1/campaigns/{done.campaign_id}/checkpoints", {"name": name}),
            201,
            what=f"add checkpoint {name}",
        )
        checkpoint_id = body.get("checkpoint_id") or body["checkpoints"][-1]["checkpoint_id"]
        devices = f"/v1/campaigns/{done.campaign_id}/checkpoints/{checkpoint_id}/devices"
        device = expect(
            admin.call("POST", devices, {"name": name}),
            201,
            what=f"register device {name}",
        )
        cameras.append(Camera.activated(stack.edge_url, device["activation_code"]))
    gate, stage = cameras
    expect(admin.call("POST", f"/v1/campaigns/{done.campaign_id}/publish"), 200, 201, what="publish")
    # and: two people registered with real photos
    for nickname, photo in (("alice", ALICE), ("bob", BOB)):
        registration = admin.register(done.campaign_id, nickname, photo_bytes(photo), push_token="inbox:")
        body = expect(registration, 201, what=nickname)
        done.participants[nickname] = body["participant_id"]

    # when: alice is seen at both checkpoints, again at the first, and a stranger walks by
    for key, camera, photo in (
        ("alice_gate", gate, ALICE_AT_GATE),
        ("alice_stage", stage, ALICE_AT_STAGE),
        ("alice_again", gate, ALICE_AGAIN),
        ("stranger", stage, STRANGER),
    ):
        done.scans[key] = expect(camera.scan(photo_bytes(photo)), 200, what=f"scan {key}")
    done.progress = expect(
        admin.call("GET", f"/v1/campaigns/{done.campaign_id}/participants/{done.participants['alice']}"),
        200,
        what="alice's progress",
    )
    # two stamps and the completion reach alice's phone (push_dispatch, the local inbox)
    done.pushes = wait_for_pushes(stack.inbox_dir, done.participants["alice"], expected=3)
    return done


def _user(stack: LocalStack, name: str) -> AdminClient:
    return AdminClient.signed_in(stack.admin_url, stack.user_pool, name, stack.users[name])


def test_local_stack_answers_health_on_both_apps(stack: LocalStack) -> None:
    # when
    edge = request("GET", f"{stack.edge_url}/v1/health", headers={})
    admin = request("GET", f"{stack.admin_url}/v1/health", headers={})
    # then
    assert (edge.status, admin.status) == (200, 200)


def test_local_stack_refuses_admin_calls_without_valid_credentials(stack: LocalStack) -> None:
    # given: a token signed by a key of our own, claiming the pool's issuer and client
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": "mallory", "iss": stack.user_pool.issuer, "aud": stack.user_pool.client_id, "token_use": "id",
        "iat": now, "exp": now + 600, "custom:tenant_id": stack.tenant_id, "cognito:groups": ["tenant_admin"],
    }  # fmt: skip
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": "dummy"})
    # when
    wrong_key = AdminClient(stack.admin_url, api_key="efk_not-a-key").call("GET", "/v1/me")
    forged_token = AdminClient(stack.admin_url, token=forged).call("GET", "/v1/audit")
    garbage = AdminClient(stack.admin_url, token="not.a.jwt").call("GET", "/v1/me")
    # then
    assert wrong_key.status == 401 and "unknown API key" in wrong_key.body["Message"], wrong_key
    assert forged_token.status == 401, forged_token
    assert garbage.status == 401, garbage


def test_local_stack_users_sign_in_with_cognito_and_hold_one_authority_each(stack: LocalStack) -> None:
    # given
    history = _user(stack, "history")
    # when
    me = expect(history.call("GET", "/v1/me"), 200, what="me")
    refused = history.call("POST", "/v1/api-keys", {"name": "x", "authorities": ["history"]})
    audit = expect(
        _user(stack, "tenant-admin").call("GET", "/v1/audit?action=api_keys.create"), 200, what="audit"
    )
    # then
    assert (me["tenant_id"], me["kind"], me["authorities"]) == (stack.tenant_id, "user", ["history"])
    assert refused.status == 403 and "api_keys" in refused.body["Message"]
    assert any(e["outcome"] == "denied" and e["actor"] == f"user:{me['id']}" for e in audit["items"])


def test_local_stack_refuses_cursors_it_did_not_issue_for_the_listing(stack: LocalStack) -> None:
    # given: a forged cursor (base64 JSON of a DynamoDB key: 503 before) and a real one of the audit log
    admin = _user(stack, "owner")
    forged = base64.urlsafe_b64encode(json.dumps({"tenant_id": {"S": "other"}, "sk": {"S": "x"}}).encode())
    issued = expect(admin.call("GET", "/v1/audit?limit=1"), 200, what="audit")["cursor"]
    # when
    answers = [
        admin.call("GET", f"/v1/audit?limit=1&cursor={forged.decode()}"),
        admin.call("GET", f"/v1/campaigns?limit=1&cursor={issued}"),
        admin.call("GET", f"/v1/audit?limit=1&actor=nobody&cursor={issued}"),
    ]
    pages_on = admin.call("GET", f"/v1/audit?limit=1&cursor={issued}")
    # then
    assert [(a.status, a.body["Message"]) for a in answers] == [
        (400, "this cursor was not issued for this listing: start again without cursor")
    ] * 3
    assert pages_on.status == 200 and len(pages_on.body["items"]) == 1


def test_local_stack_management_key_registers_people_and_nothing_else(stack: LocalStack) -> None:
    # given: the owner creates a key for an integration that may only manage targets
    owner = _user(stack, "owner")
    created = expect(
        owner.call("POST", "/v1/api-keys", {"name": "crm", "authorities": ["targets"]}),
        201,
        what="create key",
    )
    crm = AdminClient(stack.admin_url, api_key=created["api_key"])
    # when
    listing = crm.call("GET", "/v1/campaigns/none/participants")
    campaigns = crm.call("GET", "/v1/campaigns")
    expect(owner.call("DELETE", f"/v1/api-keys/{created['key_id']}"), 200, what="revoke")
    after = crm.call("GET", "/v1/campaigns/none/participants")
    # then
    assert listing.status == 404  # allowed, and the campaign does not exist
    assert campaigns.status == 403
    assert after.status == 401 and "revoked" in after.body["Message"]


def test_local_stack_registers_two_people(journey: Journey) -> None:
    assert set(journey.participants) == {"alice", "bob"}
    assert journey.participants["alice"] != journey.participants["bob"]


def test_local_stack_stamps_at_two_checkpoints_complete_the_rally(journey: Journey) -> None:
    first, second = journey.scans["alice_gate"], journey.scans["alice_stage"]
    assert (first["recognised"], first["nickname"], first["new_stamp"], first["stamps"]) == (
        True,
        "alice",
        True,
        1,
    ), first
    assert not first["completed"], first
    assert (second["new_stamp"], second["stamps"], second["completed"]) == (True, 2, True), second
    assert journey.progress["progress"]["completed"] is True


def test_local_stack_repeat_scan_is_already_stamped(journey: Journey) -> None:
    again = journey.scans["alice_again"]
    assert (again["recognised"], again["already_stamped"], again["new_stamp"]) == (True, True, False), again


def test_local_stack_stranger_is_not_recognised(journey: Journey) -> None:
    stranger = journey.scans["stranger"]
    assert stranger["recognised"] is False, stranger
    assert stranger["nickname"] is None


def test_local_stack_pushes_stamps_and_the_completion_to_the_attendee(journey: Journey) -> None:
    bodies = [push["body"] for push in journey.pushes]
    assert bodies == ["1 of 2", "2 of 2", "Done! Free coffee"], journey.pushes
    assert [push["data"]["kind"] for push in journey.pushes] == ["stamp", "stamp", "completion"]


def test_local_stack_redelivered_job_sends_no_second_push(stack: LocalStack, journey: Journey) -> None:
    # given: SQS delivers alice's completion job once more (a new deduplication id: past FIFO's window)
    import json

    from eventface import aws

    alice = journey.participants["alice"]
    fact = Stamp(stack.tenant_id, journey.campaign_id, alice, "-", "-", datetime.now(UTC))
    body = _outbox_body(stack, job_id_for(JobKind.COMPLETION, fact))
    aws.client("sqs").send_message(
        QueueUrl=stack.queue_url,
        MessageBody=body,
        MessageGroupId=json.loads(body)["participant_id"],
        MessageDeduplicationId=f"redelivery-{alice}",
    )
    # when: the pump has had time to hand it to push_dispatch
    _wait_until_drained(stack.queue_url)
    # then
    assert (
        len(wait_for_pushes(stack.inbox_dir, journey.participants["alice"], expected=4, wait_seconds=1)) == 3
    )


def test_local_stack_bob_got_no_push(stack: LocalStack, journey: Journey) -> None:
    assert wait_for_pushes(stack.inbox_dir, journey.participants["bob"], expected=1, wait_seconds=0.5) == []


def _outbox_body(stack: LocalStack, job_id: str) -> str:
    from eventface import aws

    item = aws.client("dynamodb").get_item(
        TableName=f"{stack.table_prefix}-outbox", Key={"message_id": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    return str(item["body"]["S"])


def _wait_until_drained(queue_url: str, wait_seconds: float = 10.0) -> None:
    from eventface import aws

    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if (
            int(attributes["ApproximateNumberOfMessages"])
            + int(attributes["ApproximateNumberOfMessagesNotVisible"])
            == 0
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"{queue_url} still holds messages after {wait_seconds} s")


def test_local_stack_terminal_activation_rotation_and_revocation(stack: LocalStack) -> None:
    # given: an operator with the terminal authority registers a terminal for a checkpoint
    owner, terminals = _user(stack, "owner"), _user(stack, "terminals")
    now = datetime.now(UTC)
    campaign = expect(
        owner.call(
            "POST",
            "/v1/campaigns",
            {
                "name": "Terminals",
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(days=1)).isoformat(),
                "stamps_required": 1,
            },
        ),
        201,
        what="campaign",
    )
    path = f"/v1/campaigns/{campaign['campaign_id']}/checkpoints"
    checkpoint = expect(owner.call("POST", path, {"name": "Door"}), 201, what="checkpoint")
    checkpoint_id = checkpoint.get("checkpoint_id") or checkpoint["checkpoints"][-1]["checkpoint_id"]
    device = expect(
        terminals.call("POST", f"{path}/{checkpoint_id}/devices", {"name": "door"}), 201, what="device"
    )
    # when: the terminal activates, the code is replayed, the key is rotated, the device revoked
    camera = Camera.activated(stack.edge_url, device["activation_code"])
    replay = request(
        "POST",
        f"{stack.edge_url}/v1/activations",
        headers={"content-type": "application/json"},
        data=b'{"code": "%s"}' % device["activation_code"].encode(),
    )
    rotated = request("POST", f"{stack.edge_url}/v1/device/key", headers={"x-device-key": camera.key})
    deadline = time.monotonic() + 5  # last-seen is written off the request's path
    while True:
        listed = expect(terminals.call("GET", "/v1/devices"), 200, what="devices")
        mine = next(d for d in listed["items"] if d["device_id"] == device["device_id"])
        if mine["last_seen_at"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    expect(terminals.call("DELETE", f"/v1/devices/{device['device_id']}"), 200, what="revoke")
    refused = Camera(stack.edge_url, rotated.body["device_key"], checkpoint_id).scan(b"\xff\xd8not-a-photo")
    # then
    assert replay.status == 401 and "used already" in replay.body["Message"]
    assert rotated.status == 200 and rotated.body["device_key"] != camera.key
    assert mine["status"] == "active" and mine["last_seen_at"]
    assert refused.status == 401


def test_local_stack_revocation_ends_every_key_whatever_the_rotations(stack: LocalStack) -> None:
    # given: a terminal of a live campaign (issue 11, finding 1, replayed over HTTP)
    owner, terminals = _user(stack, "owner"), _user(stack, "terminals")
    now = datetime.now(UTC)
    window = {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    campaign = expect(
        owner.call("POST", "/v1/campaigns", {"name": "Rotations", **window, "stamps_required": 1}),
        201,
        what="campaign",
    )
    path = f"/v1/campaigns/{campaign['campaign_id']}/checkpoints"
    checkpoint = expect(owner.call("POST", path, {"name": "Door"}), 201, what="checkpoint")
    checkpoint_id = checkpoint.get("checkpoint_id") or checkpoint["checkpoints"][-1]["checkpoint_id"]
    device = expect(terminals.call("POST", f"{path}/{checkpoint_id}/devices", {}), 201, what="device")
    camera = Camera.activated(stack.edge_url, device["activation_code"])
    rotate_url = f"{stack.edge_url}/v1/device/key"
    # when: the key rotates, the old key (in its grace period) tries again, then the new key is
    # rotated by 8 requests at once; then the device is revoked
    first = request("POST", rotate_url, headers={"x-device-key": camera.key})
    again = request("POST", rotate_url, headers={"x-device-key": camera.key})
    new_key = str(first.body["device_key"])
    start = threading.Barrier(8)

    def rotate(_: int) -> Any:
        start.wait()
        return request("POST", rotate_url, headers={"x-device-key": new_key})

    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(rotate, range(8)))
    expect(terminals.call("DELETE", f"/v1/devices/{device['device_id']}"), 200, what="revoke")
    issued = [camera.key, new_key, *(str(a.body["device_key"]) for a in concurrent if a.status == 200)]
    after = [Camera(stack.edge_url, key, checkpoint_id).scan(b"\xff\xd8not-a-photo").status for key in issued]
    # then: the grace key could not rotate, one concurrent rotation won, and no key survives
    assert first.status == 200 and again.status == 403 and "new key" in again.body["Message"]
    # (409: lost the race; 403: arrived after the winner, when the key was already in grace)
    statuses = sorted(a.status for a in concurrent)
    assert statuses[0] == 200 and set(statuses[1:]) <= {403, 409} and len(statuses) == 8
    assert after == [401] * len(issued) == [401] * 3
