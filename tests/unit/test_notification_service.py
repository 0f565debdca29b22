"""Push dispatch of notification jobs (stamps, completions, campaign messages) and the push adapter:
templates per locale, push addresses, and the deployment's sender (inbox in tmp_path)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from eventface.adapters import push
from eventface.adapters.memory import FixedClock, in_memory_ports
from eventface.bootstrap import Container, bootstrap
from eventface.domain.model import Campaign, CampaignStatus, Consent, JobKind, NotificationJob, Participant
from eventface.domain.vip import CampaignMessage, Segment
from eventface.services import push_messages as messages
from eventface.services.deps import Policy
from eventface.services.notifications import dispatch_job
from eventface.settings import (
    EGRESS_ALLOW,
    PUSH_INBOX_DIR,
    PUSH_WEBHOOK_SECRET_ID,
    SNS_APNS_APPLICATION_ARN,
    SNS_FCM_APPLICATION_ARN,
    Settings,
)
from mobile_push import Recipient, read_inbox, verify_signature

TENANT = "acme"
CAMPAIGN = "rally"
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
BODY = {"ja": "ご来場ありがとうございます", "en": "Thank you for coming"}
TITLE = {"ja": "お知らせ", "en": "News"}


def _job(kind: JobKind = JobKind.STAMP, **changes: Any) -> NotificationJob:
    fields: dict[str, Any] = {
        "job_id": f"job-{kind.value}",
        "kind": kind,
        "tenant_id": TENANT,
        "campaign_id": CAMPAIGN,
        "participant_id": "p1",
        "checkpoint_id": "gate",
        "stamps": 2,
        "required": 3,
        "created_at": NOW,
        **changes,
    }
    return NotificationJob(**fields)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    return tmp_path / "inbox"


@pytest.fixture
def deps(inbox: Path) -> Container:
    sender = push.build_push_sender(Settings({PUSH_INBOX_DIR: str(inbox)}), sleep=lambda _: None)
    wired = bootstrap(
        Settings({}), policy=Policy(), push=sender, **in_memory_ports(clock=FixedClock(NOW))
    ).deps
    wired.campaigns.add(
        Campaign(
            TENANT,
            CAMPAIGN,
            "Rally",
            NOW,
            NOW + timedelta(days=1),
            CampaignStatus.LIVE,
            stamps_required=3,
            reward_text="Free coffee",
        )
    )
    return wired


@pytest.fixture
def enrol(deps: Container) -> Callable[..., Participant]:
    """Factory: participant p1, nickname Ann, with a push endpoint and a locale."""

    def add(push_endpoint: str | None = "inbox:", locale: str = "en") -> Participant:
        participant = Participant(
            TENANT, CAMPAIGN, "p1", "Ann", Consent(True, NOW), NOW, push_endpoint=push_endpoint, locale=locale
        )
        deps.participants.add(participant)
        return participant

    return add


def _message(deps: Container, title: dict[str, str], body: dict[str, str]) -> CampaignMessage:
    sent = CampaignMessage(
        TENANT, CAMPAIGN, "msg-1", title, body, Segment(min_stamps=1), NOW, "user:marketer", targeted=3
    )
    deps.messages.add(sent, [])
    return sent


@pytest.fixture
def message(deps: Container) -> CampaignMessage:
    return _message(deps, {"ja": "特典", "en": "Offer"}, {"ja": "本日限定", "en": "Today only"})


# -- dispatch_job ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "locale", "title", "body"),
    [
        (JobKind.STAMP, "ja", "スタンプを獲得しました", "Ann, you have 2 of 3 stamps!"),
        (JobKind.STAMP, "en", "Stamp collected", "Ann, you have 2 of 3 stamps!"),
        (JobKind.COMPLETION, "ja", "スタンプラリー達成！", "Rally complete, Ann! Free coffee"),
        (JobKind.COMPLETION, "en-GB", "Stamp rally complete!", "Rally complete, Ann! Free coffee"),
        (JobKind.STAMP, "fr", "Stamp collected", "Ann, you have 2 of 3 stamps!"),
    ],
)
def test_dispatch_job_stamp_and_completion_have_a_localised_title_and_the_text_rendered_at_send_time(
    deps: Container,
    inbox: Path,
    *,
    enrol: Callable[..., Participant],
    kind: JobKind,
    locale: str,
    title: str,
    body: str,
) -> None:
    # given: the job holds ids and counts; the nickname, locale and endpoint are the participant's
    enrol(locale=locale)
    # when
    receipt = dispatch_job(deps, _job(kind))
    # then the participant's inbox (named by the participant id) has the push
    assert receipt is not None and receipt.status == "delivered", receipt
    (pushed,) = read_inbox(inbox, "p1")
    assert (pushed["title"], pushed["body"]) == (title, body)
    assert pushed["data"] == {"kind": kind.value, "campaign_id": CAMPAIGN, "stamps": "2", "required": "3"}


def test_dispatch_job_of_an_erased_participant_sends_nothing(
    deps: Container, inbox: Path, message: CampaignMessage
) -> None:
    # given: jobs queued for p1, who was erased before they were sent (p1 is not registered)
    # when
    stamp = dispatch_job(deps, _job())
    offer = dispatch_job(deps, _job(JobKind.MESSAGE, message_id="msg-1"))
    # then: nothing is pushed; the message counts p1 as unreachable
    assert (stamp, offer) == (None, None)
    assert read_inbox(inbox, "p1") == []
    counted = deps.messages.get(TENANT, CAMPAIGN, "msg-1")
    assert (counted.delivered, counted.failed, counted.no_endpoint) == (0, 0, 1)


def test_dispatch_job_message_is_pushed_and_counted_delivered(
    deps: Container, inbox: Path, enrol: Callable[..., Participant], message: CampaignMessage
) -> None:
    # given a campaign message job for a participant who reads Japanese
    enrol(locale="ja")
    # when
    receipt = dispatch_job(deps, _job(JobKind.MESSAGE, message_id="msg-1"))
    # then
    assert receipt is not None and receipt.status == "delivered"
    (pushed,) = read_inbox(inbox, "p1")
    assert (pushed["title"], pushed["body"]) == ("特典", "本日限定")
    assert pushed["data"] == {"kind": "message", "campaign_id": CAMPAIGN, "message_id": "msg-1"}
    counted = deps.messages.get(TENANT, CAMPAIGN, "msg-1")
    assert (counted.delivered, counted.failed, counted.no_endpoint) == (1, 0, 0)


@pytest.mark.parametrize(
    ("locale", "texts", "expected"),
    [
        pytest.param("ja", (TITLE, BODY), ("お知らせ", "ご来場ありがとうございます"), id="own-locale-ja"),
        pytest.param("en", (TITLE, BODY), ("News", "Thank you for coming"), id="own-locale-en"),
        pytest.param("ja", ({"en": "News"}, {"en": "Hello"}), ("News", "Hello"), id="ja-falls-back-to-en"),
        pytest.param("en", ({"ja": "題"}, {"ja": "本文"}), ("題", "本文"), id="en-falls-back-to-first"),
        pytest.param("ja", ({"en": "News"}, BODY), ("News", BODY["ja"]), id="title-of-other-locale"),
    ],
)
def test_dispatch_job_message_uses_the_participants_locale_with_fallback(
    deps: Container,
    inbox: Path,
    *,
    enrol: Callable[..., Participant],
    locale: str,
    texts: tuple[dict[str, str], dict[str, str]],
    expected: tuple[str, str],
) -> None:
    # given
    enrol(locale=locale)
    _message(deps, *texts)
    # when
    dispatch_job(deps, _job(JobKind.MESSAGE, message_id="msg-1"))
    # then
    (pushed,) = read_inbox(inbox, "p1")
    assert (pushed["title"], pushed["body"]) == expected


def test_dispatch_job_message_to_an_unconfigured_provider_is_counted_failed(
    deps: Container, inbox: Path, enrol: Callable[..., Participant], message: CampaignMessage
) -> None:
    # given a participant with an FCM token and no SNS configured
    enrol(push_endpoint="fcm:tok")
    # when
    receipt = dispatch_job(deps, _job(JobKind.MESSAGE, message_id="msg-1"))
    # then the receipt says which setting to set, and the message counts a failure
    assert receipt is not None and receipt.status == "failed"
    assert SNS_FCM_APPLICATION_ARN in (receipt.reason or "")
    counted = deps.messages.get(TENANT, CAMPAIGN, "msg-1")
    assert (counted.delivered, counted.failed, counted.no_endpoint) == (0, 1, 0)
    assert read_inbox(inbox, "p1") == []


def test_dispatch_job_message_without_endpoint_is_counted_no_endpoint(
    deps: Container, inbox: Path, enrol: Callable[..., Participant], message: CampaignMessage
) -> None:
    enrol(push_endpoint=None)
    receipt = dispatch_job(deps, _job(JobKind.MESSAGE, message_id="msg-1"))
    assert receipt is None
    counted = deps.messages.get(TENANT, CAMPAIGN, "msg-1")
    assert (counted.delivered, counted.failed, counted.no_endpoint) == (0, 0, 1)


def test_dispatch_job_stamp_without_endpoint_sends_and_counts_nothing(
    deps: Container, inbox: Path, enrol: Callable[..., Participant], message: CampaignMessage
) -> None:
    enrol(push_endpoint=None)
    assert dispatch_job(deps, _job()) is None
    assert read_inbox(inbox, "p1") == []
    counted = deps.messages.get(TENANT, CAMPAIGN, "msg-1")
    assert (counted.delivered, counted.failed, counted.no_endpoint) == (0, 0, 0)


def test_dispatch_job_unknown_platform_is_a_failed_receipt(
    deps: Container, enrol: Callable[..., Participant]
) -> None:
    enrol(push_endpoint="pager:123")
    receipt = dispatch_job(deps, _job())
    assert receipt is not None and receipt.status == "failed"
    assert "no provider named 'pager'" in (receipt.reason or "")


# -- push addresses and the sender -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "provider", "provider_address"),
    [
        ("apns:abc", "sns", "apns:abc"),
        ("fcm:def", "sns", "fcm:def"),
        (("fcm", "def"), "sns", "fcm:def"),
        ("webhook:https://desk.example/push?x=1", "webhook", "https://desk.example/push?x=1"),
        (("webhook", "https://desk.example/push"), "webhook", "https://desk.example/push"),
        ("inbox:", "inbox", ""),
        (("inbox", ""), "inbox", ""),
        (
            "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1",
            "sns",
            "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1",
        ),
        ("pager:123", "pager", "123"),
    ],
)
def test_recipient_maps_platforms_to_providers(
    address: str | tuple[str, str], provider: str, provider_address: str
) -> None:
    made = messages.recipient("d1", address, "ja", {"text": "t"})
    assert made == Recipient("d1", provider, provider_address, "ja", {"text": "t"})


@pytest.mark.parametrize(
    ("address", "setting"),
    [
        ("inbox:", PUSH_INBOX_DIR),
        ("fcm:t", SNS_FCM_APPLICATION_ARN),
        ("apns:t", SNS_APNS_APPLICATION_ARN),
        ("webhook:https://desk.example/push", PUSH_WEBHOOK_SECRET_ID),
    ],
)
def test_unconfigured_provider_receipt_names_the_setting(address: str, setting: str) -> None:
    sender = push.build_push_sender(Settings({}), sleep=lambda _: None)
    (receipt,) = sender.send(
        messages.template("stamp"), [messages.recipient("p1", address, "en", _STAMP_VARIABLES)]
    )
    assert receipt.status == "failed"
    assert setting in (receipt.reason or "")


def test_sns_with_only_apns_configured_refuses_fcm_devices_with_the_setting() -> None:
    made: list[str] = []

    def no_client() -> Any:
        made.append("sns")
        raise AssertionError("no SNS call is needed to refuse an unconfigured platform")

    settings = Settings({SNS_APNS_APPLICATION_ARN: "arn:aws:sns:us-east-1:1:app/APNS/ios"})
    sender = push.build_push_sender(settings, sns_client=no_client, sleep=lambda _: None)
    (receipt,) = sender.send(
        messages.template("stamp"), [messages.recipient("p1", "fcm:t", "en", _STAMP_VARIABLES)]
    )
    assert receipt.status == "failed" and SNS_FCM_APPLICATION_ARN in (receipt.reason or "")
    assert made == []


_STAMP_VARIABLES = {"text": "hi", "campaign_id": "c", "stamps": "1", "required": "2"}


@dataclass
class Hook:
    url: str = ""
    bodies: list[tuple[bytes, str]] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A webhook receiver on 127.0.0.1 that records each body with its signature header."""
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.bodies.append((body, self.headers.get("X-Signature", "")))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/push"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FakeSecrets:
    def __init__(self, value: str) -> None:
        self.value = value
        self.reads = 0

    def get_secret_value(self, **request: str) -> dict[str, str]:
        self.reads += 1
        return {"SecretString": self.value}


