"""The deployment's push sender: which providers are on (SNS mobile push, signed webhooks, the
local inbox), built from the settings. What the pushes say and where they go is
:mod:`eventface.services.push_messages`.

Nothing here does I/O at import: the SNS client and the webhook signing secret are read on the
first push that needs them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from eventface.adapters.egress import EgressGuard, EgressRefusedError, guard_from_settings
from eventface.domain.vip import PushProvider
from eventface.settings import (
    PUSH_INBOX_DIR,
    PUSH_WEBHOOK_SECRET_ID,
    SNS_APNS_APPLICATION_ARN,
    SNS_FCM_APPLICATION_ARN,
    Settings,
)
from mobile_push import (
    InboxProvider,
    Message,
    PermanentPushError,
    Provider,
    PushSender,
    Recipient,
    SnsProvider,
    TransientPushError,
    WebhookProvider,
)

#: The webhook signing secret is read again after this long (rotation).
SECRET_CACHE_SECONDS: Final = 300.0
#: The setting of each SNS platform's application.
SNS_SETTINGS: Final = {"apns": SNS_APNS_APPLICATION_ARN, "fcm": SNS_FCM_APPLICATION_ARN}
INBOX: Final = PushProvider.INBOX.value
SNS: Final = PushProvider.SNS.value
WEBHOOK: Final = PushProvider.WEBHOOK.value


class _Unconfigured:
    """Stands for a provider the deployment did not configure: every send fails with the setting
    to set (the sender's own "no provider named ..." would not say)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def send(self, recipient: Recipient, message: Message) -> str:
        raise PermanentPushError(self.reason)


class _LazySns:
    """SNS mobile push with the client made on first use; a platform without an application ARN
    fails with the setting to set."""

    def __init__(self, applications: Mapping[str, str], client: Callable[[], Any]) -> None:
        self._applications = dict(applications)
        self._client = client
        self._provider: SnsProvider | None = None
        self._lock = threading.Lock()

    def send(self, recipient: Recipient, message: Message) -> str:
        platform = recipient.address.partition(":")[0]
        if platform in SNS_SETTINGS and platform not in self._applications:
            raise PermanentPushError(
                f"{platform} devices cannot be pushed to: set {SNS_SETTINGS[platform]} to the SNS "
                f"platform application ARN for {platform.upper()}"
            )
        with self._lock:
            if self._provider is None:
                self._provider = SnsProvider(self._client(), self._applications)
            provider = self._provider
        return provider.send(recipient, message)


class _SecretWebhook:
    """Signed webhooks whose HMAC key is the Secrets Manager secret ``secret_id``, read on first use
    and again after :data:`SECRET_CACHE_SECONDS` (a rotated secret is picked up). Every POST goes
    through the egress ``guard``: a refused address is a permanent failure, and nothing is sent."""

    def __init__(
        self,
        secret_id: str,
        client: Callable[[], Any],
        *,
        guard: EgressGuard,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self._client = client
        self._guard = guard
        self._timeout = timeout
        self._clock = clock
        self._cached: tuple[float, bytes, WebhookProvider] | None = None
        self._lock = threading.Lock()

    def send(self, recipient: Recipient, message: Message) -> str:
        provider = self._provider()
        try:
            return provider.send(recipient, message)
        except EgressRefusedError as exc:
            raise PermanentPushError(f"the webhook was not called: {exc}") from exc

    def _provider(self) -> WebhookProvider:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < SECRET_CACHE_SECONDS:
                return self._cached[2]
            secret = self._read_secret()
            if self._cached is not None and self._cached[1] == secret:
                provider = self._cached[2]
            else:
                provider = WebhookProvider(secret, timeout=self._timeout, opener=self._guard.opener())
            self._cached = (now, secret, provider)
            return provider

    def _read_secret(self) -> bytes:
        try:
            answer = self._client().get_secret_value(SecretId=self.secret_id)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            hint = (
                f"check that the secret {self.secret_id!r} ({PUSH_WEBHOOK_SECRET_ID}) exists and the "
                "function may read it"
            )
            if code in ("ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure"):
                raise PermanentPushError(
                    f"the webhook signing secret could not be read ({code}): {hint}"
                ) from exc
            raise TransientPushError(
                f"the webhook signing secret could not be read ({code or type(exc).__name__}): {hint}"
            ) from exc
        value = answer.get("SecretString")
        if isinstance(value, str) and value:
            return value.encode()
        binary = answer.get("SecretBinary")
        if isinstance(binary, bytes) and binary:
            return binary
        raise PermanentPushError(
            f"the secret {self.secret_id!r} ({PUSH_WEBHOOK_SECRET_ID}) is empty: store the webhook HMAC "
            "key in it"
        )


def _aws_client(service: str) -> Callable[[], Any]:
    def make() -> Any:
        from eventface import aws  # boto3 only when a push needs it

        return aws.client(service)

    return make


def build_push_sender(
    settings: Settings,
    *,
    sns_client: Callable[[], Any] | None = None,
    secrets_client: Callable[[], Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushSender:
    """The deployment's :class:`PushSender` (the composition root calls this once per container).

    Parameters
    ----------
    settings
        ``push_inbox_dir`` enables the ``inbox`` provider; ``sns_apns_application_arn`` and/or
        ``sns_fcm_application_arn`` enable ``sns``; ``push_webhook_secret_id`` enables ``webhook``
        (whose POSTs pass the egress policy of ``stage`` and ``egress_allow``).
    sns_client, secrets_client
        Factories of the boto3 clients (``eventface.aws.client`` by default), called on first use.
    sleep
        The pause between retries of a transient failure.

    Returns
    -------
    PushSender
        Every provider name is known: one that is not configured fails each send with a receipt
        whose reason names the setting to set.
    """
    providers: dict[str, Provider] = {}
    inbox_dir = settings.push_inbox_dir
    providers[INBOX] = (
        InboxProvider(inbox_dir)
        if inbox_dir is not None
        else _Unconfigured(f"inbox pushes are not enabled: set {PUSH_INBOX_DIR} to the inbox directory")
    )
    applications = {
        platform: arn
        for platform, arn in (
            ("apns", settings.sns_apns_application_arn),
            ("fcm", settings.sns_fcm_application_arn),
        )
        if arn
    }
    providers[SNS] = (
        _LazySns(applications, sns_client or _aws_client("sns"))
        if applications
        else _Unconfigured(
            f"SNS mobile push is not enabled: set {SNS_APNS_APPLICATION_ARN} and/or "
            f"{SNS_FCM_APPLICATION_ARN} to the SNS platform application ARNs"
        )
    )
    secret_id = settings.push_webhook_secret_id
    providers[WEBHOOK] = (
        _SecretWebhook(
            secret_id, secrets_client or _aws_client("secretsmanager"), guard=guard_from_settings(settings)
        )
        if secret_id
        else _Unconfigured(
            f"webhook pushes are not enabled: set {PUSH_WEBHOOK_SECRET_ID} to the Secrets Manager "
            "secret that holds the HMAC signing key"
        )
    )
    return PushSender(providers, sleep=sleep)
