"""The local stack end to end: an operator and checkpoint cameras over HTTP, real face photos.

One journey runs once per module (a 2-stamp campaign, two registered people, scans at two
checkpoints, a repeat, a stranger) and each test checks one thing it must have produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface.local.client import AdminClient, Camera, expect, read_jobs, request
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
    jobs: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def journey(stack: LocalStack, photo_bytes: Callable[[str], bytes]) -> Journey:
    # given: a published 2-stamp campaign with a camera at each of two checkpoints
    admin = AdminClient(stack.admin_url, stack.admin_key)
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
        cameras.append(Camera(stack.edge_url, device["device_key"], checkpoint_id))
    gate, stage = cameras
    expect(admin.call("POST", f"/v1/campaigns/{done.campaign_id}/publish"), 200, 201, what="publish")
    # and: two people registered with real photos
    for nickname, photo in (("alice", ALICE), ("bob", BOB)):
        body = expect(admin.register(done.campaign_id, nickname, photo_bytes(photo)), 201, what=nickname)
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
    done.jobs = read_jobs(stack.queue_url, expected=3)  # two stamps and the completion
    return done


def test_local_stack_answers_health_on_both_apps(stack: LocalStack) -> None:
    # when
    edge = request("GET", f"{stack.edge_url}/v1/health", headers={})
    admin = request("GET", f"{stack.admin_url}/v1/health", headers={"x-api-key": stack.admin_key})
    # then
    assert (edge.status, admin.status) == (200, 200)


def test_local_stack_refuses_admin_calls_without_the_key(stack: LocalStack) -> None:
    # when
    answer = AdminClient(stack.admin_url, "not-the-key").call("GET", "/v1/campaigns/nope/history")
    # then
    assert answer.status in (401, 403), answer


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


def test_local_stack_queues_notification_jobs_in_sqs(journey: Journey) -> None:
    alice = journey.participants["alice"]
    kinds = sorted(job["kind"] for job in journey.jobs if job["participant_id"] == alice)
    texts = [job["text"] for job in journey.jobs]
    assert len(kinds) == 3, journey.jobs  # two stamps and the completion
    assert "Done! Free coffee" in texts, texts


def test_local_stack_read_jobs_sees_nothing_else(stack: LocalStack, journey: Journey) -> None:
    # then: the jobs read are hidden, not lost, and nothing else was queued
    assert read_jobs(stack.queue_url) == []
