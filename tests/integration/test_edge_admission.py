"""Admission before work on the edge API: refused requests cost no decoding, engine or lookups.

The attacks of issue 11 (finding 6, admission part, and the lower finding on the per-device rate):
a device over its rate sent photos that were still decoded and run through the engine before its
429; garbage bodies were never counted; a source throttled for bad keys still caused a credential
lookup and an audit write per request. Each test runs over HTTP (Chalice test client) on the
in-memory fakes and on the DynamoDB adapters (moto in-process). A counting face analyzer (a fake
of our port) shows whether a photo reached the engine; the fake registry counts credential
lookups, and on DynamoDB every request the adapters send is counted from botocore's events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from eventface import bootstrap as bootstrap_module
from eventface.adapters.dynamo_models import shared_connection
from eventface.adapters.memory import (
    TEST_CURSOR_KEY,
    FixedClock,
    InMemoryDeviceRegistry,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    in_memory_ports,
    unit_vector,
)
from eventface.bootstrap import Services, bootstrap
from eventface.domain.cursors import CursorSeal
from eventface.domain.model import Checkpoint, DeviceCredential, Probe
from eventface.local.apps import EDGE_PROJECT, load_app
from eventface.services import devices, venues
from eventface.services.participants import Registration
from eventface.settings import Settings
from face_engine.errors import ImageDecodeError

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MODEL = "sface-2021dec"
ANN_PHOTO = b"\xff\xd8ann-face-jpeg"
VIP_PHOTO = b"\xff\xd8vip-face-jpeg"
GARBAGE = b"garbage, not an image"
ANN = unit_vector(1.0, *([0.0] * 127))
VIP = unit_vector(0.0, 1.0, *([0.0] * 126))
LIMIT = 3
SETTINGS = {
    "EVENTFACE_MAX_PHOTO_BYTES": "2048",
    "EVENTFACE_MAX_BODY_BYTES": "4096",
    "EVENTFACE_DEVICE_REQUESTS_PER_MINUTE": str(LIMIT),
    "EVENTFACE_FAILED_AUTH_PER_MINUTE": "2",
}

edge = load_app(EDGE_PROJECT, "eventface_edge_app")


@dataclass
class CountingAnalyzer(InMemoryFaceAnalyzer):
    """The fake engine, counting the faces it was asked to analyse (a frame's faces go through
    ``probe`` one by one); garbage fails to decode, as in the real engine."""

    analysed: int = 0

    def probe(self, photo: bytes) -> Probe:
        self.analysed += 1
        if photo == GARBAGE:
            raise ImageDecodeError("cannot decode the image")
        return super().probe(photo)


class CountingRegistry(InMemoryDeviceRegistry):
    """The fake device registry, counting credential lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def credential(self, secret_hash: str) -> DeviceCredential | None:
        self.lookups += 1
        return super().credential(secret_hash)


@dataclass
class Edge:
    services: Services
    client: Client
    faces: CountingAnalyzer
    gate_key: str
    venue_id: str
    camera_key: str
    dynamo_calls: list[str] = field(default_factory=list)

    def scan(self, body: bytes | dict[str, Any], key: str | None = None) -> int:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        content_type = "application/json" if isinstance(body, dict) or raw.startswith(b"{") else "image/jpeg"
        headers = {"content-type": content_type, "x-device-key": key or self.gate_key}
        return int(self.client.http.post("/v1/checkpoints/gate/scans", headers=headers, body=raw).status_code)

    def sight(self, body: bytes) -> int:
        headers = {"content-type": "image/jpeg", "x-device-key": self.camera_key}
        return int(
            self.client.http.post(
                f"/v1/venues/{self.venue_id}/sightings", headers=headers, body=body
            ).status_code
        )

    def lookups(self) -> int:
        registry = self.services.deps.devices
        if isinstance(registry, CountingRegistry):
            return registry.lookups
        return self.dynamo_calls.count("GetItem")

    def audited(self) -> int:
        return len(self.services.deps.audit.list("-", limit=100).items)


def _seed(services: Services, faces: CountingAnalyzer) -> tuple[str, str, str]:
    """A live campaign with Ann and a gate device; a venue with a VIP and a camera: keys, venue."""
    services.create_campaign(
        "default",
        "rally",
        "Rally",
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=8),
        checkpoints=(Checkpoint("gate", "Gate"),),
        stamps_required=1,
    )
    services.publish_campaign("default", "rally")
    faces.faces[ANN_PHOTO] = ANN
    faces.faces[VIP_PHOTO] = VIP
    services.register_participant(Registration("default", "rally", ANN_PHOTO, "Ann", consent=True))
    gate = services.activate_device(services.register_device("default", "rally", "gate").activation_code)
    deps = services.deps
    venue = venues.create_venue(deps, "default", "Grand Hotel")
    venues.add_member(deps, venues.MemberRegistration("default", venue.venue_id, VIP_PHOTO, "Sato"))
    camera = devices.activate_device(
        deps, devices.register_venue_device(deps, "default", venue.venue_id, "lobby").activation_code
    )
    return gate.key, venue.venue_id, camera.key


