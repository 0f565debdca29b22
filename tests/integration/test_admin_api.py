"""The admin API (functions/admin_api) through the Chalice test client: every route, every error.

Services come from the composition root with the in-memory fakes; one test runs the full
management + scan flow on the real DynamoDB adapters against moto in-process.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from eventface import bootstrap as bootstrap_module
from eventface.adapters.memory import (
    TEST_CURSOR_KEY,
    FixedClock,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    in_memory_ports,
    unit_vector,
)
from eventface.adapters.memory_access import InMemoryApiKeyRepository, StaticClaims, StaticTokenVerifier
from eventface.api import openapi
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import ALL_AUTHORITIES, ApiKey, Authority, Membership, secret_hash
from eventface.domain.cursors import CursorSeal
from eventface.domain.errors import DependencyError, QualityReason
from eventface.local.apps import ADMIN_PROJECT, EDGE_PROJECT, REPO_ROOT, load_app
from eventface.settings import Settings

PROJECT = ADMIN_PROJECT
NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MODEL = "sface-2021dec"
LIMITS = {"EVENTFACE_MAX_PHOTO_BYTES": "2048", "EVENTFACE_MAX_BODY_BYTES": "4096"}


admin = load_app(PROJECT, "eventface_admin_app")
edge = load_app(EDGE_PROJECT, "eventface_edge_app")
KEY = "efk_admin-secret-key"
#: A signed-in user of TENANT holding every authority (only users create API keys).
USER_TOKEN = "admin-user-token"
OTHER_USER_TOKEN = "other-tenant-user-token"
TENANT = "default"
SETTINGS = dict(LIMITS)
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

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = KEY, token: str | None = None
    ) -> Any:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        elif key is not None:
            headers["x-api-key"] = key
        raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.http.request(method, path, headers=headers, body=raw)

    def ok(
        self, method: str, path: str, body: Any = None, status: int = 200, token: str | None = None
    ) -> Any:
        response = self.call(method, path, body, token=token)
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
        body = {"nickname": "Bob", "consent": True, "photo": b64(FACE), "push_token": "fcm:tok"}
        return str(self.ok("POST", f"/v1/campaigns/{campaign_id}/participants", body, 201)["participant_id"])


def seed_key(
    services: Services,
    secret: str,
    authorities: frozenset[Authority] = frozenset(ALL_AUTHORITIES),
    tenant: str = TENANT,
) -> ApiKey:
    """A management key as a deployment's bootstrap (or another key holder) would have made it."""
    key = ApiKey(
        tenant_id=tenant,
        key_id=f"key-{secret_hash(secret)[:8]}",
        name="test",
        prefix=secret[:12],
        key_hash=secret_hash(secret),
        authorities=authorities,
        created_at=NOW - timedelta(days=1),
        created_by="test",
        expires_at=NOW + timedelta(days=30),
    )
    services.deps.api_keys.add(key)
    return key


def admin_users() -> StaticTokenVerifier:
    """The identity provider of the tests: USER_TOKEN is a user of TENANT with every authority,
    OTHER_USER_TOKEN one of tenant "other"."""
    groups = tuple(sorted(a.value for a in ALL_AUTHORITIES))
    return StaticTokenVerifier(
        {
            USER_TOKEN: StaticClaims("sub-admin", "alice", groups, {"custom:tenant_id": TENANT}),
            OTHER_USER_TOKEN: StaticClaims("sub-other", "oscar", groups, {"custom:tenant_id": "other"}),
        }
    )


def make_admin(services: Services, monkeypatch: pytest.MonkeyPatch) -> Admin:
    seed_key(services, KEY)
    member(services, TENANT, "sub-admin", "alice")  # the users of admin_users()
    member(services, "other", "sub-other", "oscar")
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
            **in_memory_ports(
                gallery=InMemoryGallery(model_id=MODEL),
                faces=faces,
                clock=FixedClock(NOW),
                tokens=admin_users(),
            ),
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
    # and the receipt says per store what is gone and until when the templates stay in storage
    assert receipt["erased_at"] == NOW.isoformat()
    assert {store: line["state"] for store, line in receipt["stores"].items()} == {
        "record": "erased",
        "stamps": "erased",
        "history": "erased",
        "gallery_objects": "pending",
        "scanner_memory": "pending",
        "notification_jobs": "erased",
    }
    assert receipt["stores"]["gallery_objects"]["pending_until"] == (NOW + timedelta(minutes=80)).isoformat()


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


