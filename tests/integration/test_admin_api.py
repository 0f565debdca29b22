"""The admin API (functions/admin_api) through the Chalice test client: every route, every error.

Services come from the composition root with the in-memory fakes; one test runs the full
management + scan flow on the real DynamoDB adapters against moto in-process.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from eventface import bootstrap as bootstrap_module
from eventface.adapters.memory import (
    FixedClock,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    in_memory_ports,
    unit_vector,
)
from eventface.api import openapi
from eventface.bootstrap import Services, bootstrap
from eventface.domain.errors import QualityReason
from eventface.local.apps import ADMIN_PROJECT, EDGE_PROJECT, REPO_ROOT, load_app
from eventface.settings import Settings

PROJECT = ADMIN_PROJECT
NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MODEL = "sface-2021dec"
LIMITS = {"EVENTFACE_MAX_PHOTO_BYTES": "2048", "EVENTFACE_MAX_BODY_BYTES": "4096"}


admin = load_app(PROJECT, "eventface_admin_app")
edge = load_app(EDGE_PROJECT, "eventface_edge_app")
KEY = "admin-secret-key"
SETTINGS = {**LIMITS, "EVENTFACE_ADMIN_API_KEY_SHA256": hashlib.sha256(KEY.encode()).hexdigest()}
FACE = b"\xff\xd8bob-face"
BLURRY = b"\xff\xd8blurry-face"
BOB = unit_vector(1.0, *([0.0] * 127))
CAMPAIGN = {
    "name": "Spring rally",
    "starts_at": (NOW - timedelta(hours=1)).isoformat(),
    "ends_at": (NOW + timedelta(hours=8)).isoformat().replace("+00:00", "Z"),
    "stamps_required": 1,
    "reward_text": "A free coffee",
    "notification_texts": {"stamp": "{nickname}: {stamps}/{required}", "complete": "Done! {reward}"},
    "cooldown_seconds": 10,
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Admin:
    services: Services
    client: Client

    def call(self, method: str, path: str, body: Any = None, key: str | None = KEY) -> Any:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["x-api-key"] = key
        raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.http.request(method, path, headers=headers, body=raw)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == status, response.body
        return response.json_body

    def campaign(self, publish: bool = False) -> tuple[str, str]:
        """A campaign with one checkpoint (published if asked): ids."""
        campaign_id = self.ok("POST", "/v1/campaigns", CAMPAIGN, 201)["campaign_id"]
        checkpoint_id = self.ok("POST", f"/v1/campaigns/{campaign_id}/checkpoints", {"name": "Gate"}, 201)[
            "checkpoint_id"
        ]
        if publish:
            self.ok("POST", f"/v1/campaigns/{campaign_id}/publish")
        return campaign_id, checkpoint_id

    def participant(self, campaign_id: str) -> str:
        body = {"nickname": "Bob", "consent": True, "photo": b64(FACE), "push_token": "tok"}
        return str(self.ok("POST", f"/v1/campaigns/{campaign_id}/participants", body, 201)["participant_id"])


def make_admin(services: Services, monkeypatch: pytest.MonkeyPatch) -> Admin:
    monkeypatch.setattr(bootstrap_module, "services", lambda: services)
    return Admin(services, Client(admin.app, stage_name="local", project_dir=str(PROJECT)))


@pytest.fixture
def make_api(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Admin]:
    def make(**settings: str) -> Admin:
        # given
        faces = InMemoryFaceAnalyzer(model_id=MODEL, faces={FACE: BOB, BLURRY: BOB})
        faces.quality_reasons[BLURRY] = (QualityReason("blur", "the photo is blurred: hold still"),)
        services = bootstrap(
            Settings({**SETTINGS, **settings}),
            **in_memory_ports(gallery=InMemoryGallery(model_id=MODEL), faces=faces, clock=FixedClock(NOW)),
        )
        return make_admin(services, monkeypatch)

    return make


@pytest.fixture
def api(make_api: Callable[..., Admin]) -> Admin:
    return make_api()


# -- campaigns ---------------------------------------------------------------------------------


def test_admin_create_campaign_returns_201_draft(api):
    # when
    body = api.ok("POST", "/v1/campaigns", CAMPAIGN, 201)
    # then
    assert body["status"] == "draft" and body["name"] == "Spring rally"
    assert body["notification_texts"] == CAMPAIGN["notification_texts"] and body["cooldown_seconds"] == 10


def test_admin_list_and_get_campaigns(api):
    # given
    first, _ = api.campaign()
    api.campaign()
    # when
    page = api.ok("GET", "/v1/campaigns?limit=1")
    rest = api.ok("GET", f"/v1/campaigns?limit=1&cursor={page['cursor']}")
    one = api.ok("GET", f"/v1/campaigns/{first}")
    # then
    assert len(page["items"]) == 1 and len(rest["items"]) == 1 and rest["cursor"] is None
    assert one["campaign_id"] == first and len(one["checkpoints"]) == 1


def test_admin_patch_campaign_changes_fields(api):
    # given
    campaign_id, _ = api.campaign()
    # when
    body = api.ok("PATCH", f"/v1/campaigns/{campaign_id}", {"name": "Renamed", "stamps_required": 1})
    # then
    assert body["name"] == "Renamed" and body["reward_text"] == "A free coffee"


def test_admin_publish_then_end_campaign(api):
    # given
    campaign_id, _ = api.campaign()
    # when
    published = api.ok("POST", f"/v1/campaigns/{campaign_id}/publish")
    ended = api.ok("POST", f"/v1/campaigns/{campaign_id}/end")
    # then
    assert published["status"] == "live" and ended["status"] == "ended"


def test_admin_add_and_remove_checkpoint(api):
    # given
    campaign_id, checkpoint_id = api.campaign()
    # when
    body = api.ok("DELETE", f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}")
    # then
    assert body["checkpoints"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        pytest.param("POST", "/v1/campaigns", b"{nope", 400, "InvalidInputError", id="create-bad-json"),
        pytest.param(
            "POST",
            "/v1/campaigns",
            {**CAMPAIGN, "starts_at": "tomorrow"},
            400,
            "InvalidInputError",
            id="create-bad-date",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns",
            {**CAMPAIGN, "colour": "red"},
            400,
            "InvalidInputError",
            id="create-unknown-field",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns",
            {**CAMPAIGN, "stamps_required": 0},
            400,
            "InvalidInputError",
            id="create-zero-stamps",
        ),
        pytest.param(
            "POST", "/v1/campaigns", {"name": "x" * 5000}, 413, "PayloadTooLargeError", id="create-too-large"
        ),
        pytest.param("GET", "/v1/campaigns?limit=abc", None, 400, "InvalidInputError", id="list-bad-limit"),
        pytest.param("GET", "/v1/campaigns?limit=1000", None, 400, "InvalidInputError", id="list-big-limit"),
        pytest.param("GET", "/v1/campaigns/nope", None, 404, "NotFoundError", id="get-unknown"),
        pytest.param("PATCH", "/v1/campaigns/nope", {"name": "x"}, 404, "NotFoundError", id="patch-unknown"),
        pytest.param(
            "PATCH",
            "/v1/campaigns/{c}",
            {"notification_texts": {"stamp": "x"}},
            400,
            "InvalidInputError",
            id="patch-half-texts",
        ),
        pytest.param("POST", "/v1/campaigns/nope/publish", None, 404, "NotFoundError", id="publish-unknown"),
        pytest.param(
            "POST", "/v1/campaigns/{live}/publish", None, 409, "StateConflictError", id="publish-twice"
        ),
        pytest.param(
            "PATCH",
            "/v1/campaigns/{live}",
            {"stamps_required": 2},
            409,
            "StateConflictError",
            id="patch-live-stamps",
        ),
        pytest.param("POST", "/v1/campaigns/nope/end", None, 404, "NotFoundError", id="end-unknown"),
        pytest.param("POST", "/v1/campaigns/{ended}/end", None, 409, "StateConflictError", id="end-twice"),
        pytest.param(
            "POST",
            "/v1/campaigns/{c}/checkpoints",
            {"name": " "},
            400,
            "InvalidInputError",
            id="checkpoint-no-name",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/nope/checkpoints",
            {"name": "Hall"},
            404,
            "NotFoundError",
            id="checkpoint-unknown-campaign",
        ),
        pytest.param(
            "DELETE",
            "/v1/campaigns/{live}/checkpoints/{cp}",
            None,
            409,
            "StateConflictError",
            id="checkpoint-remove-live",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/{c}/participants",
            {"nickname": "Bob", "consent": False, "photo": b64(FACE)},
            400,
            "InvalidInputError",
            id="participant-no-consent",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/{c}/participants",
            {"nickname": "Bob", "consent": True, "photo": "%%%"},
            400,
            "InvalidInputError",
            id="participant-bad-base64",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/{c}/participants",
            {"nickname": "Bob", "consent": True, "photo": b64(b"\xff" * 2500)},
            413,
            "PayloadTooLargeError",
            id="participant-photo-too-large",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/{c}/participants",
            {"nickname": "Bob", "consent": True, "photo": b64(b"no face here")},
            422,
            "FaceNotFoundError",
            id="participant-no-face",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/nope/participants",
            {"nickname": "Bob", "consent": True, "photo": b64(FACE)},
            404,
            "NotFoundError",
            id="participant-unknown-campaign",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/{ended}/participants",
            {"nickname": "Bob", "consent": True, "photo": b64(FACE)},
            409,
            "StateConflictError",
            id="participant-campaign-ended",
        ),
        pytest.param(
            "GET",
            "/v1/campaigns/nope/participants",
            None,
            404,
            "NotFoundError",
            id="participants-unknown-campaign",
        ),
        pytest.param(
            "GET",
            "/v1/campaigns/{c}/participants?cursor=zz",
            None,
            400,
            "InvalidInputError",
            id="participants-bad-cursor",
        ),
        pytest.param(
            "GET",
            "/v1/campaigns/{c}/participants/nobody",
            None,
            404,
            "NotFoundError",
            id="participant-unknown",
        ),
        pytest.param(
            "DELETE",
            "/v1/campaigns/nope/participants/nobody",
            None,
            404,
            "NotFoundError",
            id="erase-unknown-campaign",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/{c}/checkpoints/elsewhere/devices",
            {"name": "cam"},
            400,
            "InvalidInputError",
            id="device-foreign-checkpoint",
        ),
        pytest.param(
            "POST",
            "/v1/campaigns/nope/checkpoints/{cp}/devices",
            {"name": "cam"},
            404,
            "NotFoundError",
            id="device-unknown-campaign",
        ),
        pytest.param("DELETE", "/v1/devices/nope", None, 404, "NotFoundError", id="revoke-unknown"),
        pytest.param("GET", "/v1/campaigns/nope/history", None, 404, "NotFoundError", id="history-unknown"),
        pytest.param(
            "GET", "/v1/campaigns/{c}/history?limit=0", None, 400, "InvalidInputError", id="history-bad-limit"
        ),
    ],
)
def test_admin_errors_are_mapped(api, method, path, body, status, code):  # noqa: PLR0917
    # given: a draft {c}, a live {live}, an ended {ended} campaign; {cp} is a checkpoint of each
    draft, cp = api.campaign()
    live, live_cp = api.campaign(publish=True)
    ended, _ = api.campaign()
    api.ok("POST", f"/v1/campaigns/{ended}/end")
    target = path.format(c=draft, live=live, ended=ended, cp=live_cp if "{live}" in path else cp)
    # when
    response = api.call(method, target, body)
    # then
    assert response.status_code == status, response.body
    assert response.json_body["Code"] == code and response.json_body["Message"]


# -- participants ------------------------------------------------------------------------------


def test_admin_register_list_get_erase_participant(api):
    # given
    campaign_id, _ = api.campaign(publish=True)
    participant_id = api.participant(campaign_id)
    # when
    listed = api.ok("GET", f"/v1/campaigns/{campaign_id}/participants?limit=10")
    one = api.ok("GET", f"/v1/campaigns/{campaign_id}/participants/{participant_id}")
    receipt = api.ok("DELETE", f"/v1/campaigns/{campaign_id}/participants/{participant_id}")
    gone = api.call("GET", f"/v1/campaigns/{campaign_id}/participants/{participant_id}")
    # then
    assert [p["participant_id"] for p in listed["items"]] == [participant_id]
    assert one["nickname"] == "Bob" and one["progress"]["stamps"] == 0 and one["has_push"] is True
    assert "tok" not in json.dumps(one)
    assert receipt["verified"] is True and receipt["participant_id"] == participant_id
    assert gone.status_code == 404


def test_admin_register_participant_quality_problem_is_422_with_reasons(api):
    # given
    campaign_id, _ = api.campaign()
    # when
    response = api.call(
        "POST",
        f"/v1/campaigns/{campaign_id}/participants",
        {"nickname": "Bob", "consent": True, "photo": b64(BLURRY)},
    )
    # then
    assert response.status_code == 422
    assert response.json_body["Code"] == "FaceQualityError"
    assert response.json_body["Reasons"] == [{"code": "blur", "message": "the photo is blurred: hold still"}]


# -- devices and history -----------------------------------------------------------------------


def test_admin_register_device_shows_key_once_and_revoke(api):
    # given
    campaign_id, checkpoint_id = api.campaign(publish=True)
    # when
    device = api.ok(
        "POST", f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices", {"name": "gate cam"}, 201
    )
    revoked = api.ok("DELETE", f"/v1/devices/{device['device_id']}")
    # then
    assert device["device_key"] and device["checkpoint_id"] == checkpoint_id
    assert revoked["revoked"] is True and "device_key" not in revoked


def test_admin_history_lists_scans_newest_first(api):
    # given: a scan through the services
    campaign_id, checkpoint_id = api.campaign(publish=True)
    api.participant(campaign_id)
    key = api.services.register_device("default", campaign_id, checkpoint_id).key
    from eventface.services.scans import Scan

    api.services.record_scan(Scan(api.services.authenticate_device(key), checkpoint_id, photo=FACE))
    # when
    history = api.ok("GET", f"/v1/campaigns/{campaign_id}/history?limit=5")
    # then
    assert [e["outcome"] for e in history["items"]] == ["stamped"] and history["cursor"] is None


# -- authentication, health, OpenAPI -----------------------------------------------------------

ROUTES = [
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns"),
    ("GET", "/v1/campaigns/x"),
    ("PATCH", "/v1/campaigns/x"),
    ("POST", "/v1/campaigns/x/publish"),
    ("POST", "/v1/campaigns/x/end"),
    ("POST", "/v1/campaigns/x/checkpoints"),
    ("DELETE", "/v1/campaigns/x/checkpoints/y"),
    ("POST", "/v1/campaigns/x/participants"),
    ("GET", "/v1/campaigns/x/participants"),
    ("GET", "/v1/campaigns/x/participants/y"),
    ("DELETE", "/v1/campaigns/x/participants/y"),
    ("POST", "/v1/campaigns/x/checkpoints/y/devices"),
    ("DELETE", "/v1/devices/x"),
    ("GET", "/v1/campaigns/x/history"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["missing", "wrong"])
def test_admin_routes_need_the_api_key(api, method, path, key):
    # when
    response = api.call(method, path, {}, key=key)
    # then
    assert response.status_code == 401 and response.json_body["Code"] == "UnauthorizedError"


def test_admin_unconfigured_key_is_503_without_details(make_api):
    # given
    api = make_api(EVENTFACE_ADMIN_API_KEY_SHA256="")
    # when
    response = api.call("GET", "/v1/campaigns")
    # then
    assert response.status_code == 503 and "operators" in response.json_body["Message"]


def test_admin_health_needs_no_key(api):
    # when
    response = api.call("GET", "/v1/health", key=None)
    # then
    assert response.status_code == 200 and response.json_body["status"] == "ok"


def test_admin_openapi_matches_checked_in_file_and_routes(api):
    # given
    path = REPO_ROOT / "docs" / "openapi" / "admin.json"
    checked_in = json.loads(path.read_text())
    # when
    response = api.call("GET", "/openapi.json", key=None)
    # then
    assert response.status_code == 200 and response.json_body == checked_in
    assert openapi.dump(openapi.ADMIN_OPENAPI) == path.read_text()
    routes = {(p, m.lower()) for p, entries in admin.app.routes.items() for m in entries}
    documented = {(p, m) for p, item in checked_in["paths"].items() for m in item}
    assert routes == documented
    assert {(p, m.lower()) for m, p in ROUTES} <= {(_concrete(p), m) for p, m in documented}


def _concrete(path: str) -> str:
    """``/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}`` → ``/v1/campaigns/x/checkpoints/y``."""
    names = {"{campaign_id}": "x", "{device_id}": "x"}
    return "/".join(names.get(p, "y" if p.startswith("{") else p) for p in path.split("/"))


# -- full flow on the real DynamoDB adapters (moto) --------------------------------------------


@pytest.fixture
def dynamo_services(table_prefix: str) -> Services:
    """Services on the real DynamoDB adapters (moto in-process); gallery and faces faked."""
    return bootstrap(
        Settings({**SETTINGS, "EVENTFACE_TABLE_PREFIX": table_prefix}),
        gallery=InMemoryGallery(model_id=MODEL),
        faces=InMemoryFaceAnalyzer(model_id=MODEL, faces={FACE: BOB}),
        clock=FixedClock(NOW),
    )


def test_admin_then_edge_flow_on_dynamo(dynamo_services, monkeypatch):
    # given
    api = make_admin(dynamo_services, monkeypatch)
    campaign_id, checkpoint_id = api.campaign(publish=True)
    participant_id = api.participant(campaign_id)
    device = api.ok(
        "POST", f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices", {"name": "cam"}, 201
    )
    edge_client = Client(edge.app, stage_name="local", project_dir=str(EDGE_PROJECT))
    headers = {"x-device-key": device["device_key"], "content-type": "image/jpeg"}
    # when
    first = edge_client.http.post(f"/v1/checkpoints/{checkpoint_id}/scans", headers=headers, body=FACE)
    dynamo_services.deps.clock.advance(60)
    second = edge_client.http.post(f"/v1/checkpoints/{checkpoint_id}/scans", headers=headers, body=FACE)
    progress = api.ok("GET", f"/v1/campaigns/{campaign_id}/participants/{participant_id}")
    history = api.ok("GET", f"/v1/campaigns/{campaign_id}/history")
    # then
    assert first.json_body["new_stamp"] is True and first.json_body["completed"] is True
    assert second.json_body["already_stamped"] is True
    assert progress["progress"]["completed"] is True
    assert [e["outcome"] for e in history["items"]] == ["already_stamped", "stamped"]
    assert datetime.fromisoformat(history["items"][0]["at"]) == NOW + timedelta(seconds=60)
