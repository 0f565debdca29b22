"""Bad input through the HTTP layer of both APIs: each attack of issue 11's "errors instead of
answers" must get a clear 4xx that names the problem, never a 5xx.

The attacks: JSON nested thousands of levels deep, dates at the edge of what ``datetime`` holds,
numbers too large for the code that uses them (stored or not), names with control and format
characters, huge integers in a Type B template, and a small PNG that decodes to gigabytes.
Services come from the composition root with in-memory fakes, or the real DynamoDB adapters on
moto where the failure lived in the adapter.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest
from chalice.test import Client

from eventface import bootstrap as bootstrap_module
from eventface.adapters.face_analyzer import EngineFaceAnalyzer
from eventface.adapters.memory import (
    TEST_CURSOR_KEY,
    FixedClock,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    in_memory_ports,
    unit_vector,
)
from eventface.adapters.memory_access import StaticClaims, StaticTokenVerifier
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import ALL_AUTHORITIES, ApiKey, Membership, secret_hash
from eventface.domain.cursors import CursorSeal
from eventface.local.apps import ADMIN_PROJECT, EDGE_PROJECT, load_app
from eventface.settings import Settings

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MODEL = "sface-2021dec"
KEY = "efk_bad-input-admin-key"
FACE = b"\xff\xd8ann-face"
ANN = unit_vector(1.0, *([0.0] * 127))
CAMPAIGN = {
    "name": "Spring rally",
    "starts_at": (NOW - timedelta(hours=1)).isoformat(),
    "ends_at": (NOW + timedelta(hours=8)).isoformat(),
    "stamps_required": 1,
}
YEAR_1 = "0001-01-01T00:00:00+14:00"
YEAR_9999 = "9999-12-31T23:59:59-14:00"
BAD_CHARACTERS = {
    "nul": "\x00",
    "newline": "\n",
    "rtl-override": "\u202e",
    "zero-width-space": "\u200b",
    "zero-width-joiner": "\u200d",
    "bom": "\ufeff",
}

USER_TOKEN = "bad-input-user-token"
#: A signed-in user of the tenant with every authority (a member of it).
USERS = StaticTokenVerifier(
    {
        USER_TOKEN: StaticClaims(
            "sub-uma", "uma", tuple(a.value for a in ALL_AUTHORITIES), {"custom:tenant_id": "default"}
        )
    }
)

admin_app = load_app(ADMIN_PROJECT, "eventface_admin_app")
edge_app = load_app(EDGE_PROJECT, "eventface_edge_app")


@dataclass
class Stack:
    """Both APIs on one set of services, a management key with every authority, a live campaign
    with a checkpoint, Ann registered in it, and an active device at the checkpoint."""

    services: Services
    admin: Client
    edge: Client
    campaign_id: str = ""
    checkpoint_id: str = ""
    device_key: str = ""

    def call(self, method: str, path: str, body: Any = None) -> Any:
        raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json", "x-api-key": KEY}
        if (method, path) == ("POST", "/v1/api-keys"):  # only signed-in users create keys
            headers = {"content-type": "application/json", "authorization": f"Bearer {USER_TOKEN}"}
        return self.admin.http.request(method, path, headers=headers, body=raw)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == status, response.body
        return response.json_body

    def scan(self, body: bytes, content_type: str = "application/json") -> Any:
        headers = {"content-type": content_type, "x-device-key": self.device_key}
        return self.edge.http.post(f"/v1/checkpoints/{self.checkpoint_id}/scans", headers=headers, body=body)


def _seed_key(services: Services) -> None:
    services.deps.api_keys.add(
        ApiKey(
            tenant_id="default",
            key_id="key-bad-input",
            name="test",
            prefix=KEY[:12],
            key_hash=secret_hash(KEY),
            authorities=frozenset(ALL_AUTHORITIES),
            created_at=NOW - timedelta(days=1),
            created_by="test",
            expires_at=NOW + timedelta(days=30),
        )
    )


def _stack(services: Services, monkeypatch: pytest.MonkeyPatch) -> Stack:
    _seed_key(services)
    services.deps.memberships.grant(Membership("default", "sub-uma", "uma", NOW, granted_by="test"))
    monkeypatch.setattr(bootstrap_module, "services", lambda: services)
    stack = Stack(
        services,
        Client(admin_app.app, stage_name="local", project_dir=str(ADMIN_PROJECT)),
        Client(edge_app.app, stage_name="local", project_dir=str(EDGE_PROJECT)),
    )
    stack.campaign_id = stack.ok("POST", "/v1/campaigns", CAMPAIGN, 201)["campaign_id"]
    path = f"/v1/campaigns/{stack.campaign_id}"
    stack.checkpoint_id = stack.ok("POST", f"{path}/checkpoints", {"name": "Gate"}, 201)["checkpoint_id"]
    stack.ok("POST", f"{path}/publish")
    if isinstance(services.deps.faces, InMemoryFaceAnalyzer):
        services.deps.faces.faces[FACE] = ANN
        photo = base64.b64encode(FACE).decode()
        stack.ok("POST", f"{path}/participants", {"nickname": "Ann", "consent": True, "photo": photo}, 201)
    device = stack.ok("POST", f"{path}/checkpoints/{stack.checkpoint_id}/devices", {"name": "cam"}, 201)
    stack.device_key = services.activate_device(device["activation_code"]).key
    return stack


@pytest.fixture
def make_stack(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Stack]:
    def make(faces: Any = None, **settings: str) -> Stack:
        # given
        ports = in_memory_ports(
            gallery=InMemoryGallery(model_id=MODEL),
            faces=faces or InMemoryFaceAnalyzer(model_id=MODEL),
            clock=FixedClock(NOW),
            tokens=USERS,
        )
        return _stack(bootstrap(Settings(settings), **ports), monkeypatch)

    return make


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture(params=["memory", "dynamo"])
def any_stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack on the in-memory fakes, and on the real DynamoDB adapters (moto in-process)."""
    if request.param == "memory":
        return _stack(
            bootstrap(
                Settings({}),
                **in_memory_ports(
                    gallery=InMemoryGallery(model_id=MODEL),
                    faces=InMemoryFaceAnalyzer(model_id=MODEL),
                    clock=FixedClock(NOW),
                    tokens=USERS,
                ),
            ),
            monkeypatch,
        )
    prefix = request.getfixturevalue("table_prefix")
    services = bootstrap(
        Settings({"EVENTFACE_TABLE_PREFIX": prefix}),
        gallery=InMemoryGallery(model_id=MODEL),
        faces=InMemoryFaceAnalyzer(model_id=MODEL),
        clock=FixedClock(NOW),
        tokens=USERS,
        cursors=CursorSeal(TEST_CURSOR_KEY),
    )
    return _stack(services, monkeypatch)