def test_admin_device_lifecycle_register_list_new_code_revoke(api):
    # given
    campaign_id, checkpoint_id = api.campaign(publish=True)
    # when
    device = api.ok(
        "POST", f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices", {"name": "gate cam"}, 201
    )
    listed = api.ok("GET", "/v1/devices")
    again = api.ok("POST", f"/v1/devices/{device['device_id']}/activation-code", None, 201)
    revoked = api.ok("DELETE", f"/v1/devices/{device['device_id']}")
    after = api.call("POST", f"/v1/devices/{device['device_id']}/activation-code")
    # then
    assert device["status"] == "pending" and device["checkpoint_id"] == checkpoint_id
    assert device["activation_code"] and device["activation_expires_at"] and "device_key" not in device
    assert [d["device_id"] for d in listed["items"]] == [device["device_id"]]
    assert again["activation_code"] != device["activation_code"]
    assert revoked["status"] == "revoked" and "activation_code" not in revoked
    assert after.status_code == 404


def test_admin_type_b_is_off_by_default_and_allowed_at_registration_or_later(api):
    # given
    campaign_id, checkpoint_id = api.campaign(publish=True)
    api.participant(campaign_id)
    devices = f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices"
    # when: one camera registered as usual, one allowed Type B at registration
    plain = api.ok("POST", devices, {"name": "photo cam"}, 201)
    typed = api.ok("POST", devices, {"name": "gate cam", "type_b": True}, 201)
    edge_client = Client(edge.app, stage_name="local", project_dir=str(EDGE_PROJECT))
    plain_key = _activate(edge_client, plain["activation_code"])
    typed_key = _activate(edge_client, typed["activation_code"])
    template = {"template": list(BOB), "model_id": MODEL}
    before = _scan(edge_client, checkpoint_id, plain_key, template)
    typed_scan = _scan(edge_client, checkpoint_id, typed_key, template)
    allowed = api.ok("PATCH", f"/v1/devices/{plain['device_id']}", {"type_b": True})
    after = _scan(edge_client, checkpoint_id, plain_key, template)
    stopped = api.ok("PATCH", f"/v1/devices/{typed['device_id']}", {"type_b": False})
    typed_after = _scan(edge_client, checkpoint_id, typed_key, template)
    listed = {d["device_id"]: d for d in api.ok("GET", "/v1/devices")["items"]}
    bad = api.call("PATCH", f"/v1/devices/{plain['device_id']}", {"type_b": "yes"})
    # then: the flag is on the device and on the key it already holds, at once
    assert plain["type_b"] is False and typed["type_b"] is True
    assert before.status_code == 403 and typed_scan.status_code == 200
    assert allowed["type_b"] is True and after.status_code == 200 and after.json_body["recognised"]
    assert stopped["type_b"] is False and typed_after.status_code == 403
    assert listed[plain["device_id"]]["type_b"] is True and listed[typed["device_id"]]["type_b"] is False
    assert listed[plain["device_id"]]["probe_abuse"] == {
        "flagged": False,
        "flags": 0,
        "flagged_at": None,
        "throttled_until": None,
        "quarantined": False,
        "reason": None,
    }
    assert bad.status_code == 400 and "type_b" in bad.json_body["Message"]
    actions = {e.action for e in api.services.deps.audit.list(TENANT).items}
    assert "devices.update" in actions


