"""The loopback CRM test server: profiles, auth, webhooks, and fault injection from Python and HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from eventface.adapters.crm import RestCrmConnector, Transport, WebhookCrmConnector, guarded_transport
from eventface.adapters.egress import EgressGuard
from eventface.domain.egress import EgressRules, parse_allow_list
from eventface.local.crm_server import SAMPLE_FIELD_MAP, SAMPLE_PROFILES, CrmTestServer

AUTH = "Bearer s3cret"
SECRET = b"webhook-key"


def _allowing(crm: CrmTestServer) -> Transport:
    """Real HTTP under the local stack's egress rules (http allowed) with only this CRM
    allow-listed: loopback is refused otherwise."""
    rules = EgressRules(https_only=False, allow=parse_allow_list(crm.egress_allow_entry))
    return guarded_transport(EgressGuard(rules))


@pytest.fixture
def crm() -> Iterator[CrmTestServer]:
    """The sample CRM with authentication and webhook signatures on."""
    with CrmTestServer(auth_value=AUTH, webhook_secret=SECRET) as server:
        yield server


def _call(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Send one request; return the status and the decoded JSON body (``None`` when empty)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
        exc.close()
    return status, json.loads(raw) if raw else None


def _control(crm: CrmTestServer, command: dict[str, object]) -> tuple[int, Any]:
    return _call(crm.control_url, method="POST", body=json.dumps(command).encode())


def _get_profile(crm: CrmTestServer, customer_id: str, auth: str | None = AUTH) -> tuple[int, Any]:
    headers = {"Authorization": auth} if auth is not None else {}
    return _call(crm.profile_url_template.format(customer_id=customer_id), headers=headers)


def _signed(body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Signature": f"sha256={signature}",
        "X-Timestamp": "1700000000",
    }


def test_crm_server_sample_profiles_map_with_the_sample_field_map(crm: CrmTestServer) -> None:
    # given a connector configured as a venue would configure it for the sample CRM
    connector = RestCrmConnector(
        crm.profile_url_template, SAMPLE_FIELD_MAP, auth_value=AUTH, transport=_allowing(crm)
    )
    # when a Japanese and an English VIP are looked up
    yamada = connector.lookup("hotel-1001", deadline_s=2.0)
    oneill = connector.lookup("golf-2002", deadline_s=2.0)
    # then every mapped field is found, and a field the CRM lacks is absent
    assert yamada.profile is not None, yamada.reason
    assert (yamada.profile.name, yamada.profile.tier) == ("山田 太郎", "Platinum")
    assert set(yamada.profile.fields) == set(SAMPLE_FIELD_MAP) - {"name", "tier"}
    assert yamada.profile.fields["preferred_name"] == "山田様"
    assert oneill.profile is not None, oneill.reason
    assert oneill.profile.name == "James O'Neill"
    assert "room" not in oneill.profile.fields


@pytest.mark.parametrize("customer_id", sorted(SAMPLE_PROFILES))
def test_crm_server_serves_every_sample_profile_as_json(crm: CrmTestServer, customer_id: str) -> None:
    status, document = _get_profile(crm, customer_id)
    assert status == 200
    assert document == SAMPLE_PROFILES[customer_id]


@pytest.mark.parametrize("auth", [None, "Bearer wrong", AUTH.lower()])
def test_crm_server_profile_without_the_exact_auth_value_is_401(crm: CrmTestServer, auth: str | None) -> None:
    status, document = _get_profile(crm, "hotel-1001", auth=auth)
    assert status == 401
    assert "Authorization" in document["error"]


def test_crm_server_without_auth_value_serves_anyone() -> None:
    with CrmTestServer() as open_crm:
        status, _ = _get_profile(open_crm, "hotel-1002", auth=None)
    assert status == 200


def test_crm_server_unknown_customer_is_404_json(crm: CrmTestServer) -> None:
    status, document = _get_profile(crm, "nobody")
    assert status == 404
    assert "'nobody'" in document["error"]


def test_crm_server_unknown_route_is_404_naming_the_routes(crm: CrmTestServer) -> None:
    status, document = _call(f"{crm.url}/api/v2/things")
    assert status == 404
    assert "/customers/{customer_id}" in document["error"]


def test_crm_server_records_requests_with_case_insensitive_headers(crm: CrmTestServer) -> None:
    # when a profile is read and the control endpoint is used
    _get_profile(crm, "golf-2001")
    _call(crm.control_url)
    # then only the CRM request is recorded, with what was sent and answered
    (received,) = crm.requests
    assert (received.method, received.path, received.body, received.status) == (
        "GET",
        "/customers/golf-2001",
        b"",
        200,
    )
    assert received.headers["authorization"] == AUTH
    assert received.headers.get("X-Missing") is None


def test_crm_server_profiles_are_copied_and_can_be_changed_at_run_time() -> None:
    # given a server built from a mapping that the caller later changes
    profiles: dict[str, dict[str, Any]] = {"c-1": {"name": "before"}}
    with CrmTestServer(profiles) as crm:
        profiles["c-1"]["name"] = "changed by the caller"
        first = _get_profile(crm, "c-1", auth=None)
        # when profiles are put and removed through the server
        crm.put_profile("c-2", {"name": "new"})
        crm.remove_profile("c-1")
        second = _get_profile(crm, "c-2", auth=None)
        third = _get_profile(crm, "c-1", auth=None)
    # then
    assert first == (200, {"name": "before"})
    assert second == (200, {"name": "new"})
    assert third[0] == 404


def test_crm_server_webhook_with_valid_signature_is_accepted_and_recorded(crm: CrmTestServer) -> None:
    # given a real webhook connector with the shared secret
    connector = WebhookCrmConnector(
        crm.webhook_url,
        SECRET,
        timeout_s=2.0,
        wall_clock=lambda: 1_700_000_123.9,
        transport=_allowing(crm),
    )
    # when it notifies a sighting
    connector.notify({"customer_id": "hotel-1001", "venue_id": "v-1"})
    # then the server verified and recorded it
    (delivery,) = crm.webhook_received
    assert delivery.signature_valid is True
    assert delivery.payload == {"customer_id": "hotel-1001", "venue_id": "v-1"}
    assert delivery.timestamp == 1_700_000_123
    assert crm.control_state()["counters"]["webhooks"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(_signed(b'{"a": 1}', secret=b"other-key"), id="wrong-key"),
        pytest.param(_signed(b'{"a": 2}'), id="signature-of-another-body"),
        pytest.param({"Content-Type": "application/json"}, id="unsigned"),
    ],
)
def test_crm_server_webhook_with_bad_signature_is_401_and_recorded(
    crm: CrmTestServer, headers: dict[str, str]
) -> None:
    status, document = _call(crm.webhook_url, method="POST", body=b'{"a": 1}', headers=headers)
    assert status == 401
    assert "X-Signature" in document["error"]
    assert [(d.signature_valid, d.payload) for d in crm.webhook_received] == [(False, {"a": 1})]


def test_crm_server_webhook_without_secret_accepts_unsigned_posts() -> None:
    with CrmTestServer() as crm:
        status, _ = _call(crm.webhook_url, method="POST", body=b"{}", headers={})
        deliveries = crm.webhook_received
    assert status == 204
    assert [(d.signature_valid, d.timestamp) for d in deliveries] == [(None, None)]


def test_crm_server_fail_next_fails_exactly_n_requests_with_the_status(crm: CrmTestServer) -> None:
    # given two injected failures
    crm.fail_next(2, status=502)
    # when four requests are made
    statuses = [_get_profile(crm, "hotel-1001")[0] for _ in range(4)]
    # then the first two failed, and the counters say so
    assert statuses == [502, 502, 200, 200]
    counters = crm.control_state()["counters"]
    assert counters["injected_failures"] == 2
    assert counters["by_status"] == {"200": 2, "502": 2}


def test_crm_server_fail_next_is_counted_exactly_under_concurrency(crm: CrmTestServer) -> None:
    # given five injected failures and twenty concurrent requests
    crm.fail_next(5)
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: _get_profile(crm, "hotel-1002")[0], range(20)))
    # then exactly five failed and every request was recorded
    assert sorted(statuses) == [200] * 15 + [503] * 5
    assert len(crm.requests) == 20


def test_crm_server_down_answers_503_and_keeps_fail_next_for_later(crm: CrmTestServer) -> None:
    # given a CRM that is down with one failure pending
    crm.fail_next(1, status=500)
    crm.set_down(True)
    # when requests arrive while down, then after it is back
    down = [_get_profile(crm, "hotel-1001")[0] for _ in range(3)]
    webhook_down = _call(crm.webhook_url, method="POST", body=b"{}", headers=_signed(b"{}"))[0]
    crm.set_down(False)
    back = [_get_profile(crm, "hotel-1001")[0] for _ in range(2)]
    # then
    assert down == [503, 503, 503]
    assert webhook_down == 503
    assert back == [500, 200]
    assert crm.control_state()["counters"]["down_answers"] == 4


def test_crm_server_latency_delays_answers_past_a_connector_timeout(crm: CrmTestServer) -> None:
    # given a CRM answering after 0.3 s and a connector allowed 0.1 s
    crm.set_latency(0.3)
    connector = RestCrmConnector(
        crm.profile_url_template, SAMPLE_FIELD_MAP, auth_value=AUTH, retries=1, transport=_allowing(crm)
    )
    # when
    lookup = connector.lookup("hotel-1001", deadline_s=0.1)
    started = time.monotonic()
    direct = _get_profile(crm, "hotel-1001")
    waited = time.monotonic() - started
    # then the connector gave up and a patient client got the profile, no earlier than the latency
    assert lookup.status == "unavailable"
    assert "did not answer within" in lookup.reason
    assert direct[0] == 200
    assert waited >= 0.3


def test_crm_server_control_endpoint_is_never_delayed_or_failed(crm: CrmTestServer) -> None:
    # given a CRM that is down and very slow
    crm.set_latency(30.0)
    crm.set_down(True)
    # when the control endpoint is used (_call gives up after 5 s)
    status, state = _control(crm, {"down": False, "latency_s": 0})
    # then it answered and the CRM is back
    assert status == 200
    assert (state["down"], state["latency_s"]) == (False, 0)
    assert _get_profile(crm, "hotel-1001")[0] == 200


def test_crm_server_control_over_http_changes_faults_and_reports_counters(crm: CrmTestServer) -> None:
    # given one profile request
    _get_profile(crm, "hotel-1001")
    # when faults are set over HTTP
    status, state = _control(crm, {"latency_s": 0.05, "down": True, "fail_next": 2, "status": 500})
    # then the answer and GET /_control show the state and counters
    assert status == 200
    assert _call(crm.control_url) == (200, state)
    assert state == {
        "latency_s": 0.05,
        "down": True,
        "fail_next": 2,
        "status": 500,
        "profiles": len(SAMPLE_PROFILES),
        "counters": {
            "requests": 1,
            "profile_lookups": 1,
            "webhooks": 0,
            "injected_failures": 0,
            "down_answers": 0,
            "by_status": {"200": 1},
        },
    }
    assert _get_profile(crm, "hotel-1001")[0] == 503


def test_crm_server_control_clear_forgets_requests_and_counters(crm: CrmTestServer) -> None:
    _get_profile(crm, "hotel-1001")
    _call(crm.webhook_url, method="POST", body=b"{}", headers=_signed(b"{}"))
    status, state = _control(crm, {"clear": True})
    assert status == 200
    assert state["counters"]["requests"] == 0
    assert (crm.requests, crm.webhook_received) == ([], [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"down": true, "downn": true}', "unknown control keys ['downn']"),
        (b'{"down": true, "latency_s": -1}', "latency_s must be a number of seconds"),
        (b'{"down": true, "latency_s": "slow"}', "latency_s must be a number of seconds"),
        (b'{"down": "yes"}', "down must be true or false"),
        (b'{"down": true, "fail_next": 1.5}', "fail_next must be a whole number"),
        (b'{"down": true, "fail_next": true}', "fail_next must be a whole number"),
        (b'{"down": true, "status": 200}', "status must be an HTTP status from 300 to 599"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{not json", "Expecting property name"),
    ],
)
def test_crm_server_control_refuses_bad_commands_and_applies_nothing(
    crm: CrmTestServer, body: bytes, message: str
) -> None:
    # when a bad command arrives (most also carry a valid change: down)
    status, document = _call(crm.control_url, method="POST", body=body)
    # then it is refused with a message that names the problem, and nothing changed
    assert status == 400
    assert message in document["error"]
    assert crm.control_state()["down"] is False


def test_crm_server_python_control_validates_like_http(crm: CrmTestServer) -> None:
    with pytest.raises(ValueError, match="fail_next must be a whole number"):
        crm.fail_next(-1)
    with pytest.raises(ValueError, match="status must be an HTTP status"):
        crm.fail_next(1, status=99)


def test_crm_server_clear_switches_faults_off(crm: CrmTestServer) -> None:
    crm.set_down(True)
    crm.set_latency(1.0)
    crm.fail_next(3)
    crm.clear()
    state = crm.control_state()
    assert (state["down"], state["latency_s"], state["fail_next"]) == (False, 0.0, 0)


def test_crm_server_url_before_start_says_how_to_start() -> None:
    with pytest.raises(RuntimeError, match="not running: call start"):
        _ = CrmTestServer().url


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth_value": ""}, "auth_value is empty"),
        ({"webhook_secret": b""}, "webhook_secret is empty"),
        ({"port": 70000}, "port must be 0"),
    ],
)
def test_crm_server_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CrmTestServer(**options)


def test_crm_server_start_stop_can_restart() -> None:
    crm = CrmTestServer()
    crm.start()
    with pytest.raises(RuntimeError, match="already running"):
        crm.start()
    crm.stop()
    crm.stop()
    crm.start()
    try:
        assert _get_profile(crm, "hotel-1001", auth=None)[0] == 200
    finally:
        crm.stop()


def test_crm_server_main_is_controlled_from_another_process() -> None:
    # given the server started as a command, in its own process
    process = subprocess.Popen(
        [sys.executable, "-m", "eventface.local.crm_server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        # when this process takes it down over HTTP
        before = _call(f"{base}/customers/golf-2001")[0]
        assert _call(f"{base}/_control", method="POST", body=b'{"down": true}')[0] == 200
        after = _call(f"{base}/customers/golf-2001")[0]
    finally:
        process.terminate()
        returncode = process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    # then it was up, then down, and it stopped cleanly on SIGTERM
    assert base.startswith("http://127.0.0.1:")
    assert (before, after) == (200, 503)
    assert returncode == 0
