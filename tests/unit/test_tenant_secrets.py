"""Tenant-bound secrets: the naming rule, the IAM policy derived from it, and both places that
enforce it (saving a venue, and the connector directory before it reads a secret)."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase

import pytest

from eventface.adapters.crm import HttpAnswer, VenueCrmDirectory
from eventface.adapters.memory_vip import InMemorySecretCatalog
from eventface.domain.errors import DependencyError, InvalidInputError
from eventface.domain.secrets import (
    PLATFORM_SECRETS_ROOT,
    check_tenant_secret,
    secret_arn_pattern,
    secret_list_statements,
    secret_read_statements,
    tenant_secret_prefix,
)
from eventface.domain.vip import CrmConfig, CrmKind, Venue
from eventface.services import venues

ACCOUNT = "123456789012"
NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)

ACCEPTED = [
    ("acme", "eventface/tenants/acme/crm-api-key"),
    ("acme", "eventface/tenants/acme/hotels/tokyo/crm_key"),
    ("acme", "eventface/tenants/acme/a+b=c.d@e-f"),
    ("a.b-c", "eventface/tenants/a.b-c/x"),
]
REFUSED = [
    ("acme", "eventface/tenants/globex/crm-api-key", "not one of this tenant's secrets"),
    ("acme", "eventface/tenants/acme2/crm-api-key", "not one of this tenant's secrets"),
    ("acme2", "eventface/tenants/acme/crm-api-key", "not one of this tenant's secrets"),
    ("acme", "eventface/tenants/acme", "not one of this tenant's secrets"),
    ("acme", "eventface/platform/push-webhook-key", "not one of this tenant's secrets"),
    ("acme", "eventface-local/crm-api-key", "not one of this tenant's secrets"),
    ("acme", "crm/api-key", "not one of this tenant's secrets"),
    ("acme", "EVENTFACE/tenants/acme/x", "not one of this tenant's secrets"),
    (
        "acme",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:eventface/tenants/acme/k-AbCdEf",
        "not an ARN",
    ),
    ("acme", "eventface/tenants/acme/", "not a valid secret name"),
    ("acme", "eventface/tenants/acme//x", "not a valid secret name"),
    ("acme", "eventface/tenants/acme/x/", "not a valid secret name"),
    ("acme", "eventface/tenants/acme/../globex/k", "not a valid secret name"),
    ("acme", "eventface/tenants/acme/a b", "not a valid secret name"),
    ("acme", "eventface/tenants/acme/" + "k" * 500, "not a valid secret name"),
    ("acme", "", "is empty"),
]


@pytest.mark.parametrize(("tenant", "name"), ACCEPTED)
def test_tenant_secret_under_the_tenants_prefix_is_accepted(tenant: str, name: str) -> None:
    assert check_tenant_secret(tenant, name) == name


@pytest.mark.parametrize(("tenant", "name", "words"), REFUSED)
def test_tenant_secret_outside_the_tenants_prefix_is_refused_naming_the_prefix(
    tenant: str, name: str, words: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        check_tenant_secret(tenant, name)
    message = str(refused.value)
    assert (
        words in message and f"'eventface/tenants/{tenant}/'" in message and "GET /v1/crm/secrets" in message
    )


def _arn(name: str) -> str:
    """A secret's ARN as Secrets Manager makes it (the name and six random characters)."""
    return f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{name}-AbC123"


def _readable(function: str, arn: str) -> bool:
    (statement,) = secret_read_statements(function, region="eu-west-1", account=ACCOUNT)
    assert statement["Effect"] == "Allow" and statement["Action"] == ["secretsmanager:GetSecretValue"]
    return any(fnmatchcase(arn, pattern) for pattern in statement["Resource"])