def _refused(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.body[:300])
    body: dict[str, Any] = response.json_body
    assert set(body) >= {"Code", "Message"}
    for word in words:
        assert word in body["Message"], body["Message"]
    return body


# -- deeply nested JSON ------------------------------------------------------------------------


def _nested(depth: int, kind: str) -> bytes:
    if kind == "arrays":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


ADMIN_JSON_ROUTES = [
    ("POST", "/v1/campaigns"),
    ("PATCH", "/v1/campaigns/{c}"),
    ("POST", "/v1/campaigns/{c}/checkpoints"),
    ("POST", "/v1/campaigns/{c}/participants"),
    ("POST", "/v1/campaigns/{c}/checkpoints/{cp}/devices"),
    ("POST", "/v1/api-keys"),
    ("POST", "/v1/venues"),
    ("PATCH", "/v1/venues/v1"),
    ("POST", "/v1/venues/v1/members"),
    ("POST", "/v1/venues/v1/devices"),
    ("POST", "/v1/venues/v1/staff-devices"),
    ("POST", "/v1/venues/v1/alerts/a1/false-match"),
    ("POST", "/v1/campaigns/{c}/messages"),
]


@pytest.mark.parametrize("kind", ["arrays", "objects"])
@pytest.mark.parametrize("depth", [3000, 100_000])
@pytest.mark.parametrize(("method", "path"), ADMIN_JSON_ROUTES)
def test_admin_deeply_nested_json_is_400_on_every_json_route(stack, method, path, depth, kind):
    # when
    target = path.format(c=stack.campaign_id, cp=stack.checkpoint_id)
    response = stack.call(method, target, _nested(depth, kind))
    # then
    _refused(response, 400, "JSON nested deeper than 32 levels")


