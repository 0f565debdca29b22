"""The edge API (functions/edge_api) through the Chalice test client: every route, every error.

Services come from the composition root with the in-memory fakes; one test runs the full scan
flow on the real DynamoDB adapters against moto in-process.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from eventface import bootstrap as bootstrap_module
from eventface.adapters.dynamo_models import OutboxItem
from eventface.adapters.memory import (
    FixedClock,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    in_memory_ports,
    unit_vector,
)
from eventface.api import openapi
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import secret_hash
from eventface.domain.errors import DependencyError, InvalidInputError
from eventface.domain.model import Checkpoint, CredentialKind, Device, DeviceCredential, Probe
from eventface.local.apps import EDGE_PROJECT, REPO_ROOT, load_app
from eventface.services import devices as device_service
from eventface.services import venues as venue_service
from eventface.services.participants import Registration
from eventface.settings import Settings
from face_engine.errors import ImageDecodeError, ModelLoadError

PROJECT = EDGE_PROJECT
NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MODEL = "sface-2021dec"
ANN_PHOTO = b"\xff\xd8ann-face-jpeg"
ANN = unit_vector(1.0, *([0.0] * 127))
STRANGER = unit_vector(0.0, 1.0, *([0.0] * 126))
#: Similarity 0.45 with Ann: just under the fake gallery's threshold (0.5).
NEAR_MISS = unit_vector(0.45, math.sqrt(1 - 0.45**2), *([0.0] * 126))
SIGHTED_STRANGER = {
    "vip": False,
    "member_id": None,
    "name": None,
    "tier": None,
    "alerted": False,
    "alert_id": None,
    "masked": False,
}
LIMITS = {"EVENTFACE_MAX_PHOTO_BYTES": "2048", "EVENTFACE_MAX_BODY_BYTES": "4096"}
#: Everything a scan answer may say: who, stamps, why not, masked; never a score or a threshold.
SCAN_ANSWER_KEYS = {
    "recognised",
    "nickname",
    "new_stamp",
    "already_stamped",
    "stamps",
    "required",
    "completed",
    "reason",
    "message",
    "masked",
    "event_id",
}


edge = load_app(PROJECT, "eventface_edge_app")


@dataclass
class World:
    """A live two-checkpoint campaign with Ann registered and a device at the gate."""

    services: Services
    client: Client
    key: str
    device_id: str
    faces: InMemoryFaceAnalyzer

    def scan(
        self,
        body: bytes | dict[str, Any],
        content_type: str = "application/json",
        checkpoint: str = "gate",
        key: str | None = None,
    ) -> Any:
        headers = {"content-type": content_type}
        if key is not None or self.key:
            headers["x-device-key"] = self.key if key is None else key
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        return self.client.http.post(f"/v1/checkpoints/{checkpoint}/scans", headers=headers, body=raw)


def seed(services: Services, faces: InMemoryFaceAnalyzer) -> tuple[str, str]:
    """Create, publish, register Ann and a gate device (allowed Type B) through the services;
    return key, id."""
    services.create_campaign(
        "default",
        "rally",
        "Rally",
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=8),
        checkpoints=(Checkpoint("gate", "Gate"), Checkpoint("hall", "Hall")),
        stamps_required=2,
    )
    services.publish_campaign("default", "rally")
    faces.faces[ANN_PHOTO] = ANN
    services.register_participant(Registration("default", "rally", ANN_PHOTO, "Ann", consent=True))
    registration = services.register_device("default", "rally", "gate", "gate cam", type_b=True)
    activation = services.activate_device(registration.activation_code)
    return activation.key, activation.device.device_id


@pytest.fixture
def make_world(monkeypatch: pytest.MonkeyPatch) -> Callable[..., World]:
    def make(probe_error: Exception | None = None, **settings: str) -> World:
        # given
        faces = RaisingAnalyzer(probe_error) if probe_error else InMemoryFaceAnalyzer(model_id=MODEL)
        services = bootstrap(
            Settings({**LIMITS, **settings}),
            **in_memory_ports(gallery=InMemoryGallery(model_id=MODEL), faces=faces, clock=FixedClock(NOW)),
        )
        key, device_id = seed(services, faces)
        monkeypatch.setattr(bootstrap_module, "services", lambda: services)
        client = Client(edge.app, stage_name="local", project_dir=str(PROJECT))
        return World(services, client, key, device_id, faces)

    return make


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def random_unit(rng: random.Random) -> tuple[float, ...]:
    return unit_vector(*(rng.gauss(0.0, 1.0) for _ in range(128)))


def template_body(vector: tuple[float, ...] = ANN, **extra: Any) -> dict[str, Any]:
    return {"template": list(vector), "model_id": MODEL, "masked": False, **extra}


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/webp"])
def test_edge_scan_raw_image_stamps_recognised_participant(world, content_type):
    # when
    response = world.scan(ANN_PHOTO, content_type)
    # then
    assert response.status_code == 200
    body = response.json_body
    assert body["recognised"] is True and body["nickname"] == "Ann"
    assert body["new_stamp"] is True and body["stamps"] == 1 and body["required"] == 2
    assert set(body) == SCAN_ANSWER_KEYS


def test_edge_scan_json_photo_stamps_and_repeat_is_already_stamped(world):
    # when
    first = world.scan({"photo": b64(ANN_PHOTO)})
    world.services.deps.clock.advance(60)  # past the cooldown
    second = world.scan({"photo": b64(ANN_PHOTO)})
    # then
    assert first.status_code == 200 and first.json_body["new_stamp"] is True
    assert second.status_code == 200
    assert second.json_body["already_stamped"] is True and second.json_body["new_stamp"] is False


def test_edge_scan_template_type_b_recognises(world):
    # when
    response = world.scan(template_body(masked=True))
    # then
    assert response.status_code == 200
    assert response.json_body["recognised"] is True and response.json_body["masked"] is True


def test_edge_scan_unknown_face_is_answer_not_error(world):
    # when
    response = world.scan(template_body(STRANGER))
    # then
    assert response.status_code == 200
    assert response.json_body["recognised"] is False and response.json_body["reason"] == "unknown"


# -- the answer is no similarity oracle (issue 11, finding 3) ------------------------------------


def _scan_bodies() -> list[Any]:
    stranger_photo = b"\xff\xd8stranger-face"
    return [
        pytest.param(ANN_PHOTO, "image/jpeg", id="photo-recognised"),
        pytest.param(stranger_photo, "image/jpeg", id="photo-unknown"),
        pytest.param(b"\xff\xd8no-face-at-all", "image/jpeg", id="photo-no-face"),
        pytest.param(template_body(), "application/json", id="template-recognised"),
        pytest.param(template_body(NEAR_MISS), "application/json", id="template-near-miss"),
        pytest.param(template_body(STRANGER), "application/json", id="template-unknown"),
    ]


@pytest.mark.parametrize(("body", "content_type"), _scan_bodies())
def test_edge_scan_answer_carries_no_score_match_or_not(world, body, content_type):
    # given
    world.faces.faces[b"\xff\xd8stranger-face"] = STRANGER
    # when
    response = world.scan(body, content_type)
    # then: who, stamps and why not; no similarity, threshold or anything made from them
    assert response.status_code == 200
    assert set(response.json_body) == SCAN_ANSWER_KEYS
    assert all(not isinstance(v, float) for v in response.json_body.values())


def test_edge_scan_near_miss_and_far_miss_get_the_same_answer_but_history_keeps_the_score(world):
    # when: a template just under the threshold, and one nowhere near anybody
    near = world.scan(template_body(NEAR_MISS)).json_body
    far = world.scan(template_body(STRANGER)).json_body
    # then: one bit (nobody) and nothing to climb on; the tenant's history still has the scores
    assert {k: v for k, v in near.items() if k != "event_id"} == {
        k: v for k, v in far.items() if k != "event_id"
    }
    events = {e.event_id: e for e in world.services.list_history("default", "rally").items}
    assert events[near["event_id"]].similarity == pytest.approx(0.45)
    assert events[far["event_id"]].similarity == pytest.approx(0.0, abs=1e-9)
    assert events[near["event_id"]].threshold == pytest.approx(0.5)


def _venue_camera(world: World, *, type_b: bool) -> tuple[str, str]:
    """Venue "lobby" with Ann as a VIP member, and an activated camera there: venue id, key."""
    deps = world.services.deps
    venue = venue_service.create_venue(deps, "default", "Lobby")
    venue_service.add_member(
        deps, venue_service.MemberRegistration("default", venue.venue_id, ANN_PHOTO, "Ms Ann", tier="Gold")
    )
    registration = device_service.register_venue_device(deps, "default", venue.venue_id, "cam", type_b=type_b)
    return venue.venue_id, world.services.activate_device(registration.activation_code).key


def test_edge_sighting_answer_carries_no_score(world):
    # given
    venue_id, key = _venue_camera(world, type_b=True)
    post = world.client.http.post
    headers = {"x-device-key": key, "content-type": "application/json"}
    # when
    answers = [
        post(f"/v1/venues/{venue_id}/sightings", headers=headers, body=json.dumps(template_body(v))).json_body
        for v in (ANN, NEAR_MISS, STRANGER)
    ]
    # then
    for answer in answers:
        assert set(answer) == {"vip", "faces"}
        for face in answer["faces"]:
            assert set(face) == {"vip", "member_id", "name", "tier", "alerted", "alert_id", "masked"}
    assert answers[0]["faces"][0]["vip"] is True and answers[0]["faces"][0]["name"] == "Ms Ann"
    assert answers[1] == answers[2] == {"vip": False, "faces": [SIGHTED_STRANGER]}


def test_edge_template_from_a_device_without_type_b_is_403_saying_how_to_allow_it(world):
    # given: a camera registered without the Type B permission
    registration = world.services.register_device("default", "rally", "gate", "photo cam")
    key = world.services.activate_device(registration.activation_code).key
    venue_id, venue_key = _venue_camera(world, type_b=False)
    # when
    template = world.scan(template_body(), key=key)
    sighting = world.client.http.post(
        f"/v1/venues/{venue_id}/sightings",
        headers={"x-device-key": venue_key, "content-type": "application/json"},
        body=json.dumps(template_body()),
    )
    photo = world.scan(ANN_PHOTO, "image/jpeg", key=key)
    # then: refused and audited; photos work
    for refused in (template, sighting):
        assert refused.status_code == 403 and refused.json_body["Code"] == "ForbiddenError"
        assert '{"type_b": true}' in refused.json_body["Message"]
        assert "PATCH /v1/devices/" in refused.json_body["Message"]
    assert photo.status_code == 200 and photo.json_body["recognised"] is True
    denied = [e for e in world.services.deps.audit.list("default").items if e.outcome.value == "denied"]
    assert {e.action for e in denied} == {"scan", "sighting"}


def test_edge_template_flood_is_paused_audited_and_flagged(world):
    # given: a Type B device that sends a new made-up template every 0.6 s (just under its rate limit)
    rng = random.Random(7)
    answers = []
    # when
    for _ in range(400):
        answers.append(world.scan(template_body(random_unit(rng))))
        world.services.deps.clock.advance(0.6)
    photo = world.scan(ANN_PHOTO, "image/jpeg")
    # then: answered until the guard trips, then 429 with Retry-After; photos still work
    codes = [a.status_code for a in answers]
    first = codes.index(429)
    assert set(codes[:first]) == {200} and 100 <= first <= 200
    assert "Retry-After" in answers[first].headers
    assert "photos are still accepted" in answers[first].json_body["Message"]
    assert photo.status_code == 200
    trips = world.services.deps.audit.list("default", action="devices.probe_abuse").items
    assert trips and trips[-1].actor == f"device:{world.device_id}" and trips[-1].outcome.value == "denied"
    (device,) = world.services.list_devices("default").items
    assert device.probe_status is not None and device.probe_status.flagged


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="missing"),
        pytest.param("not-a-key", id="unknown"),
        pytest.param("revoked", id="revoked"),
    ],
)
def test_edge_scan_bad_device_key_is_401(world, key):
    # given
    if key == "revoked":
        world.services.revoke_device("default", world.device_id)
        key = world.key
    # when
    response = world.scan(ANN_PHOTO, "image/jpeg", key=key)
    # then
    assert response.status_code == 401
    assert response.json_body["Code"] == "UnauthorizedError" and response.json_body["Message"]


def test_edge_scan_other_checkpoint_is_403(world):
    # when
    response = world.scan(ANN_PHOTO, "image/jpeg", checkpoint="hall")
    # then
    assert response.status_code == 403 and response.json_body["Code"] == "ForbiddenError"


def test_edge_scan_campaign_gone_is_404(world):
    # given: a device whose campaign no longer exists
    orphan = Device("default", "d-orphan", "gone", "nowhere", "orphan", NOW)
    code = DeviceCredential(
        secret_hash("ABCD-EFGH-JKMN"), CredentialKind.ACTIVATION, "default", "d-orphan", "gone", "nowhere"
    )
    world.services.deps.devices.add(orphan, code)
    key = world.services.activate_device("ABCD-EFGH-JKMN").key
    # when
    response = world.scan(ANN_PHOTO, "image/jpeg", checkpoint="nowhere", key=key)
    # then
    assert response.status_code == 404 and response.json_body["Code"] == "NotFoundError"


def test_edge_activation_rotation_and_revocation_over_http(world):
    # given: a new terminal registered by an operator
    registration = world.services.register_device("default", "rally", "hall", "hall cam")
    post = world.client.http.post
    json_headers = {"content-type": "application/json"}
    # when: it redeems its code, twice; scans; rotates its key; is revoked
    first = post(
        "/v1/activations", headers=json_headers, body=json.dumps({"code": registration.activation_code})
    )
    replay = post(
        "/v1/activations", headers=json_headers, body=json.dumps({"code": registration.activation_code})
    )
    junk = post("/v1/activations", headers=json_headers, body=json.dumps({"code": "NOPE-NOPE-NOPE"}))
    key = first.json_body["device_key"]
    scanned = world.scan(ANN_PHOTO, "image/jpeg", checkpoint="hall", key=key)
    rotated = post("/v1/device/key", headers={"x-device-key": key})
    new_key = rotated.json_body["device_key"]
    old_still = world.scan(ANN_PHOTO, "image/jpeg", checkpoint="hall", key=key)
    world.services.revoke_device("default", first.json_body["device_id"])
    after = world.scan(ANN_PHOTO, "image/jpeg", checkpoint="hall", key=new_key)
    # then
    assert first.status_code == 201 and first.json_body["status"] == "active" and key.startswith("efd_")
    assert replay.status_code == 401 and "used already" in replay.json_body["Message"]
    assert junk.status_code == 401 and "unknown activation code" in junk.json_body["Message"]
    assert scanned.status_code == 200 and scanned.json_body["recognised"] is True
    assert rotated.status_code == 200 and new_key != key
    assert old_still.status_code == 200  # inside the grace period
    assert after.status_code == 401
    audit = world.services.deps.audit.list("default").items
    actions = {(e.action, e.outcome.value) for e in audit}
    assert {("devices.activate", "ok"), ("devices.rotate_key", "ok"), ("scan", "ok")} <= actions
    assert ("devices.activate", "unauthenticated") in {
        (e.action, e.outcome.value) for e in world.services.deps.audit.list("-").items
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"{not json", "not valid JSON", id="bad-json"),
        pytest.param(b"[1, 2]", "JSON object", id="not-object"),
        pytest.param({"photo": "***"}, "base64", id="bad-base64"),
        pytest.param({}, "either", id="neither"),
        pytest.param({"photo": b64(ANN_PHOTO), **template_body()}, "either", id="both"),
        pytest.param({"template": [0.1] * 5, "model_id": MODEL}, "128", id="short-template"),
        pytest.param({"template": [math.nan] * 128, "model_id": MODEL}, "NaN", id="nan"),
        pytest.param({"template": [1.0] * 128, "model_id": MODEL}, "normalised", id="not-normalised"),
        pytest.param({"template": list(ANN)}, "model_id", id="no-model"),
        pytest.param({"template": ["x"] * 128, "model_id": MODEL}, "numbers", id="strings"),
        pytest.param({"photo": b64(ANN_PHOTO), "extra": 1}, "unknown field", id="unknown-field"),
        pytest.param(template_body(model_id="other-model"), "model", id="other-model"),
    ],
)
def test_edge_scan_malformed_body_is_400(world, body, message):
    # when
    response = world.scan(body)
    # then
    assert response.status_code == 400
    assert response.json_body["Code"] == "InvalidInputError"
    assert message in response.json_body["Message"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"\xff" * 3000, "image/jpeg", id="raw-photo"),
        pytest.param({"photo": b64(b"\xff" * 2500)}, "application/json", id="json-photo"),
        pytest.param(b'{"photo": "' + b"A" * 5000 + b'"}', "application/json", id="body"),
    ],
)
def test_edge_scan_over_size_limit_is_413(world, body, content_type):
    # when
    response = world.scan(body, content_type)
    # then
    assert response.status_code == 413 and response.json_body["Code"] == "PayloadTooLargeError"


@pytest.mark.parametrize("content_type", ["text/plain", "image/gif", "application/xml"])
def test_edge_scan_unsupported_content_type_is_415(world, content_type):
    # when
    response = world.scan(b"hello", content_type)
    # then
    assert response.status_code == 415 and response.json_body["Code"] == "UnsupportedMediaType"


@dataclass
class RaisingAnalyzer(InMemoryFaceAnalyzer):
    """Enrols like the fake, but every probe fails the way the engine or its adapter does."""

    error: Exception = field(default_factory=lambda: RuntimeError("unset"))

    def __init__(self, error: Exception) -> None:
        super().__init__(model_id=MODEL)
        self.error = error

    def probe(self, photo: bytes) -> Probe:
        raise self.error


def _adapter_style_decode_error() -> Exception:
    try:
        raise ImageDecodeError("cannot decode")
    except ImageDecodeError as exc:
        try:
            raise InvalidInputError("the photo cannot be read: send a JPEG") from exc
        except InvalidInputError as wrapped:
            return wrapped


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(ImageDecodeError("truncated"), 422, "ImageDecodeError", id="engine-decode"),
        pytest.param(_adapter_style_decode_error(), 422, "ImageDecodeError", id="adapter-decode"),
        pytest.param(ModelLoadError("/opt/models/x.onnx missing"), 503, "ModelLoadError", id="model"),
        pytest.param(DependencyError("table unavailable"), 503, "DependencyError", id="dependency"),
        pytest.param(RuntimeError("secret internals"), 500, "InternalServerError", id="unexpected"),
    ],
)
def test_edge_scan_face_engine_and_unexpected_errors_are_mapped(make_world, error, status, code):
    # given
    world = make_world(probe_error=error)
    # when
    response = world.scan(b"\xff\xd8garbage", "image/jpeg")
    # then
    assert response.status_code == status and response.json_body["Code"] == code
    assert (
        "secret" not in response.json_body["Message"] and "/opt/models" not in response.json_body["Message"]
    )
    assert "Traceback" not in response.body.decode()


def test_edge_health_needs_no_key(world):
    # when
    response = world.client.http.get("/v1/health")
    # then
    assert response.status_code == 200 and response.json_body["status"] == "ok"


def test_edge_openapi_matches_checked_in_file_and_routes(world):
    # given
    checked_in = json.loads((REPO_ROOT / "docs" / "openapi" / "edge.json").read_text())
    # when
    response = world.client.http.get("/openapi.json")
    # then
    assert response.status_code == 200 and response.json_body == checked_in
    assert openapi.dump(openapi.EDGE_OPENAPI) == (REPO_ROOT / "docs" / "openapi" / "edge.json").read_text()
    routes = {(path, method.lower()) for path, entries in edge.app.routes.items() for method in entries}
    documented = {(path, method) for path, item in checked_in["paths"].items() for method in item}
    assert routes == documented


def test_edge_scan_does_not_log_keys_or_images(world, caplog):
    # when
    with caplog.at_level("DEBUG"):
        world.scan({"photo": b64(ANN_PHOTO)})
    # then
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "scan recorded" in text
    assert world.key not in text and b64(ANN_PHOTO) not in text


# -- real DynamoDB adapters on moto ------------------------------------------------------------


@pytest.fixture
def dynamo_services(table_prefix: str) -> Services:
    """Services on the real DynamoDB adapters (moto in-process); gallery and faces faked."""
    return bootstrap(
        Settings({**LIMITS, "EVENTFACE_TABLE_PREFIX": table_prefix}),
        gallery=InMemoryGallery(model_id=MODEL),
        faces=InMemoryFaceAnalyzer(model_id=MODEL),
        clock=FixedClock(NOW),
    )


def test_edge_scan_flow_on_dynamo_stamps_then_already_stamped(dynamo_services, monkeypatch):
    # given
    faces = dynamo_services.deps.faces
    assert isinstance(faces, InMemoryFaceAnalyzer)
    key, _ = seed(dynamo_services, faces)
    monkeypatch.setattr(bootstrap_module, "services", lambda: dynamo_services)
    client = Client(edge.app, stage_name="local", project_dir=str(PROJECT))
    headers = {"x-device-key": key, "content-type": "image/jpeg"}
    # when
    first = client.http.post("/v1/checkpoints/gate/scans", headers=headers, body=ANN_PHOTO)
    dynamo_services.deps.clock.advance(60)
    second = client.http.post("/v1/checkpoints/gate/scans", headers=headers, body=ANN_PHOTO)
    # then
    assert first.status_code == 200, first.body
    assert first.json_body["new_stamp"] is True and first.json_body["stamps"] == 1
    assert second.json_body["already_stamped"] is True and second.json_body["stamps"] == 1
    assert [item.kind for item in OutboxItem.scan()] == ["stamp"]  # the job waits for the relay


def test_edge_device_over_its_rate_gets_429_with_retry_after(make_world):
    # given: a device allowed 3 requests a minute
    world = make_world(EVENTFACE_DEVICE_REQUESTS_PER_MINUTE="3")
    # when
    answers = [world.scan(ANN_PHOTO, "image/jpeg") for _ in range(4)]
    world.services.deps.clock.advance(60)
    next_minute = world.scan(ANN_PHOTO, "image/jpeg")
    world.services.deps.clock.advance(30)
    later = world.scan(ANN_PHOTO, "image/jpeg")
    # then: no reset at the calendar minute; admitted once the 4 requests weigh 2 (sliding window)
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json_body["Code"] == "TooManyRequestsError"
    assert int(answers[3].headers["Retry-After"]) == 90
    assert next_minute.status_code == 429
    assert later.status_code == 200


def test_edge_failed_authentication_is_throttled_per_source(make_world):
    # given: a source allowed 2 failed attempts a minute
    world = make_world(EVENTFACE_FAILED_AUTH_PER_MINUTE="2")
    post = world.client.http.post
    guess = json.dumps({"code": "AAAA-BBBB-CCCC"})
    # when
    keys = [world.scan(ANN_PHOTO, "image/jpeg", key=f"guess-{i}").status_code for i in range(3)]
    codes = post("/v1/activations", headers={"content-type": "application/json"}, body=guess)
    # then: the third wrong key is throttled, and so is the next guess of an activation code
    assert keys == [401, 401, 429]
    assert codes.status_code == 429 and "Retry-After" in codes.headers


def test_edge_device_of_one_tenant_reaches_nothing_of_another(make_world):
    # given: tenant "other" has the same campaign and checkpoint ids, and its own participant
    world = make_world()
    svc = world.services
    svc.create_campaign("other", "rally", "Theirs", NOW - timedelta(hours=1), NOW + timedelta(hours=8),
                        checkpoints=(Checkpoint("gate", "Gate"),), stamps_required=1)  # fmt: skip
    svc.publish_campaign("other", "rally")
    theirs = svc.register_participant(Registration("other", "rally", ANN_PHOTO, "Ann B", consent=True))
    # when: our gate device scans the face registered in both tenants
    response = world.scan(ANN_PHOTO, "image/jpeg")
    # then: matched in our campaign only; nothing of theirs was stamped or recorded
    assert response.status_code == 200 and response.json_body["nickname"] == "Ann"
    assert svc.get_progress("other", "rally", theirs.participant_id)[1].stamps == 0
    assert svc.list_history("other", "rally").items == ()
    assert svc.deps.audit.list("other").items == ()