@pytest.mark.parametrize(("tenant", "name"), ACCEPTED)
def test_iam_policy_lets_vip_enrich_read_every_secret_the_naming_check_accepts(
    tenant: str, name: str
) -> None:
    # a name the code lets a venue use is one the function's role may read
    assert _readable("vip_enrich", _arn(name))
    assert fnmatchcase(_arn(name), secret_arn_pattern("tenants", region="eu-west-1", account=ACCOUNT))


@pytest.mark.parametrize(
    "name", ["eventface-local/crm-api-key", "crm/api-key", "prod/db-password", "eventface/tenantsX/acme/k"]
)
def test_iam_policy_lets_no_function_read_a_secret_outside_the_scheme(name: str) -> None:
    assert not _readable("vip_enrich", _arn(name)) and not _readable("push_dispatch", _arn(name))


def test_iam_policy_keeps_platform_and_tenant_secrets_apart() -> None:
    # given a platform secret and a tenant's secret
    platform, tenant = _arn(f"{PLATFORM_SECRETS_ROOT}push-webhook-key"), _arn("eventface/tenants/acme/k")
    tenants_only = secret_arn_pattern("tenants", region="eu-west-1", account=ACCOUNT)
    # then: no tenant may name the platform's secret, and the tenants' pattern does not cover it
    with pytest.raises(InvalidInputError):
        check_tenant_secret("acme", f"{PLATFORM_SECRETS_ROOT}push-webhook-key")
    assert not fnmatchcase(platform, tenants_only)
    # push_dispatch and the admin API (cursor key) read platform secrets only; vip_enrich both scopes
    assert _readable("push_dispatch", platform) and not _readable("push_dispatch", tenant)
    assert _readable("admin_api", platform) and not _readable("admin_api", tenant)
    assert _readable("vip_enrich", platform) and _readable("vip_enrich", tenant)
    assert secret_list_statements()[0]["Action"] == ["secretsmanager:ListSecrets"]
    with pytest.raises(ValueError, match="reads no secrets"):
        secret_read_statements("edge_api")


# -- saving a venue ---------------------------------------------------------------------------------


def _rest(secret_id: str) -> CrmConfig:
    return CrmConfig(CrmKind.REST, "https://crm.example/c/{customer_id}", {"name": "n"}, secret_id=secret_id)


def test_venue_naming_another_tenants_secret_is_refused_at_creation(world) -> None:
    with pytest.raises(InvalidInputError, match="'eventface/tenants/acme/'"):
        venues.create_venue(
            world.services.deps, "acme", "Hotel", crm=_rest("eventface/tenants/globex/crm-key")
        )
    assert world.venues.list("acme").items == ()


def test_venue_cannot_be_moved_onto_another_tenants_secret(world) -> None:
    # given a venue with the tenant's own secret
    deps = world.services.deps
    venue = venues.create_venue(deps, "acme", "Hotel", crm=_rest("eventface/tenants/acme/crm-key"))
    # when / then
    with pytest.raises(InvalidInputError, match="not one of this tenant's secrets"):
        venues.update_venue(
            deps, "acme", venue.venue_id, venues.VenueChanges(crm=_rest("eventface/tenants/globex/crm-key"))
        )
    assert world.venues.get("acme", venue.venue_id).crm.secret_id == "eventface/tenants/acme/crm-key"


def test_venue_crm_url_to_loopback_is_refused_at_creation(world) -> None:
    crm = CrmConfig(CrmKind.REST, "https://127.0.0.1:9000/c/{customer_id}", {"name": "n"})
    with pytest.raises(InvalidInputError, match=r"crm\.url https://127\.0\.0\.1:9000 is a loopback address"):
        venues.create_venue(world.services.deps, "acme", "Hotel", crm=crm)


