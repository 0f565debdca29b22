"""The queue consumers end to end: ``vip_enrich`` and ``push_dispatch`` on SQS-shaped events, with
DynamoDB (moto in-process: the real VIP adapters and the real idempotency table), a real loopback
CRM (``eventface.local.crm_server``) and the inbox push provider in tmp_path."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eventface import aws, bootstrap
from eventface import settings as settings_module
from eventface.adapters.push import build_push_sender
from eventface.adapters.sqs_queue import alert_job_to_json, job_to_json
from eventface.consumers import push_dispatch, vip_enrich
from eventface.domain.model import Campaign, CampaignStatus, Consent, JobKind, NotificationJob, Participant
from eventface.domain.vip import (
    AlertJob,
    CampaignMessage,
    CrmConfig,
    CrmKind,
    ProfileStatus,
    Segment,
    SightingWrite,
    StaffDevice,
    StaffPlatform,
    Venue,
    VipAlert,
)
from eventface.local.apps import FUNCTIONS_DIR, load_app
from eventface.local.crm_server import SAMPLE_FIELD_MAP, CrmTestServer
from eventface.local.pump import LambdaContext, sqs_event
from eventface.settings import EGRESS_ALLOW, PUSH_INBOX_DIR, TABLE_PREFIX, Settings, from_environ
from mobile_push import read_inbox

VENUE = "grand-hotel"
AUTH = "Bearer s3cret"
WEBHOOK_KEY = "hook-k3y"
NOW = datetime.now(UTC).replace(microsecond=0)
SIGHTINGS_ARN = "arn:aws:sqs:us-east-1:123456789012:test-sightings.fifo"
NOTIFICATIONS_ARN = "arn:aws:sqs:us-east-1:123456789012:test-notifications.fifo"
#: Generous allowance beyond the CRM deadline for the whole enrichment (DynamoDB, pushes, threads).
DEADLINE_MARGIN_S = 1.5


@pytest.fixture
def shared_prefix(table_prefix: str) -> str:
    """moto in-process with every table (the conftest's ``table_prefix``)."""
    return table_prefix


@pytest.fixture
def crm() -> Iterator[CrmTestServer]:
    with CrmTestServer(auth_value=AUTH, webhook_secret=WEBHOOK_KEY.encode()) as server:
        yield server


@dataclass
class Stack:
    settings: Settings
    deps: bootstrap.Container
    inbox: Path
    crm: CrmTestServer
    tenant: str

    def rest_crm(self, deadline_ms: int = 1500) -> CrmConfig:
        return CrmConfig(
            kind=CrmKind.REST,
            url=self.crm.profile_url_template,
            field_map=dict(SAMPLE_FIELD_MAP),
            secret_id=f"eventface/tenants/{self.tenant}/crm-api-key",
            deadline_ms=deadline_ms,
        )

    def profile_lookups(self) -> int:
        return sum(r.method == "GET" for r in self.crm.requests)

    def id(self, name: str) -> str:
        """An id unique to this test (alert and job ids key the shared idempotency table)."""
        return f"{self.tenant}-{name}"


@pytest.fixture
def stack(shared_prefix: str, tmp_path: Path, crm: CrmTestServer) -> Stack:
    """The real adapters on moto (bootstrap with the deployment's CRM directory and push sender)."""
    inbox = tmp_path / "inbox"
    tenant = f"t{uuid.uuid4().hex[:10]}"
    # the tenant's CRM secrets, named under its prefix
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name=f"eventface/tenants/{tenant}/crm-api-key", SecretString=AUTH)
    secrets.create_secret(Name=f"eventface/tenants/{tenant}/crm-hook", SecretString=WEBHOOK_KEY)
    # the loopback CRM is allow-listed, as the local stack allow-lists its own
    settings = from_environ(
        {TABLE_PREFIX: shared_prefix, PUSH_INBOX_DIR: str(inbox), EGRESS_ALLOW: crm.egress_allow_entry}
    )
    push = build_push_sender(settings, sleep=lambda _: None)
    deps = bootstrap.bootstrap(settings, push=push).deps
    return Stack(settings, deps, inbox, crm, tenant)