def test_webhook_push_is_signed_with_the_secret_read_once(hook: Hook) -> None:
    # given a sender whose webhook key is a secret
    secrets = FakeSecrets("s3cret")
    # (the loopback test webhook is allow-listed, as the local stack allow-lists its own)
    port = hook.url.split(":")[2].split("/")[0]
    settings = Settings({PUSH_WEBHOOK_SECRET_ID: "push/webhook", EGRESS_ALLOW: f"127.0.0.1:{port}"})
    sender = push.build_push_sender(settings, secrets_client=lambda: secrets, sleep=lambda _: None)
    assert secrets.reads == 0  # nothing is read before the first push
    # when two pushes go to a webhook device
    for _ in range(2):
        (receipt,) = sender.send(
            messages.template("stamp"),
            [messages.recipient("p1", f"webhook:{hook.url}", "ja", _STAMP_VARIABLES)],
        )
        assert receipt.status == "delivered", receipt.reason
    # then both were signed with the secret, read once
    assert secrets.reads == 1 and len(hook.bodies) == 2
    body, signature = hook.bodies[0]
    assert verify_signature(b"s3cret", body, signature)
    assert json.loads(body)["title"] == "スタンプを獲得しました"


def test_webhook_secret_that_cannot_be_read_is_a_failed_receipt_with_instructions() -> None:
    class Missing:
        def get_secret_value(self, **request: str) -> dict[str, str]:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetSecretValue")

    settings = Settings({PUSH_WEBHOOK_SECRET_ID: "push/webhook"})
    sender = push.build_push_sender(settings, secrets_client=Missing, sleep=lambda _: None)
    (receipt,) = sender.send(
        messages.template("stamp"),
        [messages.recipient("p1", "webhook:https://x.example/p", "en", _STAMP_VARIABLES)],
    )
    assert receipt.status == "failed"
    assert "check that the secret 'push/webhook'" in (receipt.reason or "")