def test_webhook_staff_device_and_participant_push_to_metadata_are_refused(world, make_campaign) -> None:
    from eventface.services.participants import Registration

    deps = world.services.deps
    venue = venues.create_venue(deps, "acme", "Hotel")
    with pytest.raises(InvalidInputError, match=r"token https://169\.254\.169\.254:443 is a cloud metadata"):
        venues.subscribe_staff_device(
            deps, "acme", venue.venue_id, name="x", platform="webhook", token="https://169.254.169.254/"
        )
    make_campaign()
    with pytest.raises(InvalidInputError, match=r"push_token https://2130706433:443 is a loopback"):
        world.services.register_participant(
            Registration(
                "acme", "rally", b"photo", "Eve", consent=True, push_endpoint="webhook:https://2130706433/"
            )
        )


def test_tenant_admin_sees_its_prefix_and_only_its_secret_names(world) -> None:
    # given secrets of two tenants and of the platform
    world.secrets.secret_names.update(
        {
            "eventface/tenants/acme/crm-key",
            "eventface/tenants/acme/hook",
            "eventface/tenants/acme2/crm-key",
            "eventface/platform/push-webhook-key",
        }
    )
    # when
    prefix, names = venues.crm_secrets(world.services.deps, "acme")
    # then
    assert prefix == tenant_secret_prefix("acme") == "eventface/tenants/acme/"
    assert names == ("eventface/tenants/acme/crm-key", "eventface/tenants/acme/hook")
    assert isinstance(world.secrets, InMemorySecretCatalog)


# -- reading the secret: the connector directory checks again ----------------------------------------


@dataclass
class Recorder:
    """A Secrets Manager client and an HTTP transport that record what they were asked."""

    secret_reads: list[str] = field(default_factory=list)
    sent: list[urllib.request.Request] = field(default_factory=list)

    def get_secret_value(self, **request: str) -> dict[str, str]:
        self.secret_reads.append(request["SecretId"])
        return {"SecretString": "Bearer tenant-a-secret"}

    def transport(self, request: urllib.request.Request, timeout_s: float) -> HttpAnswer:
        self.sent.append(request)
        return HttpAnswer(200, b'{"name": "x"}')


@pytest.mark.parametrize("kind", [CrmKind.REST, CrmKind.WEBHOOK])
def test_planted_record_with_another_tenants_secret_reads_and_sends_nothing(kind: CrmKind) -> None:
    # given: tenant B's venue record (written around the service) names tenant A's secret
    recorder = Recorder()
    directory = VenueCrmDirectory(secrets_client=recorder, transport=recorder.transport)
    url = "https://attacker.example/c/{customer_id}" if kind is CrmKind.REST else "https://attacker.example/h"
    crm = CrmConfig(kind, url, {"name": "n"}, secret_id="eventface/tenants/tenant-a/crm-key")
    gateway = directory.gateway(Venue("tenant-b", "v1", "Planted", NOW, crm=crm))
    assert gateway is not None
    # when a VIP is looked up and a sighting notified
    lookup = gateway.lookup("c1", deadline_s=1.0)
    with pytest.raises(DependencyError, match="not one of this tenant's secrets"):
        gateway.notify({"alert_id": "a1"})
    # then the lookup is unavailable, saying why, and no secret was read and nothing sent
    assert lookup.status == "unavailable" and "'eventface/tenants/tenant-b/'" in lookup.reason
    assert recorder.secret_reads == [] and recorder.sent == []


def test_record_with_the_tenants_own_secret_is_used() -> None:
    recorder = Recorder()
    directory = VenueCrmDirectory(secrets_client=recorder, transport=recorder.transport)
    crm = CrmConfig(CrmKind.REST, "https://crm.example/c/{customer_id}", {"name": "name"}, "Authorization")
    own = CrmConfig(crm.kind, crm.url, crm.field_map, secret_id="eventface/tenants/tenant-b/crm-key")
    gateway = directory.gateway(Venue("tenant-b", "v1", "Own", NOW, crm=own))
    assert gateway is not None and gateway.lookup("c1", deadline_s=1.0).status == "ok"
    assert recorder.secret_reads == ["eventface/tenants/tenant-b/crm-key"]
    assert recorder.sent[0].get_header("Authorization") == "Bearer tenant-a-secret"
