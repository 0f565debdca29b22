"""The egress policy enforced on real connections: loopback listeners that must receive nothing.

Each attack runs against real HTTP servers on 127.0.0.1: a listener playing the attacker's host
(or an internal service), and where needed an allow-listed server that redirects. The policy must
refuse before a byte reaches the listener, connect only to the address it checked, and the admin
API must answer 400 for the same URLs when they are saved.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from chalice.test import Client

from eventface import aws
from eventface import bootstrap as bootstrap_module
from eventface.adapters.crm import RestCrmConnector, VenueCrmDirectory, WebhookCrmConnector, guarded_transport
from eventface.adapters.egress import EgressGuard, StaticResolver
from eventface.adapters.memory import FixedClock, in_memory_ports
from eventface.adapters.push import build_push_sender
from eventface.adapters.tenant_secrets import SecretsManagerSecretCatalog
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import ALL_AUTHORITIES, ApiKey, secret_hash
from eventface.domain.egress import EgressRules, parse_allow_list
from eventface.domain.errors import DependencyError
from eventface.domain.vip import CrmConfig, CrmKind, Venue
from eventface.local.apps import ADMIN_PROJECT, load_app
from eventface.local.crm_server import SAMPLE_FIELD_MAP, CrmTestServer
from eventface.services import push_messages as messages
from eventface.settings import EGRESS_ALLOW, PUSH_WEBHOOK_SECRET_ID, STAGE, Settings

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
KEY = "efk_egress-test-key"
admin = load_app(ADMIN_PROJECT, "eventface_admin_app")


@pytest.fixture
def listener() -> Iterator[CrmTestServer]:
    """The attacker's host (or an internal service) on loopback: records whatever reaches it."""
    with CrmTestServer() as server:
        yield server


class _Redirector:
    """An allow-listed server that answers every request ``302 Location: <target>``."""

    def __init__(self, target: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                outer.hits += 1
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                self.do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.entry = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.entry}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> _Redirector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def _guard(*allowed: str, https_only: bool = False, resolver: Any = None) -> EgressGuard:
    rules = EgressRules(https_only=https_only, allow=parse_allow_list(",".join(allowed)))
    return EgressGuard(rules) if resolver is None else EgressGuard(rules, resolver=resolver)


def _connector(url: str, guard: EgressGuard) -> RestCrmConnector:
    return RestCrmConnector(
        url,
        SAMPLE_FIELD_MAP,
        auth_value="Bearer tenant-a-secret",
        timeout_s=2.0,
        retries=3,
        sleep=lambda _: None,
        transport=guarded_transport(guard),
    )


@pytest.mark.parametrize("where", ["listener", "metadata"])
def test_egress_redirect_to_loopback_or_metadata_is_not_followed(listener: CrmTestServer, where: str) -> None:
    # given an allow-listed CRM that redirects to a loopback listener (or the metadata address)
    target = (
        f"{listener.url}/customers/hotel-1001" if where == "listener" else "http://169.254.169.254/latest"
    )
    with _Redirector(target) as redirector:
        connector = _connector(f"{redirector.url}/customers/{{customer_id}}", _guard(redirector.entry))
        # when
        lookup = connector.lookup("hotel-1001", deadline_s=2.0)
    # then: the redirect was an answer, not followed (and not retried); the listener saw nothing
    assert lookup.status == "unavailable" and "redirect, which is not followed" in lookup.reason
    assert redirector.hits == 1
    assert listener.requests == []


def test_egress_dns_rebinding_gets_no_second_chance(listener: CrmTestServer) -> None:
    # given a name that resolves to a public address when the URL is saved, then to loopback
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> Any:
        calls.append(host)
        return StaticResolver({host: next(answers)})(host, port)

    guard = _guard(resolver=rebinding)
    port = listener.url.rsplit(":", 1)[1]
    url = f"http://rebind.example:{port}/customers/{{customer_id}}"
    guard.check_url(url, what="crm.url")  # saved: it looked public then
    # when the CRM is called
    lookup = _connector(url, guard).lookup("hotel-1001", deadline_s=2.0)
    # then the connection-time lookup is checked too: refused at once, never retried, nothing sent
    assert lookup.status == "unavailable" and "(127.0.0.1), a loopback address" in lookup.reason
    assert calls == ["rebind.example", "rebind.example"]
    assert listener.requests == []


