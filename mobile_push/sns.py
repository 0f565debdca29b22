"""Amazon SNS mobile push (APNs and FCM through platform applications and endpoints).

The SNS client is injected (a boto3 ``sns`` client); this module imports neither boto3 nor
botocore, and recognises botocore's errors by their shape (``ClientError.response``) instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from mobile_push.errors import EndpointDisabledError, PermanentPushError, TransientPushError
from mobile_push.messages import Message, Recipient

logger = logging.getLogger("mobile_push")

APNS_PLATFORMS = ("APNS", "APNS_SANDBOX")
GCM_PLATFORM = "GCM"

_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottling",
        "RequestTimeout",
    }
)
_DISABLED_CODES = frozenset({"EndpointDisabled"})
# botocore's network failures (EndpointConnectionError, ReadTimeoutError …) derive from these.
_TRANSIENT_BOTOCORE_BASES = frozenset({"HTTPClientError", "ConnectionError"})
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:[^\s]+) already exists")

_DUMMY_CREDENTIALS: Mapping[str, Mapping[str, str]] = {
    "APNS": {"PlatformCredential": "dummy-private-key", "PlatformPrincipal": "dummy-certificate"},
    "APNS_SANDBOX": {"PlatformCredential": "dummy-private-key", "PlatformPrincipal": "dummy-certificate"},
    "GCM": {"PlatformCredential": "dummy-server-key"},
}


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _translate(exc: Exception, action: str) -> Exception:
    """Map a client error to the push error kind; the caller raises the result ``from exc``."""
    code = _error_code(exc)
    if code in _DISABLED_CODES:
        return EndpointDisabledError(f"SNS {action}: endpoint disabled ({code})")
    if code in _TRANSIENT_CODES:
        return TransientPushError(f"SNS {action}: {code}")
    if code is None:
        bases = {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("botocore")}
        if bases & _TRANSIENT_BOTOCORE_BASES or isinstance(exc, OSError):
            return TransientPushError(f"SNS {action}: {type(exc).__name__}")
    return PermanentPushError(f"SNS {action} failed with {code or type(exc).__name__}: {exc}")


def platform_of(arn: str) -> str:
    """Return the platform (``"APNS"``, ``"APNS_SANDBOX"``, ``"GCM"`` …) named in an app or endpoint ARN.

    Raises
    ------
    ValueError
        If ``arn`` is not an SNS ``app/…`` or ``endpoint/…`` ARN.
    """
    resource = arn.split(":", 5)[-1] if arn.startswith("arn:") else ""
    parts = resource.split("/")
    if len(parts) < 3 or parts[0] not in ("app", "endpoint"):
        raise ValueError(f"{arn!r} is not an SNS platform application or endpoint ARN")
    return parts[1]


def build_payload(message: Message) -> str:
    """Return the ``MessageStructure="json"`` document for APNs, APNs sandbox and FCM (GCM).

    Parameters
    ----------
    message
        The rendered message; ``data`` travels as custom APNs keys and as FCM ``data``.
    """
    aps = {"alert": {"title": message.title, "body": message.body}, "sound": "default"}
    # Custom keys first, so that a data key called "aps" cannot replace the alert.
    apns = json.dumps({**message.data, "aps": aps}, ensure_ascii=False)
    gcm = json.dumps(
        {"notification": {"title": message.title, "body": message.body}, "data": dict(message.data)},
        ensure_ascii=False,
    )
    return json.dumps(
        {"default": message.body, "APNS": apns, "APNS_SANDBOX": apns, "GCM": gcm},
        ensure_ascii=False,
    )


def create_platform_application(sns: Any, name: str, platform: str) -> str:
    """Create an SNS platform application with dummy credentials, for moto and the local stack.

    Parameters
    ----------
    sns
        A boto3 SNS client.
    name
        Application name.
    platform
        ``"APNS_SANDBOX"``, ``"APNS"`` or ``"GCM"``.

    Returns
    -------
    str
        The platform application ARN.
    """
    if platform not in _DUMMY_CREDENTIALS:
        raise ValueError(f"platform must be one of {', '.join(_DUMMY_CREDENTIALS)}, got {platform!r}")
    response = sns.create_platform_application(
        Name=name, Platform=platform, Attributes=dict(_DUMMY_CREDENTIALS[platform])
    )
    return str(response["PlatformApplicationArn"])


class SnsProvider:
    """Sends through SNS mobile push.

    Parameters
    ----------
    sns_client
        A boto3 SNS client (built by the caller, so the environment picks the endpoint).
    platform_application_arns
        Platform name used in addresses (``"APNS_SANDBOX"``, ``"GCM"``, or any label such as
        ``"ios"``) to platform application ARN.

    Notes
    -----
    A recipient's address is ``"<platform>:<device token>"`` or an endpoint ARN.
    """

    def __init__(self, sns_client: Any, platform_application_arns: Mapping[str, str]) -> None:
        self._sns = sns_client
        self._apps = dict(platform_application_arns)

    def endpoint_for(self, platform: str, token: str) -> str:
        """Return the endpoint ARN for a device token, creating the endpoint if needed.

        CreatePlatformEndpoint is idempotent for the same token and attributes; when the endpoint
        exists with other attributes (it was disabled, say), SNS refuses and names the existing
        ARN in the message, which is used instead (or found by listing the application).

        Raises
        ------
        PermanentPushError
            If ``platform`` is not configured or SNS refuses the token.
        TransientPushError
            On throttling or SNS internal errors.
        """
        app_arn = self._apps.get(platform)
        if app_arn is None:
            known = ", ".join(sorted(self._apps)) or "none"
            raise PermanentPushError(f"no SNS platform application for {platform!r} (configured: {known})")
        if not token:
            raise PermanentPushError("empty device token; register the device again")
        try:
            response = self._sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token=token)
            return str(response["EndpointArn"])
        except Exception as exc:
            if _error_code(exc) != "InvalidParameter" or "already exists" not in str(exc):
                raise _translate(exc, "CreatePlatformEndpoint") from exc
            match = _EXISTING_ENDPOINT.search(str(exc))
            if match:
                return match.group(1)
            found = self._find_endpoint(app_arn, token)
            if found is None:
                raise PermanentPushError(
                    "SNS says the endpoint exists but it is not listed under the application; retry later"
                ) from exc
            return found

    def _find_endpoint(self, app_arn: str, token: str) -> str | None:
        kwargs: dict[str, str] = {"PlatformApplicationArn": app_arn}
        while True:
            try:
                page = self._sns.list_endpoints_by_platform_application(**kwargs)
            except Exception as exc:
                raise _translate(exc, "ListEndpointsByPlatformApplication") from exc
            for endpoint in page.get("Endpoints", []):
                if endpoint.get("Attributes", {}).get("Token") == token:
                    return str(endpoint["EndpointArn"])
            next_token = page.get("NextToken")
            if not next_token:
                return None
            kwargs["NextToken"] = next_token

    def resolve(self, address: str) -> str:
        """Return the endpoint ARN for a recipient address (``"<platform>:<token>"`` or an ARN)."""
        if address.startswith("arn:"):
            return address
        platform, sep, token = address.partition(":")
        if not sep:
            raise PermanentPushError(
                f"SNS address must be '<platform>:<device token>' or an endpoint ARN, got {address[:20]!r}…"
            )
        return self.endpoint_for(platform, token)

    def ensure_enabled(self, endpoint_arn: str) -> None:
        """Raise :class:`EndpointDisabledError` if the endpoint is disabled or gone."""
        try:
            response = self._sns.get_endpoint_attributes(EndpointArn=endpoint_arn)
        except Exception as exc:
            if _error_code(exc) == "NotFound":
                raise EndpointDisabledError(f"SNS endpoint {endpoint_arn} no longer exists") from exc
            raise _translate(exc, "GetEndpointAttributes") from exc
        enabled = str(response.get("Attributes", {}).get("Enabled", "true")).lower()
        if enabled != "true":
            raise EndpointDisabledError(f"SNS endpoint {endpoint_arn} is disabled")

    def send(self, recipient: Recipient, message: Message) -> str:
        """Publish ``message`` to the recipient's endpoint and return the SNS message id."""
        endpoint_arn = self.resolve(recipient.address)
        self.ensure_enabled(endpoint_arn)
        try:
            response = self._sns.publish(
                TargetArn=endpoint_arn, Message=build_payload(message), MessageStructure="json"
            )
        except Exception as exc:
            raise _translate(exc, "Publish") from exc
        return str(response["MessageId"])