def test_admin_sees_a_probing_device_flagged_and_a_tenant_admin_clears_it(api):
    # given: a Type B camera that floods made-up templates until it is blocked
    campaign_id, checkpoint_id = api.campaign(publish=True)
    api.participant(campaign_id)
    device = api.ok(
        "POST", f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices", {"type_b": True}, 201
    )
    edge_client = Client(edge.app, stage_name="local", project_dir=str(EDGE_PROJECT))
    key = _activate(edge_client, device["activation_code"])
    clock = api.services.deps.clock
    codes = []
    rng = random.Random(11)
    for _ in range(3000):
        vector = unit_vector(*[rng.gauss(0.0, 1.0) for _ in range(128)])
        answer = _scan(edge_client, checkpoint_id, key, {"template": list(vector), "model_id": MODEL})
        codes.append(answer.status_code)
        clock.advance(int(answer.headers.get("Retry-After", 0)) if answer.status_code == 429 else 0.5)
        if answer.status_code == 403:
            break
    # when
    flagged = {d["device_id"]: d for d in api.ok("GET", "/v1/devices")["items"]}[device["device_id"]]
    trips = api.ok("GET", "/v1/audit?action=devices.probe_abuse")["items"]
    terminals_only = seed_key(api.services, "efk_terminals", frozenset({Authority.TERMINALS}))
    refused = api.call("DELETE", f"/v1/devices/{device['device_id']}/probe-abuse", key="efk_terminals")
    cleared = api.ok("DELETE", f"/v1/devices/{device['device_id']}/probe-abuse")
    photo_free = _scan(edge_client, checkpoint_id, key, {"template": list(BOB), "model_id": MODEL})
    # then: paused twice (429), then blocked (403) until a tenant admin cleared it
    assert codes[-1] == 403 and codes.count(429) >= 2 and codes.count(200) < 600
    assert flagged["probe_abuse"]["flagged"] is True and flagged["probe_abuse"]["quarantined"] is True
    assert (
        flagged["probe_abuse"]["flags"] == 3
        and "distinct unmatched templates" in flagged["probe_abuse"]["reason"]
    )
    assert len(trips) == 3 and {t["actor"] for t in trips} == {f"device:{device['device_id']}"}
    assert terminals_only.authorities == frozenset({Authority.TERMINALS}) and refused.status_code == 403
    assert cleared["probe_abuse"]["flagged"] is False and cleared["probe_abuse"]["quarantined"] is False
    assert photo_free.status_code == 200 and photo_free.json_body["recognised"] is True


def _activate(edge_client: Client, code: str) -> str:
    response = edge_client.http.post(
        "/v1/activations", headers={"content-type": "application/json"}, body=json.dumps({"code": code})
    )
    assert response.status_code == 201, response.body
    return str(response.json_body["device_key"])


def _scan(edge_client: Client, checkpoint_id: str, key: str, body: dict[str, Any]) -> Any:
    return edge_client.http.post(
        f"/v1/checkpoints/{checkpoint_id}/scans",
        headers={"x-device-key": key, "content-type": "application/json"},
        body=json.dumps(body),
    )


def test_admin_history_lists_scans_newest_first(api):
    # given: a scan through the services
    campaign_id, checkpoint_id = api.campaign(publish=True)
    api.participant(campaign_id)
    code = api.services.register_device("default", campaign_id, checkpoint_id).activation_code
    key = api.services.activate_device(code).key
    from eventface.services.scans import Scan

    api.services.record_scan(Scan(api.services.authenticate_device(key), checkpoint_id, photo=FACE))
    # when
    history = api.ok("GET", f"/v1/campaigns/{campaign_id}/history?limit=5")
    # then
    assert [e["outcome"] for e in history["items"]] == ["stamped"] and history["cursor"] is None


# -- authentication, health, OpenAPI -----------------------------------------------------------