def test_egress_connects_to_exactly_the_address_it_checked(listener: CrmTestServer) -> None:
    # given a name only the guard's resolver knows (the system resolver cannot resolve it), pointing
    # at an allow-listed loopback CRM
    port = listener.url.rsplit(":", 1)[1]
    guard = _guard(listener.egress_allow_entry, resolver=StaticResolver({"crm.test": ["127.0.0.1"]}))
    # when
    lookup = _connector(f"http://crm.test:{port}/customers/{{customer_id}}", guard).lookup(
        "hotel-1001", deadline_s=2.0
    )
    # then the request reached the checked address (no second lookup), with the URL's Host
    assert lookup.status == "ok", lookup.reason
    (received,) = listener.requests
    assert received.headers["Host"] == f"crm.test:{port}"


def test_egress_plain_http_outside_the_local_stack_is_refused_at_connect(listener: CrmTestServer) -> None:
    # given a deployed stage's rules, even with the listener allow-listed
    guard = _guard(listener.egress_allow_entry, https_only=True)
    # when
    lookup = _connector(listener.profile_url_template, guard).lookup("hotel-1001", deadline_s=2.0)
    # then
    assert lookup.status == "unavailable" and "plain http" in lookup.reason
    assert listener.requests == []


def test_egress_planted_webhook_crm_at_loopback_sends_nothing(listener: CrmTestServer) -> None:
    # given: a venue record (written around the service) whose CRM webhook is a loopback service
    class Secrets:
        def get_secret_value(self, **request: str) -> dict[str, str]:
            return {"SecretString": "hook-key"}

    directory = VenueCrmDirectory(secrets_client=Secrets(), transport=guarded_transport(_guard()))
    crm = CrmConfig(CrmKind.WEBHOOK, listener.webhook_url, secret_id="eventface/tenants/acme/hook")
    gateway = directory.gateway(Venue("acme", "v1", "Planted", NOW, crm=crm))
    assert gateway is not None
    # when / then
    with pytest.raises(DependencyError, match=r"egress policy refuses 127\.0\.0\.1"):
        gateway.notify({"alert_id": "a1"})
    with pytest.raises(DependencyError, match="egress policy refuses"):
        WebhookCrmConnector(listener.webhook_url, b"k", transport=guarded_transport(_guard())).notify({})
    assert listener.requests == []


def test_egress_push_webhook_to_an_internal_port_is_a_failed_receipt(listener: CrmTestServer) -> None:
    # given the deployment's push sender (the local stage's rules, nothing allow-listed)
    class Secrets:
        def get_secret_value(self, **request: str) -> dict[str, str]:
            return {"SecretString": "push-key"}

    settings = Settings({PUSH_WEBHOOK_SECRET_ID: "eventface/platform/push-webhook-key", STAGE: "local"})
    sender = build_push_sender(settings, secrets_client=Secrets, sleep=lambda _: None)
    variables = {"campaign_id": "rally", "text": "hi", "stamps": "1", "required": "3"}
    # when a participant's webhook address is an internal service
    (receipt,) = sender.send(
        messages.template("stamp"),
        [messages.recipient("p1", f"webhook:{listener.url}/push", "en", variables)],
    )
    # then refused once (not retried), with the reason; nothing reached it
    assert receipt.status == "failed" and receipt.attempts == 1
    assert "egress policy refuses 127.0.0.1" in (receipt.reason or "")
    assert listener.requests == []


def test_egress_push_webhook_allow_listed_is_delivered(listener: CrmTestServer) -> None:
    class Secrets:
        def get_secret_value(self, **request: str) -> dict[str, str]:
            return {"SecretString": "push-key"}

    settings = Settings(
        {PUSH_WEBHOOK_SECRET_ID: "k", STAGE: "local", EGRESS_ALLOW: listener.egress_allow_entry}
    )
    sender = build_push_sender(settings, secrets_client=Secrets, sleep=lambda _: None)
    variables = {"campaign_id": "rally", "text": "hi", "stamps": "1", "required": "3"}
    (receipt,) = sender.send(
        messages.template("stamp"),
        [messages.recipient("p1", f"webhook:{listener.webhook_url}", "en", variables)],
    )
    assert receipt.status == "delivered", receipt.reason
    assert len(listener.webhook_received) == 1