@pytest.fixture(params=["memory", "dynamo"])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Edge]:
    faces = CountingAnalyzer(model_id=MODEL)
    if request.param == "memory":
        services = bootstrap(
            Settings(SETTINGS),
            **in_memory_ports(
                gallery=InMemoryGallery(model_id=MODEL),
                faces=faces,
                clock=FixedClock(NOW),
                devices=CountingRegistry(),
            ),
        )
    else:
        prefix = request.getfixturevalue("table_prefix")
        services = bootstrap(
            Settings({**SETTINGS, "EVENTFACE_TABLE_PREFIX": prefix}),
            gallery=InMemoryGallery(model_id=MODEL),
            faces=faces,
            clock=FixedClock(NOW),
            cursors=CursorSeal(TEST_CURSOR_KEY),
        )
    gate_key, venue_id, camera_key = _seed(services, faces)
    monkeypatch.setattr(bootstrap_module, "services", lambda: services)
    world = Edge(services, Client(edge.app, stage_name="local", project_dir=str(EDGE_PROJECT)), faces,
                 gate_key, venue_id, camera_key)  # fmt: skip
    faces.analysed = 0

    def count(model: Any, **_: Any) -> None:
        world.dynamo_calls.append(model.name)

    if request.param == "memory":
        yield world
        return
    # Every DynamoDB request the adapters send, by operation name.
    events = shared_connection().client.meta.events
    events.register("before-call.dynamodb", count)
    yield world
    events.unregister("before-call.dynamodb", count)


def test_edge_garbage_bodies_count_against_the_device_rate(world: Edge) -> None:
    # given: a device sending bodies that cannot be parsed or decoded
    # when
    answers = [world.scan(GARBAGE), world.scan(b"{not json"), world.scan({"photo": "!!!"})]
    answers += [world.scan(GARBAGE), world.scan(b"{not json"), world.scan(ANN_PHOTO)]
    # then: every request counted; once over the limit, refused before its body is read
    assert answers == [422, 400, 400, 429, 429, 429]
    assert world.faces.analysed == 1  # only the first garbage photo reached the engine


@pytest.mark.parametrize("refused", [ANN_PHOTO, GARBAGE], ids=["valid-photo", "garbage"])
def test_edge_scan_over_the_rate_never_reaches_the_engine(world: Edge, refused: bytes) -> None:
    # given: a device that used its limit on real scans
    assert [world.scan(ANN_PHOTO) for _ in range(LIMIT)] == [200] * LIMIT
    analysed = world.faces.analysed
    history = len(world.services.list_history("default", "rally").items)
    # when
    answers = [world.scan(refused) for _ in range(5)]
    # then
    assert answers == [429] * 5
    assert world.faces.analysed == analysed == LIMIT
    assert len(world.services.list_history("default", "rally").items) == history


@pytest.mark.parametrize("refused", [VIP_PHOTO, GARBAGE], ids=["valid-photo", "garbage"])
def test_edge_sighting_over_the_rate_never_reaches_the_engine(world: Edge, refused: bytes) -> None:
    # given: a venue camera that used its limit
    assert [world.sight(VIP_PHOTO) for _ in range(LIMIT)] == [200] * LIMIT
    # when
    answers = [world.sight(refused) for _ in range(5)]
    # then
    assert answers == [429] * 5
    assert world.faces.analysed == LIMIT


def test_edge_throttled_source_is_refused_before_any_lookup_or_audit(world: Edge) -> None:
    # given: a source that used its failed-authentication budget (2) with wrong keys
    first = [world.scan(ANN_PHOTO, key=f"efd_wrong-{i}") for i in range(3)]
    lookups, audited, calls = world.lookups(), world.audited(), len(world.dynamo_calls)
    # when: it keeps trying, wrong keys and a right one alike
    later = [world.scan(ANN_PHOTO, key=f"efd_guess-{i}") for i in range(5)] + [world.scan(ANN_PHOTO)]
    sent = world.dynamo_calls[calls:]
    # then: refused with no credential lookup, no audit entry, no DynamoDB request at all
    assert first == [401, 401, 429]
    assert later == [429] * 6
    assert (world.lookups(), world.audited()) == (lookups, audited)
    assert sent == []
    assert world.faces.analysed == 0


def test_edge_throttled_source_cannot_rotate_or_guess_codes(world: Edge) -> None:
    # given
    for i in range(3):
        world.scan(ANN_PHOTO, key=f"efd_wrong-{i}")
    lookups = world.lookups()
    # when
    rotate = world.client.http.post("/v1/device/key", headers={"x-device-key": world.gate_key})
    code = world.client.http.post(
        "/v1/activations", headers={"content-type": "application/json"}, body=b'{"code": "AAAA-BBBB-CCCC"}'
    )
    # then
    assert (rotate.status_code, code.status_code) == (429, 429)
    assert world.lookups() == lookups