#: Every management route, with the authority it needs ("x"/"y" stand for ids).
GUARDED: list[tuple[str, str, Authority | None]] = [
    ("POST", "/v1/campaigns", Authority.CAMPAIGNS),
    ("GET", "/v1/campaigns", Authority.CAMPAIGNS),
    ("GET", "/v1/campaigns/x", Authority.CAMPAIGNS),
    ("PATCH", "/v1/campaigns/x", Authority.CAMPAIGNS),
    ("POST", "/v1/campaigns/x/publish", Authority.CAMPAIGNS),
    ("POST", "/v1/campaigns/x/end", Authority.CAMPAIGNS),
    ("POST", "/v1/campaigns/x/checkpoints", Authority.CAMPAIGNS),
    ("DELETE", "/v1/campaigns/x/checkpoints/y", Authority.CAMPAIGNS),
    ("POST", "/v1/campaigns/x/participants", Authority.TARGETS),
    ("GET", "/v1/campaigns/x/participants", Authority.TARGETS),
    ("GET", "/v1/campaigns/x/participants/y", Authority.TARGETS),
    ("DELETE", "/v1/campaigns/x/participants/y", Authority.TARGETS),
    ("POST", "/v1/campaigns/x/checkpoints/y/devices", Authority.TERMINALS),
    ("DELETE", "/v1/devices/x", Authority.TERMINALS),
    ("GET", "/v1/devices", Authority.TERMINALS),
    ("POST", "/v1/devices/x/activation-code", Authority.TERMINALS),
    ("PATCH", "/v1/devices/x", Authority.TERMINALS),
    ("DELETE", "/v1/devices/x/probe-abuse", Authority.TENANT_ADMIN),
    ("GET", "/v1/campaigns/x/history", Authority.HISTORY),
    ("POST", "/v1/api-keys", Authority.API_KEYS),
    ("GET", "/v1/api-keys", Authority.API_KEYS),
    ("DELETE", "/v1/api-keys/x", Authority.API_KEYS),
    ("GET", "/v1/audit", Authority.TENANT_ADMIN),
    ("GET", "/v1/me", None),
    ("POST", "/v1/venues", Authority.TENANT_ADMIN),
    ("GET", "/v1/venues", Authority.VENUE_STAFF),
    ("GET", "/v1/venues/x", Authority.VENUE_STAFF),
    ("PATCH", "/v1/venues/x", Authority.TENANT_ADMIN),
    ("GET", "/v1/crm/secrets", Authority.TENANT_ADMIN),
    ("POST", "/v1/venues/x/members", Authority.TARGETS),
    ("GET", "/v1/venues/x/members", Authority.TARGETS),
    ("GET", "/v1/venues/x/members/y", Authority.TARGETS),
    ("DELETE", "/v1/venues/x/members/y", Authority.TARGETS),
    ("POST", "/v1/venues/x/devices", Authority.TERMINALS),
    ("POST", "/v1/venues/x/staff-devices", Authority.VENUE_STAFF),
    ("GET", "/v1/venues/x/staff-devices", Authority.VENUE_STAFF),
    ("DELETE", "/v1/venues/x/staff-devices/y", Authority.VENUE_STAFF),
    ("GET", "/v1/venues/x/alerts", Authority.VENUE_STAFF),
    ("GET", "/v1/venues/x/alerts/y", Authority.VENUE_STAFF),
    ("POST", "/v1/venues/x/alerts/y/acknowledge", Authority.VENUE_STAFF),
    ("POST", "/v1/venues/x/alerts/y/false-match", Authority.VENUE_STAFF),
    ("POST", "/v1/campaigns/x/messages", Authority.CAMPAIGNS),
    ("GET", "/v1/campaigns/x/messages", Authority.CAMPAIGNS),
    ("GET", "/v1/campaigns/x/messages/y", Authority.CAMPAIGNS),
]
ROUTES = [(method, path) for method, path, _ in GUARDED]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["missing", "wrong"])
def test_admin_routes_need_credentials(api, method, path, key):
    # when
    response = api.call(method, path, {}, key=key)
    # then
    assert response.status_code == 401 and response.json_body["Code"] == "UnauthorizedError"
    entry = api.services.deps.audit.list("-").items[0]
    assert (entry.actor, entry.outcome.value) == ("anonymous", "unauthenticated")


@pytest.mark.parametrize(("method", "path", "authority"), [g for g in GUARDED if g[2] is not None], ids=str)
def test_admin_route_refuses_a_key_without_its_authority_and_admits_one_with_it(api, method, path, authority):
    # given: a key with every authority but this one, and a key with only this one
    seed_key(api.services, "efk_without-it", frozenset(ALL_AUTHORITIES) - {authority})
    seed_key(api.services, "efk_only-this", frozenset({authority}))
    # when
    refused = api.call(method, path, {}, key="efk_without-it")
    admitted = api.call(method, path, {}, key="efk_only-this")
    # then
    assert refused.status_code == 403, refused.body
    assert f"'{authority.value}' authority" in refused.json_body["Message"]
    assert admitted.status_code not in (401, 403), admitted.body
    entries = api.services.deps.audit.list(TENANT).items
    assert [e.outcome.value for e in entries[:2]] != ["denied", "denied"]
    assert any(e.outcome.value == "denied" and e.target == path for e in entries)


def test_admin_me_names_the_caller_and_its_authorities(api):
    # when
    body = api.ok("GET", "/v1/me")
    # then
    assert body["tenant_id"] == TENANT and body["kind"] == "api_key"
    assert body["authorities"] == sorted(a.value for a in ALL_AUTHORITIES)