@pytest.mark.parametrize("kind", ["arrays", "objects"])
@pytest.mark.parametrize("depth", [3000, 100_000])
def test_edge_deeply_nested_json_scan_is_400(stack, depth, kind):
    # when
    response = stack.scan(_nested(depth, kind))
    # then
    _refused(response, 400, "JSON nested deeper than 32 levels")


@pytest.mark.parametrize("depth", [3000, 100_000])
def test_edge_deeply_nested_json_activation_is_400(stack, depth):
    # given: the activation body limit is small, so a deep document has to be compact
    body = b'{"code":' + b"[" * min(depth, 500) + b"]" * min(depth, 500) + b"}"
    # when
    response = stack.edge.http.post(
        "/v1/activations", headers={"content-type": "application/json"}, body=body
    )
    # then
    _refused(response, 400, "JSON nested deeper than 32 levels")


@pytest.mark.parametrize("depth", [3000, 20_000])
def test_admin_deeply_nested_json_cursor_is_400(any_stack, depth):
    # given: a cursor that is base64 of a deeply nested JSON document
    cursor = base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).decode().rstrip("=")
    # when
    response = any_stack.call("GET", f"/v1/campaigns?cursor={cursor}")
    # then
    _refused(response, 400, "cursor")


# -- dates at the edges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("starts_at", YEAR_1), ("ends_at", YEAR_9999), ("starts_at", "2000-01-01T09:00:00+10:00")],
)
def test_admin_campaign_window_at_the_edge_of_time_is_400(any_stack, field, value):
    # when
    created = any_stack.call("POST", "/v1/campaigns", {**CAMPAIGN, field: value})
    patched = any_stack.call("PATCH", f"/v1/campaigns/{any_stack.campaign_id}", {field: value})
    # then
    for response in (created, patched):
        _refused(response, 400, field, "2000-01-01", "2100-01-01")


@pytest.mark.parametrize("value", [YEAR_1, YEAR_9999])
@pytest.mark.parametrize("field", ["since", "until"])
def test_admin_history_and_audit_filters_at_the_edge_of_time_are_400(any_stack, field, value):
    # when
    query = f"?{field}={value.replace('+', '%2B')}"
    history = any_stack.call("GET", f"/v1/campaigns/{any_stack.campaign_id}/history{query}")
    audit = any_stack.call("GET", f"/v1/audit{query}")
    # then
    for response in (history, audit):
        _refused(response, 400, field, "2000-01-01", "2100-01-01")


@pytest.mark.parametrize("value", [YEAR_1, YEAR_9999])
def test_admin_alert_filter_at_the_edge_of_time_is_400(any_stack, value):
    # given
    venue = any_stack.ok("POST", "/v1/venues", {"name": "Lobby"}, 201)["venue_id"]
    # when
    response = any_stack.call("GET", f"/v1/venues/{venue}/alerts?since={value.replace('+', '%2B')}")
    # then
    _refused(response, 400, "since", "2000-01-01")