@pytest.mark.parametrize("name", ["stamp", "completion", "message", "vip_alert"])
def test_every_template_has_japanese_and_english(name: str) -> None:
    template = messages.template(name)
    assert {"ja", "en"} <= set(template.texts) and template.fallback_locale == "en"


def test_sender_factory_is_lazy() -> None:
    calls: list[str] = []

    def factory(name: str) -> Callable[[], Any]:
        def make() -> Any:
            calls.append(name)
            raise AssertionError("not expected")

        return make

    settings = Settings(
        {
            SNS_FCM_APPLICATION_ARN: "arn:aws:sns:us-east-1:1:app/GCM/android",
            PUSH_WEBHOOK_SECRET_ID: "push/webhook",
        }
    )
    push.build_push_sender(settings, sns_client=factory("sns"), secrets_client=factory("secrets"))
    assert calls == []


def test_dispatch_job_to_a_disabled_endpoint_forgets_it(inbox: Path) -> None:
    # given: a participant whose phone's endpoint the push service reports dead
    from mobile_push import EndpointDisabledError, Message, PushSender

    class DeadEndpoints:
        def send(self, recipient: Recipient, message: Message) -> str:
            raise EndpointDisabledError("EndpointDisabled: the app was uninstalled")

    ports = in_memory_ports(clock=FixedClock(NOW))
    deps = bootstrap(Settings({}), policy=Policy(), push=PushSender({"sns": DeadEndpoints()}), **ports).deps
    deps.campaigns.add(Campaign(TENANT, CAMPAIGN, "Rally", NOW, NOW + timedelta(days=1), CampaignStatus.LIVE))
    participant = Participant(TENANT, CAMPAIGN, "p1", "Ann", Consent(True, NOW), NOW, push_endpoint="fcm:old")
    ports["participants"].add(participant)
    # when
    receipt = dispatch_job(deps, _job())
    # then: the endpoint is gone, so later scans queue no push to it
    assert receipt is not None and receipt.status == "disabled"
    assert ports["participants"].get(TENANT, CAMPAIGN, "p1").push_endpoint is None


def test_dispatch_job_keeps_a_newer_endpoint_when_an_old_one_is_reported_dead(inbox: Path) -> None:
    # given: the participant registered a new token since the job was queued
    ports = in_memory_ports(clock=FixedClock(NOW))
    participant = Participant(TENANT, CAMPAIGN, "p1", "Ann", Consent(True, NOW), NOW, push_endpoint="fcm:new")
    ports["participants"].add(participant)
    # when
    forgotten = ports["participants"].forget_push_endpoint(TENANT, CAMPAIGN, "p1", "fcm:old")
    # then
    assert forgotten is False
    assert ports["participants"].get(TENANT, CAMPAIGN, "p1").push_endpoint == "fcm:new"