@pytest.fixture
def make_alert(stack: Stack) -> Callable[..., AlertJob]:
    """A venue (with ``crm``), two staff devices (ja, en; inbox) and a pending alert; its job."""

    def make(crm: CrmConfig, name: str = "a1", customer_id: str = "hotel-1001") -> AlertJob:
        deps, tenant, alert_id = stack.deps, stack.tenant, stack.id(name)
        if not any(v.venue_id == VENUE for v in deps.venues.list(tenant).items):
            deps.venues.add(Venue(tenant, VENUE, "Grand Hotel", NOW, crm=crm))
            for device_id, locale in (("desk-ja", "ja"), ("desk-en", "en")):
                deps.staff_devices.add(
                    StaffDevice(tenant, VENUE, device_id, device_id, StaffPlatform.INBOX, NOW, locale=locale)
                )
        alert = VipAlert(tenant, VENUE, alert_id, "m1", "山田", NOW, "cam-1", 0.72, "Gold", customer_id)
        assert deps.alerts.claim(SightingWrite(alert, f"lock-{alert_id}", NOW + timedelta(minutes=30)))
        return AlertJob(tenant, VENUE, alert_id, NOW)

    return make


def _message(body: str, group: str, message_id: str | None = None) -> dict[str, Any]:
    """One message as ReceiveMessage returns it from a FIFO queue."""
    return {
        "MessageId": message_id or str(uuid.uuid4()),
        "ReceiptHandle": f"rh-{uuid.uuid4().hex}",
        "Body": body,
        "Attributes": {
            "MessageGroupId": group,
            "MessageDeduplicationId": uuid.uuid4().hex,
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(time.time() * 1000)),
            "SequenceNumber": str(time.time_ns()),
        },
    }


