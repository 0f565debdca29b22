"""SnsProvider against moto's SNS: platform applications, idempotent endpoints, disabled endpoints."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from mobile_push import (
    EndpointDisabledError,
    LocalizedText,
    PermanentPushError,
    PushSender,
    Recipient,
    SnsProvider,
    Template,
    TransientPushError,
    create_platform_application,
)

APNS_TOKEN = "a" * 64
GCM_TOKEN = "fcm-registration-token-1"
TEMPLATE = Template(
    "vip_arrived",
    {
        "en": LocalizedText("VIP at {gate}", "{name} arrived", {"gate": "{gate}"}),
        "ja": LocalizedText("VIP来場: {gate}", "{name}様が到着", {"gate": "{gate}"}),
    },
)
VARS = {"name": "Sato", "gate": "East"}


@pytest.fixture
def sns(in_process_aws: None) -> Any:
    return boto3.client("sns", region_name="us-east-1")


@pytest.fixture
def provider(sns: Any) -> SnsProvider:
    return SnsProvider(
        sns,
        {
            "APNS_SANDBOX": create_platform_application(sns, "staff-ios", "APNS_SANDBOX"),
            "GCM": create_platform_application(sns, "staff-android", "GCM"),
        },
    )


def published(endpoint_arn: str) -> list[dict[str, Any]]:
    """Messages moto recorded for one endpoint, decoded."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    endpoint = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints[endpoint_arn]
    return [json.loads(message) for message in endpoint.messages.values()]


def test_endpoints_are_created_idempotently(provider: SnsProvider) -> None:
    first = provider.endpoint_for("APNS_SANDBOX", APNS_TOKEN)
    assert provider.endpoint_for("APNS_SANDBOX", APNS_TOKEN) == first
    assert ":endpoint/APNS_SANDBOX/staff-ios/" in first
    assert provider.endpoint_for("GCM", GCM_TOKEN) != first


def test_sends_to_apns_and_gcm_tokens(provider: SnsProvider) -> None:
    recipients = [
        Recipient("ios-1", "sns", f"APNS_SANDBOX:{APNS_TOKEN}", "ja", VARS),
        Recipient("android-1", "sns", f"GCM:{GCM_TOKEN}", "en", VARS),
    ]
    receipts = PushSender({"sns": provider}).send(TEMPLATE, recipients)
    assert [r.status for r in receipts] == ["delivered", "delivered"]
    assert all(r.provider_message_id for r in receipts)

    [ios] = published(provider.endpoint_for("APNS_SANDBOX", APNS_TOKEN))
    apns = json.loads(ios["APNS_SANDBOX"])
    assert apns["aps"]["alert"] == {"title": "VIP来場: East", "body": "Sato様が到着"}
    assert apns["gate"] == "East"
    [android] = published(provider.endpoint_for("GCM", GCM_TOKEN))
    gcm = json.loads(android["GCM"])
    assert gcm == {"notification": {"title": "VIP at East", "body": "Sato arrived"}, "data": {"gate": "East"}}
    assert android["default"] == "Sato arrived"


def test_endpoint_arn_address_is_used_as_is(provider: SnsProvider) -> None:
    arn = provider.endpoint_for("GCM", GCM_TOKEN)
    [receipt] = PushSender({"sns": provider}).send(TEMPLATE, [Recipient("a", "sns", arn, "en", VARS)])
    assert receipt.status == "delivered"
    assert len(published(arn)) == 1


def test_disabled_endpoint_yields_disabled_receipt_and_callback(sns: Any, provider: SnsProvider) -> None:
    arn = provider.endpoint_for("APNS_SANDBOX", APNS_TOKEN)
    sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
    # Same token, different attributes now: SNS refuses and names the existing endpoint.
    assert provider.endpoint_for("APNS_SANDBOX", APNS_TOKEN) == arn

    disabled: list[Recipient] = []
    sleeps: list[float] = []
    sender = PushSender({"sns": provider}, on_disabled=disabled.append, sleep=sleeps.append)
    receipts = sender.send(
        TEMPLATE,
        [
            Recipient("ios-dead", "sns", f"APNS_SANDBOX:{APNS_TOKEN}", "ja", VARS),
            Recipient("ios-dead-arn", "sns", arn, "ja", VARS),
            Recipient("android-1", "sns", f"GCM:{GCM_TOKEN}", "en", VARS),
        ],
    )
    assert [r.status for r in receipts] == ["disabled", "disabled", "delivered"]
    assert [r.recipient_id for r in disabled] == ["ios-dead", "ios-dead-arn"]
    assert sleeps == []
    assert published(arn) == []