def test_admin_signed_in_user_acts_in_their_tenant_with_their_groups(api):
    # given: the identity provider vouches for a user of tenant "default" in two groups
    tokens = api.services.deps.tokens
    assert isinstance(tokens, StaticTokenVerifier)
    tokens.tokens["id-token"] = StaticClaims(
        "sub-1", "carol", ("campaigns", "history", "not-an-authority"), {"custom:tenant_id": TENANT}
    )
    tokens.tokens["no-tenant"] = StaticClaims("sub-2", "dave", ("campaigns",), {})
    member(api.services, TENANT, "sub-1", "carol")
    bearer = {"authorization": "Bearer id-token"}
    # when
    me = api.client.http.get("/v1/me", headers=bearer)
    created = api.client.http.post("/v1/campaigns", headers={**bearer, "content-type": "application/json"},
                                   body=json.dumps(CAMPAIGN))  # fmt: skip
    keys = api.client.http.get("/v1/api-keys", headers=bearer)
    homeless = api.client.http.get("/v1/me", headers={"authorization": "Bearer no-tenant"})
    both = api.client.http.get("/v1/me", headers={**bearer, "x-api-key": KEY})
    # then
    assert me.json_body["kind"] == "user" and me.json_body["authorities"] == ["campaigns", "history"]
    assert created.status_code == 201
    assert keys.status_code == 403
    assert homeless.status_code == 401 and "no tenant" in homeless.json_body["Message"]
    assert both.status_code == 401 and "not both" in both.json_body["Message"]
    actions = [(e.actor, e.action, e.outcome.value) for e in api.services.deps.audit.list(TENANT).items]
    assert ("user:sub-1", "campaigns.create", "ok") in actions
    assert ("user:sub-1", "api_keys.list", "denied") in actions


def member(services: Services, tenant: str, sub: str, username: str) -> None:
    """The platform's record that the user ``sub`` belongs to ``tenant``."""
    services.deps.memberships.grant(Membership(tenant, sub, username, NOW, granted_by="test"))


@pytest.mark.parametrize("membership", [None, "other"], ids=["no-membership", "member-of-another-tenant"])
def test_admin_user_whose_token_names_a_tenant_they_are_not_a_member_of_is_refused_and_audited(
    api, membership
):
    # given: a valid token whose tenant claim names "default", but the platform records the user
    # in no tenant, or in another one (the claim was rewritten)
    api.services.deps.tokens.tokens["moved"] = StaticClaims(
        "sub-9", "mallory", ("history",), {"custom:tenant_id": TENANT}
    )
    if membership:
        member(api.services, membership, "sub-9", "mallory")
    # when
    response = api.client.http.get("/v1/campaigns/c-1/history", headers={"authorization": "Bearer moved"})
    # then: 403 with what to do, and the refusal in the claimed tenant's log under the user's sub
    assert response.status_code == 403, response.body
    assert response.json_body["Code"] == "ForbiddenError"
    assert "not a member of tenant 'default'" in response.json_body["Message"]
    entry = api.services.deps.audit.list(TENANT).items[0]
    assert (entry.actor, entry.action, entry.outcome.value) == ("user:sub-9", "history.read", "denied")
    assert "not a member" in entry.detail


def test_admin_user_with_a_malformed_tenant_claim_is_refused_and_audited_under_no_tenant(api):
    # given
    api.services.deps.tokens.tokens["odd"] = StaticClaims(
        "sub-8", "eve", ("history",), {"custom:tenant_id": "default#other"}
    )
    # when
    response = api.client.http.get("/v1/me", headers={"authorization": "Bearer odd"})
    # then
    assert response.status_code == 403 and "not a valid tenant id" in response.json_body["Message"]
    entry = api.services.deps.audit.list("-").items[0]
    assert (entry.actor, entry.outcome.value) == ("user:sub-8", "denied")


def test_admin_refused_memberships_are_throttled_like_failed_sign_ins(make_api):
    # given: a budget of 2 failed authentications a minute per source
    api = make_api(EVENTFACE_FAILED_AUTH_PER_MINUTE="2")
    api.services.deps.tokens.tokens["moved"] = StaticClaims(
        "sub-9", "mallory", ("history",), {"custom:tenant_id": TENANT}
    )
    # when
    statuses = [
        api.client.http.get("/v1/me", headers={"authorization": "Bearer moved"}).status_code for _ in range(3)
    ]
    # then
    assert statuses == [403, 403, 429]