# -- numbers too large for the code ----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("cooldown_seconds", 10**12, ("cooldown_seconds", "86400")),
        ("cooldown_seconds", -1, ("cooldown_seconds", "0")),
        ("stamps_required", 10**12, ("stamps_required", "100")),
        ("stamps_required", 10**30, ("digit",)),
    ],
)
def test_admin_campaign_number_out_of_range_is_400_and_not_stored(any_stack, field, value, words):
    # when
    created = any_stack.call("POST", "/v1/campaigns", {**CAMPAIGN, field: value})
    patched = any_stack.call("PATCH", f"/v1/campaigns/{any_stack.campaign_id}", {field: value})
    # then
    for response in (created, patched):
        _refused(response, 400, *words)
    stored = any_stack.ok("GET", f"/v1/campaigns/{any_stack.campaign_id}")
    assert stored["cooldown_seconds"] <= 86400 and stored["stamps_required"] == 1


def test_edge_scan_at_a_campaign_with_a_stored_huge_cooldown_is_answered(any_stack):
    # given: a cooldown of 10^12 s stored before the bound existed (written past the service)
    campaigns = any_stack.services.deps.campaigns
    campaign = campaigns.get("default", any_stack.campaign_id)
    campaigns.save(replace(campaign, cooldown_seconds=10**12))
    # when: Ann is recognised there
    response = any_stack.scan(FACE, "image/jpeg")
    # then: a stamp, not a 500 (the stored value is held to the longest cooldown)
    assert response.status_code == 200, response.body
    assert response.json_body["recognised"] is True and response.json_body["new_stamp"] is True
    again = any_stack.scan(FACE, "image/jpeg")
    assert again.json_body["reason"] == "cooldown"


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        (
            "/v1/api-keys",
            {"name": "sync", "authorities": ["history"], "ttl_days": 10**9},
            ("ttl_days", "365"),
        ),
        ("/v1/api-keys", {"name": "sync", "authorities": ["history"], "ttl_days": 0}, ("ttl_days", "1")),
        ("/v1/api-keys", {"name": "sync", "authorities": ["history"], "ttl_days": 10**400}, ("digit",)),
        ("/v1/venues", {"name": "Lobby", "dedupe_minutes": 10**12}, ("dedupe_minutes", "1440")),
        ("/v1/venues", {"name": "Lobby", "crm": {"kind": "none", "deadline_ms": 10**12}}, ("deadline_ms",)),
        (
            "/v1/campaigns/{c}/messages",
            {"body": {"en": "Hi"}, "segment": {"min_stamps": 10**12}},
            ("min_stamps",),
        ),
        ("/v1/campaigns", {**CAMPAIGN, "cooldown_seconds": 1e300}, ("cooldown_seconds",)),
        ("/v1/campaigns", {**CAMPAIGN, "cooldown_seconds": True}, ("cooldown_seconds",)),
    ],
)
def test_admin_number_out_of_range_is_400(stack, path, body, words):
    # when
    response = stack.call("POST", path.format(c=stack.campaign_id), body)
    # then
    _refused(response, 400, *words)


@pytest.mark.parametrize("limit", ["1" + "0" * 30, "-1", "1e3", "9" * 5000])
def test_admin_page_limit_out_of_range_is_400(stack, limit):
    # when
    response = stack.call("GET", f"/v1/campaigns?limit={limit}")
    # then
    _refused(response, 400, "limit")


# -- names with control and format characters --------------------------------------------------