def _failed(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Wrap ``module.name`` so that each call is recorded (and still made)."""
    calls: list[Any] = []
    real = getattr(module, name)

    def counted(deps: Any, job: Any) -> Any:
        calls.append(job)
        return real(deps, job)

    monkeypatch.setattr(module, name, counted)
    return calls


# -- vip_enrich ------------------------------------------------------------------------------------


def test_vip_enrich_same_record_twice_enriches_and_pushes_once(
    stack: Stack, make_alert: Callable[..., AlertJob], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an alert job, delivered twice as the same message and once more as a new one (a relay
    # retry past SQS's deduplication window)
    job = make_alert(stack.rest_crm())
    enrichments = _counting(monkeypatch, vip_enrich, "enrich_alert")
    message = _message(alert_job_to_json(job), VENUE)
    # when
    responses = [
        vip_enrich.enrich(sqs_event([m], SIGHTINGS_ARN), LambdaContext("vip_enrich"), deps=stack.deps)
        for m in (message, message, _message(alert_job_to_json(job), VENUE))
    ]
    # then one enrichment, one CRM call (with the secret's header), one push per device
    assert [_failed(r) for r in responses] == [[], [], []]
    assert len(enrichments) == 1
    assert stack.profile_lookups() == 1
    assert stack.crm.requests[0].headers["Authorization"] == AUTH
    alert = stack.deps.alerts.get(stack.tenant, VENUE, job.alert_id)
    assert alert.profile_status is ProfileStatus.OK
    assert alert.profile is not None and alert.profile["drink"] == "緑茶（温）"
    assert (alert.delivered, alert.failed) == (2, 0)
    (ja,) = read_inbox(stack.inbox, "desk-ja")
    (en,) = read_inbox(stack.inbox, "desk-en")
    assert ja["title"] == "VIP来訪: 山田様" and "緑茶（温）" in ja["body"]
    assert en["title"] == "VIP arrival: 山田" and en["data"]["alert_id"] == job.alert_id
    # and the idempotency record is in the real table, completed
    table = f"{stack.settings.table_prefix}-idempotency"
    items = aws.client("dynamodb").scan(TableName=table)["Items"]
    ours = [item for item in items if job.alert_id in item.get("data", {}).get("S", "")]
    assert [(item["status"]["S"], "expiration" in item) for item in ours] == [("COMPLETED", True)]


def test_vip_enrich_crm_past_its_deadline_stores_unavailable_in_time(
    stack: Stack, make_alert: Callable[..., AlertJob]
) -> None:
    # given a CRM that answers only after 3 s, and a venue deadline of 300 ms
    job = make_alert(stack.rest_crm(deadline_ms=300))
    stack.crm.set_latency(3.0)
    # when
    started = time.monotonic()
    response = vip_enrich.enrich(
        sqs_event([_message(alert_job_to_json(job), VENUE)], SIGHTINGS_ARN),
        LambdaContext("vip_enrich"),
        deps=stack.deps,
    )
    elapsed = time.monotonic() - started
    # then the alert went out "profile unavailable" long before the CRM would have answered
    assert _failed(response) == []
    assert elapsed < 0.3 + DEADLINE_MARGIN_S, elapsed
    alert = stack.deps.alerts.get(stack.tenant, VENUE, job.alert_id)
    assert alert.profile_status is ProfileStatus.UNAVAILABLE
    assert "did not answer" in alert.profile_reason
    assert alert.delivered == 2
    assert "プロフィール取得不可" in read_inbox(stack.inbox, "desk-ja")[0]["body"]


def test_vip_enrich_webhook_crm_receives_the_signed_sighting(
    stack: Stack, make_alert: Callable[..., AlertJob]
) -> None:
    webhook = CrmConfig(
        kind=CrmKind.WEBHOOK,
        url=stack.crm.webhook_url,
        secret_id=f"eventface/tenants/{stack.tenant}/crm-hook",
    )
    job = make_alert(webhook)
    response = vip_enrich.enrich(
        sqs_event([_message(alert_job_to_json(job), VENUE)], SIGHTINGS_ARN),
        LambdaContext("vip_enrich"),
        deps=stack.deps,
    )
    assert _failed(response) == []
    (delivery,) = stack.crm.webhook_received
    assert delivery.signature_valid is True
    assert isinstance(delivery.payload, dict) and delivery.payload["alert_id"] == job.alert_id
    assert stack.deps.alerts.get(stack.tenant, VENUE, job.alert_id).profile_status is ProfileStatus.NONE


# -- push_dispatch ---------------------------------------------------------------------------------


def _job(stack: Stack, job_id: str, participant_id: str, **changes: Any) -> NotificationJob:
    fields: dict[str, Any] = {
        "job_id": stack.id(job_id),
        "kind": JobKind.MESSAGE,
        "tenant_id": stack.tenant,
        "campaign_id": "rally",
        "participant_id": participant_id,
        "checkpoint_id": "",
        "stamps": 0,
        "required": 0,
        "created_at": NOW,
        "message_id": "msg-1",
        **changes,
    }
    return NotificationJob(**fields)


@pytest.fixture
def campaign_message(stack: Stack) -> CampaignMessage:
    """A campaign message of campaign ``rally``, whose participants p1-p3 read Japanese (inbox)."""
    stack.deps.campaigns.add(
        Campaign(
            stack.tenant,
            "rally",
            "Rally",
            NOW,
            NOW + timedelta(days=1),
            CampaignStatus.LIVE,
            stamps_required=3,
        )
    )
    for participant_id in ("p1", "p2", "p3"):
        stack.deps.participants.add(
            Participant(
                stack.tenant, "rally", participant_id, "Ann", Consent(True, NOW), NOW, "inbox:", locale="ja"
            )
        )
    message = CampaignMessage(
        stack.tenant,
        "rally",
        "msg-1",
        {"ja": "特典"},
        {"ja": "本日限定"},
        Segment(),
        NOW,
        "user:m",
        targeted=2,
    )
    stack.deps.messages.add(message, [])
    return message


def test_push_dispatch_same_record_twice_pushes_and_counts_once(
    stack: Stack, campaign_message: CampaignMessage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a campaign message job delivered twice
    dispatches = _counting(monkeypatch, push_dispatch, "dispatch_job")
    message = _message(job_to_json(_job(stack, "job-1", "p1")), f"{stack.tenant}#rally#p1")
    # when
    responses = [
        push_dispatch.dispatch(
            sqs_event([message], NOTIFICATIONS_ARN), LambdaContext("push"), deps=stack.deps
        )
        for _ in range(2)
    ]
    # then one push, counted once on the message
    assert [_failed(r) for r in responses] == [[], []]
    assert len(dispatches) == 1
    (pushed,) = read_inbox(stack.inbox, "p1")
    assert (pushed["title"], pushed["body"]) == ("特典", "本日限定")
    counted = stack.deps.messages.get(stack.tenant, "rally", "msg-1")
    assert (counted.delivered, counted.failed, counted.no_endpoint) == (1, 0, 0)


# -- malformed records, through the Lambda entry points ---------------------------------------------


@pytest.fixture
def lambda_environment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process environment of a deployed function, and the process-wide services rebuilt from it."""
    monkeypatch.setenv(TABLE_PREFIX, stack.settings.table_prefix)
    monkeypatch.setenv(PUSH_INBOX_DIR, str(stack.inbox))
    settings_module.get_settings.cache_clear()
    bootstrap.services.cache_clear()
    try:
        yield
    finally:
        settings_module.get_settings.cache_clear()
        bootstrap.services.cache_clear()


def test_push_dispatch_handler_reports_a_malformed_record_and_processes_the_others(
    stack: Stack, campaign_message: CampaignMessage, lambda_environment: None
) -> None:
    # given a batch: a good job, a malformed body followed by a job of the same group, a good job
    good = _message(job_to_json(_job(stack, "job-1", "p1")), "g1")
    malformed = _message('{"format": 1, "kind": "stamp"}', "g2")
    same_group = _message(job_to_json(_job(stack, "job-2", "p2")), "g2")
    other = _message(job_to_json(_job(stack, "job-3", "p3", kind=JobKind.STAMP, stamps=2, required=3)), "g3")
    # when the Lambda entry point gets it
    handler = push_dispatch.lambda_handler
    response = handler(sqs_event([good, malformed, same_group, other], NOTIFICATIONS_ARN), LambdaContext("p"))
    # then the malformed record failed, and so did the one after it in its group (FIFO order);
    # the other groups were pushed
    assert _failed(response) == [malformed["MessageId"], same_group["MessageId"]]
    assert len(read_inbox(stack.inbox, "p1")) == 1
    assert read_inbox(stack.inbox, "p2") == []
    (stamped,) = read_inbox(stack.inbox, "p3")
    assert (stamped["title"], stamped["body"]) == ("スタンプを獲得しました", "Ann, you have 2 of 3 stamps!")


def test_vip_enrich_handler_reports_a_malformed_record_and_processes_the_others(
    stack: Stack, make_alert: Callable[..., AlertJob], lambda_environment: None
) -> None:
    # given a venue without CRM, a malformed record and an alert job of another venue's group
    job = make_alert(CrmConfig())
    malformed = _message("not json", "other-venue")
    good = _message(alert_job_to_json(job), VENUE)
    # when
    response = vip_enrich.lambda_handler(sqs_event([malformed, good], SIGHTINGS_ARN), LambdaContext("v"))
    # then
    assert _failed(response) == [malformed["MessageId"]]
    alert = stack.deps.alerts.get(stack.tenant, VENUE, job.alert_id)
    assert (alert.profile_status, alert.delivered) == (ProfileStatus.NONE, 2)
    assert stack.profile_lookups() == 0


def test_consumer_handlers_answer_a_batch_that_failed_entirely(lambda_environment: None) -> None:
    response = vip_enrich.lambda_handler(sqs_event([_message("{}", "g")], SIGHTINGS_ARN), LambdaContext("v"))
    assert len(_failed(response)) == 1


@pytest.mark.parametrize(("name", "consumer"), [("push_dispatch", push_dispatch), ("vip_enrich", vip_enrich)])
def test_the_lambda_entry_points_are_the_consumers(name: str, consumer: Any) -> None:
    module = load_app(FUNCTIONS_DIR / name, f"eventface_{name}_handler", "handler.py")
    assert module.lambda_handler is consumer.lambda_handler