def test_admin_api_keys_are_created_shown_once_listed_and_revoked(api):
    # when
    body = {"name": "crm", "authorities": ["targets"], "ttl_days": 30}
    created = api.ok("POST", "/v1/api-keys", body, 201, token=USER_TOKEN)
    secret = created["api_key"]
    used = api.call("GET", "/v1/campaigns/none/participants", key=secret)
    listed = api.ok("GET", "/v1/api-keys")
    revoked = api.ok("DELETE", f"/v1/api-keys/{created['key_id']}")
    after = api.call("GET", "/v1/campaigns/none/participants", key=secret)
    # then
    assert secret.startswith(created["prefix"]) and created["authorities"] == ["targets"]
    assert used.status_code == 404  # authenticated and authorised; the campaign does not exist
    assert all("api_key" not in item for item in listed["items"])
    assert any(item["key_id"] == created["key_id"] for item in listed["items"])
    assert revoked["revoked"] is True
    assert after.status_code == 401 and "revoked" in after.json_body["Message"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "authorities": ["root"]}, 400),
        ({"name": "x", "authorities": "targets"}, 400),
        ({"name": "", "authorities": ["targets"]}, 400),
        ({"name": "x", "authorities": ["targets"], "ttl_days": 9999}, 400),
    ],
    ids=["unknown-authority", "not-a-list", "blank-name", "too-long"],
)
def test_admin_api_key_bad_requests(api, body, status):
    # when
    response = api.call("POST", "/v1/api-keys", body, token=USER_TOKEN)
    # then
    assert response.status_code == status, response.body


def test_admin_a_user_cannot_grant_what_they_do_not_hold(api):
    # given: a user who holds api_keys only
    tokens = api.services.deps.tokens
    assert isinstance(tokens, StaticTokenVerifier)
    tokens.tokens["keys-only"] = StaticClaims("sub-k", "kim", ("api_keys",), {"custom:tenant_id": TENANT})
    member(api.services, TENANT, "sub-k", "kim")
    # when
    response = api.call("POST", "/v1/api-keys", {"name": "x", "authorities": ["history"]}, token="keys-only")
    # then
    assert response.status_code == 403 and "do not hold" in response.json_body["Message"]


def test_admin_an_api_key_cannot_mint_keys_that_outlive_its_revocation(api):
    # given: a key holding api_keys (and what it would grant), as a CRM integration might
    parent = seed_key(api.services, "efk_parent-key", frozenset({Authority.API_KEYS, Authority.HISTORY}))
    # when: it tries to mint a child, then is revoked
    minted = api.call(
        "POST", "/v1/api-keys", {"name": "child", "authorities": ["history"]}, key="efk_parent-key"
    )
    api.ok("DELETE", f"/v1/api-keys/{parent.key_id}", token=USER_TOKEN)
    child = minted.json_body.get("api_key") if minted.status_code == 201 else None
    after = api.call("GET", "/v1/me", key=child) if child else None
    # then: no child exists to outlive the parent, and the refusal says who may create keys
    assert after is None or after.status_code == 401, "a key minted by a revoked key still works"
    assert minted.status_code == 403 and "sign in as a user" in minted.json_body["Message"]
    assert [k.created_by for k in api.services.deps.api_keys.list(TENANT).items if k.name == "child"] == []
    entries = [(e.actor, e.action, e.outcome.value) for e in api.services.deps.audit.list(TENANT).items]
    assert (f"api_key:{parent.key_id}", "api_keys.create", "denied") in entries


def test_admin_audit_log_lists_every_kind_of_action(api):
    # given: a management change, a history read, a refusal
    campaign_id, _ = api.campaign()
    api.ok("GET", f"/v1/campaigns/{campaign_id}/history")
    seed_key(api.services, "efk_no-history", frozenset({Authority.CAMPAIGNS}))
    api.call("GET", f"/v1/campaigns/{campaign_id}/history", key="efk_no-history")
    # when
    page = api.ok("GET", "/v1/audit?limit=100")
    only_history = api.ok("GET", "/v1/audit?action=history.read")
    # then
    actions = {(e["action"], e["outcome"]) for e in page["items"]}
    assert {("campaigns.create", "ok"), ("history.read", "ok"), ("history.read", "denied")} <= actions
    assert {e["action"] for e in only_history["items"]} == {"history.read"}
    assert all(e["target"].startswith("/v1/") and "efk_" not in e["detail"] for e in page["items"])


# -- tenant isolation ---------------------------------------------------------------------------