# -- the admin API: the deployment's settings decide ---------------------------------------------------


@pytest.fixture
def admin_api(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Callable[..., Any]]:
    """Factory: the admin API (Chalice test client) over fakes, with the real egress guard built
    from ``settings``; returns ``call(method, path, body)``."""

    def make(settings: dict[str, str]) -> Callable[..., Any]:
        ports = in_memory_ports(clock=FixedClock(NOW))
        del ports["egress"]  # the composition root builds it from the settings
        services: Services = bootstrap(Settings(settings), **ports)
        services.deps.api_keys.add(
            ApiKey(
                tenant_id="acme",
                key_id="key-1",
                name="test",
                prefix=KEY[:12],
                key_hash=secret_hash(KEY),
                authorities=frozenset(ALL_AUTHORITIES),
                created_at=NOW - timedelta(days=1),
                created_by="test",
                expires_at=NOW + timedelta(days=30),
            )
        )
        monkeypatch.setattr(bootstrap_module, "services", lambda: services)
        client = Client(admin.app, stage_name="local", project_dir=str(ADMIN_PROJECT))

        def call(method: str, path: str, body: dict[str, Any]) -> Any:
            headers = {"content-type": "application/json", "x-api-key": KEY}
            return client.http.request(method, path, headers=headers, body=json.dumps(body).encode())

        return call

    return make


def _venue(url: str) -> dict[str, Any]:
    return {"name": "Hotel", "crm": {"kind": "rest", "url": url, "field_map": {"name": "n"}}}


@pytest.mark.parametrize(
    ("settings", "url", "words"),
    [
        ({STAGE: "prod"}, "http://crm.example/c/{customer_id}", "must use https"),
        ({STAGE: "local"}, "http://127.0.0.1:5000/c/{customer_id}", "loopback"),
        (
            {STAGE: "local", EGRESS_ALLOW: "127.0.0.1:5000"},
            "http://127.0.0.1:5001/c/{customer_id}",
            "loopback",
        ),
        ({STAGE: "prod"}, "https://169.254.169.254/latest/{customer_id}", "cloud metadata"),
        ({STAGE: "prod"}, "https://localhost/c/{customer_id}", "resolves to"),
    ],
)
def test_egress_admin_api_refuses_the_url_when_it_is_saved(
    admin_api: Callable[[dict[str, str]], Callable[..., Any]], settings: dict[str, str], url: str, words: str
) -> None:
    call = admin_api(settings)
    response = call("POST", "/v1/venues", _venue(url))
    assert response.status_code == 400, response.body
    assert response.json_body["Code"] == "InvalidInputError" and words in response.json_body["Message"]


def test_egress_admin_api_accepts_the_local_stacks_allow_listed_crm(
    admin_api: Callable[[dict[str, str]], Callable[..., Any]],
) -> None:
    call = admin_api({STAGE: "local", EGRESS_ALLOW: "127.0.0.1:5000"})
    response = call("POST", "/v1/venues", _venue("http://127.0.0.1:5000/c/{customer_id}"))
    assert response.status_code == 201, response.body


def test_egress_admin_api_lists_the_tenants_secret_names(
    admin_api: Callable[[dict[str, str]], Callable[..., Any]],
) -> None:
    call = admin_api({})
    response = call("GET", "/v1/crm/secrets", {})
    assert response.status_code == 200 and response.json_body == {
        "prefix": "eventface/tenants/acme/",
        "secret_ids": [],
    }


def test_secret_catalog_lists_only_the_tenants_names_from_secrets_manager(in_process_aws: None) -> None:
    # given secrets of two tenants whose ids share a prefix, and of the platform (moto)
    client = aws.client("secretsmanager")
    for name in (
        "eventface/tenants/acme/crm-api-key",
        "eventface/tenants/acme/hooks/desk",
        "eventface/tenants/acme2/crm-api-key",
        "eventface/tenants/ACME/crm-api-key",
        "eventface/platform/push-webhook-key",
    ):
        client.create_secret(Name=name, SecretString="value")
    # when
    names = SecretsManagerSecretCatalog().names("acme")
    # then: names only, the tenant's own
    assert names == ("eventface/tenants/acme/crm-api-key", "eventface/tenants/acme/hooks/desk")