@pytest.mark.parametrize("bad", BAD_CHARACTERS.values(), ids=BAD_CHARACTERS.keys())
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/campaigns", {**CAMPAIGN, "name": "Spring{bad}rally"}, "name"),
        ("PATCH", "/v1/campaigns/{c}", {"name": "Spring{bad}rally"}, "name"),
        ("POST", "/v1/campaigns/{c}/checkpoints", {"name": "Gate{bad}A"}, "name"),
        ("POST", "/v1/campaigns/{c}/checkpoints", {"name": "Gate", "location": "Hall{bad}1"}, "location"),
        ("POST", "/v1/campaigns/{c}/checkpoints/{cp}/devices", {"name": "cam{bad}1"}, "name"),
        ("POST", "/v1/api-keys", {"name": "crm{bad}sync", "authorities": ["history"]}, "name"),
        ("POST", "/v1/venues", {"name": "Lobby{bad}East"}, "name"),
        ("POST", "/v1/venues/{v}/staff-devices", {"name": "desk{bad}1", "platform": "inbox"}, "name"),
        ("POST", "/v1/campaigns/{c}/participants", {"nickname": "Ann{bad}B", "consent": True}, "nickname"),
        ("POST", "/v1/venues/{v}/members", {"name": "Mr{bad}X", "photo": "{photo}"}, "name"),
    ],
)
def test_admin_name_with_an_unprintable_character_is_400(stack, method, path, body, field, bad):  # noqa: PLR0917
    # given
    venue = stack.ok("POST", "/v1/venues", {"name": "Lobby"}, 201)["venue_id"]
    photo = base64.b64encode(FACE).decode()
    filled = {k: v.format(bad=bad, photo=photo) if isinstance(v, str) else v for k, v in body.items()}
    if "participants" in path:
        filled["photo"] = photo
    # when
    response = stack.call(method, path.format(c=stack.campaign_id, cp=stack.checkpoint_id, v=venue), filled)
    # then
    _refused(response, 400, field, "printable")


@pytest.mark.parametrize("name", ["山田\u3000太郎", "Café Zoë", "Gate 1 — East", "🎉 Rally"])
def test_admin_names_people_write_are_accepted(stack, name):
    # when
    body = stack.ok("POST", "/v1/campaigns", {**CAMPAIGN, "name": name}, 201)
    # then
    assert body["name"] == name


# -- Type B templates ------------------------------------------------------------------------


def _template(first: str, rest: str = "0.0", count: int = 128) -> bytes:
    values = ",".join([first, *[rest] * (count - 1)])
    return f'{{"template":[{values}],"model_id":"{MODEL}"}}'.encode()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(_template("1" + "0" * 400), ("digit",), id="huge-integer"),
        pytest.param(_template("1e400"), ("NaN or infinity",), id="float-overflow"),
        pytest.param(_template("NaN"), ("NaN",), id="nan-literal"),
        pytest.param(_template("Infinity"), ("Infinity",), id="infinity-literal"),
        pytest.param(_template("-Infinity"), ("Infinity",), id="minus-infinity-literal"),
        pytest.param(_template("true"), ("numbers",), id="boolean"),
        pytest.param(_template('"1.0"'), ("numbers",), id="string"),
        pytest.param(_template("1.0", count=127), ("128",), id="short"),
        pytest.param(_template("1.0", count=129), ("128",), id="long"),
        pytest.param(_template("1.0", "0.01"), ("normalised",), id="not-unit-norm"),
        pytest.param(_template("[1.0]"), ("numbers",), id="nested-list"),
    ],
)
def test_edge_malformed_template_is_400(stack, body, words):
    # when
    response = stack.scan(body)
    # then
    _refused(response, 400, *words)


# -- photos that decode to gigabytes ----------------------------------------------------------


def _flat_png(width: int, height: int) -> bytes:
    """A complete, valid RGB PNG of one colour, built a row at a time (never whole in memory)."""
    row = b"\x00" + b"\x80" * (3 * width)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    """6300x6300 pixels (119 MB decoded) in about 120 KB."""
    return _flat_png(6300, 6300)