@pytest.fixture
def two_tenants(api):
    """Tenant "default" holds a campaign, checkpoint, participant, device and key; tenant "other"
    holds a key with every authority."""
    campaign_id, checkpoint_id = api.campaign(publish=True)
    participant_id = api.participant(campaign_id)
    device_id = api.ok("POST", f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices", {}, 201)[
        "device_id"
    ]
    key_id = api.ok(
        "POST", "/v1/api-keys", {"name": "crm", "authorities": ["targets"]}, 201, token=USER_TOKEN
    )["key_id"]
    venue_id = api.ok("POST", "/v1/venues", {"name": "Grand Hotel"}, 201)["venue_id"]
    member_id = api.ok("POST", f"/v1/venues/{venue_id}/members", {"name": "Sato", "photo": b64(FACE)}, 201)[
        "member_id"
    ]
    staff_id = api.ok(
        "POST", f"/v1/venues/{venue_id}/staff-devices", {"name": "Desk", "platform": "inbox"}, 201
    )["staff_device_id"]
    message_id = api.ok("POST", f"/v1/campaigns/{campaign_id}/messages", {"body": {"en": "Hi"}}, 201)[
        "message_id"
    ]
    seed_key(api.services, "efk_other-tenant", tenant="other")
    return {
        "x": campaign_id,
        "cp": checkpoint_id,
        "p": participant_id,
        "d": device_id,
        "k": key_id,
        "v": venue_id,
        "m": member_id,
        "s": staff_id,
        "msg": message_id,
    }


def _their(path: str, ids: dict[str, str]) -> str:
    """A GUARDED path with tenant "default"'s real ids in place of x and y."""
    parts = path.split("/")
    if parts[2] == "devices" and len(parts) > 3:
        parts[3] = ids["d"]
    elif parts[2] == "api-keys" and len(parts) > 3:
        parts[3] = ids["k"]
    elif parts[2] == "campaigns" and len(parts) > 3:
        parts[3] = ids["x"]
        if len(parts) > 5:
            parts[5] = {"participants": ids["p"], "messages": ids["msg"]}.get(parts[4], ids["cp"])
    elif parts[2] == "venues" and len(parts) > 3:
        parts[3] = ids["v"]
        if len(parts) > 5:
            parts[5] = {"members": ids["m"], "staff-devices": ids["s"]}.get(parts[4], parts[5])
    return "/".join(parts)


VALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/campaigns"): CAMPAIGN,
    ("PATCH", "/v1/campaigns/x"): {"name": "Taken over"},
    ("POST", "/v1/campaigns/x/checkpoints"): {"name": "Side door"},
    ("POST", "/v1/campaigns/x/participants"): {"nickname": "Eve", "consent": True, "photo": b64(FACE)},
    ("POST", "/v1/api-keys"): {"name": "mine", "authorities": ["targets"]},
    ("POST", "/v1/venues"): {"name": "Their hotel"},
    ("PATCH", "/v1/venues/x"): {"name": "Taken over"},
    ("POST", "/v1/venues/x/members"): {"name": "Eve", "photo": b64(FACE)},
    ("POST", "/v1/venues/x/staff-devices"): {"name": "Spy", "platform": "inbox"},
    ("POST", "/v1/campaigns/x/messages"): {"body": {"en": "Hi"}},
    ("PATCH", "/v1/devices/x"): {"type_b": True},
}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_admin_other_tenant_can_neither_see_nor_touch_a_tenants_records(api, two_tenants, method, path):
    # given
    before = api.ok("GET", f"/v1/campaigns/{two_tenants['x']}")
    # when
    body = VALID_BODIES.get((method, path), {})
    # Only users create API keys: the other tenant's admin signs in for that route.
    token = OTHER_USER_TOKEN if (method, path) == ("POST", "/v1/api-keys") else None
    response = api.call(method, _their(path, two_tenants), body, key="efk_other-tenant", token=token)
    # then: a foreign id is "not found", never "forbidden"; listings show only the caller's tenant
    if "x" in path.split("/") or path.endswith("/y") or "/devices/x" in path:
        assert response.status_code == 404, (response.status_code, response.body)
    else:
        assert response.status_code in (200, 201, 400), response.body
        text = json.dumps(response.json_body)
        assert all(value not in text for value in two_tenants.values())
    assert api.ok("GET", f"/v1/campaigns/{two_tenants['x']}") == before
    assert api.ok("GET", f"/v1/campaigns/{two_tenants['x']}/participants/{two_tenants['p']}")


def test_admin_bearer_token_without_oidc_configured_is_503_without_details(monkeypatch):
    # given: no EVENTFACE_OIDC_* settings, and the real token verifier
    ports = in_memory_ports(clock=FixedClock(NOW))
    del ports["tokens"]
    api = make_admin(bootstrap(Settings(dict(SETTINGS)), **ports), monkeypatch)
    # when
    response = api.client.http.get("/v1/me", headers={"authorization": "Bearer abc.def.ghi"})
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
    assert len(ROUTES) == len(routes) - 2  # every route but health and openapi.json is guarded


