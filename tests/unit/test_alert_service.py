"""VIP alert use cases: CRM enrichment (ok / not_found / unavailable / none), the push to staff
devices, the staff board's actions, and the per-venue CRM connector directory."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface.adapters.crm import HttpAnswer, RestCrmConnector, VenueCrmDirectory
from eventface.adapters.memory import FixedClock, in_memory_ports
from eventface.adapters.push import build_push_sender
from eventface.bootstrap import Container, bootstrap
from eventface.domain.errors import DependencyError, InvalidInputError, NotFoundError
from eventface.domain.vip import (
    AlertJob,
    CrmConfig,
    CrmKind,
    CrmProfile,
    ProfileLookup,
    ProfileStatus,
    SightingWrite,
    StaffDevice,
    StaffPlatform,
    Venue,
    VipAlert,
)
from eventface.services import alerts
from eventface.services.deps import Policy
from eventface.settings import Settings
from mobile_push import EndpointDisabledError, Message, PushSender, Recipient, verify_signature

TENANT = "acme"
VENUE = "lobby"
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
REST = CrmConfig(
    kind=CrmKind.REST,
    url="https://crm.example/customers/{customer_id}",
    field_map={"name": "data.name", "tier": "data.tier", "drink": "data.drink"},
    deadline_ms=1500,
)
WEBHOOK = CrmConfig(
    kind=CrmKind.WEBHOOK,
    url="https://crm.example/hooks/sightings",
    secret_id="eventface/tenants/acme/crm-hook",
    deadline_ms=500,
)
PROFILE = CrmProfile("hotel-1001", "山田 太郎", "Platinum", {"drink": "緑茶"})


@dataclass
class RecordingProvider:
    """Records every push; recipients named in ``disabled`` answer "endpoint disabled"."""

    sent: list[tuple[Recipient, Message]] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)

    def send(self, recipient: Recipient, message: Message) -> str:
        if recipient.recipient_id in self.disabled:
            raise EndpointDisabledError(f"{recipient.recipient_id} is gone")
        self.sent.append((recipient, message))
        return f"m{len(self.sent)}"

    def to(self, recipient_id: str) -> list[Message]:
        return [message for r, message in self.sent if r.recipient_id == recipient_id]


@dataclass
class ScriptedGateway:
    """A CRM gateway answering ``answer`` (or blocking until ``release`` is set when ``hang``)."""

    answer: ProfileLookup = field(default_factory=lambda: ProfileLookup(PROFILE, "ok"))
    hang: bool = False
    notify_error: Exception | None = None
    release: threading.Event = field(default_factory=threading.Event)
    lookups: list[tuple[str, float]] = field(default_factory=list)
    notified: list[dict[str, object]] = field(default_factory=list)

    def lookup(self, customer_id: str, *, deadline_s: float) -> ProfileLookup:
        self.lookups.append((customer_id, deadline_s))
        if self.hang:
            self.release.wait(10)
        return self.answer

    def notify(self, sighting: dict[str, object]) -> None:
        self.notified.append(sighting)
        if self.notify_error is not None:
            raise self.notify_error


@dataclass
class ScriptedDirectory:
    gateway_for_venue: ScriptedGateway | None = field(default_factory=ScriptedGateway)
    asked: list[str] = field(default_factory=list)

    def gateway(self, venue: Venue) -> ScriptedGateway | None:
        self.asked.append(venue.venue_id)
        return self.gateway_for_venue


@dataclass
class World:
    deps: Container
    provider: RecordingProvider
    directory: ScriptedDirectory
    clock: FixedClock

    @property
    def gateway(self) -> ScriptedGateway:
        assert self.directory.gateway_for_venue is not None
        return self.directory.gateway_for_venue


@pytest.fixture
def world() -> Iterator[World]:
    provider = RecordingProvider()
    directory = ScriptedDirectory()
    clock = FixedClock(NOW)
    push = PushSender({"inbox": provider, "sns": provider, "webhook": provider}, sleep=lambda _: None)
    ports = in_memory_ports(clock=clock)
    deps = bootstrap(Settings({}), policy=Policy(), crm=directory, push=push, **ports).deps
    yield World(deps, provider, directory, clock)
    if directory.gateway_for_venue is not None:
        directory.gateway_for_venue.release.set()


@pytest.fixture
def make_venue(world: World) -> Callable[..., Venue]:
    def make(crm: CrmConfig = REST, venue_id: str = VENUE) -> Venue:
        return world.deps.venues.add(Venue(TENANT, venue_id, "Grand Hotel", NOW, crm=crm))

    return make


@pytest.fixture
def make_device(world: World) -> Callable[..., StaffDevice]:
    def make(
        device_id: str, locale: str = "ja", platform: StaffPlatform = StaffPlatform.INBOX
    ) -> StaffDevice:
        token = "tok-" + device_id if platform in (StaffPlatform.APNS, StaffPlatform.FCM) else ""
        device = StaffDevice(TENANT, VENUE, device_id, f"desk {device_id}", platform, NOW, token, locale)
        world.deps.staff_devices.add(device)
        return device

    return make


@pytest.fixture
def make_alert(world: World) -> Callable[..., AlertJob]:
    def make(alert_id: str = "a1", customer_id: str = "hotel-1001", member_id: str = "m1") -> AlertJob:
        alert = VipAlert(TENANT, VENUE, alert_id, member_id, "山田", NOW, "cam-1", 0.71, "Gold", customer_id)
        assert world.deps.alerts.claim(SightingWrite(alert, f"{alert_id}-lock", NOW + timedelta(minutes=30)))
        return AlertJob(TENANT, VENUE, alert_id, NOW)

    return make


# -- enrichment ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waited_s", "budget_s"),
    [(0.0, 1.5), (0.4, 1.1), (1.2, 0.375), (60.0, 0.375)],
    ids=["at-once", "after-the-queue", "late-gets-the-floor", "backlog-gets-the-floor"],
)
def test_enrich_alert_gives_the_crm_what_is_left_of_the_deadline_since_the_sighting(
    world: World, make_venue, make_alert, waited_s: float, budget_s: float
) -> None:
    # given: a 1.5 s CRM deadline; the job reaches the consumer ``waited_s`` after the sighting
    make_venue()
    job = make_alert()
    world.clock.advance(waited_s)
    # when
    alerts.enrich_alert(world.deps, job)
    # then: the staff are alerted within the deadline of the guest's arrival, the CRM never
    # gets less than a quarter of it
    ((_, given),) = world.gateway.lookups
    assert given == pytest.approx(budget_s)


def test_enrich_alert_ok_stores_the_profile_and_pushes_each_device_in_its_locale(
    world: World, make_venue, make_device, make_alert
) -> None:
    # given a venue with a REST CRM that knows the guest, and a Japanese and an English device
    make_venue()
    make_device("front-ja", "ja")
    make_device("front-en", "en", StaffPlatform.FCM)
    job = make_alert()
    # when
    alert = alerts.enrich_alert(world.deps, job)
    # then the CRM was asked with the venue's deadline, the profile stored, both devices pushed
    assert world.gateway.lookups == [("hotel-1001", 1.5)]
    assert alert.profile_status is ProfileStatus.OK
    assert alert.profile == {"name": "山田 太郎", "tier": "Platinum", "drink": "緑茶"}
    assert (alert.delivered, alert.failed) == (2, 0)
    assert alert.enriched_at == NOW and alert.pushed_at == NOW
    assert world.deps.alerts.get(TENANT, VENUE, "a1") == alert
    (ja,) = world.provider.to("front-ja")
    (en,) = world.provider.to("front-en")
    assert ja.title == "VIP来訪: 山田様"
    assert ja.body == "ランク: Gold\ndrink: 緑茶"
    assert en.title == "VIP arrival: 山田"
    assert en.body == "Tier: Gold\ndrink: 緑茶"
    assert en.data == {
        "kind": "vip_alert",
        "alert_id": "a1",
        "venue_id": VENUE,
        "member_id": "m1",
        "profile_status": "ok",
    }
    recipients = {r.recipient_id: (r.provider, r.address) for r, _ in world.provider.sent}
    assert recipients == {"front-ja": ("inbox", ""), "front-en": ("sns", "fcm:tok-front-en")}


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        (
            ProfileLookup(None, "not_found", "the CRM does not know this customer"),
            (ProfileStatus.NOT_FOUND, "CRMに登録なし", "not found in the CRM"),
        ),
        (
            ProfileLookup(None, "unavailable", "the CRM at https://crm.example answered 503"),
            (ProfileStatus.UNAVAILABLE, "プロフィール取得不可", "profile unavailable"),
        ),
    ],
)
def test_enrich_alert_without_a_profile_keeps_the_reason_and_still_pushes(  # noqa: PLR0917
    world: World, make_venue, make_device, make_alert, lookup, expected
) -> None:
    status, ja_summary, en_summary = expected
    # given a CRM that does not give the profile
    make_venue()
    make_device("ja", "ja")
    make_device("en", "en")
    world.gateway.answer = lookup
    # when
    alert = alerts.enrich_alert(world.deps, make_alert())
    # then the status and reason are stored and the alert went out saying why there is no profile
    assert (alert.profile_status, alert.profile, alert.profile_reason) == (status, None, lookup.reason)
    assert alert.delivered == 2
    assert world.provider.to("ja")[0].body == f"ランク: Gold\n{ja_summary}"
    assert world.provider.to("en")[0].body == f"Tier: Gold\n{en_summary}"


def test_enrich_alert_venue_without_crm_is_none_and_asks_no_crm(
    world: World, make_venue, make_device, make_alert
) -> None:
    make_venue(CrmConfig())
    make_device("en", "en")
    alert = alerts.enrich_alert(world.deps, make_alert())
    assert alert.profile_status is ProfileStatus.NONE
    assert "no CRM" in alert.profile_reason
    assert world.directory.asked == [] and world.gateway.lookups == []
    assert world.provider.to("en")[0].body == "Tier: Gold\nno CRM profile"


def test_enrich_alert_member_without_crm_id_is_none(
    world: World, make_venue, make_device, make_alert
) -> None:
    make_venue()
    make_device("ja", "ja")
    alert = alerts.enrich_alert(world.deps, make_alert(customer_id=""))
    assert alert.profile_status is ProfileStatus.NONE
    assert "crm_customer_id" in alert.profile_reason
    assert world.gateway.lookups == []
    assert world.provider.to("ja")[0].body == "ランク: Gold\nCRMプロフィールなし"


def test_enrich_alert_crm_past_its_deadline_goes_out_unavailable(
    world: World, make_venue, make_device, make_alert, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a CRM connector that hangs (past what its own timeouts would allow) and a 50 ms deadline
    monkeypatch.setattr(alerts, "DEADLINE_GRACE_S", 0.0)
    make_venue(replace(REST, deadline_ms=50))
    make_device("ja", "ja")
    world.gateway.hang = True
    # when
    alert = alerts.enrich_alert(world.deps, make_alert())
    # then the alert was not held: stored unavailable with the deadline as the reason, and pushed
    assert alert.profile_status is ProfileStatus.UNAVAILABLE
    assert alert.profile_reason == "the CRM did not answer within the 50 ms deadline"
    assert alert.delivered == 1
    assert world.provider.to("ja")[0].body == "ランク: Gold\nプロフィール取得不可"


def test_enrich_alert_gateway_that_raises_goes_out_unavailable(
    world: World, make_venue, make_device, make_alert
) -> None:
    make_venue()
    make_device("ja", "ja")

    def broken(customer_id: str, *, deadline_s: float) -> ProfileLookup:
        raise RuntimeError("bug")

    world.gateway.lookup = broken  # type: ignore[method-assign]
    alert = alerts.enrich_alert(world.deps, make_alert())
    assert alert.profile_status is ProfileStatus.UNAVAILABLE
    assert "RuntimeError" in alert.profile_reason
    assert alert.delivered == 1


@pytest.mark.parametrize("error", [None, DependencyError("the CRM webhook answered 500")])
def test_enrich_alert_webhook_crm_is_notified_and_its_failure_never_blocks(
    world: World, make_venue, make_device, make_alert, error: Exception | None
) -> None:
    # given a venue whose CRM is a webhook (failing or not)
    make_venue(WEBHOOK)
    make_device("ja", "ja")
    world.gateway.notify_error = error
    # when
    alert = alerts.enrich_alert(world.deps, make_alert())
    # then the sighting (ids only) was sent, the alert pushed without a profile, nothing raised
    assert world.gateway.lookups == []
    (sighting,) = world.gateway.notified
    assert sighting["alert_id"] == "a1" and sighting["crm_customer_id"] == "hotel-1001"
    assert "name" not in sighting
    assert alert.profile_status is ProfileStatus.NONE
    assert alert.delivered == 1


def test_enrich_alert_disabled_device_is_marked_and_skipped_next_time(
    world: World, make_venue, make_device, make_alert
) -> None:
    # given two devices, one of which the push service reports dead
    make_venue()
    make_device("alive")
    make_device("dead")
    world.provider.disabled.add("dead")
    # when an alert is pushed
    first = alerts.enrich_alert(world.deps, make_alert("a1"))
    # then the dead device is disabled and counted failed
    assert (first.delivered, first.failed) == (1, 1)
    devices = {d.staff_device_id: d for d in world.deps.staff_devices.list(TENANT, VENUE)}
    assert devices["dead"].disabled_at == NOW and devices["alive"].disabled_at is None
    # when the next alert is pushed
    world.provider.disabled.clear()
    second = alerts.enrich_alert(world.deps, make_alert("a2", member_id="m2"))
    # then the disabled device is not pushed to at all
    assert (second.delivered, second.failed) == (1, 0)
    assert [r.recipient_id for r, _ in world.provider.sent] == ["alive", "alive"]


def test_enrich_alert_unconfigured_provider_is_counted_failed(
    world: World, make_venue, make_device, make_alert
) -> None:
    # given the deployment's sender with no provider configured, and an FCM device
    make_venue()
    make_device("phone", "en", StaffPlatform.FCM)
    deps = bootstrap(
        Settings({}),
        policy=Policy(),
        crm=world.directory,
        push=build_push_sender(Settings({}), sleep=lambda _: None),
        **{name: getattr(world.deps, name) for name in ("venues", "alerts", "staff_devices", "clock")},
    ).deps
    # when
    alert = alerts.enrich_alert(deps, make_alert())
    # then the alert is stored with the failure and the device is not disabled
    assert (alert.delivered, alert.failed) == (0, 1)
    assert world.deps.staff_devices.list(TENANT, VENUE)[0].disabled_at is None


def test_enrich_alert_again_after_it_was_pushed_does_nothing(
    world: World, make_venue, make_device, make_alert
) -> None:
    make_venue()
    make_device("ja")
    job = make_alert()
    first = alerts.enrich_alert(world.deps, job)
    world.clock.advance(60)
    again = alerts.enrich_alert(world.deps, job)
    assert again == first
    assert len(world.gateway.lookups) == 1 and len(world.provider.sent) == 1


def test_enrich_alert_already_enriched_is_only_pushed(
    world: World, make_venue, make_device, make_alert
) -> None:
    # given an alert enriched by an earlier delivery whose push did not happen
    make_venue()
    make_device("ja")
    job = make_alert()
    world.deps.alerts.enrich(
        TENANT, VENUE, "a1", status=ProfileStatus.NOT_FOUND, profile=None, reason="unknown", at=NOW
    )
    # when
    alert = alerts.enrich_alert(world.deps, job)
    # then the CRM is not asked again and the stored enrichment is pushed
    assert world.gateway.lookups == []
    assert alert.profile_status is ProfileStatus.NOT_FOUND and alert.delivered == 1


def test_enrich_alert_unknown_alert_is_not_found(world: World, make_venue) -> None:
    make_venue()
    with pytest.raises(NotFoundError):
        alerts.enrich_alert(world.deps, AlertJob(TENANT, VENUE, "nope", NOW))


def test_enrich_alert_without_staff_devices_is_pushed_to_nobody(world: World, make_venue, make_alert) -> None:
    make_venue()
    alert = alerts.enrich_alert(world.deps, make_alert())
    assert (alert.profile_status, alert.delivered, alert.failed) == (ProfileStatus.OK, 0, 0)
    assert alert.pushed_at == NOW


def test_vip_alert_summary_is_cut_short(world: World, make_venue, make_device, make_alert) -> None:
    make_venue()
    make_device("en", "en")
    world.gateway.answer = ProfileLookup(CrmProfile("c", "N", "T", {"notes": "x" * 400}), "ok")
    alerts.enrich_alert(world.deps, make_alert())
    summary = world.provider.to("en")[0].body.split("\n", 1)[1]
    assert len(summary) == 160 and summary.endswith("…")


# -- the staff board -------------------------------------------------------------------------------


def test_acknowledge_alert_first_acknowledgement_stays(world: World, make_venue, make_alert) -> None:
    make_venue()
    make_alert()
    first = alerts.acknowledge_alert(world.deps, "user:ann", TENANT, VENUE, "a1")
    world.clock.advance(10)
    second = alerts.acknowledge_alert(world.deps, "user:bob", TENANT, VENUE, "a1")
    assert (first.acknowledged_by, first.acknowledged_at) == ("user:ann", NOW)
    assert second.acknowledged_by == "user:ann"


def test_flag_false_match_keeps_the_note(world: World, make_venue, make_alert) -> None:
    make_venue()
    make_alert()
    alert = alerts.flag_false_match(world.deps, "user:ann", TENANT, VENUE, "a1", note="  not him  ")
    assert (alert.false_match_by, alert.false_match_note, alert.false_match_at) == (
        "user:ann",
        "not him",
        NOW,
    )


def test_flag_false_match_refuses_a_note_over_500_characters(world: World, make_venue, make_alert) -> None:
    make_venue()
    make_alert()
    with pytest.raises(InvalidInputError, match="note must be 0-500"):
        alerts.flag_false_match(world.deps, "user:ann", TENANT, VENUE, "a1", note="x" * 501)
    assert world.deps.alerts.get(TENANT, VENUE, "a1").false_match_by is None


@pytest.mark.parametrize(
    "action",
    [
        lambda deps: alerts.acknowledge_alert(deps, "user:a", TENANT, "elsewhere", "a1"),
        lambda deps: alerts.flag_false_match(deps, "user:a", TENANT, "elsewhere", "a1"),
        lambda deps: alerts.get_alert(deps, TENANT, "elsewhere", "a1"),
        lambda deps: alerts.list_alerts(deps, TENANT, "elsewhere"),
    ],
)
def test_alert_actions_on_an_unknown_venue_are_not_found(
    world: World, make_venue, make_alert, action: Callable[[Any], object]
) -> None:
    make_venue()
    make_alert()
    with pytest.raises(NotFoundError):
        action(world.deps)


def test_list_alerts_newest_first_since_and_limits(world: World, make_venue) -> None:
    make_venue()
    for minute in range(3):
        at = NOW + timedelta(minutes=minute)
        alert = VipAlert(TENANT, VENUE, f"a{minute}", f"m{minute}", "N", at, "cam", 0.7)
        world.deps.alerts.claim(SightingWrite(alert, f"lock{minute}", at + timedelta(minutes=30)))
    page = alerts.list_alerts(world.deps, TENANT, VENUE, since=NOW + timedelta(minutes=1))
    assert [a.alert_id for a in page.items] == ["a2", "a1"]
    assert alerts.get_alert(world.deps, TENANT, VENUE, "a0").member_id == "m0"
    with pytest.raises(InvalidInputError, match="limit"):
        alerts.list_alerts(world.deps, TENANT, VENUE, limit=0)
    with pytest.raises(InvalidInputError, match="timezone"):
        alerts.list_alerts(world.deps, TENANT, VENUE, since=datetime(2026, 5, 1))


# -- the CRM connector directory ------------------------------------------------------------------


def _venue(crm: CrmConfig, venue_id: str = VENUE, tenant_id: str = TENANT) -> Venue:
    return Venue(tenant_id, venue_id, "Grand Hotel", NOW, crm=crm)


def test_crm_directory_keeps_one_connector_per_venue_and_config() -> None:
    # given
    directory = VenueCrmDirectory()
    # when the same venue is asked twice, another venue once, then the venue's config changes
    first = directory.gateway(_venue(REST))
    again = directory.gateway(_venue(REST))
    other = directory.gateway(_venue(REST, "spa"))
    changed = directory.gateway(_venue(replace(REST, deadline_ms=800)))
    # then the breaker and cache live on while the config is the same, and a change rebuilds
    assert isinstance(first, RestCrmConnector)
    assert again is first and other is not first
    assert changed is not first and directory.gateway(_venue(replace(REST, deadline_ms=800))) is changed
    assert len(directory) == 2


def test_crm_directory_rest_timeout_is_half_the_deadline_and_no_crm_is_none() -> None:
    directory = VenueCrmDirectory()
    connector = directory.gateway(
        _venue(replace(REST, deadline_ms=1200, secret_id="eventface/tenants/acme/crm-key"))
    )
    assert isinstance(connector, RestCrmConnector)
    assert connector.timeout_s == pytest.approx(0.6)
    assert connector.secret_id == "eventface/tenants/acme/crm-key" and connector.field_map == dict(
        REST.field_map
    )
    assert directory.gateway(_venue(CrmConfig())) is None


def test_crm_directory_drops_the_oldest_venue_when_full() -> None:
    directory = VenueCrmDirectory(max_venues=2)
    first = directory.gateway(_venue(REST, "v1"))
    directory.gateway(_venue(REST, "v2"))
    directory.gateway(_venue(REST, "v3"))
    assert len(directory) == 2
    assert directory.gateway(_venue(REST, "v1")) is not first


@dataclass
class FakeSecrets:
    values: Mapping[str, str]
    reads: list[str] = field(default_factory=list)

    def get_secret_value(self, **request: str) -> dict[str, str]:
        self.reads.append(request["SecretId"])
        return {"SecretString": self.values[request["SecretId"]]}


def test_crm_directory_webhook_reads_its_key_on_first_use_and_signs_the_sighting() -> None:
    # given a webhook CRM whose key is a secret, and a transport that records the request
    secrets = FakeSecrets({"eventface/tenants/acme/crm-hook": "k3y"})
    sent: list[tuple[urllib.request.Request, float]] = []

    def transport(request: urllib.request.Request, timeout_s: float) -> HttpAnswer:
        sent.append((request, timeout_s))
        return HttpAnswer(204, b"")

    directory = VenueCrmDirectory(secrets_client=secrets, transport=transport)
    # when the connector is built, then used
    gateway = directory.gateway(_venue(WEBHOOK))
    assert gateway is not None and secrets.reads == []
    gateway.notify({"alert_id": "a1"})
    # then the body was signed with the secret and the deadline bounded the call
    (request, timeout_s) = sent[0]
    assert isinstance(request.data, bytes)
    assert verify_signature(b"k3y", request.data, request.get_header("X-signature"))
    assert timeout_s == pytest.approx(0.5)
    assert gateway.lookup("c", deadline_s=1.0).status == "unavailable"


def test_crm_directory_webhook_missing_secret_is_a_dependency_error() -> None:
    class Missing:
        def get_secret_value(self, **request: str) -> dict[str, str]:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetSecretValue")

    gateway = VenueCrmDirectory(secrets_client=Missing()).gateway(_venue(WEBHOOK))
    assert gateway is not None
    with pytest.raises(
        DependencyError, match="check that the secret 'eventface/tenants/acme/crm-hook' exists"
    ):
        gateway.notify({"alert_id": "a1"})
