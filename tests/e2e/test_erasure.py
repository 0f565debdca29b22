"""Erasure on the local stack, as an attacker checks it: the API forgets the person, and so does
every place the platform stored them (real photos, real templates).

After ``DELETE /v1/campaigns/{c}/participants/{p}`` (and ``DELETE /v1/venues/{v}/members/{m}``)
the tests search the raw storage for the template that registration stored: every object and
every version of the gallery bucket (after the scheduled erasure sweep has run past the readers'
grace period), the scanners' spill files on disk, and the outbox table (nickname, push text,
push endpoint). The receipt must say truthfully what is gone and what is pending until when.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eventface import aws
from eventface.adapters.s3_gallery import S3GalleryStore
from eventface.adapters.s3_gallery_port import S3GalleryPort
from eventface.bootstrap import bootstrap
from eventface.consumers import gallery_compaction
from eventface.local.client import AdminClient, Camera, VenueCamera, expect, wait_for_pushes
from eventface.local.pump import LambdaContext, scheduled_event
from eventface.local.stack import LocalStack
from eventface.settings import SPILL_DIR, get_settings
from face_engine.index import quantise

pytestmark = pytest.mark.e2e

CAROL = "images/Colin_Powell/krasserm__Colin_Powell_0001.jpg"
CAROL_AT_GATE = "images/Colin_Powell/krasserm__Colin_Powell_0002.jpg"
CAROL_AGAIN = "images/Colin_Powell/krasserm__Colin_Powell_0003.jpg"
DAVE = "images/Gerhard_Schroeder/krasserm__Gerhard_Schroeder_0001.jpg"
VIP = "images/Tony_Blair/krasserm__Tony_Blair_0002.jpg"
VIP_ARRIVES = "images/Tony_Blair/krasserm__Tony_Blair_0003.jpg"
VIP_AGAIN = "images/Tony_Blair/krasserm__Tony_Blair_0005.jpg"
NICKNAME = "CarolTheTester"
PUSH_TEXT = "Bravo"


def _user(stack: LocalStack, name: str) -> AdminClient:
    return AdminClient.signed_in(stack.admin_url, stack.user_pool, name, stack.users[name])


def _templates(stack: LocalStack, gallery_id: str, person_id: str) -> list[bytes]:
    """What registration stored for the person, read from S3 itself: each template's float32
    bytes and its int8 codes (what the warm index holds)."""
    snapshot = S3GalleryStore(stack.gallery_bucket).load(gallery_id)
    rows = [
        np.asarray(shard.vectors[i], dtype="<f4")
        for shard in snapshot.shards
        for i, owner in enumerate(shard.person_ids.tolist())
        if owner == person_id
    ]
    assert rows, f"{person_id} has no template in {gallery_id}: the test would prove nothing"
    return [row.tobytes() for row in rows] + [
        quantise(np.stack(rows))[0][i].tobytes() for i in range(len(rows))
    ]


def _bucket_holding(stack: LocalStack, needles: list[bytes]) -> list[str]:
    """Every object version of the gallery bucket that holds one of ``needles``."""
    s3 = aws.client("s3")
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=stack.gallery_bucket):
        for version in page.get("Versions", []):
            key, version_id = version["Key"], version["VersionId"]
            body = s3.get_object(Bucket=stack.gallery_bucket, Key=key, VersionId=version_id)["Body"].read()
            if any(needle in body for needle in needles):
                found.append(f"{key}@{version_id}")
    return found


def _spill_holding(needles: list[bytes]) -> list[str]:
    """Every spill file of the stack's scanners that holds one of ``needles``."""
    spill = Path(os.environ[SPILL_DIR])
    return [p.name for p in spill.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


def _outbox_bodies(stack: LocalStack) -> list[str]:
    dynamodb = aws.client("dynamodb")
    items = dynamodb.scan(TableName=f"{stack.table_prefix}-outbox", ConsistentRead=True)["Items"]
    return [str(item["body"]["S"]) for item in items]


def _sweep(stack: LocalStack, at: float) -> dict[str, Any]:
    """One run of the scheduled erasure sweep, with the store's clock at ``at`` (epoch seconds)."""
    store = S3GalleryStore(stack.gallery_bucket, clock=lambda: at)
    deps = bootstrap(get_settings(), gallery=S3GalleryPort(stack.gallery_bucket, store=store)).deps
    event = scheduled_event("gallery_compaction", datetime.fromtimestamp(at).astimezone())
    return gallery_compaction.sweep(event, LambdaContext("gallery_compaction"), deps)


def _sweep_past_the_grace(stack: LocalStack, receipt: dict[str, Any]) -> None:
    """The sweep runs now, and again just after the readers' grace period: both before the
    receipt's stated time."""
    grace = get_settings().gallery_retired_grace_seconds
    now = time.time()
    _sweep(stack, now)
    after_grace = now + grace + 1
    assert (
        after_grace
        < datetime.fromisoformat(receipt["stores"]["gallery_objects"]["pending_until"]).timestamp()
    )
    _sweep(stack, after_grace)


def _states(receipt: dict[str, Any]) -> dict[str, str]:
    return {store: line["state"] for store, line in receipt["stores"].items()}


@pytest.fixture(scope="module")
def owner(stack: LocalStack) -> AdminClient:
    return _user(stack, "owner")


@pytest.fixture(scope="module")
def campaign(stack: LocalStack, owner: AdminClient) -> tuple[str, Camera]:
    """A live 1-stamp campaign with one camera, whose push texts name the participant."""
    now = datetime.now().astimezone()
    body = {
        "name": "Erasure rally",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "stamps_required": 1,
        "notification_texts": {
            "stamp": f"{PUSH_TEXT} {{nickname}}: {{stamps}} of {{required}}",
            "complete": f"{PUSH_TEXT} {{nickname}}, done!",
        },
    }
    campaign_id = expect(owner.call("POST", "/v1/campaigns", body), 201, what="campaign")["campaign_id"]
    added = expect(
        owner.call("POST", f"/v1/campaigns/{campaign_id}/checkpoints", {"name": "Gate"}), 201, what="gate"
    )
    checkpoint_id = added.get("checkpoint_id") or added["checkpoints"][-1]["checkpoint_id"]
    devices = f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices"
    device = expect(owner.call("POST", devices, {"name": "Gate"}), 201, what="camera")
    camera = Camera.activated(stack.edge_url, device["activation_code"])
    expect(owner.call("POST", f"/v1/campaigns/{campaign_id}/publish"), 200, 201, what="publish")
    return campaign_id, camera


def test_erased_participant_leaves_no_template_nickname_or_push_text_anywhere(
    stack: LocalStack,
    owner: AdminClient,
    campaign: tuple[str, Camera],
    photo_bytes: Callable[[str], bytes],
) -> None:
    # given: carol and dave registered with real photos; carol was stamped (a push job, a warm
    # scanner index spilled to disk); her template is in S3 and in the spill file
    campaign_id, camera = campaign
    gallery_id = f"{stack.tenant_id}/{campaign_id}"
    ids = {}
    for nickname, photo in ((NICKNAME, CAROL), ("Dave", DAVE)):
        answer = owner.register(campaign_id, nickname, photo_bytes(photo), push_token="inbox:")
        ids[nickname] = expect(answer, 201, what=nickname)["participant_id"]
    carol, dave = ids[NICKNAME], ids["Dave"]
    stamped = expect(camera.scan(photo_bytes(CAROL_AT_GATE)), 200, what="carol at the gate")
    assert stamped["recognised"] and stamped["new_stamp"], stamped
    assert wait_for_pushes(stack.inbox_dir, carol, expected=1)[0]["body"].startswith(PUSH_TEXT)
    carol_bytes, dave_bytes = _templates(stack, gallery_id, carol), _templates(stack, gallery_id, dave)
    assert _bucket_holding(stack, carol_bytes) and _spill_holding(carol_bytes[:1])
    # when: carol is erased, the scanner serves its next scan, and the sweep runs past the grace
    erased = time.time()
    receipt = expect(
        owner.call("DELETE", f"/v1/campaigns/{campaign_id}/participants/{carol}"), 200, what="erase"
    )
    again = expect(camera.scan(photo_bytes(CAROL_AGAIN)), 200, what="carol after erasure")
    spill_after_scan = _spill_holding(carol_bytes)
    _sweep_past_the_grace(stack, receipt)
    # then: the receipt says what is gone and until when the templates may stay in storage
    assert _states(receipt) == {
        "record": "erased",
        "stamps": "erased",
        "history": "erased",
        "gallery_objects": "pending",
        "scanner_memory": "pending",
        "notification_jobs": "erased",
    }
    promised = datetime.fromisoformat(receipt["stores"]["gallery_objects"]["pending_until"]).timestamp()
    bound = get_settings().gallery_retired_grace_seconds + 4 * 60 * get_settings().gallery_sweep_minutes
    assert promised == pytest.approx(erased + bound, abs=60)
    # and carol is nowhere: not recognised, not in the scanner's spill file, not in any object or
    # old version of the gallery bucket, not in the outbox (nickname, push text, endpoint)
    assert again["recognised"] is False
    assert spill_after_scan == []
    assert _bucket_holding(stack, carol_bytes) == []
    bodies = _outbox_bodies(stack)
    assert bodies, "the stamp's job must be in the outbox for this check to mean anything"
    assert [b for b in bodies if NICKNAME in b or PUSH_TEXT in b or "inbox:" in b] == []
    # while dave is untouched
    assert _bucket_holding(stack, dave_bytes) != []


def test_erased_vip_member_leaves_no_template_in_storage(
    stack: LocalStack, owner: AdminClient, photo_bytes: Callable[[str], bytes]
) -> None:
    # given: a venue with one member and a lobby camera that has seen him (its index is warm)
    venue_id = expect(owner.call("POST", "/v1/venues", {"name": "Erasure Hotel"}), 201, what="venue")[
        "venue_id"
    ]
    body = {"name": "Blair", "photo": base64.b64encode(photo_bytes(VIP)).decode()}
    member_id = expect(owner.call("POST", f"/v1/venues/{venue_id}/members", body), 201, what="member")[
        "member_id"
    ]
    registration = expect(
        owner.call("POST", f"/v1/venues/{venue_id}/devices", {"name": "Lobby"}), 201, what="camera"
    )
    lobby = VenueCamera.activated(stack.edge_url, registration["activation_code"])
    assert expect(lobby.sight(photo_bytes(VIP_ARRIVES)), 200, what="arrival")["vip"] is True
    needles = _templates(stack, f"{stack.tenant_id}/venues/{venue_id}", member_id)
    assert _spill_holding(needles[:1])
    # when
    receipt = expect(owner.call("DELETE", f"/v1/venues/{venue_id}/members/{member_id}"), 200, what="erase")
    again = expect(lobby.sight(photo_bytes(VIP_AGAIN)), 200, what="after erasure")
    spill_after_sighting = _spill_holding(needles)
    _sweep_past_the_grace(stack, receipt)
    # then
    assert _states(receipt) == {
        "record": "erased",
        "alerts": "erased",
        "gallery_objects": "pending",
        "scanner_memory": "pending",
        "notification_jobs": "erased",
    }
    assert again["vip"] is False
    assert spill_after_sighting == []
    assert _bucket_holding(stack, needles) == []