def _concrete(path: str) -> str:
    """``/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}`` → ``/v1/campaigns/x/checkpoints/y``."""
    names = {"{campaign_id}": "x", "{device_id}": "x", "{key_id}": "x", "{venue_id}": "x"}
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
        cursors=CursorSeal(TEST_CURSOR_KEY),
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
    activation = edge_client.http.post(
        "/v1/activations",
        headers={"content-type": "application/json"},
        body=json.dumps({"code": device["activation_code"]}),
    )
    headers = {"x-device-key": activation.json_body["device_key"], "content-type": "image/jpeg"}
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


def test_admin_key_over_its_rate_and_failed_keys_get_429(make_api):
    # given: keys allowed 2 requests a minute, sources 2 failures
    api = make_api(EVENTFACE_KEY_REQUESTS_PER_MINUTE="2", EVENTFACE_FAILED_AUTH_PER_MINUTE="2")
    # when
    mine = [api.call("GET", "/v1/me").status_code for _ in range(3)]
    wrong = [api.call("GET", "/v1/me", key=f"efk_wrong-{i}").status_code for i in range(3)]
    # then
    assert mine == [200, 200, 429]
    assert wrong == [401, 401, 429]
    outcomes = [e.outcome.value for e in api.services.deps.audit.list("-").items]
    assert outcomes.count("unauthenticated") == 3


class CountingKeys(InMemoryApiKeyRepository):
    """The fake key store, counting lookups by hash (authentications)."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def by_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return super().by_hash(key_hash)


def test_admin_throttled_source_is_refused_before_any_key_lookup_or_audit(monkeypatch):
    # given: a source that used its failed-authentication budget (2) with wrong keys
    keys = CountingKeys()
    services = bootstrap(
        Settings({**SETTINGS, "EVENTFACE_FAILED_AUTH_PER_MINUTE": "2"}),
        **in_memory_ports(clock=FixedClock(NOW), tokens=admin_users(), api_keys=keys),
    )
    api = make_admin(services, monkeypatch)
    first = [api.call("GET", "/v1/me", key=f"efk_wrong-{i}").status_code for i in range(3)]
    lookups, audited = keys.lookups, len(services.deps.audit.list("-").items)
    # when: it keeps trying: wrong keys, the right key, a bearer token
    later = [api.call("GET", "/v1/me", key=f"efk_guess-{i}").status_code for i in range(5)]
    later += [api.call("GET", "/v1/me").status_code, api.call("GET", "/v1/me", token=USER_TOKEN).status_code]
    # then: refused with no key lookup and no audit entry
    assert first == [401, 401, 429]
    assert later == [429] * 7
    assert keys.lookups == lookups == 3
    assert len(services.deps.audit.list("-").items) == audited == 3
    assert len(services.deps.audit.list(TENANT).items) == 0


def test_admin_answer_goes_out_when_the_audit_log_is_down(api, monkeypatch, caplog):
    # given: the audit store refuses writes
    def down(entry: object) -> None:
        raise DependencyError("audit table unavailable")

    monkeypatch.setattr(api.services.deps.audit, "append", down)
    # when
    response = api.call("GET", "/v1/me")
    # then: answered, and the missing entry is logged as an error for operators
    assert response.status_code == 200
    assert any(
        r.levelname == "ERROR" and "audit entry could not be written" in r.getMessage()
        for r in caplog.records
    )


def test_admin_campaign_message_with_an_idempotency_key_is_sent_once(api):
    # given: a live campaign with one participant
    campaign_id, _ = api.campaign(publish=True)
    api.participant(campaign_id)
    headers = {"content-type": "application/json", "x-api-key": KEY, "idempotency-key": "retry-me"}
    body = json.dumps({"body": {"en": "Hi"}, "segment": {"min_stamps": 0}})
    path = f"/v1/campaigns/{campaign_id}/messages"
    # when: the client sends, times out, and sends again; then reuses the key for another text
    first = api.client.http.post(path, headers=headers, body=body)
    second = api.client.http.post(path, headers=headers, body=body)
    other = api.client.http.post(path, headers=headers, body=json.dumps({"body": {"en": "Other"}}))
    # then
    assert first.status_code == second.status_code == 201
    assert first.json_body["message_id"] == second.json_body["message_id"]
    assert first.json_body["targeted"] == 1
    assert len(api.ok("GET", path)["items"]) == 1
    assert other.status_code == 409