def test_publish_to_disabled_endpoint_maps_sns_error(sns: Any, provider: SnsProvider) -> None:
    # Publish itself (not the Enabled pre-check) answering EndpointDisabled.
    arn = provider.endpoint_for("GCM", GCM_TOKEN)
    sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
    provider.ensure_enabled = lambda endpoint_arn: None  # type: ignore[method-assign]
    with pytest.raises(EndpointDisabledError):
        provider.send(Recipient("a", "sns", arn), TEMPLATE.render("en", VARS))


def test_deleted_endpoint_is_disabled(sns: Any, provider: SnsProvider) -> None:
    arn = provider.endpoint_for("GCM", GCM_TOKEN)
    sns.delete_endpoint(EndpointArn=arn)
    with pytest.raises(EndpointDisabledError, match="no longer exists"):
        provider.send(Recipient("a", "sns", arn), TEMPLATE.render("en", VARS))


def test_bad_addresses_are_permanent(provider: SnsProvider) -> None:
    message = TEMPLATE.render("en", VARS)
    with pytest.raises(PermanentPushError, match="no SNS platform application for 'APNS'"):
        provider.send(Recipient("a", "sns", f"APNS:{APNS_TOKEN}"), message)
    with pytest.raises(PermanentPushError, match="'<platform>:<device token>'"):
        provider.send(Recipient("a", "sns", "just-a-token"), message)


def test_platform_application_needs_a_known_platform(sns: Any) -> None:
    with pytest.raises(ValueError, match="platform must be one of"):
        create_platform_application(sns, "x", "BAIDU")


def test_error_codes_moto_cannot_produce(sns: Any) -> None:
    """Throttling is retried, and an "already exists" without an ARN is found by listing."""
    from botocore.stub import ANY, Stubber

    app = "arn:aws:sns:us-east-1:123456789012:app/GCM/staff-android"
    arn = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/staff-android/1"
    provider = SnsProvider(sns, {"GCM": app})
    with Stubber(sns) as stub:
        stub.add_client_error(
            "create_platform_endpoint",
            service_error_code="InvalidParameter",
            service_message="Invalid parameter: Token Reason: Endpoint already exists, different attributes",
        )
        stub.add_response(
            "list_endpoints_by_platform_application",
            {"Endpoints": [{"EndpointArn": "other", "Attributes": {"Token": "x"}}], "NextToken": "p2"},
        )
        stub.add_response(
            "list_endpoints_by_platform_application",
            {"Endpoints": [{"EndpointArn": arn, "Attributes": {"Token": GCM_TOKEN}}]},
            {"PlatformApplicationArn": app, "NextToken": "p2"},
        )
        stub.add_response("get_endpoint_attributes", {"Attributes": {"Enabled": "true"}})
        stub.add_client_error("publish", service_error_code="Throttling", http_status_code=400)
        stub.add_response("create_platform_endpoint", {"EndpointArn": arn})
        stub.add_response("get_endpoint_attributes", {"Attributes": {"Enabled": "true"}})
        stub.add_response(
            "publish", {"MessageId": "m-1"}, {"TargetArn": arn, "Message": ANY, "MessageStructure": "json"}
        )
        sleeps: list[float] = []
        [receipt] = PushSender({"sns": provider}, sleep=sleeps.append).send(
            TEMPLATE, [Recipient("a", "sns", f"GCM:{GCM_TOKEN}", "en", VARS)]
        )
        stub.assert_no_pending_responses()
    assert (receipt.status, receipt.attempts, receipt.provider_message_id) == ("delivered", 2, "m-1")
    assert len(sleeps) == 1

    with Stubber(sns) as stub:
        stub.add_client_error("publish", service_error_code="InternalError", http_status_code=500)
        stub.add_client_error("publish", service_error_code="InvalidParameter", http_status_code=400)
        message = TEMPLATE.render("en", VARS)
        provider.ensure_enabled = lambda endpoint_arn: None  # type: ignore[method-assign]
        with pytest.raises(TransientPushError, match="InternalError"):
            provider.send(Recipient("a", "sns", arn), message)
        with pytest.raises(PermanentPushError, match="InvalidParameter"):
            provider.send(Recipient("a", "sns", arn), message)
        stub.assert_no_pending_responses()