class RecordingEngine:
    """A face engine that records the size of each image it is given and finds one face (Ann)."""

    model_id = MODEL

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def _face(self, image: np.ndarray) -> Any:
        self.shapes.append(image.shape)
        embedding = type("E", (), {"vector": np.asarray(ANN, dtype=np.float32), "model_id": MODEL})()
        return type("F", (), {"embedding": embedding, "masked": False})()

    def analyse(self, image: np.ndarray) -> Any:
        return self._face(image)

    def analyse_all(self, image: np.ndarray, **_: Any) -> list[Any]:
        return [self._face(image)]

    def enrol(self, image: np.ndarray) -> Any:
        face = self._face(image)
        return type("Enrolment", (), {"template": face.embedding, "masked_template": face.embedding})()


@pytest.fixture
def engine_stack(make_stack: Callable[..., Stack]) -> tuple[Stack, RecordingEngine]:
    engine = RecordingEngine()
    analyzer = EngineFaceAnalyzer(engine=engine, max_photo_bytes=5 * 1024 * 1024)
    return make_stack(faces=analyzer), engine


def test_edge_scan_of_a_small_png_that_decodes_to_40_megapixels_is_413_before_decoding(
    engine_stack, bomb_png
):
    # given
    stack, engine = engine_stack
    assert len(bomb_png) < 200_000
    # when
    response = stack.scan(bomb_png, "image/png")
    # then: refused from its header, under the edge's 12 MP cap; nothing reached the engine
    _refused(response, 413, "6300x6300", "12 MP")
    assert engine.shapes == []


def test_admin_registration_of_a_small_png_that_decodes_to_40_megapixels_is_413(engine_stack, bomb_png):
    # given
    stack, engine = engine_stack
    photo = base64.b64encode(bomb_png).decode()
    # when
    response = stack.call(
        "POST",
        f"/v1/campaigns/{stack.campaign_id}/participants",
        {"nickname": "Zed", "consent": True, "photo": photo},
    )
    # then: over the registration cap (24 MP) too
    _refused(response, 413, "6300x6300", "24 MP")
    assert engine.shapes == []


def test_edge_scan_of_a_large_jpeg_is_decoded_at_the_size_the_detector_needs(engine_stack):
    # given: a 4K camera frame (3840x2160, under the 12 MP cap)
    stack, engine = engine_stack
    ok, jpeg = cv2.imencode(".jpg", np.full((2160, 3840, 3), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    # when
    response = stack.scan(jpeg.tobytes(), "image/jpeg")
    # then: decoded at half size by libjpeg, not at full size
    assert response.status_code == 200, response.body
    assert engine.shapes == [(1080, 1920, 3)]


def test_edge_scan_over_the_configured_pixel_cap_is_413(monkeypatch):
    # given: the deployment's face analyzer (its models are never loaded) with an edge cap of 1 MP
    ports = in_memory_ports(gallery=InMemoryGallery(model_id=MODEL), clock=FixedClock(NOW))
    del ports["faces"]
    stack = _stack(bootstrap(Settings({"EVENTFACE_EDGE_MAX_PIXELS": "1000000"}), **ports), monkeypatch)
    _, jpeg = cv2.imencode(".jpg", np.full((1000, 1200, 3), 128, np.uint8))
    # when
    response = stack.scan(jpeg.tobytes(), "image/jpeg")
    # then
    _refused(response, 413, "1200x1000", "1 MP")


def test_admin_registration_of_a_large_jpeg_is_decoded_at_a_reduced_size(engine_stack):
    # given: a 5200x2900 photo (15 MP, under the registration cap)
    stack, engine = engine_stack
    _, jpeg = cv2.imencode(".jpg", np.full((2900, 5200, 3), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    photo = base64.b64encode(jpeg.tobytes()).decode()
    # when
    response = stack.call(
        "POST",
        f"/v1/campaigns/{stack.campaign_id}/participants",
        {"nickname": "Zed", "consent": True, "photo": photo},
    )
    # then: libjpeg decoded it at half size, still over 2560 px on its longer side
    assert response.status_code == 201, response.body
    assert engine.shapes == [(1450, 2600, 3)]
