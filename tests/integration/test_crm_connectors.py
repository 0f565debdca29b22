"""CRM connectors against a real HTTP CRM server on loopback, with latency and failures injected."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from eventface import aws
from eventface.adapters.crm import (
    CircuitBreaker,
    RestCrmConnector,
    Transport,
    WebhookCrmConnector,
    guarded_transport,
)
from eventface.adapters.egress import EgressGuard
from eventface.domain.egress import EgressRules, parse_allow_list
from eventface.domain.errors import DependencyError
from eventface.local.crm_server import CrmTestServer

FIELD_MAP = {"name": "data.profile.fullName", "tier": "data.membership.level", "phone": "data.contact.phone"}
PROFILES = {
    "vip-1": {"data": {"profile": {"fullName": "Ada Lovelace"}, "membership": {"level": "platinum"}}},
    "vip/2": {
        "data": {
            "profile": {"fullName": "Grace Hopper"},
            "membership": {"level": "gold"},
            "contact": {"phone": "+1 555 0100"},
        }
    },
}
WEBHOOK_SECRET = b"shared-hmac-key"
#: The slowest a deadline-bound lookup may be beyond its deadline (scheduling, thread start).
MARGIN_S = 0.3


@pytest.fixture
def crm() -> Iterator[CrmTestServer]:
    """A CRM on 127.0.0.1 (free port) serving ``PROFILES`` and checking webhook signatures."""
    with CrmTestServer(PROFILES, webhook_secret=WEBHOOK_SECRET) as server:
        yield server


def _allowing(*entries: str) -> Transport:
    """Real HTTP under the local stack's egress rules (http allowed) with only ``entries``
    (``127.0.0.1:<port>``) allow-listed: loopback is refused otherwise."""
    rules = EgressRules(https_only=False, allow=parse_allow_list(",".join(entries)))
    return guarded_transport(EgressGuard(rules))


def _connector(crm: CrmTestServer, **options: object) -> RestCrmConnector:
    settings: dict[str, object] = {
        "auth_value": "Bearer lit3ral",
        "timeout_s": 2.0,
        "retries": 3,
        "transport": _allowing(crm.egress_allow_entry),
    }
    settings.update(options)
    return RestCrmConnector(crm.profile_url_template, FIELD_MAP, **settings)  # type: ignore[arg-type]


def test_rest_connector_healthy_crm_profile_is_mapped(crm: CrmTestServer) -> None:
    # given a healthy CRM
    connector = _connector(crm)
    # when a VIP whose id needs URL-encoding is looked up
    result = connector.lookup("vip/2", deadline_s=2.0)
    # then the profile is mapped and the request carried the id encoded and the literal auth value
    assert result.status == "ok", result.reason
    assert result.profile is not None
    assert (result.profile.name, result.profile.tier) == ("Grace Hopper", "gold")
    assert result.profile.fields == {"phone": "+1 555 0100"}
    assert not result.from_cache
    assert [r.path for r in crm.requests] == ["/customers/vip%2F2"]
    assert crm.requests[0].headers["Authorization"] == "Bearer lit3ral"


def test_rest_connector_missing_mapped_field_is_absent(crm: CrmTestServer) -> None:
    result = _connector(crm).lookup("vip-1", deadline_s=2.0)
    assert result.profile is not None
    assert result.profile.tier == "platinum"
    assert result.profile.fields == {}


def test_rest_connector_reads_auth_header_from_secrets_manager(
    crm: CrmTestServer, in_process_aws: None
) -> None:
    # given the header value in Secrets Manager (moto in-process: only botocore is intercepted, the
    # loopback CRM is reached over real HTTP by urllib) and a clock we move by hand
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name="crm/venue-1", SecretString="Bearer fr0m-secrets")
    now = [100.0]
    connector = _connector(
        crm, auth_value=None, auth_header="X-Api-Key", secret_id="crm/venue-1", clock=lambda: now[0]
    )
    # when looked up, the secret rotated, looked up again within five minutes, then after
    first = connector.lookup("vip-1", deadline_s=2.0)
    secrets.put_secret_value(SecretId="crm/venue-1", SecretString="Bearer r0tated")
    now[0] += 299
    second = connector.lookup("vip/2", deadline_s=2.0)
    now[0] += 1
    third = connector.lookup("missing", deadline_s=2.0)
    # then the CRM saw the secret's value, kept for five minutes, then re-read
    assert (first.status, second.status, third.status) == ("ok", "ok", "not_found")
    assert [r.headers["X-Api-Key"] for r in crm.requests] == [
        "Bearer fr0m-secrets",
        "Bearer fr0m-secrets",
        "Bearer r0tated",
    ]


def test_rest_connector_missing_secret_is_unavailable_with_instructions(
    crm: CrmTestServer, in_process_aws: None
) -> None:
    connector = _connector(crm, auth_value=None, secret_id="crm/nope")
    result = connector.lookup("vip-1", deadline_s=2.0)
    assert result.status == "unavailable"
    assert "check that the secret 'crm/nope' exists" in result.reason
    assert crm.requests == []


def test_rest_connector_500_then_200_is_ok_after_one_retry(crm: CrmTestServer) -> None:
    # given a CRM whose first answer is a 500
    crm.fail_next(1, status=500)
    pauses: list[float] = []
    connector = _connector(crm, sleep=pauses.append, random=lambda: 0.5)
    # when
    result = connector.lookup("vip-1", deadline_s=2.0)
    # then
    assert result.status == "ok", result.reason
    assert len(crm.requests) == 2
    assert pauses == [pytest.approx(0.05)]


@pytest.mark.parametrize("deadline_s", [0.5, 1.0])
def test_rest_connector_slow_crm_is_unavailable_within_the_deadline(
    crm: CrmTestServer, deadline_s: float
) -> None:
    # given a CRM that takes 3 s per answer and a connector allowed 2 s per attempt
    crm.set_latency(3.0)
    connector = _connector(crm, timeout_s=2.0, retries=3)
    # when
    started = time.monotonic()
    result = connector.lookup("vip-1", deadline_s=deadline_s)
    elapsed = time.monotonic() - started
    # then "unavailable" arrives within the deadline plus a small margin
    assert result.status == "unavailable"
    assert "did not answer within" in result.reason
    assert elapsed < deadline_s + MARGIN_S, f"took {elapsed:.3f} s for a {deadline_s} s deadline"
    assert result.elapsed_ms < (deadline_s + MARGIN_S) * 1000
    print(f"slow CRM, deadline {deadline_s} s: unavailable after {elapsed * 1000:.0f} ms")


def test_rest_connector_repeated_failures_open_the_breaker(crm: CrmTestServer) -> None:
    # given a CRM that is down (503 to every request) and a breaker opening after 3 consecutive failures
    crm.set_down(True)
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=60)
    connector = _connector(crm, retries=2, breaker=breaker, sleep=lambda _: None)
    # when two lookups fail (3 failed attempts open the breaker)
    first = connector.lookup("vip-1", deadline_s=2.0)
    second = connector.lookup("vip-1", deadline_s=2.0)
    assert (first.status, second.status) == ("unavailable", "unavailable")
    reached = len(crm.requests)
    # then the next lookup answers without any request reaching the server
    started = time.monotonic()
    third = connector.lookup("vip/2", deadline_s=2.0)
    assert time.monotonic() - started < 0.05
    assert reached == 3
    assert len(crm.requests) == reached
    assert third.status == "unavailable"
    assert "calls are paused" in third.reason


def test_rest_connector_unknown_customer_is_not_found_and_cached(crm: CrmTestServer) -> None:
    connector = _connector(crm)
    first = connector.lookup("stranger", deadline_s=2.0)
    second = connector.lookup("stranger", deadline_s=2.0)
    assert (first.status, second.status) == ("not_found", "not_found")
    assert second.from_cache
    assert len(crm.requests) == 1


def test_rest_connector_cache_hit_sends_no_request(crm: CrmTestServer) -> None:
    # given a profile looked up once
    connector = _connector(crm)
    first = connector.lookup("vip-1", deadline_s=2.0)
    # when looked up again
    second = connector.lookup("vip-1", deadline_s=2.0)
    # then the CRM was called once
    assert second.from_cache
    assert second.profile == first.profile
    assert len(crm.requests) == 1


def test_rest_connector_does_not_follow_redirects(crm: CrmTestServer) -> None:
    crm.fail_next(1, status=302)
    result = _connector(crm).lookup("vip-1", deadline_s=2.0)
    assert result.status == "unavailable"
    assert "answered 302" in result.reason
    assert len(crm.requests) == 1


def test_rest_connector_unreachable_crm_is_unavailable() -> None:
    # given a loopback port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = RestCrmConnector(
        f"http://127.0.0.1:{port}/api/{{customer_id}}",
        FIELD_MAP,
        retries=2,
        sleep=lambda _: None,
        transport=_allowing(f"127.0.0.1:{port}"),
    )
    # when
    result = connector.lookup("vip-1", deadline_s=1.0)
    # then
    assert result.status == "unavailable"
    assert f"could not reach the CRM at http://127.0.0.1:{port}" in result.reason
    assert "(after 2 attempts)" in result.reason


def test_webhook_notify_is_signed_over_the_raw_body(crm: CrmTestServer) -> None:
    # given a webhook that checks the HMAC of the body it receives
    connector = WebhookCrmConnector(
        crm.webhook_url, WEBHOOK_SECRET, timeout_s=2.0, transport=_allowing(crm.egress_allow_entry)
    )
    sighting: dict[str, object] = {"venue_id": "v-1", "customer_id": "vip-1", "similarity": 0.71}
    # when
    connector.notify(sighting)
    # then the server accepted the signature and received the sighting as JSON
    (received,) = crm.requests
    assert received.method == "POST"
    assert json.loads(received.body) == sighting
    assert received.headers["Content-Type"] == "application/json"
    assert abs(int(received.headers["X-Timestamp"]) - time.time()) < 5
    assert [(w.signature_valid, w.payload) for w in crm.webhook_received] == [(True, sighting)]


def test_webhook_notify_with_the_wrong_secret_is_refused(crm: CrmTestServer) -> None:
    connector = WebhookCrmConnector(
        crm.webhook_url, b"not-the-key", timeout_s=2.0, transport=_allowing(crm.egress_allow_entry)
    )
    with pytest.raises(DependencyError, match="answered 401"):
        connector.notify({"customer_id": "vip-1"})
    assert [w.signature_valid for w in crm.webhook_received] == [False]
